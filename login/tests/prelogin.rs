//! Whole-process tests of imap-login/pop3-login under the real master
//! (`target/*/dovecot`), as root: greeting, CAPABILITY, STARTTLS with
//! openssl and Python's imaplib/poplib, implicit TLS, LOGINDISABLED from a
//! non-secured address, TLS 1.2 (EMS) and 1.3, ssl_min_protocol, the login
//! process' privileges, and bad input. The auth service and the post-login
//! processes do not exist yet, so this is the pre-auth half.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace's test-certificate helper (tests/tests/common/certs.rs).
#[path = "../../tests/tests/common/certs.rs"]
mod certs;

fn bin_dir() -> PathBuf {
    let me = PathBuf::from(env!("CARGO_BIN_EXE_imap-login"));
    let dir = me.parent().unwrap().to_path_buf();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-p", "dovecote-master", "--bins"]);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    assert!(cmd.status().unwrap().success(), "building the master failed");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Instance {
    dir: PathBuf,
    master: Child,
    imap: u16,
    imaps: u16,
    pop3: u16,
    pop3s: u16,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.master.id() as i32),
            nix::sys::signal::SIGTERM,
        );
        let _ = self.master.wait();
    }
}

// A test thread has no event loop to block; waiting is the point here.
#[allow(clippy::disallowed_methods)]
fn start(name: &str, extra: &str) -> Instance {
    assert!(nix::unistd::geteuid().is_root(), "these tests run as root");
    let bins = bin_dir();
    let dir = PathBuf::from(format!("/tmp/dovecote-login-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    certs::make_certs(&dir);
    let (imap, imaps, pop3, pop3s) = (free_port(), free_port(), free_port(), free_port());
    let conf = format!(
        "base_dir = {d}/run\nlog_path = {d}/dovecot.log\nlisten = 127.0.0.1\nprotocols = imap pop3\n\
         ssl = yes\nssl_cert = <{d}/cert.pem\nssl_key = <{d}/key.pem\n{extra}\n\
         service imap-login {{\n inet_listener imap {{\n port = {imap}\n }}\n inet_listener imaps {{\n port = {imaps}\n }}\n}}\n\
         service pop3-login {{\n inet_listener pop3 {{\n port = {pop3}\n }}\n inet_listener pop3s {{\n port = {pop3s}\n }}\n}}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("dovecot.conf"), conf).unwrap();
    let master = Command::new(bins.join("dovecot"))
        .arg("-F")
        .arg("-c")
        .arg(dir.join("dovecot.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let instance = Instance { dir, master, imap, imaps, pop3, pop3s };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", pop3s)).is_err() {
        assert!(Instant::now() < deadline, "master did not listen; log:\n{}", log(&instance));
        std::thread::sleep(Duration::from_millis(50));
    }
    instance
}

fn log(i: &Instance) -> String {
    std::fs::read_to_string(i.dir.join("dovecot.log")).unwrap_or_default()
        + &std::fs::read_to_string(i.dir.join("stderr")).unwrap_or_default()
}

/// Connects (optionally from `source`), sends each chunk, and returns all
/// that came back until the server closes or stays quiet for 500 ms.
fn talk(port: u16, source: Option<&str>, chunks: &[&[u8]]) -> String {
    let stream = match source {
        None => TcpStream::connect(("127.0.0.1", port)).unwrap(),
        Some(src) => {
            let socket = nix::sys::socket::socket(
                nix::sys::socket::AddressFamily::Inet,
                nix::sys::socket::SockType::Stream,
                nix::sys::socket::SockFlag::empty(),
                None,
            )
            .unwrap();
            let from: SocketAddr = format!("{src}:0").parse().unwrap();
            let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            nix::sys::socket::bind(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                &nix::sys::socket::SockaddrStorage::from(from),
            )
            .unwrap();
            nix::sys::socket::connect(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                &nix::sys::socket::SockaddrStorage::from(to),
            )
            .unwrap();
            TcpStream::from(socket)
        }
    };
    let mut stream = stream;
    stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut out = Vec::new();
    let read = |s: &mut TcpStream, out: &mut Vec<u8>| {
        let mut buf = [0u8; 65536];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => return true,
            }
        }
    };
    if !read(&mut stream, &mut out) {
        return String::from_utf8_lossy(&out).into_owned();
    }
    for chunk in chunks {
        if stream.write_all(chunk).is_err() || !read(&mut stream, &mut out) {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `openssl s_client`, keeping stdin open 1.5 s so replies arrive.
#[allow(clippy::disallowed_methods)]
fn openssl(args: &[&str], input: &str) -> String {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn python(script: &str) -> String {
    let out = Command::new("python3").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn plaintext_greeting_capability_and_logindisabled() {
    let i = start("plain", "");
    let local = talk(i.imap, None, &[b"a CAPABILITY\r\n", b"b LOGOUT\r\n"]);
    assert_eq!(
        local,
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n\
         * CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN\r\n\
         a OK Pre-login capabilities listed, post-login capabilities have more.\r\n\
         * BYE Logging out\r\nb OK Logout completed.\r\n"
    );
    // 127.0.0.2 → 127.0.0.1 is neither TLS nor same-IP nor trusted.
    let remote = talk(i.imap, Some("127.0.0.2"), &[b"a LOGIN alice secret\r\n"]);
    assert_eq!(
        remote,
        "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS LOGINDISABLED] Dovecot ready.\r\n\
         * BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, but your client did it anyway. If anyone was listening, the password was exposed.\r\n\
         a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"
    );
    let pop3 = talk(i.pop3, Some("127.0.0.2"), &[b"CAPA\r\n", b"QUIT\r\n"]);
    assert_eq!(
        pop3,
        "+OK Dovecot ready.\r\n+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nSASL\r\n.\r\n+OK Logging out\r\n"
    );
    // After STARTTLS from the same untrusted address, LOGINDISABLED is gone
    // and LOGIN goes to auth (absent here: a temporary failure).
    let caps = python(&format!(
        "import socket, ssl\n\
         s = socket.create_connection(('127.0.0.1', {port}), source_address=('127.0.0.2', 0))\n\
         f = s.makefile('rb')\n\
         f.readline(); s.sendall(b'a STARTTLS\\r\\n'); print(f.readline())\n\
         ctx = ssl.create_default_context(cafile='{ca}')\n\
         t = ctx.wrap_socket(s, server_hostname='localhost'); g = t.makefile('rb')\n\
         t.sendall(b'b CAPABILITY\\r\\n'); print(g.readline()); print(g.readline())\n\
         t.sendall(b'c LOGIN alice secret\\r\\n'); print(g.readline())\n",
        port = i.imap,
        ca = i.dir.join("ca.pem").display()
    ));
    assert!(caps.contains("a OK Begin TLS negotiation now."), "{caps}");
    assert!(
        caps.contains(
            "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN\\r\\n"
        ),
        "{caps}"
    );
    assert!(caps.contains("c NO [UNAVAILABLE]"), "{caps}");
}

#[test]
fn starttls_and_implicit_tls_with_real_clients() {
    let i = start("tls", "");
    let ca = i.dir.join("ca.pem");
    let ca = ca.to_str().unwrap();
    let pop3s = openssl(&["-connect", &format!("127.0.0.1:{}", i.pop3s), "-CAfile", ca], "");
    assert!(pop3s.contains("+OK Dovecot ready."), "{pop3s}");
    assert!(pop3s.contains("Verify return code: 0 (ok)"), "{pop3s}");
    let imap = openssl(
        &["-starttls", "imap", "-connect", &format!("127.0.0.1:{}", i.imap), "-CAfile", ca],
        "a CAPABILITY\r\n",
    );
    assert!(imap.contains("a OK Pre-login capabilities listed"), "{imap}");
    let pop3 = openssl(
        &["-starttls", "pop3", "-connect", &format!("127.0.0.1:{}", i.pop3), "-CAfile", ca],
        "CAPA\r\n",
    );
    assert!(pop3.contains("SASL PLAIN"), "{pop3}");
    let tls12 =
        openssl(&["-tls1_2", "-connect", &format!("127.0.0.1:{}", i.imaps), "-CAfile", ca], "a LOGOUT\r\n");
    assert!(tls12.contains("Protocol  : TLSv1.2") || tls12.contains("TLSv1.2"), "{tls12}");
    assert!(tls12.contains("Extended master secret: yes"), "{tls12}");
    assert!(tls12.contains("* BYE Logging out"), "{tls12}");
    let tls13 =
        openssl(&["-tls1_3", "-connect", &format!("127.0.0.1:{}", i.imaps), "-CAfile", ca], "a LOGOUT\r\n");
    assert!(tls13.contains("Protocol  : TLSv1.3"), "{tls13}");
    // Implicit TLS: no STARTTLS, plaintext mechanisms offered.
    assert!(tls13.contains("LITERAL+ AUTH=PLAIN] Dovecot ready."), "{tls13}");
    let py = python(&format!(
        "import imaplib, poplib, ssl\n\
         ctx = ssl.create_default_context(cafile='{ca}')\n\
         c = imaplib.IMAP4('127.0.0.1', {imap}); print(c.starttls(ssl_context=ctx)); print(c.capabilities); c.logout()\n\
         c = imaplib.IMAP4_SSL('localhost', {imaps}, ssl_context=ctx); print(c.welcome); c.logout()\n\
         p = poplib.POP3('127.0.0.1', {pop3}); print(p.stls(context=ctx)); print(p.capa()); p.quit()\n",
        imap = i.imap,
        imaps = i.imaps,
        pop3 = i.pop3
    ));
    assert!(py.starts_with("('OK', "), "{py}");
    assert!(py.contains("'AUTH=PLAIN'") && !py.contains("'STARTTLS'"), "{py}");
    assert!(py.contains("b'* OK [CAPABILITY IMAP4rev1"), "{py}");
    assert!(py.contains("b'+OK Begin TLS negotiation now.'"), "{py}");
}

#[test]
fn min_protocol_tls13_refuses_tls12() {
    let i = start("tls13", "ssl_min_protocol = TLSv1.3");
    let ca = i.dir.join("ca.pem");
    let out = openssl(
        &["-tls1_2", "-connect", &format!("127.0.0.1:{}", i.imaps), "-CAfile", ca.to_str().unwrap()],
        "",
    );
    assert!(!out.contains("Dovecot ready"), "{out}");
    assert!(out.contains("alert") || out.contains("error"), "{out}");
    let ok = openssl(
        &["-tls1_3", "-connect", &format!("127.0.0.1:{}", i.imaps), "-CAfile", ca.to_str().unwrap()],
        "",
    );
    assert!(ok.contains("Dovecot ready"), "{ok}");
}

#[test]
fn login_process_is_dovenull_in_chroot_without_caps() {
    let i = start("privs", "");
    let mut stream = TcpStream::connect(("127.0.0.1", i.imap)).unwrap();
    let mut buf = [0u8; 256];
    let _ = stream.read(&mut buf).unwrap();
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmd.starts_with("dovecot/imap-login") && status.contains(&format!("PPid:\t{}\n", i.master.id()))
        })
        .collect();
    assert!(!pids.is_empty(), "no imap-login child");
    let dovenull = nix::unistd::User::from_name("dovenull").unwrap().unwrap().uid.as_raw();
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status.contains(&format!("Uid:\t{dovenull}\t{dovenull}\t{dovenull}\t{dovenull}")),
            "{status}"
        );
        assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
        assert!(status.contains("CapPrm:\t0000000000000000"), "{status}");
        let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
        assert_eq!(root, i.dir.join("run/login"));
    }
}

#[test]
fn bad_input_is_answered_and_others_are_served() {
    let i = start("bad", "");
    let long = [b"a NOOP ".as_slice(), &vec![b'x'; 100 * 1024], b"\r\n"].concat();
    let out = talk(i.imap, None, &[&long]);
    assert!(out.ends_with("* BYE Input buffer full, aborting\r\n"), "{out}");
    let garbage = talk(i.imap, None, &[b"\x00\xff\xfe garbage\r\n", b"a NOOP\r\n"]);
    assert!(
        garbage.ends_with("* BAD Error in IMAP command received by server.\r\na OK NOOP completed.\r\n"),
        "{garbage}"
    );
    let hello = talk(i.imap, None, &[b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n\r\n"]);
    assert!(hello.ends_with("* BYE Too many invalid IMAP commands.\r\n"), "{hello}");
    let plain_on_tls = talk(i.imaps, None, &[b"a LOGIN alice secret\r\n"]);
    assert!(!plain_on_tls.contains("Dovecot ready"), "{plain_on_tls}");
    let pop = talk(i.pop3, None, &[&[b"USER ".as_slice(), &vec![b'x'; 100 * 1024], b"\r\n"].concat()]);
    assert!(pop.ends_with("-ERR Input buffer full, aborting\r\n"), "{pop}");
    let again = talk(i.imap, None, &[b"a NOOP\r\n"]);
    assert!(again.ends_with("a OK NOOP completed.\r\n"), "{again}\n{}", log(&i));
}
