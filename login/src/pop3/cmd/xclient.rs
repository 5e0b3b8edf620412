//! XCLIENT (Dovecot's extension, announced as `[XCLIENT]` in the greeting
//! to `login_trusted_networks`): a Dovecot proxy in front of us passes the
//! real client's `ADDR=`, `PORT=`, `SESSION=` (and `TTL=`, `FORWARD=`,
//! which we accept and ignore). Anyone else gets `-ERR You are not from
//! trusted IP`.

use crate::pop3::Pop3Login;
use crate::{Action, Forwarded};

pub(super) fn run(client: &mut Pop3Login, args: &[u8]) {
    if !client.security.trusted {
        client.send("-ERR You are not from trusted IP\r\n".into());
        return;
    }
    let args = String::from_utf8_lossy(args);
    let mut f = Forwarded::default();
    let mut ok = true;
    for word in args.split(' ').filter(|w| !w.is_empty()) {
        let Some((key, value)) = word.split_once('=') else { continue };
        match key.to_ascii_uppercase().as_str() {
            "ADDR" => match value.parse() {
                Ok(ip) => f.remote_ip = Some(ip),
                Err(_) => ok = false,
            },
            "PORT" => match value.parse::<u16>() {
                Ok(p) if p != 0 => f.remote_port = Some(p),
                _ => ok = false,
            },
            "SESSION" => {
                if !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_graphic()) {
                    f.session_id = Some(value.to_owned());
                } else {
                    ok = false;
                }
            }
            "TTL" => ok &= value.parse::<u32>().is_ok(),
            _ => {}
        }
    }
    if !ok {
        client.send("-ERR Invalid parameters\r\n".into());
        return;
    }
    client.actions.push(Action::Forwarded(f));
    client.send("+OK Updated\r\n".into());
}
