//! TLS through the login process after the handoff (issue 5): STARTTLS,
//! LOGIN and commands that flow through the login process's TLS proxy in
//! high-security (service_count = 1) and high-performance (service_count
//! = 0, client_limit) modes; curl's IMAPS and POP3S clients; and clients
//! that stall mid-handshake or mid-line while others are served.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Every service binary, built once for all test files (common::bin_dir).
fn build_services() {
    bin_dir();
}

struct Setup {
    dovecot: Instance,
    dir: std::path::PathBuf,
    imap: u16,
    imaps: u16,
    pop3s: u16,
}

fn start(name: &str, login_service: &str) -> Setup {
    start_with(name, login_service, "")
}

fn start_with(name: &str, login_service: &str, extra: &str) -> Setup {
    build_services();
    let dir = std::path::PathBuf::from(format!("/tmp/dovecote-test-{name}-{}", std::process::id()));
    let certs = dir.with_extension("certs");
    let _ = std::fs::remove_dir_all(&certs);
    std::fs::create_dir_all(&certs).unwrap();
    certs::make_certs(&certs);
    let (imap, imaps, pop3s) = (free_port(), free_port(), free_port());
    let extra = extra.replace("CERTS", &certs.display().to_string());
    let body = format!(
        "protocols = imap pop3\nssl = yes\nssl_cert = <{c}/cert.pem\nssl_key = <{c}/key.pem\n{extra}\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home={d}/home/%n\n}}\n\
         mail_location = maildir:~/Maildir\n\
         service imap-login {{\n inet_listener imap {{\n port = {imap}\n }}\n inet_listener imaps {{\n port = {imaps}\n }}\n{login_service}}}\n\
         service pop3-login {{\n inet_listener pop3 {{\n port = 0\n }}\n inet_listener pop3s {{\n port = {pop3s}\n }}\n{login_service}}}\n",
        d = dir.display(),
        c = certs.display()
    );
    let dovecot = Instance::start(name, &body);
    vmail_homes_and_passwd(&dir, "alice:{PLAIN}Secr3t::::::\n");
    dovecot.wait_sockets(&["auth-master", "login/login", "login/imap", "login/pop3"]);
    Setup { dovecot, dir: certs, imap, imaps, pop3s }
}

fn python(script: &str) -> String {
    let out = Command::new("python3").arg("-c").arg(script).output().expect("python3");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Three concurrent STARTTLS sessions: login, NOOP and CAPABILITY through
/// the proxy, then LOGOUT; prints one line per step.
fn three_starttls_sessions(s: &Setup) -> String {
    python(&format!(
        "import imaplib, ssl\n\
         ctx = ssl.create_default_context(cafile='{ca}')\n\
         cs = []\n\
         for i in range(3):\n\
         \x20   c = imaplib.IMAP4('127.0.0.1', {port}); c.starttls(ssl_context=ctx)\n\
         \x20   print('login', c.login('alice', 'Secr3t')[0]); cs.append(c)\n\
         for c in cs:\n\
         \x20   print('noop', c.noop()[0])\n\
         \x20   typ, data = c.capability(); print('capability', typ, b'IMAP4rev1' in data[0])\n\
         for c in cs:\n\
         \x20   print('logout', c.logout()[0])\n",
        ca = s.dir.join("ca.pem").display(),
        port = s.imap
    ))
}

fn login_processes(dovecot: &mut Instance) -> Vec<u32> {
    dovecot
        .children()
        .into_iter()
        .filter(|p| cmdline(*p).split(['\0', ' ']).next() == Some("dovecot/imap-login"))
        .collect()
}

const SESSIONS_OK: &str = "login OK\nlogin OK\nlogin OK\nnoop OK\ncapability OK True\nnoop OK\ncapability OK True\nnoop OK\ncapability OK True\nlogout BYE\nlogout BYE\nlogout BYE\n";

#[test]
fn starttls_sessions_through_the_proxy_with_service_count_1() {
    let mut s = start("login-tls-sc1", " service_count = 1\n");
    let out = three_starttls_sessions(&s);
    assert_eq!(out, SESSIONS_OK, "{}", s.dovecot.log_text());
    assert_eq!(s.dovecot.log_text().matches("imap-login: Info: Login: user=<alice>").count(), 3);
    assert!(s.dovecot.log_text().contains("TLS, session=<"), "{}", s.dovecot.log_text());
    // The proxies end with their sessions: no imap-login left busy.
    let dovecot = &mut s.dovecot;
    assert!(
        wait_for(Duration::from_secs(5), || login_processes(dovecot).len() <= 1),
        "{:?}",
        login_processes(dovecot)
    );
}

#[test]
fn starttls_sessions_through_the_proxy_with_service_count_0() {
    let mut s = start("login-tls-sc0", " service_count = 0\n client_limit = 10\n process_min_avail = 1\n");
    let out = three_starttls_sessions(&s);
    assert_eq!(out, SESSIONS_OK, "{}", s.dovecot.log_text());
    // One process proxied all three sessions.
    let logins: Vec<String> = s
        .dovecot
        .log_text()
        .lines()
        .filter(|l| l.contains("imap-login: Info: Login: user=<alice>"))
        .map(str::to_owned)
        .collect();
    assert_eq!(logins.len(), 3);
    assert_eq!(login_processes(&mut s.dovecot).len(), 1, "{}", s.dovecot.log_text());
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(["-v", "-s", "--max-time", "20"]).args(args).output().expect("curl");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn curl_imaps_and_pop3s_log_in() {
    let s = start("login-tls-curl", "");
    let ca = s.dir.join("ca.pem").display().to_string();
    let imaps = curl(&["--cacert", &ca, &format!("imaps://127.0.0.1:{}/", s.imaps), "-u", "alice:Secr3t"]);
    assert!(imaps.contains("SSL connection using TLSv1.3"), "{imaps}");
    assert!(imaps.contains("* OK [CAPABILITY IMAP4rev1"), "{imaps}");
    assert!(
        imaps.contains("A001 OK [CAPABILITY IMAP4rev1") || imaps.contains("A002 OK [CAPABILITY IMAP4rev1"),
        "{imaps}"
    );
    assert!(imaps.contains("Logged in"), "{imaps}");
    let pop3s = curl(&["--cacert", &ca, &format!("pop3s://127.0.0.1:{}/", s.pop3s), "-u", "alice:Secr3t"]);
    assert!(pop3s.contains("SSL connection using TLSv1.3"), "{pop3s}");
    assert!(pop3s.contains("< +OK Dovecot ready."), "{pop3s}");
    assert!(pop3s.contains("< +OK Logged in."), "{pop3s}");
    // The login line is written when the pop3 process answers, which
    // may be after curl is done.
    assert!(
        s.dovecot.wait_log("pop3-login: Info: Login: user=<alice>, method=PLAIN", Duration::from_secs(5)),
        "{}",
        s.dovecot.log_text()
    );
}

#[test]
fn stalled_clients_do_not_hold_up_others() {
    let s = start("login-tls-stall", " service_count = 0\n client_limit = 50\n process_min_avail = 1\n");
    // Half a ClientHello on the TLS port, half a command on the plain port.
    let mut stalled_tls = TcpStream::connect(("127.0.0.1", s.imaps)).unwrap();
    stalled_tls.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).unwrap();
    let mut stalled_line = connect(s.imap);
    let greeting = read_line(&mut stalled_line);
    assert!(greeting.starts_with("* OK"), "{greeting}");
    stalled_line.write_all(b"a LOGIN ali").unwrap();
    // Ten clients stalled mid-handshake at once.
    let more: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut t = TcpStream::connect(("127.0.0.1", s.imaps)).unwrap();
            t.write_all(&[0x16, 0x03]).unwrap();
            t
        })
        .collect();
    // Meanwhile a real client logs in over implicit TLS, promptly.
    let started = Instant::now();
    let out = python(&format!(
        "import imaplib, ssl\n\
         c = imaplib.IMAP4_SSL('127.0.0.1', {port}, ssl_context=ssl.create_default_context(cafile='{ca}'))\n\
         print(c.login('alice', 'Secr3t')[0], c.noop()[0], c.logout()[0])\n",
        port = s.imaps,
        ca = s.dir.join("ca.pem").display()
    ));
    assert_eq!(out.trim(), "OK OK BYE", "{}", s.dovecot.log_text());
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // The stalled ones are still connected (pre-login timeout is 180 s)
    // and the line-staller can still finish its command.
    stalled_line.write_all(b"ce Secr3t\r\n").unwrap();
    let mut line = read_line(&mut stalled_line);
    while line.starts_with('*') {
        line = read_line(&mut stalled_line);
    }
    assert!(line.starts_with("a OK"), "{line}");
    drop((stalled_tls, more));
}

/// Dovecot's pre-login timeout: three minutes from the connection,
/// whatever the client sends meanwhile — a silent client, one trickling
/// NOOPs and one stalled mid-TLS-handshake are all cut off at 180 s.
#[test]
// A test thread has no event loop to block: the pauses are the point.
#[allow(clippy::disallowed_methods)]
fn unauthenticated_clients_are_disconnected_after_three_minutes() {
    let s = start("login-timeout", " service_count = 0\n client_limit = 50\n process_min_avail = 1\n");
    let connected = Instant::now();
    let mut silent = connect(s.imap);
    assert!(read_line(&mut silent).starts_with("* OK"));
    let mut trickle = connect(s.imap);
    assert!(read_line(&mut trickle).starts_with("* OK"));
    let mut handshake = TcpStream::connect(("127.0.0.1", s.imaps)).unwrap();
    handshake.write_all(&[0x16, 0x03, 0x01]).unwrap();
    // A NOOP every 20 s keeps a client busy but not logged in.
    let mut n = 0;
    while connected.elapsed() < Duration::from_secs(150) {
        std::thread::sleep(Duration::from_secs(20));
        n += 1;
        trickle.write_all(format!("n{n} NOOP\r\n").as_bytes()).unwrap();
        assert_eq!(read_line(&mut trickle).trim_end(), format!("n{n} OK NOOP completed."));
    }
    for (name, client) in [("silent", &mut silent), ("trickle", &mut trickle)] {
        client.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        let bye = read_line(client);
        assert_eq!(bye.trim_end(), "* BYE Disconnected for inactivity.", "{name}");
        let at = connected.elapsed();
        assert!(at >= Duration::from_secs(175) && at < Duration::from_secs(200), "{name}: {at:?}");
        assert_eq!(read_line(client), "", "{name}: closed after the BYE");
    }
    handshake.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut handshake, &mut rest);
    assert!(
        connected.elapsed() < Duration::from_secs(200),
        "TLS staller closed at {:?}",
        connected.elapsed()
    );
    let inactive = |log: &str| log.matches("Disconnected: Inactivity (no auth attempts in 1").count();
    wait_for(Duration::from_secs(10), || inactive(&s.dovecot.log_text()) == 3);
    let log = s.dovecot.log_text();
    assert_eq!(
        inactive(&log),
        3,
        "{}",
        log.lines().filter(|l| l.contains("login")).collect::<Vec<_>>().join("\n")
    );
}

/// A client certificate for `cn`, signed by the test CA (v3, clientAuth:
/// webpki refuses v1 certificates).
fn make_client_cert(dir: &Path, cn: &str) {
    let subj = format!("/O=Example/CN={cn}");
    certs::openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.req",
            "-subj",
            &subj,
        ],
    );
    std::fs::write(dir.join("client.cnf"), "extendedKeyUsage=clientAuth\n").unwrap();
    certs::sign(dir, "client.req", "client.pem", "client.cnf");
}

#[test]
fn client_certificate_required_and_username_from_its_common_name() {
    let s = start_with(
        "login-tls-clientcert",
        "",
        "ssl_verify_client_cert = yes\nssl_ca = <CERTS/ca.pem\n\
         auth_ssl_require_client_cert = yes\nauth_ssl_username_from_cert = yes\nauth_verbose = yes\n",
    );
    make_client_cert(&s.dir, "alice");
    let script = |with_cert: bool, user: &str| {
        format!(
            "import imaplib, ssl\n\
             ctx = ssl.create_default_context(cafile='{ca}')\n\
             if {with_cert}: ctx.load_cert_chain('{d}/client.pem', '{d}/client.key')\n\
             c = imaplib.IMAP4_SSL('127.0.0.1', {port}, ssl_context=ctx)\n\
             try:\n\
             \x20   print(c.login('{user}', 'Secr3t')[0]); print(c.noop()[0]); c.logout()\n\
             except imaplib.IMAP4.error as e:\n\
             \x20   print('NO', e)\n",
            ca = s.dir.join("ca.pem").display(),
            d = s.dir.display(),
            port = s.imaps,
            with_cert = if with_cert { "True" } else { "False" },
        )
    };
    // With the certificate: the name in it is the user, whatever LOGIN said.
    let out = python(&script(true, "somebody"));
    assert_eq!(out.trim(), "OK\nOK", "{out}\n{}", s.dovecot.log_text());
    assert!(
        s.dovecot.wait_log("imap-login: Info: Login: user=<alice>, method=PLAIN", Duration::from_secs(5)),
        "{}",
        s.dovecot.log_text()
    );
    // Without one: refused by auth with Dovecot's reason.
    let out = python(&script(false, "alice"));
    assert!(out.starts_with("NO "), "{out}");
    assert!(
        s.dovecot.wait_log("Client didn't present valid SSL certificate", Duration::from_secs(5)),
        "{}",
        s.dovecot.log_text()
    );
}

/// COMPRESS=DEFLATE through imaps: the login process proxies TLS to the
/// imap process, which compresses inside it (tests/imap/compress.py).
#[test]
fn compress_inside_tls() {
    let s =
        start_with("tls-compress", "", "protocol imap {\n mail_plugins = $mail_plugins zlib imap_zlib\n}\n");
    let script = format!("{}/tests/imap/compress.py", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3").arg(script).arg(s.imaps.to_string()).arg("--tls").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.dovecot.log_text()
    );
}
