//! Turns dovecot.conf lines into a [`Config`]: sections, filters, typed
//! values, `$setting` references and `<file` values, with Dovecot's error
//! messages (`Error in configuration file F line N: reason`).

use std::net::{IpAddr, ToSocketAddrs};

use crate::catalog::SettingDef;
use crate::check;
use crate::error::ConfigError;
use crate::model::{default_root, Config, Filter, FilterBlock, Net, Section, SectionKind};
use crate::obsolete;
use crate::source::{os_error_text, Source, SourceLine};
use crate::syntax::{parse_line, section_escape, Line, RawValue};
use crate::value::Value;

/// How values are read.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Replace every `$setting` and `$ENV:NAME` and read `<file` values, as the
    /// running server does (`doveconf -x`). Without it, as `doveconf -n/-a`
    /// print, only self-references (`key = $key more`) are replaced.
    pub expand_values: bool,
}

/// Reads the configuration file at `path` and everything it includes.
pub fn load(path: &str, options: LoadOptions) -> Result<Config, ConfigError> {
    let source = Source::open(path).map_err(ConfigError::Open)?;
    Builder::new(path, options).run(source)
}

/// Parses configuration text held in memory; `path` names it in messages and
/// anchors relative includes.
pub fn parse_str(path: &str, text: &str, options: LoadOptions) -> Result<Config, ConfigError> {
    Builder::new(path, options).run(Source::from_text(path, text))
}

/// Which tree a frame's section lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Global,
    Filter(usize),
}

#[derive(Debug, Clone)]
struct Frame {
    block: Block,
    /// Child indices from the block's root down to the open section.
    path: Vec<usize>,
    /// Set when a plain setting was opened as a block (`hostname {`):
    /// nothing can be set inside it.
    setting_block: Option<String>,
    filter: Filter,
    opened_at: String,
}

struct Builder {
    options: LoadOptions,
    /// Numbers unnamed blocks, as Dovecot's parser does (visible when a
    /// plain setting is opened as a block: `hostname {` sets it to "0").
    unnamed_counter: u32,
    obsolete_seen: bool,
    config: Config,
    stack: Vec<Frame>,
}

impl Builder {
    fn new(path: &str, options: LoadOptions) -> Builder {
        let config = Config {
            path: path.to_owned(),
            root: default_root(path),
            filters: Vec::new(),
            warnings: Vec::new(),
        };
        let root_frame = Frame {
            block: Block::Global,
            path: Vec::new(),
            setting_block: None,
            filter: Filter::default(),
            opened_at: path.to_owned(),
        };
        Builder { options, unnamed_counter: 0, obsolete_seen: false, config, stack: vec![root_frame] }
    }

    fn run(mut self, mut source: Source) -> Result<Config, ConfigError> {
        while let Some(line) = source.next_line() {
            // Keep warnings in the order Dovecot prints them.
            self.config.warnings.append(&mut source.warnings);
            if let Err(reason) = self.apply(&line, &mut source) {
                self.config.warnings.append(&mut source.warnings);
                return Err(ConfigError::Line { path: line.path, line: line.line, reason });
            }
        }
        self.config.warnings.append(&mut source.warnings);
        if self.obsolete_seen {
            self.config.warnings.push(format!("Warning: {}", obsolete::CLEAN_CONFIG_NOTE));
        }
        if self.stack.len() > 1 {
            let opened_at = self.stack.last().map(|f| f.opened_at.clone()).unwrap_or_default();
            return Err(ConfigError::File {
                path: self.config.path.clone(),
                reason: format!("Missing '}}' (section started at {opened_at})"),
            });
        }
        sort_filters(&mut self.config.filters);
        check::check(&self.config)
            .map_err(|reason| ConfigError::File { path: self.config.path.clone(), reason })?;
        Ok(self.config)
    }

    fn apply(&mut self, line: &SourceLine, source: &mut Source) -> Result<(), String> {
        match parse_line(&line.text) {
            Line::Malformed(reason) => Err(reason.to_owned()),
            Line::Include { pattern, ignore_missing } => source.include(&pattern, ignore_missing),
            Line::SectionEnd => {
                if self.stack.len() == 1 {
                    return Err("Unexpected '}'".to_owned());
                }
                self.stack.pop();
                Ok(())
            }
            Line::SectionBegin { kind, name } => {
                let opened_at = format!("{}:{}", line.path, line.line);
                self.begin_section(&kind, &name, opened_at)
            }
            Line::Assignment { key, value } => {
                let dir = source.current_dir_prefix();
                let position = format!("{}:{}", line.path, line.line);
                self.assign(&key, value, &dir, &position)
            }
        }
    }

    fn top(&self) -> &Frame {
        // The root frame is never popped (see SectionEnd).
        &self.stack[self.stack.len() - 1]
    }

    fn section(&self, block: Block, path: &[usize]) -> &Section {
        let mut section = match block {
            Block::Global => &self.config.root,
            Block::Filter(i) => &self.config.filters[i].root,
        };
        for &i in path {
            section = &section.children[i];
        }
        section
    }

    fn section_mut(&mut self, block: Block, path: &[usize]) -> &mut Section {
        let mut section = match block {
            Block::Global => &mut self.config.root,
            Block::Filter(i) => &mut self.config.filters[i].root,
        };
        for &i in path {
            section = &mut section.children[i];
        }
        section
    }

    /// Keywords of the open (non-filter) sections, outermost first, for
    /// "Unknown setting" messages.
    fn chain(&self) -> Vec<&'static str> {
        let top = self.top();
        let mut words = Vec::new();
        let mut section = match top.block {
            Block::Global => &self.config.root,
            Block::Filter(i) => &self.config.filters[i].root,
        };
        for &i in &top.path {
            section = &section.children[i];
            words.push(section.kind.keyword());
        }
        words
    }

    fn begin_section(&mut self, word: &str, name: &str, opened_at: String) -> Result<(), String> {
        let top = self.top().clone();
        let parent_kind = self.section(top.block, &top.path).kind;
        if parent_kind.is_string_list() || top.setting_block.is_some() {
            return Err("Section not allowed here".to_owned());
        }
        if matches!(word, "protocol" | "local" | "local_name" | "remote") {
            return self.begin_filter(&top, word, name, opened_at);
        }
        if name.is_empty() {
            self.unnamed_counter += 1;
        }
        let Some(kind) = parent_kind.child(word) else {
            if let Some(def) = parent_kind.def(word) {
                // Dovecot accepts `setting name {` and sets the setting to the
                // (escaped) name, or to the unnamed-block counter.
                let text = if name.is_empty() {
                    (self.unnamed_counter - 1).to_string()
                } else {
                    section_escape(name)
                };
                let value = Value::parse(def.kind, &text)?;
                self.section_mut(top.block, &top.path).set_value(def, value);
                self.stack.push(Frame { setting_block: Some(word.to_owned()), opened_at, ..top });
                return Ok(());
            }
            let mut words = self.chain();
            words.push(word);
            return Err(format!("Unknown setting: {} {{ {word}", words.join(" { ")));
        };
        let parent = self.section_mut(top.block, &top.path);
        let existing = if kind.is_string_list() {
            // All `plugin {}` blocks fill one list of strings.
            parent.children.iter().position(|c| c.kind == kind)
        } else if kind.unique_key().is_some() && !name.is_empty() {
            parent.children.iter().position(|c| c.kind == kind && c.name == name)
        } else {
            None
        };
        let index = match existing {
            Some(i) => i,
            None => {
                let mut child = Section::new(kind, name, opened_at.clone());
                if kind.unique_key().is_none() && !name.is_empty() {
                    // `passdb foo {` names the block through its `name` field.
                    if let Some(def) = kind.def("name") {
                        child.set_value(def, Value::Str(name.to_owned()));
                    }
                }
                parent.children.push(child);
                parent.children.len() - 1
            }
        };
        let mut path = top.path.clone();
        path.push(index);
        self.stack.push(Frame {
            block: top.block,
            path,
            setting_block: None,
            filter: top.filter.clone(),
            opened_at,
        });
        Ok(())
    }

    fn begin_filter(&mut self, top: &Frame, word: &str, name: &str, opened_at: String) -> Result<(), String> {
        let parent = &top.filter;
        let mut filter = parent.clone();
        // Filters nest in this order only: local, local_name, remote, protocol.
        let rank = |w: &str| match w {
            "local" => 0,
            "local_name" => 1,
            "remote" => 2,
            _ => 3,
        };
        let present: Vec<&str> = [
            parent.local.as_ref().map(|_| "local"),
            parent.local_name.as_ref().map(|_| "local_name"),
            parent.remote.as_ref().map(|_| "remote"),
            parent.protocol.as_ref().map(|_| "protocol"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if present.contains(&word) && word != "local" && word != "remote" {
            return Err(format!("Nested {word} {{ {word} {{ .. }} }} block not allowed"));
        }
        if let Some(outer) = present.iter().rev().find(|p| rank(p) > rank(word)) {
            return Err(format!(
                "{outer} {{ {word} {{ .. }} }} not allowed (use {word} {{ {outer} {{ .. }} }} instead)"
            ));
        }
        match word {
            "protocol" => filter.protocol = Some(name.to_owned()),
            "local_name" => filter.local_name = Some(name.to_owned()),
            "local" | "remote" => {
                let net = parse_net(name)?;
                let outer = if word == "local" { &parent.local } else { &parent.remote };
                if let Some(outer) = outer {
                    if outer.bits > net.bits || !outer.contains(&net.addr) {
                        return Err(format!("{word} not a subset of parent {word}"));
                    }
                }
                if word == "local" {
                    filter.local = Some(net);
                } else {
                    filter.remote = Some(net);
                }
            }
            _ => {}
        }
        let index = match self.config.filters.iter().position(|b| b.filter == filter) {
            Some(i) => i,
            None => {
                self.config.filters.push(FilterBlock {
                    filter: filter.clone(),
                    root: Section::new(SectionKind::Root, "", opened_at.clone()),
                });
                self.config.filters.len() - 1
            }
        };
        // A filter opened inside a block (`service imap { protocol imap {`)
        // applies to that same block: Dovecot turns it inside out.
        let chain: Vec<(SectionKind, String)> = {
            let mut section = self.section(top.block, &[]);
            top.path
                .iter()
                .map(|&i| {
                    section = &section.children[i];
                    (section.kind, section.name.clone())
                })
                .collect()
        };
        let mut path = Vec::new();
        let mut section = &mut self.config.filters[index].root;
        for (kind, name) in chain {
            let i = match section.children.iter().position(|c| c.kind == kind && c.name == name) {
                Some(i) => i,
                None => {
                    section.children.push(Section::new(kind, &name, opened_at.clone()));
                    section.children.len() - 1
                }
            };
            path.push(i);
            section = &mut section.children[i];
        }
        self.stack.push(Frame { block: Block::Filter(index), path, setting_block: None, filter, opened_at });
        Ok(())
    }

    fn apply_obsolete(
        &mut self,
        old: &obsolete::Obsolete,
        raw: RawValue,
        position: &str,
        top: &Frame,
    ) -> Result<(), String> {
        self.config
            .warnings
            .push(format!("Warning: Obsolete setting in {position}: {} {}", old.name, old.message));
        self.obsolete_seen = true;
        let text = match raw {
            RawValue::Plain(t) | RawValue::Quoted(t) => t,
            RawValue::File(p) => format!("<{p}"),
        };
        let set_field = |section: &mut Section, field: &str, value: &str| -> Result<(), String> {
            if let Some(def) = section.kind.def(field) {
                let value = Value::parse(def.kind, value)?;
                section.set_value(def, value);
            }
            Ok(())
        };
        match &old.replacement {
            obsolete::Replacement::Dropped => Ok(()),
            obsolete::Replacement::Global { name, map } => {
                set_field(self.section_mut(top.block, &top.path), name, &map(&text))
            }
            obsolete::Replacement::Plugin { key } => {
                let root = self.section_mut(top.block, &top.path);
                let index = match root.children.iter().position(|c| c.kind == SectionKind::Plugin) {
                    Some(i) => i,
                    None => {
                        root.children.push(Section::new(SectionKind::Plugin, "", position.to_owned()));
                        root.children.len() - 1
                    }
                };
                root.children[index].set_string(key, text);
                Ok(())
            }
            obsolete::Replacement::Services { services, field, map } => {
                let value = map(&text);
                for service in self.config.root.children.iter_mut() {
                    if service.kind == SectionKind::Service && services.contains(&service.name.as_str()) {
                        set_field(service, field, &value)?;
                    }
                }
                Ok(())
            }
            obsolete::Replacement::SslMinProtocol => match obsolete::min_protocol_from_list(&text) {
                Ok(min) => set_field(self.section_mut(top.block, &top.path), "ssl_min_protocol", min),
                Err(why) => {
                    // Dovecot reports this as an error but keeps going.
                    self.config.warnings.push(format!(
                        "Error: Could not find a minimum ssl_min_protocol setting from ssl_protocols = {text}: {why}"
                    ));
                    Ok(())
                }
            },
            obsolete::Replacement::SslListenAddress => {
                for service in self.config.root.children.iter_mut() {
                    if service.kind != SectionKind::Service || !service.name.ends_with("-login") {
                        continue;
                    }
                    for listener in service.children.iter_mut() {
                        if listener.kind == SectionKind::InetListener && listener.bool("ssl") {
                            set_field(listener, "address", &text)?;
                        }
                    }
                }
                Ok(())
            }
        }
    }

    fn assign(&mut self, key: &str, raw: RawValue, dir_prefix: &str, position: &str) -> Result<(), String> {
        let top = self.top().clone();
        if let Some(word) = &top.setting_block {
            let mut words = self.chain();
            words.push(word);
            words.push(key);
            return Err(format!("Unknown setting: {}", words.join(" { ")));
        }
        let kind = self.section(top.block, &top.path).kind;
        if kind.is_string_list() {
            let text = match raw {
                RawValue::Plain(t) => self.expand_variables(key, &t, None, &top)?,
                RawValue::Quoted(t) => t,
                RawValue::File(p) => self.file_value(key, &p, dir_prefix)?,
            };
            self.section_mut(top.block, &top.path).set_string(key, text);
            return Ok(());
        }
        if kind.unique_key() == Some(key) {
            // `name = x` inside `service y {}` renames the block, as in Dovecot.
            let text = match raw {
                RawValue::Plain(t) | RawValue::Quoted(t) => t,
                RawValue::File(p) => format!("<{p}"),
            };
            self.section_mut(top.block, &top.path).name = text;
            return Ok(());
        }
        if top.block != Block::Global && top.path.is_empty() && key.starts_with("auth_") {
            let filter = &top.filter;
            if filter.local.is_some() || filter.remote.is_some() {
                return Err(format!("Auth settings not supported inside local/remote blocks: {key}"));
            }
        }
        if kind == SectionKind::Root && kind.def(key).is_none() {
            if let Some(old) = obsolete::find(key) {
                return self.apply_obsolete(old, raw, position, &top);
            }
        }
        let Some(def) = kind.def(key) else {
            let mut words = self.chain();
            words.push(key);
            return Err(format!("Unknown setting: {}", words.join(" { ")));
        };
        let text = match raw {
            RawValue::Plain(t) => self.expand_variables(key, &t, Some(def), &top)?,
            RawValue::Quoted(t) => t,
            RawValue::File(p) => self.file_value(key, &p, dir_prefix)?,
        };
        let value = if def.name == "auth_cache_size"
            && !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
        {
            // 2.3 still reads a bare auth_cache_size as megabytes, with a warning.
            self.config.warnings.push(format!(
                "Warning: Obsolete setting in {position}: auth_cache_size value no longer defaults to megabytes. Use {text}M"
            ));
            self.obsolete_seen = true;
            Value::parse(def.kind, &format!("{text}M"))?
        } else {
            Value::parse(def.kind, &text)?
        };
        self.section_mut(top.block, &top.path).set_value(def, value);
        Ok(())
    }

    fn file_value(&self, key: &str, path: &str, dir_prefix: &str) -> Result<String, String> {
        if !self.options.expand_values {
            return Ok(format!("<{path}"));
        }
        let full = if path.starts_with('/') { path.to_owned() } else { format!("{dir_prefix}{path}") };
        std::fs::read(&full)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|e| format!("{key}: Can't open file {full}: {}", os_error_text(&e)))
    }

    /// Replaces `$name` words (at the start of the value or after a space).
    fn expand_variables(
        &self,
        key: &str,
        text: &str,
        def: Option<&'static SettingDef>,
        frame: &Frame,
    ) -> Result<String, String> {
        if !text.contains('$') {
            return Ok(text.to_owned());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut at_word_start = true;
        while let Some(c) = rest.chars().next() {
            if c == '$' && at_word_start {
                let end = rest.find([' ', '\t']).unwrap_or(rest.len());
                let name = &rest[1..end];
                match self.variable(key, name, def, frame)? {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(&rest[..end]),
                }
                rest = &rest[end..];
                at_word_start = false;
                continue;
            }
            at_word_start = c == ' ' || c == '\t';
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        Ok(out)
    }

    /// The text a `$name` reference stands for; `None` to keep it literally.
    fn variable(
        &self,
        key: &str,
        name: &str,
        def: Option<&'static SettingDef>,
        frame: &Frame,
    ) -> Result<Option<String>, String> {
        let section = self.section(frame.block, &frame.path);
        if name == key {
            if section.kind.is_string_list() {
                return Ok(Some(section.plugin_value(key).unwrap_or_default().to_owned()));
            }
            let Some(def) = def else { return Ok(None) };
            // `key = $key more` extends the value in force here: this
            // block's own if it set one, else the global one.
            let value = if section.is_set(def.name) || frame.block == Block::Global || !frame.path.is_empty()
            {
                section.value(def.name)
            } else {
                self.config.root.value(def.name)
            };
            return Ok(Some(value.map(|v| v.display()).unwrap_or_default()));
        }
        if !self.options.expand_values {
            return Ok(None);
        }
        if let Some(env) = name.strip_prefix("ENV:") {
            return Ok(Some(std::env::var(env).unwrap_or_default()));
        }
        if let Some(v) = section.value(name) {
            return Ok(Some(v.display()));
        }
        if let Some(v) = self.config.root.value(name) {
            return Ok(Some(v.display()));
        }
        Err(format!("Unknown variable: ${name}"))
    }
}

/// Parses `ip[/bits]` or a host name, as in `local 10.0.0.0/8 {`.
fn parse_net(text: &str) -> Result<Net, String> {
    let (host, bits) = match text.split_once('/') {
        Some((h, b)) => (h, Some(b)),
        None => (text, None),
    };
    let addr: IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) => (host, 0)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .map(|a| a.ip())
            .ok_or_else(|| format!("gethostbyname({host}) failed: Name or service not known"))?,
    };
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        None => max,
        Some(b) => match b.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("Invalid network mask: {b}")),
        },
    };
    Ok(Net { addr, bits })
}

/// Puts filter blocks in the order Dovecot prints and applies them: the least
/// specific first (protocol-only, then by remote and local prefix length,
/// `local_name` blocks last), keeping file order among equals.
fn sort_filters(filters: &mut [FilterBlock]) {
    filters.sort_by_key(|b| {
        let f = &b.filter;
        (
            f.local_name.is_some(),
            f.local.as_ref().map_or(0, |n| n.bits),
            f.remote.as_ref().map_or(0, |n| n.bits),
            f.protocol.is_some(),
        )
    });
}
