//! Our protocol clients against Debian's real Dovecot 2.3: the test starts
//! its own instance (temp base_dir, passwd-file passdb/userdb, no protocols,
//! `-F`), talks to its auth-client, auth-login and auth-master sockets, and
//! stops it again. This proves the byte format both ways.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dovecote_auth::mech::client::LoginClient;
use dovecote_auth::protocol::client_conn::{AuthClientConnection, AuthOutcome};
use dovecote_auth::protocol::master_conn::{AuthMasterConnection, Lookup};
use dovecote_auth::protocol::Fields;
use hmac::{Hmac, Mac};

/// A Dovecot instance that is stopped (SIGTERM, then waited for) on drop.
struct Dovecot {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dovecot {
    fn start() -> Self {
        common::ensure_tools();
        let dir = tempfile::Builder::new().prefix("dovecote-auth-compat").tempdir_in("/tmp").unwrap();
        let root = dir.path();
        // The auth process runs as `dovecot` and must read the passwd file.
        set_mode(root, 0o755);
        let passwd = root.join("passwd");
        std::fs::write(
            &passwd,
            "tim:{PLAIN}tanstaaf:1000:1000::/home/tim::userdb_mail=maildir:~/Maildir\n\
             bob:{SHA512-CRYPT}$6$5TKHNOYjVYLEMLeC$GehFobwj3c2YH3sQOooCCcZq2fqx9cQkULi.wn2Ezhy/EFWpeUqcDrhi/b.lndH6YCDpANAvrk3yHHkRnS1kT0:1001:1001::/home/bob::\n\
             tab:{PLAIN}x:1002:1002::/home/tab::userdb_note=a\\tb\n",
        )
        .unwrap();
        set_mode(&passwd, 0o644);
        let conf = root.join("dovecot.conf");
        let name = root.file_name().unwrap().to_string_lossy().to_string();
        std::fs::write(
            &conf,
            format!(
                "base_dir = {r}/run\nstate_dir = {r}/state\ninstance_name = {name}\nprotocols =\nssl = no\n\
                 log_path = {r}/dovecot.log\nauth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256\n\
                 auth_failure_delay = 0\n\
                 passdb {{\n  driver = passwd-file\n  args = {p}\n}}\n\
                 userdb {{\n  driver = passwd-file\n  args = {p}\n}}\n",
                r = root.display(),
                p = passwd.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(root.join("state")).unwrap();
        let child = Command::new("/usr/sbin/dovecot")
            .args(["-F", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .spawn()
            .expect("start /usr/sbin/dovecot (needs root)");
        let dovecot = Dovecot { child, dir };
        for socket in ["auth-client", "auth-login", "auth-master", "auth-userdb"] {
            dovecot.wait_for(&dovecot.socket(socket));
        }
        dovecot
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.dir.path().join("run").join(name)
    }

    #[allow(clippy::disallowed_methods)] // a test waiting for a process, no event loop here
    fn wait_for(&self, path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(path).is_err() {
            assert!(Instant::now() < deadline, "{} did not appear; log:\n{}", path.display(), self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        // SAFETY: signalling our own child process by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn imap() -> Fields {
    Fields::new()
        .with("service", "imap")
        .with("lip", "127.0.0.1")
        .with("rip", "127.0.0.2")
        .with_flag("secured")
}

#[test]
fn protocols_against_real_dovecot() {
    let dovecot = Dovecot::start();
    let pid = std::process::id();

    // Handshake.
    let mut client = AuthClientConnection::connect(&dovecot.socket("auth-client"), pid).unwrap();
    let hs = client.handshake().clone();
    assert_eq!(hs.version, (1, 2));
    assert!(hs.spid > 0);
    assert_eq!(hs.cookie.len(), 32);
    let mechs: Vec<&str> = hs.mechs.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(mechs, ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"]);
    assert_eq!(hs.mechs[2].1, ["dictionary", "active"]);

    // AUTH PLAIN ok / fail / unknown user.
    match client.plain("tim", "tanstaaf", imap()).unwrap() {
        AuthOutcome::Ok { fields, .. } => assert_eq!(fields.get("user"), Some("tim")),
        other => panic!("{other:?}\n{}", dovecot.log()),
    }
    match client.plain("bob", "secret", imap()).unwrap() {
        AuthOutcome::Ok { fields, .. } => assert_eq!(fields.get("user"), Some("bob")),
        other => panic!("{other:?}"),
    }
    match client.plain("tim", "wrong", imap()).unwrap() {
        AuthOutcome::Fail { fields, .. } => assert_eq!(fields.get("user"), Some("tim")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(client.plain("nobody", "x", imap()).unwrap(), AuthOutcome::Fail { .. }));

    // LOGIN with our client state machine.
    let mut login = LoginClient::new("tim", "tanstaaf");
    let outcome = client.authenticate("LOGIN", imap(), None, |c| login.respond(c)).unwrap();
    assert!(matches!(outcome, AuthOutcome::Ok { .. }), "{outcome:?}");

    // CRAM-MD5 with an independent HMAC.
    let outcome = client
        .authenticate("CRAM-MD5", imap(), None, |challenge| {
            let mut mac = Hmac::<md5::Md5>::new_from_slice(b"tanstaaf").unwrap();
            mac.update(challenge);
            let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
            Some(format!("tim {hex}").into_bytes())
        })
        .unwrap();
    assert!(matches!(outcome, AuthOutcome::Ok { .. }), "{outcome:?}");

    // Empty initial response from a 1.2 client is an empty response: FAIL.
    let outcome = client.authenticate("PLAIN", imap(), Some(b""), |_| None).unwrap();
    assert!(matches!(outcome, AuthOutcome::Fail { .. }), "{outcome:?}");

    // auth-master: USER, NOTFOUND, PASS, LIST; tab-escaped values.
    let mut master = AuthMasterConnection::connect(&dovecot.socket("auth-master")).unwrap();
    assert_eq!(master.spid(), hs.spid);
    match master.user("tim", Fields::new().with("service", "imap")).unwrap() {
        Lookup::Found { user, fields } => {
            assert_eq!(user, "tim");
            assert_eq!(fields.get("uid"), Some("1000"));
            assert_eq!(fields.get("home"), Some("/home/tim"));
            assert_eq!(fields.get("mail"), Some("maildir:~/Maildir"));
        }
        other => panic!("{other:?}"),
    }
    match master.user("tab", Fields::new().with("service", "imap")).unwrap() {
        Lookup::Found { fields, .. } => assert_eq!(fields.get("note"), Some("a\\tb")),
        other => panic!("{other:?}"),
    }
    assert_eq!(master.user("nobody", Fields::new().with("service", "imap")).unwrap(), Lookup::NotFound);
    match master.pass("tim", Fields::new().with("service", "imap")).unwrap() {
        Lookup::Found { user, .. } => assert_eq!(user, "tim"),
        other => panic!("{other:?}"),
    }
    assert_eq!(master.list(Fields::new()).unwrap(), Ok(vec!["tim".to_string(), "bob".into(), "tab".into()]));

    // Post-login REQUEST: authenticate on a login socket, then fetch the
    // userdb reply with the connection's cookie.
    let mut login_conn = AuthClientConnection::connect(&dovecot.socket("auth-login"), pid).unwrap();
    let cookie = login_conn.handshake().cookie.clone();
    let AuthOutcome::Ok { id, .. } = login_conn.plain("tim", "tanstaaf", imap()).unwrap() else {
        panic!("login failed: {}", dovecot.log())
    };
    match master.request(pid, id, &cookie, Fields::new()).unwrap() {
        Lookup::Found { user, fields } => {
            assert_eq!(user, "tim");
            assert_eq!(fields.get("uid"), Some("1000"));
        }
        other => panic!("{other:?}\n{}", dovecot.log()),
    }
    // A second REQUEST for the same id fails: the request was consumed.
    assert!(matches!(master.request(pid, id, &cookie, Fields::new()).unwrap(), Lookup::Failed(_)));

    // auth-userdb accepts lookups too.
    let mut userdb = AuthMasterConnection::connect(&dovecot.socket("auth-userdb")).unwrap();
    assert!(matches!(
        userdb.user("bob", Fields::new().with("service", "lmtp")).unwrap(),
        Lookup::Found { .. }
    ));
}
