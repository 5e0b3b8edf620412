//! A real master serving IMAP for one vmail user (`alice` / `Secr3t`
//! through a passwd-file passdb and a static userdb), for the tests that
//! drive the post-login `imap` process with real clients.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use dovecote_auth::protocol::master_conn::AuthMasterConnection;

use super::{bin_dir, free_port, wait_for, Instance};

pub struct ImapServer {
    pub dovecot: Instance,
    /// The plain-text IMAP port on 127.0.0.1.
    pub imap: u16,
    /// alice's home directory.
    pub home: PathBuf,
}

/// Starts the master with `mail_location` and `extra` settings (namespaces,
/// mailbox blocks...) and waits until logins can succeed.
pub fn start_imap(name: &str, mail_location: &str, extra: &str) -> ImapServer {
    bin_dir();
    let dir = PathBuf::from(format!("/tmp/dovecote-test-{name}-{}", std::process::id()));
    let imap = free_port();
    let body = format!(
        "protocols = imap\n\
         passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid=vmail gid=vmail home={d}/home/%n\n}}\n\
         mail_location = {mail_location}\n{extra}\n\
         service imap-login {{\n inet_listener imap {{\n port = {imap}\n }}\n inet_listener imaps {{\n port = 0\n }}\n}}\n",
        d = dir.display()
    );
    let dovecot = Instance::start(name, &body);
    let home = dir.join("home/alice");
    std::fs::create_dir_all(&home).expect("create alice's home");
    let status = Command::new("chown").args(["-R", "vmail:vmail"]).arg(dir.join("home")).status();
    assert!(status.is_ok_and(|s| s.success()), "chown the homes to vmail");
    std::fs::write(dir.join("passwd"), "alice:{PLAIN}Secr3t::::::\n").expect("write passwd");
    dovecot.wait_sockets(&["auth-master", "login/login", "login/imap"]);
    assert!(
        wait_for(Duration::from_secs(5), || AuthMasterConnection::connect(
            &dovecot.base_dir.join("auth-master")
        )
        .is_ok()),
        "auth-master not answering"
    );
    ImapServer { dovecot, imap, home }
}
