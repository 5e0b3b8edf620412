//! `dovecot-uidlist` (sans-IO), Dovecot 2.3's version 3 format:
//!
//! ```text
//! 3 V<uidvalidity> N<next uid> G<mailbox guid>
//! <uid> [<ext key><value> ...] :<file base name>
//! ```
//!
//! Records are in ascending UID order; new records may be appended after
//! the header without rewriting it, so the next UID is the larger of `N`
//! and the last UID + 1. Version 1 (`1 <uidvalidity> <next uid>`, records
//! `<uid> <name>`) is read too.

use std::collections::BTreeMap;

/// A parsed uidlist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Uidlist {
    pub uid_validity: u32,
    pub next_uid: u32,
    pub guid: Option<String>,
    /// Header extensions we do not interpret, kept for rewriting.
    pub other_header: Vec<String>,
    /// uid → (ext fields, base name).
    pub records: BTreeMap<u32, (String, String)>,
}

impl Uidlist {
    pub fn parse(text: &str) -> Result<Uidlist, String> {
        let mut lines = text.lines();
        let header = lines.next().ok_or("empty file")?;
        let mut list = Uidlist::default();
        let (version, rest) = header.split_once(' ').ok_or("bad header")?;
        let v3 = match version {
            "3" => {
                for field in rest.split(' ').filter(|f| !f.is_empty()) {
                    let (key, value) = field.split_at(1);
                    match key {
                        "V" => list.uid_validity = value.parse().map_err(|_| "bad V")?,
                        "N" => list.next_uid = value.parse().map_err(|_| "bad N")?,
                        "G" => list.guid = Some(value.to_string()),
                        _ => list.other_header.push(field.to_string()),
                    }
                }
                true
            }
            "1" => {
                let mut it = rest.split(' ');
                list.uid_validity = it.next().and_then(|v| v.parse().ok()).ok_or("bad uidvalidity")?;
                list.next_uid = it.next().and_then(|v| v.parse().ok()).ok_or("bad next uid")?;
                false
            }
            other => return Err(format!("unsupported version {other}")),
        };
        let mut last = 0;
        for line in lines {
            if line.is_empty() {
                continue;
            }
            let (uid, rest) = line.split_once(' ').ok_or_else(|| format!("bad record '{line}'"))?;
            let uid: u32 = uid.parse().map_err(|_| format!("bad UID in '{line}'"))?;
            if uid <= last {
                return Err(format!("UIDs not ascending at {uid}"));
            }
            last = uid;
            let (ext, name) = if v3 {
                let pos = rest.find(':').ok_or_else(|| format!("no file name in '{line}'"))?;
                (rest[..pos].trim_end().to_string(), rest[pos + 1..].to_string())
            } else {
                (String::new(), rest.to_string())
            };
            list.records.insert(uid, (ext, name));
        }
        list.next_uid = list.next_uid.max(last + 1);
        Ok(list)
    }

    /// The header line.
    pub fn header(&self) -> String {
        let mut out = format!("3 V{} N{}", self.uid_validity, self.next_uid);
        if let Some(guid) = &self.guid {
            out.push_str(&format!(" G{guid}"));
        }
        for other in &self.other_header {
            out.push(' ');
            out.push_str(other);
        }
        out.push('\n');
        out
    }

    /// One record line.
    pub fn record_line(uid: u32, ext: &str, base: &str) -> String {
        if ext.is_empty() {
            format!("{uid} :{base}\n")
        } else {
            format!("{uid} {ext} :{base}\n")
        }
    }

    /// The whole file.
    pub fn format(&self) -> String {
        let mut out = self.header();
        for (uid, (ext, base)) in &self.records {
            out.push_str(&Uidlist::record_line(*uid, ext, base));
        }
        out
    }

    /// base name → uid.
    pub fn by_name(&self) -> std::collections::HashMap<&str, u32> {
        self.records.iter().map(|(uid, (_, name))| (name.as_str(), *uid)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dovecot_written() {
        let text = "3 V1795570192 N4 G385ae80b103a066b1d50000083ecc375\n1 :1795570192.M199360P20509.vm,S=30,W=34\n2 W34 :b\n5 :c\n";
        let list = Uidlist::parse(text).unwrap();
        assert_eq!(list.uid_validity, 1795570192);
        assert_eq!(list.next_uid, 6);
        assert_eq!(list.records[&2], ("W34".to_string(), "b".to_string()));
        let again = Uidlist::parse(&list.format()).unwrap();
        assert_eq!(again, list);
        let v1 = Uidlist::parse("1 100 3\n1 a\n2 b\n").unwrap();
        assert_eq!((v1.uid_validity, v1.next_uid, v1.records.len()), (100, 3, 2));
        assert!(Uidlist::parse("3 V1 N2\n2 :a\n1 :b\n").is_err());
    }
}
