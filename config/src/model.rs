//! The parsed configuration: a tree of sections per filter, with every
//! explicitly set value remembered separately from the defaults so that
//! `doveconf -n` can tell them apart.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::catalog::{self, DefaultService, Kind, ListenerKind, SettingDef};
use crate::value::Value;

/// The block types Dovecot 2.3 knows, and the filter-free root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    Root,
    Service,
    InetListener,
    UnixListener,
    FifoListener,
    Namespace,
    Mailbox,
    Passdb,
    Userdb,
    /// `plugin { key = value }`: free-form strings.
    Plugin,
    /// `dict { name = uri }`: free-form strings.
    Dict,
    /// `metric NAME {}` (stats).
    Metric,
    /// `event_exporter NAME {}` (stats).
    EventExporter,
}

impl SectionKind {
    /// The word that opens the block in dovecot.conf.
    pub fn keyword(self) -> &'static str {
        match self {
            SectionKind::Root => "",
            SectionKind::Service => "service",
            SectionKind::InetListener => "inet_listener",
            SectionKind::UnixListener => "unix_listener",
            SectionKind::FifoListener => "fifo_listener",
            SectionKind::Namespace => "namespace",
            SectionKind::Mailbox => "mailbox",
            SectionKind::Passdb => "passdb",
            SectionKind::Userdb => "userdb",
            SectionKind::Plugin => "plugin",
            SectionKind::Dict => "dict",
            SectionKind::Metric => "metric",
            SectionKind::EventExporter => "event_exporter",
        }
    }

    /// The settings allowed inside the block.
    pub fn defs(self) -> &'static [SettingDef] {
        match self {
            SectionKind::Root => catalog::GLOBAL,
            SectionKind::Service => catalog::SERVICE,
            SectionKind::InetListener => catalog::INET_LISTENER,
            SectionKind::UnixListener | SectionKind::FifoListener => catalog::UNIX_LISTENER,
            SectionKind::Namespace => catalog::NAMESPACE,
            SectionKind::Mailbox => catalog::MAILBOX,
            SectionKind::Passdb => catalog::PASSDB,
            SectionKind::Userdb => catalog::USERDB,
            SectionKind::Plugin | SectionKind::Dict => &[],
            SectionKind::Metric => catalog::METRIC,
            SectionKind::EventExporter => catalog::EVENT_EXPORTER,
        }
    }

    /// Settings accepted here that `doveconf -a` prints only when set.
    pub fn hidden_defs(self) -> &'static [SettingDef] {
        match self {
            SectionKind::Root => catalog::GLOBAL_HIDDEN,
            SectionKind::Namespace => catalog::NAMESPACE_HIDDEN,
            _ => &[],
        }
    }

    fn aliases(self) -> &'static [(&'static str, &'static str)] {
        match self {
            SectionKind::Root => catalog::GLOBAL_ALIASES,
            SectionKind::Namespace => catalog::NAMESPACE_ALIASES,
            _ => &[],
        }
    }

    /// Blocks holding free-form `key = value` strings.
    pub fn is_string_list(self) -> bool {
        matches!(self, SectionKind::Plugin | SectionKind::Dict)
    }

    /// The field a block's name is stored in, for blocks whose name makes them
    /// unique (`service imap` twice is one service). Passdb and userdb names
    /// are plain fields: those lists are ordered, not keyed.
    pub fn unique_key(self) -> Option<&'static str> {
        match self {
            SectionKind::Service
            | SectionKind::InetListener
            | SectionKind::Namespace
            | SectionKind::Mailbox => Some("name"),
            SectionKind::UnixListener | SectionKind::FifoListener => Some("path"),
            SectionKind::Metric => Some("metric_name"),
            SectionKind::EventExporter => Some("name"),
            _ => None,
        }
    }

    /// The block a `word {` line opens inside a block of this kind.
    pub fn child(self, word: &str) -> Option<SectionKind> {
        let kind = match (self, word) {
            (SectionKind::Root, "service") => SectionKind::Service,
            (SectionKind::Root, "namespace") => SectionKind::Namespace,
            (SectionKind::Root, "passdb") => SectionKind::Passdb,
            (SectionKind::Root, "userdb") => SectionKind::Userdb,
            (SectionKind::Root, "plugin") => SectionKind::Plugin,
            (SectionKind::Root, "dict") => SectionKind::Dict,
            (SectionKind::Root, "metric") => SectionKind::Metric,
            (SectionKind::Root, "event_exporter") => SectionKind::EventExporter,
            (SectionKind::Service, "inet_listener") => SectionKind::InetListener,
            (SectionKind::Service, "unix_listener") => SectionKind::UnixListener,
            (SectionKind::Service, "fifo_listener") => SectionKind::FifoListener,
            (SectionKind::Namespace, "mailbox") => SectionKind::Mailbox,
            _ => return None,
        };
        Some(kind)
    }

    /// The setting `name` (or an alias of it) names in this block.
    pub fn def(self, name: &str) -> Option<&'static SettingDef> {
        let name = self.aliases().iter().find(|(alias, _)| *alias == name).map_or(name, |(_, real)| real);
        let find =
            |defs: &'static [SettingDef]| defs.binary_search_by(|d| d.name.cmp(name)).ok().map(|i| &defs[i]);
        find(self.defs()).or_else(|| find(self.hidden_defs()))
    }
}

/// Where a block was opened, for error messages (`file:line`).
pub type Origin = String;

/// One block: the root of a filter, a service, a listener, a namespace...
#[derive(Debug, Clone)]
pub struct Section {
    pub kind: SectionKind,
    /// The name as written (`imap-login`, `Sent Messages`, a listener path);
    /// empty for unnamed blocks.
    pub name: String,
    pub origin: Origin,
    /// Defaults that replace the catalog's for this block (the default
    /// services and their listeners).
    pub(crate) overlay: BTreeMap<&'static str, Value>,
    /// Values set in the configuration files.
    pub(crate) set: BTreeMap<&'static str, Value>,
    /// `plugin {}` entries in the order first written.
    pub strings: Vec<(String, String)>,
    pub children: Vec<Section>,
}

impl Section {
    pub fn new(kind: SectionKind, name: &str, origin: Origin) -> Section {
        Section {
            kind,
            name: name.to_owned(),
            origin,
            overlay: BTreeMap::new(),
            set: BTreeMap::new(),
            strings: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The effective value of a setting of this block, `None` for names the
    /// block does not have.
    pub fn value(&self, name: &str) -> Option<Value> {
        let def = self.kind.def(name)?;
        if let Some(v) = self.set.get(def.name) {
            return Some(v.clone());
        }
        Some(self.default_value(def))
    }

    /// The default of a setting here: the block's own default if it has one,
    /// else the catalog's.
    pub(crate) fn default_value(&self, def: &SettingDef) -> Value {
        if let Some(v) = self.overlay.get(def.name) {
            return v.clone();
        }
        catalog_default(def)
    }

    /// Whether the configuration set this setting explicitly.
    pub fn is_set(&self, name: &str) -> bool {
        self.set.keys().any(|k| *k == name)
    }

    /// The value as text, or "" for names the block does not have.
    pub fn text(&self, name: &str) -> String {
        self.value(name).map(|v| v.display()).unwrap_or_default()
    }

    pub fn bool(&self, name: &str) -> bool {
        self.value(name).and_then(|v| v.as_bool()).unwrap_or(false)
    }

    pub fn number(&self, name: &str) -> u64 {
        self.value(name).and_then(|v| v.as_u64()).unwrap_or(0)
    }

    /// Children of one kind, in configuration order.
    pub fn children_of(&self, kind: SectionKind) -> impl Iterator<Item = &Section> {
        self.children.iter().filter(move |c| c.kind == kind)
    }

    pub fn plugin_value(&self, key: &str) -> Option<&str> {
        self.strings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(crate) fn set_value(&mut self, def: &'static SettingDef, value: Value) {
        self.set.insert(def.name, value);
    }

    pub(crate) fn set_string(&mut self, key: &str, value: String) {
        match self.strings.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.strings.push((key.to_owned(), value)),
        }
    }
}

/// Parses a catalog default. The generated table only holds values its own
/// type accepts (checked by a unit test), so a failure falls back to text.
pub(crate) fn catalog_default(def: &SettingDef) -> Value {
    match def.kind {
        Kind::Enum(values) => Value::Str(values.first().copied().unwrap_or_default().to_owned()),
        kind => Value::parse(kind, def.default).unwrap_or_else(|_| Value::Str(def.default.to_owned())),
    }
}

/// The root block with Dovecot's default services already in it.
pub(crate) fn default_root(origin: &str) -> Section {
    let mut root = Section::new(SectionKind::Root, "", origin.to_owned());
    for service in catalog::DEFAULT_SERVICES {
        root.children.push(default_service(service, origin));
    }
    root
}

fn overlay(section: &mut Section, values: &[(&'static str, &'static str)]) {
    for (name, text) in values {
        if let Some(def) = section.kind.def(name) {
            let value = Value::parse(def.kind, text).unwrap_or_else(|_| Value::Str((*text).to_owned()));
            section.overlay.insert(def.name, value);
        }
    }
}

fn default_service(service: &DefaultService, origin: &str) -> Section {
    let mut section = Section::new(SectionKind::Service, service.name, origin.to_owned());
    overlay(&mut section, service.values);
    for listener in service.listeners {
        let kind = match listener.kind {
            ListenerKind::Unix => SectionKind::UnixListener,
            ListenerKind::Fifo => SectionKind::FifoListener,
            ListenerKind::Inet => SectionKind::InetListener,
        };
        let mut child = Section::new(kind, listener.name, origin.to_owned());
        overlay(&mut child, listener.values);
        section.children.push(child);
    }
    section
}

/// An address range in a `local`/`remote` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub bits: u8,
}

impl Net {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.bits == 0 { 0 } else { u32::MAX << (32 - u32::from(self.bits.min(32))) };
                u32::from(net) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask =
                    if self.bits == 0 { 0 } else { u128::MAX << (128 - u32::from(self.bits.min(128))) };
                u128::from(net) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }

    fn max_bits(&self) -> u8 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    /// As `doveconf` prints it: the address, and `/bits` unless a single host.
    pub fn display(&self) -> String {
        if self.bits == self.max_bits() {
            self.addr.to_string()
        } else {
            format!("{}/{}", self.addr, self.bits)
        }
    }
}

/// The conditions of a `local`/`local_name`/`remote`/`protocol` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub local: Option<Net>,
    pub local_name: Option<String>,
    pub remote: Option<Net>,
    /// A protocol name, possibly negated with `!`.
    pub protocol: Option<String>,
}

/// Settings that apply only to connections matching `filter`.
#[derive(Debug, Clone)]
pub struct FilterBlock {
    pub filter: Filter,
    pub root: Section,
}

/// A whole parsed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main file, as given.
    pub path: String,
    /// Global settings, with the default services.
    pub root: Section,
    /// Filter blocks in the order `doveconf` prints them.
    pub filters: Vec<FilterBlock>,
    /// Warnings and errors Dovecot would print while parsing, each starting
    /// with its level (`Warning: ...`, `Error: ...`).
    pub warnings: Vec<String>,
}

impl Config {
    /// The effective global value of a setting.
    pub fn value(&self, name: &str) -> Option<Value> {
        self.root.value(name)
    }

    pub fn text(&self, name: &str) -> String {
        self.root.text(name)
    }

    /// Services, in configuration order (defaults first).
    pub fn services(&self) -> impl Iterator<Item = &Section> {
        self.root.children_of(SectionKind::Service)
    }

    pub fn service(&self, name: &str) -> Option<&Section> {
        self.services().find(|s| s.name == name)
    }
}

/// What is known about a connection when choosing filter blocks.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    pub protocol: Option<String>,
    pub local_ip: Option<IpAddr>,
    pub local_name: Option<String>,
    pub remote_ip: Option<IpAddr>,
}

impl Filter {
    /// Whether this filter's block applies to `conn`. A condition on
    /// something `conn` does not know never matches.
    pub fn matches(&self, conn: &ConnectionInfo) -> bool {
        if let Some(protocol) = &self.protocol {
            let Some(actual) = &conn.protocol else { return false };
            let ok = match protocol.strip_prefix('!') {
                Some(negated) => negated != actual,
                None => protocol == actual,
            };
            if !ok {
                return false;
            }
        }
        if let Some(net) = &self.local {
            if !conn.local_ip.is_some_and(|ip| net.contains(&ip)) {
                return false;
            }
        }
        if let Some(net) = &self.remote {
            if !conn.remote_ip.is_some_and(|ip| net.contains(&ip)) {
                return false;
            }
        }
        if let Some(pattern) = &self.local_name {
            let Some(name) = &conn.local_name else { return false };
            if !local_name_matches(pattern, name) {
                return false;
            }
        }
        true
    }
}

/// `local_name` patterns: space-separated names, each possibly starting with
/// `*.` to match any subdomain; compared without regard to case.
fn local_name_matches(pattern: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    pattern.split_whitespace().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(suffix) => name.len() > suffix.len() + 1 && name.ends_with(&format!(".{suffix}")),
            None => p == name,
        }
    })
}

fn merge_into(target: &mut Section, source: &Section) {
    for (name, value) in &source.set {
        target.set.insert(name, value.clone());
    }
    for (key, value) in &source.strings {
        target.set_string(key, value.clone());
    }
    for child in &source.children {
        let existing = if child.kind.unique_key().is_some() && !child.name.is_empty() {
            target.children.iter_mut().find(|c| c.kind == child.kind && c.name == child.name)
        } else if child.kind == SectionKind::Plugin {
            target.children.iter_mut().find(|c| c.kind == SectionKind::Plugin)
        } else {
            None
        };
        match existing {
            Some(t) => merge_into(t, child),
            None => target.children.push(child.clone()),
        }
    }
}

impl Config {
    /// The settings a connection sees: the global ones with every matching
    /// filter block applied, least specific first. The result has no filters.
    pub fn for_connection(&self, conn: &ConnectionInfo) -> Config {
        let mut root = self.root.clone();
        for block in self.filters.iter().filter(|b| b.filter.matches(conn)) {
            merge_into(&mut root, &block.root);
        }
        Config { path: self.path.clone(), root, filters: Vec::new(), warnings: Vec::new() }
    }

    /// `plugin {}` settings in force globally.
    pub fn plugin(&self, key: &str) -> Option<&str> {
        self.root.children_of(SectionKind::Plugin).find_map(|p| p.plugin_value(key))
    }
}
