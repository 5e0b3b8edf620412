//! MIME structure and IMAP section access (sans-IO), parsed once with
//! mail-parser and kept as [`CachedFields`]: the raw envelope fields, the
//! body structure (every part's header/body byte ranges, content type and
//! parameters, encoding, id, description, disposition, line count), the
//! Date header and the sizes. IMAP FETCH builds ENVELOPE/BODYSTRUCTURE and
//! BODY[section] from these without parsing the message again.

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// Envelope header names, in IMAP ENVELOPE order.
pub const ENVELOPE_FIELDS: [&str; 10] =
    ["Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "In-Reply-To", "Message-ID"];

/// One MIME part. Ranges are byte offsets into the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MimePart {
    /// The part's header, empty line included (the message header for the
    /// root part).
    pub header: (u32, u32),
    pub body: (u32, u32),
    /// Lowercase `type` and `subtype` (text/plain when absent).
    pub media_type: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
    pub id: Option<String>,
    pub description: Option<String>,
    pub encoding: Option<String>,
    pub disposition: Option<(String, Vec<(String, String)>)>,
    pub location: Option<String>,
    /// Lines of the body (IMAP counts them for text and message parts).
    pub lines: u32,
    pub children: Vec<MimePart>,
    /// A message/rfc822 part's message: its envelope and root part.
    pub message: Option<Box<(Envelope, MimePart)>>,
}

/// Raw (unfolded, undecoded) envelope header values; `None` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    pub fields: Vec<Option<Vec<u8>>>,
}

impl Envelope {
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let i = ENVELOPE_FIELDS.iter().position(|f| f.eq_ignore_ascii_case(name))?;
        self.fields.get(i)?.as_deref()
    }
}

/// Everything FETCH needs about a message without reading it again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CachedFields {
    /// The Date: header as unix seconds.
    pub date: Option<i64>,
    pub received: i64,
    pub saved: i64,
    pub physical_size: u64,
    pub virtual_size: u64,
    pub envelope: Envelope,
    pub structure: MimePart,
}

/// Parses a message into its envelope and structure.
pub fn analyze(data: &[u8], received: i64, saved: i64) -> CachedFields {
    let parsed = MessageParser::default().parse(data);
    let (structure, date) = match &parsed {
        Some(m) if !m.parts.is_empty() => (part_of(m, 0, data), m.date().map(|d| d.to_timestamp())),
        _ => (fallback_part(data), None),
    };
    let header = slice(data, structure.header);
    CachedFields {
        date,
        received,
        saved,
        physical_size: data.len() as u64,
        virtual_size: super::backend::virtual_size(data),
        envelope: envelope_of(header),
        structure,
    }
}

/// The byte range of an IMAP section (`""`, `HEADER`, `TEXT`, `1`, `1.2`,
/// `2.MIME`, `3.HEADER`, `3.1.TEXT`); `None` if the message has no such
/// part. `HEADER.FIELDS` filtering is left to the caller (on `HEADER`).
pub fn section(root: &MimePart, message_len: u32, spec: &str) -> Option<(u32, u32)> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Some((0, message_len));
    }
    let mut tokens = spec.split('.').peekable();
    let mut parent = root;
    let mut selected: Option<&MimePart> = None;
    while let Some(t) = tokens.peek() {
        let Ok(n) = t.parse::<usize>() else { break };
        tokens.next();
        if let Some(sel) = selected {
            // Going deeper: into a message/rfc822 part's message.
            parent = match &sel.message {
                Some(inner) => &inner.1,
                None => sel,
            };
        }
        let next = if parent.media_type == "multipart" {
            parent.children.get(n.checked_sub(1)?)?
        } else if n == 1 {
            parent
        } else {
            return None;
        };
        selected = Some(next);
    }
    let keyword = tokens.collect::<Vec<_>>().join(".").to_ascii_uppercase();
    match (selected, keyword.as_str()) {
        (None, "HEADER") => Some(root.header),
        (None, "TEXT") => Some(root.body),
        (None, _) => None,
        (Some(p), "") => Some(p.body),
        (Some(p), "MIME") => Some(p.header),
        (Some(p), "HEADER") => p.message.as_ref().map(|m| m.1.header),
        (Some(p), "TEXT") => p.message.as_ref().map(|m| m.1.body),
        _ => None,
    }
}

/// The bytes of `range` in `data` (clamped).
pub fn slice(data: &[u8], range: (u32, u32)) -> &[u8] {
    let end = (range.1 as usize).min(data.len());
    let start = (range.0 as usize).min(end);
    &data[start..end]
}

/// Unfolded raw header fields (name, value without the leading space).
pub fn header_fields(header: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in header.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') {
            if let Some((_, value)) = out.last_mut() {
                value.extend_from_slice(line);
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
        let value = line[colon + 1..].trim_ascii().to_vec();
        out.push((name, value));
    }
    out
}

fn envelope_of(header: &[u8]) -> Envelope {
    let fields = header_fields(header);
    Envelope {
        fields: ENVELOPE_FIELDS
            .iter()
            .map(|name| fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()))
            .collect(),
    }
}

fn part_of(message: &mail_parser::Message<'_>, index: usize, data: &[u8]) -> MimePart {
    let Some(p) = message.parts.get(index) else { return MimePart::default() };
    let (media_type, subtype, params) = match p.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("plain").to_ascii_lowercase(),
            ct.attributes()
                .unwrap_or_default()
                .iter()
                .map(|a| (a.name.to_string(), a.value.to_string()))
                .collect(),
        ),
        None => ("text".into(), "plain".into(), vec![("charset".into(), "us-ascii".into())]),
    };
    let body = (p.offset_body, p.offset_end);
    let mut part = MimePart {
        header: (p.offset_header, p.offset_body),
        body,
        media_type,
        subtype,
        params,
        id: p.content_id().map(str::to_string),
        description: p.content_description().map(str::to_string),
        encoding: p.content_transfer_encoding().map(str::to_string),
        disposition: p.content_disposition().map(|d| {
            let params = d
                .attributes()
                .unwrap_or_default()
                .iter()
                .map(|a| (a.name.to_string(), a.value.to_string()))
                .collect();
            (d.ctype().to_string(), params)
        }),
        location: p.content_location().map(str::to_string),
        lines: slice(data, body).iter().filter(|&&b| b == b'\n').count() as u32,
        children: Vec::new(),
        message: None,
    };
    match &p.body {
        PartType::Multipart(ids) => {
            part.children = ids.iter().map(|id| part_of(message, *id as usize, data)).collect();
        }
        PartType::Message(inner) => {
            let root = part_of(inner, 0, data);
            let envelope = envelope_of(slice(data, root.header));
            part.message = Some(Box::new((envelope, root)));
        }
        _ => {}
    }
    part
}

/// A message mail-parser can't read: one text part after the header.
fn fallback_part(data: &[u8]) -> MimePart {
    let body_start = super::mailbox::header_len(data) as u32;
    MimePart {
        header: (0, body_start),
        body: (body_start, data.len() as u32),
        media_type: "text".into(),
        subtype: "plain".into(),
        lines: data[body_start as usize..].iter().filter(|&&b| b == b'\n').count() as u32,
        ..MimePart::default()
    }
}

// --- cache encoding ---------------------------------------------------

/// Serialises cached fields (the field cache's record payload).
pub fn encode(f: &CachedFields) -> Vec<u8> {
    let mut e = Enc(Vec::with_capacity(256));
    e.opt_i64(f.date);
    e.u64(f.received as u64);
    e.u64(f.saved as u64);
    e.u64(f.physical_size);
    e.u64(f.virtual_size);
    e.envelope(&f.envelope);
    e.part(&f.structure);
    e.0
}

/// The inverse of [`encode`]; `None` for damaged data.
pub fn decode(data: &[u8]) -> Option<CachedFields> {
    let mut d = Dec(data);
    let f = CachedFields {
        date: d.opt_i64()?,
        received: d.u64()? as i64,
        saved: d.u64()? as i64,
        physical_size: d.u64()?,
        virtual_size: d.u64()?,
        envelope: d.envelope()?,
        structure: d.part(0)?,
    };
    d.0.is_empty().then_some(f)
}

struct Enc(Vec<u8>);

impl Enc {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn opt(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.0.push(1);
                self.bytes(b);
            }
            None => self.0.push(0),
        }
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        self.opt(v.map(|v| v.to_le_bytes()).as_ref().map(|b| &b[..]));
    }
    fn pairs(&mut self, pairs: &[(String, String)]) {
        self.u32(pairs.len() as u32);
        for (k, v) in pairs {
            self.bytes(k.as_bytes());
            self.bytes(v.as_bytes());
        }
    }
    fn envelope(&mut self, env: &Envelope) {
        self.u32(env.fields.len() as u32);
        for f in &env.fields {
            self.opt(f.as_deref());
        }
    }
    fn part(&mut self, p: &MimePart) {
        for v in [p.header.0, p.header.1, p.body.0, p.body.1, p.lines] {
            self.u32(v);
        }
        self.bytes(p.media_type.as_bytes());
        self.bytes(p.subtype.as_bytes());
        self.pairs(&p.params);
        for s in [&p.id, &p.description, &p.encoding, &p.location] {
            self.opt(s.as_deref().map(str::as_bytes));
        }
        match &p.disposition {
            Some((kind, params)) => {
                self.0.push(1);
                self.bytes(kind.as_bytes());
                self.pairs(params);
            }
            None => self.0.push(0),
        }
        self.u32(p.children.len() as u32);
        for c in &p.children {
            self.part(c);
        }
        match &p.message {
            Some(m) => {
                self.0.push(1);
                self.envelope(&m.0);
                self.part(&m.1);
            }
            None => self.0.push(0),
        }
    }
}

struct Dec<'a>(&'a [u8]);

impl Dec<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = self.u32()? as usize;
        self.take(n).map(<[u8]>::to_vec)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
    fn opt(&mut self) -> Option<Option<Vec<u8>>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.bytes()?)),
            _ => None,
        }
    }
    fn opt_string(&mut self) -> Option<Option<String>> {
        match self.opt()? {
            None => Some(None),
            Some(b) => Some(Some(String::from_utf8(b).ok()?)),
        }
    }
    fn opt_i64(&mut self) -> Option<Option<i64>> {
        match self.opt()? {
            None => Some(None),
            Some(b) => Some(Some(i64::from_le_bytes(b.try_into().ok()?))),
        }
    }
    fn pairs(&mut self) -> Option<Vec<(String, String)>> {
        let n = self.u32()? as usize;
        (0..n.min(10_000)).map(|_| Some((self.string()?, self.string()?))).collect()
    }
    fn envelope(&mut self) -> Option<Envelope> {
        let n = self.u32()? as usize;
        Some(Envelope { fields: (0..n.min(64)).map(|_| self.opt()).collect::<Option<_>>()? })
    }
    fn part(&mut self, depth: u32) -> Option<MimePart> {
        if depth > 100 {
            return None;
        }
        let (h0, h1, b0, b1, lines) = (self.u32()?, self.u32()?, self.u32()?, self.u32()?, self.u32()?);
        let mut p = MimePart {
            header: (h0, h1),
            body: (b0, b1),
            lines,
            media_type: self.string()?,
            subtype: self.string()?,
            params: self.pairs()?,
            id: self.opt_string()?,
            description: self.opt_string()?,
            encoding: self.opt_string()?,
            location: self.opt_string()?,
            ..MimePart::default()
        };
        if self.u8()? == 1 {
            p.disposition = Some((self.string()?, self.pairs()?));
        }
        let n = self.u32()? as usize;
        p.children = (0..n.min(100_000)).map(|_| self.part(depth + 1)).collect::<Option<_>>()?;
        if self.u8()? == 1 {
            let env = self.envelope()?;
            p.message = Some(Box::new((env, self.part(depth + 1)?)));
        }
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(data: &'a [u8], f: &CachedFields, spec: &str) -> Option<&'a [u8]> {
        section(&f.structure, data.len() as u32, spec).map(|r| slice(data, r))
    }

    const NESTED: &[u8] = b"Subject: outer\nContent-Type: multipart/mixed; boundary=AA\n\npre\n\
--AA\nContent-Type: text/plain; charset=utf-8\n\nhello\n\
--AA\nContent-Type: message/rfc822\nContent-Description: fwd\n\n\
Subject: inner\nFrom: x@y\nContent-Type: multipart/alternative; boundary=BB\n\n\
--BB\n\ninner1\n--BB\nContent-Type: text/html\n\n<b>x</b>\n--BB--\n\n--AA--\nepilogue\n";

    #[test]
    fn nested_multipart_and_message_rfc822() {
        let f = analyze(NESTED, 1, 2);
        assert_eq!(
            get(NESTED, &f, "HEADER").unwrap(),
            b"Subject: outer\nContent-Type: multipart/mixed; boundary=AA\n\n"
        );
        assert_eq!(get(NESTED, &f, "1").unwrap(), b"hello");
        assert_eq!(get(NESTED, &f, "1.MIME").unwrap(), b"Content-Type: text/plain; charset=utf-8\n\n");
        assert!(get(NESTED, &f, "2").unwrap().starts_with(b"Subject: inner\n"));
        assert_eq!(
            get(NESTED, &f, "2.HEADER").unwrap(),
            b"Subject: inner\nFrom: x@y\nContent-Type: multipart/alternative; boundary=BB\n\n"
        );
        assert!(get(NESTED, &f, "2.TEXT").unwrap().starts_with(b"--BB\n"));
        assert_eq!(get(NESTED, &f, "2.1").unwrap(), b"inner1");
        assert_eq!(get(NESTED, &f, "2.2").unwrap(), b"<b>x</b>");
        assert_eq!(get(NESTED, &f, "2.2.MIME").unwrap(), b"Content-Type: text/html\n\n");
        assert_eq!(get(NESTED, &f, "3"), None);
        assert_eq!(get(NESTED, &f, "1.HEADER"), None, "HEADER only of message/rfc822 parts");
        let inner = f.structure.children[1].message.as_ref().unwrap();
        assert_eq!(inner.0.get("Subject").unwrap(), b"inner");
        assert_eq!(f.structure.children[1].description.as_deref(), Some("fwd"));
        assert_eq!(f.structure.children[0].params, [("charset".to_string(), "utf-8".to_string())]);
        assert_eq!((f.structure.media_type.as_str(), f.structure.subtype.as_str()), ("multipart", "mixed"));
        assert_eq!(
            f.virtual_size,
            NESTED.len() as u64 + NESTED.iter().filter(|&&b| b == b'\n').count() as u64
        );
        assert_eq!(decode(&encode(&f)).unwrap(), f);
    }

    #[test]
    fn single_part_no_trailing_newline_and_8bit_headers() {
        let data = "Subject: Grüße\nDate: Mon, 23 Nov 2026 10:00:00 +0000\n\nno trailing newline".as_bytes();
        let f = analyze(data, 0, 0);
        assert_eq!(get(data, &f, "1").unwrap(), b"no trailing newline");
        assert_eq!(get(data, &f, "TEXT").unwrap(), b"no trailing newline");
        assert_eq!(get(data, &f, "").unwrap(), data);
        assert_eq!(f.envelope.get("subject").unwrap(), "Grüße".as_bytes());
        assert_eq!(f.date, Some(1_795_428_000));
        assert_eq!(f.structure.lines, 0);
        assert_eq!(f.virtual_size, data.len() as u64 + 3);
        assert_eq!(decode(&encode(&f)).unwrap(), f);
    }

    #[test]
    fn missing_boundary_and_garbage_do_not_panic() {
        let data = b"Content-Type: multipart/mixed\n\n--x\n\nbody\n";
        let f = analyze(data, 0, 0);
        assert!(get(data, &f, "TEXT").is_some());
        let unterminated = b"Content-Type: multipart/mixed; boundary=ZZ\n\n--ZZ\n\nno end";
        let f = analyze(unterminated, 0, 0);
        assert_eq!(get(unterminated, &f, "1").unwrap(), b"no end");
        for data in [&b""[..], b"\n", b"no header at all", b"Content-Type: message/rfc822\n\n"] {
            let f = analyze(data, 0, 0);
            let _ = section(&f.structure, data.len() as u32, "1.2.3.HEADER");
            assert_eq!(decode(&encode(&f)), Some(f));
        }
        assert_eq!(decode(b"\x01\x02"), None);
    }

    #[test]
    fn header_fields_unfold() {
        let fields = header_fields(b"To: a,\n b\nX: y\r\n\nBody: no\n");
        assert_eq!(fields, [("To".to_string(), b"a, b".to_vec()), ("X".to_string(), b"y".to_vec())]);
    }
}
