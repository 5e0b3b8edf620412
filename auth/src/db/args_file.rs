//! Reader for the `args = /etc/dovecot/dovecot-{sql,ldap}.conf.ext` files in
//! the old flat `key = value` format Dovecot 2.3 reads with
//! `settings_read_nosection`: leading blanks and `#` lines skipped, a `#`
//! outside quotes ends the line, a trailing `\` joins the next line (with
//! one space), values in matching `"…"` or `'…'` are unquoted with `\`
//! escapes, `!include` / `!include_try` pull in other files (relative to the
//! including file), and `section {` … `}` blocks are skipped.
//!
//! The reader only splits; each driver decides which keys it knows.

use std::path::{Path, PathBuf};

use super::DbError;

/// One `key = value` setting, with where it came from for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    /// The key.
    pub key: String,
    /// The value, unquoted.
    pub value: String,
    /// `path:line` of the setting.
    pub origin: String,
}

/// Reads `path` (and its includes) into settings, in file order.
pub(crate) fn read(path: &Path, driver: &'static str) -> Result<Vec<Setting>, DbError> {
    let mut out = Vec::new();
    let mut stack = Vec::new();
    read_file(path, driver, false, &mut stack, &mut out)?;
    Ok(out)
}

/// Parses settings from text (`origin` names it in errors); includes are
/// resolved relative to `origin`.
pub(crate) fn parse(text: &str, origin: &Path, driver: &'static str) -> Result<Vec<Setting>, DbError> {
    let mut out = Vec::new();
    let mut stack = vec![origin.to_path_buf()];
    parse_text(text, origin, driver, &mut stack, &mut out)?;
    Ok(out)
}

/// A boolean the way Dovecot's old settings parser takes it.
pub(crate) fn parse_bool(setting: &Setting, driver: &'static str) -> Result<bool, DbError> {
    if setting.value.eq_ignore_ascii_case("yes") {
        Ok(true)
    } else if setting.value.eq_ignore_ascii_case("no") {
        Ok(false)
    } else {
        Err(setting.error(driver, format!("Invalid boolean: {}", setting.value)))
    }
}

impl Setting {
    /// An `Args` error pointing at this setting.
    pub fn error(&self, driver: &'static str, reason: String) -> DbError {
        DbError::Args { driver, reason: format!("{}: {reason}", self.origin) }
    }
}

fn read_file(
    path: &Path,
    driver: &'static str,
    ignore_missing: bool,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<Setting>,
) -> Result<(), DbError> {
    if stack.iter().any(|p| p == path) {
        return Err(DbError::Args { driver, reason: format!("Recursive include file: {}", path.display()) });
    }
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if ignore_missing && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(DbError::Args {
                driver,
                reason: format!("Can't open configuration file {}: {e}", path.display()),
            })
        }
    };
    stack.push(path.to_path_buf());
    let result = parse_text(&text, path, driver, stack, out);
    stack.pop();
    result
}

fn parse_text(
    text: &str,
    path: &Path,
    driver: &'static str,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<Setting>,
) -> Result<(), DbError> {
    let mut joined = String::new();
    let mut section_depth = 0usize;
    for (index, raw) in text.lines().enumerate() {
        let origin = format!("{} line {}", path.display(), index + 1);
        let fail = |reason: &str| DbError::Args {
            driver,
            reason: format!("Error in configuration file {origin}: {reason}"),
        };
        let line = raw.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = strip_comment(line).trim_end_matches([' ', '\t', '\r']);
        if let Some(head) = line.strip_suffix('\\') {
            joined.push_str(head.trim_end_matches([' ', '\t']));
            joined.push(' ');
            continue;
        }
        let full = if joined.is_empty() { line.to_string() } else { std::mem::take(&mut joined) + line };

        let key_end = full.find([' ', '\t', '=']).unwrap_or(full.len());
        let key = &full[..key_end];
        let rest = full[key_end..].trim_start_matches([' ', '\t']);
        if key == "!include" || key == "!include_try" {
            let target = include_path(path, rest);
            read_file(&target, driver, key == "!include_try", stack, out)?;
        } else if let Some(value) = rest.strip_prefix('=') {
            if section_depth == 0 {
                out.push(Setting {
                    key: key.to_string(),
                    value: unquote(value.trim_start_matches([' ', '\t'])),
                    origin,
                });
            }
        } else if key == "}" && rest.is_empty() {
            if section_depth == 0 {
                return Err(fail("Unexpected '}'"));
            }
            section_depth -= 1;
        } else if rest.ends_with('{') {
            section_depth += 1;
        } else {
            return Err(fail("Expecting '='"));
        }
    }
    Ok(())
}

/// Cuts a `#` comment that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= bytes.len() {
                    return line;
                }
            }
            b'#' => return &line[..i],
            _ => {}
        }
        i += 1;
    }
    line
}

/// `"value"` / `'value'` with `\x` → `x`; anything else unchanged.
fn unquote(value: &str) -> String {
    let quoted = value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')));
    if !quoted {
        return value.to_string();
    }
    let inner = &value[1..value.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn include_path(current: &Path, target: &str) -> PathBuf {
    let target = Path::new(target);
    if target.is_absolute() {
        return target.to_path_buf();
    }
    match current.parent() {
        Some(dir) => dir.join(target),
        None => target.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(settings: &[Setting]) -> Vec<(&str, &str)> {
        settings.iter().map(|s| (s.key.as_str(), s.value.as_str())).collect()
    }

    #[test]
    fn dovecot_syntax() {
        let text = "# comment\n\
                    \x20  driver = mysql\n\
                    connect = host=db dbname=mail \\\n\
                    \x20   user=dovecot password=secret\n\
                    password_query = SELECT a \\\n\
                    \x20 FROM t WHERE u = '%u' # trailing comment\n\
                    quoted = \"a # b \\\" c\"\n\
                    empty =\n\
                    section {\n  inner = x\n}\n\
                    default_pass_scheme=SHA512-CRYPT\n";
        let s = parse(text, Path::new("/x/dovecot-sql.conf.ext"), "sql").unwrap();
        assert_eq!(
            kv(&s),
            [
                ("driver", "mysql"),
                ("connect", "host=db dbname=mail user=dovecot password=secret"),
                ("password_query", "SELECT a FROM t WHERE u = '%u'"),
                ("quoted", "a # b \" c"),
                ("empty", ""),
                ("default_pass_scheme", "SHA512-CRYPT"),
            ]
        );
        assert_eq!(s[0].origin, "/x/dovecot-sql.conf.ext line 2");
        assert!(parse("novalue\n", Path::new("f"), "sql").is_err());
        assert!(parse("}\n", Path::new("f"), "sql").is_err());
    }

    #[test]
    fn includes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inc.conf"), "dnpass = secret\n").unwrap();
        std::fs::write(
            dir.path().join("main.conf"),
            "dn = cn=x\n!include inc.conf\n!include_try none.conf\n",
        )
        .unwrap();
        let s = read(&dir.path().join("main.conf"), "ldap").unwrap();
        assert_eq!(kv(&s), [("dn", "cn=x"), ("dnpass", "secret")]);
        std::fs::write(dir.path().join("loop.conf"), "!include loop.conf\n").unwrap();
        assert!(read(&dir.path().join("loop.conf"), "ldap").is_err());
        assert!(matches!(read(&dir.path().join("missing.conf"), "ldap"), Err(DbError::Args { .. })));
    }
}
