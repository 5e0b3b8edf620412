//! Reads dovecot.conf and the files it includes, one logical line at a time.
//!
//! Owns what Dovecot does before a line is classified: the include stack
//! (`!include`, `!include_try`, globs with `{a,b}` braces, recursion
//! detection), line numbers, `#` comments (with Dovecot's "Ambiguous '#'"
//! warning), trailing whitespace and `\` continuation lines.

use std::fs;
use std::io;

/// A logical line with the file and line number Dovecot reports for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    pub text: String,
    pub path: String,
    pub line: u32,
}

struct OpenFile {
    /// The path as Dovecot displays it: relative includes are joined to the
    /// including file's directory by plain string concatenation.
    path: String,
    lines: Vec<String>,
    next: usize,
}

/// The stack of files being read, innermost last.
pub struct Source {
    stack: Vec<OpenFile>,
    pending: String,
    pub warnings: Vec<String>,
}

/// Text of an OS error as `strerror` gives it (no "(os error N)" suffix).
pub fn os_error_text(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

impl Source {
    /// Opens the main configuration file. The error is Dovecot's message.
    pub fn open(path: &str) -> Result<Source, String> {
        let text = fs::read(path).map_err(|e| format!("open({path}) failed: {}", os_error_text(&e)))?;
        let mut source = Source { stack: Vec::new(), pending: String::new(), warnings: Vec::new() };
        source.push(path.to_owned(), &text);
        Ok(source)
    }

    /// Parses configuration text held in memory, shown as coming from `path`.
    pub fn from_text(path: &str, text: &str) -> Source {
        let mut source = Source { stack: Vec::new(), pending: String::new(), warnings: Vec::new() };
        source.push(path.to_owned(), text.as_bytes());
        source
    }

    fn push(&mut self, path: String, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        let lines =
            text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned()).collect::<Vec<_>>();
        // A final newline does not start another line.
        let mut lines = lines;
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        self.stack.push(OpenFile { path, lines, next: 0 });
    }

    /// Directory prefix of the current file, used for relative paths.
    pub fn current_dir_prefix(&self) -> String {
        let path = self.stack.last().map(|f| f.path.as_str()).unwrap_or("");
        match path.rfind('/') {
            Some(i) => path[..=i].to_owned(),
            None => String::new(),
        }
    }

    /// The next logical line that is not empty or a comment.
    pub fn next_line(&mut self) -> Option<SourceLine> {
        loop {
            let file = self.stack.last_mut()?;
            let Some(raw) = file.lines.get(file.next).cloned() else {
                self.stack.pop();
                continue;
            };
            file.next += 1;
            let line_no = file.next as u32;
            let path = file.path.clone();
            let Some(stripped) = self.strip(&raw, &path, line_no) else {
                // An empty or comment line ends a `\` continuation, dropping
                // what was pending, as Dovecot does.
                self.pending.clear();
                continue;
            };
            if let Some(body) = stripped.strip_suffix('\\') {
                self.pending.push_str(body.trim_end_matches([' ', '\t']));
                self.pending.push(' ');
                continue;
            }
            let text = if self.pending.is_empty() {
                stripped
            } else {
                let mut joined = std::mem::take(&mut self.pending);
                joined.push_str(&stripped);
                joined
            };
            return Some(SourceLine { text, path, line: line_no });
        }
    }

    /// Removes leading whitespace, comments and trailing whitespace; `None`
    /// for a line with nothing left.
    fn strip(&mut self, raw: &str, path: &str, line_no: u32) -> Option<String> {
        let line = raw.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let bytes = line.as_bytes();
        let mut end = bytes.len();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                quote @ (b'\'' | b'"') => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != quote {
                        if bytes[i] == b'\\' && i + 1 < bytes.len() {
                            i += 1;
                        }
                        i += 1;
                    }
                    if i >= bytes.len() {
                        break;
                    }
                }
                b'#' => {
                    if !matches!(bytes[i - 1], b' ' | b'\t') {
                        self.warnings.push(format!(
                            "Warning: Configuration file {path} line {line_no}: Ambiguous '#' character in line, \
                             treating it as comment. Add a space before it to remove this warning."
                        ));
                    }
                    end = i;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        Some(line[..end].trim_end_matches([' ', '\t']).to_owned())
    }

    /// Handles `!include`/`!include_try`: every file the pattern matches is
    /// read next, in sorted order, before the rest of the current file.
    pub fn include(&mut self, pattern: &str, ignore_missing: bool) -> Result<(), String> {
        let full = if pattern.starts_with('/') {
            pattern.to_owned()
        } else {
            format!("{}{}", self.current_dir_prefix(), pattern)
        };
        let mut paths = Vec::new();
        let mut any_glob = false;
        for alternative in expand_braces(&full) {
            if !alternative.contains(['*', '?', '[']) {
                paths.push(alternative);
                continue;
            }
            any_glob = true;
            // Like glob(3): `*` does not match a leading dot or a `/`.
            let options = glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: true,
            };
            let matches = glob::glob_with(&alternative, options)
                .map_err(|_| "glob() failed: Unknown error".to_owned())?;
            for entry in matches {
                match entry {
                    Ok(p) => paths.push(p.to_string_lossy().into_owned()),
                    Err(_) => return Err("glob() failed: Read error".to_owned()),
                }
            }
        }
        // glob(3) reports a literal path that does not exist as "No matches" too.
        paths.retain(|p| any_glob || fs::symlink_metadata(p).is_ok());
        if paths.is_empty() {
            return if ignore_missing { Ok(()) } else { Err("No matches".to_owned()) };
        }
        // Open everything first, then push in reverse so the first sorted file is read first.
        let mut opened = Vec::new();
        for path in paths {
            if self.stack.iter().any(|f| f.path == path) || opened.iter().any(|(p, _)| p == &path) {
                return Err(format!("Recursive include file: {path}"));
            }
            if fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                // Dovecot reads a directory as an empty file.
                continue;
            }
            match fs::read(&path) {
                Ok(text) => opened.push((path, text)),
                Err(_) if ignore_missing => {}
                Err(e) => {
                    return Err(format!("Couldn't open include file {path}: {}", os_error_text(&e)));
                }
            }
        }
        for (path, text) in opened.into_iter().rev() {
            self.push(path, &text);
        }
        Ok(())
    }
}

/// Expands `{a,b}` alternatives the way glob(3) with GLOB_BRACE does, in order.
fn expand_braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else { return vec![pattern.to_owned()] };
    let bytes = pattern.as_bytes();
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            b',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else { return vec![pattern.to_owned()] };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let alt = &pattern[w[0] + 1..w[1]];
        out.extend(expand_braces(&format!("{head}{alt}{tail}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_continuations_and_line_numbers() {
        let mut s = Source::from_text("t.conf", "# c\n\na = b # x\nc = \"d # e\"\nf = g \\\n  h\ni = j#k\n");
        let l = s.next_line().unwrap();
        assert_eq!((l.text.as_str(), l.line), ("a = b", 3));
        assert_eq!(s.next_line().unwrap().text, "c = \"d # e\"");
        let l = s.next_line().unwrap();
        assert_eq!((l.text.as_str(), l.line), ("f = g h", 6));
        assert_eq!(s.next_line().unwrap().text, "i = j");
        assert_eq!(s.warnings.len(), 1);
        assert!(s.next_line().is_none());
    }

    #[test]
    fn braces_expand_in_order() {
        assert_eq!(expand_braces("a/{x,y}.conf"), vec!["a/x.conf", "a/y.conf"]);
        assert_eq!(expand_braces("plain"), vec!["plain"]);
    }
}
