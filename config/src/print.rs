//! Prints a [`Config`] the way `doveconf` 2.3 does: settings and blocks
//! sorted by their exported key path, two-space indentation, quoting of
//! values with `#` or surrounding whitespace, secrets hidden, and filter
//! blocks after the global settings.

use std::cmp::Ordering;

use crate::catalog::Kind;
use crate::model::{catalog_default, Config, Filter, Section, SectionKind};
use crate::syntax::{escape, section_escape};

/// Which settings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every setting (`doveconf -a`).
    All,
    /// Settings that differ from their defaults (`doveconf -n`).
    Changed,
    /// Settings written in the configuration (`doveconf -N`, filter blocks).
    Set,
}

/// Output options.
#[derive(Debug, Clone, Copy)]
pub struct PrintOptions {
    pub scope: Scope,
    /// `-P`: print passwords and keys instead of hiding them.
    pub show_secrets: bool,
}

/// One printable item of a block, with the key Dovecot sorts it by.
enum Item {
    Setting { sort_key: String, key: String, value: String },
    Block { sort_key: String, header: String, items: Vec<Item> },
}

impl Item {
    fn sort_key(&self) -> &str {
        match self {
            Item::Setting { sort_key, .. } | Item::Block { sort_key, .. } => sort_key,
        }
    }
}

/// The body of `doveconf` output (everything after the header comment).
pub fn render(config: &Config, options: PrintOptions) -> String {
    let mut out = String::new();
    let items = section_items(&config.root, options.scope, options);
    write_items(&mut out, &items, 0);
    for block in &config.filters {
        let items = section_items(&block.root, Scope::Set, options);
        if items.is_empty() {
            continue;
        }
        let headers = filter_headers(&block.filter);
        for (depth, header) in headers.iter().enumerate() {
            indent(&mut out, depth);
            out.push_str(header);
            out.push_str(" {\n");
        }
        write_items(&mut out, &items, headers.len());
        for depth in (0..headers.len()).rev() {
            indent(&mut out, depth);
            out.push_str("}\n");
        }
    }
    out
}

/// Every setting as a flat `path = value` pair with Dovecot's paths
/// (`service/imap-login/inet_listener/imap/port`), in print order.
pub fn flat(section: &Section, scope: Scope) -> Vec<(String, String)> {
    let options = PrintOptions { scope, show_secrets: true };
    let mut out = Vec::new();
    flatten(&section_items(section, scope, options), "", &mut out);
    out
}

fn flatten(items: &[Item], prefix: &str, out: &mut Vec<(String, String)>) {
    for item in items {
        match item {
            Item::Setting { key, value, .. } => out.push((format!("{prefix}{key}"), value.clone())),
            Item::Block { sort_key, items, .. } => {
                let block_prefix = format!("{prefix}{}", sort_key.trim_end_matches('/'));
                flatten(items, &format!("{block_prefix}/"), out);
            }
        }
    }
}

/// The opening lines of a filter block, outermost first (`local 10.0.0.0/8`,
/// `protocol imap`).
pub(crate) fn filter_headers(filter: &Filter) -> Vec<String> {
    let mut headers = Vec::new();
    if let Some(net) = &filter.local {
        headers.push(format!("local {}", net.display()));
    }
    if let Some(name) = &filter.local_name {
        headers.push(format!("local_name {name}"));
    }
    if let Some(net) = &filter.remote {
        headers.push(format!("remote {}", net.display()));
    }
    if let Some(protocol) = &filter.protocol {
        headers.push(format!("protocol {protocol}"));
    }
    headers
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_items(out: &mut String, items: &[Item], depth: usize) {
    for item in items {
        match item {
            Item::Setting { key, value, .. } => {
                indent(out, depth);
                out.push_str(key);
                out.push_str(" = ");
                out.push_str(value);
                out.push('\n');
            }
            Item::Block { header, items, .. } => {
                indent(out, depth);
                out.push_str(header);
                out.push_str(" {\n");
                write_items(out, items, depth + 1);
                indent(out, depth);
                out.push_str("}\n");
            }
        }
    }
}

/// Whether `key`'s value is a secret that `doveconf` hides without `-P`.
pub fn is_secret(key: &str) -> bool {
    key.ends_with("_password")
        || key.ends_with("_key")
        || key.ends_with("_nonce")
        || key.starts_with("ssl_dh")
}

fn needs_quotes(value: &str) -> bool {
    !value.is_empty()
        && (value.contains('#') || value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']))
}

fn printable_value(key: &str, value: &str, options: PrintOptions) -> String {
    if !options.show_secrets {
        if !value.is_empty() && is_secret(key) {
            return "# hidden, use -P to show it".to_owned();
        }
        if let Some(masked) = mask_embedded_secrets(value) {
            return masked;
        }
    }
    if needs_quotes(value) {
        format!("\"{}\"", escape(value))
    } else {
        value.to_owned()
    }
}

/// Words that mark a secret inside a value (`password=...`, `secret=...`)
/// and URL schemes whose user part is hidden.
const SECRET_MARKERS: &[&str] = &["key", "secret", "pass", "http://", "https://", "ftp://"];
const MASK: &str = "#hidden_use-P_to_show#";

/// Hides `name=secret` parameters and URL user parts inside a value, as
/// `doveconf` does without `-P`. `None` when nothing in the value looks like
/// a secret. Like Dovecot, a masked value that needs quoting is escaped but
/// not put in quotes.
fn mask_embedded_secrets(value: &str) -> Option<String> {
    let quote = needs_quotes(value);
    let bytes = value.as_bytes();
    let emit = |out: &mut String, part: &str| {
        if quote {
            out.push_str(&escape(part));
        } else {
            out.push_str(part);
        }
    };
    let mut out = String::new();
    let (mut done, mut pos) = (0usize, 0usize);
    let mut found = false;
    while let Some((at, marker)) = SECRET_MARKERS
        .iter()
        .filter_map(|m| value[pos..].find(m).map(|i| (pos + i, *m)))
        .min_by_key(|(i, _)| *i)
    {
        found = true;
        if marker.contains("://") {
            // The user part of a URL: everything before an `@` in the authority.
            let user_start = at + marker.len();
            let mut end = user_start;
            let mut host_at = None;
            while end < bytes.len() && !bytes[end].is_ascii_whitespace() && bytes[end] != b'/' {
                if bytes[end] == b'@' {
                    host_at = Some(end);
                    break;
                }
                end += 1;
            }
            emit(&mut out, &value[done..user_start]);
            match host_at {
                Some(h) if h != user_start => out.push_str(MASK),
                _ => emit(&mut out, &value[user_start..end]),
            }
            done = end;
            pos = end;
            continue;
        }
        if at > 0 && bytes[at - 1].is_ascii_alphanumeric() {
            // Part of a longer word ("nopassword"): not a secret.
            pos = at + 1;
            continue;
        }
        let mut end = at;
        while end < bytes.len() && bytes[end] != b'=' && !bytes[end].is_ascii_whitespace() {
            end += 1;
        }
        while end < bytes.len() && bytes[end].is_ascii_whitespace() {
            end += 1;
        }
        emit(&mut out, &value[done..end]);
        if end < bytes.len() && bytes[end] == b'=' {
            out.push('=');
            out.push_str(MASK);
            while end < bytes.len() && !bytes[end].is_ascii_whitespace() && !matches!(bytes[end], b';' | b':')
            {
                end += 1;
            }
        }
        done = end;
        pos = end;
    }
    if !found {
        return None;
    }
    emit(&mut out, &value[done..]);
    Some(out)
}

fn section_items(section: &Section, scope: Scope, options: PrintOptions) -> Vec<Item> {
    let mut items = Vec::new();
    let unique_key = section.kind.unique_key();
    // Named blocks (services, listeners, namespaces, mailboxes) print what the
    // configuration set, whatever the default; Dovecot also always prints
    // their `%`-variable strings. Unnamed lists (passdb, userdb) and the root
    // print what differs from the default.
    let named_block = unique_key.is_some();
    let hidden = section.kind.hidden_defs();
    for def in section.kind.defs().iter().chain(hidden) {
        if Some(def.name) == unique_key {
            continue;
        }
        let is_set = section.set.contains_key(def.name);
        let is_hidden = hidden.iter().any(|h| h.name == def.name);
        if is_hidden && !is_set {
            continue;
        }
        // Hidden strings without a default print whenever they are set.
        let null_default =
            is_hidden && def.default.is_empty() && matches!(def.kind, Kind::Str | Kind::StrVars);
        let value = section.value(def.name).map(|v| v.display()).unwrap_or_default();
        let print = match scope {
            Scope::All => true,
            _ if null_default => true,
            _ if named_block => is_set || def.kind == Kind::StrVars,
            Scope::Set if is_set => true,
            _ => value != catalog_default(def).display(),
        };
        if print {
            let shown = printable_value(def.name, &value, options);
            items.push(Item::Setting {
                sort_key: format!("{}=", def.name),
                key: def.name.to_owned(),
                value: shown,
            });
        }
    }
    for (key, value) in &section.strings {
        let shown = printable_value(key, value, options);
        items.push(Item::Setting { sort_key: format!("{key}="), key: key.clone(), value: shown });
    }
    let mut counters: Vec<(SectionKind, usize)> = Vec::new();
    for child in &section.children {
        let index = match counters.iter_mut().find(|(k, _)| *k == child.kind) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                counters.push((child.kind, 1));
                0
            }
        };
        items.extend(child_block(child, index, scope, options));
    }
    items.sort_by(|a, b| dovecot_key_cmp(a.sort_key(), b.sort_key()));
    items
}

/// A child block as an item; `index` numbers unnamed blocks of one kind.
/// `None` when nothing inside it is printed.
fn child_block(child: &Section, index: usize, scope: Scope, options: PrintOptions) -> Option<Item> {
    let items = section_items(child, scope, options);
    if items.is_empty() {
        return None;
    }
    let keyword = child.kind.keyword();
    let (path_name, header) = if child.kind.is_string_list() {
        (String::new(), keyword.to_owned())
    } else if child.kind.unique_key().is_some() && !child.name.is_empty() {
        let header = if child.name.contains(' ') {
            format!("{keyword} \"{}\"", escape(&child.name))
        } else {
            format!("{keyword} {}", child.name)
        };
        (section_escape(&child.name), header)
    } else {
        (index.to_string(), keyword.to_owned())
    };
    let sort_key =
        if path_name.is_empty() { format!("{keyword}/") } else { format!("{keyword}/{path_name}/") };
    Some(Item::Block { sort_key, header, items })
}

/// The block at a `doveconf`-style path (`service/imap-login`,
/// `namespace/inbox/mailbox/Sent`) printed on its own, as `doveconf <path>`
/// does. `None` when the path names no block.
pub fn render_path(root: &Section, path: &str, options: PrintOptions) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    let mut section = root;
    let mut index = 0;
    let mut i = 0;
    while i < parts.len() {
        let keyword = parts[i];
        let name = parts.get(i + 1).copied().unwrap_or("");
        let mut counter = 0;
        let mut found = None;
        for child in &section.children {
            if child.kind.keyword() != keyword {
                continue;
            }
            let matches = if child.kind.is_string_list() {
                true
            } else if child.kind.unique_key().is_some() && !child.name.is_empty() {
                section_escape(&child.name) == name
            } else {
                counter.to_string() == name
            };
            if matches {
                found = Some((child, counter));
                break;
            }
            counter += 1;
        }
        let (child, child_index) = found?;
        section = child;
        index = child_index;
        i += if child.kind.is_string_list() { 1 } else { 2 };
    }
    if std::ptr::eq(section, root) {
        return None;
    }
    let mut out = String::new();
    if let Some(item) = child_block(section, index, options.scope, options) {
        write_items(&mut out, &[item], 0);
    }
    Some(out)
}

/// Dovecot's ordering of exported keys: byte-wise with bytes as signed chars,
/// where the `=` ending a key sorts before anything else.
fn dovecot_key_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    loop {
        let (ca, cb) = (a.get(i).copied(), b.get(i).copied());
        if ca == cb {
            if ca.is_none() || ca == Some(b'=') {
                return Ordering::Equal;
            }
            i += 1;
            continue;
        }
        return match (ca, cb) {
            (Some(b'='), _) | (None, _) => Ordering::Less,
            (_, Some(b'=')) | (_, None) => Ordering::Greater,
            (Some(x), Some(y)) => (x as i8).cmp(&(y as i8)),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_secrets_are_masked_like_doveconf() {
        assert_eq!(
            mask_embedded_secrets("password=StaticPass nopassword=yes").as_deref(),
            Some("password=#hidden_use-P_to_show# nopassword=yes")
        );
        assert_eq!(
            mask_embedded_secrets("ox:url=https://push:Secr3t@push.example.com/notify x").as_deref(),
            Some("ox:url=https://#hidden_use-P_to_show#@push.example.com/notify x")
        );
        assert_eq!(mask_embedded_secrets("maildir:~/Maildir"), None);
        assert_eq!(mask_embedded_secrets("/etc/dovecot/passwd").as_deref(), Some("/etc/dovecot/passwd"));
    }

    #[test]
    fn equals_sorts_first_and_escaped_space_after_slash() {
        assert_eq!(dovecot_key_cmp("ssl=", "ssl_ca="), Ordering::Less);
        let plain = format!("mailbox/{}/", section_escape("Sent"));
        let spaced = format!("mailbox/{}/", section_escape("Sent Messages"));
        assert_eq!(dovecot_key_cmp(&plain, &spaced), Ordering::Less);
        assert_eq!(dovecot_key_cmp("replicator-doveadm/", "replicator/"), Ordering::Less);
    }
}
