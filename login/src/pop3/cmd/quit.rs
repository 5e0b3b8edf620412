//! QUIT.

use crate::pop3::Pop3Login;

pub(super) fn run(client: &mut Pop3Login) {
    client.send("+OK Logging out\r\n".into());
    client.close("Aborted login by logging out");
}
