//! The auth service under a real master (issue 4 acceptance): PAM logins of
//! a real system account with the passwd userdb (S9), passwd-file + static
//! (S12), the master's one-shot REQUEST, `doveadm user|auth|pw` against our
//! auth and Debian's doveadm, protocol robustness, and a hanging PAM
//! backend that does not hold up passwd-file logins.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant};

use common::*;
use dovecote_auth::protocol::client_conn::{AuthClientConnection, AuthOutcome};
use dovecote_auth::protocol::master_conn::{AuthMasterConnection, Lookup};
use dovecote_auth::protocol::Fields;
use dovecote_auth::scheme::base64_encode;

static PAM_SETUP: Once = Once::new();

/// Every service binary, built once for all test files (common::bin_dir).
fn build_auth() {
    bin_dir();
}

/// A fresh CI machine may lack Debian's stock /etc/pam.d/dovecot; create it
/// (libpam-runtime provides the common-* files).
fn ensure_pam() {
    PAM_SETUP.call_once(|| {
        let stock = Path::new("/etc/pam.d/dovecot");
        if !stock.exists() {
            std::fs::write(
                stock,
                "#%PAM-1.0\n\n@include common-auth\n@include common-account\n@include common-session\n",
            )
            .unwrap();
        }
        // A PAM service whose auth step hangs (a backend that never answers).
        std::fs::write(
            "/etc/pam.d/dovecote-test-hang",
            "auth required pam_exec.so quiet /bin/sleep 30\naccount required pam_permit.so\n",
        )
        .unwrap();
    });
}

/// Creates (or resets) a system account with a password.
fn system_user(name: &str, password: &str) {
    if nix::unistd::User::from_name(name).ok().flatten().is_none() {
        let ok =
            Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", name]).status().unwrap();
        assert!(ok.success(), "useradd {name}");
    }
    let mut child = Command::new("chpasswd").stdin(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{name}:{password}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "chpasswd {name}");
}

fn start(name: &str, body: &str) -> Instance {
    build_auth();
    let dovecot = Instance::start(name, body);
    for socket in ["auth-client", "auth-login", "auth-master", "auth-userdb", "auth-worker", "login/login"] {
        let path = dovecot.base_dir.join(socket);
        assert!(wait_for(Duration::from_secs(5), || path.exists()), "{} missing", path.display());
    }
    dovecot
}

fn client(dovecot: &Instance, socket: &str) -> AuthClientConnection {
    let conn = AuthClientConnection::connect(&dovecot.base_dir.join(socket), std::process::id()).unwrap();
    conn.set_timeout(Some(Duration::from_secs(20))).unwrap();
    conn
}

fn plain(conn: &mut AuthClientConnection, user: &str, password: &str) -> AuthOutcome {
    conn.plain(user, password, Fields::new().with("service", "imap").with("rip", "192.0.2.7")).unwrap()
}

fn doveadm_out(dovecot: &Instance, args: &[&str]) -> (i32, String, String) {
    let out = dovecot.doveadm(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pam_login_and_passwd_userdb_with_override_fields() {
    require_root();
    ensure_pam();
    system_user("dctestpam", "Pam-Secr3t");
    let mut dovecot = start(
        "auth-pam",
        "auth_failure_delay = 1s\nauth_verbose = yes\n\
         passdb {\n  driver = pam\n}\n\
         userdb {\n  driver = passwd\n  override_fields = uid=vmail gid=vmail home=/var/mail/%n/\n}\n",
    );
    let mut conn = client(&dovecot, "auth-client");
    let ok = plain(&mut conn, "dctestpam", "Pam-Secr3t");
    assert!(
        matches!(&ok, AuthOutcome::Ok { fields, .. } if fields.get("user") == Some("dctestpam")),
        "{ok:?}"
    );

    let t0 = Instant::now();
    let fail = plain(&mut conn, "dctestpam", "wrong");
    assert!(t0.elapsed() >= Duration::from_secs(1), "failure answered before auth_failure_delay");
    match &fail {
        AuthOutcome::Fail { fields, .. } => {
            assert_eq!(fields.get("user"), Some("dctestpam"));
            assert!(!fields.has("code"), "a wrong password is not a temporary failure: {fail:?}");
        }
        other => panic!("{other:?}"),
    }

    // The userdb: passwd with override_fields, vmail's uid and gid (S9).
    let (code, out, err) = doveadm_out(&dovecot, &["user", "-u", "dctestpam"]);
    assert_eq!(code, 0, "{err}");
    let vmail = uid_of("vmail").to_string();
    assert!(out.contains(&format!("  uid       : {vmail}\n")), "{out}");
    assert!(out.contains(&format!("  gid       : {}\n", gid_of("vmail"))), "{out}");
    assert!(out.contains("  home      : /var/mail/dctestpam/\n"), "{out}");
    let (code, out, _) = doveadm_out(&dovecot, &["user", "-f", "uid", "dctestpam"]);
    assert_eq!((code, out.trim()), (0, vmail.as_str()));
    let (code, _, err) = doveadm_out(&dovecot, &["user", "-u", "nosuchuser-dc"]);
    assert_eq!(code, 67, "{err}");
    assert!(err.contains("userdb lookup: user nosuchuser-dc doesn't exist"), "{err}");
    // The worker ran as a separate `auth -w` process.
    assert!(dovecot.children().iter().any(|p| cmdline(*p).contains("auth -w")));
    assert!(!dovecot.log_text().contains("Pam-Secr3t"), "password in the log");
}

#[test]
fn passwd_file_static_userdb_master_request_and_doveadm() {
    require_root();
    let dir = test_dir("auth-pwfile-data");
    let passwd = dir.join("passwd");
    // Hashed by Debian's Dovecot (an independent implementation).
    let sha = Command::new("/usr/bin/doveadm")
        .args(["pw", "-s", "SHA512-CRYPT", "-p", "test123"])
        .output()
        .unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout).trim().to_string();
    assert!(sha.starts_with("{SHA512-CRYPT}$6$"), "{sha}");
    std::fs::write(
        &passwd,
        format!(
            "tim@example.com:{{PLAIN}}tanstaaf::::::\nbob@example.com:{sha}::::::\n\
             nol@example.com:{{PLAIN}}pw::::::nologin reason=closed\n\
             prox@example.com:{{PLAIN}}pw::::::proxy host=10.1.1.1\n"
        ),
    )
    .unwrap();
    let dovecot = start(
        "auth-pwfile",
        &format!(
            "auth_mechanisms = plain login cram-md5 scram-sha-256\nauth_failure_delay = 0\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=CRYPT username_format=%u {p}\n}}\n\
             userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home=/var/vmail/%d/%n allow_all_users=yes\n}}\n",
            p = passwd.display()
        ),
    );
    // Login socket: OK, then the master's REQUEST with the cookie (S12).
    let mut login = client(&dovecot, "login/login");
    let cookie = login.handshake().cookie.clone();
    assert_eq!(cookie.len(), 32);
    let AuthOutcome::Ok { id, fields } = plain(&mut login, "tim@example.com", "tanstaaf") else { panic!() };
    assert_eq!(fields.get("user"), Some("tim@example.com"));
    let mut master = AuthMasterConnection::connect(&dovecot.base_dir.join("auth-master")).unwrap();
    let found = master.request(std::process::id(), id, &cookie, Fields::new()).unwrap();
    let Lookup::Found { user, fields } = found else { panic!("{found:?}") };
    assert_eq!(user, "tim@example.com");
    assert_eq!(fields.get("uid"), Some(uid_of("vmail").to_string().as_str()));
    assert_eq!(fields.get("home"), Some("/var/vmail/example.com/tim"));
    assert_eq!(fields.get("auth_mech"), Some("PLAIN"));
    // One-shot: a second REQUEST fails, as does a wrong cookie.
    assert_eq!(master.request(std::process::id(), id, &cookie, Fields::new()).unwrap(), Lookup::Failed(None));
    let AuthOutcome::Ok { id, .. } = plain(&mut login, "bob@example.com", "test123") else { panic!() };
    let bad = "0".repeat(32);
    assert_eq!(master.request(std::process::id(), id, &bad, Fields::new()).unwrap(), Lookup::Failed(None));
    // nologin and proxy fields pass through.
    let AuthOutcome::Ok { fields, .. } = plain(&mut login, "nol@example.com", "pw") else { panic!() };
    assert!(fields.has("nologin") && fields.get("reason") == Some("closed"), "{fields:?}");
    let AuthOutcome::Ok { fields, .. } = plain(&mut login, "prox@example.com", "pw") else { panic!() };
    assert_eq!((fields.get("host"), fields.get("pass")), (Some("10.1.1.1"), Some("pw")));
    // CRAM-MD5 and SCRAM need credentials: only plaintext stored ones work.
    let mut conn = client(&dovecot, "auth-client");
    let out = conn
        .authenticate("CRAM-MD5", Fields::new().with("service", "imap"), None, |challenge| {
            use hmac_md5::respond;
            Some(respond("tim@example.com", "tanstaaf", challenge))
        })
        .unwrap();
    assert!(matches!(out, AuthOutcome::Ok { .. }), "{out:?}");
    assert!(matches!(plain(&mut conn, "tim@example.com", "nope"), AuthOutcome::Fail { .. }));

    // doveadm against our auth.
    let (code, out, _) = doveadm_out(&dovecot, &["auth", "test", "tim@example.com", "tanstaaf"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "passdb: tim@example.com auth succeeded\nextra fields:\n  user=tim@example.com\n")
    );
    let (code, out, _) = doveadm_out(&dovecot, &["auth", "test", "tim@example.com", "bad"]);
    assert_eq!(code, 77, "{out}");
    let (code, out, err) = doveadm_out(&dovecot, &["auth", "login", "bob@example.com", "test123"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("userdb extra fields:\n  bob@example.com\n  uid="), "{out}");
    let (code, out, _) = doveadm_out(&dovecot, &["auth", "lookup", "bob@example.com"]);
    assert_eq!(code, 0);
    // As Dovecot 2.3: the PASS reply never carries the password.
    assert_eq!(out, "passdb: bob@example.com\n  user      : bob@example.com\n");
    let (code, out, _) = doveadm_out(&dovecot, &["user", "-u", "tim@example.com"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "userdb: tim@example.com\n  user      : tim@example.com\n  uid       : {}\n  gid       : {}\n  home      : /var/vmail/example.com/tim\n",
            uid_of("vmail"),
            gid_of("vmail")
        )
    );
    drop(dovecot);
    let _ = std::fs::remove_dir_all(dir);
}

/// CRAM-MD5 client response without pulling in a crate for it.
mod hmac_md5 {
    pub fn respond(user: &str, password: &str, challenge: &[u8]) -> Vec<u8> {
        use md5_impl::md5;
        let mut key = password.as_bytes().to_vec();
        if key.len() > 64 {
            key = md5(&key).to_vec();
        }
        key.resize(64, 0);
        let ipad: Vec<u8> = key.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = key.iter().map(|b| b ^ 0x5c).collect();
        let inner = md5(&[ipad, challenge.to_vec()].concat());
        let outer = md5(&[opad, inner.to_vec()].concat());
        let hex: String = outer.iter().map(|b| format!("{b:02x}")).collect();
        format!("{user} {hex}").into_bytes()
    }

    mod md5_impl {
        /// Uses Debian's `md5sum` through a pipe: test-only.
        pub fn md5(data: &[u8]) -> [u8; 16] {
            use std::io::Write;
            let mut child = std::process::Command::new("md5sum")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(data).unwrap();
            let out = child.wait_with_output().unwrap();
            let hex = String::from_utf8_lossy(&out.stdout);
            let mut raw = [0u8; 16];
            for (i, b) in raw.iter_mut().enumerate() {
                *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap();
            }
            raw
        }
    }
}

#[test]
fn doveadm_user_list_and_pw_round_trip_with_debian_doveadm() {
    require_root();
    let dir = test_dir("auth-list-data");
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, "tim:{PLAIN}a:1000:1000::/home/tim\nann:{PLAIN}b:1001:1001::/home/ann\nbob:{PLAIN}c:1002:1002::/home/bob\n").unwrap();
    let dovecot = start(
        "auth-list",
        &format!(
            "passdb {{\n  driver = passwd-file\n  args = {p}\n}}\nuserdb {{\n  driver = passwd-file\n  args = {p}\n}}\n",
            p = passwd.display()
        ),
    );
    let (code, out, _) = doveadm_out(&dovecot, &["user", "*"]);
    assert_eq!((code, out.as_str()), (0, "tim\nann\nbob\n"));
    let (code, out, _) = doveadm_out(&dovecot, &["user", "b*"]);
    assert_eq!((code, out.as_str()), (0, "bob\n"));

    // doveadm pw: ours → Debian's verifies, Debian's → ours verifies.
    let debian = "/usr/bin/doveadm";
    for scheme in ["SHA512-CRYPT", "SSHA256", "PBKDF2", "CRAM-MD5", "SCRAM-SHA-256", "ARGON2ID", "BLF-CRYPT"]
    {
        let (code, ours, err) = doveadm_out(&dovecot, &["pw", "-s", scheme, "-p", "s3cret"]);
        assert_eq!(code, 0, "{err}");
        let ours = ours.trim().to_string();
        assert!(ours.starts_with(&format!("{{{scheme}}}")), "{ours}");
        let check = Command::new(debian).args(["pw", "-t", &ours, "-p", "s3cret"]).output().unwrap();
        assert!(
            check.status.success(),
            "Debian doveadm rejects our {scheme}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let theirs = Command::new(debian).args(["pw", "-s", scheme, "-p", "s3cret"]).output().unwrap();
        let theirs = String::from_utf8_lossy(&theirs.stdout).trim().to_string();
        let (code, out, err) = doveadm_out(&dovecot, &["pw", "-t", &theirs, "-p", "s3cret"]);
        assert_eq!((code, out.trim().to_string()), (0, format!("{theirs} (verified)")), "{err}");
        let (code, _, err) = doveadm_out(&dovecot, &["pw", "-t", &theirs, "-p", "wrong"]);
        assert_eq!(code, 75);
        assert!(err.contains("reverse password verification check failed: Password mismatch"), "{err}");
    }
    drop(dovecot);
    let _ = std::fs::remove_dir_all(dir);
}

fn raw(dovecot: &Instance, socket: &str) -> UnixStream {
    let s = UnixStream::connect(dovecot.base_dir.join(socket)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until `n` lines or EOF; returns the text and whether EOF was seen.
fn read_lines(s: &mut UnixStream, n: usize) -> (String, bool) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    while buf.iter().filter(|b| **b == b'\n').count() < n {
        match s.read(&mut byte) {
            Ok(0) => return (String::from_utf8_lossy(&buf).into_owned(), true),
            Ok(k) => buf.extend_from_slice(&byte[..k]),
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&buf).into_owned(), false)
}

fn handshake(dovecot: &Instance) -> UnixStream {
    let mut s = raw(dovecot, "auth-client");
    s.write_all(b"VERSION\t1\t2\nCPID\t4242\n").unwrap();
    let (hs, _) = read_lines(&mut s, 6);
    assert!(hs.ends_with("DONE\n"), "{hs}");
    s
}

fn still_serving(dovecot: &Instance) {
    let mut conn = client(dovecot, "auth-client");
    assert!(matches!(plain(&mut conn, "tim", "pw"), AuthOutcome::Ok { .. }), "auth stopped serving");
}

#[test]
fn protocol_robustness() {
    require_root();
    let dir = test_dir("auth-robust-data");
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, "tim:{PLAIN}pw:1000:1000::/home/tim\n").unwrap();
    let dovecot = start(
        "auth-robust",
        &format!(
            "auth_failure_delay = 0\nauth_mechanisms = plain login\n\
             passdb {{\n  driver = passwd-file\n  args = {p}\n}}\nuserdb {{\n  driver = passwd-file\n  args = {p}\n}}\n",
            p = passwd.display()
        ),
    );
    let resp = base64_encode(b"\0tim\0pw");
    // Invalid base64: Dovecot's reply, connection stays.
    let mut s = handshake(&dovecot);
    s.write_all(b"AUTH\t1\tPLAIN\tservice=imap\tresp=!!!\n").unwrap();
    assert_eq!(
        read_lines(&mut s, 1).0,
        "FAIL\t1\tcode=invalid_base64\treason=Invalid base64 data in initial response\n"
    );
    s.write_all(b"AUTH\t2\tPLAIN\tservice=imap\n").unwrap();
    assert_eq!(read_lines(&mut s, 1).0, "CONT\t2\t\n");
    s.write_all(b"CONT\t2\t%%%\n").unwrap();
    assert_eq!(
        read_lines(&mut s, 1).0,
        "FAIL\t2\tcode=invalid_base64\treason=Invalid base64 data in continued response\n"
    );
    s.write_all(b"CONT\t77\tAAAA\n").unwrap();
    assert_eq!(read_lines(&mut s, 1).0, "FAIL\t77\treason=Authentication request timed out\n");
    s.write_all(format!("AUTH\t3\tPLAIN\tservice=imap\tresp={resp}\n").as_bytes()).unwrap();
    assert_eq!(read_lines(&mut s, 1).0, "OK\t3\tuser=tim\n");
    s.write_all(b"CONT\t3\tAAAA\n").unwrap();
    assert_eq!(read_lines(&mut s, 1).0, "FAIL\t3\treason=Authentication request timed out\n");
    // Empty response for PLAIN from a 1.2 client: a (delayed) failure.
    s.write_all(b"AUTH\t4\tPLAIN\tservice=imap\tresp=\n").unwrap();
    assert_eq!(read_lines(&mut s, 1).0, "FAIL\t4\n");
    // Clean disconnects: unknown mechanism, unknown command, missing
    // service, parameters after resp, malformed AUTH, 1 MB line, no VERSION.
    let cases: [&[u8]; 6] = [
        b"AUTH\t1\tNOSUCHMECH\tservice=imap\n",
        b"BOGUS\tx\n",
        b"AUTH\t1\tPLAIN\n",
        b"AUTH\t1\tPLAIN\tservice=imap\tresp=AA==\tfoo\n",
        b"AUTH\tnotanumber\n",
        b"\t\t\t\n",
    ];
    for case in cases {
        let mut s = handshake(&dovecot);
        s.write_all(case).unwrap();
        let (text, eof) = read_lines(&mut s, 1);
        assert!(eof && text.is_empty(), "{case:?}: {text:?}");
        still_serving(&dovecot);
    }
    let mut s = handshake(&dovecot);
    let big = vec![b'A'; 1 << 20];
    let _ = s.write_all(&big);
    let (text, eof) = read_lines(&mut s, 1);
    assert!(eof && text.is_empty(), "1 MB line: {text:?}");
    still_serving(&dovecot);
    let mut s = raw(&dovecot, "auth-client");
    s.write_all(b"AUTH\t1\tPLAIN\tservice=imap\n").unwrap();
    assert!(read_lines(&mut s, 100).0.ends_with("DONE\n"));
    still_serving(&dovecot);
    // Disconnect in the middle of an exchange.
    for _ in 0..5 {
        let mut s = handshake(&dovecot);
        s.write_all(b"AUTH\t1\tLOGIN\tservice=imap\n").unwrap();
        assert_eq!(read_lines(&mut s, 1).0, "CONT\t1\tVXNlcm5hbWU6\n");
        s.write_all(b"CONT\t1\tdGlt\n").unwrap();
        drop(s);
    }
    still_serving(&dovecot);
    // auth-master: CPID there and unknown commands disconnect; a broken
    // version is refused.
    for case in [
        &b"VERSION\t1\t0\nCPID\t1\n"[..],
        b"VERSION\t1\t0\nNOPE\t1\n",
        b"VERSION\t2\t0\n",
        b"VERSION\t1\t0\nPASS\t1\ttim\n",
    ] {
        let mut m = raw(&dovecot, "auth-master");
        m.write_all(case).unwrap();
        let (text, eof) = read_lines(&mut m, 3);
        assert!(eof && text.starts_with("VERSION\t1\t1\nSPID\t"), "{case:?}: {text:?}");
    }
    let mut m = raw(&dovecot, "auth-master");
    m.write_all(b"VERSION\t1\t0\nUSER\t1\ttim\tservice=imap\nUSER\t2\tghost\tservice=imap\nCACHE-FLUSH\t3\n")
        .unwrap();
    let (text, _) = read_lines(&mut m, 5);
    assert!(
        text.ends_with("USER\t1\ttim\tuid=1000\tgid=1000\thome=/home/tim\nNOTFOUND\t2\nOK\t3\t0\n"),
        "{text}"
    );
    still_serving(&dovecot);
    drop(dovecot);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn hanging_backend_does_not_stall_other_logins() {
    require_root();
    ensure_pam();
    let dir = test_dir("auth-hang-data");
    let passwd = dir.join("passwd");
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!("user{i}:{{PLAIN}}pw{i}::::::\n"));
    }
    std::fs::write(&passwd, text).unwrap();
    let dovecot = start(
        "auth-hang",
        &format!(
            "auth_failure_delay = 0\n\
             passdb {{\n  driver = pam\n  args = dovecote-test-hang\n  username_filter = hang*\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = {p}\n}}\n\
             userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home=/var/vmail/%u allow_all_users=yes\n}}\n",
            p = passwd.display()
        ),
    );
    // Three requests stuck in PAM (three workers).
    let mut stuck = Vec::new();
    for i in 0..3 {
        let mut s = handshake(&dovecot);
        let resp = base64_encode(format!("\0hang{i}\0pw").as_bytes());
        s.write_all(format!("AUTH\t1\tPLAIN\tservice=imap\tresp={resp}\n").as_bytes()).unwrap();
        stuck.push(s);
    }
    assert!(wait_for(Duration::from_secs(5), || {
        children(dovecot.pid()).iter().filter(|p| cmdline(**p).contains("auth -w")).count() >= 3
    }));
    let t0 = Instant::now();
    let mut conn = client(&dovecot, "auth-client");
    for i in 0..100 {
        let out = plain(&mut conn, &format!("user{i}"), &format!("pw{i}"));
        assert!(matches!(out, AuthOutcome::Ok { .. }), "{out:?}");
    }
    let elapsed = t0.elapsed();
    assert!(elapsed < Duration::from_secs(2), "100 passwd-file logins took {elapsed:?}");
    // A dead backend worker is a temporary failure, never a wrong password.
    let worker = children(dovecot.pid()).into_iter().find(|p| cmdline(*p).contains("auth -w")).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker as i32), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let mut temp = 0;
    for s in stuck.iter_mut() {
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let (line, _) = read_lines(s, 1);
        if !line.is_empty() {
            assert!(line.starts_with("FAIL\t1\tuser=hang") && line.contains("\tcode=temp_fail"), "{line}");
            temp += 1;
        }
    }
    assert_eq!(temp, 1, "exactly the killed worker's request failed");
    still_serving_user(&dovecot);
    drop(dovecot);
    let _ = std::fs::remove_dir_all(dir);
}

fn still_serving_user(dovecot: &Instance) {
    let mut conn = client(dovecot, "auth-client");
    assert!(matches!(plain(&mut conn, "user5", "pw5"), AuthOutcome::Ok { .. }));
}
