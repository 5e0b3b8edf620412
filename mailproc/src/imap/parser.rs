//! The streaming IMAP command parser: client bytes in, complete commands
//! (tag, name, [`Arg`] tree) out. Literals (`{n}`, LITERAL+ `{n+}`, BINARY
//! `~{n}`) are collected across reads; a synchronising literal asks the
//! caller to send `+ OK`. Bytes are moved out of the caller's input buffer
//! as they are seen, so the caller's buffer stays small and the command's
//! size is bounded here: `imap_max_line_length` for a command (APPEND's
//! message literals excepted, which have their own limit), and a literal
//! over its limit ends the session without being buffered, as Dovecot does
//! (`* BYE Literal size too large`).

use super::args::Arg;

/// One complete command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    /// The command name as sent (callers compare case-insensitively).
    pub name: String,
    pub args: Vec<Arg>,
}

/// What the parser produced from the input so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Command(Command),
    /// A synchronising literal is announced: send `+ OK` to the client.
    Continue,
    /// A command that can't be run; the reply is `<tag> BAD <text>`
    /// (`*` when there is no valid tag).
    Bad {
        tag: String,
        text: String,
    },
    /// The session must end: `* BYE <text>`, and the text is the
    /// disconnect reason.
    Fatal(String),
}

/// Sizes the parser enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `imap_max_line_length`: a whole command without APPEND's literals.
    pub max_line: usize,
    /// Largest APPEND message literal.
    pub max_append_literal: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_line: 64 * 1024, max_append_literal: 64 * 1024 * 1024 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a line of the command.
    Line,
    /// Reading literal data.
    Literal { remaining: usize },
    /// Dropping the rest of an over-long line.
    SkipLine,
}

/// The per-connection parser.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// The command so far: lines without CRLF, literal data right after
    /// their `{n}` marker.
    cmd: Vec<u8>,
    /// Bytes of `cmd` that count against `max_line` (not APPEND data).
    counted: usize,
    /// Tag and name of an over-long command (for its BAD reply).
    skipped: Option<(String, String)>,
    /// Where the line being read starts in `cmd` (literal markers are
    /// looked for in it only, never in earlier literal data).
    line_start: usize,
}

impl Parser {
    pub fn new(limits: Limits) -> Parser {
        Parser { limits, state: State::Line, cmd: Vec::new(), counted: 0, skipped: None, line_start: 0 }
    }

    /// Whether a command is partly read (for the disconnect reason).
    pub fn in_command(&self) -> bool {
        !self.cmd.is_empty() || self.state != State::Line
    }

    /// Consumes bytes from the front of `input` and returns the next event,
    /// or `None` when more input is needed (everything consumed).
    pub fn next(&mut self, input: &mut Vec<u8>) -> Option<Event> {
        loop {
            match self.state {
                State::Literal { remaining } => {
                    if input.is_empty() {
                        return None;
                    }
                    let n = remaining.min(input.len());
                    self.cmd.extend_from_slice(&input[..n]);
                    input.drain(..n);
                    self.state = if n == remaining {
                        self.line_start = self.cmd.len();
                        State::Line
                    } else {
                        State::Literal { remaining: remaining - n }
                    };
                }
                State::SkipLine => match memchr::memchr(b'\n', input) {
                    Some(pos) => {
                        input.drain(..=pos);
                        self.state = State::Line;
                        let (tag, name) = self.skipped.take().unwrap_or_default();
                        return Some(Event::Bad { tag, text: command_error(&name, "Too long argument") });
                    }
                    None => {
                        input.clear();
                        return None;
                    }
                },
                State::Line => {
                    let newline = memchr::memchr(b'\n', input);
                    let take = newline.map_or(input.len(), |p| p + 1);
                    if self.counted + take > self.limits.max_line + 2 {
                        self.skip_line(input);
                        match newline {
                            Some(pos) => {
                                input.drain(..=pos);
                                let (tag, name) = self.skipped.take().unwrap_or_default();
                                return Some(Event::Bad {
                                    tag,
                                    text: command_error(&name, "Too long argument"),
                                });
                            }
                            None => {
                                input.clear();
                                self.state = State::SkipLine;
                                return None;
                            }
                        }
                    }
                    // Partial lines move here too, so the caller's buffer
                    // never holds more than one read.
                    self.cmd.extend_from_slice(&input[..take]);
                    self.counted += take;
                    input.drain(..take);
                    // No end of line yet: wait for more input.
                    newline?;
                    self.cmd.pop();
                    self.counted -= 1;
                    // Only this line's own CR: a literal just before a
                    // bare LF may end in one that is message data.
                    if self.cmd.len() > self.line_start && self.cmd.last() == Some(&b'\r') {
                        self.cmd.pop();
                        self.counted -= 1;
                    }
                    if let Some((size, sync, literal8)) =
                        literal_marker(&self.cmd[self.line_start.min(self.cmd.len())..])
                    {
                        let is_append = self.is_append();
                        if literal8 && !is_append {
                            // As Dovecot: refused without reading it, so
                            // its bytes come next as a command line.
                            let (tag, name) = self.tag_and_name();
                            self.reset();
                            return Some(Event::Bad {
                                tag,
                                text: command_error(&name, "literal8 not allowed here"),
                            });
                        }
                        let limit = if is_append {
                            self.limits.max_append_literal
                        } else {
                            self.limits.max_line.saturating_sub(self.counted)
                        };
                        if size > limit {
                            self.reset();
                            return Some(Event::Fatal("Literal size too large".into()));
                        }
                        if !is_append {
                            self.counted += size;
                        }
                        self.state = State::Literal { remaining: size };
                        if size == 0 {
                            self.state = State::Line;
                            self.line_start = self.cmd.len();
                        }
                        if sync {
                            return Some(Event::Continue);
                        }
                        continue;
                    }
                    let cmd = std::mem::take(&mut self.cmd);
                    self.reset();
                    return Some(parse_command(&cmd));
                }
            }
        }
    }

    fn reset(&mut self) {
        self.cmd.clear();
        self.line_start = 0;
        self.counted = 0;
        self.state = State::Line;
    }

    /// Remembers tag and name of an over-long command, dropping it.
    fn skip_line(&mut self, input: &[u8]) {
        let mut head = std::mem::take(&mut self.cmd);
        head.extend_from_slice(&input[..input.len().min(1024)]);
        let mut words = head.split(|b| *b == b' ');
        let tag = String::from_utf8_lossy(words.next().unwrap_or_default()).into_owned();
        let name = String::from_utf8_lossy(words.next().unwrap_or_default()).to_ascii_uppercase();
        self.skipped = Some((if valid_tag(&tag) { tag } else { "*".into() }, name));
        self.reset();
    }

    /// Tag and upper-case command name of the command being read.
    fn tag_and_name(&self) -> (String, String) {
        let mut words = self.cmd.split(|b| *b == b' ');
        let tag = String::from_utf8_lossy(words.next().unwrap_or_default()).into_owned();
        let mut name = String::from_utf8_lossy(words.next().unwrap_or_default()).to_ascii_uppercase();
        if name == "UID" {
            let sub = String::from_utf8_lossy(words.next().unwrap_or_default()).to_ascii_uppercase();
            name = format!("UID {sub}");
        }
        (if valid_tag(&tag) { tag } else { "*".into() }, name)
    }

    /// APPEND (or UID-less variants) take message literals.
    fn is_append(&self) -> bool {
        let mut words = self.cmd.split(|b| *b == b' ');
        let _tag = words.next();
        words.next().is_some_and(|n| n.eq_ignore_ascii_case(b"APPEND"))
    }
}

/// `Error in IMAP command NAME: text` as Dovecot words parse errors.
pub fn command_error(name: &str, text: &str) -> String {
    if name.is_empty() {
        format!("Error in IMAP command: {text}")
    } else {
        format!("Error in IMAP command {name}: {text}")
    }
}

/// A trailing `{n}`, `{n+}` or `~{n}` on the last line of `cmd`: (size,
/// synchronising, literal8).
fn literal_marker(cmd: &[u8]) -> Option<(usize, bool, bool)> {
    if cmd.last() != Some(&b'}') {
        return None;
    }
    let open = memchr::memrchr(b'{', cmd)?;
    let inner = &cmd[open + 1..cmd.len() - 1];
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Must start an argument: after a space, `(` or `~`.
    if open > 0 && !matches!(cmd[open - 1], b' ' | b'(' | b'~') {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse::<usize>().ok()?;
    Some((size, sync, open > 0 && cmd[open - 1] == b'~'))
}

/// RFC 3501 tag: astring chars except `+`.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.bytes().all(|b| is_atom_char(b) && b != b'+' || b == b']')
}

fn is_atom_char(b: u8) -> bool {
    b > b' ' && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// Parses one complete command buffer.
pub fn parse_command(cmd: &[u8]) -> Event {
    let tag_end = memchr::memchr(b' ', cmd).unwrap_or(cmd.len());
    let tag = String::from_utf8_lossy(&cmd[..tag_end]).into_owned();
    if !valid_tag(&tag) {
        return Event::Bad { tag: "*".into(), text: "Error in IMAP tag: Invalid tag".into() };
    }
    let rest = cmd.get(tag_end + 1..).unwrap_or_default();
    let name_end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
    let name_bytes = &rest[..name_end];
    if name_bytes.is_empty()
        || !name_bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return Event::Bad { tag, text: "Error in IMAP command: Invalid command name".into() };
    }
    let name = String::from_utf8_lossy(name_bytes).into_owned();
    let args_bytes = rest.get(name_end + 1..).unwrap_or_default();
    let mut p = ArgParser { data: args_bytes, pos: 0 };
    match p.list_items(false) {
        Ok(args) => Event::Command(Command { tag, name, args }),
        Err(text) => Event::Bad { tag, text: command_error(&name.to_ascii_uppercase(), text) },
    }
}

/// Parses an argument string (no tag or name) into args, for callers that
/// hold a command's arguments as text (tests, doveadm).
pub fn parse_args(data: &[u8]) -> Result<Vec<Arg>, &'static str> {
    ArgParser { data, pos: 0 }.list_items(false)
}

struct ArgParser<'a> {
    data: &'a [u8],
    pos: usize,
}

impl ArgParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// Items up to `)` (in a list) or the end.
    fn list_items(&mut self, in_list: bool) -> Result<Vec<Arg>, &'static str> {
        let mut items = Vec::new();
        loop {
            while self.peek() == Some(b' ') {
                self.pos += 1;
            }
            match self.peek() {
                None if in_list => return Err("Missing ')'"),
                None => return Ok(items),
                Some(b')') if in_list => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(b')') => return Err("Unexpected ')'"),
                Some(_) => items.push(self.arg()?),
            }
        }
    }

    fn arg(&mut self) -> Result<Arg, &'static str> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                Ok(Arg::List(self.list_items(true)?))
            }
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            Some(b'~') if self.data.get(self.pos + 1) == Some(&b'{') => {
                self.pos += 1;
                self.literal()
            }
            _ => self.atom(),
        }
    }

    fn quoted(&mut self) -> Result<Arg, &'static str> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("Missing '\"'"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Arg::Quoted(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c) => out.push(c),
                        None => return Err("Missing '\"'"),
                    }
                    self.pos += 1;
                }
                Some(b'\r' | b'\n') => return Err("Missing '\"'"),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Arg, &'static str> {
        let close = memchr::memchr(b'}', &self.data[self.pos..]).ok_or("Invalid literal size")? + self.pos;
        let inner = &self.data[self.pos + 1..close];
        let digits = inner.strip_suffix(b"+").unwrap_or(inner);
        let size: usize = std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
            .ok_or("Invalid literal size")?;
        let start = close + 1;
        let end = start.checked_add(size).filter(|e| *e <= self.data.len()).ok_or("Invalid literal size")?;
        self.pos = end;
        Ok(Arg::Literal(self.data[start..end].to_vec()))
    }

    /// An atom; `[...]` inside it may hold spaces and parentheses
    /// (`BODY[HEADER.FIELDS (A B)]<0.10>`).
    fn atom(&mut self) -> Result<Arg, &'static str> {
        let start = self.pos;
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'[' => depth += 1,
                b']' if depth > 0 => depth -= 1,
                b' ' | b'(' | b')' if depth == 0 => break,
                b'"' | b'{' if depth == 0 => return Err("Invalid characters in atom"),
                0..=0x1f | 0x7f => return Err("Invalid characters in atom"),
                _ => {}
            }
            self.pos += 1;
        }
        if depth > 0 {
            return Err("Missing ']'");
        }
        let text = String::from_utf8_lossy(&self.data[start..self.pos]).into_owned();
        if text.eq_ignore_ascii_case("NIL") {
            return Ok(Arg::Nil);
        }
        Ok(Arg::Atom(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut Parser, data: &[u8]) -> Vec<Event> {
        let mut input = data.to_vec();
        let mut out = Vec::new();
        while let Some(e) = p.next(&mut input) {
            out.push(e);
        }
        assert!(input.is_empty());
        out
    }

    fn cmd(tag: &str, name: &str, args: Vec<Arg>) -> Event {
        Event::Command(Command { tag: tag.into(), name: name.into(), args })
    }

    #[test]
    fn atoms_quoted_lists_and_sections() {
        let mut p = Parser::new(Limits::default());
        let ev =
            feed(&mut p, b"a1 FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (A B)]<0.10>) \"x\\\"y\" NIL\r\n");
        assert_eq!(
            ev,
            vec![cmd(
                "a1",
                "FETCH",
                vec![
                    Arg::Atom("1:*".into()),
                    Arg::List(vec![
                        Arg::Atom("FLAGS".into()),
                        Arg::Atom("BODY.PEEK[HEADER.FIELDS (A B)]<0.10>".into())
                    ]),
                    Arg::Quoted(b"x\"y".to_vec()),
                    Arg::Nil,
                ]
            )]
        );
    }

    #[test]
    fn a_literal_ending_in_cr_keeps_it_before_a_bare_lf() {
        let mut p = Parser::new(Limits::default());
        let ev = feed(&mut p, b"a APPEND INBOX {4+}\r\nab\r\r\n");
        assert_eq!(
            ev,
            vec![cmd("a", "APPEND", vec![Arg::Atom("INBOX".into()), Arg::Literal(b"ab\r\r".to_vec())])]
        );
        let mut p = Parser::new(Limits::default());
        let ev = feed(&mut p, b"a APPEND INBOX {3+}\r\nab\r\n");
        assert_eq!(
            ev,
            vec![cmd("a", "APPEND", vec![Arg::Atom("INBOX".into()), Arg::Literal(b"ab\r".to_vec())])]
        );
    }

    #[test]
    fn literals_split_across_reads() {
        let mut p = Parser::new(Limits::default());
        assert_eq!(feed(&mut p, b"a APPEND INBOX {5}\r\n"), vec![Event::Continue]);
        assert_eq!(feed(&mut p, b"he"), vec![]);
        assert!(p.in_command());
        let ev = feed(&mut p, b"llo {2+}\r\nxy\r\n");
        assert_eq!(
            ev,
            vec![cmd(
                "a",
                "APPEND",
                vec![
                    Arg::Atom("INBOX".into()),
                    Arg::Literal(b"hello".to_vec()),
                    Arg::Literal(b"xy".to_vec())
                ]
            )]
        );
        // A `{` in literal data is not a marker for the next line.
        let ev = feed(&mut p, b"c X {3}\r\n {1}\r\n");
        assert_eq!(
            ev,
            vec![Event::Continue, cmd("c", "X", vec![Arg::Literal(b" {1".to_vec()), Arg::Atom("}".into())])]
        );
        // literal8 is APPEND's only (Dovecot: `literal8 not allowed here`).
        let ev = feed(&mut p, b"b UID SEARCH CHARSET UTF-8 TEXT ~{3}\r\n");
        assert_eq!(
            ev,
            vec![Event::Bad {
                tag: "b".into(),
                text: "Error in IMAP command UID SEARCH: literal8 not allowed here".into()
            }]
        );
    }

    #[test]
    fn errors_use_dovecot_wording() {
        let mut p = Parser::new(Limits::default());
        let ev = feed(&mut p, b"d SELECT (\r\ne SELECT )\r\nf SELECT \"abc\r\n* NOOP\r\nh\r\n");
        let texts: Vec<String> = ev
            .into_iter()
            .map(|e| match e {
                Event::Bad { tag, text } => format!("{tag} {text}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            texts,
            vec![
                "d Error in IMAP command SELECT: Missing ')'",
                "e Error in IMAP command SELECT: Unexpected ')'",
                "f Error in IMAP command SELECT: Missing '\"'",
                "* Error in IMAP tag: Invalid tag",
                "h Error in IMAP command: Invalid command name",
            ]
        );
    }

    #[test]
    fn literal8_only_in_append() {
        let mut p = Parser::new(Limits::default());
        let ev = feed(&mut p, b"x SELECT ~{5+}\r\nINBOX\r\na APPEND INBOX ~{3+}\r\na\0b\r\n");
        assert_eq!(
            ev[0],
            Event::Bad {
                tag: "x".into(),
                text: "Error in IMAP command SELECT: literal8 not allowed here".into()
            }
        );
        assert_eq!(
            ev[1],
            Event::Bad { tag: "INBOX".into(), text: "Error in IMAP command: Invalid command name".into() }
        );
        assert!(matches!(&ev[2], Event::Command(c) if c.args[1] == Arg::Literal(b"a\0b".to_vec())), "{ev:?}");
    }

    #[test]
    fn limits() {
        let mut p = Parser::new(Limits { max_line: 100, max_append_literal: 1000 });
        let mut long = b"c SELECT ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 300));
        long.extend_from_slice(b"\r\nz NOOP\r\n");
        let ev = feed(&mut p, &long);
        assert_eq!(
            ev,
            vec![
                Event::Bad {
                    tag: "c".into(),
                    text: "Error in IMAP command SELECT: Too long argument".into()
                },
                cmd("z", "NOOP", vec![])
            ]
        );
        // The same over several reads.
        let ev = feed(&mut p, &long[..50]);
        assert!(ev.is_empty());
        let ev = feed(&mut p, &long[50..]);
        assert_eq!(ev.len(), 2);
        assert_eq!(feed(&mut p, b"a SELECT {101}\r\n"), vec![Event::Fatal("Literal size too large".into())]);
        assert_eq!(feed(&mut p, b"a APPEND x {1000}\r\n"), vec![Event::Continue]);
        let mut p = Parser::new(Limits { max_line: 100, max_append_literal: 1000 });
        assert_eq!(
            feed(&mut p, b"a APPEND x {1001+}\r\n"),
            vec![Event::Fatal("Literal size too large".into())]
        );
    }

    fn run_split(data: &[u8], chunk: usize) -> Vec<Event> {
        let mut p = Parser::new(Limits { max_line: 256, max_append_literal: 1024 });
        let mut events = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            let mut input = piece.to_vec();
            while let Some(e) = p.next(&mut input) {
                let fatal = matches!(e, Event::Fatal(_));
                events.push(e);
                if fatal {
                    return events;
                }
            }
            assert!(input.is_empty());
        }
        events
    }

    proptest::proptest! {
        /// The fuzz target's property, in the normal test run: no panic,
        /// input always consumed, same events however reads are split.
        #[test]
        fn read_boundaries_do_not_matter(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b"a1 ".to_vec()),
                    proptest::strategy::Just(b"FETCH 1:* (FLAGS BODY[HEADER.FIELDS (A)]<0.5>)".to_vec()),
                    proptest::strategy::Just(b"{3}\r\n".to_vec()),
                    proptest::strategy::Just(b"{2+}\r\n".to_vec()),
                    proptest::strategy::Just(b"~{1}\r\n".to_vec()),
                    proptest::strategy::Just(b"\"q\\\"x\" ".to_vec()),
                    proptest::strategy::Just(b"\r\n".to_vec()),
                    proptest::strategy::Just(b"APPEND INBOX ".to_vec()),
                    proptest::strategy::Just(b"((".to_vec()),
                    proptest::strategy::Just(b")".to_vec()),
                    proptest::collection::vec(proptest::num::u8::ANY, 0..40),
                ],
                0..30,
            ),
            chunk in 1usize..17,
        ) {
            let data: Vec<u8> = parts.concat();
            let whole = run_split(&data, data.len().max(1));
            let split = run_split(&data, chunk);
            proptest::prop_assert_eq!(whole, split);
        }
    }
}
