//! Login log lines as Dovecot writes them: `login_log_format_elements` is
//! a space-separated list of elements; an element is kept when at least
//! one of its `%` variables has a non-empty value, and the kept ones are
//! expanded and joined with `, ` into `%s`; `login_log_format` then puts
//! the message (`%$`) and that list together (default `%$: %s`), e.g.
//! `Login: user=<alice>, method=PLAIN, rip=…, lip=…, mpid=…, TLS, session=<…>`.

use dovecote_config::var_expand::{expand, Variable};

/// What a login process knows about a client when it logs.
#[derive(Debug, Clone, Default)]
pub struct LogVars {
    pub user: Option<String>,
    pub service: String,
    pub lip: String,
    pub rip: String,
    pub lport: String,
    pub rport: String,
    pub real_lip: String,
    pub real_rip: String,
    pub real_lport: String,
    pub real_rport: String,
    pub pid: String,
    pub mech: Option<String>,
    /// `%c`: `TLS` (or `TLS handshaking`), `secured`, or nothing.
    pub secured: Option<String>,
    /// `%k`: the TLS protocol and cipher, when TLS is up.
    pub ssl_security: String,
    /// `%e`: the post-login process, once known.
    pub mail_pid: Option<u32>,
    pub session: String,
    pub listener: String,
    pub local_name: String,
}

impl LogVars {
    fn table(&self) -> Vec<Variable<'_>> {
        // Dovecot sanitises user names to 80 characters in log lines.
        let user: Option<String> = self.user.as_ref().map(|u| u.chars().take(80).collect());
        let (username, domain) = match &user {
            Some(u) => match u.split_once('@') {
                Some((n, d)) => (Some(n.to_owned()), Some(d.to_owned())),
                None => (Some(u.clone()), None),
            },
            None => (None, None),
        };
        let opt = |key: Option<char>, long: &'static str, v: Option<String>| Variable {
            key,
            long: Some(long),
            value: v.map(Into::into),
        };
        vec![
            opt(Some('u'), "user", user),
            opt(Some('n'), "username", username),
            opt(Some('d'), "domain", domain),
            Variable::new('s', "service", self.service.as_str()),
            Variable::new('l', "lip", self.lip.as_str()),
            Variable::new('r', "rip", self.rip.as_str()),
            Variable::new('p', "pid", self.pid.as_str()),
            opt(Some('m'), "mech", self.mech.clone()),
            Variable::new('a', "lport", self.lport.as_str()),
            Variable::new('b', "rport", self.rport.as_str()),
            opt(Some('c'), "secured", self.secured.clone()),
            Variable::new('k', "ssl_security", self.ssl_security.as_str()),
            opt(Some('e'), "mail_pid", self.mail_pid.map(|p| p.to_string())),
            Variable::long("session", self.session.as_str()),
            Variable::long("real_lip", self.real_lip.as_str()),
            Variable::long("real_rip", self.real_rip.as_str()),
            Variable::long("real_lport", self.real_lport.as_str()),
            Variable::long("real_rport", self.real_rport.as_str()),
            Variable::long("listener", self.listener.as_str()),
            Variable::long("local_name", self.local_name.as_str()),
        ]
    }
}

/// The variable an element's `%` at `rest` (the text after the `%`)
/// refers to: a long `{name}` or a one-letter key after any width and
/// modifiers.
fn key_at(rest: &str) -> Option<Result<char, &str>> {
    if let Some(long) = rest.strip_prefix('{') {
        let name = &long[..long.find('}')?];
        return Some(Err(name.split(':').next().unwrap_or(name)));
    }
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    // 2.3's one-letter modifiers; none of them is a login variable key.
    let rest = rest.trim_start_matches(['L', 'U', 'E', 'X', 'R', 'H', 'N', 'M', 'D', 'T']);
    rest.chars().next().map(Ok)
}

fn has_value(table: &[Variable<'_>], element: &str) -> bool {
    let mut rest = element;
    while let Some(pos) = rest.find('%') {
        rest = &rest[pos + 1..];
        let found = match key_at(rest) {
            Some(Ok(key)) => table.iter().find(|v| v.key == Some(key)),
            Some(Err(long)) => table.iter().find(|v| v.long == Some(long)),
            None => None,
        };
        if found.and_then(|v| v.value.as_deref()).is_some_and(|v| !v.is_empty()) {
            return true;
        }
    }
    false
}

/// `%s`: the kept elements, expanded and joined.
pub fn elements(elements: &str, vars: &LogVars) -> String {
    let table = vars.table();
    elements
        .split_whitespace()
        .filter(|e| has_value(&table, e))
        .map(|e| expand(e, &table).unwrap_or_else(|err| err.partial))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One whole log line for `message`.
pub fn line(format: &str, element_list: &str, vars: &LogVars, message: &str) -> String {
    let s = elements(element_list, vars);
    let table = [Variable::short('s', s.as_str()), Variable::short('$', message)];
    expand(format, &table).unwrap_or_else(|err| err.partial)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_ELEMENTS: &str = "user=<%u> method=%m rip=%r lip=%l mpid=%e %c session=<%{session}>";

    fn vars() -> LogVars {
        LogVars {
            user: Some("alice@example.com".into()),
            service: "imap".into(),
            lip: "127.0.0.1".into(),
            rip: "192.0.2.9".into(),
            mech: Some("PLAIN".into()),
            secured: Some("TLS".into()),
            mail_pid: Some(4242),
            session: "AbCdEf0123456789".into(),
            ..LogVars::default()
        }
    }

    #[test]
    fn login_line_as_dovecot() {
        assert_eq!(
            line("%$: %s", DEFAULT_ELEMENTS, &vars(), "Login"),
            "Login: user=<alice@example.com>, method=PLAIN, rip=192.0.2.9, lip=127.0.0.1, mpid=4242, TLS, session=<AbCdEf0123456789>"
        );
    }

    #[test]
    fn empty_elements_are_left_out() {
        let v = LogVars { user: None, mech: None, secured: None, mail_pid: None, ..vars() };
        assert_eq!(
            line("%$: %s", DEFAULT_ELEMENTS, &v, "Disconnected (no auth attempts in 0 secs)"),
            "Disconnected (no auth attempts in 0 secs): rip=192.0.2.9, lip=127.0.0.1, session=<AbCdEf0123456789>"
        );
    }

    #[test]
    fn custom_formats_and_long_keys() {
        let v = vars();
        assert_eq!(
            line("[%s] %$", "%n domain=%d %{rip}", &v, "Login"),
            "[alice, domain=example.com, 192.0.2.9] Login"
        );
        // An element is kept when any of its variables has a value.
        let v = LogVars { user: None, ..vars() };
        assert_eq!(elements("x=%u/%r", &v), "x=/192.0.2.9");
        assert_eq!(elements("%Lm", &v), "plain");
    }
}
