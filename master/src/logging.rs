//! The child side of logging: a slog drain that writes each record as one
//! [`LogLine`] to fd 2 (the log pipe), in a single write so lines of
//! different processes never interleave. Keys `user` and `session` become
//! the `service(user)<pid><session>: ` prefix the master writes; other
//! keys are appended as `key=value`.

use std::fmt::Write as _;
use std::io::Write as _;

use slog::{Drain, Key, OwnedKVList, Record, Serializer, KV};

use crate::contract::{Level, LogLine};

/// Writes records to the process's fd 2.
pub struct PipeDrain {
    _private: (),
}

impl PipeDrain {
    pub fn stderr() -> PipeDrain {
        PipeDrain { _private: () }
    }
}

#[derive(Default)]
struct Fields {
    user: Option<String>,
    session: Option<String>,
    rest: String,
}

impl Serializer for Fields {
    fn emit_arguments(&mut self, key: Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        match key {
            "user" => self.user = Some(val.to_string()),
            "session" => self.session = Some(val.to_string()),
            _ => {
                let _ = write!(self.rest, ", {key}={val}");
            }
        }
        Ok(())
    }
}

fn level(l: slog::Level) -> Level {
    match l {
        slog::Level::Critical => Level::Fatal,
        slog::Level::Error => Level::Error,
        slog::Level::Warning => Level::Warning,
        slog::Level::Info => Level::Info,
        slog::Level::Debug | slog::Level::Trace => Level::Debug,
    }
}

impl Drain for PipeDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut fields = Fields::default();
        let _ = values.serialize(record, &mut fields);
        let _ = record.kv().serialize(record, &mut fields);
        let line = LogLine {
            level: level(record.level()),
            user: fields.user,
            session: fields.session,
            text: format!("{}{}", record.msg(), fields.rest),
        };
        let _ = std::io::stderr().lock().write_all(line.to_line().as_bytes());
        Ok(())
    }
}
