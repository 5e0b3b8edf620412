//! The pre-auth IMAP command parser: `tag SP command [SP args] CRLF`, with
//! atoms, quoted strings, NIL, parenthesised lists (for ID) and literals
//! (`{n}` synchronising, `{n+}` LITERAL+), which may span lines. Pure: it
//! re-parses the buffered input and says how much a complete command used.

use crate::LOGIN_MAX_INBUF_SIZE;

/// Longest tag Dovecot accepts.
pub const MAX_TAG_LEN: usize = 126;
/// Literals of this size or more end the connection (`Literal size too large`).
pub const MAX_LITERAL_SIZE: usize = 8192;

/// A parsed argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Atom(Vec<u8>),
    /// A quoted string or literal.
    Str(Vec<u8>),
    Nil,
    List(Vec<Arg>),
}

impl Arg {
    /// The value of an atom or string (IMAP `astring`).
    pub fn astring(&self) -> Option<&[u8]> {
        match self {
            Arg::Atom(a) => Some(a),
            Arg::Str(s) => Some(s),
            Arg::Nil => Some(b"NIL"),
            Arg::List(_) => None,
        }
    }
}

/// One complete command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    /// Upper-cased command name.
    pub name: String,
    pub args: Result<Vec<Arg>, ()>,
    /// For AUTHENTICATE: the rest of the line after the name, raw.
    pub raw_args: Vec<u8>,
    /// Bytes of input this command used, terminator included.
    pub consumed: usize,
}

/// Result of looking at the buffered input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// Need more input. `literals` is how many synchronising literals the
    /// command has announced so far (the caller sends `+ OK` for new ones).
    Incomplete {
        sync_literals: usize,
    },
    Command(Command),
    /// The tag is missing or invalid (or the command name is): `* BAD` or
    /// `<tag> BAD`; `consumed` bytes are skipped.
    BadLine {
        tag: Option<String>,
        consumed: usize,
    },
    /// `* BYE Input buffer full, aborting`.
    TooLong,
    /// `* BYE Literal size too large`.
    LiteralTooLarge,
}

fn is_atom_char(b: u8) -> bool {
    b > b' ' && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'"' | b'\\')
}

fn is_tag_char(b: u8) -> bool {
    is_atom_char(b) && b != b'+'
}

/// Finds the end of the line starting at `from`: (index of LF, content end).
fn line_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let lf = buf[from..].iter().position(|b| *b == b'\n')? + from;
    let end = if lf > from && buf[lf - 1] == b'\r' { lf - 1 } else { lf };
    Some((lf, end))
}

/// Parses one command from the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse {
    let Some((lf, end)) = line_end(buf, 0) else {
        return if buf.len() > LOGIN_MAX_INBUF_SIZE {
            Parse::TooLong
        } else {
            Parse::Incomplete { sync_literals: 0 }
        };
    };
    if lf + 1 > LOGIN_MAX_INBUF_SIZE + 4 {
        return Parse::TooLong;
    }
    let line = &buf[..end];
    let tag_end = line.iter().position(|b| *b == b' ').unwrap_or(line.len());
    let tag = &line[..tag_end];
    if tag.is_empty() || tag.len() > MAX_TAG_LEN || !tag.iter().all(|b| is_tag_char(*b)) {
        return Parse::BadLine { tag: None, consumed: lf + 1 };
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    let name_start = (tag_end + 1).min(line.len());
    let name_end = line[name_start..].iter().position(|b| *b == b' ').map_or(line.len(), |p| p + name_start);
    let name = &line[name_start..name_end];
    if name.is_empty() || !name.iter().all(|b| is_atom_char(*b)) {
        return Parse::BadLine { tag: Some(tag), consumed: lf + 1 };
    }
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    let raw_args = if name_end < line.len() { line[name_end + 1..].to_vec() } else { Vec::new() };
    if name == "AUTHENTICATE" {
        return Parse::Command(Command { tag, name, args: Ok(Vec::new()), raw_args, consumed: lf + 1 });
    }
    // Arguments may continue past this line through literals.
    let mut p = ArgParser { buf, pos: name_end, sync_literals: 0 };
    match p.args() {
        Step::Done(args) => Parse::Command(Command { tag, name, args: Ok(args), raw_args, consumed: p.pos }),
        Step::Syntax => {
            // Skip to the end of the line the error is on.
            let consumed = line_end(buf, p.pos.min(buf.len())).map_or(buf.len(), |(lf, _)| lf + 1);
            Parse::Command(Command { tag, name, args: Err(()), raw_args, consumed })
        }
        Step::Incomplete => Parse::Incomplete { sync_literals: p.sync_literals },
        Step::TooLong => Parse::TooLong,
        Step::LiteralTooLarge => Parse::LiteralTooLarge,
    }
}

enum Step<T> {
    Done(T),
    Syntax,
    Incomplete,
    TooLong,
    LiteralTooLarge,
}

struct ArgParser<'a> {
    buf: &'a [u8],
    pos: usize,
    sync_literals: usize,
}

impl ArgParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// At end of line: CRLF or LF; consumes it.
    fn eol(&mut self) -> Option<bool> {
        match self.peek()? {
            b'\n' => {
                self.pos += 1;
                Some(true)
            }
            b'\r' => match self.buf.get(self.pos + 1) {
                Some(b'\n') => {
                    self.pos += 2;
                    Some(true)
                }
                Some(_) => Some(false),
                None => None,
            },
            _ => Some(false),
        }
    }

    fn incomplete(&self, segment_start: usize) -> Step<Vec<Arg>> {
        if self.buf.len() - segment_start > LOGIN_MAX_INBUF_SIZE {
            Step::TooLong
        } else {
            Step::Incomplete
        }
    }

    fn args(&mut self) -> Step<Vec<Arg>> {
        let mut segment_start = 0;
        let mut stack: Vec<Vec<Arg>> = vec![Vec::new()];
        let mut just_opened = false;
        loop {
            // End of line closes the command when no list is open.
            match self.eol() {
                None => return self.incomplete(segment_start),
                Some(true) => {
                    return if stack.len() == 1 {
                        Step::Done(stack.pop().unwrap_or_default())
                    } else {
                        Step::Syntax
                    };
                }
                Some(false) => {}
            }
            if !just_opened && self.peek() != Some(b')') {
                if self.peek() != Some(b' ') {
                    return Step::Syntax;
                }
                self.pos += 1;
                match self.eol() {
                    None => return self.incomplete(segment_start),
                    Some(true) => return Step::Syntax,
                    Some(false) => {}
                }
            }
            just_opened = false;
            let Some(c) = self.peek() else { return self.incomplete(segment_start) };
            match c {
                b'(' => {
                    self.pos += 1;
                    just_opened = true;
                    stack.push(Vec::new());
                }
                b')' => {
                    self.pos += 1;
                    if stack.len() < 2 {
                        return Step::Syntax;
                    }
                    let list = stack.pop().unwrap_or_default();
                    if let Some(top) = stack.last_mut() {
                        top.push(Arg::List(list));
                    }
                }
                b'"' => match self.quoted() {
                    Step::Done(s) => push(&mut stack, Arg::Str(s)),
                    Step::Incomplete => return self.incomplete(segment_start),
                    Step::Syntax => return Step::Syntax,
                    Step::TooLong => return Step::TooLong,
                    Step::LiteralTooLarge => return Step::LiteralTooLarge,
                },
                b'{' => match self.literal(&mut segment_start) {
                    Step::Done(s) => push(&mut stack, Arg::Str(s)),
                    Step::Incomplete => return Step::Incomplete,
                    Step::Syntax => return Step::Syntax,
                    Step::TooLong => return Step::TooLong,
                    Step::LiteralTooLarge => return Step::LiteralTooLarge,
                },
                _ => {
                    let start = self.pos;
                    while self.peek().is_some_and(is_atom_char) && self.peek() != Some(b')') {
                        self.pos += 1;
                    }
                    if self.pos == start {
                        return Step::Syntax;
                    }
                    if self.peek().is_none() {
                        return self.incomplete(segment_start);
                    }
                    let atom = &self.buf[start..self.pos];
                    if atom.eq_ignore_ascii_case(b"NIL") {
                        push(&mut stack, Arg::Nil);
                    } else {
                        push(&mut stack, Arg::Atom(atom.to_vec()));
                    }
                }
            }
        }
    }

    fn quoted(&mut self) -> Step<Vec<u8>> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else { return Step::Incomplete };
            self.pos += 1;
            match c {
                b'"' => return Step::Done(out),
                b'\\' => {
                    let Some(e) = self.peek() else { return Step::Incomplete };
                    if e != b'\\' && e != b'"' {
                        return Step::Syntax;
                    }
                    self.pos += 1;
                    out.push(e);
                }
                b'\r' | b'\n' | 0 => return Step::Syntax,
                _ => out.push(c),
            }
        }
    }

    fn literal(&mut self, segment_start: &mut usize) -> Step<Vec<u8>> {
        let start = self.pos + 1;
        let Some(close) = self.buf[start..].iter().position(|b| *b == b'}') else {
            return if self.buf[start..].iter().any(|b| !b.is_ascii_digit() && *b != b'+') {
                Step::Syntax
            } else {
                Step::Incomplete
            };
        };
        let spec = &self.buf[start..start + close];
        let (digits, sync) = match spec.strip_suffix(b"+") {
            Some(d) => (d, false),
            None => (spec, true),
        };
        if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
            return Step::Syntax;
        }
        let size: usize = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).unwrap_or(usize::MAX);
        self.pos = start + close + 1;
        match self.eol() {
            None => return Step::Incomplete,
            Some(false) => return Step::Syntax,
            Some(true) => {}
        }
        if size >= MAX_LITERAL_SIZE {
            return Step::LiteralTooLarge;
        }
        if sync {
            self.sync_literals += 1;
        }
        if self.buf.len() < self.pos + size {
            return Step::Incomplete;
        }
        let data = self.buf[self.pos..self.pos + size].to_vec();
        self.pos += size;
        *segment_start = self.pos;
        Step::Done(data)
    }
}

fn push(stack: &mut [Vec<Arg>], arg: Arg) {
    if let Some(top) = stack.last_mut() {
        top.push(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(input: &[u8]) -> Command {
        match parse(input) {
            Parse::Command(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple() {
        let c = cmd(b"a1 login alice \"se\\\"cret\"\r\nrest");
        assert_eq!(c.tag, "a1");
        assert_eq!(c.name, "LOGIN");
        assert_eq!(c.args, Ok(vec![Arg::Atom(b"alice".to_vec()), Arg::Str(b"se\"cret".to_vec())]));
        assert_eq!(c.consumed, 27);
        assert_eq!(cmd(b"a NOOP\n").args, Ok(vec![]));
    }

    #[test]
    fn literals() {
        assert_eq!(parse(b"a LOGIN {5}\r\n"), Parse::Incomplete { sync_literals: 1 });
        assert_eq!(parse(b"a LOGIN {5}\r\nali"), Parse::Incomplete { sync_literals: 1 });
        let c = cmd(b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n");
        assert_eq!(c.args, Ok(vec![Arg::Str(b"alice".to_vec()), Arg::Str(b"secret".to_vec())]));
        assert_eq!(parse(b"a LOGIN {8192}\r\n"), Parse::LiteralTooLarge);
    }

    #[test]
    fn lists_and_errors() {
        let c = cmd(b"x ID (\"name\" \"foo\" \"version\" NIL)\r\n");
        assert_eq!(
            c.args,
            Ok(vec![Arg::List(vec![
                Arg::Str(b"name".to_vec()),
                Arg::Str(b"foo".to_vec()),
                Arg::Str(b"version".to_vec()),
                Arg::Nil
            ])])
        );
        assert_eq!(cmd(b"a LOGIN (alice pw\r\n").args, Err(()));
        assert_eq!(parse(b"a\" NOOP\r\n"), Parse::BadLine { tag: None, consumed: 9 });
        assert_eq!(parse(b"\r\n"), Parse::BadLine { tag: None, consumed: 2 });
        assert_eq!(parse(b"a  NOOP\r\n"), Parse::BadLine { tag: Some("a".into()), consumed: 9 });
        let long = [b"a NOOP ".as_slice(), &[b'x'; 1100]].concat();
        assert_eq!(parse(&long), Parse::TooLong);
    }
}
