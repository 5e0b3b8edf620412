//! `dovecot`, the master process: Dovecot 2.3's command line, startup
//! (config, base_dir, listeners, pid file, daemonizing), then the
//! supervisor loop. See master/LIFECYCLE.md.
#![forbid(unsafe_code)]

mod basedir;
mod listeners;
mod logger;
mod notify;
mod settings;
mod spawn;
mod supervisor;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use dovecote_config::{load, LoadOptions, DEFAULT_CONFIG_PATH, DOVECOT_VERSION};
use dovecote_master::contract::{Level, EXIT_FATAL};
use nix::sys::resource::{getrlimit, Resource};
use nix::sys::stat::{umask, Mode};

use crate::listeners::Activated;
use crate::logger::MasterLog;
use crate::supervisor::{Startup, Supervisor};

/// What `--version` prints and the startup line names.
pub const VERSION_TEXT: &str = concat!("2.3.19 (dovecote ", env!("CARGO_PKG_VERSION"), ")");

/// Settings of the master's environment that belong to it alone: a child
/// must not think systemd talks to it.
const MASTER_ONLY_ENV: &[&str] = &["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET"];

enum Action {
    Run,
    Version,
    BuildOptions,
    Doveconf(&'static str),
    Doveadm(Vec<String>),
}

struct Args {
    action: Action,
    foreground: bool,
    config_path: String,
    config_given: bool,
    ask_password: bool,
}

fn usage() -> String {
    "Usage: dovecot [-F] [-c <config file>] [-p] [-n] [-a] [--help] [--version]\n       [--build-options] [--hostdomain] [reload] [stop]".to_owned()
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        action: Action::Run,
        foreground: false,
        config_path: DEFAULT_CONFIG_PATH.to_owned(),
        config_given: false,
        ask_password: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-F" => args.foreground = true,
            "-c" => {
                args.config_path = it.next().ok_or_else(usage)?;
                args.config_given = true;
            }
            "-p" => args.ask_password = true,
            "-a" => args.action = Action::Doveconf("-a"),
            "-n" => args.action = Action::Doveconf("-n"),
            "--version" => args.action = Action::Version,
            "--build-options" => args.action = Action::BuildOptions,
            "--help" | "-h" => return Err(usage()),
            word if !word.starts_with('-') => {
                let mut rest = vec![word.to_owned()];
                rest.extend(it.by_ref());
                args.action = Action::Doveadm(rest);
            }
            _ => return Err(usage()),
        }
    }
    Ok(args)
}

/// A sibling binary of ours (`doveconf`, `doveadm`): next to this
/// executable first, so a build tree works, then the installed one.
fn sibling(name: &str, installed: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(installed))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(text) => {
            eprintln!("{text}");
            return ExitCode::from(EXIT_FATAL as u8);
        }
    };
    match &args.action {
        Action::Version => {
            println!("{VERSION_TEXT}");
            ExitCode::SUCCESS
        }
        Action::BuildOptions => {
            println!(
                "Build options: ioloop=epoll notify=none ipv6 rustls (dovecote {})",
                env!("CARGO_PKG_VERSION")
            );
            println!("Dovecot compatibility: {DOVECOT_VERSION}");
            println!("Mail storages:");
            println!("SQL driver plugins:");
            println!("Passdb:");
            println!("Userdb:");
            ExitCode::SUCCESS
        }
        Action::Doveconf(flag) => {
            let err = Command::new(sibling("doveconf", "/usr/bin/doveconf"))
                .arg(flag)
                .arg("-c")
                .arg(&args.config_path)
                .exec();
            eprintln!("Fatal: execv(doveconf) failed: {err}");
            ExitCode::from(EXIT_FATAL as u8)
        }
        Action::Doveadm(words) => {
            let mut command = Command::new(sibling("doveadm", "/usr/bin/doveadm"));
            if args.config_given {
                command.arg("-c").arg(&args.config_path);
            }
            let err = command.args(words).exec();
            eprintln!("Fatal: execv(doveadm) failed: {err}");
            ExitCode::from(EXIT_FATAL as u8)
        }
        Action::Run => ExitCode::from(start(&args) as u8),
    }
}

/// A startup failure: one line on stderr (and in the log when it is
/// open), exit 89, nothing left behind running.
fn fatal(log: Option<&mut MasterLog>, text: &str, log_is_stderr: bool) -> i32 {
    let logged_to_stderr = match log {
        Some(log) => {
            log.master(Level::Fatal, text);
            log_is_stderr
        }
        None => false,
    };
    if !logged_to_stderr {
        eprintln!("Fatal: {text}");
    }
    EXIT_FATAL
}

fn read_password() -> Option<String> {
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
    let mut out = tty.try_clone().ok()?;
    let _ = out.write_all(b"Give the password for SSL keys: ");
    let saved = nix::sys::termios::tcgetattr(&tty).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(nix::sys::termios::LocalFlags::ECHO);
        let _ = nix::sys::termios::tcsetattr(&tty, nix::sys::termios::SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let _ = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(t) = &saved {
        let _ = nix::sys::termios::tcsetattr(&tty, nix::sys::termios::SetArg::TCSANOW, t);
    }
    let _ = out.write_all(b"\n");
    Some(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn start(args: &Args) -> i32 {
    // Before anything else opens a descriptor: systemd's sockets sit at 3..
    let mut activated = Activated::from_env();
    let config = match load(&args.config_path, LoadOptions { expand_values: true }) {
        Ok(c) => c,
        Err(e) => return fatal(None, &e.to_string(), false),
    };
    let log_is_stderr = matches!(config.text("log_path").as_str(), "/dev/stderr");
    let mut log = match MasterLog::open(&config) {
        Ok(l) => l,
        Err(e) => return fatal(None, &e.to_string(), false),
    };
    let warnings = config.warnings.clone();
    let settings = match settings::build(config) {
        Ok(s) => s,
        Err(e) => return fatal(Some(&mut log), &e.to_string(), log_is_stderr),
    };
    let key_password = if args.ask_password { read_password() } else { None };
    if let Err(e) = basedir::check_not_running(&settings.base_dir) {
        return fatal(Some(&mut log), &e.to_string(), log_is_stderr);
    }
    if let Err(e) = basedir::prepare(&settings.base_dir, settings.login_gid) {
        return fatal(Some(&mut log), &e.to_string(), log_is_stderr);
    }
    for w in &warnings {
        log.master(Level::Warning, w);
    }
    if settings.unprivileged {
        log.master(
            Level::Info,
            "Running without root: every service runs as this user, without chroot or privilege changes",
        );
    }
    for (name, executable) in &settings.missing {
        log.master(
            Level::Warning,
            &format!("service({name}): executable {executable} is not installed; service disabled (not provided by dovecote yet)"),
        );
    }
    let mut created = Vec::new();
    for spec in settings.services.iter().flat_map(|s| s.listeners.iter()) {
        match listeners::create(spec, &mut activated) {
            Ok(l) => created.push(l),
            Err(e) => {
                return fatal(Some(&mut log), &format!("Failed to start listeners: {e}"), log_is_stderr);
            }
        }
    }
    // Sockets systemd passed that match nothing configured are closed here.
    drop(activated);
    let admin_path = settings.base_dir.join("master");
    let _ = std::fs::remove_file(&admin_path);
    let old = umask(Mode::from_bits_truncate(0o177));
    let admin = std::os::unix::net::UnixListener::bind(&admin_path);
    umask(old);
    let admin = match admin {
        Ok(a) => a,
        Err(e) => {
            return fatal(
                Some(&mut log),
                &format!("Failed to start listeners: bind({}) failed: {e}", admin_path.display()),
                log_is_stderr,
            )
        }
    };
    if !args.foreground {
        match dovecote_master::sys::fork() {
            Ok(dovecote_master::sys::ForkResult::Parent { .. }) => return 0,
            Ok(dovecote_master::sys::ForkResult::Child) => {
                let _ = nix::unistd::setsid();
            }
            Err(e) => return fatal(Some(&mut log), &format!("fork() failed: {e}"), log_is_stderr),
        }
    }
    redirect_stdio(args.foreground, log_is_stderr);
    umask(Mode::from_bits_truncate(0o077));
    let pid_file = basedir::pid_file(&settings.base_dir);
    if let Err(e) = basedir::write_pid_and_symlink(&settings.base_dir, &args.config_path) {
        return fatal(Some(&mut log), &e.to_string(), log_is_stderr);
    }
    let (core_soft, _) = getrlimit(Resource::RLIMIT_CORE).unwrap_or((0, 0));
    let protocols =
        if settings.protocols.is_empty() { "none".to_owned() } else { settings.protocols.join(", ") };
    let core_note = if core_soft == 0 { " (core dumps disabled)" } else { "" };
    log.master(Level::Info, &format!("Dovecot v{VERSION_TEXT} starting up for {protocols}{core_note}"));
    let imported_env = imported_environment(&settings.config.text("import_environment"));
    let startup = Startup {
        settings,
        listeners: created,
        admin,
        log,
        config_path: args.config_path.clone(),
        pid_file,
        imported_env,
        core_limit: Some(core_soft),
        key_password,
    };
    match Supervisor::new(startup) {
        Ok(mut supervisor) => supervisor.run(),
        Err(e) => {
            eprintln!("Fatal: {e}");
            EXIT_FATAL
        }
    }
}

/// `import_environment`: `NAME` (take ours) or `NAME=value` words.
fn imported_environment(setting: &str) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for word in setting.split_whitespace() {
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (word.to_owned(), None),
        };
        if MASTER_ONLY_ENV.contains(&name.as_str()) {
            continue;
        }
        if let Some(value) = value.or_else(|| std::env::var(&name).ok()) {
            env.push((name, value));
        }
    }
    env
}

/// stdin is never read; stdout/stderr stay the terminal only with -F (and
/// stderr when it is the log).
fn redirect_stdio(foreground: bool, log_is_stderr: bool) {
    let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") else { return };
    use std::os::fd::AsRawFd;
    let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
    if !foreground {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 1);
        if !log_is_stderr {
            let _ = nix::unistd::dup2(null.as_raw_fd(), 2);
        }
    }
}
