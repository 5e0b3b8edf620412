//! The passwd-file passdb/userdb: Dovecot's
//! `user:password:uid:gid:gecos:home:shell:extra_fields` format, with
//! `[scheme=S] [username_format=F] <path>` args. The path may contain `%`
//! variables (one file per domain); each file is re-read when its mtime or
//! size changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use super::{words, DbError, ExtraFields, PassdbEntry, RequestVars};

/// Parsed `args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdFileArgs {
    /// Default scheme for passwords without prefix (`CRYPT`).
    pub scheme: String,
    /// Template for the key looked up in the file (`%u`).
    pub username_format: String,
    /// File path template.
    pub path: String,
}

impl PasswdFileArgs {
    /// Parses `[scheme=S] [username_format=F] <path>`.
    pub fn parse(args: &str) -> Result<Self, DbError> {
        let mut out =
            PasswdFileArgs { scheme: "CRYPT".into(), username_format: "%u".into(), path: String::new() };
        let mut rest = Vec::new();
        for word in words(args) {
            if let Some(s) = word.strip_prefix("scheme=") {
                out.scheme = s.to_ascii_uppercase();
            } else if let Some(f) = word.strip_prefix("username_format=") {
                out.username_format = f.to_string();
            } else {
                rest.push(word);
            }
        }
        out.path = rest.join(" ");
        if out.path.is_empty() {
            return Err(DbError::Args { driver: "passwd-file", reason: "missing file path".into() });
        }
        Ok(out)
    }
}

/// One line of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswdUser {
    /// Password field (libpam-pwdfile `pass[NN]` converted to a prefix);
    /// `None` when the line has only a user name.
    pub password: Option<String>,
    /// uid field, if non-empty.
    pub uid: Option<String>,
    /// gid field, if non-empty.
    pub gid: Option<String>,
    /// home field, if non-empty.
    pub home: Option<String>,
    /// Extra fields as written (`key=value` or `key`), not yet expanded.
    pub extra_fields: Vec<String>,
}

/// Parses file contents. Returns the users and warnings (duplicate users,
/// as Dovecot logs them; the first entry wins).
pub fn parse(text: &str) -> (HashMap<String, PasswdUser>, Vec<String>) {
    let mut users = HashMap::new();
    let mut warnings = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with(':') || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        let name = fields[0];
        if users.contains_key(name) {
            warnings.push(format!("User {name} exists more than once"));
            continue;
        }
        users.insert(name.to_string(), parse_user(&fields[1..]));
    }
    (users, warnings)
}

fn nonempty(field: Option<&&str>) -> Option<String> {
    field.filter(|f| !f.is_empty()).map(|f| f.to_string())
}

fn parse_user(f: &[&str]) -> PasswdUser {
    let password = f.first().map(|p| pwdfile_compat(p));
    let mut user = PasswdUser {
        password,
        uid: nonempty(f.get(1)),
        gid: nonempty(f.get(2)),
        home: nonempty(f.get(4)),
        extra_fields: Vec::new(),
    };
    // f[3] gecos, f[5] shell; then extra fields.
    let rest = f.get(6..).unwrap_or(&[]);
    let extra = match rest.first() {
        // Old format: empty field, then the mail location.
        Some(&"") if rest.len() > 1 && !rest[1].is_empty() => {
            Some(format!("userdb_mail={}", rest[1..].join(":")))
        }
        Some(&"") => None,
        Some(_) => Some(rest.join(":")),
        None => None,
    };
    if let Some(extra) = extra {
        user.extra_fields = words(&extra).map(str::to_string).collect();
    }
    user
}

/// libpam-pwdfile compatibility: `hash[NN]` where 34 = PLAIN-MD5, 56 =
/// DIGEST-MD5, anything else CRYPT.
fn pwdfile_compat(pass: &str) -> String {
    let b = pass.as_bytes();
    let n = b.len();
    if n > 4 && b[0] != b'{' && b[0] != b'$' && b[n - 1] == b']' && b[n - 4] == b'[' {
        let scheme = match &pass[n - 3..n - 1] {
            "34" => "PLAIN-MD5",
            "56" => "DIGEST-MD5",
            _ => "CRYPT",
        };
        return format!("{{{scheme}}}{}", &pass[..n - 4]);
    }
    pass.to_string()
}

#[derive(Debug)]
struct LoadedFile {
    stamp: Option<(SystemTime, u64)>,
    users: HashMap<String, PasswdUser>,
    /// User names in file order (for iteration, as Dovecot lists them).
    order: Vec<String>,
}

/// The driver: caches each expanded path and re-reads it when it changes.
#[derive(Debug)]
pub struct PasswdFileDb {
    args: PasswdFileArgs,
    files: HashMap<String, LoadedFile>,
    warnings: Vec<String>,
}

impl PasswdFileDb {
    /// A driver for parsed args.
    pub fn new(args: PasswdFileArgs) -> Self {
        PasswdFileDb { args, files: HashMap::new(), warnings: Vec::new() }
    }

    /// The args.
    pub fn args(&self) -> &PasswdFileArgs {
        &self.args
    }

    /// Warnings from the last reads (duplicate users); drained.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Finds the request's user. `Ok(None)` = unknown user (also when a
    /// per-domain file does not exist, as in Dovecot).
    pub fn lookup(&mut self, vars: &RequestVars) -> Result<Option<PasswdUser>, DbError> {
        let path = dovecote_config::var_expand::expand(&self.args.path, &vars.variables(true))
            .map_err(|source| DbError::Expand { what: "passwd-file path".into(), source })?;
        let key = vars.expand(&self.args.username_format, "username_format")?;
        let Some(file) = self.sync(&path)? else { return Ok(None) };
        Ok(file.users.get(&key).cloned())
    }

    /// All user names in a file without variables (for `LIST`), in file
    /// order.
    pub fn iterate(&mut self) -> Result<Vec<String>, DbError> {
        let path = self.args.path.clone();
        let Some(file) = self.sync(&path)? else { return Ok(Vec::new()) };
        Ok(file.order.clone())
    }

    fn sync(&mut self, path: &str) -> Result<Option<&LoadedFile>, DbError> {
        let io = |source| DbError::Io { path: path.to_string(), source };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.files.remove(path);
                return Ok(None);
            }
            Err(e) => return Err(io(e)),
        };
        let stamp = Some((meta.modified().map_err(io)?, meta.len()));
        let fresh = self.files.get(path).is_some_and(|f| f.stamp == stamp);
        if !fresh {
            let text = std::fs::read_to_string(PathBuf::from(path)).map_err(io)?;
            let (users, warnings) = parse(&text);
            self.warnings.extend(warnings.into_iter().map(|w| format!("passwd-file {path}: {w}")));
            let mut order: Vec<String> = Vec::with_capacity(users.len());
            for name in text.lines().filter_map(|l| l.split(':').next()) {
                if users.contains_key(name) && !order.iter().any(|o| o == name) {
                    order.push(name.to_string());
                }
            }
            self.files.insert(path.to_string(), LoadedFile { stamp, users, order });
        }
        Ok(self.files.get(path))
    }

    /// passdb lookup: the entry with extra fields expanded and applied.
    pub fn passdb_lookup(&mut self, vars: &RequestVars) -> Result<Option<PassdbEntry>, DbError> {
        let Some(user) = self.lookup(vars)? else { return Ok(None) };
        let mut entry = PassdbEntry {
            user: vars.user.clone(),
            password: user.password.clone().filter(|p| !p.is_empty()),
            default_scheme: self.args.scheme.clone(),
            ..Default::default()
        };
        for (key, value) in expand_fields(&user.extra_fields, vars)? {
            entry.set_field(&key, &value);
        }
        Ok(Some(entry))
    }

    /// userdb lookup: uid, gid, home, then `userdb_*` extra fields (prefix
    /// removed; other extra fields are passdb-only).
    pub fn userdb_lookup(&mut self, vars: &RequestVars) -> Result<Option<ExtraFields>, DbError> {
        let Some(user) = self.lookup(vars)? else { return Ok(None) };
        let mut fields = ExtraFields::default();
        for (key, value) in [("uid", &user.uid), ("gid", &user.gid), ("home", &user.home)] {
            if let Some(v) = value {
                fields.set(key, v);
            }
        }
        for (key, value) in expand_fields(&user.extra_fields, vars)? {
            if let Some(ukey) = key.strip_prefix("userdb_") {
                fields.set(ukey, &value);
            }
        }
        Ok(Some(fields))
    }
}

/// Expands `key=value` extra fields (`key` alone has an empty value).
pub(crate) fn expand_fields(raw: &[String], vars: &RequestVars) -> Result<Vec<(String, String)>, DbError> {
    raw.iter()
        .map(|f| {
            let (key, value) = f.split_once('=').unwrap_or((f, ""));
            Ok((key.to_string(), vars.expand(value, key)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::verify_password;
    use crate::mech::PassdbResult;

    const FILE: &str = "# comment\n\
tim:{PLAIN}pw:1000:1000::/home/tim::userdb_mail=maildir:~/Maildir userdb_quota_rule=*:storage=1G allow_nets=127.0.0.0/8\n\
old:{PLAIN}pw:1001:1001:Gecos:/home/old:/bin/sh::mbox:~/mail:INBOX=/var/mail/old\n\
pam:5ebe2294ecd0e0f08eab7690d2a6ee69[34]:1002:1002::/home/pam\n\
nop::1003:1003::/h::nopassword nologin reason=closed\n\
onlyname\n\
tim:{PLAIN}dup\n\
:nobody\n";

    #[test]
    fn parses_dovecot_format() {
        let (users, warnings) = parse(FILE);
        assert_eq!(warnings, ["User tim exists more than once"]);
        let tim = &users["tim"];
        assert_eq!(tim.password.as_deref(), Some("{PLAIN}pw"));
        assert_eq!(tim.uid.as_deref(), Some("1000"));
        assert_eq!(tim.home.as_deref(), Some("/home/tim"));
        assert_eq!(
            tim.extra_fields,
            ["userdb_mail=maildir:~/Maildir", "userdb_quota_rule=*:storage=1G", "allow_nets=127.0.0.0/8"]
        );
        assert_eq!(users["old"].extra_fields, ["userdb_mail=mbox:~/mail:INBOX=/var/mail/old"]);
        assert_eq!(users["pam"].password.as_deref(), Some("{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee69"));
        assert_eq!(users["onlyname"], PasswdUser::default());
        assert_eq!(users.len(), 5);
    }

    #[test]
    fn lookups_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, FILE).unwrap();
        let args =
            PasswdFileArgs::parse(&format!("scheme=plain username_format=%n {}", path.display())).unwrap();
        assert_eq!(args.scheme, "PLAIN");
        let mut db = PasswdFileDb::new(args);
        let vars = RequestVars::new("tim@example.com", "imap");
        let entry = db.passdb_lookup(&vars).unwrap().unwrap();
        assert_eq!(verify_password(&entry, b"pw"), PassdbResult::Ok);
        assert_eq!(verify_password(&entry, b"no"), PassdbResult::PasswordMismatch);
        assert_eq!(entry.fields.get("allow_nets"), Some("127.0.0.0/8"));
        assert_eq!(entry.userdb_fields.get("mail"), Some("maildir:~/Maildir"));
        let user = db.userdb_lookup(&vars).unwrap().unwrap();
        assert_eq!(user.get("uid"), Some("1000"));
        assert_eq!(user.get("quota_rule"), Some("*:storage=1G"));
        assert!(!user.has("allow_nets"));
        let nop = db.passdb_lookup(&RequestVars::new("nop", "imap")).unwrap().unwrap();
        assert_eq!(verify_password(&nop, b"anything"), PassdbResult::Ok);
        assert!(nop.fields.has("nologin"));
        assert!(db.passdb_lookup(&RequestVars::new("ghost", "imap")).unwrap().is_none());

        // Rewritten file (different size) is re-read.
        std::fs::write(&path, "tim:{PLAIN}new:1000:1000::/home/tim\nann:{PLAIN}x:1:1::/a\n").unwrap();
        let entry = db.passdb_lookup(&vars).unwrap().unwrap();
        assert_eq!(verify_password(&entry, b"new"), PassdbResult::Ok);
        assert_eq!(db.iterate().unwrap(), ["tim", "ann"]);
    }

    #[test]
    fn per_domain_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com"), "tim:{PLAIN}pw:1:1::/h\n").unwrap();
        let args = PasswdFileArgs::parse(&format!("username_format=%n {}/%d", dir.path().display())).unwrap();
        let mut db = PasswdFileDb::new(args);
        assert!(db.lookup(&RequestVars::new("tim@example.com", "imap")).unwrap().is_some());
        assert!(db.lookup(&RequestVars::new("tim@other.org", "imap")).unwrap().is_none());
        // `/` in the domain cannot escape the directory.
        assert!(!matches!(db.lookup(&RequestVars::new("tim@../example.com", "imap")), Ok(Some(_))));
        assert!(PasswdFileArgs::parse("scheme=CRYPT").is_err());
    }
}
