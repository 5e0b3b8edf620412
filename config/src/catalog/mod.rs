//! The catalog of every setting Dovecot 2.3 knows: name, value type and default.
//!
//! `defs.rs` is generated data (see `config/tools/gen_catalog.py`): one table per
//! kind of block (global, `service`, listeners, `namespace`, `mailbox`, `passdb`,
//! `userdb`) plus the default services with their listeners. Everything that
//! validates, defaults or prints a setting looks it up here.

mod defs;

pub use defs::*;

/// How a setting's value is parsed, compared with its default and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `yes` / `no`.
    Bool,
    /// Unsigned decimal number.
    Uint,
    /// Unsigned number printed in octal with a leading `0` (file modes).
    Octal,
    /// Byte size with an optional unit (`B`, `k`, `M`, `G`, `T`).
    Size,
    /// Time interval in seconds with an optional unit (`secs`, `mins`, ...).
    Time,
    /// Time interval in milliseconds with an optional unit.
    TimeMsecs,
    /// TCP port (0–65535).
    Port,
    /// Free text, no `%` variables.
    Str,
    /// Free text that may carry `%` variables, expanded by the consumer.
    StrVars,
    /// One of a fixed list; the first entry is the default.
    Enum(&'static [&'static str]),
}

/// One setting: its name, how it is typed, and its default as `doveconf -a` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingDef {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
}

impl SettingDef {
    pub const fn new(name: &'static str, kind: Kind, default: &'static str) -> Self {
        SettingDef { name, kind, default }
    }
}

/// Which kind of listener block a default listener is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Unix,
    Fifo,
    Inet,
}

/// A listener a default service brings with it. `name` is the path for unix and
/// fifo listeners and the (possibly empty) name for inet ones; `values` lists the
/// fields that differ from the generic listener defaults.
#[derive(Debug, Clone, Copy)]
pub struct DefaultListener {
    pub kind: ListenerKind,
    pub name: &'static str,
    pub values: &'static [(&'static str, &'static str)],
}

/// A service Dovecot 2.3 defines without any configuration (`doveconf -d`);
/// `values` lists the fields that differ from the generic `SERVICE` defaults.
#[derive(Debug, Clone, Copy)]
pub struct DefaultService {
    pub name: &'static str,
    pub values: &'static [(&'static str, &'static str)],
    pub listeners: &'static [DefaultListener],
}
