//! The configuration as the master hands it to a service process over its
//! config pipe: every explicitly set value (already expanded, `<file`
//! contents included) written back as dovecot.conf text in which every name
//! and value is quoted, so that nothing is re-expanded or read from disk on
//! the other side. Children parse it with the same parser; they never open
//! dovecot.conf themselves.

use crate::model::{Config, Section};
use crate::parser::{parse_str, LoadOptions};
use crate::print::filter_headers;
use crate::syntax::escape;
use crate::ConfigError;

/// Serialises `config`. Settings named in `withheld` (e.g. `ssl_key` for a
/// service that does not terminate TLS) are left out, wherever they appear.
pub fn encode(config: &Config, withheld: &[&str]) -> String {
    let mut out = String::new();
    write_section(&mut out, &config.root, withheld, 0);
    for block in &config.filters {
        let headers = filter_headers(&block.filter);
        for (depth, h) in headers.iter().enumerate() {
            indent(&mut out, depth);
            out.push_str(h);
            out.push_str(" {\n");
        }
        write_section(&mut out, &block.root, withheld, headers.len());
        for depth in (0..headers.len()).rev() {
            indent(&mut out, depth);
            out.push_str("}\n");
        }
    }
    out
}

/// Reads what [`encode`] wrote. `origin` names the source in error messages.
pub fn decode(origin: &str, text: &str) -> Result<Config, ConfigError> {
    parse_str(origin, text, LoadOptions { expand_values: false })
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// Quotes and escapes a value so it survives parsing unchanged, control
/// characters included.
fn quoted(value: &str) -> String {
    let escaped = escape(value).replace('\n', "\\n").replace('\r', "\\r").replace('\t', "\\t");
    format!("\"{escaped}\"")
}

fn write_section(out: &mut String, section: &Section, withheld: &[&str], depth: usize) {
    for (name, value) in &section.set {
        if withheld.contains(name) {
            continue;
        }
        indent(out, depth);
        out.push_str(&format!("{name} = {}\n", quoted(&value.display())));
    }
    for (key, value) in &section.strings {
        if withheld.contains(&key.as_str()) {
            continue;
        }
        indent(out, depth);
        out.push_str(&format!("{key} = {}\n", quoted(value)));
    }
    for child in &section.children {
        indent(out, depth);
        if child.name.is_empty() {
            out.push_str(&format!("{} {{\n", child.kind.keyword()));
        } else {
            out.push_str(&format!("{} {} {{\n", child.kind.keyword(), quoted(&child.name)));
        }
        write_section(out, child, withheld, depth + 1);
        indent(out, depth);
        out.push_str("}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print::{render, PrintOptions, Scope};

    #[test]
    fn round_trips_every_setting_including_multiline_values() {
        let text = "ssl_key = \"-----BEGIN KEY-----\\nabc\\n-----END KEY-----\\n\"\n\
                    mail_location = maildir:~/Maildir\n\
                    service imap-login {\n  inet_listener imap {\n    port = 10143\n  }\n}\n\
                    namespace inbox {\n  mailbox \"Sent Messages\" {\n    special_use = \\Sent\n  }\n}\n\
                    passdb {\n  driver = pam\n}\nplugin {\n  quota = count:User quota\n}\n\
                    protocol imap {\n  mail_plugins = quota imap_quota\n}\n";
        let config = parse_str("t.conf", text, LoadOptions::default()).unwrap();
        let decoded = decode("pipe", &encode(&config, &[])).unwrap();
        let all = PrintOptions { scope: Scope::All, show_secrets: true };
        assert_eq!(render(&config, all), render(&decoded, all));
        assert_eq!(decoded.text("ssl_key"), "-----BEGIN KEY-----\nabc\n-----END KEY-----\n");
    }

    #[test]
    fn withheld_settings_are_left_out() {
        let config =
            parse_str("t.conf", "ssl_key = secret\nssl_cert = cert\n", LoadOptions::default()).unwrap();
        let decoded = decode("pipe", &encode(&config, &["ssl_key"])).unwrap();
        assert_eq!(decoded.text("ssl_key"), "");
        assert_eq!(decoded.text("ssl_cert"), "cert");
    }
}
