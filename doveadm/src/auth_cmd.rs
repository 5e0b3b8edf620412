//! `doveadm pw`, `doveadm auth test|login|lookup` and `doveadm user`, with
//! Dovecot 2.3's output and exit codes: 0 ok, 67 (user unknown), 75
//! (temporary failure), 77 (authentication failed), 64 (usage).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dovecote_auth::mech::client::plain_response;
use dovecote_auth::protocol::client_conn::{AuthClientConnection, AuthOutcome};
use dovecote_auth::protocol::master_conn::{AuthMasterConnection, Lookup};
use dovecote_auth::protocol::{Field, Fields};
use dovecote_auth::scheme::{self, GenerateParams};
use dovecote_config::Config;

const EX_USAGE: u8 = 64;
const EX_NOUSER: u8 = 67;
const EX_TEMPFAIL: u8 = 75;
const EX_NOPERM: u8 = 77;

/// Simple getopt: options in `with_value` take the next word.
struct Opts {
    values: Vec<(char, String)>,
    flags: Vec<char>,
    rest: Vec<String>,
}

fn getopt(args: &[&str], with_value: &str, flags: &str) -> Option<Opts> {
    let mut out = Opts { values: Vec::new(), flags: Vec::new(), rest: Vec::new() };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.strip_prefix('-').and_then(|o| o.chars().next().map(|c| (c, &o[c.len_utf8()..]))) {
            Some((c, inline)) if with_value.contains(c) => {
                let value = if inline.is_empty() { (*it.next()?).to_string() } else { inline.to_string() };
                out.values.push((c, value));
            }
            Some((c, "")) if flags.contains(c) => out.flags.push(c),
            Some(_) => return None,
            None => {
                out.rest.push((*arg).to_string());
                out.rest.extend(it.map(|s| (*s).to_string()));
                break;
            }
        }
    }
    Some(out)
}

impl Opts {
    fn value(&self, c: char) -> Option<&str> {
        self.values.iter().rev().find(|(k, _)| *k == c).map(|(_, v)| v.as_str())
    }
    fn all(&self, c: char) -> impl Iterator<Item = &str> {
        self.values.iter().filter(move |(k, _)| *k == c).map(|(_, v)| v.as_str())
    }
    fn flag(&self, c: char) -> bool {
        self.flags.contains(&c)
    }
}

fn fatal(text: &str, code: u8) -> ExitCode {
    eprintln!("Fatal: {text}");
    ExitCode::from(code)
}

fn usage(text: &str) -> ExitCode {
    eprintln!("doveadm {text}");
    ExitCode::from(EX_USAGE)
}

/// Reads a password: from the terminal without echo, else one stdin line.
fn ask_password(prompt: &str) -> Option<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let saved = tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet.local_flags.remove(LocalFlags::ECHO);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        }
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        if let Some(t) = &saved {
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
        }
        eprintln!();
        read.ok()?;
        return Some(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).ok()?;
    Some(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `doveadm pw [-l] [-s scheme] [-p password] [-r rounds] [-t hash] [-u user] [-V]`.
pub fn pw(args: &[&str]) -> ExitCode {
    let Some(o) = getopt(args, "sprtu", "lV") else {
        return usage("pw [-l] [-p plaintext] [-r rounds] [-s scheme] [-t hash] [-u user] [-V]");
    };
    if o.flag('l') {
        let names: Vec<&str> = scheme::SCHEMES.iter().map(|s| s.name).collect();
        println!("{} ", names.join(" "));
        return ExitCode::SUCCESS;
    }
    let scheme_name = o.value('s').unwrap_or("CRYPT").to_ascii_uppercase();
    let rounds = match o.value('r').map(str::parse::<u32>) {
        Some(Ok(r)) => Some(r),
        Some(Err(_)) => return fatal("Invalid number of rounds", EX_USAGE),
        None => None,
    };
    if scheme::lookup(&scheme_name).is_err() {
        return fatal(&format!("Unknown scheme: {scheme_name}"), EX_TEMPFAIL);
    }
    let password = match o.value('p') {
        Some(p) => p.to_string(),
        None => {
            let Some(first) = ask_password("Enter new password: ") else {
                return fatal("Can't read password", EX_TEMPFAIL);
            };
            if std::io::stdin().is_terminal() {
                let Some(again) = ask_password("Retype new password: ") else {
                    return fatal("Can't read password", EX_TEMPFAIL);
                };
                if again != first {
                    return fatal("Passwords don't match!", EX_TEMPFAIL);
                }
            }
            first
        }
    };
    let user = o.value('u').unwrap_or("").to_string();
    if let Some(hash) = o.value('t') {
        // Verify an existing hash (its own `{SCHEME}` prefix wins).
        return match scheme::verify(password.as_bytes(), hash, &scheme_name, &user) {
            Ok(true) => {
                println!("{hash} (verified)");
                ExitCode::SUCCESS
            }
            Ok(false) => fatal("reverse password verification check failed: Password mismatch", EX_TEMPFAIL),
            Err(e) => fatal(&format!("reverse password verification check failed: {e}"), EX_TEMPFAIL),
        };
    }
    let params = GenerateParams { user: user.clone(), rounds };
    let hash = match scheme::generate_prefixed(&scheme_name, password.as_bytes(), &params) {
        Ok(h) => h,
        Err(e) => return fatal(&e.to_string(), EX_TEMPFAIL),
    };
    if o.flag('V') {
        match scheme::verify(password.as_bytes(), &hash, &scheme_name, &user) {
            Ok(true) => println!("{hash} (verified)"),
            _ => return fatal("reverse password verification check failed: Password mismatch", EX_TEMPFAIL),
        }
    } else {
        println!("{hash}");
    }
    ExitCode::SUCCESS
}

fn socket_path(base_dir: &Path, given: Option<&str>, default: &str) -> PathBuf {
    let name = given.unwrap_or(default);
    if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        base_dir.join(name)
    }
}

/// `-x key=value` request fields, after `service=`.
fn info_fields(o: &Opts, service: &str) -> Fields {
    let mut fields = Fields::new().with("service", service);
    for x in o.all('x') {
        fields.0.push(Field::parse(x));
    }
    fields
}

fn print_fields(header: &str, fields: &Fields) {
    println!("{header}");
    for f in &fields.0 {
        println!("  {}", f.to_text());
    }
}

/// `doveadm auth test|login [-a socket] [-x key=value] user [password]`.
pub fn auth_test(base_dir: &Path, args: &[&str], login: bool) -> ExitCode {
    let cmd = if login { "login" } else { "test" };
    let Some(o) = getopt(args, "axM", "") else {
        return usage(&format!("auth {cmd} [-a <auth socket path>] [-x <auth info>] <user> [<password>]"));
    };
    let Some(user) = o.rest.first() else {
        return usage(&format!("auth {cmd} [-a <auth socket path>] [-x <auth info>] <user> [<password>]"));
    };
    let password = match o.rest.get(1) {
        Some(p) => p.clone(),
        None => match ask_password("Password: ") {
            Some(p) => p,
            None => return fatal("Can't read password", EX_TEMPFAIL),
        },
    };
    let path = socket_path(base_dir, o.value('a'), if login { "auth-login" } else { "auth-client" });
    let pid = std::process::id();
    let mut conn = match AuthClientConnection::connect(&path, pid) {
        Ok(c) => c,
        Err(e) => return fatal(&e.to_string(), EX_TEMPFAIL),
    };
    let authzid = o.value('M').map(|_| user.as_str()).unwrap_or("");
    let authcid = o.value('M').unwrap_or(user);
    let resp = plain_response(authzid, authcid, &password);
    let outcome =
        match conn.authenticate("PLAIN", info_fields(&o, "doveadm"), Some(&resp), |_| Some(Vec::new())) {
            Ok(o) => o,
            Err(e) => return fatal(&e.to_string(), EX_TEMPFAIL),
        };
    match outcome {
        AuthOutcome::Ok { id, fields } => {
            println!("passdb: {user} auth succeeded");
            print_fields("extra fields:", &fields);
            if !login {
                return ExitCode::SUCCESS;
            }
            let cookie = conn.handshake().cookie.clone();
            let master_path = base_dir.join("auth-master");
            let mut master = match AuthMasterConnection::connect(&master_path) {
                Ok(m) => m,
                Err(e) => return fatal(&e.to_string(), EX_TEMPFAIL),
            };
            match master.request(pid, id, &cookie, Fields::new()) {
                Ok(Lookup::Found { user, fields }) => {
                    let mut all = Fields::new();
                    all.add_flag(&user);
                    all.0.extend(fields.0);
                    print_fields("userdb extra fields:", &all);
                    ExitCode::SUCCESS
                }
                Ok(Lookup::NotFound) => {
                    eprintln!("userdb lookup: user {user} doesn't exist");
                    ExitCode::from(EX_NOUSER)
                }
                Ok(Lookup::Failed(_)) => fatal("Login failed: userdb lookup failed", EX_TEMPFAIL),
                Err(e) => fatal(&e.to_string(), EX_TEMPFAIL),
            }
        }
        AuthOutcome::Fail { fields, .. } => {
            println!("passdb: {user} auth failed");
            print_fields("extra fields:", &fields);
            ExitCode::from(EX_NOPERM)
        }
    }
}

fn print_lookup_fields(fields: &Fields) {
    for f in &fields.0 {
        match &f.value {
            Some(v) => println!("  {:<10}: {v}", f.key),
            None => println!("  {:<10}", f.key),
        }
    }
}

/// `doveadm auth lookup [-a socket] [-x key=value] user...`.
pub fn auth_lookup(base_dir: &Path, config: &Config, args: &[&str]) -> ExitCode {
    let Some(o) = getopt(args, "afx", "") else {
        return usage("auth lookup [-a <userdb socket path>] [-x <auth info>] <user> [<user> [...]]");
    };
    if o.rest.is_empty() {
        return usage("auth lookup [-a <userdb socket path>] [-x <auth info>] <user> [<user> [...]]");
    }
    let path = socket_path(base_dir, o.value('a'), &config.text("auth_socket_path"));
    let mut conn = match AuthMasterConnection::connect(&path) {
        Ok(c) => c,
        Err(e) => return fatal(&e.to_string(), EX_TEMPFAIL),
    };
    let mut code = ExitCode::SUCCESS;
    for user in &o.rest {
        match conn.pass(user, info_fields(&o, "doveadm")) {
            Ok(Lookup::Found { user: found, fields }) => {
                println!("passdb: {user}");
                let _ = found;
                print_lookup_fields(&fields);
            }
            Ok(Lookup::NotFound) => {
                eprintln!("passdb lookup: user {user} doesn't exist");
                code = ExitCode::from(EX_NOUSER);
            }
            Ok(Lookup::Failed(reason)) => {
                match reason {
                    Some(r) => eprintln!("Error: passdb lookup failed for {user}: {r}"),
                    None => eprintln!("Error: passdb lookup failed for {user}"),
                }
                code = ExitCode::from(EX_TEMPFAIL);
            }
            Err(e) => return fatal(&e.to_string(), EX_TEMPFAIL),
        }
    }
    code
}

/// `doveadm user [-a socket] [-u] [-f field] [-x key=value] user|mask...`.
pub fn user(base_dir: &Path, config: &Config, args: &[&str]) -> ExitCode {
    let Some(o) = getopt(args, "afx", "ume") else {
        return usage(
            "user [-a <userdb socket path>] [-x <auth info>] [-f field] [-u] [-e <value>] <user mask> [...]",
        );
    };
    if o.rest.is_empty() {
        return usage(
            "user [-a <userdb socket path>] [-x <auth info>] [-f field] [-u] [-e <value>] <user mask> [...]",
        );
    }
    let path = socket_path(base_dir, o.value('a'), &config.text("auth_socket_path"));
    let mut conn = match AuthMasterConnection::connect(&path) {
        Ok(c) => c,
        Err(e) => return fatal(&e.to_string(), EX_TEMPFAIL),
    };
    let mut code = ExitCode::SUCCESS;
    for name in &o.rest {
        if name.contains(['*', '?']) {
            match conn.list(Fields::new().with("user", name)) {
                Ok(Ok(users)) => users.iter().for_each(|u| println!("{u}")),
                Ok(Err(users)) => {
                    users.iter().for_each(|u| println!("{u}"));
                    eprintln!("Error: user listing failed");
                    code = ExitCode::from(EX_TEMPFAIL);
                }
                Err(e) => return fatal(&e.to_string(), EX_TEMPFAIL),
            }
            continue;
        }
        match conn.user(name, info_fields(&o, "doveadm")) {
            Ok(Lookup::Found { user, fields }) => {
                if let Some(field) = o.value('f') {
                    let value = if field == "user" { Some(user.as_str()) } else { fields.get(field) };
                    if o.flag('u') {
                        // Dovecot prints a -u -f value without a newline.
                        print!("{}", value.unwrap_or(""));
                        let _ = std::io::stdout().flush();
                    } else {
                        println!("{}", value.unwrap_or(""));
                    }
                } else if o.flag('u') {
                    println!("userdb: {user}");
                    let mut all = Fields::new().with("user", &user);
                    all.0.extend(fields.0);
                    print_lookup_fields(&all);
                } else {
                    let mail = fields
                        .get("mail")
                        .map(str::to_string)
                        .unwrap_or_else(|| config.text("mail_location"));
                    println!("field\tvalue");
                    for key in ["uid", "gid", "home"] {
                        println!("{key}\t{}", fields.get(key).unwrap_or(""));
                    }
                    println!("mail\t{mail}");
                }
            }
            Ok(Lookup::NotFound) => {
                eprintln!("userdb lookup: user {name} doesn't exist");
                code = ExitCode::from(EX_NOUSER);
            }
            Ok(Lookup::Failed(reason)) => {
                match reason {
                    Some(r) => eprintln!("Error: userdb lookup failed for {name}: {r}"),
                    None => eprintln!("Error: userdb lookup failed for {name}"),
                }
                code = ExitCode::from(EX_TEMPFAIL);
            }
            Err(e) => return fatal(&e.to_string(), EX_TEMPFAIL),
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = getopt(&["-s", "SHA", "-pfoo", "-l", "rest", "-x"], "sp", "l").unwrap();
        assert_eq!(o.value('s'), Some("SHA"));
        assert_eq!(o.value('p'), Some("foo"));
        assert!(o.flag('l'));
        assert_eq!(o.rest, ["rest", "-x"]);
        assert!(getopt(&["-q"], "s", "").is_none());
    }
}
