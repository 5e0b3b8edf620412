//! ID (RFC 2971): accepts `NIL`, nothing, or a list of strings/NIL, and
//! answers with `imap_id_send` (default `name *` → `"name" "Dovecot"`).
//! From a client in `login_trusted_networks` (a Dovecot proxy) the
//! `x-originating-ip`/`-port`, `x-connected-ip`/`-port` and
//! `x-session-id`/`x-session-ext-id` fields replace what we know about the
//! connection, as Dovecot's `client_update_info` does.

use super::Outcome;
use crate::imap::parser::Arg;
use crate::imap::ImapLogin;
use crate::{Action, Forwarded};

pub(super) fn run(client: &mut ImapLogin, tag: &str, args: &[Arg]) -> Outcome {
    let valid = match args {
        [] | [Arg::Nil] => true,
        [Arg::List(items)] => items.iter().all(|a| matches!(a, Arg::Str(_) | Arg::Nil)),
        _ => false,
    };
    if !valid {
        client.tagged(tag, "BAD Invalid ID parameters");
        return Outcome::Done;
    }
    if client.security.trusted {
        if let [Arg::List(items)] = args {
            if let Some(forwarded) = forwarded(items) {
                client.actions.push(Action::Forwarded(forwarded));
            }
        }
    }
    let reply = id_reply(&client.settings.imap_id_send);
    client.send(format!("* ID {reply}\r\n"));
    client.tagged(tag, "OK ID completed.");
    Outcome::Done
}

/// The forwarding fields among ID's `key value` pairs, if any.
fn forwarded(items: &[Arg]) -> Option<Forwarded> {
    let mut f = Forwarded::default();
    let mut any = false;
    for pair in items.chunks(2) {
        let [Arg::Str(key), Arg::Str(value)] = pair else { continue };
        let key = String::from_utf8_lossy(key).to_ascii_lowercase();
        let value = String::from_utf8_lossy(value).into_owned();
        match key.as_str() {
            "x-originating-ip" => f.remote_ip = value.parse().ok(),
            "x-originating-port" => f.remote_port = value.parse().ok(),
            "x-connected-ip" => f.local_ip = value.parse().ok(),
            "x-connected-port" => f.local_port = value.parse().ok(),
            "x-session-id" | "x-session-ext-id" => {
                // Dovecot keeps session ids to printable ASCII.
                if !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_graphic()) {
                    f.session_id = Some(value);
                }
            }
            _ => continue,
        }
        any = true;
    }
    any.then_some(f)
}

/// Builds the ID response from `imap_id_send` (`key value` pairs, `*` for
/// the built-in value).
pub(crate) fn id_reply(setting: &str) -> String {
    let words: Vec<&str> = setting.split_whitespace().collect();
    let mut fields = Vec::new();
    for pair in words.chunks(2) {
        let [key, value] = pair else { continue };
        let value = match (*value, key.to_ascii_lowercase().as_str()) {
            ("*", "name") => "Dovecot".to_owned(),
            ("*", "vendor") => "Dovecot Ltd.".to_owned(),
            ("*", "version") => "2.3.19".to_owned(),
            ("*", _) => continue,
            (v, _) => v.trim_matches('"').to_owned(),
        };
        fields.push(format!("\"{}\" \"{}\"", key.trim_matches('"'), value.replace(['"', '\\'], "")));
    }
    if fields.is_empty() {
        "NIL".to_owned()
    } else {
        format!("({})", fields.join(" "))
    }
}
