//! Checks Dovecot runs on the whole configuration after parsing, with its
//! wording (`Service #32 is missing name`, namespace separator rules...).

use crate::model::{Config, Section, SectionKind};

/// Services for which Dovecot allows a single process only.
const SINGLE_PROCESS_SERVICES: &[&str] =
    &["anvil", "auth", "log", "director", "indexer", "ipc", "old-stats", "replicator"];

/// The first problem found, as Dovecot words it.
pub fn check(config: &Config) -> Result<(), String> {
    check_block(&config.root)?;
    for block in &config.filters {
        check_block(&block.root)?;
    }
    Ok(())
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
