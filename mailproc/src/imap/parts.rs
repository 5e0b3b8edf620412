//! The MIME part tree as Dovecot's message parser builds it, which is what
//! BODY/BODYSTRUCTURE describe: header and body ranges of every part,
//! body sizes and line counts with bare LFs counted as CRLF, and the parsed
//! `Content-*` fields. Boundaries are recognised the way Dovecot does it:
//! at any line start (inside part headers too), by prefix match, the
//! innermost open boundary first; the line break before a boundary
//! belongs to the boundary. `multipart/*` without a usable boundary has no
//! children; children of `multipart/digest` default to `message/rfc822`.
//! `Content-*` fields count only in MIME parts: children of a multipart,
//! or parts with a `MIME-Version` or `Content-Type` field (Dovecot's
//! non-strict rule); elsewhere they are ignored.

use super::header;
use super::rfc822::Parser;

/// Deeper nesting is parsed as an opaque body (Dovecot also caps it).
const MAX_DEPTH: usize = 100;

/// The `Content-*` fields of one part (raw values, Dovecot's parsing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartData {
    pub content_type: Option<Vec<u8>>,
    pub content_subtype: Option<Vec<u8>>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub transfer_encoding: Option<Vec<u8>>,
    pub id: Option<Vec<u8>>,
    pub description: Option<Vec<u8>>,
    pub disposition: Option<Vec<u8>>,
    pub disposition_params: Vec<(Vec<u8>, Vec<u8>)>,
    pub md5: Option<Vec<u8>>,
    pub language: Option<Vec<Vec<u8>>>,
    pub location: Option<Vec<u8>>,
}

/// What kind of body a part has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Multipart,
    /// `message/rfc822`: exactly one child, the enclosed message.
    Message,
    Leaf,
}

/// One MIME part; ranges are byte offsets into the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub header: (usize, usize),
    pub body: (usize, usize),
    /// Body size with every bare LF counted as CRLF.
    pub body_vsize: u64,
    pub body_lines: u32,
    pub kind: Kind,
    pub data: PartData,
    pub children: Vec<Part>,
}

impl Part {
    /// `text/*`, or no Content-Type at all (and not a digest's message).
    pub fn is_text(&self) -> bool {
        self.kind == Kind::Leaf
            && self.data.content_type.as_deref().is_none_or(|t| t.eq_ignore_ascii_case(b"text"))
    }
}

/// Parses `message` into its part tree.
pub fn parse(message: &[u8]) -> Part {
    let mut p = MimeParser { data: message, pos: 0, boundaries: Vec::new() };
    p.part(false, false, 0).0
}

/// Size with bare LFs counted as CRLF, and the number of lines.
pub fn vsize_lines(data: &[u8]) -> (u64, u32) {
    let mut lines = 0u32;
    let mut extra = 0u64;
    for i in memchr::memchr_iter(b'\n', data) {
        lines += 1;
        if i == 0 || data[i - 1] != b'\r' {
            extra += 1;
        }
    }
    (data.len() as u64 + extra, lines)
}

/// Where parsing of a part stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Eof,
    /// A boundary line starting at `line`, of the boundary at stack index
    /// `level`; `end` for the closing `--boundary--`.
    Boundary {
        level: usize,
        end: bool,
        line: usize,
    },
}

struct MimeParser<'a> {
    data: &'a [u8],
    pos: usize,
    boundaries: Vec<Vec<u8>>,
}

impl MimeParser<'_> {
    fn line_end(&self, pos: usize) -> usize {
        memchr::memchr(b'\n', &self.data[pos..]).map_or(self.data.len(), |i| pos + i + 1)
    }

    /// The boundary starting the line at `pos`, innermost first.
    fn boundary_at(&self, pos: usize) -> Option<Stop> {
        let rest = self.data.get(pos..)?.strip_prefix(b"--")?;
        let level = (0..self.boundaries.len()).rev().find(|&l| rest.starts_with(&self.boundaries[l]))?;
        let end = rest[self.boundaries[level].len()..].starts_with(b"--");
        Some(Stop::Boundary { level, end, line: pos })
    }

    /// Skips body lines up to the next boundary line or the end.
    fn skip_to_boundary(&mut self) -> Stop {
        while self.pos < self.data.len() {
            if let Some(stop) = self.boundary_at(self.pos) {
                return stop;
            }
            self.pos = self.line_end(self.pos);
        }
        Stop::Eof
    }

    /// Where a body that `stop` ended ends: before the boundary line's
    /// preceding line break, never before `start`.
    fn end_before(&self, stop: Stop, start: usize) -> usize {
        match stop {
            Stop::Eof => self.data.len(),
            Stop::Boundary { line, .. } => {
                let mut end = line;
                if end > start && self.data[end - 1] == b'\n' {
                    end -= 1;
                    if end > start && self.data[end - 1] == b'\r' {
                        end -= 1;
                    }
                }
                end.max(start)
            }
        }
    }

    fn part(&mut self, in_multipart: bool, digest_child: bool, depth: usize) -> (Part, Stop) {
        let header_start = self.pos;
        let mut stop = None;
        while self.pos < self.data.len() {
            if let Some(s) = self.boundary_at(self.pos) {
                stop = Some(s);
                break;
            }
            let end = self.line_end(self.pos);
            let line = &self.data[self.pos..end];
            self.pos = end;
            if line == b"\n" || line == b"\r\n" {
                break;
            }
        }
        let header_end = self.pos;
        let block = &self.data[header_start..header_end];
        let is_mime = in_multipart
            || header::fields(block).iter().any(|f| {
                f.name.eq_ignore_ascii_case(b"MIME-Version") || f.name.eq_ignore_ascii_case(b"Content-Type")
            });
        let data = if is_mime { part_data(block) } else { PartData::default() };
        let ctype = data.content_type.as_deref().map(<[u8]>::to_ascii_lowercase);
        let subtype = data.content_subtype.as_deref().map(<[u8]>::to_ascii_lowercase);
        let mut kind = match (ctype.as_deref(), subtype.as_deref()) {
            (Some(b"multipart"), _) => Kind::Multipart,
            (Some(b"message"), Some(b"rfc822")) => Kind::Message,
            (None, _) if digest_child => Kind::Message,
            _ => Kind::Leaf,
        };
        if depth >= MAX_DEPTH {
            kind = Kind::Leaf;
        }
        let body_start = self.pos;
        let mut children = Vec::new();
        let stop = match stop {
            Some(s) => s,
            None => match kind {
                Kind::Leaf => self.skip_to_boundary(),
                Kind::Message => {
                    let (child, s) = self.part(false, false, depth + 1);
                    children.push(child);
                    s
                }
                Kind::Multipart => {
                    let boundary = data
                        .params
                        .iter()
                        .rev()
                        .find(|(k, _)| k.eq_ignore_ascii_case(b"boundary"))
                        .map(|(_, v)| v.clone());
                    match boundary {
                        None => self.skip_to_boundary(),
                        Some(b) => {
                            let digest = subtype.as_deref() == Some(b"digest");
                            self.multipart(b, digest, depth, &mut children)
                        }
                    }
                }
            },
        };
        let body_end = self.end_before(stop, body_start);
        let (body_vsize, body_lines) = vsize_lines(&self.data[body_start..body_end]);
        let part = Part {
            header: (header_start, header_end),
            body: (body_start, body_end),
            body_vsize,
            body_lines,
            kind,
            data,
            children,
        };
        (part, stop)
    }

    /// The children of a multipart body; returns the stop that ended it
    /// (a parent's boundary, or the end of the message).
    fn multipart(&mut self, boundary: Vec<u8>, digest: bool, depth: usize, children: &mut Vec<Part>) -> Stop {
        self.boundaries.push(boundary);
        let mine = self.boundaries.len() - 1;
        let mut stop = self.skip_to_boundary();
        loop {
            match stop {
                Stop::Boundary { level, end, line } if level == mine => {
                    self.pos = self.line_end(line);
                    if end {
                        self.boundaries.pop();
                        return self.skip_to_boundary();
                    }
                    let (child, s) = self.part(true, digest, depth + 1);
                    children.push(child);
                    stop = s;
                }
                _ => break,
            }
        }
        self.boundaries.truncate(mine);
        stop
    }
}

/// Parses the `Content-*` fields of a part header the way Dovecot does:
/// the first Content-Type/Transfer-Encoding/ID/… wins; Disposition is
/// replaced until one with parameters was seen.
pub fn part_data(header_block: &[u8]) -> PartData {
    let mut d = PartData::default();
    for f in header::fields(header_block) {
        if f.name.len() < 8 || !f.name[..8].eq_ignore_ascii_case(b"content-") {
            continue;
        }
        let name = f.name[8..].to_ascii_lowercase();
        let value = f.value;
        match &name[..] {
            b"type" if d.content_type.is_none() => content_type(&mut d, &value),
            b"transfer-encoding" if d.transfer_encoding.is_none() => {
                let mut p = Parser::new(&value);
                let _ = p.skip_lwsp();
                let mut tok = Vec::new();
                if p.mime_token(&mut tok).is_ok() && p.skip_lwsp() == Ok(false) && !tok.is_empty() {
                    d.transfer_encoding = Some(tok);
                }
            }
            b"id" if d.id.is_none() => d.id = Some(value),
            b"md5" if d.md5.is_none() => d.md5 = Some(value),
            b"description" if d.description.is_none() => d.description = Some(value),
            b"location" if d.location.is_none() => d.location = Some(value),
            b"language" if d.language.is_none() => {
                let mut p = Parser::new(&value);
                let _ = p.skip_lwsp();
                let mut langs = Vec::new();
                loop {
                    let mut atom = Vec::new();
                    if p.atom(&mut atom).is_err() {
                        break;
                    }
                    langs.push(atom);
                    if p.peek() != Some(b',') {
                        break;
                    }
                    p.pos += 1;
                    let _ = p.skip_lwsp();
                }
                if !langs.is_empty() {
                    d.language = Some(langs);
                }
            }
            b"disposition" if d.disposition_params.is_empty() => {
                let mut p = Parser::new(&value);
                let _ = p.skip_lwsp();
                let mut tok = Vec::new();
                if p.mime_token(&mut tok).is_ok() {
                    d.disposition = Some(tok);
                    d.disposition_params = p.params();
                }
            }
            _ => {}
        }
    }
    d
}

fn content_type(d: &mut PartData, value: &[u8]) {
    let mut p = Parser::new(value);
    let _ = p.skip_lwsp();
    let mut s = Vec::new();
    let r = p.content_type(&mut s);
    match s.iter().position(|&b| b == b'/') {
        Some(i) => {
            d.content_subtype = Some(s[i + 1..].to_vec());
            s.truncate(i);
        }
        None => d.content_subtype = Some(Vec::new()),
    }
    d.content_type = Some(s);
    if r.is_ok() {
        d.params = p.params();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_ranges_and_sizes() {
        let m = b"Content-Type: multipart/mixed; boundary=b\n\npre\n--b\n\none\n--b\nContent-Type: text/html\n\n<p>\n\n--b--\nepi\n";
        let p = parse(m);
        assert_eq!(p.kind, Kind::Multipart);
        assert_eq!(p.children.len(), 2);
        let one = &p.children[0];
        assert_eq!(&m[one.body.0..one.body.1], b"one");
        assert_eq!((one.body_vsize, one.body_lines), (3, 0));
        let two = &p.children[1];
        assert_eq!(&m[two.body.0..two.body.1], b"<p>\n");
        assert_eq!((two.body_vsize, two.body_lines), (5, 1));
        assert_eq!(two.data.content_subtype.as_deref(), Some(&b"html"[..]));
    }

    #[test]
    fn boundaries_inside_headers_and_prefix_matches() {
        let m = b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n--x\n\nsecond\n--x--\n";
        let p = parse(m);
        assert_eq!(p.children.len(), 2);
        assert_eq!(p.children[0].body_vsize, 0);
        let m = b"Content-Type: multipart/mixed; boundary=a\n\n--ab\n\nprefix\n--a--\n";
        assert_eq!(parse(m).children.len(), 1);
    }

    #[test]
    fn content_fields_need_mime() {
        let p = parse(b"Content-Description: d\nContent-Transfer-Encoding: base64\n\nx\n");
        assert_eq!(p.data, PartData::default());
        let p = parse(b"Mime-Version: 1.0\nContent-Description: d\n\nx\n");
        assert_eq!(p.data.description.as_deref(), Some(&b"d"[..]));
        let p =
            parse(b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Description: d\n\nx\n--b--\n");
        assert_eq!(p.children[0].data.description.as_deref(), Some(&b"d"[..]));
    }

    #[test]
    fn digest_children_are_messages_and_depth_is_capped() {
        let m = b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: x\n\nbody\n--d--\n";
        let p = parse(m);
        assert_eq!(p.children[0].kind, Kind::Message);
        assert_eq!(p.children[0].children.len(), 1);
        let deep = "Content-Type: message/rfc822\n\n".repeat(500);
        let _ = parse(deep.as_bytes());
    }
}
