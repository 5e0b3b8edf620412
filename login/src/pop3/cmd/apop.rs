//! APOP name digest (RFC 1939): only when the greeting carried a challenge
//! (auth offers the APOP mechanism). Sent to auth as the APOP mechanism's
//! initial response `challenge NUL user NUL md5(16 bytes)`.

use base64::Engine;

use crate::pop3::Pop3Login;
use crate::sasl::check_begin;

pub(super) fn run(client: &mut Pop3Login, args: &[u8]) {
    let Some(challenge) = client.apop_challenge.clone() else {
        client.send("-ERR APOP not enabled.\r\n".into());
        return;
    };
    let Some(space) = args.iter().rposition(|b| *b == b' ') else {
        client.send("-ERR Invalid parameters.\r\n".into());
        return;
    };
    let (user, digest) = (&args[..space], &args[space + 1..]);
    let Some(digest) = decode_hex(digest) else {
        client.send("-ERR Invalid characters in MD5 response.\r\n".into());
        return;
    };
    let mut raw = challenge.into_bytes();
    raw.push(0);
    raw.extend_from_slice(user);
    raw.push(0);
    raw.extend_from_slice(&digest);
    let response = base64::engine::general_purpose::STANDARD.encode(raw);
    match check_begin(&client.settings, &client.security, &client.mechanisms, "APOP", true) {
        Ok(_) => client.begin_auth("APOP", Some(response)),
        Err((result, text)) => client.auth_result(result, text),
    }
}

fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() != 32 {
        return None;
    }
    text.chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}
