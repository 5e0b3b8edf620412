//! `doveconf`: prints the configuration as Dovecot 2.3's `doveconf` does.
//!
//! `doveconf [-adnNPSx] [-c FILE] [-f NAME=VALUE] [-m MODULE] [-h] [SETTING...]`

use std::io::Write;
use std::process::ExitCode;

use dovecote_config::print::{self, PrintOptions, Scope};
use dovecote_config::{load, parse_str, Config, LoadOptions, DEFAULT_CONFIG_PATH};

/// Dovecot's exit code for a fatal error.
const EXIT_FATAL: u8 = 89;

struct Args {
    config_path: String,
    scope: Scope,
    defaults_only: bool,
    show_secrets: bool,
    simple: bool,
    value_only: bool,
    expand: bool,
    filter: Vec<String>,
    names: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        config_path: std::env::var("DOVECOT_CONFIG").unwrap_or_else(|_| DEFAULT_CONFIG_PATH.to_owned()),
        scope: Scope::All,
        defaults_only: false,
        show_secrets: false,
        simple: false,
        value_only: false,
        expand: false,
        filter: Vec::new(),
        names: Vec::new(),
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        if arg == "--" {
            args.names.extend(iter.by_ref());
            break;
        }
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            args.names.push(arg);
            continue;
        };
        let mut chars = flags.chars();
        while let Some(flag) = chars.next() {
            match flag {
                'a' => args.scope = Scope::All,
                'n' => args.scope = Scope::Changed,
                'N' => args.scope = Scope::Set,
                'd' => args.defaults_only = true,
                'P' => args.show_secrets = true,
                'S' => args.simple = true,
                'h' => args.value_only = true,
                'x' => args.expand = true,
                'I' => {}
                'c' | 'f' | 'm' | 'i' => {
                    let rest: String = chars.by_ref().collect();
                    let value = if rest.is_empty() {
                        iter.next().ok_or_else(|| format!("option requires an argument -- '{flag}'"))?
                    } else {
                        rest
                    };
                    match flag {
                        'c' => args.config_path = value,
                        'f' => args.filter.push(value),
                        _ => {}
                    }
                }
                other => return Err(format!("invalid option -- '{other}'")),
            }
        }
    }
    Ok(args)
}

fn header(config_path: &str, all: bool) -> String {
    let mut out = format!(
        "# {} (dovecote {}): {config_path}\n",
        dovecote_config::DOVECOT_VERSION,
        env!("CARGO_PKG_VERSION")
    );
    out.push_str(&format!("# OS: {}\n", os_description()));
    out.push_str(&format!("# Hostname: {}\n", hostname()));
    if all {
        out.push_str("# NOTE: Send doveconf -n output instead when asking for help.\n");
    }
    out
}

fn os_description() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default().trim().to_owned();
    let kernel = format!("{} {}", read("/proc/sys/kernel/ostype"), read("/proc/sys/kernel/osrelease"));
    let machine = std::env::consts::ARCH;
    let distro = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_default();
    format!("{kernel} {machine} {distro}")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned()
}

fn fatal(message: &str) -> ExitCode {
    eprintln!("doveconf: Fatal: {message}");
    ExitCode::from(EXIT_FATAL)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("doveconf: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    let options = LoadOptions { expand_values: args.expand };
    let loaded = if args.defaults_only {
        parse_str(&args.config_path, "", options)
    } else {
        load(&args.config_path, options)
    };
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            if args.names.is_empty() {
                print!("{}", header(&args.config_path, false));
            }
            return fatal(&e.to_string());
        }
    };
    for warning in &config.warnings {
        eprintln!("doveconf: {warning}");
    }
    let config = match apply_filter(config, &args.filter) {
        Ok(c) => c,
        Err(e) => return fatal(&e),
    };
    let print_options = PrintOptions { scope: args.scope, show_secrets: args.show_secrets };
    let mut out = String::new();
    if !args.names.is_empty() {
        let flat = print::flat(&config.root, Scope::All);
        for name in &args.names {
            if let Some((_, value)) = flat.iter().find(|(k, _)| k == name) {
                if args.value_only {
                    out.push_str(&format!("{value}\n"));
                } else {
                    out.push_str(&format!("{name} = {value}\n"));
                }
                continue;
            }
            if let Some(block) = print::render_path(&config.root, name, print_options) {
                out.push_str(&block);
            }
        }
    } else if args.simple {
        for (key, value) in print::flat(&config.root, args.scope) {
            out.push_str(&format!("{key}={value}\n"));
        }
    } else {
        out.push_str(&header(&args.config_path, args.scope == Scope::All));
        out.push_str(&print::render(&config, print_options));
    }
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(out.as_bytes()).and_then(|_| stdout.flush()).is_err() {
        return ExitCode::from(EXIT_FATAL);
    }
    ExitCode::SUCCESS
}

/// `-f protocol=imap` and friends: fold the matching filter blocks into the
/// global settings and print the result as that connection would see it.
fn apply_filter(config: Config, filters: &[String]) -> Result<Config, String> {
    if filters.is_empty() {
        return Ok(config);
    }
    let mut query = dovecote_config::model::ConnectionInfo::default();
    for f in filters {
        let (key, value) = f.split_once('=').unwrap_or((f.as_str(), ""));
        match key {
            "service" | "protocol" => query.protocol = Some(value.to_owned()),
            "lname" => query.local_name = Some(value.to_owned()),
            "local" => query.local_ip = Some(value.parse().map_err(|_| format!("local filter: {value}"))?),
            "remote" => query.remote_ip = Some(value.parse().map_err(|_| format!("remote filter: {value}"))?),
            _ => return Err(format!("Unknown filter argument: {f}")),
        }
    }
    Ok(config.for_connection(&query))
}
