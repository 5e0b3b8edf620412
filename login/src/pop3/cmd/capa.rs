//! CAPA: the pre-login capability list (`USER` only where plaintext
//! authentication is allowed; `SASL` lists the advertised mechanisms).

use crate::policy::{advertised, plaintext_allowed, starttls_offered};
use crate::pop3::Pop3Login;

pub(super) fn run(client: &mut Pop3Login) {
    let mut out =
        String::from("+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n");
    if starttls_offered(&client.settings, &client.security) {
        out.push_str("STLS\r\n");
    }
    if plaintext_allowed(&client.settings, &client.security) {
        out.push_str("USER\r\n");
    }
    out.push_str("SASL");
    for mech in advertised(&client.settings, &client.security, &client.mechanisms) {
        out.push(' ');
        out.push_str(&mech.name);
    }
    out.push_str("\r\n.\r\n");
    client.send(out);
}
