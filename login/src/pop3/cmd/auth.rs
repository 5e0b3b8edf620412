//! AUTH [mechanism [initial-response]] (RFC 5034). Without arguments it
//! lists the mechanisms, as old Outlook versions expect.

use crate::policy::advertised;
use crate::pop3::Pop3Login;
use crate::sasl::{check_begin, is_base64, AuthResult};

pub(super) fn run(client: &mut Pop3Login, args: &[u8]) {
    if args.is_empty() {
        let mut out = String::from("+OK\r\n");
        for mech in advertised(&client.settings, &client.security, &client.mechanisms) {
            out.push_str(&mech.name);
            out.push_str("\r\n");
        }
        out.push_str(".\r\n");
        client.send(out);
        return;
    }
    let (mech, initial) = match args.iter().position(|b| *b == b' ') {
        // The initial response is the next word; anything after it is ignored.
        Some(p) => {
            let rest = &args[p + 1..];
            (&args[..p], Some(rest.split(|b| *b == b' ').next().unwrap_or(rest)))
        }
        None => (args, None),
    };
    let mech = String::from_utf8_lossy(mech).into_owned();
    let mech = match check_begin(&client.settings, &client.security, &client.mechanisms, &mech, false) {
        Ok(m) => m.name.clone(),
        Err((result, text)) => {
            client.auth_result(result, text);
            return;
        }
    };
    let initial = match initial {
        None => None,
        Some(b"=") => Some(String::new()),
        Some(ir) if !ir.is_empty() && is_base64(ir) => Some(String::from_utf8_lossy(ir).into_owned()),
        Some(_) => {
            client.auth_result(AuthResult::InvalidBase64, "Invalid base64 data in initial response");
            return;
        }
    };
    client.begin_auth(&mech, initial);
}
