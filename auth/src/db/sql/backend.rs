//! One open connection to the SQL server (mysql crate over TCP/Unix socket
//! with rustls, or an SQLite file via rusqlite) and text queries on it. A
//! query's failure is classified as a lost/unusable connection (the caller
//! drops it and reports a temporary failure) or as a failed query (the
//! connection stays).

use std::time::Duration;

use mysql::prelude::Queryable;

use super::connect::{MysqlConnect, SqlConnect, DEFAULT_SOCKET};

/// A result: column names and rows of nullable text values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqlRows {
    /// Column names (`AS` aliases) in order.
    pub columns: Vec<String>,
    /// Rows; `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Why a query did not return rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// The connection is gone or unusable (server down, timeout, TLS
    /// failure): drop it.
    Connection(String),
    /// The server rejected the query (syntax, missing table...).
    Query(String),
}

/// An open connection.
pub enum Backend {
    /// MySQL/MariaDB.
    Mysql(Box<mysql::Conn>),
    /// SQLite.
    Sqlite(rusqlite::Connection),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Mysql(_) => "Backend::Mysql",
            Backend::Sqlite(_) => "Backend::Sqlite",
        })
    }
}

impl Backend {
    /// Connects; the error text is for the log.
    pub fn connect(target: &SqlConnect) -> Result<Self, String> {
        match target {
            SqlConnect::Mysql(c) => connect_mysql(c).map(|conn| Backend::Mysql(Box::new(conn))),
            SqlConnect::Sqlite(path) => {
                // Read-write (falling back to read-only when the file is not
                // writable), never create: a missing file is an error.
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | rusqlite::OpenFlags::SQLITE_OPEN_URI;
                let conn = rusqlite::Connection::open_with_flags(path, flags)
                    .map_err(|e| format!("Can't open sqlite database {}: {e}", path.display()))?;
                conn.busy_timeout(Duration::from_secs(1)).map_err(|e| e.to_string())?;
                Ok(Backend::Sqlite(conn))
            }
        }
    }

    /// Runs a text query and collects every row.
    pub fn query(&mut self, sql: &str) -> Result<SqlRows, QueryError> {
        match self {
            Backend::Mysql(conn) => query_mysql(conn, sql),
            Backend::Sqlite(conn) => query_sqlite(conn, sql),
        }
    }
}

fn connect_mysql(c: &MysqlConnect) -> Result<mysql::Conn, String> {
    // The mysql crate's rustls code asks for the process-default provider;
    // make sure there is one even if another crate enabled a second backend.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut errors = Vec::new();
    for host in &c.hosts {
        let mut opts = mysql::OptsBuilder::new()
            .user(c.user.clone())
            .pass(c.password.clone())
            .db_name(c.dbname.clone())
            .tcp_connect_timeout(Some(c.connect_timeout))
            .read_timeout(Some(c.read_timeout))
            .write_timeout(Some(c.write_timeout))
            // libmysqlclient never switches a TCP connection to a socket.
            .prefer_socket(false);
        let socket = if host.starts_with('/') {
            Some(host.clone())
        } else if host == "localhost" && std::path::Path::new(DEFAULT_SOCKET).exists() {
            Some(DEFAULT_SOCKET.to_string())
        } else {
            None
        };
        opts = match socket {
            Some(path) => opts.socket(Some(path)),
            None => opts.ip_or_hostname(Some(host.clone())).tcp_port(c.port),
        };
        if c.tls() {
            let mut ssl = mysql::SslOpts::default()
                .with_root_cert_path(c.ssl_ca.clone())
                .with_danger_skip_domain_validation(!c.ssl_verify_server_cert);
            if let (Some(cert), Some(key)) = (&c.ssl_cert, &c.ssl_key) {
                ssl = ssl.with_client_identity(Some(mysql::ClientIdentity::new(cert.clone(), key.clone())));
            }
            opts = opts.ssl_opts(Some(ssl));
        }
        match mysql::Conn::new(opts) {
            Ok(conn) => return Ok(conn),
            Err(e) => errors.push(format!("{host}: {e}")),
        }
    }
    Err(format!("Connect failed to database: {}", errors.join("; ")))
}

/// Server error codes that mean the connection or server is unusable
/// (as opposed to a bad query): too many connections, shutdown in progress,
/// lock wait timeout, read-only failover, gone away, lost.
const MYSQL_CONNECTION_ERRORS: &[u16] =
    &[1040, 1053, 1077, 1078, 1079, 1152, 1205, 1290, 2002, 2003, 2006, 2013];

fn query_mysql(conn: &mut mysql::Conn, sql: &str) -> Result<SqlRows, QueryError> {
    let classify = |e: mysql::Error| match &e {
        mysql::Error::MySqlError(me) if !MYSQL_CONNECTION_ERRORS.contains(&me.code) => {
            QueryError::Query(e.to_string())
        }
        _ => QueryError::Connection(e.to_string()),
    };
    let mut result = conn.query_iter(sql).map_err(classify)?;
    let mut out = SqlRows::default();
    if let Some(set) = result.iter() {
        out.columns = set.columns().as_ref().iter().map(|c| c.name_str().into_owned()).collect();
        for row in set {
            let row = row.map_err(classify)?;
            out.rows.push((0..row.len()).map(|i| row.as_ref(i).and_then(mysql_text)).collect());
        }
    }
    // Drain further result sets (stored procedures) so the connection stays
    // usable.
    while let Some(set) = result.iter() {
        for row in set {
            row.map_err(classify)?;
        }
    }
    Ok(out)
}

fn mysql_text(value: &mysql::Value) -> Option<String> {
    use mysql::Value;
    match value {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(d) => Some(d.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

fn query_sqlite(conn: &rusqlite::Connection, sql: &str) -> Result<SqlRows, QueryError> {
    use rusqlite::ffi::ErrorCode;
    let classify = |e: rusqlite::Error| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::CannotOpen
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::DatabaseCorrupt
                    | ErrorCode::NotADatabase
            ) =>
        {
            QueryError::Connection(e.to_string())
        }
        _ => QueryError::Query(e.to_string()),
    };
    let mut stmt = conn.prepare(sql).map_err(classify)?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_string).collect();
    let width = columns.len();
    let mut rows = stmt.query([]).map_err(classify)?;
    let mut out = SqlRows { columns, rows: Vec::new() };
    while let Some(row) = rows.next().map_err(classify)? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            use rusqlite::types::ValueRef;
            values.push(match row.get_ref(i).map_err(classify)? {
                ValueRef::Null => None,
                ValueRef::Integer(n) => Some(n.to_string()),
                ValueRef::Real(r) => Some(r.to_string()),
                ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
            });
        }
        out.rows.push(values);
    }
    Ok(out)
}
