//! `RETURN (…)` of SEARCH and SORT and the `* ESEARCH` answer: ESEARCH
//! (RFC 4731), ESORT (RFC 5267: the same options on SORT, in sort order),
//! PARTIAL and CONTEXT of RFC 5267 §4 (UPDATE is not implemented, so
//! CONTEXT=SEARCH is not advertised and UPDATE is an unknown option), SAVE
//! of SEARCHRES (RFC 5182). Dovecot's rules: the result is a list of
//! ranges in result order, MIN/MAX are its first and last numbers, items
//! go out as MIN MAX ALL PARTIAL COUNT MODSEQ, and with only MIN/MAX asked
//! SAVE and MODSEQ see only those two messages.

use dovecote_mailproc::imap::args::Arg;

/// The options of one command.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReturnOptions {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    pub save: bool,
    /// 1-based positions in the result, low first.
    pub partial: Option<(u32, u32)>,
}

/// A matching message in result order: (number shown, UID, modseq).
pub type Hit = (u32, u32, u64);

impl ReturnOptions {
    /// `RETURN (options)` at the front of `args`: the options and how
    /// many arguments they took, `None` when absent (RETURN without a
    /// list is not one, as in Dovecot). `Err` is the BAD text.
    pub fn parse(args: &[Arg]) -> Result<Option<(ReturnOptions, usize)>, String> {
        let is_return = args.first().and_then(Arg::as_atom).is_some_and(|a| a.eq_ignore_ascii_case("RETURN"));
        let Some(Arg::List(items)) = args.get(1).filter(|_| is_return) else { return Ok(None) };
        let mut o = ReturnOptions::default();
        let mut i = 0;
        while i < items.len() {
            let Some(name) = items[i].as_atom().map(str::to_ascii_uppercase) else {
                return Err("SEARCH return options contain non-atoms".into());
            };
            i += 1;
            match name.as_str() {
                "MIN" => o.min = true,
                "MAX" => o.max = true,
                "ALL" => o.all = true,
                "COUNT" => o.count = true,
                "SAVE" => o.save = true,
                // A hint for servers that keep contexts: nothing to do.
                "CONTEXT" => {}
                "PARTIAL" => {
                    if o.partial.is_some() {
                        return Err("PARTIAL can be used only once".into());
                    }
                    let Some(range) = items.get(i).and_then(Arg::as_atom) else {
                        return Err("PARTIAL range missing".into());
                    };
                    o.partial = Some(parse_partial(range).ok_or("PARTIAL range broken")?);
                    i += 1;
                }
                _ => return Err("Unknown SEARCH return option".into()),
            }
        }
        if o.partial.is_some() && o.all {
            return Err("PARTIAL conflicts with ALL".into());
        }
        if o == ReturnOptions::default() {
            o.all = true;
        }
        Ok(Some((o, 2)))
    }

    /// Only MIN and/or MAX (and SAVE): Dovecot then saves and reports the
    /// modseq of those messages alone.
    fn min_max_only(&self) -> bool {
        (self.min || self.max) && !self.all && !self.count && self.partial.is_none()
    }

    /// The `* ESEARCH` line (none for SAVE alone) and the saved result.
    /// `modseq`: the search used MODSEQ, report the highest one.
    pub fn respond(
        &self,
        tag: &str,
        uid: bool,
        hits: &[Hit],
        modseq: bool,
        saved: &mut Option<Vec<u32>>,
    ) -> Option<String> {
        let considered: Vec<&Hit> = match (self.min_max_only(), hits.first(), hits.last()) {
            (true, Some(first), Some(last)) => {
                let mut v = Vec::new();
                if self.min {
                    v.push(first);
                }
                if self.max {
                    v.push(last);
                }
                v
            }
            _ => hits.iter().collect(),
        };
        if self.save {
            let mut uids: Vec<u32> = considered.iter().map(|h| h.1).collect();
            uids.sort_unstable();
            uids.dedup();
            *saved = Some(uids);
        }
        if !(self.min || self.max || self.all || self.count || self.partial.is_some()) {
            return None;
        }
        let mut line = format!("* ESEARCH (TAG \"{tag}\")");
        if uid {
            line.push_str(" UID");
        }
        let ids: Vec<u32> = hits.iter().map(|h| h.0).collect();
        if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
            if self.min {
                line.push_str(&format!(" MIN {first}"));
            }
            if self.max {
                line.push_str(&format!(" MAX {last}"));
            }
            if self.all {
                line.push_str(&format!(" ALL {}", ranges(&ids)));
            }
        }
        if let Some((low, high)) = self.partial {
            let from = (low as usize - 1).min(ids.len());
            let to = (high as usize).min(ids.len());
            let part = if from < to { ranges(&ids[from..to]) } else { "NIL".into() };
            line.push_str(&format!(" PARTIAL ({low}:{high} {part})"));
        }
        if self.count {
            line.push_str(&format!(" COUNT {}", hits.len()));
        }
        if let Some(m) = considered.iter().map(|h| h.2).max().filter(|m| modseq && *m > 0) {
            line.push_str(&format!(" MODSEQ {m}"));
        }
        line.push_str("\r\n");
        Some(line)
    }
}

/// `n:m` with both ends ≥ 1, either order.
fn parse_partial(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return None;
    }
    let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
    if a == 0 || b == 0 {
        return None;
    }
    Some((a.min(b), a.max(b)))
}

/// Numbers in result order as Dovecot writes them: runs of consecutive
/// ascending numbers as `a:b`, the rest comma-separated.
pub fn ranges(ids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && end.checked_add(1) == Some(ids[i + 1]) {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(text: &[&str]) -> Result<Option<(ReturnOptions, usize)>, String> {
        let items = text.iter().map(|t| Arg::Atom((*t).into())).collect();
        ReturnOptions::parse(&[Arg::Atom("RETURN".into()), Arg::List(items)])
    }

    #[test]
    fn options_and_dovecots_errors() {
        let (o, n) = opts(&[]).unwrap().unwrap();
        assert!(o.all && n == 2);
        let (o, _) = opts(&["PARTIAL", "5:2", "count"]).unwrap().unwrap();
        assert_eq!((o.partial, o.count, o.all), (Some((2, 5)), true, false));
        assert_eq!(opts(&["FOO"]), Err("Unknown SEARCH return option".into()));
        assert_eq!(opts(&["UPDATE"]), Err("Unknown SEARCH return option".into()));
        assert_eq!(opts(&["PARTIAL", "0:2"]), Err("PARTIAL range broken".into()));
        assert_eq!(opts(&["PARTIAL", "-1:-2"]), Err("PARTIAL range broken".into()));
        assert_eq!(opts(&["PARTIAL"]), Err("PARTIAL range missing".into()));
        assert_eq!(opts(&["PARTIAL", "1:2", "ALL"]), Err("PARTIAL conflicts with ALL".into()));
        assert_eq!(opts(&["PARTIAL", "1:2", "PARTIAL", "1:2"]), Err("PARTIAL can be used only once".into()));
        // RETURN without a list is no RETURN.
        assert_eq!(ReturnOptions::parse(&[Arg::Atom("RETURN".into()), Arg::Atom("MIN".into())]), Ok(None));
    }

    #[test]
    fn answers_in_dovecots_order() {
        // Dovecot 2.3.19: SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) …
        let hits: Vec<Hit> = [2, 6, 4, 1, 5, 3].iter().map(|&n| (n, n, 1)).collect();
        let (o, _) = opts(&["MIN", "MAX", "COUNT", "ALL"]).unwrap().unwrap();
        let mut saved = None;
        assert_eq!(
            o.respond("o1", false, &hits, false, &mut saved).unwrap(),
            "* ESEARCH (TAG \"o1\") MIN 2 MAX 3 ALL 2,6,4,1,5,3 COUNT 6\r\n"
        );
        let (o, _) = opts(&["PARTIAL", "1:2"]).unwrap().unwrap();
        assert_eq!(
            o.respond("o8", true, &hits, false, &mut saved).unwrap(),
            "* ESEARCH (TAG \"o8\") UID PARTIAL (1:2 2,6)\r\n"
        );
        let (o, _) = opts(&["PARTIAL", "10:20"]).unwrap().unwrap();
        assert!(o
            .respond("x", false, &hits, false, &mut saved)
            .unwrap()
            .ends_with("PARTIAL (10:20 NIL)\r\n"));
        let (o, _) = opts(&["MIN", "MAX", "ALL", "COUNT"]).unwrap().unwrap();
        assert_eq!(
            o.respond("e", false, &[], true, &mut saved).unwrap(),
            "* ESEARCH (TAG \"e\") COUNT 0\r\n"
        );
        // SAVE alone answers nothing; with MIN only the minimum is saved.
        let (o, _) = opts(&["SAVE"]).unwrap().unwrap();
        assert_eq!(o.respond("s", false, &hits, false, &mut saved), None);
        assert_eq!(saved, Some(vec![1, 2, 3, 4, 5, 6]));
        let (o, _) = opts(&["SAVE", "MIN"]).unwrap().unwrap();
        o.respond("s", false, &hits, false, &mut saved);
        assert_eq!(saved, Some(vec![2]));
        assert_eq!(ranges(&[1, 2, 3, 5, 7, 8, 4]), "1:3,5,7:8,4");
    }
}
