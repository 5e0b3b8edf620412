//! IMAP SORT (RFC 5256) and SORT=DISPLAY (RFC 5957): criteria parsed with
//! Dovecot's error texts, messages ordered key by key with ties broken by
//! sequence number (REVERSE flips only its own key). Strings compare in
//! comparison form; the Date: header falls back to INTERNALDATE.

use std::cmp::Ordering;

use super::args::Arg;
use super::envelope::Envelope;
use super::message::SearchMessage;
use super::search::SearchError;
use super::{address::Address, date, subject, text};

/// One sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

/// A sort program: keys in order, each possibly reversed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortCriteria {
    pub keys: Vec<(SortKey, bool)>,
}

fn bad(message: &str) -> SearchError {
    SearchError::Bad { command: "SORT", message: message.to_string() }
}

impl SortCriteria {
    /// Parses the contents of the sort-criteria list.
    pub fn parse(args: &[Arg]) -> Result<SortCriteria, SearchError> {
        let mut keys = Vec::new();
        let mut reverse = false;
        for a in args {
            let Some(atom) = a.as_atom() else { return Err(bad("Invalid sort argument")) };
            let key = match atom.to_ascii_uppercase().as_str() {
                "REVERSE" => {
                    reverse = !reverse;
                    continue;
                }
                "ARRIVAL" => SortKey::Arrival,
                "CC" => SortKey::Cc,
                "DATE" => SortKey::Date,
                "FROM" => SortKey::From,
                "SIZE" => SortKey::Size,
                "SUBJECT" => SortKey::Subject,
                "TO" => SortKey::To,
                "DISPLAYFROM" => SortKey::DisplayFrom,
                "DISPLAYTO" => SortKey::DisplayTo,
                other => return Err(bad(&format!("Unknown sort argument: {other}"))),
            };
            keys.push((key, reverse));
            reverse = false;
        }
        if reverse {
            return Err(bad("Sort list ends with REVERSE"));
        }
        if keys.is_empty() {
            return Err(bad("Empty sort program"));
        }
        Ok(SortCriteria { keys })
    }

    /// Parses the SORT command's criteria argument (which must be a list).
    pub fn parse_arg(arg: &Arg) -> Result<SortCriteria, SearchError> {
        match arg {
            Arg::List(items) => SortCriteria::parse(items),
            _ => Err(bad("Invalid sort argument")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Num(i64),
    Text(String),
}

/// The sent date used for sorting and threading: Date: in UTC, or
/// INTERNALDATE when it is missing or unparsable.
pub fn sent_date(env: &Envelope, msg: &mut dyn SearchMessage) -> i64 {
    env.date.as_deref().and_then(date::parse_rfc822_date).map_or_else(|| msg.internal_date().0, |(ts, _)| ts)
}

fn first_mailbox(list: &[Address]) -> String {
    let mailbox = list.first().and_then(|a| a.mailbox.as_deref()).unwrap_or_default();
    text::fold(&text::decode_header(mailbox))
}

fn first_display(list: &[Address]) -> String {
    let Some(a) = list.first() else { return String::new() };
    if let Some(name) = a.name.as_deref().filter(|n| !n.is_empty()) {
        return text::fold(&text::decode_header(name));
    }
    let mut spec = a.mailbox.clone().unwrap_or_default();
    if let Some(d) = &a.domain {
        spec.push(b'@');
        spec.extend_from_slice(d);
    }
    text::fold(&String::from_utf8_lossy(&spec))
}

fn value(key: SortKey, env: &Envelope, msg: &mut dyn SearchMessage) -> Value {
    match key {
        SortKey::Arrival => Value::Num(msg.internal_date().0),
        SortKey::Size => Value::Num(i64::try_from(msg.size()).unwrap_or(i64::MAX)),
        SortKey::Date => Value::Num(sent_date(env, msg)),
        SortKey::Subject => {
            Value::Text(env.subject.as_deref().map(|s| subject::base_subject(s).0).unwrap_or_default())
        }
        SortKey::From => Value::Text(first_mailbox(&env.from)),
        SortKey::To => Value::Text(first_mailbox(&env.to)),
        SortKey::Cc => Value::Text(first_mailbox(&env.cc)),
        SortKey::DisplayFrom => Value::Text(first_display(&env.from)),
        SortKey::DisplayTo => Value::Text(first_display(&env.to)),
    }
}

/// The order of `msgs` under `criteria`, as indices into `msgs`.
pub fn sort(criteria: &SortCriteria, msgs: &mut [&mut dyn SearchMessage]) -> Vec<usize> {
    let needs_header = criteria.keys.iter().any(|(k, _)| !matches!(k, SortKey::Arrival | SortKey::Size));
    let rows: Vec<(u32, Vec<Value>)> = msgs
        .iter_mut()
        .map(|m| {
            let env = if needs_header { Envelope::parse(m.header()) } else { Envelope::default() };
            let values = criteria.keys.iter().map(|(k, _)| value(*k, &env, &mut **m)).collect();
            (m.seq(), values)
        })
        .collect();
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by(|&a, &b| {
        for (i, (_, reverse)) in criteria.keys.iter().enumerate() {
            let o = rows[a].1[i].cmp(&rows[b].1[i]);
            let o = if *reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        rows[a].0.cmp(&rows[b].0)
    });
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atoms(s: &str) -> Vec<Arg> {
        s.split_whitespace().map(|a| Arg::Atom(a.to_string())).collect()
    }

    #[test]
    fn criteria_errors() {
        let e = |s: &str| SortCriteria::parse(&atoms(s)).unwrap_err().to_string();
        assert_eq!(e("FOO"), "Error in IMAP command SORT: Unknown sort argument: FOO");
        assert_eq!(e(""), "Error in IMAP command SORT: Empty sort program");
        assert_eq!(e("REVERSE"), "Error in IMAP command SORT: Sort list ends with REVERSE");
        assert_eq!(
            SortCriteria::parse_arg(&Arg::Atom("SUBJECT".into())).unwrap_err().to_string(),
            "Error in IMAP command SORT: Invalid sort argument"
        );
        let c = SortCriteria::parse(&atoms("reverse date subject")).unwrap();
        assert_eq!(c.keys, [(SortKey::Date, true), (SortKey::Subject, false)]);
    }
}
