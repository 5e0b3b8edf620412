//! What the master makes of a parsed configuration: the services it runs,
//! with users and groups resolved to ids, executables located, listeners
//! expanded to one entry per address, and the config text each service
//! gets on its pipe. Everything that can be wrong with a configuration from
//! the master's point of view is found here, before anything is bound or
//! spawned, and reported in Dovecot's words.
//!
//! Deliberate departures from Dovecot:
//! * services of type `log` and `config` are built into the master (it
//!   writes the log itself and hands each child its configuration over a
//!   pipe), so they have no process and no sockets;
//! * a service whose executable is not installed is left disabled with one
//!   warning at startup instead of failing the whole start: most of
//!   Dovecot's 30 default services have no binary in dovecote yet.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use dovecote_config::{Config, Section, SectionKind};
use dovecote_master::contract::{ListenerKind, ListenerName, ServiceLimits};
use nix::unistd::{AccessFlags, Group, User};
use thiserror::Error;

/// Bytes of padding after argv[0] with verbose_proctitle = yes.
const TITLE_ROOM: usize = 128;

/// Settings that carry private key material; only services that terminate
/// TLS receive them on their config pipe.
const SECRET_SETTINGS: &[&str] = &["ssl_key", "ssl_key_password", "ssl_alt_key", "ssl_client_key"];

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SettingsError {
    #[error("service({service}) User doesn't exist: {user} (See service {service} {{ {place}{{ user }} }} setting)")]
    NoUser { service: String, user: String, place: String },
    #[error("service({service}) Group doesn't exist: {group} (See service {service} {{ {place}{{ group }} }} setting)")]
    NoGroup { service: String, group: String, place: String },
    #[error("service({service}) {listener}: invalid address {address}: {reason}")]
    Address { service: String, listener: String, address: String, reason: String },
    #[error("listen setting is empty")]
    EmptyListen,
}

/// One socket the master creates and passes to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub service: String,
    pub name: ListenerName,
    pub kind: ListenerKind,
    /// unix/fifo: absolute path.
    pub path: PathBuf,
    /// inet: the address to bind.
    pub addr: Option<SocketAddr>,
    pub user: String,
    pub group: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: u32,
    pub reuse_port: bool,
    pub backlog: i32,
}

impl ListenerSpec {
    /// What identifies "the same listener" across a reload: an inet
    /// listener is reused when its address is unchanged (as Dovecot does);
    /// a unix/fifo one when path, owner and mode are unchanged.
    pub fn reuse_key(&self) -> String {
        match self.kind {
            ListenerKind::Inet => format!("inet {:?}", self.addr),
            kind => format!(
                "{} {} {:?} {:?} {:o}",
                kind.as_str(),
                self.path.display(),
                self.uid,
                self.gid,
                self.mode
            ),
        }
    }

    pub fn address_text(&self) -> String {
        match self.addr {
            Some(addr) => addr.to_string(),
            None => self.path.display().to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub name: String,
    pub executable: PathBuf,
    /// argv as exec'd: argv[0] is the process title `dovecot/<name>`.
    pub argv: Vec<String>,
    /// `None` = stays root.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub groups: Vec<u32>,
    pub chroot: Option<PathBuf>,
    pub no_new_privs: bool,
    pub limits: ServiceLimits,
    pub listeners: Vec<ListenerSpec>,
    /// The configuration text for the config pipe.
    pub config_text: String,
    pub receives_key_password: bool,
    /// The anvil listener the master connects this service's processes
    /// to at spawn (contract::ENV_ANVIL_FD): `anvil` for login and mail
    /// services, `anvil-auth-penalty` for `auth`.
    pub anvil_socket: Option<PathBuf>,
}

pub struct MasterSettings {
    pub config: Config,
    pub base_dir: PathBuf,
    pub protocols: Vec<String>,
    pub services: Vec<ServiceSettings>,
    /// Services left out because their executable is not installed:
    /// (name, executable as configured).
    pub missing: Vec<(String, String)>,
    pub shutdown_clients: bool,
    pub login_gid: Option<u32>,
    /// The master is not root: services keep its user and get no chroot.
    pub unprivileged: bool,
}

/// Resolves `$default_login_user` and friends, which the master expands
/// itself in Dovecot too.
fn expand_user(config: &Config, value: &str) -> String {
    match value.strip_prefix('$') {
        Some(var) => config.text(var),
        None => value.to_owned(),
    }
}

fn resolve_user(name: &str) -> Option<User> {
    match name.parse::<u32>() {
        Ok(uid) => User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten(),
        Err(_) => User::from_name(name).ok().flatten(),
    }
}

fn resolve_group(name: &str) -> Option<Group> {
    match name.parse::<u32>() {
        Ok(gid) => Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok().flatten(),
        Err(_) => Group::from_name(name).ok().flatten(),
    }
}

/// Where a relative executable is looked for: next to the master binary
/// first (so a cargo build tree runs without installing), then libexec_dir.
fn find_executable(word: &str, libexec_dir: &str) -> Option<PathBuf> {
    let executable = |p: &Path| p.is_file() && nix::unistd::access(p, AccessFlags::X_OK).is_ok();
    if word.starts_with('/') {
        let p = PathBuf::from(word);
        return executable(&p).then_some(p);
    }
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        dirs.push(dir);
    }
    dirs.push(PathBuf::from(libexec_dir));
    dirs.into_iter().map(|d| d.join(word)).find(|p| executable(p))
}

fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split([' ', ',', '\t']).filter(|w| !w.is_empty())
}

pub fn build(config: Config) -> Result<MasterSettings, SettingsError> {
    let base_dir = PathBuf::from(config.text("base_dir").trim_end_matches('/'));
    let protocols: Vec<String> = match config.text("protocols").trim() {
        "none" => Vec::new(),
        text => split_list(text).map(str::to_owned).collect(),
    };
    let libexec_dir = config.text("libexec_dir");
    let instance = config.text("instance_name");
    let ssl_enabled = config.text("ssl") != "no";
    let login_gid = resolve_user(&config.text("default_login_user")).map(|u| u.gid.as_raw());
    let mut services = Vec::new();
    let mut missing = Vec::new();
    for section in config.services() {
        let protocol = section.text("protocol");
        if !protocol.is_empty() && !protocols.contains(&protocol) {
            continue;
        }
        let service_type = section.text("type");
        if service_type == "log" || service_type == "config" {
            continue;
        }
        let executable_text = section.text("executable");
        let mut words = executable_text.split_whitespace();
        let Some(program) = words.next() else { continue };
        let Some(executable) = find_executable(program, &libexec_dir) else {
            missing.push((section.name.clone(), executable_text.clone()));
            continue;
        };
        let title_prefix =
            if instance.starts_with("dovecot") { instance.clone() } else { format!("dovecot-{instance}") };
        let basename =
            Path::new(program).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut title = format!("{title_prefix}/{basename}");
        if config.root.bool("verbose_proctitle") {
            // Room for `[user ip state]`: the runtime rewrites argv[0] in
            // place and can't grow it; trailing spaces are invisible in ps.
            title.push_str(&" ".repeat(TITLE_ROOM));
        }
        let mut argv = vec![title];
        argv.extend(words.map(str::to_owned));
        services.push(build_service(&config, section, executable, argv, &base_dir, ssl_enabled)?);
    }
    attach_anvil(&config, &mut services);
    let shutdown_clients = config.root.bool("shutdown_clients");
    let unprivileged = !nix::unistd::geteuid().is_root();
    let login_gid = if unprivileged {
        // Without root nothing can change owner, user or root directory:
        // every process runs as the invoking user, as for a quick trial.
        for service in &mut services {
            service.uid = None;
            service.gid = None;
            service.groups.clear();
            service.chroot = None;
            for listener in &mut service.listeners {
                listener.uid = None;
                listener.gid = None;
            }
        }
        None
    } else {
        login_gid
    };
    Ok(MasterSettings {
        config,
        base_dir,
        protocols,
        services,
        missing,
        shutdown_clients,
        login_gid,
        unprivileged,
    })
}

/// Sets [`ServiceSettings::anvil_socket`] from the `type = anvil`
/// service's listeners (unless that service is disabled or missing).
fn attach_anvil(config: &Config, services: &mut [ServiceSettings]) {
    let types: HashMap<String, String> =
        config.services().map(|s| (s.name.clone(), s.text("type"))).collect();
    let Some(anvil) = services.iter().find(|s| types.get(&s.name).is_some_and(|t| t == "anvil")) else {
        return;
    };
    let path_of = |name: &str| {
        anvil
            .listeners
            .iter()
            .find(|l| l.kind == ListenerKind::Unix && l.name.name == name)
            .map(|l| l.path.clone())
    };
    let (login, penalty) = (path_of("anvil"), path_of("anvil-auth-penalty"));
    for service in services.iter_mut() {
        // Post-login mail services start as root but may have dropped to
        // the mail user before their first session registers.
        let mail = matches!(service.name.as_str(), "imap" | "pop3" | "submission" | "managesieve");
        if mail || types.get(&service.name).is_some_and(|t| t == "login") {
            service.anvil_socket = login.clone();
        } else if service.name == "auth" {
            service.anvil_socket = penalty.clone();
        }
    }
}

fn build_service(
    config: &Config,
    section: &Section,
    executable: PathBuf,
    argv: Vec<String>,
    base_dir: &Path,
    ssl_enabled: bool,
) -> Result<ServiceSettings, SettingsError> {
    let name = section.name.clone();
    let user_name = expand_user(config, &section.text("user"));
    let (uid, mut gid) = if user_name.is_empty() {
        (None, None)
    } else {
        let user = resolve_user(&user_name).ok_or_else(|| SettingsError::NoUser {
            service: name.clone(),
            user: user_name.clone(),
            place: String::new(),
        })?;
        (Some(user.uid.as_raw()), Some(user.gid.as_raw()))
    };
    let group_name = expand_user(config, &section.text("group"));
    if !group_name.is_empty() {
        let group = resolve_group(&group_name).ok_or_else(|| SettingsError::NoGroup {
            service: name.clone(),
            group: group_name.clone(),
            place: String::new(),
        })?;
        gid = Some(group.gid.as_raw());
    }
    let mut groups = Vec::new();
    let extra = expand_user(config, &section.text("extra_groups"));
    let privileged = expand_user(config, &section.text("privileged_group"));
    for g in split_list(&extra).chain(split_list(&privileged)) {
        let g = expand_user(config, g);
        let group = resolve_group(&g).ok_or_else(|| SettingsError::NoGroup {
            service: name.clone(),
            group: g.clone(),
            place: String::new(),
        })?;
        groups.push(group.gid.as_raw());
    }
    if let Some(g) = gid {
        if !groups.contains(&g) {
            groups.insert(0, g);
        }
    }
    let chroot = match section.text("chroot").as_str() {
        "" => None,
        "." => Some(base_dir.to_path_buf()),
        dir if dir.starts_with('/') => Some(PathBuf::from(dir)),
        dir => Some(base_dir.join(dir)),
    };
    let limits = ServiceLimits::of(config, section);
    let backlog = i32::try_from(u64::from(limits.process_limit) * u64::from(limits.client_limit))
        .unwrap_or(i32::MAX)
        .clamp(4, 65535);
    let mut listeners = Vec::new();
    for kind in [SectionKind::UnixListener, SectionKind::FifoListener] {
        for l in section.children_of(kind) {
            let mode = u32::try_from(l.number("mode")).unwrap_or(0);
            if mode == 0 {
                continue;
            }
            let listener_kind =
                if kind == SectionKind::UnixListener { ListenerKind::Unix } else { ListenerKind::Fifo };
            let place = format!("{} {} ", kind.keyword(), l.name);
            let path = if l.name.starts_with('/') { PathBuf::from(&l.name) } else { base_dir.join(&l.name) };
            let user = expand_user(config, &l.text("user"));
            let group = expand_user(config, &l.text("group"));
            let luid = if user.is_empty() {
                None
            } else {
                Some(
                    resolve_user(&user)
                        .ok_or_else(|| SettingsError::NoUser {
                            service: name.clone(),
                            user: user.clone(),
                            place: format!("{} {} ", kind.keyword(), path.display()),
                        })?
                        .uid
                        .as_raw(),
                )
            };
            let lgid = if group.is_empty() {
                None
            } else {
                Some(
                    resolve_group(&group)
                        .ok_or_else(|| SettingsError::NoGroup {
                            service: name.clone(),
                            group: group.clone(),
                            place: place.clone(),
                        })?
                        .gid
                        .as_raw(),
                )
            };
            let basename =
                Path::new(&l.name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            listeners.push(ListenerSpec {
                service: name.clone(),
                name: ListenerName { name: basename, kind: listener_kind, ssl: false, haproxy: false },
                kind: listener_kind,
                path,
                addr: None,
                user,
                group,
                uid: luid,
                gid: lgid,
                mode,
                reuse_port: false,
                backlog,
            });
        }
    }
    let mut has_ssl_listener = false;
    for l in section.children_of(SectionKind::InetListener) {
        let port = u16::try_from(l.number("port")).unwrap_or(0);
        let ssl = l.bool("ssl");
        if port == 0 || (ssl && !ssl_enabled) {
            continue;
        }
        has_ssl_listener |= ssl;
        let address = match l.text("address") {
            a if a.is_empty() => config.text("listen"),
            a => a,
        };
        let addresses: Vec<&str> = split_list(&address).collect();
        if addresses.is_empty() {
            return Err(SettingsError::EmptyListen);
        }
        for a in addresses {
            for addr in resolve_address(a, port).map_err(|reason| SettingsError::Address {
                service: name.clone(),
                listener: l.name.clone(),
                address: a.to_owned(),
                reason,
            })? {
                listeners.push(ListenerSpec {
                    service: name.clone(),
                    name: ListenerName {
                        name: l.name.clone(),
                        kind: ListenerKind::Inet,
                        ssl,
                        haproxy: l.bool("haproxy"),
                    },
                    kind: ListenerKind::Inet,
                    path: PathBuf::new(),
                    addr: Some(addr),
                    user: String::new(),
                    group: String::new(),
                    uid: None,
                    gid: None,
                    mode: 0,
                    reuse_port: l.bool("reuse_port"),
                    backlog,
                });
            }
        }
    }
    let service_type = section.text("type");
    let terminates_tls = service_type == "login"
        || has_ssl_listener
        || matches!(name.as_str(), "lmtp" | "doveadm" | "submission-login" | "managesieve-login");
    let withheld: &[&str] = if terminates_tls { &[] } else { SECRET_SETTINGS };
    let config_text = dovecote_config::wire::encode(config, withheld);
    let program = executable.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A transition into dovecot_auth_t is refused under no_new_privs
    // (reference/selinux-systemd.md §1.4, §1.9): auth and `auth -w` run without it.
    let no_new_privs = name != "auth" && name != "auth-worker" && program != "auth";
    let has_inet = listeners.iter().any(|l| l.kind == ListenerKind::Inet);
    Ok(ServiceSettings {
        name,
        executable,
        argv,
        uid,
        gid,
        groups,
        chroot,
        no_new_privs,
        limits,
        listeners,
        config_text,
        receives_key_password: has_inet,
        anvil_socket: None,
    })
}

fn resolve_address(text: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    match text {
        "*" => return Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)]),
        "::" | "[::]" => return Ok(vec![SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)]),
        _ => {}
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut addrs: Vec<SocketAddr> = (bare, port).to_socket_addrs().map_err(|e| e.to_string())?.collect();
    addrs.dedup();
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_resolve_like_dovecot() {
        assert_eq!(resolve_address("*", 143).unwrap(), vec!["0.0.0.0:143".parse().unwrap()]);
        assert_eq!(resolve_address("::", 143).unwrap(), vec!["[::]:143".parse().unwrap()]);
        assert_eq!(resolve_address("127.0.0.1", 1).unwrap(), vec!["127.0.0.1:1".parse().unwrap()]);
        assert_eq!(resolve_address("[::1]", 1).unwrap(), vec!["[::1]:1".parse().unwrap()]);
    }

    #[test]
    fn protocols_select_services_and_log_config_are_built_in() {
        let config = dovecote_config::parse_str(
            "t.conf",
            "protocols = imap\nbase_dir = /tmp/x\nservice echo {\n  executable = /bin/true\n  protocol = imap\n}\n\
             service other {\n  executable = /bin/true\n  protocol = pop3\n}\n",
            dovecote_config::LoadOptions::default(),
        )
        .unwrap();
        let settings = build(config).unwrap();
        let names: Vec<&str> = settings.services.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"echo"));
        assert!(!names.contains(&"other"));
        assert!(!names.contains(&"log") && !names.contains(&"config"));
        assert!(!settings.missing.iter().any(|(n, _)| n == "pop3-login"));
    }
}
