//! Address lists (From, To, Cc, …) parsed the way Dovecot parses them for
//! ENVELOPE: RFC 5322 mailboxes and groups, obsolete routes, comments as
//! display names, and Dovecot's repairs of broken input (`MISSING_MAILBOX`,
//! `MISSING_DOMAIN`, `SYNTAX_ERROR`, `INVALID_ROUTE` placeholders). A group
//! is a start marker (mailbox = group name, domain = None) and an end
//! marker (all None), as in the IMAP ENVELOPE.

use super::rfc822::Parser;

/// One address as ENVELOPE shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    pub name: Option<Vec<u8>>,
    pub route: Option<Vec<u8>>,
    pub mailbox: Option<Vec<u8>>,
    pub domain: Option<Vec<u8>>,
    pub invalid: bool,
}

struct Ctx<'a> {
    p: Parser<'a>,
    out: Vec<Address>,
    addr: Address,
    s: Vec<u8>,
}

/// Parses an address header value (all addresses, placeholders filled in).
pub fn parse(value: &[u8]) -> Vec<Address> {
    let mut ctx =
        Ctx { p: Parser::with_comments(value), out: Vec::new(), addr: Address::default(), s: Vec::new() };
    if matches!(ctx.p.skip_lwsp(), Ok(true)) {
        ctx.address_list();
    }
    ctx.out
}

use super::rfc822::Step;

/// C-style result codes: -1 error, 0 end of input, 1 more input.
fn code(r: Step) -> i32 {
    match r {
        Err(_) => -1,
        Ok(false) => 0,
        Ok(true) => 1,
    }
}

impl Ctx<'_> {
    fn add(&mut self) {
        self.out.push(std::mem::take(&mut self.addr));
    }

    fn local_part(&mut self) -> i32 {
        self.s.clear();
        let r = if self.p.peek() == Some(b'"') {
            self.p.quoted_string(&mut self.s)
        } else {
            self.p.dot_atom(&mut self.s)
        };
        let r = code(r);
        if r < 0 {
            return -1;
        }
        self.addr.mailbox = Some(self.s.clone());
        r
    }

    fn domain(&mut self) -> i32 {
        self.s.clear();
        let r = code(self.p.domain(&mut self.s));
        if r < 0 {
            return -1;
        }
        self.addr.domain = Some(self.s.clone());
        r
    }

    fn domain_list(&mut self) -> i32 {
        self.s.clear();
        loop {
            if self.p.at_end() {
                return 0;
            }
            if self.p.peek() != Some(b'@') {
                break;
            }
            if !self.s.is_empty() {
                self.s.push(b',');
            }
            self.s.push(b'@');
            let mut s = std::mem::take(&mut self.s);
            let r = code(self.p.domain(&mut s));
            self.s = s;
            if r <= 0 {
                return r;
            }
            while code(self.p.skip_lwsp()) > 0 && self.p.peek() == Some(b',') {
                self.p.pos += 1;
            }
        }
        self.addr.route = Some(self.s.clone());
        1
    }

    fn angle_addr(&mut self) -> i32 {
        self.p.pos += 1; // '<'
        if code(self.p.skip_lwsp()) <= 0 {
            return -1;
        }
        if self.p.peek() == Some(b'@') {
            if self.domain_list() > 0 && self.p.peek() == Some(b':') {
                self.p.pos += 1;
            } else {
                self.addr.route = Some(b"INVALID_ROUTE".to_vec());
                if self.p.at_end() {
                    return -1;
                }
            }
            if code(self.p.skip_lwsp()) <= 0 {
                return -1;
            }
        }
        if self.p.peek() != Some(b'>') {
            if self.local_part() <= 0 {
                return -1;
            }
            if self.p.peek() == Some(b'@') && self.domain() <= 0 {
                return -1;
            }
        }
        if self.p.peek() != Some(b'>') {
            return -1;
        }
        self.p.pos += 1;
        code(self.p.skip_lwsp())
    }

    fn name_addr(&mut self) -> i32 {
        self.s.clear();
        let mut s = std::mem::take(&mut self.s);
        let r = code(self.p.phrase(&mut s));
        self.s = s;
        if r <= 0 || self.p.peek() != Some(b'<') {
            return -1;
        }
        self.addr.name = if self.s.is_empty() { None } else { Some(self.s.clone()) };
        if self.angle_addr() < 0 {
            self.addr.domain = Some(b"SYNTAX_ERROR".to_vec());
            self.addr.invalid = true;
        }
        i32::from(!self.p.at_end())
    }

    fn addr_spec(&mut self) -> i32 {
        if let Some(c) = self.p.last_comment.as_mut() {
            c.clear();
        }
        let quoted = self.p.peek() == Some(b'"');
        let mut r = self.local_part();
        let mut r2 = -2;
        if r <= 0 {
            self.addr.invalid = true;
        }
        if r != 0 && !self.p.at_end() && self.p.peek() == Some(b'@') {
            r2 = self.domain();
            if r2 <= 0 {
                r = r2;
            }
        }
        let comment = self.p.last_comment.clone().unwrap_or_default();
        if !comment.is_empty() {
            self.addr.name = Some(comment);
        } else if r2 == -2 {
            // A lone word is a mailbox; more words make it a display name.
            self.s.push(b' ');
            let before = self.s.len();
            let mut s = std::mem::take(&mut self.s);
            let _ = self.p.phrase(&mut s);
            self.s = s;
            if self.s.len() != before {
                self.addr.mailbox = None;
                self.addr.name = Some(self.s.clone());
            } else if !quoted {
                self.addr.domain = Some(Vec::new());
            }
            self.addr.invalid = true;
            r = -1;
        }
        r
    }

    fn add_fixed(&mut self) {
        if self.addr.mailbox.is_none() {
            self.addr.mailbox = Some(b"MISSING_MAILBOX".to_vec());
            self.addr.invalid = true;
        }
        if self.addr.domain.as_ref().is_none_or(|d| d.is_empty()) {
            self.addr.domain = Some(b"MISSING_DOMAIN".to_vec());
            self.addr.invalid = true;
        }
        self.add();
    }

    fn mailbox(&mut self) -> i32 {
        let start = self.p.pos;
        let mut r = self.name_addr();
        if r < 0 {
            self.p.pos = start;
            r = self.addr_spec();
            if self.addr.invalid
                && self.addr.name.is_none()
                && self.addr.mailbox.is_some()
                && self.addr.domain.is_none()
            {
                self.addr.name = self.addr.mailbox.take();
            }
        }
        if r < 0 {
            self.addr.invalid = true;
        }
        self.add_fixed();
        r
    }

    fn group(&mut self) -> i32 {
        self.s.clear();
        let mut s = std::mem::take(&mut self.s);
        let r = code(self.p.phrase(&mut s));
        self.s = s;
        if r <= 0 || self.p.peek() != Some(b':') {
            return -1;
        }
        self.p.pos += 1;
        let mut r = code(self.p.skip_lwsp());
        if r <= 0 {
            self.addr.invalid = true;
        }
        self.addr.mailbox = Some(self.s.clone());
        self.add();
        if r > 0 && self.p.peek() != Some(b';') {
            loop {
                self.mailbox();
                if self.p.at_end() || self.p.peek() != Some(b',') {
                    break;
                }
                self.p.pos += 1;
                if code(self.p.skip_lwsp()) <= 0 {
                    r = -1;
                    break;
                }
            }
        }
        if r >= 0 {
            if self.p.at_end() || self.p.peek() != Some(b';') {
                r = -1;
            } else {
                self.p.pos += 1;
                r = code(self.p.skip_lwsp());
            }
        }
        if r < 0 {
            self.addr.invalid = true;
        }
        self.add();
        if r == 0 {
            0
        } else {
            1
        }
    }

    fn address(&mut self) -> i32 {
        let start = self.p.pos;
        let r = self.group();
        if r >= 0 {
            return r;
        }
        self.p.pos = start;
        // A failed group attempt leaves nothing behind but its scratch name.
        self.addr = Address::default();
        self.mailbox()
    }

    fn address_list(&mut self) {
        loop {
            if self.address() == 0 {
                break;
            }
            if self.p.at_end() || self.p.peek() != Some(b',') {
                break;
            }
            self.p.pos += 1;
            let r = code(self.p.skip_lwsp());
            if r <= 0 {
                if r < 0 {
                    self.add_fixed();
                }
                break;
            }
        }
    }
}

fn is_escaped(c: u8) -> bool {
    matches!(c, b'"' | b'\\' | b'\'')
}

/// Appends `s`, quoted (and escaped) unless it's all atext (dots allowed
/// unless `escape_dot`).
fn append_maybe_escape(out: &mut Vec<u8>, s: &[u8], escape_dot: bool) {
    if s.iter().all(|&c| super::rfc822::is_atext(c) || (!escape_dot && c == b'.')) {
        out.extend_from_slice(s);
        return;
    }
    out.push(b'"');
    for &c in s {
        if is_escaped(c) {
            out.push(b'\\');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// An address list written back as header text (Dovecot's
/// message_address_write), which SEARCH FROM/TO/CC/BCC match against.
pub fn write(list: &[Address]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut first = true;
    let mut in_group = false;
    for a in list {
        if first {
            first = false;
        } else {
            out.extend_from_slice(b", ");
        }
        match (&a.domain, &a.mailbox) {
            (None, mailbox) => {
                if !in_group {
                    match mailbox.as_deref() {
                        Some(m) if !m.is_empty() => {
                            if m.windows(2).any(|w| w == b"=?") {
                                out.extend_from_slice(m);
                            } else {
                                append_maybe_escape(&mut out, m, true);
                            }
                        }
                        _ => out.extend_from_slice(b"\"\""),
                    }
                    out.extend_from_slice(b": ");
                    first = true;
                } else {
                    if out.ends_with(b", ") {
                        out.truncate(out.len() - 2);
                    } else if out.ends_with(b": ") {
                        out.truncate(out.len() - 1);
                    }
                    out.push(b';');
                }
                in_group = !in_group;
            }
            (Some(domain), mailbox) => {
                let mailbox = mailbox.as_deref().unwrap_or_default();
                if let Some(name) = &a.name {
                    if name.windows(2).any(|w| w == b"=?") {
                        out.extend_from_slice(name);
                    } else {
                        append_maybe_escape(&mut out, name, true);
                    }
                }
                if a.route.is_some() || !mailbox.is_empty() || !domain.is_empty() {
                    if a.name.as_ref().is_some_and(|n| !n.is_empty()) {
                        out.push(b' ');
                    }
                    out.push(b'<');
                    if let Some(route) = &a.route {
                        out.extend_from_slice(route);
                        out.push(b':');
                    }
                    if mailbox.is_empty() {
                        out.extend_from_slice(b"\"\"");
                    } else {
                        append_maybe_escape(&mut out, mailbox, false);
                    }
                    if !domain.is_empty() {
                        out.push(b'@');
                        out.extend_from_slice(domain);
                    }
                    out.push(b'>');
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(v: &[u8]) -> Vec<String> {
        parse(v)
            .iter()
            .map(|a| {
                let f = |x: &Option<Vec<u8>>| {
                    x.as_ref().map_or("NIL".into(), |v| String::from_utf8_lossy(v).into_owned())
                };
                format!("{}|{}|{}|{}", f(&a.name), f(&a.route), f(&a.mailbox), f(&a.domain))
            })
            .collect()
    }

    #[test]
    fn common_forms() {
        assert_eq!(show(b"Alice <alice@example.com>"), ["Alice|NIL|alice|example.com"]);
        assert_eq!(show(b"a@b (Comment)"), ["Comment|NIL|a|b"]);
        assert_eq!(show(b"justuser"), ["NIL|NIL|justuser|MISSING_DOMAIN"]);
        assert_eq!(show(b"Name Only"), ["Name Only|NIL|MISSING_MAILBOX|MISSING_DOMAIN"]);
        assert_eq!(show(b"broken <user@"), ["broken|NIL|user|SYNTAX_ERROR"]);
        assert_eq!(show(b"<@r1,@r2:u@d>"), ["NIL|@r1,@r2|u|d"]);
        assert_eq!(show(b"G: a@b;"), ["NIL|NIL|G|NIL", "NIL|NIL|a|b", "NIL|NIL|NIL|NIL"]);
        assert_eq!(
            show(b"a@b, , c@d"),
            ["NIL|NIL|a|b", "NIL|NIL|MISSING_MAILBOX|MISSING_DOMAIN", "NIL|NIL|c|d"]
        );
        assert_eq!(show(b""), Vec::<String>::new());
    }

    #[test]
    fn written_back() {
        assert_eq!(write(&parse(b"\"Doe, J\" <j@d>, G: a@b;")), b"\"Doe, J\" <j@d>, G: <a@b>;");
        assert_eq!(write(&parse(b"justuser")), b"<justuser@MISSING_DOMAIN>");
    }
}
