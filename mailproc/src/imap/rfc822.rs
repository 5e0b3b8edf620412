//! RFC 822/2822 lexical tokens as Dovecot's parser reads them: comments
//! and folding whitespace, atoms, dot-atoms, quoted strings, phrases,
//! domains, MIME tokens, `Content-Type` values and their parameters
//! (RFC 2045 `;name=value`, merged RFC 2231 continuations). The address
//! parser and the MIME part parser build on it; matching Dovecot's
//! tolerance of broken input byte for byte is the point, so the return
//! conventions mirror it: `Err(SyntaxError)` for a syntax error, `Ok(false)` when
//! the input ended, `Ok(true)` when more input follows.

/// Input that doesn't follow the grammar (callers recover as Dovecot does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("RFC 822 syntax error")]
pub struct SyntaxError;

/// Outcome of a tokenizer step: `Ok(true)` more input follows,
/// `Ok(false)` end of input, `Err(SyntaxError)` syntax error.
pub type Step = Result<bool, SyntaxError>;

/// RFC 5322 `atext`, with 8-bit bytes accepted as Dovecot does.
pub fn is_atext(c: u8) -> bool {
    c >= 0x80
        || c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'/'
                | b'='
                | b'?'
                | b'^'
                | b'_'
                | b'`'
                | b'{'
                | b'|'
                | b'}'
                | b'~'
        )
}

/// `atext` minus the MIME tspecials `/`, `?` and `=` (RFC 2045 token).
fn is_mime_token_char(c: u8) -> bool {
    is_atext(c) && !matches!(c, b'/' | b'?' | b'=')
}

/// A cursor over one header value.
pub struct Parser<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    /// The text of the last comment skipped, when the caller asked to
    /// keep it (addresses use it as the display name).
    pub last_comment: Option<Vec<u8>>,
}

impl<'a> Parser<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Parser { data, pos: 0, last_comment: None }
    }

    pub fn with_comments(data: &'a [u8]) -> Self {
        Parser { data, pos: 0, last_comment: Some(Vec::new()) }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The current byte; `None` at the end (C code reads a NUL there).
    pub fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn more(&self) -> bool {
        self.pos < self.data.len()
    }

    /// Skips one `(comment)`, nested ones included.
    pub fn skip_comment(&mut self) -> Step {
        if let Some(c) = self.last_comment.as_mut() {
            c.clear();
        }
        let mut level = 1;
        self.pos += 1;
        let mut start = self.pos;
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                b'(' => level += 1,
                b')' => {
                    level -= 1;
                    if level == 0 {
                        if let Some(c) = self.last_comment.as_mut() {
                            c.extend_from_slice(&self.data[start..self.pos]);
                        }
                        self.pos += 1;
                        return Ok(self.more());
                    }
                }
                b'\\' => {
                    if let Some(c) = self.last_comment.as_mut() {
                        c.extend_from_slice(&self.data[start..self.pos]);
                    }
                    start = self.pos + 1;
                    self.pos += 1;
                    if self.pos >= self.data.len() {
                        return Err(SyntaxError);
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(SyntaxError)
    }

    /// Skips whitespace, line breaks and comments.
    pub fn skip_lwsp(&mut self) -> Step {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => {
                    self.skip_comment()?;
                }
                _ => break,
            }
        }
        Ok(self.more())
    }

    /// `1*atext`, then whitespace.
    pub fn atom(&mut self, out: &mut Vec<u8>) -> Step {
        match self.peek() {
            Some(c) if is_atext(c) => {}
            _ => return Err(SyntaxError),
        }
        let start = self.pos;
        while self.peek().is_some_and(is_atext) {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.more() {
            self.skip_lwsp()
        } else {
            Ok(false)
        }
    }

    /// `dot-atom`, allowing whitespace around the dots (RFC 822).
    pub fn dot_atom(&mut self, out: &mut Vec<u8>) -> Step {
        match self.peek() {
            Some(c) if is_atext(c) => {}
            _ => return Err(SyntaxError),
        }
        let mut start = self.pos;
        self.pos += 1;
        while self.more() {
            if is_atext(self.data[self.pos]) {
                self.pos += 1;
                continue;
            }
            out.extend_from_slice(&self.data[start..self.pos]);
            if !self.skip_lwsp()? {
                return Ok(false);
            }
            if self.peek() != Some(b'.') {
                return Ok(true);
            }
            self.pos += 1;
            out.push(b'.');
            if !self.skip_lwsp()? {
                return Ok(false);
            }
            start = self.pos;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        Ok(false)
    }

    /// An RFC 2045 token (possibly empty), then whitespace.
    pub fn mime_token(&mut self, out: &mut Vec<u8>) -> Step {
        let start = self.pos;
        while self.peek().is_some_and(|c| is_mime_token_char(c) || c == b'.') {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.more() {
            self.skip_lwsp()
        } else {
            Ok(false)
        }
    }

    /// A quoted string (the parser is on the opening quote), unescaped
    /// and with folding line breaks removed.
    pub fn quoted_string(&mut self, out: &mut Vec<u8>) -> Step {
        self.pos += 1;
        let mut start = self.pos;
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                b'"' => {
                    out.extend_from_slice(&self.data[start..self.pos]);
                    self.pos += 1;
                    return self.skip_lwsp();
                }
                b'\n' => {
                    let mut end = self.pos;
                    if end > start && self.data[end - 1] == b'\r' {
                        end -= 1;
                    }
                    out.extend_from_slice(&self.data[start..end]);
                    start = self.pos + 1;
                }
                b'\\' => {
                    self.pos += 1;
                    if self.pos >= self.data.len() {
                        return Err(SyntaxError);
                    }
                    out.extend_from_slice(&self.data[start..self.pos - 1]);
                    start = self.pos;
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(SyntaxError)
    }

    /// Atoms and dots, without skipping whitespace between them.
    fn atom_or_dot(&mut self, out: &mut Vec<u8>) -> Step {
        let start = self.pos;
        while self.peek().is_some_and(|c| is_atext(c) || c == b'.') {
            self.pos += 1;
        }
        out.extend_from_slice(&self.data[start..self.pos]);
        if self.more() {
            self.skip_lwsp()
        } else {
            Ok(false)
        }
    }

    /// A phrase (display name): words joined by single spaces.
    pub fn phrase(&mut self, out: &mut Vec<u8>) -> Step {
        match self.peek() {
            None => return Ok(false),
            Some(b'.') => return Err(SyntaxError),
            _ => {}
        }
        loop {
            let more =
                if self.peek() == Some(b'"') { self.quoted_string(out)? } else { self.atom_or_dot(out)? };
            if !more {
                return Ok(false);
            }
            match self.peek() {
                Some(c) if is_atext(c) || c == b'"' || c == b'.' => out.push(b' '),
                _ => break,
            }
        }
        self.skip_lwsp()
    }

    fn domain_literal(&mut self, out: &mut Vec<u8>) -> Step {
        let start = self.pos;
        while self.pos < self.data.len() {
            match self.data[self.pos] {
                b'\\' => {
                    self.pos += 1;
                    if self.pos >= self.data.len() {
                        break;
                    }
                }
                b']' => {
                    self.pos += 1;
                    out.extend_from_slice(&self.data[start..self.pos]);
                    return self.skip_lwsp();
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(SyntaxError)
    }

    /// `@domain` (the parser is on the `@`).
    pub fn domain(&mut self, out: &mut Vec<u8>) -> Step {
        self.pos += 1;
        if !self.skip_lwsp()? {
            return Err(SyntaxError);
        }
        if self.peek() == Some(b'[') {
            self.domain_literal(out)
        } else {
            self.dot_atom(out)
        }
    }

    /// `type/subtype`, appended to `out`. On errors `out` keeps what
    /// Dovecot keeps: a lone type token that ends the value (`text`), or
    /// nothing at all.
    pub fn content_type(&mut self, out: &mut Vec<u8>) -> Step {
        let start = out.len();
        if !self.skip_lwsp()? {
            return Err(SyntaxError);
        }
        let more = self.mime_token(out)?;
        if out.len() == start || !more {
            return Err(SyntaxError);
        }
        let fail = |out: &mut Vec<u8>| {
            out.truncate(start);
            Err(SyntaxError)
        };
        if self.peek() != Some(b'/') {
            return fail(out);
        }
        self.pos += 1;
        if !matches!(self.skip_lwsp(), Ok(true)) {
            return fail(out);
        }
        out.push(b'/');
        let subtype_start = out.len();
        let Ok(more) = self.mime_token(out) else { return fail(out) };
        if out.len() == subtype_start || (more && self.peek() != Some(b';')) {
            return fail(out);
        }
        Ok(more)
    }

    /// One `;name=value` parameter: `Ok(None)` at the end of input.
    #[allow(clippy::type_complexity)]
    fn content_param(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>, SyntaxError> {
        if !self.more() {
            return Ok(None);
        }
        if self.peek() != Some(b';') {
            return Err(SyntaxError);
        }
        self.pos += 1;
        if !self.skip_lwsp()? {
            return Err(SyntaxError);
        }
        let mut key = Vec::new();
        if !self.mime_token(&mut key)? || key.is_empty() {
            return Err(SyntaxError);
        }
        if self.peek() != Some(b'=') {
            return Err(SyntaxError);
        }
        self.pos += 1;
        let mut value = Vec::new();
        let ok = match self.skip_lwsp() {
            Ok(true) => {
                if self.peek() == Some(b'"') {
                    self.quoted_string(&mut value).is_ok()
                } else if self.peek() == Some(b'=') {
                    // Dovecot's workaround for `name==?utf-8?b?...?=`.
                    while let Some(c) = self.peek() {
                        if matches!(c, b';' | b' ' | b'\t' | b'\r' | b'\n') {
                            break;
                        }
                        value.push(c);
                        self.pos += 1;
                    }
                    true
                } else {
                    self.mime_token(&mut value).is_ok()
                }
            }
            Ok(false) => true,
            Err(SyntaxError) => false,
        };
        if ok {
            Ok(Some((key, value)))
        } else {
            Err(SyntaxError)
        }
    }

    /// All remaining parameters, RFC 2231 continuations merged as
    /// Dovecot merges them (`key*`, kept encoded).
    pub fn params(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        struct Cont {
            key: Vec<u8>,
            value: Vec<u8>,
            idx: u32,
            extended: bool,
        }
        let mut result = Vec::new();
        let mut conts: Vec<Cont> = Vec::new();
        loop {
            let (key, value) = match self.content_param() {
                Ok(None) => break,
                Ok(Some(kv)) => kv,
                Err(SyntaxError) => {
                    if self.at_end() {
                        break;
                    }
                    self.pos += 1;
                    continue;
                }
            };
            let Some(star) = key.iter().position(|&b| b == b'*') else {
                result.push((key, value));
                continue;
            };
            let mut p = star;
            let mut idx = 0u32;
            if p + 1 < key.len() {
                p += 1;
                while p < key.len() && key[p].is_ascii_digit() {
                    idx = idx.wrapping_mul(10).wrapping_add(u32::from(key[p] - b'0'));
                    p += 1;
                }
            }
            let extended = p < key.len() && key[p] == b'*';
            if extended {
                p += 1;
            }
            if p < key.len() {
                result.push((key, value));
            } else {
                conts.push(Cont { key: key[..star].to_vec(), value, idx, extended });
            }
        }
        if conts.is_empty() {
            return result;
        }
        conts.sort_by(|a, b| a.key.cmp(&b.key).then(a.idx.cmp(&b.idx)));
        let mut i = 0;
        while i < conts.len() {
            let mut j = i;
            let mut ok = true;
            let mut have_extended = false;
            let mut next_idx = 0;
            while j < conts.len() && conts[j].key.eq_ignore_ascii_case(&conts[i].key) {
                if conts[j].idx != next_idx {
                    ok = false;
                }
                have_extended |= conts[j].extended;
                next_idx += 1;
                j += 1;
            }
            if !ok {
                for c in &conts[i..j] {
                    let mut key = c.key.clone();
                    key.extend_from_slice(format!("*{}", c.idx).as_bytes());
                    if c.extended {
                        key.push(b'*');
                    }
                    result.push((key, c.value.clone()));
                }
            } else {
                let mut value = Vec::new();
                if !conts[i].extended && have_extended {
                    value.extend_from_slice(b"''");
                }
                for c in &conts[i..j] {
                    if !c.extended && have_extended {
                        for &b in &c.value {
                            if b == b'%' {
                                value.extend_from_slice(b"%25");
                            } else {
                                value.push(b);
                            }
                        }
                    } else {
                        value.extend_from_slice(&c.value);
                    }
                }
                let mut key = conts[i].key.clone();
                if have_extended {
                    key.push(b'*');
                }
                result.push((key, value));
            }
            i = j;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrase_and_comments() {
        let mut p = Parser::with_comments(b"  \"Doe, \\\"J\\\"\" (c) <x>");
        p.skip_lwsp().unwrap();
        let mut out = Vec::new();
        assert_eq!(p.phrase(&mut out), Ok(true));
        assert_eq!(out, b"Doe, \"J\"");
        assert_eq!(p.peek(), Some(b'<'));
        assert_eq!(p.last_comment.as_deref(), Some(&b"c"[..]));
    }

    #[test]
    fn content_type_and_params() {
        let mut p = Parser::new(b"text/plain (x) ; charset = \"utf-8\"; a*0*=us-ascii''a%20; a*1=\"%b\"");
        let mut out = Vec::new();
        assert_eq!(p.content_type(&mut out), Ok(true));
        assert_eq!(out, b"text/plain");
        let params = p.params();
        assert_eq!(
            params,
            vec![(b"charset".to_vec(), b"utf-8".to_vec()), (b"a*".to_vec(), b"us-ascii''a%20%25b".to_vec())]
        );
    }

    #[test]
    fn broken_params_are_skipped() {
        // Dovecot skips a broken parameter up to the next `;` it can
        // parse, losing the one right after it.
        let mut p = Parser::new(b"; charset; name=x; a=b; q=\"open");
        assert_eq!(p.params(), vec![(b"a".to_vec(), b"b".to_vec())]);
    }
}
