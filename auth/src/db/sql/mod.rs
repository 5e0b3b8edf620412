//! The `sql` passdb and userdb (`args = /etc/dovecot/dovecot-sql.conf.ext`,
//! seed procedure S11) with `driver = mysql` (MySQL/MariaDB, TLS with
//! `ssl_ca`) or `driver = sqlite`; `pgsql` is refused at setup.
//!
//! What it promises, as Dovecot 2.3's passdb-sql/userdb-sql:
//! * every `%` value in a query is escaped for the driver before expansion
//!   ([`mysql_escape`], [`sqlite_escape`]), so a user name cannot change a
//!   query's structure;
//! * result columns become fields by name (`password`, `password_noscheme`,
//!   `user`, `nopassword`, `userdb_*` for prefetch, any extra field; in the
//!   userdb `uid`, `gid`, `home`, `mail`...); NULL columns are skipped;
//! * a password query must return a `password` (or `password_noscheme`)
//!   column and at most one row; zero rows is "unknown user";
//! * a failed query is an internal failure ([`DbError::Lookup`]); a failed
//!   connect or a lost connection is [`DbError::Unavailable`]: the
//!   connection is dropped and the next request connects again (a query on
//!   a connection found dead is retried once on a fresh one).
//!
//! Calls block (connect timeout 5 s, read/write 30 s by default): they run
//! in auth-worker processes.

mod backend;
pub mod connect;

use std::path::Path;

use self::backend::{Backend, QueryError, SqlRows};
use self::connect::{MysqlConnect, SqlConnect};
use super::args_file::{self, Setting};
use super::{verify_password, DbError, ExtraFields, PassdbEntry, PlainVerify, RequestVars};
use crate::mech::PassdbResult;

pub use self::backend::SqlRows as Rows;

const DRIVER: &str = "sql";

/// The settings of a `dovecot-sql.conf.ext` file (2.3 names and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSettings {
    /// Parsed `driver` + `connect`.
    pub connect: SqlConnect,
    /// `password_query`.
    pub password_query: String,
    /// `user_query`.
    pub user_query: String,
    /// `update_query` (kept for completeness; credentials updates are not
    /// implemented).
    pub update_query: String,
    /// `iterate_query`.
    pub iterate_query: String,
    /// `default_pass_scheme` (`MD5`).
    pub default_pass_scheme: String,
    /// `userdb_warning_disable`.
    pub userdb_warning_disable: bool,
}

impl SqlSettings {
    /// Reads the args file.
    pub fn read(path: &Path) -> Result<Self, DbError> {
        Self::from_settings(&args_file::read(path, DRIVER)?)
    }

    /// Parses args-file text (for tests and inline use); `origin` names it in
    /// errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, DbError> {
        Self::from_settings(&args_file::parse(text, origin, DRIVER)?)
    }

    fn from_settings(settings: &[Setting]) -> Result<Self, DbError> {
        let mut driver = None;
        let mut connect = None;
        let mut out = SqlSettings {
            connect: SqlConnect::Sqlite(Default::default()),
            password_query:
                "SELECT username, domain, password FROM users WHERE username = '%n' AND domain = '%d'".into(),
            user_query: "SELECT home, uid, gid FROM users WHERE username = '%n' AND domain = '%d'".into(),
            update_query: "UPDATE users SET password = '%w' WHERE username = '%n' AND domain = '%d'".into(),
            iterate_query: "SELECT username, domain FROM users".into(),
            default_pass_scheme: "MD5".into(),
            userdb_warning_disable: false,
        };
        for s in settings {
            let value = s.value.clone();
            match s.key.as_str() {
                "driver" => driver = Some((value, s)),
                "connect" => connect = Some(value),
                "password_query" => out.password_query = value,
                "user_query" => out.user_query = value,
                "update_query" => out.update_query = value,
                "iterate_query" => out.iterate_query = value,
                "default_pass_scheme" => out.default_pass_scheme = value,
                "userdb_warning_disable" => out.userdb_warning_disable = args_file::parse_bool(s, DRIVER)?,
                other => return Err(s.error(DRIVER, format!("Unknown setting: {other}"))),
            }
        }
        let bad = |reason: &str| DbError::Args { driver: DRIVER, reason: reason.into() };
        let Some((driver, origin)) = driver else { return Err(bad("driver not set in configuration file")) };
        let Some(connect) = connect else { return Err(bad("connect string not set in configuration file")) };
        out.connect = match driver.as_str() {
            "mysql" => SqlConnect::Mysql(MysqlConnect::parse(&connect)?),
            "sqlite" => SqlConnect::Sqlite(connect.trim().into()),
            "pgsql" => {
                return Err(origin.error(
                    DRIVER,
                    "driver = pgsql is not supported by dovecote (use mysql or sqlite)".into(),
                ))
            }
            other => return Err(origin.error(DRIVER, format!("Unknown database driver '{other}'"))),
        };
        Ok(out)
    }

    /// The escape function for this driver.
    pub fn escape(&self) -> fn(&str) -> String {
        match self.connect {
            SqlConnect::Mysql(_) => mysql_escape,
            SqlConnect::Sqlite(_) => sqlite_escape,
        }
    }
}

/// A sql passdb/userdb: settings plus a connection opened on first use.
#[derive(Debug)]
pub struct SqlDb {
    settings: SqlSettings,
    conn: Option<Backend>,
}

impl SqlDb {
    /// Reads `args` (the args-file path). Does not connect yet.
    pub fn new(args: &str) -> Result<Self, DbError> {
        let path = args.trim();
        if path.is_empty() {
            return Err(DbError::Args { driver: DRIVER, reason: "Configuration file path not given".into() });
        }
        Ok(Self::with_settings(SqlSettings::read(Path::new(path))?))
    }

    /// A driver for already parsed settings.
    pub fn with_settings(settings: SqlSettings) -> Self {
        SqlDb { settings, conn: None }
    }

    /// The settings.
    pub fn settings(&self) -> &SqlSettings {
        &self.settings
    }

    /// True while a connection is open.
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Connects now (a worker does this at start so that a dead server shows
    /// in the log early). A later request reconnects if this fails.
    pub fn connect(&mut self) -> Result<(), DbError> {
        self.connection().map(|_| ())
    }

    /// passdb lookup: runs `password_query`. `Ok(None)` = no row.
    pub fn passdb_lookup(&mut self, vars: &RequestVars) -> Result<Option<PassdbEntry>, DbError> {
        let query = self.expand(&self.settings.password_query.clone(), vars, "password_query")?;
        let rows = self.run(&query, "Password query")?;
        let Some(first) = rows.rows.first() else { return Ok(None) };
        if !rows.columns.iter().any(|c| c == "password" || c == "password_noscheme") {
            return Err(lookup_error("Password query must return a field named 'password'"));
        }
        if rows.rows.len() > 1 {
            return Err(lookup_error("Password query returned multiple matches"));
        }
        let mut entry = PassdbEntry {
            user: vars.user.clone(),
            default_scheme: self.settings.default_pass_scheme.to_ascii_uppercase(),
            ..Default::default()
        };
        for (name, value) in rows.columns.iter().zip(first) {
            if let (false, Some(value)) = (name.is_empty(), value) {
                entry.set_field(name, value);
            }
        }
        Ok(Some(entry))
    }

    /// Looks the user up and checks `password` against the stored one. A
    /// row whose password is NULL without `nopassword` is a mismatch, as in
    /// Dovecot.
    pub fn verify_plain(&mut self, vars: &RequestVars, password: &[u8]) -> Result<PlainVerify, DbError> {
        let Some(entry) = self.passdb_lookup(vars)? else {
            return Ok(PlainVerify { result: PassdbResult::UserUnknown, entry: None });
        };
        let result = if entry.password.is_none() && !entry.fields.has("nopassword") {
            PassdbResult::PasswordMismatch
        } else {
            verify_password(&entry, password)
        };
        Ok(PlainVerify { result, entry: Some(entry) })
    }

    /// userdb lookup: runs `user_query`; the first row's non-NULL columns
    /// are the fields. `Ok(None)` = no row.
    pub fn userdb_lookup(&mut self, vars: &RequestVars) -> Result<Option<ExtraFields>, DbError> {
        let query = self.expand(&self.settings.user_query.clone(), vars, "user_query")?;
        let rows = self.run(&query, "User query")?;
        let Some(first) = rows.rows.first() else { return Ok(None) };
        let mut fields = ExtraFields::default();
        for (name, value) in rows.columns.iter().zip(first) {
            if let (false, Some(value)) = (name.is_empty(), value) {
                fields.set(name, value);
            }
        }
        Ok(Some(fields))
    }

    /// All users via `iterate_query`: the `user` column, or `username` plus
    /// `domain` (`user@domain`) when there is no `user` column.
    pub fn iterate(&mut self) -> Result<Vec<String>, DbError> {
        let query =
            self.expand(&self.settings.iterate_query.clone(), &RequestVars::default(), "iterate_query")?;
        let rows = self.run(&query, "Iterate query")?;
        let column = |name: &str| rows.columns.iter().position(|c| c == name);
        let (user_col, domain_col) = match (column("user"), column("username")) {
            (Some(i), _) => (i, None),
            (None, Some(i)) => (i, column("domain")),
            (None, None) => return Err(lookup_error("Iterate query didn't return 'user' field")),
        };
        let mut users = Vec::with_capacity(rows.rows.len());
        for row in &rows.rows {
            let Some(Some(user)) = row.get(user_col) else {
                return Err(lookup_error("Iterate query returned NULL user"));
            };
            match domain_col.and_then(|i| row.get(i)).and_then(Option::as_ref) {
                Some(domain) => users.push(format!("{user}@{domain}")),
                None => users.push(user.clone()),
            }
        }
        Ok(users)
    }

    /// Runs an arbitrary query (already escaped) and returns its rows.
    pub fn query(&mut self, sql: &str) -> Result<Rows, DbError> {
        self.run(sql, "Query")
    }

    fn expand(&self, template: &str, vars: &RequestVars, what: &str) -> Result<String, DbError> {
        vars.expand_escaped(template, what, self.settings.escape())
    }

    fn connection(&mut self) -> Result<&mut Backend, DbError> {
        if self.conn.is_none() {
            let conn = Backend::connect(&self.settings.connect)
                .map_err(|reason| DbError::Unavailable { driver: DRIVER, reason })?;
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| lookup_error("no connection"))
    }

    /// Runs `sql`; a connection that turns out dead is replaced once.
    fn run(&mut self, sql: &str, what: &str) -> Result<SqlRows, DbError> {
        let was_open = self.conn.is_some();
        match self.connection()?.query(sql) {
            Ok(rows) => Ok(rows),
            Err(QueryError::Query(e)) => Err(lookup_error(&format!("{what} failed: {e}"))),
            Err(QueryError::Connection(first)) => {
                self.conn = None;
                if !was_open {
                    return Err(DbError::Unavailable {
                        driver: DRIVER,
                        reason: format!("{what} failed: {first}"),
                    });
                }
                match self.connection()?.query(sql) {
                    Ok(rows) => Ok(rows),
                    Err(QueryError::Query(e)) => Err(lookup_error(&format!("{what} failed: {e}"))),
                    Err(QueryError::Connection(e)) => {
                        self.conn = None;
                        Err(DbError::Unavailable { driver: DRIVER, reason: format!("{what} failed: {e}") })
                    }
                }
            }
        }
    }
}

fn lookup_error(reason: &str) -> DbError {
    DbError::Lookup { driver: DRIVER, reason: reason.to_string() }
}

/// MySQL string escaping (`mysql_real_escape_string` for ASCII-compatible
/// character sets): NUL, LF, CR, `\`, `'`, `"` and Ctrl-Z get a backslash.
pub fn mysql_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out
}

/// SQLite string escaping: `'` doubled. A NUL ends the value (C strings
/// end there in Dovecot too).
pub fn sqlite_escape(value: &str) -> String {
    let value = value.split('\0').next().unwrap_or("");
    value.replace('\'', "''")
}

#[cfg(test)]
mod tests {
    use super::*;

    const S11: &str = "driver = mysql\n\
connect = host=mariadb_srv.example.com dbname=dovecotDB user=dovecot password=dovecotPW ssl_ca=/etc/pki/tls/certs/ca.crt\n\
default_pass_scheme = SHA512-CRYPT\n\
user_query = SELECT username FROM users WHERE username='%u';\n\
password_query = SELECT username AS user, password FROM users WHERE username='%u';\n\
iterate_query = SELECT username FROM users;\n";

    #[test]
    fn s11_args_file() {
        let s = SqlSettings::parse(S11, Path::new("dovecot-sql.conf.ext")).unwrap();
        assert!(
            matches!(&s.connect, SqlConnect::Mysql(c) if c.tls() && c.hosts == ["mariadb_srv.example.com"])
        );
        assert_eq!(s.default_pass_scheme, "SHA512-CRYPT");
        assert_eq!(s.iterate_query, "SELECT username FROM users;");
        let vars = RequestVars::new("o'brien' OR '1'='1", "imap");
        let q = vars.expand_escaped(&s.password_query, "q", s.escape()).unwrap();
        assert_eq!(
            q,
            "SELECT username AS user, password FROM users WHERE username='o\\'brien\\' OR \\'1\\'=\\'1';"
        );
    }

    #[test]
    fn drivers_and_errors() {
        let p = Path::new("f");
        let s = SqlSettings::parse("driver = sqlite\nconnect = /var/lib/users.db\n", p).unwrap();
        assert_eq!(s.connect, SqlConnect::Sqlite("/var/lib/users.db".into()));
        assert_eq!(s.default_pass_scheme, "MD5");
        let err = SqlSettings::parse("driver = pgsql\nconnect = host=x\n", p).unwrap_err().to_string();
        assert!(err.contains("not supported"), "{err}");
        assert!(SqlSettings::parse("connect = x\n", p).is_err());
        assert!(SqlSettings::parse("driver = sqlite\n", p).is_err());
        assert!(SqlSettings::parse("driver = sqlite\nconnect = x\nbogus = 1\n", p).is_err());
        assert!(SqlSettings::parse("driver = oracle\nconnect = x\n", p).is_err());
    }

    #[test]
    fn escaping() {
        assert_eq!(mysql_escape("a'b\"c\\d\0e\nf\rg\x1ah"), "a\\'b\\\"c\\\\d\\0e\\nf\\rg\\Zh");
        assert_eq!(sqlite_escape("o'neil''"), "o''neil''''");
        assert_eq!(sqlite_escape("a\0' OR 1"), "a");
    }

    #[test]
    fn sqlite_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("users.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (username TEXT, domain TEXT, password TEXT, home TEXT, uid INTEGER, gid INTEGER, quota TEXT);
             INSERT INTO users VALUES ('tim', 'example.com', '{PLAIN}pw', '/home/tim', 1000, NULL, NULL);
             INSERT INTO users VALUES ('nopw', 'example.com', NULL, '/home/nopw', 1001, 1001, '1G');
             INSERT INTO users VALUES ('dup', 'example.com', '{PLAIN}a', '/a', 1, 1, NULL);
             INSERT INTO users VALUES ('dup', 'example.com', '{PLAIN}b', '/b', 2, 2, NULL);",
        )
        .unwrap();
        drop(conn);
        let text = format!(
            "driver = sqlite\nconnect = {}\ndefault_pass_scheme = PLAIN\n\
             password_query = SELECT username AS user, password, quota AS userdb_quota_rule, home AS userdb_home \\\n\
             \x20 FROM users WHERE username = '%n' AND domain = '%d'\n",
            db.display()
        );
        let mut sql = SqlDb::with_settings(SqlSettings::parse(&text, Path::new("f")).unwrap());
        let tim = RequestVars::new("tim@example.com", "imap");
        let found = sql.verify_plain(&tim, b"pw").unwrap();
        assert_eq!(found.result, PassdbResult::Ok);
        let entry = found.entry.unwrap();
        assert_eq!(entry.user, "tim");
        assert_eq!(entry.userdb_fields.get("home"), Some("/home/tim"));
        assert!(!entry.userdb_fields.has("quota_rule"), "NULL columns are skipped");
        assert_eq!(sql.verify_plain(&tim, b"no").unwrap().result, PassdbResult::PasswordMismatch);
        let nopw = RequestVars::new("nopw@example.com", "imap");
        assert_eq!(sql.verify_plain(&nopw, b"").unwrap().result, PassdbResult::PasswordMismatch);
        let ghost = RequestVars::new("ghost@example.com", "imap");
        assert_eq!(sql.verify_plain(&ghost, b"x").unwrap().result, PassdbResult::UserUnknown);
        let dup = RequestVars::new("dup@example.com", "imap");
        assert!(matches!(sql.passdb_lookup(&dup), Err(DbError::Lookup { .. })));
        // Default user_query / iterate_query (username + domain columns).
        let user = sql.userdb_lookup(&tim).unwrap().unwrap();
        assert_eq!(user.0, [("home".to_string(), "/home/tim".to_string()), ("uid".into(), "1000".into())]);
        assert_eq!(
            sql.iterate().unwrap(),
            ["tim@example.com", "nopw@example.com", "dup@example.com", "dup@example.com"]
        );
        // A broken query is an internal failure, not a connection problem.
        assert!(matches!(sql.query("SELEC nothing"), Err(DbError::Lookup { .. })));
        assert!(sql.connected());
    }

    #[test]
    fn missing_sqlite_file_is_unavailable() {
        let mut sql = SqlDb::with_settings(
            SqlSettings::parse("driver = sqlite\nconnect = /nonexistent/x.db\n", Path::new("f")).unwrap(),
        );
        let err = sql.userdb_lookup(&RequestVars::new("a", "imap")).unwrap_err();
        assert!(err.is_temporary(), "{err}");
    }
}
