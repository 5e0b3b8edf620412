//! Throwaway TLS material for tests, made with the `openssl` command: a CA
//! and certificates it signs. Shared by the workspace's TLS tests (login's
//! own tests include this file by path).

use std::path::Path;
use std::process::Command;

/// Runs `openssl args…` in `dir`, failing the test with its stderr.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`ca.pem`, `ca.key`) and a `localhost`/127.0.0.1 server
/// certificate it signed (`cert.pem`, `key.pem`) in `dir`, created if
/// missing.
pub fn make_certs(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create the certificate directory");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=dovecote test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "req.pem",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        .expect("write ext.cnf");
    sign(dir, "req.pem", "cert.pem", "ext.cnf");
}

/// Signs the request `req` with the CA in `dir` into `out`, with the
/// extensions file `ext`.
pub fn sign(dir: &Path, req: &str, out: &str, ext: &str) {
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            req,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            out,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    );
}
