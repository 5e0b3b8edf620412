//! Dovecot 2.3 `%` variable expansion.
//!
//! This module owns the 2.3-era template language used in settings such as
//! `mail_location`, log prefixes and userdb/passdb templates: parsing of
//! `%[offset.][width][modifiers]key` and `%{long_name}`, the ten one-letter
//! modifiers, the generic built-ins (`%{env:..}`, `%{pid}`, hash functions,
//! `%{if;..}`), and Dovecot's "best effort output plus error" result. Callers
//! supply the variable table; [`MailVars`] builds the usual mail-process one.
//!
//! Values are handled as Unicode text: offsets, widths, `%R` and unknown short
//! keys work on characters where Dovecot works on bytes (identical for ASCII).

use std::borrow::Cow;
use std::fmt::Write as _;

use sha2::Digest;

/// One variable a caller provides: a one-character key (`'u'` for `%u`), an
/// optional long name (`"user"` for `%{user}`) and a value. An unset value
/// (`None`) expands to the empty string, as a NULL value does in Dovecot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable<'a> {
    /// Short key used as `%k`.
    pub key: Option<char>,
    /// Long name used as `%{name}`.
    pub long: Option<&'a str>,
    /// Value; `None` means unset and expands to "".
    pub value: Option<Cow<'a, str>>,
}

impl<'a> Variable<'a> {
    /// A variable reachable both as `%key` and `%{long}`.
    pub fn new(key: char, long: &'a str, value: impl Into<Cow<'a, str>>) -> Self {
        Variable { key: Some(key), long: Some(long), value: Some(value.into()) }
    }

    /// A variable reachable only as `%key`.
    pub fn short(key: char, value: impl Into<Cow<'a, str>>) -> Self {
        Variable { key: Some(key), long: None, value: Some(value.into()) }
    }

    /// A variable reachable only as `%{long}`.
    pub fn long(long: &'a str, value: impl Into<Cow<'a, str>>) -> Self {
        Variable { key: None, long: Some(long), value: Some(value.into()) }
    }
}

/// What a caller-provided function (`%{name:data}`) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FuncOutcome {
    /// The expanded value.
    Value(String),
    /// The function does not know `data`: expands to "" and reports
    /// `Unknown variable '%name'` (Dovecot return value 0).
    Unknown,
    /// Internal failure with a message (Dovecot return value -1).
    Failed(String),
}

/// A caller-provided `%{name:data}` function, e.g. `userdb` or `passdb`.
/// It is called with everything after the first `:` (empty if none).
pub struct Function<'f> {
    /// Exact (case-sensitive) name before the first `:`.
    pub name: &'f str,
    /// The implementation.
    pub call: &'f dyn Fn(&str) -> FuncOutcome,
}

/// How bad an expansion problem is; ordered from mild to severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// Unknown variable or function (Dovecot returns 0).
    UnknownVariable,
    /// Invalid arguments or an internal failure (Dovecot returns -1).
    Failed,
}

/// Expansion error. Like Dovecot, expansion never stops at an error: the
/// best-effort output is kept in `partial`. When several problems occur the
/// first one of the most severe kind is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    /// Severity (0 vs -1 in Dovecot's C API).
    pub kind: ErrorKind,
    /// Dovecot-style message, e.g. `Unknown variable '%x'`.
    pub message: String,
    /// The best-effort output Dovecot would have produced.
    pub partial: String,
}

/// Expands `template` with the caller's variables and the generic built-ins.
pub fn expand(template: &str, vars: &[Variable<'_>]) -> Result<String, ExpandError> {
    expand_with_funcs(template, vars, &[])
}

/// Like [`expand`], with extra `%{name:data}` functions (tried after the
/// built-in ones, as Dovecot's per-caller function tables are).
pub fn expand_with_funcs(
    template: &str,
    vars: &[Variable<'_>],
    funcs: &[Function<'_>],
) -> Result<String, ExpandError> {
    let expander = Expander { vars, funcs };
    let mut out = String::with_capacity(template.len());
    let mut status = Status::default();
    expander.expand_into(template, &mut out, &mut status, 0);
    match status.worst {
        None => Ok(out),
        Some((kind, message)) => Err(ExpandError { kind, message, partial: out }),
    }
}

/// The variables a mail process (imap, pop3, lda, ...) offers in 2.3. Fill
/// what is known; `%n`/`%d` are derived from `user` (split at the first `@`),
/// and `auth_user` defaults to `user`. Unset `pid`/`uid`/`gid` fall back to
/// this process's values and an unset `hostname` to the system host name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailVars {
    /// `%u` / `%{user}`: full user name.
    pub user: Option<String>,
    /// `%s` / `%{service}`: imap, pop3, lda, ...
    pub service: Option<String>,
    /// `%h` / `%{home}`.
    pub home: Option<String>,
    /// `%l` / `%{local_ip}` (also `%{lip}`).
    pub local_ip: Option<String>,
    /// `%r` / `%{remote_ip}` (also `%{rip}`).
    pub remote_ip: Option<String>,
    /// `%p` / `%{pid}`.
    pub pid: Option<String>,
    /// `%i` / `%{uid}`.
    pub uid: Option<String>,
    /// `%{gid}`.
    pub gid: Option<String>,
    /// `%{session}`.
    pub session: Option<String>,
    /// `%{auth_user}` (and derived `%{auth_username}`, `%{auth_domain}`).
    pub auth_user: Option<String>,
    /// `%{hostname}` (the `hostname` setting).
    pub hostname: Option<String>,
    /// userdb extra fields for `%{userdb:name[:default]}`.
    pub userdb_fields: Vec<(String, String)>,
}

impl MailVars {
    /// The variable table, in Dovecot's order.
    pub fn variables(&self) -> Vec<Variable<'_>> {
        fn opt(v: Option<&str>) -> Option<Cow<'_, str>> {
            v.map(Cow::Borrowed)
        }
        fn entry<'a>(key: Option<char>, long: &'a str, value: Option<Cow<'a, str>>) -> Variable<'a> {
            Variable { key, long: Some(long), value }
        }
        let user = self.user.as_deref();
        let username = user.map(|u| u.split('@').next().unwrap_or(u));
        let domain = user.and_then(|u| u.split_once('@').map(|(_, d)| d));
        let auth_user = self.auth_user.as_deref().or(user);
        let auth_username = auth_user.map(|u| u.split('@').next().unwrap_or(u));
        let auth_domain = auth_user.and_then(|u| u.split_once('@').map(|(_, d)| d));
        let pid = match self.pid.as_deref() {
            Some(p) => Cow::Borrowed(p),
            None => Cow::Owned(std::process::id().to_string()),
        };
        let uid = match self.uid.as_deref() {
            Some(u) => Cow::Borrowed(u),
            None => Cow::Owned(process_id_field("Uid:")),
        };
        let gid = match self.gid.as_deref() {
            Some(g) => Cow::Borrowed(g),
            None => Cow::Owned(process_id_field("Gid:")),
        };
        let local_ip = self.local_ip.as_deref();
        let remote_ip = self.remote_ip.as_deref();
        let mut vars = vec![
            entry(Some('u'), "user", opt(user)),
            entry(Some('n'), "username", opt(username)),
            entry(Some('d'), "domain", opt(domain)),
            entry(Some('s'), "service", opt(self.service.as_deref())),
            entry(Some('h'), "home", opt(self.home.as_deref())),
            entry(Some('l'), "local_ip", opt(local_ip)),
            entry(None, "lip", opt(local_ip)),
            entry(Some('r'), "remote_ip", opt(remote_ip)),
            entry(None, "rip", opt(remote_ip)),
            entry(Some('p'), "pid", Some(pid)),
            entry(Some('i'), "uid", Some(uid)),
            entry(None, "gid", Some(gid)),
            entry(None, "session", opt(self.session.as_deref())),
            entry(None, "auth_user", opt(auth_user)),
            entry(None, "auth_username", opt(auth_username)),
            entry(None, "auth_domain", opt(auth_domain)),
        ];
        if let Some(host) = self.hostname.as_deref() {
            vars.push(entry(None, "hostname", Some(Cow::Borrowed(host))));
        }
        vars
    }

    /// Expands `template` with these variables and `%{userdb:..}`.
    pub fn expand(&self, template: &str) -> Result<String, ExpandError> {
        let userdb = |data: &str| -> FuncOutcome {
            let (name, default) = match data.split_once(':') {
                Some((n, d)) => (n, d),
                None => (data, ""),
            };
            let found = self.userdb_fields.iter().find(|(k, _)| k == name);
            FuncOutcome::Value(found.map_or(default, |(_, v)| v.as_str()).to_string())
        };
        let funcs = [Function { name: "userdb", call: &userdb }];
        expand_with_funcs(template, &self.variables(), &funcs)
    }
}

// ---------------------------------------------------------------------------
// Engine

/// Dovecot applies at most this many modifiers to one variable.
const MAX_MODIFIERS: usize = 10;
/// Nesting limit for `%{if}` parameters, hash fields and salts (ours; Dovecot
/// has none, we refuse instead of risking stack exhaustion).
const MAX_DEPTH: u32 = 32;

#[derive(Default)]
struct Status {
    worst: Option<(ErrorKind, String)>,
}

impl Status {
    fn record(&mut self, kind: ErrorKind, message: String) {
        let replace = match &self.worst {
            None => true,
            Some((old, _)) => kind > *old,
        };
        if replace {
            self.worst = Some((kind, message));
        }
    }

    fn unknown(&mut self, message: String) {
        self.record(ErrorKind::UnknownVariable, message);
    }

    fn fail(&mut self, message: String) {
        self.record(ErrorKind::Failed, message);
    }

    fn merge(&mut self, other: Status) {
        if let Some((kind, message)) = other.worst {
            self.record(kind, message);
        }
    }

    fn kind(&self) -> Option<ErrorKind> {
        self.worst.as_ref().map(|(k, _)| *k)
    }
}

/// Per-variable formatting state: `%[offset.][width]`.
#[derive(Default)]
struct Spec {
    offset: i64,
    width: i64,
    zero_pad: bool,
}

#[derive(Clone, Copy)]
enum Modifier {
    Lower,
    Upper,
    Escape,
    Hex,
    Reverse,
    Hash,
    NewHash,
    Md5,
    LdapDn,
    Trim,
}

impl Modifier {
    fn from_byte(b: u8) -> Option<Modifier> {
        Some(match b {
            b'L' => Modifier::Lower,
            b'U' => Modifier::Upper,
            b'E' => Modifier::Escape,
            b'X' => Modifier::Hex,
            b'R' => Modifier::Reverse,
            b'H' => Modifier::Hash,
            b'N' => Modifier::NewHash,
            b'M' => Modifier::Md5,
            b'D' => Modifier::LdapDn,
            b'T' => Modifier::Trim,
            _ => return None,
        })
    }

    fn apply(self, value: &str, spec: &mut Spec) -> String {
        match self {
            Modifier::Lower => value.to_ascii_lowercase(),
            Modifier::Upper => value.to_ascii_uppercase(),
            Modifier::Escape => {
                let mut out = String::with_capacity(value.len());
                for c in value.chars() {
                    if matches!(c, '"' | '\'' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out
            }
            Modifier::Hex => format!("{:x}", parse_unsigned(value).unwrap_or(0)),
            Modifier::Reverse => value.chars().rev().collect(),
            Modifier::Hash => {
                let mut hash = str_hash(value);
                if spec.width != 0 {
                    // C: unsigned int %= int, i.e. the width converted to unsigned.
                    hash %= spec.width as i32 as u32;
                    spec.width = 0;
                }
                hash_to_padded_hex(u64::from(hash), spec)
            }
            Modifier::NewHash => {
                let digest = md5::Md5::digest(value.as_bytes());
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                let mut hash = u64::from_be_bytes(first);
                if spec.width != 0 {
                    // C: uint64_t %= int, the width sign-extended to 64 bits.
                    hash %= spec.width as u64;
                    spec.width = 0;
                }
                // Dovecot prints only the low 32 bits.
                hash_to_padded_hex(hash & 0xffff_ffff, spec)
            }
            Modifier::Md5 => to_hex(&md5::Md5::digest(value.as_bytes()), false),
            Modifier::LdapDn => value.replace('.', ",dc="),
            Modifier::Trim => value.trim_end_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']).to_string(),
        }
    }
}

/// `%H`/`%N` output: hex, left-padded with zeros to `offset` digits; both
/// offset and width are consumed so no substring is taken afterwards.
fn hash_to_padded_hex(value: u64, spec: &mut Spec) -> String {
    let mut hex = format!("{value:x}");
    let pad = usize::try_from(spec.offset).unwrap_or(0);
    if hex.len() < pad {
        hex.insert_str(0, &"0".repeat(pad - hex.len()));
    }
    spec.offset = 0;
    hex
}

/// Dovecot's classic string hash (`str_hash()`, the PJW/ELF hash).
fn str_hash(s: &str) -> u32 {
    let mut h: u32 = 0;
    for &b in s.as_bytes() {
        h = (h << 4).wrapping_add(u32::from(b));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
            h ^= g;
        }
    }
    h
}

struct Expander<'t, 'a, 'f> {
    vars: &'t [Variable<'a>],
    funcs: &'t [Function<'f>],
}

impl Expander<'_, '_, '_> {
    fn expand_into(&self, template: &str, out: &mut String, st: &mut Status, depth: u32) {
        let bytes = template.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match template[i..].find('%') {
                None => {
                    out.push_str(&template[i..]);
                    return;
                }
                Some(off) => {
                    out.push_str(&template[i..i + off]);
                    i += off + 1;
                }
            }
            let (spec, modifiers, next) = parse_spec(bytes, i);
            i = next;
            if i >= bytes.len() {
                // A trailing `%` (with or without a spec) is dropped.
                return;
            }
            let value = if bytes[i] == b'{' && template[i..].contains('}') {
                let (key_end, after) = find_long_key_end(bytes, i);
                let value = self.lookup_long(&template[i + 1..key_end], st, depth);
                i = after;
                value
            } else {
                let Some(c) = template[i..].chars().next() else {
                    return;
                };
                i += c.len_utf8();
                self.lookup_short(c, st)
            };
            format_value(value, spec, &modifiers, out);
        }
    }

    fn lookup_short(&self, key: char, st: &mut Status) -> String {
        if let Some(var) = self.vars.iter().find(|v| v.key == Some(key)) {
            return var.value.as_deref().unwrap_or("").to_string();
        }
        if key == '%' {
            return "%".to_string();
        }
        st.unknown(format!("Unknown variable '%{key}'"));
        format!("UNSUPPORTED_VARIABLE_{key}")
    }

    fn lookup_long(&self, key: &str, st: &mut Status, depth: u32) -> String {
        if let Some(var) = self.vars.iter().find(|v| v.long == Some(key)) {
            return var.value.as_deref().unwrap_or("").to_string();
        }
        match key {
            "pid" => return std::process::id().to_string(),
            "uid" => return process_id_field("Uid:"),
            "gid" => return process_id_field("Gid:"),
            "hostname" => return system_hostname(),
            _ => {}
        }
        let (name, data) = key.split_once(':').unwrap_or((key, ""));
        let ext = name.split(';').next().unwrap_or(name);
        if ext.eq_ignore_ascii_case("if") {
            return self.func_if(name, data, st, depth);
        }
        if ext.eq_ignore_ascii_case("pkcs5") || HASH_NAMES.iter().any(|h| ext.eq_ignore_ascii_case(h)) {
            return self.func_hash(name, data, st, depth);
        }
        if name == "env" {
            return std::env::var_os(data).map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
        }
        if let Some(func) = self.funcs.iter().find(|f| f.name == name) {
            return match (func.call)(data) {
                FuncOutcome::Value(v) => v,
                FuncOutcome::Unknown => {
                    st.unknown(format!("Unknown variable '%{name}'"));
                    String::new()
                }
                FuncOutcome::Failed(msg) => {
                    st.fail(msg);
                    String::new()
                }
            };
        }
        st.unknown(format!("Unknown variable '%{name}'"));
        format!("UNSUPPORTED_VARIABLE_{name}")
    }

    /// Expands a nested template; on any problem the problem is passed up
    /// and `None` is returned (the caller then yields "").
    fn nested(&self, template: &str, st: &mut Status, depth: u32) -> Option<String> {
        let mut out = String::new();
        let mut sub = Status::default();
        self.expand_into(template, &mut out, &mut sub, depth + 1);
        if sub.kind().is_some() {
            st.merge(sub);
            return None;
        }
        Some(out)
    }

    /// `%{if;value1;op;value2;true[;false]}`.
    fn func_if(&self, name: &str, data: &str, st: &mut Status, depth: u32) -> String {
        if depth >= MAX_DEPTH {
            st.fail("if: nesting too deep".to_string());
            return String::new();
        }
        // The long key was cut at its first ':'; glue it back together.
        let input = format!("{name}:{data}");
        let Some(semi) = input.find(';') else {
            st.fail("if: missing parameter(s)".to_string());
            return String::new();
        };
        let mut params: Vec<String> = Vec::new();
        let mut buf = String::new();
        let mut depth_braces = 0u32;
        let mut escape = false;
        let mut maybe_var = false;
        for c in input[semi + 1..].chars() {
            if c == '\\' {
                escape = true;
                continue;
            }
            if escape {
                buf.push(c);
                escape = false;
                continue;
            }
            if c == '%' {
                maybe_var = true;
            } else if maybe_var && c == '{' {
                depth_braces += 1;
                maybe_var = false;
            } else if depth_braces > 0 && c == '}' {
                depth_braces -= 1;
            } else if depth_braces == 0 && c == ';' {
                params.push(std::mem::take(&mut buf));
                continue;
            } else if depth_braces == 0 && c == ':' {
                // An unescaped top-level ':' ends the parameters.
                break;
            }
            buf.push(c);
        }
        if !buf.is_empty() {
            params.push(buf);
        }
        if params.len() == 4 {
            params.push(String::new());
        }
        if params.len() != 5 {
            st.fail(format!("if: requires four or five parameters, got {}", params.len()));
            return String::new();
        }
        let mut expanded = Vec::with_capacity(5);
        for param in &params {
            match self.nested(param, st, depth) {
                Some(v) => expanded.push(v),
                None => return String::new(),
            }
        }
        match if_compare(&expanded[0], &expanded[1], &expanded[2]) {
            Ok(true) => expanded.swap_remove(3),
            Ok(false) => expanded.swap_remove(4),
            Err(msg) => {
                st.fail(msg);
                String::new()
            }
        }
    }

    /// `%{algo[;rounds=N,truncate=BITS,format=F,salt=S]:field}` and `pkcs5`.
    fn func_hash(&self, name: &str, field: &str, st: &mut Status, depth: u32) -> String {
        if depth >= MAX_DEPTH {
            st.fail("hash: nesting too deep".to_string());
            return String::new();
        }
        let (algo, args) = match name.split_once(';') {
            Some((a, rest)) => (a, Some(rest)),
            None => (name, None),
        };
        let pkcs5 = algo == "pkcs5";
        let method = if pkcs5 { Some(HashAlg::Sha256) } else { HashAlg::from_name(algo) };
        let Some(method) = method else {
            // Matched case-insensitively, but the algorithm lookup is exact.
            st.unknown(format!("Unknown variable '%{name}'"));
            return String::new();
        };
        let mut sub = Status::default();
        let value = self.lookup_long(field, &mut sub, depth + 1);
        if sub.kind().is_some() {
            st.merge(sub);
            return String::new();
        }

        let mut rounds: u32 = if pkcs5 { 2048 } else { 1 };
        let mut truncate_bits: usize = 0;
        let mut salt: Vec<u8> = if pkcs5 { field.as_bytes().to_vec() } else { Vec::new() };
        let mut format = HashFormat::Hex;
        for arg in args.into_iter().flat_map(|a| a.split(',')) {
            let Some((k, v)) = arg.split_once('=') else {
                continue;
            };
            match k {
                "rounds" => match parse_u32(v) {
                    None => {
                        st.fail(format!("Cannot parse hash arguments:'{v}' is not number for rounds"));
                        return String::new();
                    }
                    Some(0) => {
                        st.fail("Cannot parse hash arguments:rounds must be at least 1".into());
                        return String::new();
                    }
                    Some(n) => rounds = n,
                },
                "truncate" => match parse_u32(v) {
                    None => {
                        st.fail(format!("Cannot parse hash arguments:'{v}' is not number for truncbits"));
                        return String::new();
                    }
                    Some(n) => {
                        let n = usize::try_from(n).unwrap_or(usize::MAX);
                        truncate_bits = n.min(method.digest_len() * 8);
                    }
                },
                "salt" => {
                    // Dovecot ignores unknown variables inside the salt but
                    // honours failures; and `salt` ends the argument list.
                    let mut out = String::new();
                    let mut sub = Status::default();
                    self.expand_into(v, &mut out, &mut sub, depth + 1);
                    if sub.kind() == Some(ErrorKind::Failed) {
                        st.merge(sub);
                        return String::new();
                    }
                    salt = out.into_bytes();
                    break;
                }
                "format" => match v {
                    "hex" => format = HashFormat::Hex,
                    "hexuc" => format = HashFormat::HexUpper,
                    "base64" => format = HashFormat::Base64,
                    "base64url" => format = HashFormat::Base64Url,
                    _ => {
                        st.fail(format!("Cannot parse hash arguments:'{v}' is not supported format"));
                        return String::new();
                    }
                },
                _ => {}
            }
        }

        let mut digest = if pkcs5 {
            pbkdf2_sha256(value.as_bytes(), &salt, rounds, PKCS5_OUTPUT_LEN)
        } else {
            let mut data = value.into_bytes();
            for _ in 0..rounds {
                data = method.digest(&[&salt, &data]);
            }
            data
        };
        truncate_rshift_bits(&mut digest, truncate_bits);
        match format {
            HashFormat::Hex => to_hex(&digest, false),
            HashFormat::HexUpper => to_hex(&digest, true),
            HashFormat::Base64 => base64(&digest, BASE64_STD),
            HashFormat::Base64Url => base64(&digest, BASE64_URL),
        }
    }
}

/// Parses `[-][0]digits[.[0][-]digits]` and up to ten modifiers after a `%`.
/// Returns the spec, the modifiers and the index of the key.
fn parse_spec(bytes: &[u8], mut i: usize) -> (Spec, Vec<Modifier>, usize) {
    fn digits(bytes: &[u8], i: &mut usize) -> i64 {
        let mut n: i64 = 0;
        while let Some(d) = bytes.get(*i).filter(|b| b.is_ascii_digit()) {
            // C int arithmetic; saturate instead of overflowing.
            n = (n * 10 + i64::from(d - b'0')).min(i64::from(i32::MAX));
            *i += 1;
        }
        n
    }
    let mut spec = Spec::default();
    let mut sign = 1;
    if bytes.get(i) == Some(&b'-') {
        sign = -1;
        i += 1;
    }
    if bytes.get(i) == Some(&b'0') {
        spec.zero_pad = true;
        i += 1;
    }
    // Without a '.', the leading '-' is ignored (as in Dovecot).
    spec.width = digits(bytes, &mut i);
    if bytes.get(i) == Some(&b'.') {
        spec.offset = sign * spec.width;
        sign = 1;
        i += 1;
        spec.zero_pad = false;
        if bytes.get(i) == Some(&b'0') {
            spec.zero_pad = true;
            i += 1;
        }
        if bytes.get(i) == Some(&b'-') {
            sign = -1;
            i += 1;
        }
        spec.width = sign * digits(bytes, &mut i);
    }
    let mut modifiers = Vec::new();
    while modifiers.len() < MAX_MODIFIERS {
        match bytes.get(i).and_then(|&b| Modifier::from_byte(b)) {
            Some(m) => {
                modifiers.push(m);
                i += 1;
            }
            None => break,
        }
    }
    (spec, modifiers, i)
}

/// For `%{` at `open`: returns (end of key, index after the closing brace).
/// Braces nest and a backslash skips the next character. Without a matching
/// brace the key runs to the end of the template.
fn find_long_key_end(bytes: &[u8], open: usize) -> (usize, usize) {
    let mut depth = 1u32;
    let mut escape = false;
    let mut j = open + 1;
    while j < bytes.len() {
        let b = bytes[j];
        if !escape && b == b'\\' {
            escape = true;
        } else if escape {
            escape = false;
        } else if b == b'{' {
            depth += 1;
        } else if b == b'}' {
            depth -= 1;
            if depth == 0 {
                return (j, j + 1);
            }
        }
        j += 1;
    }
    (bytes.len(), bytes.len())
}

/// Applies modifiers (left to right), then offset and width, and appends.
fn format_value(mut value: String, mut spec: Spec, modifiers: &[Modifier], out: &mut String) {
    for m in modifiers {
        value = m.apply(&value, &mut spec);
    }
    let len = value.chars().count();
    let skip = if spec.offset < 0 {
        let back = usize::try_from(spec.offset.unsigned_abs()).unwrap_or(usize::MAX);
        len.saturating_sub(back)
    } else {
        usize::try_from(spec.offset).unwrap_or(usize::MAX).min(len)
    };
    let rest = char_suffix(&value, skip);
    let rest_len = len - skip;
    if spec.width == 0 {
        out.push_str(rest);
    } else if !spec.zero_pad {
        let width = if spec.width < 0 {
            // Dovecot: strlen - |width|; a negative result appends everything.
            let cut = usize::try_from(spec.width.unsigned_abs()).unwrap_or(usize::MAX);
            rest_len.checked_sub(cut).unwrap_or(rest_len)
        } else {
            usize::try_from(spec.width).unwrap_or(usize::MAX)
        };
        out.push_str(char_prefix(rest, width));
    } else {
        // `%05x`-style padding: never truncates.
        let width = usize::try_from(spec.width).unwrap_or(0);
        for _ in rest_len..width {
            out.push('0');
        }
        out.push_str(rest);
    }
}

fn char_suffix(s: &str, skip: usize) -> &str {
    match s.char_indices().nth(skip) {
        Some((idx, _)) => &s[idx..],
        None => "",
    }
}

fn char_prefix(s: &str, take: usize) -> &str {
    match s.char_indices().nth(take) {
        Some((idx, _)) => &s[..idx],
        None => s,
    }
}

// ---------------------------------------------------------------------------
// Number parsing (Dovecot's strict str_to_* helpers: digits only, no '+',
// no whitespace, overflow is an error).

fn parse_unsigned(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_u32(s: &str) -> Option<u32> {
    parse_unsigned(s).and_then(|n| u32::try_from(n).ok())
}

fn parse_intmax(s: &str) -> Option<i64> {
    match s.strip_prefix('-') {
        Some(rest) => {
            let n = parse_unsigned(rest)?;
            if n == 1u64 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(n).ok().map(|v| -v)
            }
        }
        None => parse_unsigned(s).and_then(|n| i64::try_from(n).ok()),
    }
}

// ---------------------------------------------------------------------------
// Process facts for the built-in %{pid}, %{uid}, %{gid}, %{hostname}.

/// Effective id from the `Uid:`/`Gid:` line of /proc/self/status ("" if
/// unavailable).
fn process_id_field(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix(field).and_then(|rest| rest.split_whitespace().nth(1)).map(str::to_string)
            })
        })
        .unwrap_or_default()
}

/// `DOVECOT_HOSTNAME` if set, else the kernel's host name (as gethostname()).
fn system_hostname() -> String {
    if let Some(h) = std::env::var_os("DOVECOT_HOSTNAME") {
        return h.to_string_lossy().into_owned();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim_end_matches('\n').to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

// ---------------------------------------------------------------------------
// Hash functions

/// Names of Dovecot 2.3's hash methods, usable as `%{name:field}`.
const HASH_NAMES: [&str; 8] = ["md4", "md5", "sha1", "sha256", "sha512", "sha3-256", "sha3-512", "size"];

/// Dovecot asks PBKDF2 for HMAC_MAX_CONTEXT_SIZE (256) bytes of output.
const PKCS5_OUTPUT_LEN: usize = 256;

#[derive(Clone, Copy)]
enum HashAlg {
    Md4,
    Md5,
    Sha1,
    Sha256,
    Sha512,
    Sha3_256,
    Sha3_512,
    /// Dovecot's "size" method: total input length as 8 big-endian bytes.
    Size,
}

#[derive(Clone, Copy)]
enum HashFormat {
    Hex,
    HexUpper,
    Base64,
    Base64Url,
}

impl HashAlg {
    fn from_name(name: &str) -> Option<HashAlg> {
        Some(match name {
            "md4" => HashAlg::Md4,
            "md5" => HashAlg::Md5,
            "sha1" => HashAlg::Sha1,
            "sha256" => HashAlg::Sha256,
            "sha512" => HashAlg::Sha512,
            "sha3-256" => HashAlg::Sha3_256,
            "sha3-512" => HashAlg::Sha3_512,
            "size" => HashAlg::Size,
            _ => return None,
        })
    }

    fn digest_len(self) -> usize {
        match self {
            HashAlg::Md4 | HashAlg::Md5 => 16,
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 | HashAlg::Sha3_256 => 32,
            HashAlg::Sha512 | HashAlg::Sha3_512 => 64,
            HashAlg::Size => 8,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            HashAlg::Md4 => run::<md4::Md4>(parts),
            HashAlg::Md5 => run::<md5::Md5>(parts),
            HashAlg::Sha1 => run::<sha1::Sha1>(parts),
            HashAlg::Sha256 => run::<sha2::Sha256>(parts),
            HashAlg::Sha512 => run::<sha2::Sha512>(parts),
            HashAlg::Sha3_256 => run::<sha3::Sha3_256>(parts),
            HashAlg::Sha3_512 => run::<sha3::Sha3_512>(parts),
            HashAlg::Size => {
                let total: usize = parts.iter().map(|p| p.len()).sum();
                (total as u64).to_be_bytes().to_vec()
            }
        }
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha2::Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    let mut outer = sha2::Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

fn pbkdf2_sha256(password: &[u8], salt: &[u8], rounds: u32, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block: u32 = 1;
    while out.len() < len {
        let mut u = hmac_sha256(password, &[salt, &block.to_be_bytes()]);
        let mut acc = u;
        for _ in 1..rounds {
            u = hmac_sha256(password, &[&u]);
            for (a, b) in acc.iter_mut().zip(u.iter()) {
                *a ^= b;
            }
        }
        out.extend_from_slice(&acc);
        block = block.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// Keeps the first `bits` bits of `buf`, right-aligned in whole bytes
/// (Dovecot's buffer_truncate_rshift_bits); 0 keeps everything.
fn truncate_rshift_bits(buf: &mut Vec<u8>, bits: usize) {
    if bits == 0 || buf.len() * 8 < bits {
        return;
    }
    let bytes = bits.div_ceil(8);
    buf.truncate(bytes);
    let shift = bytes * 8 - bits;
    if shift > 0 {
        for i in (1..buf.len()).rev() {
            buf[i] = (buf[i] >> shift) | (buf[i - 1] << (8 - shift));
        }
        buf[0] >>= shift;
    }
}

fn to_hex(data: &[u8], upper: bool) -> String {
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        let _ = if upper { write!(s, "{b:02X}") } else { write!(s, "{b:02x}") };
    }
    s
}

const BASE64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Padded base64 with the given alphabet.
fn base64(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * k)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// %{if} comparisons

fn if_compare(lhs: &str, op: &str, rhs: &str) -> Result<bool, String> {
    let numeric = |f: fn(i64, i64) -> bool| -> Result<bool, String> {
        let a = parse_intmax(lhs).ok_or_else(|| format!("if: {lhs} (lhs) is not a number"))?;
        let b = parse_intmax(rhs).ok_or_else(|| format!("if: {rhs} (rhs) is not a number"))?;
        Ok(f(a, b))
    };
    match op {
        "==" => numeric(|a, b| a == b),
        "<" => numeric(|a, b| a < b),
        "<=" => numeric(|a, b| a <= b),
        ">" => numeric(|a, b| a > b),
        ">=" => numeric(|a, b| a >= b),
        "!=" => numeric(|a, b| a != b),
        "eq" => Ok(lhs == rhs),
        "lt" => Ok(lhs < rhs),
        "le" => Ok(lhs <= rhs),
        "gt" => Ok(lhs > rhs),
        "ge" => Ok(lhs >= rhs),
        "ne" => Ok(lhs != rhs),
        "*" => Ok(wildcard_match(lhs, rhs)),
        "!*" => Ok(!wildcard_match(lhs, rhs)),
        "~" | "!~" => {
            let re = ere::Regex::new(rhs).map_err(|e| format!("if: regex failed: {e}"))?;
            Ok(re.is_match(lhs) == (op == "~"))
        }
        _ => Err(format!("if: Unsupported comparator '{op}'")),
    }
}

/// Glob match: `*` is any run of characters, `?` exactly one (Dovecot's
/// `wildcard_match`, also used for usernames by auth and doveadm masks).
pub fn wildcard_match(data: &str, mask: &str) -> bool {
    let d: Vec<char> = data.chars().collect();
    let m: Vec<char> = mask.chars().collect();
    let (mut di, mut mi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while di < d.len() {
        if mi < m.len() && m[mi] == '*' {
            star = Some((mi, di));
            mi += 1;
        } else if mi < m.len() && (m[mi] == '?' || m[mi] == d[di]) {
            mi += 1;
            di += 1;
        } else if let Some((smi, sdi)) = star {
            mi = smi + 1;
            di = sdi + 1;
            star = Some((smi, sdi + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|&c| c == '*')
}

/// A small POSIX extended regular expression matcher (what regcomp with
/// REG_EXTENDED accepts, minus back-references, which ERE lacks anyway),
/// run as a Pike VM so matching time stays linear.
mod ere {
    const TOO_BIG: &str = "Regular expression too big";
    const MAX_PROGRAM: usize = 20_000;
    const RE_DUP_MAX: u32 = 0x7fff;

    #[derive(Clone, Copy)]
    enum Named {
        Alpha,
        Digit,
        Alnum,
        Upper,
        Lower,
        Space,
        Blank,
        Punct,
        Print,
        Graph,
        Cntrl,
        Xdigit,
    }

    impl Named {
        fn from_name(name: &str) -> Option<Named> {
            Some(match name {
                "alpha" => Named::Alpha,
                "digit" => Named::Digit,
                "alnum" => Named::Alnum,
                "upper" => Named::Upper,
                "lower" => Named::Lower,
                "space" => Named::Space,
                "blank" => Named::Blank,
                "punct" => Named::Punct,
                "print" => Named::Print,
                "graph" => Named::Graph,
                "cntrl" => Named::Cntrl,
                "xdigit" => Named::Xdigit,
                _ => return None,
            })
        }

        fn matches(self, c: char) -> bool {
            match self {
                Named::Alpha => c.is_ascii_alphabetic(),
                Named::Digit => c.is_ascii_digit(),
                Named::Alnum => c.is_ascii_alphanumeric(),
                Named::Upper => c.is_ascii_uppercase(),
                Named::Lower => c.is_ascii_lowercase(),
                Named::Space => matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r'),
                Named::Blank => matches!(c, ' ' | '\t'),
                Named::Punct => c.is_ascii_punctuation(),
                Named::Print => c.is_ascii_graphic() || c == ' ',
                Named::Graph => c.is_ascii_graphic(),
                Named::Cntrl => c.is_ascii_control(),
                Named::Xdigit => c.is_ascii_hexdigit(),
            }
        }
    }

    enum SetItem {
        One(char),
        Range(char, char),
        Class(Named),
    }

    struct CharSet {
        negated: bool,
        items: Vec<SetItem>,
    }

    impl CharSet {
        fn matches(&self, c: char) -> bool {
            let hit = self.items.iter().any(|item| match item {
                SetItem::One(x) => *x == c,
                SetItem::Range(lo, hi) => (*lo..=*hi).contains(&c),
                SetItem::Class(n) => n.matches(c),
            });
            hit != self.negated
        }
    }

    enum Node {
        Char(char),
        Any,
        Set(usize),
        Bol,
        Eol,
        Concat(Vec<Node>),
        Alt(Vec<Node>),
        Repeat(Box<Node>, u32, Option<u32>),
    }

    enum Inst {
        Char(char),
        Any,
        Set(usize),
        Bol,
        Eol,
        Split(usize, usize),
        Jmp(usize),
        Match,
    }

    pub(super) struct Regex {
        prog: Vec<Inst>,
        sets: Vec<CharSet>,
    }

    struct Parser {
        chars: Vec<char>,
        pos: usize,
        groups: usize,
        sets: Vec<CharSet>,
    }

    impl Parser {
        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).copied()
        }

        fn next(&mut self) -> Option<char> {
            let c = self.peek();
            if c.is_some() {
                self.pos += 1;
            }
            c
        }

        fn alternation(&mut self) -> Result<Node, &'static str> {
            let mut branches = vec![self.concat()?];
            while self.peek() == Some('|') {
                self.pos += 1;
                branches.push(self.concat()?);
            }
            Ok(if branches.len() == 1 { branches.remove(0) } else { Node::Alt(branches) })
        }

        fn concat(&mut self) -> Result<Node, &'static str> {
            let mut items = Vec::new();
            while let Some(c) = self.peek() {
                if c == '|' || (c == ')' && self.groups > 0) {
                    break;
                }
                let atom = self.atom()?;
                items.push(self.quantifiers(atom)?);
            }
            Ok(Node::Concat(items))
        }

        fn atom(&mut self) -> Result<Node, &'static str> {
            let Some(c) = self.next() else {
                return Ok(Node::Concat(Vec::new()));
            };
            Ok(match c {
                '(' => {
                    self.groups += 1;
                    let inner = self.alternation()?;
                    if self.next() != Some(')') {
                        return Err("Unmatched ( or \\(");
                    }
                    self.groups -= 1;
                    inner
                }
                '.' => Node::Any,
                '^' => Node::Bol,
                '$' => Node::Eol,
                '[' => {
                    let set = self.bracket()?;
                    self.sets.push(set);
                    Node::Set(self.sets.len() - 1)
                }
                '\\' => Node::Char(self.next().ok_or("Trailing backslash")?),
                '*' | '+' | '?' => return Err("Invalid preceding regular expression"),
                other => Node::Char(other),
            })
        }

        fn quantifiers(&mut self, mut atom: Node) -> Result<Node, &'static str> {
            loop {
                let quantifier = self.peek();
                if !matches!(quantifier, Some('*' | '+' | '?' | '{')) {
                    return Ok(atom);
                }
                self.pos += 1;
                let (min, max) = match quantifier {
                    Some('*') => (0, None),
                    Some('+') => (1, None),
                    Some('?') => (0, Some(1)),
                    _ => self.interval()?,
                };
                atom = Node::Repeat(Box::new(atom), min, max);
            }
        }

        /// After `{`: `m}`, `m,}`, `m,n}` or `,n}`; leaves pos after `}`.
        fn interval(&mut self) -> Result<(u32, Option<u32>), &'static str> {
            const BAD: &str = "Invalid content of \\{\\}";
            let number = |p: &mut Parser| -> Option<u32> {
                let start = p.pos;
                let mut n: u32 = 0;
                while let Some(d) = p.peek().and_then(|c| c.to_digit(10)) {
                    n = n.saturating_mul(10).saturating_add(d);
                    p.pos += 1;
                }
                (p.pos > start).then_some(n)
            };
            let min = number(self);
            let max = if self.peek() == Some(',') {
                self.pos += 1;
                number(self)
            } else {
                Some(min.ok_or(BAD)?)
            };
            if self.next() != Some('}') {
                return Err(BAD);
            }
            let min = min.unwrap_or(0);
            if let Some(max) = max {
                if max < min {
                    return Err(BAD);
                }
                if max > RE_DUP_MAX {
                    return Err(TOO_BIG);
                }
            }
            if min > RE_DUP_MAX {
                return Err(TOO_BIG);
            }
            Ok((min, max))
        }

        /// After `[`.
        fn bracket(&mut self) -> Result<CharSet, &'static str> {
            const UNMATCHED: &str = "Unmatched [, [^, [:, [., or [=";
            let mut set = CharSet { negated: false, items: Vec::new() };
            if self.peek() == Some('^') {
                set.negated = true;
                self.pos += 1;
            }
            let mut first = true;
            loop {
                let c = self.next().ok_or(UNMATCHED)?;
                if c == ']' && !first {
                    return Ok(set);
                }
                first = false;
                let lo = match self.bracket_element(c)? {
                    Err(named) => {
                        set.items.push(SetItem::Class(named));
                        continue;
                    }
                    Ok(ch) => ch,
                };
                let is_range =
                    self.peek() == Some('-') && !matches!(self.chars.get(self.pos + 1), None | Some(']'));
                if is_range {
                    self.pos += 1;
                    let c = self.next().ok_or(UNMATCHED)?;
                    let hi = self.bracket_element(c)?.map_err(|_| "Invalid range end")?;
                    if hi < lo {
                        return Err("Invalid range end");
                    }
                    set.items.push(SetItem::Range(lo, hi));
                } else {
                    set.items.push(SetItem::One(lo));
                }
            }
        }

        /// One bracket element starting with `c`: a character (also from
        /// `[.x.]`/`[=x=]`) or a `[:class:]`.
        fn bracket_element(&mut self, c: char) -> Result<Result<char, Named>, &'static str> {
            let kind = match (c, self.peek()) {
                ('[', Some(k @ (':' | '.' | '='))) => k,
                _ => return Ok(Ok(c)),
            };
            self.pos += 1;
            let start = self.pos;
            loop {
                if self.pos + 1 >= self.chars.len() {
                    return Err("Unmatched [, [^, [:, [., or [=");
                }
                if self.chars[self.pos] == kind && self.chars[self.pos + 1] == ']' {
                    break;
                }
                self.pos += 1;
            }
            let name: String = self.chars[start..self.pos].iter().collect();
            self.pos += 2;
            if kind == ':' {
                return Named::from_name(&name).map(Err).ok_or("Invalid character class name");
            }
            let mut it = name.chars();
            match (it.next(), it.next()) {
                (Some(ch), None) => Ok(Ok(ch)),
                _ => Err("Invalid collation character"),
            }
        }
    }

    struct Compiler {
        prog: Vec<Inst>,
    }

    impl Compiler {
        fn push(&mut self, inst: Inst) -> Result<usize, &'static str> {
            if self.prog.len() >= MAX_PROGRAM {
                return Err(TOO_BIG);
            }
            self.prog.push(inst);
            Ok(self.prog.len() - 1)
        }

        fn emit(&mut self, node: &Node) -> Result<(), &'static str> {
            match node {
                Node::Char(c) => {
                    self.push(Inst::Char(*c))?;
                }
                Node::Any => {
                    self.push(Inst::Any)?;
                }
                Node::Set(i) => {
                    self.push(Inst::Set(*i))?;
                }
                Node::Bol => {
                    self.push(Inst::Bol)?;
                }
                Node::Eol => {
                    self.push(Inst::Eol)?;
                }
                Node::Concat(items) => {
                    for n in items {
                        self.emit(n)?;
                    }
                }
                Node::Alt(branches) => {
                    let mut jumps = Vec::new();
                    for (k, branch) in branches.iter().enumerate() {
                        if k + 1 == branches.len() {
                            self.emit(branch)?;
                        } else {
                            let split = self.push(Inst::Split(0, 0))?;
                            self.emit(branch)?;
                            jumps.push(self.push(Inst::Jmp(0))?);
                            self.prog[split] = Inst::Split(split + 1, self.prog.len());
                        }
                    }
                    let end = self.prog.len();
                    for j in jumps {
                        self.prog[j] = Inst::Jmp(end);
                    }
                }
                Node::Repeat(inner, min, max) => {
                    for _ in 0..*min {
                        self.emit(inner)?;
                    }
                    match max {
                        None => {
                            let split = self.push(Inst::Split(0, 0))?;
                            self.emit(inner)?;
                            self.push(Inst::Jmp(split))?;
                            self.prog[split] = Inst::Split(split + 1, self.prog.len());
                        }
                        Some(max) => {
                            let mut splits = Vec::new();
                            for _ in *min..*max {
                                splits.push(self.push(Inst::Split(0, 0))?);
                                self.emit(inner)?;
                            }
                            let end = self.prog.len();
                            for s in splits {
                                self.prog[s] = Inst::Split(s + 1, end);
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }

    impl Regex {
        pub(super) fn new(pattern: &str) -> Result<Regex, &'static str> {
            let mut parser = Parser { chars: pattern.chars().collect(), pos: 0, groups: 0, sets: Vec::new() };
            let node = parser.alternation()?;
            if parser.pos < parser.chars.len() {
                // Only a stray ')' at top level could stop the parser early,
                // and concat() treats that as a literal; be safe anyway.
                return Err("Unmatched ) or \\)");
            }
            let mut compiler = Compiler { prog: Vec::new() };
            compiler.emit(&node)?;
            compiler.push(Inst::Match)?;
            Ok(Regex { prog: compiler.prog, sets: parser.sets })
        }

        /// True if the pattern matches anywhere in `text` (like regexec()).
        pub(super) fn is_match(&self, text: &str) -> bool {
            let chars: Vec<char> = text.chars().collect();
            let mut marks = vec![usize::MAX; self.prog.len()];
            let mut stack = Vec::new();
            let mut current: Vec<usize> = Vec::new();
            let mut next: Vec<usize> = Vec::new();
            for pos in 0..=chars.len() {
                if self.add(&mut current, &mut marks, &mut stack, 0, pos, chars.len()) {
                    return true;
                }
                let Some(&c) = chars.get(pos) else {
                    break;
                };
                next.clear();
                for &pc in &current {
                    let ok = match &self.prog[pc] {
                        Inst::Char(x) => *x == c,
                        Inst::Any => true,
                        Inst::Set(i) => self.sets[*i].matches(c),
                        _ => false,
                    };
                    if ok && self.add(&mut next, &mut marks, &mut stack, pc + 1, pos + 1, chars.len()) {
                        return true;
                    }
                }
                std::mem::swap(&mut current, &mut next);
            }
            false
        }

        /// Adds `pc` and everything reachable through empty transitions at
        /// `pos`; returns true as soon as the match state is reached.
        fn add(
            &self,
            list: &mut Vec<usize>,
            marks: &mut [usize],
            stack: &mut Vec<usize>,
            pc: usize,
            pos: usize,
            len: usize,
        ) -> bool {
            stack.clear();
            stack.push(pc);
            while let Some(pc) = stack.pop() {
                if marks[pc] == pos {
                    continue;
                }
                marks[pc] = pos;
                match self.prog[pc] {
                    Inst::Jmp(t) => stack.push(t),
                    Inst::Split(a, b) => {
                        stack.push(b);
                        stack.push(a);
                    }
                    Inst::Bol => {
                        if pos == 0 {
                            stack.push(pc + 1);
                        }
                    }
                    Inst::Eol => {
                        if pos == len {
                            stack.push(pc + 1);
                        }
                    }
                    Inst::Match => return true,
                    Inst::Char(_) | Inst::Any | Inst::Set(_) => list.push(pc),
                }
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<Variable<'static>> {
        vec![
            Variable::short('v', "value1234"),
            Variable::new('u', "user", "User.Name@Example.COM"),
            Variable::new('a', "alpha", "alpha"),
            Variable::new('b', "beta", "beta"),
            Variable::new('o', "one", "1"),
            Variable::new('t', "two", "2"),
            Variable::new('n', "num", "255"),
            Variable::long("value", "example"),
            Variable::long("other-value", "other-example"),
            Variable::long("evil1", ";:"),
            Variable::long("evil2", ";test;"),
            Variable::long("quotes", "it's \"q\" \\"),
            Variable::long("spaces", "trail \t\n "),
            Variable::long("dom", "sub.domain.org"),
            Variable { key: Some('z'), long: Some("unset"), value: None },
        ]
    }

    fn ok(template: &str) -> String {
        match expand(template, &table()) {
            Ok(s) => s,
            Err(e) => panic!("{template}: unexpected error {e:?}"),
        }
    }

    fn err(template: &str) -> ExpandError {
        match expand(template, &table()) {
            Ok(s) => panic!("{template}: expected an error, got {s:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_text_and_percent() {
        assert_eq!(ok(""), "");
        assert_eq!(ok("no variables"), "no variables");
        assert_eq!(ok("100%%"), "100%");
        assert_eq!(ok("%%u"), "%u");
        assert_eq!(ok("%L%"), "%");
        assert_eq!(ok("ünïcödé %u ✓"), "ünïcödé User.Name@Example.COM ✓");
    }

    #[test]
    fn short_and_long_names() {
        assert_eq!(ok("%u"), "User.Name@Example.COM");
        assert_eq!(ok("%{user}"), "User.Name@Example.COM");
        assert_eq!(ok("/home/%{alpha}/%b"), "/home/alpha/beta");
        assert_eq!(ok("[%z][%{unset}]"), "[][]");
    }

    #[test]
    fn ranges_from_dovecot_tests() {
        for (template, expected) in [
            ("%v", "value1234"),
            ("%3v", "val"),
            ("%3.2v", "ue"),
            ("%3.-2v", "ue12"),
            ("%-3.2v", "23"),
            ("%0.-1v", "value123"),
            ("%-4.-1v", "123"),
        ] {
            assert_eq!(ok(template), expected, "{template}");
        }
    }

    #[test]
    fn ranges_edge_cases() {
        // Leading '-' without '.' is ignored: plain width 3.
        assert_eq!(ok("%-3v"), "val");
        // Offset past the end gives "", negative offset past the start all.
        assert_eq!(ok("%20.2v"), "");
        assert_eq!(ok("%-20.2v"), "va");
        // Width larger than the value.
        assert_eq!(ok("%2.50v"), "lue1234");
        // Negative width longer than the value appends everything (C quirk).
        assert_eq!(ok("%0.-20v"), "value1234");
        assert_eq!(ok("%0.-9v"), "");
        // Zero padding never truncates.
        assert_eq!(ok("%05o"), "00001");
        assert_eq!(ok("%04v"), "value1234");
        assert_eq!(ok("%1.04n"), "0055");
        assert_eq!(ok("%-2.2n"), "55");
        // Character based on non-ASCII values.
        let vars = [Variable::short('x', "äöüß")];
        assert_eq!(expand("%1.2x|%-1.1x|%Rx", &vars).ok().as_deref(), Some("öü|ß|ßüöä"));
    }

    #[test]
    fn modifiers() {
        assert_eq!(ok("%Lu"), "user.name@example.com");
        assert_eq!(ok("%U{user}"), "USER.NAME@EXAMPLE.COM");
        assert_eq!(ok("%E{quotes}"), "it\\'s \\\"q\\\" \\\\");
        assert_eq!(ok("%Xn"), "ff");
        assert_eq!(ok("%Xa"), "0");
        assert_eq!(ok("%X{unset}"), "0");
        assert_eq!(ok("%Ra"), "ahpla");
        assert_eq!(ok("%D{dom}"), "sub,dc=domain,dc=org");
        assert_eq!(ok("[%T{spaces}]"), "[trail]");
        // md5("alpha"), checked with python3 hashlib.
        assert_eq!(ok("%Ma"), "2c1743a391305fbf367df8e4f069f9f9");
        // Modifiers apply left to right, then the substring.
        assert_eq!(ok("%RLu"), "moc.elpmaxe@eman.resu");
        assert_eq!(ok("%3RLu"), "moc");
        assert_eq!(ok("%1Mu"), "e");
        assert_eq!(ok("%2.1Ma"), "1");
    }

    #[test]
    fn hash_modifiers_match_dovecot() {
        let vars = [Variable::short('v', "value"), Variable::short('w', "value2")];
        let run = |t: &str| expand(t, &vars).ok();
        // Values from Dovecot's own test-var-expand.c.
        assert_eq!(run("%50Hv").as_deref(), Some("1f"));
        assert_eq!(run("%50Hw").as_deref(), Some("2e"));
        assert_eq!(run("%50Nv").as_deref(), Some("25"));
        assert_eq!(run("%50Nw").as_deref(), Some("e"));
        // Without a modulo: full values (computed independently in python).
        assert_eq!(run("%Hv").as_deref(), Some("7c83b5"));
        assert_eq!(run("%Nv").as_deref(), Some("8d6e0baf"));
        // The offset pads with zeros, the width is the modulo.
        assert_eq!(run("%4.50Nw").as_deref(), Some("000e"));
        assert_eq!(run("%2.256Hv").as_deref(), Some("b5"));
        // user@example.com: H = 0x14d67dd, md5 prefix low 32 bits = 0x04c56387.
        let user = [Variable::short('u', "user@example.com")];
        assert_eq!(expand("%Hu", &user).ok().as_deref(), Some("14d67dd"));
        assert_eq!(expand("%256Nu", &user).ok().as_deref(), Some("87"));
        assert_eq!(expand("%Nu", &user).ok().as_deref(), Some("4c56387"));
        assert_eq!(expand("%3RHu", &user).ok().as_deref(), Some("0"));
    }

    #[test]
    fn at_most_ten_modifiers() {
        // The 11th 'L' is taken as the variable key.
        let e = err("%LLLLLLLLLLLa");
        assert_eq!(e.message, "Unknown variable '%L'");
        assert_eq!(e.partial, "unsupported_variable_la");
    }

    #[test]
    fn builtins() {
        assert_eq!(ok("%{pid}"), std::process::id().to_string());
        let uid = ok("%{uid}");
        assert!(!uid.is_empty() && uid.bytes().all(|b| b.is_ascii_digit()), "{uid}");
        let gid = ok("%{gid}");
        assert!(!gid.is_empty() && gid.bytes().all(|b| b.is_ascii_digit()), "{gid}");
        assert!(!ok("%{hostname}").is_empty());
        // The caller's table wins over the built-ins.
        let vars = [Variable::long("pid", "42")];
        assert_eq!(expand("%{pid}", &vars).ok().as_deref(), Some("42"));
    }

    #[test]
    fn environment() {
        std::env::set_var("DOVECOTE_VAR_EXPAND_TEST", "baR");
        assert_eq!(ok("a%{env:DOVECOTE_VAR_EXPAND_TEST}b"), "abaRb");
        assert_eq!(ok("%U{env:DOVECOTE_VAR_EXPAND_TEST}"), "BAR");
        assert_eq!(ok("[%{env:DOVECOTE_VAR_EXPAND_UNSET}]"), "[]");
        assert_eq!(ok("[%{env:}][%{env:A=B}][%{env:a\0b}]"), "[][][]");
    }

    #[test]
    fn hash_functions_match_dovecot() {
        // Dovecot's test-var-expand.c: %{value} is "example".
        for (template, expected) in [
            (
                "md5: %M{value} %{md5:value}",
                "md5: 1a79a4d60de6718e8e5b326e338ae533 1a79a4d60de6718e8e5b326e338ae533",
            ),
            ("sha1: %{sha1:value}", "sha1: c3499c2729730a7f807efb8676a92dcb6f8a3f8f"),
            ("truncate: %{sha1;truncate=12:value}", "truncate: 0c34"),
            ("truncate: %{sha1;truncate=16:value}", "truncate: c349"),
            (
                "rounds,salt: %{sha1;rounds=1000,salt=seawater:value}",
                "rounds,salt: b515c85884f6b82dc7588279f3643a73e55d2289",
            ),
            (
                "rounds,salt,expand: %{sha1;rounds=1000,salt=%{other-value}:value} %{other-value}",
                "rounds,salt,expand: 49a598ee110af615e175f2e4511cc5d7ccff96ab other-example",
            ),
            ("format: %4.8{sha1:value}", "format: 9c272973"),
            ("base64: %{sha1;format=base64:value}", "base64: w0mcJylzCn+AfvuGdqkty2+KP48="),
        ] {
            assert_eq!(ok(template), expected, "{template}");
        }
    }

    #[test]
    fn hash_functions_other_methods() {
        // Expected values from python3 hashlib / RFC 1320.
        let vars = [
            Variable::new('u', "user", "user@example.com"),
            Variable::long("abc", "abc"),
            Variable::long("value", "example"),
        ];
        let run = |t: &str| expand(t, &vars).ok();
        assert_eq!(
            run("%{sha256:user}").as_deref(),
            Some("b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514")
        );
        assert_eq!(
            run("%{sha512:user}").as_deref(),
            Some(
                "6db185971e8d3b52426ff4a1c1ec499abda4a6d0bd47e4f3843a771203c5a408\
                 3abfc3db61a61da548c8fed8c035e779b35016c87589f017064680b83e36f228"
            )
        );
        assert_eq!(
            run("%{sha3-256:user}").as_deref(),
            Some("02b701531e690961b9d02612c74367bf4e32abfd4a22d4cd86827d517e02cc72")
        );
        assert_eq!(run("%32{sha3-512:user}").as_deref(), Some("1214891ea5d744adf7760405d55bd0d5"));
        assert_eq!(run("%{md4:abc}").as_deref(), Some("a448017aaf21d8525fc10ae87aa6729d"));
        assert_eq!(run("%{md5;truncate=32:user}").as_deref(), Some("b58996c5"));
        assert_eq!(run("%{size:user}").as_deref(), Some("0000000000000010"));
        assert_eq!(run("%16{sha256;format=hexuc:value}").as_deref(), Some("50D858E0985ECC7F"));
        assert_eq!(
            run("%{sha256;format=base64url:value}").as_deref(),
            Some("UNhY4JhezH9gQYqvDMWrWH9CwlcKiECVqejMrND2VFw=")
        );
        // PBKDF2-HMAC-SHA256, 256 bytes; salt defaults to the field name.
        assert_eq!(
            run("%64{pkcs5:user}").as_deref(),
            Some("7d676cf44f4a5198ad12ab6e29ba9b1143cba32d794db16e54b17ce8c9f27171")
        );
        assert_eq!(run("%{pkcs5:user}").map(|s| s.len()), Some(512));
        assert_eq!(
            run("%64{pkcs5;rounds=3,salt=pepper:user}").as_deref(),
            Some("c6345ef9720a7f9c548c0d72f43e6741f2cb897e69f0f3d13f60ee29a01cc38f")
        );
    }

    #[test]
    fn hash_function_errors() {
        let e = err("x%{sha1;rounds=abc:value}y");
        assert_eq!(e.kind, ErrorKind::Failed);
        assert_eq!(e.message, "Cannot parse hash arguments:'abc' is not number for rounds");
        assert_eq!(e.partial, "xy");
        assert_eq!(
            err("%{sha1;rounds=0:value}").message,
            "Cannot parse hash arguments:rounds must be at least 1"
        );
        assert_eq!(
            err("%{sha1;truncate=-1:value}").message,
            "Cannot parse hash arguments:'-1' is not number for truncbits"
        );
        assert_eq!(
            err("%{sha1;format=octal:value}").message,
            "Cannot parse hash arguments:'octal' is not supported format"
        );
        let e = err("%{md5:nosuchvar}");
        assert_eq!(e.kind, ErrorKind::UnknownVariable);
        assert_eq!(e.message, "Unknown variable '%nosuchvar'");
        assert_eq!(e.partial, "");
        // Unknown keys inside the argument list are ignored.
        assert_eq!(ok("%{md5;foo=bar,baz:value}"), "1a79a4d60de6718e8e5b326e338ae533");
    }

    #[test]
    fn unknown_variables() {
        let e = err("a%xb");
        assert_eq!(e.kind, ErrorKind::UnknownVariable);
        assert_eq!(e.message, "Unknown variable '%x'");
        assert_eq!(e.partial, "aUNSUPPORTED_VARIABLE_xb");
        assert_eq!(e.to_string(), "Unknown variable '%x'");

        let e = err("%{nonexistent}");
        assert_eq!(e.message, "Unknown variable '%nonexistent'");
        assert_eq!(e.partial, "UNSUPPORTED_VARIABLE_nonexistent");
        let e = err("%{nonexistent:default}/%u");
        assert_eq!(e.message, "Unknown variable '%nonexistent'");
        assert_eq!(e.partial, "UNSUPPORTED_VARIABLE_nonexistent/User.Name@Example.COM");

        // The first error is reported, and modifiers still apply.
        let e = err("%Lx%Ly");
        assert_eq!(e.message, "Unknown variable '%x'");
        assert_eq!(e.partial, "unsupported_variable_xunsupported_variable_y");
    }

    #[test]
    fn failures_outrank_unknown_variables() {
        let e = err("%x%{if;1;fu;2;yes;no}%y");
        assert_eq!(e.kind, ErrorKind::Failed);
        assert_eq!(e.message, "if: Unsupported comparator 'fu'");
        assert_eq!(e.partial, "UNSUPPORTED_VARIABLE_xUNSUPPORTED_VARIABLE_y");
    }

    #[test]
    fn if_from_dovecot_tests() {
        let cases: &[(&str, &str)] = &[
            ("%{if;1;==;1;yes;no}", "yes"),
            ("%{if;1;==;2;yes;no}", "no"),
            ("%{if;1;<;1;yes;no}", "no"),
            ("%{if;1;<;2;yes;no}", "yes"),
            ("%{if;1;<=;1;yes;no}", "yes"),
            ("%{if;1;<=;2;yes;no}", "yes"),
            ("%{if;1;>;1;yes;no}", "no"),
            ("%{if;1;>;2;yes;no}", "no"),
            ("%{if;1;>=;1;yes;no}", "yes"),
            ("%{if;1;>=;2;yes;no}", "no"),
            ("%{if;1;!=;1;yes;no}", "no"),
            ("%{if;1;!=;2;yes;no}", "yes"),
            ("%{if;a;eq;a;yes;no}", "yes"),
            ("%{if;a;eq;b;yes;no}", "no"),
            ("%{if;a;lt;a;yes;no}", "no"),
            ("%{if;a;lt;b;yes;no}", "yes"),
            ("%{if;a;le;a;yes;no}", "yes"),
            ("%{if;a;le;b;yes;no}", "yes"),
            ("%{if;a;gt;a;yes;no}", "no"),
            ("%{if;a;gt;b;yes;no}", "no"),
            ("%{if;a;ge;a;yes;no}", "yes"),
            ("%{if;a;ge;b;yes;no}", "no"),
            ("%{if;a;ne;a;yes;no}", "no"),
            ("%{if;a;ne;b;yes;no}", "yes"),
            ("%{if;a;*;a;yes;no}", "yes"),
            ("%{if;a;*;b;yes;no}", "no"),
            ("%{if;a;*;*a*;yes;no}", "yes"),
            ("%{if;a;*;*b*;yes;no}", "no"),
            ("%{if;a;*;*;yes;no}", "yes"),
            ("%{if;a;!*;a;yes;no}", "no"),
            ("%{if;a;!*;b;yes;no}", "yes"),
            ("%{if;a;!*;*a*;yes;no}", "no"),
            ("%{if;a;!*;*b*;yes;no}", "yes"),
            ("%{if;a;!*;*;yes;no}", "no"),
            ("%{if;a;~;a;yes;no}", "yes"),
            ("%{if;a;~;b;yes;no}", "no"),
            ("%{if;a;~;.*a.*;yes;no}", "yes"),
            ("%{if;a;~;.*b.*;yes;no}", "no"),
            ("%{if;a;~;.*;yes;no}", "yes"),
            ("%{if;a;!~;a;yes;no}", "no"),
            ("%{if;a;!~;b;yes;no}", "yes"),
            ("%{if;a;!~;.*a.*;yes;no}", "no"),
            ("%{if;a;!~;.*b.*;yes;no}", "yes"),
            ("%{if;a;!~;.*;yes;no}", "no"),
            ("%{if;this is test;~;^test;yes;no}", "no"),
            ("%{if;this is test;~;.*test;yes;no}", "yes"),
            ("%{if;%a;eq;%a;yes;no}", "yes"),
            ("%{if;%a;eq;%b;yes;no}", "no"),
            ("%{if;%{alpha};eq;%{alpha};yes;no}", "yes"),
            ("%{if;%{alpha};eq;%{beta};yes;no}", "no"),
            ("%{if;%o;eq;%o;yes;no}", "yes"),
            ("%{if;%o;eq;%t;yes;no}", "no"),
            ("%{if;%{one};eq;%{one};yes;no}", "yes"),
            ("%{if;%{one};eq;%{two};yes;no}", "no"),
            ("%{if;%{one};eq;%{one};%{one};%{two}}", "1"),
            ("%{if;%{one};gt;%{two};%{one};%{two}}", "2"),
            ("%{if;%{evil1};eq;\\;\\:;%{evil2};no}", ";test;"),
            ("%{if;%{if;%{one};eq;1;1;0};eq;%{if;%{two};eq;2;2;3};yes;no}", "no"),
            ("%{if;1;==;1;yes}", "yes"),
            ("%{if;1;==;2;yes}", ""),
        ];
        for (template, expected) in cases {
            assert_eq!(ok(template), *expected, "{template}");
        }
    }

    #[test]
    fn if_errors_from_dovecot_tests() {
        for template in ["%{if;}", "%{if;1;}", "%{if;1;==;}", "%{if;1;==;2;}", "%{if;1;fu;2;yes;no}"] {
            let e = err(template);
            assert_eq!(e.kind, ErrorKind::Failed, "{template}");
            assert_eq!(e.partial, "", "{template}");
        }
        assert_eq!(err("%{if;}").message, "if: requires four or five parameters, got 0");
        assert_eq!(err("%{if}").message, "if: missing parameter(s)");
        assert_eq!(err("%{if;x;==;1;a;b}").message, "if: x (lhs) is not a number");
        assert_eq!(err("%{if;1;<;+2;a;b}").message, "if: +2 (rhs) is not a number");
        assert_eq!(err("%{if;a;~;(b;y;n}").message, "if: regex failed: Unmatched ( or \\(");
        let e = err("%{if;%{missing1};==;%{missing2};yes;no}");
        assert_eq!(e.kind, ErrorKind::UnknownVariable);
        assert_eq!(e.message, "Unknown variable '%missing1'");
        assert_eq!(e.partial, "");
    }

    #[test]
    fn if_details() {
        // Numeric comparisons handle signs and 64-bit values.
        assert_eq!(ok("%{if;-5;<;3;y;n}"), "y");
        assert_eq!(ok("%{if;9223372036854775807;>;-9223372036854775808;y;n}"), "y");
        // Modifiers and ranges apply to the if result.
        assert_eq!(ok("%U{if;%a;eq;alpha;yes;no}"), "YES");
        assert_eq!(ok("%2{if;%a;eq;alpha;yes;no}"), "ye");
        // A top-level ':' ends the parameters.
        assert_eq!(ok("%{if;a;eq;a;yes:ignored;no}"), "yes");
        assert_eq!(ok("%{if;a;eq;b;yes;no:ignored}"), "no");
        // '?' in wildcards and anchors/classes/intervals in regexes.
        assert_eq!(ok("%{if;%u;*;*@Example.???;y;n}"), "y");
        // A top-level ':' ends the parameters, so POSIX classes need `\:`;
        // escapes are removed before the regex sees the pattern.
        assert_eq!(ok("%{if;%u;~;^[[\\:upper\\:]][a-z]+[.];y;n}"), "y");
        assert_eq!(err("%{if;%u;~;^[[:upper:]];y;n}").kind, ErrorKind::Failed);
        assert_eq!(ok("%{if;%n;~;^[0-9]{3}$;y;n}"), "y");
        assert_eq!(ok("%{if;%n;~;^[0-9]{4}$;y;n}"), "n");
        assert_eq!(ok("%{if;%n;~;^(1|2)5+$;y;n}"), "y");
        assert_eq!(ok("%{if;%n;!~;[^0-9];y;n}"), "y");
        assert_eq!(ok("%{if;a.b;~;^a[.]b$;y;n}"), "y");
        assert_eq!(ok("%{if;a.b;~;x?a.?b$;y;n}"), "y");
        assert_eq!(ok("%{if;abab;~;^(ab){2}$;y;n}"), "y");
        assert_eq!(ok("%{if;abab;~;^(ab){3,};y;n}"), "n");
        assert_eq!(ok("%{if;ab;~;^a|^x;y;n}"), "y");
        assert_eq!(ok("%{if;x);~;x);y;n}"), "y");
        assert_eq!(err("%{if;a;~;*a;y;n}").message, "if: regex failed: Invalid preceding regular expression");
        assert_eq!(err("%{if;a;~;[a;y;n}").kind, ErrorKind::Failed);
        assert_eq!(err("%{if;a;~;a{2,1};y;n}").kind, ErrorKind::Failed);
        assert_eq!(err("%{if;a;~;a{99999};y;n}").kind, ErrorKind::Failed);
        assert_eq!(err("%{if;a;~;[z-a];y;n}").kind, ErrorKind::Failed);
        // Pathological patterns stay fast (no backtracking).
        let long = "a".repeat(200);
        assert_eq!(ok(&format!("%{{if;{long};~;^(a*)*b$;y;n}}")), "n");
        // Case-insensitive function names, but the hash lookup is exact.
        assert_eq!(ok("%{IF;1;==;1;y;n}"), "y");
        assert_eq!(err("%{SHA1:value}").kind, ErrorKind::UnknownVariable);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("", ""));
        assert!(wildcard_match("", "**"));
        assert!(!wildcard_match("", "?"));
        assert!(!wildcard_match("a", ""));
        assert!(wildcard_match("abc", "a*c"));
        assert!(wildcard_match("abc", "*b*"));
        assert!(wildcard_match("abcbd", "*b?"));
        assert!(!wildcard_match("abc", "a*d"));
    }

    #[test]
    fn caller_functions() {
        let func1 = |data: &str| FuncOutcome::Value(format!("<{data}>"));
        let func4 = |_: &str| FuncOutcome::Unknown;
        let func5 = |_: &str| FuncOutcome::Failed("Internal error".to_string());
        let funcs = [
            Function { name: "func1", call: &func1 },
            Function { name: "func4", call: &func4 },
            Function { name: "func5", call: &func5 },
        ];
        let run = |t: &str| expand_with_funcs(t, &[], &funcs);
        assert_eq!(run("%{func1}").ok().as_deref(), Some("<>"));
        assert_eq!(run("%{func1:foo}").ok().as_deref(), Some("<foo>"));
        assert_eq!(run("%{func1:a:b}").ok().as_deref(), Some("<a:b>"));
        // Hash fields are looked up as variables, so functions work there.
        assert_eq!(
            run("%{sha1:func1:example}").ok().as_deref(),
            Some("53bab0940c04b1bb99536ee66b3ae91968c24e45")
        );
        let e = run("a%{func4}b").err();
        assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::UnknownVariable));
        assert_eq!(e.as_ref().map(|e| e.message.as_str()), Some("Unknown variable '%func4'"));
        assert_eq!(e.map(|e| e.partial), Some("ab".to_string()));
        let e = run("%{func4}%{func5}").err();
        assert_eq!(e.as_ref().map(|e| e.kind), Some(ErrorKind::Failed));
        assert_eq!(e.map(|e| e.message), Some("Internal error".to_string()));
    }

    #[test]
    fn malformed_input_never_panics() {
        // Trailing '%' (with or without a spec) is dropped.
        assert_eq!(ok("abc%"), "abc");
        assert_eq!(ok("abc%-0.5LU"), "abc");
        // '%{' without any '}' is an unknown short key '{'.
        let e = err("%{user");
        assert_eq!(e.message, "Unknown variable '%{'");
        assert_eq!(e.partial, "UNSUPPORTED_VARIABLE_{user");
        // Unbalanced nested braces consume the rest as the key.
        let e = err("%{a{b}");
        assert_eq!(e.partial, "UNSUPPORTED_VARIABLE_a{b}");
        // Escaped braces inside a long key.
        assert_eq!(err("%{x\\}y}").partial, "UNSUPPORTED_VARIABLE_x\\}y");
        // Non-ASCII short keys.
        assert_eq!(err("%é").partial, "UNSUPPORTED_VARIABLE_é");
        // Huge numbers saturate instead of overflowing.
        assert_eq!(ok("%99999999999999999999.99999999999999999999v"), "");
        assert_eq!(ok("%-99999999999999999999.-99999999999999999999v"), "value1234");
        assert_eq!(ok("%99999999999999999999Hv"), "3b839e4");
        assert_eq!(ok("%-99999999999999999999.-99999999999999999999Nv").len(), 8);
        for template in [
            "%",
            "%%%",
            "%{",
            "%{}",
            "%}",
            "%{{",
            "%{{}",
            "%{:}",
            "%{;}",
            "%{if",
            "%{if;",
            "%{if;;;;;}",
            "%{if;%{",
            "%{if;\\",
            "%{md5",
            "%{md5:",
            "%{md5;}",
            "%{sha1;salt=%{:x}",
            "%{sha1;salt=%:x}",
            "%{env",
            "%{env:",
            "%0",
            "%-",
            "%.",
            "%-.-",
            "%0.0",
            "%L",
            "%{if;a;~;\\;y;n}",
            "%{if;a;~;[[:foo:]];y;n}",
            "%{if;a;~;[[.ab.]];y;n}",
            "%{if;a;~;[[:;y;n}",
            "%{if;a;~;a{;y;n}",
            "%{if;a;~;a{1;y;n}",
            "%{if;a;~;a{,2};y;n}",
            "%{if;a;~;();y;n}",
            "%{if;a;~;a||;y;n}",
            "%{if;a;~;^*;y;n}",
            "%{if;a;~;[]a];y;n}",
            "%{if;a;~;[^]];y;n}",
            "%{if;a;~;[a-];y;n}",
        ] {
            let _ = expand(template, &table());
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_crashed() {
        let mut template = String::from("x");
        for _ in 0..200 {
            template = format!("%{{if;1;==;1;{template};n}}");
        }
        let e = err(&template);
        assert_eq!(e.kind, ErrorKind::Failed);
        let mut ok_template = String::from("x");
        for _ in 0..10 {
            ok_template = format!("%{{if;1;==;1;{ok_template};n}}");
        }
        assert_eq!(ok(&ok_template), "x");
    }

    #[test]
    fn mail_vars() {
        let mv = MailVars {
            user: Some("jane.doe@mail.example.org".into()),
            service: Some("imap".into()),
            home: Some("/home/jane".into()),
            local_ip: Some("10.0.0.1".into()),
            remote_ip: Some("192.0.2.7".into()),
            session: Some("sess1".into()),
            uid: Some("1000".into()),
            userdb_fields: vec![("quota".into(), "1G".into()), ("empty".into(), String::new())],
            ..MailVars::default()
        };
        let run = |t: &str| mv.expand(t).ok();
        assert_eq!(
            run("%u|%n|%d|%s|%h|%l|%r|%i").as_deref(),
            Some(
                "jane.doe@mail.example.org|jane.doe|mail.example.org|imap|/home/jane|10.0.0.1|192.0.2.7|1000"
            )
        );
        assert_eq!(
            run("%{user}|%{username}|%{domain}|%{service}|%{home}|%{local_ip}|%{lip}|%{remote_ip}|%{rip}")
                .as_deref(),
            Some("jane.doe@mail.example.org|jane.doe|mail.example.org|imap|/home/jane|10.0.0.1|10.0.0.1|192.0.2.7|192.0.2.7")
        );
        assert_eq!(run("%{session}|%{uid}").as_deref(), Some("sess1|1000"));
        assert_eq!(
            run("%{auth_user}|%{auth_username}|%{auth_domain}").as_deref(),
            Some("jane.doe@mail.example.org|jane.doe|mail.example.org")
        );
        assert_eq!(run("%p").as_deref(), Some(std::process::id().to_string().as_str()));
        assert!(run("%{gid}").is_some_and(|g| !g.is_empty()));
        assert_eq!(run("%Ld/%1Ln/%n").as_deref(), Some("mail.example.org/j/jane.doe"));
        assert_eq!(run("%D{domain}").as_deref(), Some("mail,dc=example,dc=org"));
        // userdb extra fields with defaults.
        assert_eq!(
            run("%{userdb:quota}|%{userdb:missing:5G}|[%{userdb:empty:x}]|[%{userdb:nope}]").as_deref(),
            Some("1G|5G|[]|[]")
        );
        // Unset values expand to "", the hostname falls back to the system one.
        let empty = MailVars::default();
        assert_eq!(empty.expand("[%u][%n][%d][%h]").ok().as_deref(), Some("[][][][]"));
        assert!(empty.expand("%{hostname}").is_ok_and(|h| !h.is_empty()));
        let named = MailVars {
            hostname: Some("mx1".into()),
            user: Some("a@b@c".into()),
            auth_user: Some("master@example.net".into()),
            ..MailVars::default()
        };
        assert_eq!(
            named.expand("%{hostname} %n %d %{auth_username} %{auth_domain}").ok().as_deref(),
            Some("mx1 a b@c master example.net")
        );
        assert_eq!(named.expand("%x").err().map(|e| e.message), Some("Unknown variable '%x'".to_string()));
    }
}
