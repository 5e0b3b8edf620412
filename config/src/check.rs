//! Checks Dovecot runs on the whole configuration after parsing, with its
//! wording (`Service #32 is missing name`, namespace separator rules...).

use crate::model::{Config, Filter, FilterBlock, Section, SectionKind};

/// Services for which Dovecot allows a single process only.
const SINGLE_PROCESS_SERVICES: &[&str] =
    &["anvil", "auth", "log", "director", "indexer", "ipc", "old-stats", "replicator"];

/// Service types Dovecot 2.3 knows.
const SERVICE_TYPES: &[&str] = &["", "log", "config", "anvil", "login", "startup", "worker"];

/// The smallest vsz_limit Dovecot accepts.
const MIN_VSZ_LIMIT: u64 = 1024 * 1024;

/// The first problem found, as Dovecot words it.
pub fn check(config: &Config) -> Result<(), String> {
    check_block(&config.root)?;
    for block in &config.filters {
        check_block(&block.root)?;
    }
    check_master(config)?;
    check_filter_conflicts(config)
}

/// The words of `protocols` (`none` means no protocol).
pub fn protocols(config: &Config) -> Vec<String> {
    let text = config.text("protocols");
    text.split_whitespace().filter(|w| *w != "none").map(str::to_owned).collect()
}

/// Whether a service runs with the configured `protocols`.
pub fn service_enabled(service: &Section, protocols: &[String]) -> bool {
    let protocol = service.text("protocol");
    protocol.is_empty() || protocols.contains(&protocol)
}

fn check_master(config: &Config) -> Result<(), String> {
    let first_uid = config.root.number("first_valid_uid");
    let last_uid = config.root.number("last_valid_uid");
    if last_uid != 0 && first_uid > last_uid {
        return Err("first_valid_uid can't be larger than last_valid_uid".to_owned());
    }
    let first_gid = config.root.number("first_valid_gid");
    let last_gid = config.root.number("last_valid_gid");
    if last_gid != 0 && first_gid > last_gid {
        return Err("first_valid_gid can't be larger than last_valid_gid".to_owned());
    }
    if config.root.number("default_vsz_limit") < MIN_VSZ_LIMIT {
        return Err("default_vsz_limit is too low".to_owned());
    }
    let enabled = protocols(config);
    let known: Vec<String> =
        config.services().map(|s| s.text("protocol")).filter(|p| !p.is_empty()).collect();
    if let Some(unknown) = enabled.iter().find(|p| !known.contains(p)) {
        return Err(format!("protocols: Unknown protocol: {unknown}"));
    }
    let base_dir = config.text("base_dir");
    let listen = config.text("listen");
    let mut seen: Vec<String> = Vec::new();
    for service in config.services() {
        let name = &service.name;
        let service_type = service.text("type");
        if !SERVICE_TYPES.contains(&service_type.as_str()) {
            return Err(format!("Unknown service type: {service_type}"));
        }
        if service.number("vsz_limit") < MIN_VSZ_LIMIT && service.number("vsz_limit") != 0 {
            return Err(format!("service({name}): vsz_limit is too low"));
        }
        if service.bool("drop_priv_before_exec") && !service.text("chroot").is_empty() {
            return Err(format!("service({name}): drop_priv_before_exec=yes can't be used with chroot"));
        }
        if !service_enabled(service, &enabled) {
            continue;
        }
        for listener in &service.children {
            let key = match listener.kind {
                SectionKind::UnixListener | SectionKind::FifoListener => {
                    if listener.number("mode") == 0 {
                        continue;
                    }
                    if listener.name.starts_with('/') {
                        listener.name.clone()
                    } else {
                        format!("{base_dir}/{}", listener.name)
                    }
                }
                SectionKind::InetListener => {
                    let port = listener.number("port");
                    if port == 0 {
                        continue;
                    }
                    let address = listener.text("address");
                    let address = if address.is_empty() { listen.clone() } else { address };
                    format!("{port}:{address}")
                }
                _ => continue,
            };
            if seen.contains(&key) {
                return Err(format!("duplicate listener: {key}"));
            }
            seen.push(key);
        }
    }
    Ok(())
}

/// Dovecot applies matching filter blocks from the most specific down; a
/// less specific block that is not contained in the one before it may not
/// set a value differently ("Conflict in setting ... found from filter at").
fn check_filter_conflicts(config: &Config) -> Result<(), String> {
    for query in &config.filters {
        let mut matching: Vec<&FilterBlock> =
            config.filters.iter().filter(|b| is_subset(&b.filter, &query.filter)).collect();
        matching.sort_by_key(|b| {
            let f = &b.filter;
            std::cmp::Reverse((
                f.local.as_ref().map_or(0, |n| n.bits),
                f.remote.as_ref().map_or(0, |n| n.bits),
                f.local_name.is_some(),
                f.protocol.is_some(),
            ))
        });
        let mut merged: Vec<(&str, String)> = Vec::new();
        for (i, block) in matching.iter().enumerate() {
            let checked = i > 0 && !is_subset(&block.filter, &matching[i - 1].filter);
            for (name, value) in &block.root.set {
                let text = value.display();
                match merged.iter().find(|(n, _)| n == name) {
                    Some((_, existing)) if checked && *existing != text => {
                        return Err(format!(
                            "Conflict in setting {name} found from filter at {}",
                            block.root.origin
                        ));
                    }
                    Some(_) => {}
                    None => merged.push((name, text)),
                }
            }
        }
    }
    Ok(())
}

/// Whether every condition of `inner` is also a condition of `outer`.
fn is_subset(inner: &Filter, outer: &Filter) -> bool {
    let same_or_none = |a: &Option<String>, b: &Option<String>| a.is_none() || a == b;
    let net_ok = |a: &Option<crate::model::Net>, b: &Option<crate::model::Net>| match (a, b) {
        (None, _) => true,
        (Some(a), Some(b)) => b.bits >= a.bits && a.contains(&b.addr),
        (Some(_), None) => false,
    };
    same_or_none(&inner.protocol, &outer.protocol)
        && same_or_none(&inner.local_name, &outer.local_name)
        && net_ok(&inner.local, &outer.local)
        && net_ok(&inner.remote, &outer.remote)
}

fn check_block(root: &Section) -> Result<(), String> {
    for (index, service) in root.children_of(SectionKind::Service).enumerate() {
        check_service(index, service)?;
    }
    for namespace in root.children_of(SectionKind::Namespace) {
        check_namespace(namespace)?;
    }
    for (kind, word) in [(SectionKind::Passdb, "passdb"), (SectionKind::Userdb, "userdb")] {
        if root.children_of(kind).any(|db| db.text("driver").is_empty()) {
            return Err(format!("{word} is missing driver"));
        }
    }
    Ok(())
}

fn check_service(index: usize, service: &Section) -> Result<(), String> {
    if service.name.is_empty() {
        return Err(format!("Service #{index} is missing name"));
    }
    if SINGLE_PROCESS_SERVICES.contains(&service.name.as_str()) && service.number("process_limit") > 1 {
        return Err(format!("service({}): process_limit must be 1", service.name));
    }
    Ok(())
}

fn check_namespace(namespace: &Section) -> Result<(), String> {
    let prefix = namespace.text("prefix");
    if namespace.text("separator").chars().count() > 1 {
        return Err(format!("Namespace '{prefix}': Hierarchy separator must be only one character long"));
    }
    Ok(())
}
