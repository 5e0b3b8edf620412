//! The auth service's SQL and LDAP drivers under a real master (issue 4
//! acceptance): `doveadm user '*'` listing an SQLite table through the sql
//! userdb's `iterate_query` (S11), with quote injection refused end to end,
//! and an LDAP server that never answers holding one request in a worker
//! while 100 passwd-file logins go through.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use dovecote_auth::protocol::client_conn::{AuthClientConnection, AuthOutcome};
use dovecote_auth::protocol::Fields;
use dovecote_auth::scheme::{self, base64_encode, GenerateParams};

/// Every service binary, built once for all test files (common::bin_dir).
fn build_auth() {
    bin_dir();
}

fn start(name: &str, body: &str) -> Instance {
    build_auth();
    let dovecot = Instance::start(name, body);
    for socket in ["auth-client", "auth-userdb", "auth-worker"] {
        let path = dovecot.base_dir.join(socket);
        assert!(wait_for(Duration::from_secs(5), || path.exists()), "{} missing", path.display());
    }
    dovecot
}

fn doveadm_out(dovecot: &Instance, args: &[&str]) -> (i32, String, String) {
    let out = dovecot.doveadm(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn plain(conn: &mut AuthClientConnection, user: &str, password: &str) -> AuthOutcome {
    conn.plain(user, password, Fields::new().with("service", "imap").with("rip", "192.0.2.7")).unwrap()
}

fn sha512_crypt(password: &str) -> String {
    let params = GenerateParams { rounds: Some(1000), ..Default::default() };
    scheme::generate("SHA512-CRYPT", password.as_bytes(), &params).unwrap()
}

/// S11's users: hashes with and without the `{SHA512-CRYPT}` prefix
/// (`default_pass_scheme = SHA512-CRYPT`), and a name with a quote.
const SQL_USERS: &[(&str, &str, bool)] = &[
    ("alice@example.com", "alicepw", true),
    ("bob@example.com", "bobpw", false),
    ("o'neil@example.com", "quotepw", true),
    ("carol@example.com", "carolpw", false),
];

#[test]
fn sqlite_iterate_query_lists_users_through_doveadm() {
    require_root();
    let dir = test_dir("auth-sqlite-data");
    let db = dir.join("users.sqlite");
    // Create S11's table with an independent client (Python's sqlite3).
    let mut script = String::from(
        "import sqlite3, sys\n\
         c = sqlite3.connect(sys.argv[1])\n\
         c.execute('CREATE TABLE users (username VARCHAR(128) NOT NULL PRIMARY KEY, password VARCHAR(255) NOT NULL)')\n",
    );
    for (user, pw, prefixed) in SQL_USERS {
        let hash = sha512_crypt(pw);
        let hash = if *prefixed { format!("{{SHA512-CRYPT}}{hash}") } else { hash };
        script.push_str(&format!("c.execute('INSERT INTO users VALUES (?, ?)', ({user:?}, {hash:?}))\n"));
    }
    script.push_str("c.commit()\nc.close()\n");
    let out = Command::new("python3").arg("-c").arg(&script).arg(&db).output().expect("run python3");
    assert!(out.status.success(), "creating the sqlite db: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(
        dir.join("dovecot-sql.conf.ext"),
        format!(
            "driver = sqlite\nconnect = {}\ndefault_pass_scheme = SHA512-CRYPT\n\
             password_query = SELECT username AS user, password FROM users WHERE username = '%u'\n\
             user_query = SELECT '/var/vmail/%d/%n' AS home, 'vmail' AS uid, 'vmail' AS gid FROM users WHERE username = '%u'\n\
             iterate_query = SELECT username AS user FROM users\n",
            db.display()
        ),
    )
    .unwrap();
    let args = dir.join("dovecot-sql.conf.ext");
    let dovecot = start(
        "auth-sqlite",
        &format!(
            "auth_failure_delay = 0\n\
             # Let quotes and spaces reach the SQL driver (its escaping is\n\
             # what is tested; Dovecot's default chars would refuse them).\n\
             auth_username_chars =\n\
             passdb {{\n  driver = sql\n  args = {a}\n}}\nuserdb {{\n  driver = sql\n  args = {a}\n}}\n",
            a = args.display()
        ),
    );

    // `doveadm user '*'`: exactly the table's users, via iterate_query.
    let (code, out, err) = doveadm_out(&dovecot, &["user", "*"]);
    assert_eq!(code, 0, "{err}; log:\n{}", dovecot.log_text());
    // In the database's order (SQLite walks the primary key index).
    let mut listed: Vec<&str> = out.lines().collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = SQL_USERS.iter().map(|u| u.0).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected, "{out}");
    assert!(out.ends_with('\n'));
    let (code, out, err) = doveadm_out(&dovecot, &["user", "b*"]);
    assert_eq!((code, out.as_str()), (0, "bob@example.com\n"), "{err}");

    // Password checks through the sql passdb (both hash forms).
    for (user, pw, _) in SQL_USERS {
        let (code, out, err) = doveadm_out(&dovecot, &["auth", "test", user, pw]);
        assert_eq!(
            (code, out.as_str()),
            (0, format!("passdb: {user} auth succeeded\nextra fields:\n  user={user}\n").as_str()),
            "{err}"
        );
    }
    let (code, _, _) = doveadm_out(&dovecot, &["auth", "test", "alice@example.com", "wrong"]);
    assert_eq!(code, 77);
    // The sql userdb's user_query.
    let (code, out, err) = doveadm_out(&dovecot, &["user", "-f", "home", "o'neil@example.com"]);
    assert_eq!((code, out.as_str()), (0, "/var/vmail/example.com/o'neil\n"), "{err}");

    // A quote in the username cannot change the query: unknown user.
    for evil in [
        "x' OR '1'='1",
        "alice@example.com'-- ",
        "x' UNION SELECT username, password FROM users WHERE '1'='1",
    ] {
        let (code, out, err) = doveadm_out(&dovecot, &["auth", "test", evil, "alicepw"]);
        assert_eq!(code, 77, "{evil}: {out}{err}");
        assert!(!out.contains("auth succeeded"), "{evil}: {out}");
        let (code, out, err) = doveadm_out(&dovecot, &["user", evil]);
        assert_eq!(code, 67, "{evil}: {out}{err}");
    }
    // The service kept working after those.
    let mut conn =
        AuthClientConnection::connect(&dovecot.base_dir.join("auth-client"), std::process::id()).unwrap();
    conn.set_timeout(Some(Duration::from_secs(20))).unwrap();
    assert!(matches!(plain(&mut conn, "bob@example.com", "bobpw"), AuthOutcome::Ok { .. }));
    assert!(!dovecot.log_text().contains("alicepw"), "password in the log");
    drop(dovecot);
    let _ = std::fs::remove_dir_all(dir);
}

/// A TCP server that accepts LDAP connections and reads, but never answers.
struct SilentLdap {
    port: u16,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<std::net::TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentLdap {
    fn start() -> SilentLdap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (s, c) = (stop.clone(), conns.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(true).unwrap();
                        c.lock().unwrap().push(stream);
                    }
                    Err(_) => {
                        // Drain (and discard) whatever the clients sent.
                        let mut buf = [0u8; 4096];
                        for stream in c.lock().unwrap().iter_mut() {
                            let _ = stream.read(&mut buf);
                        }
                        wait_for(Duration::from_millis(20), || false);
                    }
                }
            }
        });
        SilentLdap { port, stop, conns, thread: Some(thread) }
    }

    fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Stops listening and drops every connection (the server went away).
    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        for stream in self.conns.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for SilentLdap {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn read_line_from(s: &mut UnixStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn hanging_ldap_does_not_stall_passwd_file_logins() {
    require_root();
    let dir = test_dir("auth-ldap-hang-data");
    let passwd = dir.join("passwd");
    let mut text = String::new();
    for i in 0..100 {
        text.push_str(&format!("user{i}:{{PLAIN}}pw{i}::::::\n"));
    }
    std::fs::write(&passwd, text).unwrap();
    let mut ldap = SilentLdap::start();
    let ldap_args = dir.join("dovecot-ldap.conf.ext");
    std::fs::write(
        &ldap_args,
        format!(
            "uris = ldap://127.0.0.1:{}\ndn = cn=admin,dc=example,dc=com\ndnpass = secret\n\
             base = ou=People,dc=example,dc=com\n\
             pass_filter = (&(objectClass=posixAccount)(uid=%u))\n",
            ldap.port
        ),
    )
    .unwrap();
    // passwd-file first: its users return OK there; anyone else falls
    // through (result_failure = continue) to the LDAP passdb.
    let dovecot = start(
        "auth-ldap-hang",
        &format!(
            "auth_failure_delay = 0\n\
             passdb {{\n  driver = passwd-file\n  args = {p}\n}}\n\
             passdb {{\n  driver = ldap\n  args = {l}\n}}\n\
             userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home=/var/vmail/%u allow_all_users=yes\n}}\n",
            p = passwd.display(),
            l = ldap_args.display()
        ),
    );

    // One request for a user only LDAP could know: it hangs in a worker.
    let mut stuck = UnixStream::connect(dovecot.base_dir.join("auth-client")).unwrap();
    stuck.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stuck.write_all(b"VERSION\t1\t2\nCPID\t4243\n").unwrap();
    loop {
        let line = read_line_from(&mut stuck);
        assert!(!line.is_empty(), "handshake cut short; log:\n{}", dovecot.log_text());
        if line == "DONE\n" {
            break;
        }
    }
    let resp = base64_encode(b"\0ldapuser\0secret");
    stuck.write_all(format!("AUTH\t1\tPLAIN\tservice=imap\tresp={resp}\n").as_bytes()).unwrap();
    assert!(wait_for(Duration::from_secs(5), || ldap.connections() >= 1), "the LDAP passdb never connected");

    let t0 = Instant::now();
    let mut conn =
        AuthClientConnection::connect(&dovecot.base_dir.join("auth-client"), std::process::id()).unwrap();
    conn.set_timeout(Some(Duration::from_secs(20))).unwrap();
    for i in 0..100 {
        let out = plain(&mut conn, &format!("user{i}"), &format!("pw{i}"));
        assert!(
            matches!(&out, AuthOutcome::Ok { fields, .. } if fields.get("user") == Some(format!("user{i}").as_str())),
            "{out:?}"
        );
    }
    let elapsed = t0.elapsed();
    assert!(elapsed < Duration::from_secs(2), "100 passwd-file logins took {elapsed:?}");

    // The LDAP request is still pending: nothing answered it.
    stuck.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert_eq!(read_line_from(&mut stuck), "", "the hanging LDAP request was answered");
    // The server goes away: a temporary failure, never a wrong password.
    ldap.shutdown();
    stuck.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let line = read_line_from(&mut stuck);
    assert!(line.starts_with("FAIL\t1\t") && line.contains("\tcode=temp_fail"), "{line:?}");
    // And passwd-file users still log in.
    assert!(matches!(plain(&mut conn, "user7", "pw7"), AuthOutcome::Ok { .. }));
    drop(dovecot);
    let _ = std::fs::remove_dir_all(dir);
}
