//! USER name: remembered for PASS; refused where plaintext auth is not allowed.

use crate::policy::plaintext_allowed;
use crate::pop3::Pop3Login;
use crate::sasl::PLAINTEXT_DISABLED_MSG;

pub(super) fn run(client: &mut Pop3Login, args: &[u8]) {
    if !plaintext_allowed(&client.settings, &client.security) {
        client.send(format!("-ERR [AUTH] {PLAINTEXT_DISABLED_MSG}\r\n"));
        return;
    }
    client.user = Some(args.to_vec());
    client.send("+OK\r\n".into());
}
