//! The `connect =` string of `dovecot-sql.conf.ext`: for mysql,
//! space-separated `key=value` words as 2.3's driver-mysql takes them
//! (`host` may be given more than once: hosts are tried in order); for
//! sqlite, the database file path.

use std::path::PathBuf;
use std::time::Duration;

use crate::db::DbError;

/// Which server a [`super::SqlDb`] talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlConnect {
    /// `driver = mysql` (MySQL or MariaDB).
    Mysql(MysqlConnect),
    /// `driver = sqlite`: the database file.
    Sqlite(PathBuf),
}

/// A parsed mysql connect string.
#[derive(Clone, PartialEq, Eq)]
pub struct MysqlConnect {
    /// `host=` values in order; a value starting with `/` is a Unix socket.
    pub hosts: Vec<String>,
    /// `port=` (3306 when unset).
    pub port: u16,
    /// `user=`.
    pub user: Option<String>,
    /// `password=`.
    pub password: Option<String>,
    /// `dbname=`.
    pub dbname: Option<String>,
    /// `ssl_ca=`: CA file; setting any `ssl_*` file turns TLS on.
    pub ssl_ca: Option<PathBuf>,
    /// `ssl_cert=` client certificate chain.
    pub ssl_cert: Option<PathBuf>,
    /// `ssl_key=` client key.
    pub ssl_key: Option<PathBuf>,
    /// `ssl_verify_server_cert=` (default yes): check the server's host name
    /// against its certificate. The chain is always checked against `ssl_ca`.
    pub ssl_verify_server_cert: bool,
    /// `connect_timeout=` (5 s).
    pub connect_timeout: Duration,
    /// `read_timeout=` (30 s).
    pub read_timeout: Duration,
    /// `write_timeout=` (30 s).
    pub write_timeout: Duration,
}

/// Where libmysqlclient looks when `host=localhost`.
pub const DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";

impl MysqlConnect {
    /// True when the connection uses TLS.
    pub fn tls(&self) -> bool {
        self.ssl_ca.is_some() || self.ssl_cert.is_some()
    }

    /// Parses a mysql connect string.
    pub fn parse(connect: &str) -> Result<Self, DbError> {
        let bad = |reason: String| DbError::Args { driver: "sql", reason };
        let mut out = MysqlConnect {
            hosts: Vec::new(),
            port: 3306,
            user: None,
            password: None,
            dbname: None,
            ssl_ca: None,
            ssl_cert: None,
            ssl_key: None,
            ssl_verify_server_cert: true,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        };
        let secs = |name: &str, value: &str| {
            value.parse::<u64>().map(Duration::from_secs).map_err(|_| bad(format!("Invalid {name}: {value}")))
        };
        for word in connect.split([' ', '\t']).filter(|w| !w.is_empty()) {
            let Some((name, value)) = word.split_once('=') else {
                return Err(bad(format!("Missing value in connect string: {word}")));
            };
            match name {
                "host" | "hostaddr" => out.hosts.push(value.to_string()),
                "port" => {
                    out.port = value
                        .parse()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| bad(format!("Invalid port number: {value}")))?
                }
                "user" => out.user = Some(value.to_string()),
                "password" => out.password = Some(value.to_string()),
                "dbname" => out.dbname = Some(value.to_string()),
                "ssl_ca" => out.ssl_ca = Some(value.into()),
                "ssl_cert" => out.ssl_cert = Some(value.into()),
                "ssl_key" => out.ssl_key = Some(value.into()),
                "ssl_verify_server_cert" => {
                    out.ssl_verify_server_cert = match value {
                        "yes" => true,
                        "no" => false,
                        _ => return Err(bad(format!("Invalid boolean: {value}"))),
                    }
                }
                "connect_timeout" => out.connect_timeout = secs(name, value)?,
                "read_timeout" => out.read_timeout = secs(name, value)?,
                "write_timeout" => out.write_timeout = secs(name, value)?,
                // Accepted for compatibility; the pure-Rust client has no
                // option files, cipher lists or raw client flags.
                "client_flags" | "option_file" | "option_group" | "ssl_cipher" | "maxconns" => {}
                "ssl_ca_path" => {
                    return Err(bad(
                        "ssl_ca_path is not supported; put the CA certificates in one ssl_ca file".into(),
                    ))
                }
                _ => return Err(bad(format!("Unknown connect string: {name}"))),
            }
        }
        if out.ssl_cert.is_some() != out.ssl_key.is_some() {
            return Err(bad("ssl_cert and ssl_key must be set together".into()));
        }
        if out.hosts.is_empty() {
            return Err(bad("No hosts given in connect string".into()));
        }
        Ok(out)
    }
}

// Hand-written so that the password never reaches a log line.
impl std::fmt::Debug for MysqlConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlConnect")
            .field("hosts", &self.hosts)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("tls", &self.tls())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s11_connect_string() {
        let c = MysqlConnect::parse(
            "host=mariadb_srv.example.com dbname=dovecotDB user=dovecot password=dovecotPW ssl_ca=/etc/pki/tls/certs/ca.crt",
        )
        .unwrap();
        assert_eq!(c.hosts, ["mariadb_srv.example.com"]);
        assert_eq!(c.dbname.as_deref(), Some("dovecotDB"));
        assert_eq!(c.password.as_deref(), Some("dovecotPW"));
        assert!(c.tls());
        assert_eq!(c.port, 3306);
        assert!(!format!("{c:?}").contains("dovecotPW"));
    }

    #[test]
    fn options_and_errors() {
        let c = MysqlConnect::parse(
            "host=/run/m.sock host=db2 port=3307 connect_timeout=2 ssl_verify_server_cert=no",
        )
        .unwrap();
        assert_eq!(c.hosts, ["/run/m.sock", "db2"]);
        assert_eq!(c.port, 3307);
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert!(!c.ssl_verify_server_cert);
        assert!(!c.tls());
        for bad in ["dbname=x", "host=a bogus", "host=a frob=1", "host=a port=x", "host=a ssl_cert=/c"] {
            assert!(MysqlConnect::parse(bad).is_err(), "{bad}");
        }
    }
}
