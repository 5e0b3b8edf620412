//! Settings from Dovecot 1.x/2.0–2.2 that 2.3 still accepts: each is
//! reported as obsolete ("Obsolete setting in FILE:LINE: ...") and either
//! dropped or turned into its modern form, exactly as Dovecot 2.3 does.

/// What an obsolete setting becomes.
pub enum Replacement {
    /// Ignored.
    Dropped,
    /// A global setting, with the value mapped.
    Global { name: &'static str, map: fn(&str) -> String },
    /// A field of some default services.
    Services { services: &'static [&'static str], field: &'static str, map: fn(&str) -> String },
    /// A `plugin {}` entry.
    Plugin { key: &'static str },
    /// `address` of the TLS inet listeners of the login services.
    SslListenAddress,
    /// `ssl_protocols = !SSLv3 ...` becomes the lowest protocol it allows.
    SslMinProtocol,
}

pub struct Obsolete {
    pub name: &'static str,
    pub message: &'static str,
    pub replacement: Replacement,
}

const LOGIN_SERVICES: &[&str] = &["imap-login", "pop3-login", "managesieve-login"];
const MAIL_SERVICES: &[&str] = &["imap", "pop3", "managesieve"];

fn same(v: &str) -> String {
    v.to_owned()
}
fn file(v: &str) -> String {
    format!("<{v}")
}
fn negate(v: &str) -> String {
    if v.eq_ignore_ascii_case("yes") { "no" } else { "yes" }.to_owned()
}
fn fsync(v: &str) -> String {
    if v.eq_ignore_ascii_case("yes") { "never" } else { "optimized" }.to_owned()
}
fn megabytes(v: &str) -> String {
    format!("{v} M")
}
fn chroot(v: &str) -> String {
    if v.eq_ignore_ascii_case("yes") { "login" } else { "" }.to_owned()
}
fn per_connection(v: &str) -> String {
    if v.eq_ignore_ascii_case("yes") { "1" } else { "0" }.to_owned()
}

macro_rules! obsolete {
    ($name:literal, $message:literal, $replacement:expr) => {
        Obsolete { name: $name, message: $message, replacement: $replacement }
    };
}

use Replacement::*;

/// Sorted by name.
pub static OBSOLETE: &[Obsolete] = &[
    obsolete!(
        "auth_chroot",
        "has been replaced by service auth { chroot }",
        Services { services: &["auth"], field: "chroot", map: same }
    ),
    obsolete!("auth_count", "has been removed, and its value must be 1", Dropped),
    obsolete!(
        "auth_executable",
        "has been replaced by service auth { executable }",
        Services { services: &["auth"], field: "executable", map: same }
    ),
    obsolete!(
        "auth_process_size",
        "has been replaced by service auth { vsz_limit }",
        Services { services: &["auth"], field: "vsz_limit", map: megabytes }
    ),
    obsolete!(
        "auth_user",
        "has been replaced by service auth { user }",
        Services { services: &["auth"], field: "user", map: same }
    ),
    obsolete!("dbox_rotate_days", "has been removed", Dropped),
    obsolete!("dbox_rotate_min_size", "has been removed", Dropped),
    obsolete!("director_consistent_hashing", "has been removed", Dropped),
    obsolete!("fsync_disable", "has been renamed to mail_fsync", Global { name: "mail_fsync", map: fsync }),
    obsolete!(
        "login_chroot",
        "has been replaced by service { chroot }",
        Services { services: LOGIN_SERVICES, field: "chroot", map: chroot }
    ),
    obsolete!("login_dir", "has been removed", Dropped),
    obsolete!(
        "login_executable",
        "has been replaced by service { executable }",
        Services { services: LOGIN_SERVICES, field: "executable", map: same }
    ),
    obsolete!(
        "login_max_connections",
        "has been replaced by service { client_limit }",
        Services { services: LOGIN_SERVICES, field: "client_limit", map: same }
    ),
    obsolete!(
        "login_max_processes_count",
        "has been replaced by service { process_limit }",
        Services { services: LOGIN_SERVICES, field: "process_limit", map: same }
    ),
    obsolete!(
        "login_process_per_connection",
        "has been replaced by service { service_count }",
        Services { services: LOGIN_SERVICES, field: "service_count", map: per_connection }
    ),
    obsolete!("login_process_size", "has been replaced by service { vsz_limit }", Dropped),
    obsolete!(
        "login_processes_count",
        "has been replaced by service { process_min_avail }",
        Services { services: LOGIN_SERVICES, field: "process_min_avail", map: same }
    ),
    obsolete!(
        "mail_drop_priv_before_exec",
        "has been replaced by service { drop_priv_before_exec }",
        Services { services: MAIL_SERVICES, field: "drop_priv_before_exec", map: same }
    ),
    obsolete!(
        "mail_executable",
        "has been replaced by service { executable }",
        Services { services: MAIL_SERVICES, field: "executable", map: same }
    ),
    obsolete!("mail_log_max_lines_per_sec", "has been removed", Dropped),
    obsolete!("mail_process_size", "has been replaced by service { vsz_limit }", Dropped),
    obsolete!("maildir_copy_preserve_filename", "has been removed", Dropped),
    obsolete!(
        "max_mail_processes",
        "has been replaced by service { process_limit }",
        Services { services: MAIL_SERVICES, field: "process_limit", map: same }
    ),
    obsolete!("sieve", "has been moved into plugin {} section", Plugin { key: "sieve" }),
    obsolete!("sieve_storage", "has been moved into plugin { sieve_dir }", Plugin { key: "sieve_storage" }),
    obsolete!("ssl_ca_file", "has been replaced by ssl_ca = <file", Global { name: "ssl_ca", map: file }),
    obsolete!(
        "ssl_cert_file",
        "has been replaced by ssl_cert = <file",
        Global { name: "ssl_cert", map: file }
    ),
    obsolete!("ssl_dh_parameters_length", "is no longer needed", Dropped),
    obsolete!("ssl_disable", "has been renamed to ssl", Global { name: "ssl", map: negate }),
    obsolete!("ssl_key_file", "has been replaced by ssl_key = <file", Global { name: "ssl_key", map: file }),
    obsolete!("ssl_listen", "has been replaced by service { inet_listener { address } }", SslListenAddress),
    obsolete!("ssl_parameters_regenerate", "is no longer needed", Dropped),
    obsolete!("ssl_protocols", "has been replaced by ssl_min_protocol", SslMinProtocol),
];

/// The `ssl_min_protocol` an old `ssl_protocols` list amounts to: the
/// lowest protocol it enables.
pub fn min_protocol_from_list(list: &str) -> Result<&'static str, String> {
    const KNOWN: [&str; 4] = ["SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2"];
    let mut enabled = [false; 4];
    let mut disabled = [false; 4];
    let mut any_enabled = false;
    for word in list.split_whitespace() {
        let (negated, name) = match word.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, word),
        };
        let Some(i) = KNOWN.iter().position(|k| *k == name) else {
            return Err(format!("Unrecognized protocol '{name}'"));
        };
        if negated {
            disabled[i] = true;
        } else {
            enabled[i] = true;
            any_enabled = true;
        }
    }
    (0..KNOWN.len())
        .find(|&i| (!any_enabled || enabled[i]) && !disabled[i])
        .map(|i| KNOWN[i])
        .ok_or_else(|| "All protocols disabled".to_owned())
}

/// The obsolete setting called `name`, if it is one.
pub fn find(name: &str) -> Option<&'static Obsolete> {
    OBSOLETE.binary_search_by(|o| o.name.cmp(name)).ok().map(|i| &OBSOLETE[i])
}

/// The advice Dovecot prints once after any obsolete setting.
pub const CLEAN_CONFIG_NOTE: &str =
    "NOTE: You can get a new clean config file with: doveconf -Pn > dovecot-new.conf";

#[cfg(test)]
mod tests {
    #[test]
    fn ssl_protocols_map_to_their_lowest_protocol() {
        assert_eq!(super::min_protocol_from_list("!SSLv3"), Ok("TLSv1"));
        assert_eq!(super::min_protocol_from_list("!SSLv3 !TLSv1"), Ok("TLSv1.1"));
        assert_eq!(super::min_protocol_from_list("SSLv3 TLSv1"), Ok("SSLv3"));
        assert!(super::min_protocol_from_list("!SSLv2").is_err());
    }

    #[test]
    fn table_is_sorted() {
        assert!(super::OBSOLETE.windows(2).all(|w| w[0].name < w[1].name));
    }
}
