//! The sql passdb/userdb against a real MariaDB (private datadir, socket and
//! port under /tmp, TLS with a test CA, started once for this binary) and
//! against SQLite, with seed procedure S11's table and queries: SHA512-CRYPT
//! hashes with and without `{SHA512-CRYPT}`, iterate, a quote-injection
//! attempt, and server stop → temporary failure → restart → recovery on the
//! same driver. Installs mariadb-server when missing (fails, never skips).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dovecote_auth::db::sql::{SqlDb, SqlSettings};
use dovecote_auth::db::{DbError, RequestVars};
use dovecote_auth::mech::PassdbResult;
use dovecote_auth::scheme::{self, GenerateParams};

const USERS: &[(&str, &str, bool)] = &[
    ("alice", "alicepw", true),  // {SHA512-CRYPT}$6$...
    ("bob", "bobpw", false),     // bare $6$..., default_pass_scheme
    ("o'neil", "quotepw", true), // a quote in the name
    ("carol", "carolpw", false),
];

fn s11_queries() -> &'static str {
    "default_pass_scheme = SHA512-CRYPT\n\
     user_query = SELECT username FROM users WHERE username='%u';\n\
     password_query = SELECT username AS user, password FROM users WHERE username='%u';\n\
     iterate_query = SELECT username FROM users;\n"
}

fn hash(plain: &str, prefixed: bool) -> String {
    let params = GenerateParams { rounds: Some(1000), ..Default::default() };
    let h = scheme::generate("SHA512-CRYPT", plain.as_bytes(), &params).unwrap();
    if prefixed {
        format!("{{SHA512-CRYPT}}{h}")
    } else {
        h
    }
}

fn insert_sql() -> String {
    let mut sql = String::from(
        "CREATE TABLE users (username VARCHAR(128) NOT NULL PRIMARY KEY, password VARCHAR(255));\n",
    );
    for (user, pw, prefixed) in USERS {
        sql.push_str(&format!(
            "INSERT INTO users VALUES ('{}', '{}');\n",
            user.replace('\'', "''"),
            hash(pw, *prefixed)
        ));
    }
    sql
}

/// The checks S11 asks for, for any driver.
fn check_s11(db: &mut SqlDb, label: &str) {
    for (user, pw, _) in USERS {
        let vars = RequestVars::new(user, "imap");
        let v = db.verify_plain(&vars, pw.as_bytes()).unwrap();
        assert_eq!(v.result, PassdbResult::Ok, "{label}: {user}");
        assert_eq!(v.entry.unwrap().user, *user);
        let v = db.verify_plain(&vars, b"wrong").unwrap();
        assert_eq!(v.result, PassdbResult::PasswordMismatch, "{label}: {user} wrong password");
        let fields = db.userdb_lookup(&vars).unwrap().unwrap();
        assert_eq!(fields.get("username"), Some(*user), "{label}");
    }
    let ghost = RequestVars::new("ghost", "imap");
    assert_eq!(db.verify_plain(&ghost, b"x").unwrap().result, PassdbResult::UserUnknown, "{label}");
    assert!(db.userdb_lookup(&ghost).unwrap().is_none(), "{label}");

    // Quote injection: without escaping each of these would match rows
    // (or break the query); escaped, they are just unknown names.
    for evil in [
        "x' OR '1'='1",
        "alice'-- ",
        "alice' #",
        "x' UNION SELECT username, password FROM users WHERE '1'='1",
    ] {
        let vars = RequestVars::new(evil, "imap");
        let v = db.verify_plain(&vars, b"alicepw").unwrap();
        assert_eq!(v.result, PassdbResult::UserUnknown, "{label}: {evil}");
        assert!(db.userdb_lookup(&vars).unwrap().is_none(), "{label}: {evil}");
    }

    let mut users = db.iterate().unwrap();
    users.sort();
    let mut expected: Vec<String> = USERS.iter().map(|u| u.0.to_string()).collect();
    expected.sort();
    assert_eq!(users, expected, "{label}: iterate_query");
}

#[test]
fn sqlite_s11() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&insert_sql()).unwrap();
    drop(conn);
    let args = dir.path().join("dovecot-sql.conf.ext");
    std::fs::write(&args, format!("driver = sqlite\nconnect = {}\n{}", path.display(), s11_queries()))
        .unwrap();
    let mut db = SqlDb::new(args.to_str().unwrap()).unwrap();
    check_s11(&mut db, "sqlite");

    // Two rows for one user: an internal failure, as Dovecot.
    let text = format!(
        "driver = sqlite\nconnect = {}\npassword_query = SELECT username AS user, password FROM users\n",
        path.display()
    );
    let mut all = SqlDb::with_settings(SqlSettings::parse(&text, Path::new("multi")).unwrap());
    let err = all.passdb_lookup(&RequestVars::new("alice", "imap")).unwrap_err();
    assert!(matches!(err, DbError::Lookup { .. }) && err.to_string().contains("multiple"), "{err}");
}

#[test]
fn mariadb_s11_tls_and_reconnect() {
    let server = MariaDb::start();
    let args = server.dir.join("dovecot-sql.conf.ext");
    std::fs::write(
        &args,
        format!(
            "# S11 with a private server\ndriver = mysql\n\
             connect = host=127.0.0.1 port={} dbname=dovecotDB user=dovecot password=dovecotPW \\\n\
             \x20   ssl_ca={}\n{}",
            server.port,
            server.dir.join("ca.pem").display(),
            s11_queries()
        ),
    )
    .unwrap();
    let mut db = SqlDb::new(args.to_str().unwrap()).unwrap();
    check_s11(&mut db, "mariadb");

    // The dovecot account is REQUIRE SSL: the lookups above prove TLS. A
    // connection with a CA that did not sign the server fails.
    let other_ca = server.dir.join("other-ca.pem");
    let bad = format!(
        "driver = mysql\nconnect = host=127.0.0.1 port={} dbname=dovecotDB user=dovecot password=dovecotPW ssl_ca={}\n{}",
        server.port,
        other_ca.display(),
        s11_queries()
    );
    let mut untrusted = SqlDb::with_settings(SqlSettings::parse(&bad, Path::new("bad")).unwrap());
    let err = untrusted.verify_plain(&RequestVars::new("alice", "imap"), b"alicepw").unwrap_err();
    assert!(err.is_temporary(), "{err}");

    // Server gone: temporary failure, not "unknown user" or "mismatch".
    let alice = RequestVars::new("alice", "imap");
    let mut server = server;
    server.stop();
    let err = db.verify_plain(&alice, b"alicepw").unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(!db.connected());
    let err = db.iterate().unwrap_err();
    assert!(err.is_temporary(), "{err}");
    // Back again: the same driver reconnects on the next request.
    server.run();
    assert_eq!(db.verify_plain(&alice, b"alicepw").unwrap().result, PassdbResult::Ok);
    assert_eq!(db.iterate().unwrap().len(), USERS.len());
}

// ---------------------------------------------------------------------------

/// A private mariadbd.
struct MariaDb {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl MariaDb {
    fn start() -> Self {
        ensure_installed(&["mariadbd", "mariadb-install-db", "mariadb"], "mariadb-server mariadb-client");
        let tmp = tempfile::Builder::new().prefix("dovecote-mariadb-").tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        make_certs(&dir);
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&out.stderr));
        let mut db = MariaDb { dir, _tmp: tmp, port: free_port(), child: None };
        db.run();
        let sql = format!(
            "CREATE DATABASE dovecotDB;\n\
             CREATE USER 'dovecot'@'127.0.0.1' IDENTIFIED BY 'dovecotPW' REQUIRE SSL;\n\
             GRANT SELECT ON dovecotDB.* TO 'dovecot'@'127.0.0.1';\n\
             USE dovecotDB;\n{}",
            insert_sql()
        );
        let mut client = Command::new("mariadb")
            .args(["--no-defaults", "-uroot"])
            .arg(format!("--socket={}", db.dir.join("sock").display()))
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        client.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
        let out = client.wait_with_output().unwrap();
        assert!(out.status.success(), "setup SQL: {}", String::from_utf8_lossy(&out.stderr));
        db
    }

    fn run(&mut self) {
        let d = &self.dir;
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--log-error={}", d.join("error.log").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
            ])
            .arg(format!("--ssl-ca={}", d.join("ca.pem").display()))
            .arg(format!("--ssl-cert={}", d.join("server.pem").display()))
            .arg(format!("--ssl-key={}", d.join("server.key").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mariadbd did not start: {}", self.log());
            #[allow(clippy::disallowed_methods)] // a test waiting for a server, no event loop here
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: a clean shutdown that closes client connections.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Installs Debian packages when one of `bins` is missing.
fn ensure_installed(bins: &[&str], packages: &str) {
    let missing =
        |b: &&str| !["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().any(|d| Path::new(d).join(b).exists());
    if !bins.iter().any(missing) {
        return;
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {packages} >/dev/null"
        ))
        .status()
        .unwrap();
    assert!(status.success(), "could not install {packages}");
    assert!(!bins.iter().any(missing), "{packages} installed but {bins:?} still missing");
}

/// A test CA, a server certificate for 127.0.0.1/localhost signed by it,
/// and an unrelated CA.
fn make_certs(dir: &Path) {
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=dovecote-test-ca -keyout ca.key -out ca.pem 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other-ca.key -out other-ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out server.pem 2>/dev/null
chmod 644 server.key
"#;
    let status = Command::new("sh").arg("-c").arg(script).current_dir(dir).status().unwrap();
    assert!(status.success(), "openssl failed");
}
