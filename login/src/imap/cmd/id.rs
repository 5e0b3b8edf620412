//! ID (RFC 2971): accepts `NIL`, nothing, or a list of strings/NIL, and
//! answers with `imap_id_send` (default `name *` → `"name" "Dovecot"`).

use super::Outcome;
use crate::imap::parser::Arg;
use crate::imap::ImapLogin;

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
    let reply = id_reply(&client.settings.imap_id_send);
    client.send(format!("* ID {reply}\r\n"));
    client.tagged(tag, "OK ID completed.");
    Outcome::Done
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
