//! `doveadm`, the administration command. So far the master commands:
//! `reload`, `stop`, `process status [service...]` and
//! `service status [service...]`, with the output formats of Dovecot 2.3's
//! doveadm (`table` for process status, `pager` for service status; `-f`
//! chooses `tab`, `table`, `pager` or `flow`). Service status also shows
//! each listener with its kind, address or path, owner, group and mode.
//! The auth commands (`pw`, `auth test|login|lookup`, `user`) are in
//! [`auth_cmd`]; `who` and `kick` (anvil's session list) in [`who`].
#![forbid(unsafe_code)]

mod auth_cmd;
mod format;
mod who;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

use dovecote_config::{load, LoadOptions, DEFAULT_CONFIG_PATH};
use dovecote_master::admin::{
    AdminClient, LISTENER_STATUS_FIELDS, PROCESS_STATUS_FIELDS, SERVICE_STATUS_FIELDS,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::format::{print, Format};

/// sysexits EX_TEMPFAIL, which doveadm returns when the server is not there.
const EXIT_TEMPFAIL: u8 = 75;
const EXIT_USAGE: u8 = 64;

struct Args {
    config_path: String,
    format: Option<Format>,
    words: Vec<String>,
}

fn usage() -> ExitCode {
    eprintln!("usage: doveadm [-Dv] [-f <formatter>] [-c <config>] <command> [<args>]");
    eprintln!("  reload\n  stop\n  process status [<service> [...]]\n  service status [<service> [...]]");
    eprintln!("  pw [-l] [-p plaintext] [-r rounds] [-s scheme] [-t hash] [-u user] [-V]");
    eprintln!("  auth test|login [-a <socket>] [-x <auth info>] <user> [<password>]");
    eprintln!("  auth lookup [-a <socket>] [-x <auth info>] <user> [...]");
    eprintln!("  user [-a <socket>] [-x <auth info>] [-f field] [-u] <user mask> [...]");
    eprintln!("  who [-a <anvil socket path>] [-1] [<user mask>] [<ip/bits>]");
    eprintln!("  kick [-a <anvil socket path>] [-f] <user mask>[|]<ip/bits>");
    ExitCode::from(EXIT_USAGE)
}

fn parse_args() -> Option<Args> {
    let mut args = Args { config_path: DEFAULT_CONFIG_PATH.to_owned(), format: None, words: Vec::new() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-c" => args.config_path = it.next()?,
            "-f" => args.format = Some(Format::parse(&it.next()?)?),
            "-D" | "-v" => {}
            _ => {
                args.words.push(arg);
                args.words.extend(it.by_ref());
            }
        }
    }
    Some(args)
}

fn fatal(text: &str, code: u8) -> ExitCode {
    eprintln!("Fatal: {text}");
    ExitCode::from(code)
}

fn master_pid(base_dir: &Path) -> Result<i32, String> {
    let path = base_dir.join("master.pid");
    let not_running = || format!("Dovecot is not running (read from {})", path.display());
    let pid = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
        .ok_or_else(not_running)?;
    kill(Pid::from_raw(pid), None).map_err(|_| not_running())?;
    Ok(pid)
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else { return usage() };
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    if let ["pw", rest @ ..] = words.as_slice() {
        return auth_cmd::pw(rest);
    }
    let config = match load(&args.config_path, LoadOptions { expand_values: false }) {
        Ok(c) => c,
        Err(e) => return fatal(&e.to_string(), 89),
    };
    let base_dir = PathBuf::from(config.text("base_dir").trim_end_matches('/'));
    match words.as_slice() {
        ["auth", "test", rest @ ..] => auth_cmd::auth_test(&base_dir, rest, false),
        ["auth", "login", rest @ ..] => auth_cmd::auth_test(&base_dir, rest, true),
        ["auth", "lookup", rest @ ..] => auth_cmd::auth_lookup(&base_dir, &config, rest),
        ["user", rest @ ..] => auth_cmd::user(&base_dir, &config, rest),
        ["who", rest @ ..] => who::who(&base_dir, rest),
        ["kick", rest @ ..] => who::kick(&base_dir, rest),
        ["reload"] => match master_pid(&base_dir) {
            Ok(pid) => match kill(Pid::from_raw(pid), Signal::SIGHUP) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fatal(&format!("kill({pid}, SIGHUP) failed: {e}"), EXIT_TEMPFAIL),
            },
            Err(e) => fatal(&e, EXIT_TEMPFAIL),
        },
        ["stop"] => match master_pid(&base_dir) {
            Ok(pid) => {
                if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
                    return fatal(&format!("kill({pid}, SIGTERM) failed: {e}"), EXIT_TEMPFAIL);
                }
                // As Dovecot's doveadm: wait up to 3 s for it to be gone.
                // doveadm is a one-shot CLI, not an event loop.
                #[allow(clippy::disallowed_methods)]
                for _ in 0..30 {
                    if !running(pid) {
                        return ExitCode::SUCCESS;
                    }
                    sleep(Duration::from_millis(100));
                }
                fatal(&format!("Dovecot (PID {pid}) is still running"), EXIT_TEMPFAIL)
            }
            Err(e) => fatal(&e, EXIT_TEMPFAIL),
        },
        ["process", "status", services @ ..] => {
            let services: Vec<String> = services.iter().map(|s| (*s).to_owned()).collect();
            let rows = match request(&base_dir, "PROCESS-STATUS", &services) {
                Ok(r) => r,
                Err(e) => return fatal(&e, EXIT_TEMPFAIL),
            };
            let rows: Vec<Vec<String>> =
                rows.into_iter().map(|r| fit(r, PROCESS_STATUS_FIELDS.len())).collect();
            print(args.format.unwrap_or(Format::Table), PROCESS_STATUS_FIELDS, &rows, &[]);
            ExitCode::SUCCESS
        }
        ["service", "status", services @ ..] => {
            let wanted: Vec<String> = services.iter().map(|s| (*s).to_owned()).collect();
            let rows = match request(&base_dir, "SERVICE-STATUS", &[]) {
                Ok(r) => r,
                Err(e) => return fatal(&e, EXIT_TEMPFAIL),
            };
            let listeners = match request(&base_dir, "LISTENER-STATUS", &[]) {
                Ok(r) => r,
                Err(e) => return fatal(&e, EXIT_TEMPFAIL),
            };
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| fit(r, SERVICE_STATUS_FIELDS.len()))
                .filter(|r| wanted.is_empty() || wanted.contains(&r[0]))
                .collect();
            // Per service, its listeners as extra `listener` lines.
            let extra: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    listeners
                        .iter()
                        .map(|l| fit(l.clone(), LISTENER_STATUS_FIELDS.len()))
                        .filter(|l| l[0] == r[0])
                        .map(|l| format!("{} {} {} {}:{} {}", l[1], l[2], l[3], l[4], l[5], l[6]))
                        .collect()
                })
                .collect();
            print(args.format.unwrap_or(Format::Pager), SERVICE_STATUS_FIELDS, &rows, &extra);
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

/// Alive and not a zombie: an exited master whose parent has not reaped
/// it yet (a supervisor that is not init) is gone for our purposes.
fn running(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Pads or cuts a row to the number of fields we print, so an older or
/// newer master never makes us index out of bounds.
fn fit(mut row: Vec<String>, n: usize) -> Vec<String> {
    row.resize(n, String::new());
    row
}

fn request(base_dir: &Path, command: &str, args: &[String]) -> Result<Vec<Vec<String>>, String> {
    let path = base_dir.join("master");
    let mut client = AdminClient::connect(&path).map_err(|e| e.to_string())?;
    client.table(command, args).map_err(|e| e.to_string())
}
