//! IMAP THREAD (RFC 5256): ORDEREDSUBJECT, REFERENCES, and Dovecot's REFS
//! (REFERENCES without subject merging, threads ordered by their newest
//! message), written as `(1 2)(3 (4)(5))` exactly as Dovecot writes it.
//! Sent dates are the Date: header in UTC, or INTERNALDATE when it is
//! missing; ties go to the lower sequence number.

use std::collections::HashMap;

use super::envelope::Envelope;
use super::header;
use super::message::SearchMessage;
use super::search::SearchError;
use super::sort::sent_date;
use super::subject;

/// What threading needs of one message.
struct Info {
    number: u32,
    seq: u32,
    date: i64,
    subject: String,
    reply: bool,
    message_id: Option<String>,
    references: Vec<String>,
}

/// Message-IDs (`<local@domain>`, without the brackets) in a header value.
pub fn message_ids(value: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = value[pos..].iter().position(|&b| b == b'<').map(|i| pos + i) {
        let Some(end) =
            value[start + 1..].iter().position(|&b| b == b'>' || b == b'<').map(|i| start + 1 + i)
        else {
            break;
        };
        if value[end] == b'<' {
            pos = end;
            continue;
        }
        let id: Vec<u8> =
            value[start + 1..end].iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        if id.contains(&b'@') {
            out.push(String::from_utf8_lossy(&id).into_owned());
        }
        pos = end + 1;
    }
    out
}

fn info(msg: &mut dyn SearchMessage, use_uid: bool) -> Info {
    let hdr = msg.header().to_vec();
    let env = Envelope::parse(&hdr);
    let fields = header::fields(&hdr);
    let date = sent_date(&env, msg);
    let (subject, reply) = env.subject.as_deref().map(subject::base_subject).unwrap_or_default();
    let message_id = env.message_id.as_deref().and_then(|v| message_ids(v).into_iter().next());
    let mut references = header::last(&fields, "References").map(message_ids).unwrap_or_default();
    if references.is_empty() {
        references =
            env.in_reply_to.as_deref().map(message_ids).unwrap_or_default().into_iter().take(1).collect();
    }
    Info {
        number: if use_uid { msg.uid() } else { msg.seq() },
        seq: msg.seq(),
        date,
        subject,
        reply,
        message_id,
        references,
    }
}

/// Threads `msgs` with `algorithm`; the THREAD response data (after
/// `* THREAD`), numbers being UIDs when `use_uid`.
pub fn thread(
    algorithm: &str,
    msgs: &mut [&mut dyn SearchMessage],
    use_uid: bool,
) -> Result<String, SearchError> {
    let algorithm = algorithm.to_ascii_uppercase();
    if !matches!(algorithm.as_str(), "ORDEREDSUBJECT" | "REFERENCES" | "REFS") {
        return Err(SearchError::Bad { command: "THREAD", message: "Unknown thread algorithm".to_string() });
    }
    let mut infos: Vec<Info> = msgs.iter_mut().map(|m| info(&mut **m, use_uid)).collect();
    infos.sort_by_key(|i| i.seq);
    Ok(match algorithm.as_str() {
        "ORDEREDSUBJECT" => ordered_subject(&infos),
        _ => {
            let mut tree = Tree::build(&infos);
            tree.finish(algorithm == "REFERENCES");
            tree.write()
        }
    })
}

fn ordered_subject(infos: &[Info]) -> String {
    let mut order: Vec<usize> = (0..infos.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&infos[a], &infos[b]);
        x.subject.cmp(&y.subject).then(x.date.cmp(&y.date)).then(x.seq.cmp(&y.seq))
    });
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match groups.last_mut() {
            Some(g) if infos[g[0]].subject == infos[i].subject => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    groups.sort_by(|a, b| {
        let (x, y) = (&infos[a[0]], &infos[b[0]]);
        x.date.cmp(&y.date).then(x.seq.cmp(&y.seq))
    });
    let mut out = String::new();
    for g in groups {
        out.push('(');
        out.push_str(&infos[g[0]].number.to_string());
        match g.len() {
            1 => {}
            2 => out.push_str(&format!(" {}", infos[g[1]].number)),
            _ => {
                out.push(' ');
                for &c in &g[1..] {
                    out.push_str(&format!("({})", infos[c].number));
                }
            }
        }
        out.push(')');
    }
    out
}

/// A node of the REFERENCES tree: a message or a dummy for a missing one.
#[derive(Debug, Clone, Default)]
struct Node {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Tree<'a> {
    infos: &'a [Info],
    nodes: Vec<Node>,
    roots: Vec<usize>,
}

impl<'a> Tree<'a> {
    /// RFC 5256 REFERENCES step 1: link messages by Message-ID,
    /// References and In-Reply-To, refusing loops.
    fn build(infos: &'a [Info]) -> Tree<'a> {
        let mut t = Tree { infos, nodes: Vec::new(), roots: Vec::new() };
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (i, info) in infos.iter().enumerate() {
            let own = match info.message_id.as_ref().and_then(|id| ids.get(id).copied()) {
                Some(n) if t.nodes[n].msg.is_none() => {
                    t.nodes[n].msg = Some(i);
                    n
                }
                existing => {
                    let n = t.new_node(Some(i));
                    if let (None, Some(id)) = (existing, &info.message_id) {
                        ids.insert(id.clone(), n);
                    }
                    n
                }
            };
            let refs: Vec<usize> = info
                .references
                .iter()
                .map(|r| match ids.get(r) {
                    Some(&n) => n,
                    None => {
                        let n = t.new_node(None);
                        ids.insert(r.clone(), n);
                        n
                    }
                })
                .collect();
            for pair in refs.windows(2) {
                let (parent, child) = (pair[0], pair[1]);
                if t.nodes[child].parent.is_none() && !t.would_loop(parent, child) {
                    t.link(parent, child);
                }
            }
            // The message's own parent is its last reference; one linked
            // earlier from another message's (possibly truncated)
            // References gives way, and without references it is a root.
            // (Dovecot breaks the old link even when the new one would
            // make a loop and isn't made.)
            if let Some(old) = t.nodes[own].parent.take() {
                t.nodes[old].children.retain(|&c| c != own);
            }
            if let Some(&parent) = refs.last() {
                if !t.would_loop(parent, own) {
                    t.link(parent, own);
                }
            }
        }
        t.roots = (0..t.nodes.len()).filter(|&n| t.nodes[n].parent.is_none()).collect();
        t
    }

    fn new_node(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Node { msg, ..Node::default() });
        self.nodes.len() - 1
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    /// Whether making `child` a child of `parent` would create a cycle.
    fn would_loop(&self, parent: usize, child: usize) -> bool {
        let mut n = Some(parent);
        while let Some(x) = n {
            if x == child {
                return true;
            }
            n = self.nodes[x].parent;
        }
        false
    }

    /// Steps 4-7: prune dummies, (REFERENCES) merge by base subject, sort.
    fn finish(&mut self, merge_subjects: bool) {
        let roots = std::mem::take(&mut self.roots);
        // REFS keeps a root dummy even with one child (it is written as
        // that child, but sorts as a dummy, ahead of same-date messages).
        self.roots = self.prune(roots, true, !merge_subjects);
        self.sort_all();
        if merge_subjects {
            self.merge_subjects();
            self.sort_all();
        } else {
            // REFS: threads ordered by their newest message; a dummy root
            // sorts before messages of the same date.
            let mut keyed: Vec<(i64, u32, usize)> =
                self.roots.iter().map(|&r| (self.newest(r), self.root_seq(r), r)).collect();
            keyed.sort_by_key(|&(d, s, _)| (d, s));
            self.roots = keyed.into_iter().map(|(_, _, r)| r).collect();
        }
    }

    fn root_seq(&self, n: usize) -> u32 {
        self.nodes[n].msg.map_or(0, |m| self.infos[m].seq)
    }

    fn newest(&self, n: usize) -> i64 {
        let own = self.nodes[n].msg.map_or(i64::MIN, |m| self.infos[m].date);
        self.nodes[n].children.iter().map(|&c| self.newest(c)).fold(own, i64::max)
    }

    fn prune(&mut self, list: Vec<usize>, at_root: bool, keep_root_dummy: bool) -> Vec<usize> {
        let mut out = Vec::new();
        for n in list {
            let children = std::mem::take(&mut self.nodes[n].children);
            let children = self.prune(children, false, false);
            for &c in &children {
                self.nodes[c].parent = Some(n);
            }
            self.nodes[n].children = children;
            let min_children = if keep_root_dummy { 1 } else { 2 };
            if self.nodes[n].msg.is_some() || (at_root && self.nodes[n].children.len() >= min_children) {
                out.push(n);
            } else {
                let children = std::mem::take(&mut self.nodes[n].children);
                for &c in &children {
                    self.nodes[c].parent = if at_root { None } else { self.nodes[n].parent };
                }
                out.extend(children);
            }
        }
        out
    }

    /// (date, seq) a node sorts by: its message, or its first child's.
    fn sort_key(&self, n: usize) -> (i64, u32) {
        match self.nodes[n].msg {
            Some(m) => (self.infos[m].date, self.infos[m].seq),
            None => self.nodes[n].children.first().map_or((i64::MAX, u32::MAX), |&c| self.sort_key(c)),
        }
    }

    fn sort_all(&mut self) {
        fn sort_node(t: &mut Tree<'_>, n: usize) {
            let children = std::mem::take(&mut t.nodes[n].children);
            for &c in &children {
                sort_node(t, c);
            }
            let mut children = children;
            children.sort_by_key(|&c| t.sort_key(c));
            t.nodes[n].children = children;
        }
        let roots = std::mem::take(&mut self.roots);
        for &r in &roots {
            sort_node(self, r);
        }
        let mut roots = roots;
        roots.sort_by_key(|&r| self.sort_key(r));
        self.roots = roots;
    }

    /// The base subject of a root (a dummy's first child's) and whether it
    /// is a reply; None for an empty base subject.
    fn subject_of(&self, n: usize) -> Option<(String, bool)> {
        let m = match self.nodes[n].msg {
            Some(m) => m,
            None => self.nodes[*self.nodes[n].children.first()?].msg?,
        };
        let info = &self.infos[m];
        (!info.subject.is_empty()).then(|| (info.subject.clone(), info.reply))
    }

    fn merge_subjects(&mut self) {
        let mut table: HashMap<String, usize> = HashMap::new();
        for &r in &self.roots {
            let Some((s, reply)) = self.subject_of(r) else { continue };
            match table.get(&s) {
                None => {
                    table.insert(s, r);
                }
                Some(&t) => {
                    let t_dummy = self.nodes[t].msg.is_none();
                    let r_dummy = self.nodes[r].msg.is_none();
                    let t_reply = self.subject_of(t).is_some_and(|(_, rep)| rep);
                    if !t_dummy && (r_dummy || (t_reply && !reply)) {
                        table.insert(s, r);
                    }
                }
            }
        }
        let roots = self.roots.clone();
        let mut removed = vec![false; self.nodes.len()];
        for r in roots {
            if removed[r] {
                continue;
            }
            let Some((s, reply)) = self.subject_of(r) else { continue };
            let Some(&t) = table.get(&s) else { continue };
            if t == r {
                continue;
            }
            let t_dummy = self.nodes[t].msg.is_none();
            let r_dummy = self.nodes[r].msg.is_none();
            let t_reply = self.subject_of(t).is_some_and(|(_, rep)| rep);
            if t_dummy && r_dummy {
                let children = std::mem::take(&mut self.nodes[r].children);
                for &c in &children {
                    self.nodes[c].parent = Some(t);
                }
                self.nodes[t].children.extend(children);
                removed[r] = true;
            } else if t_dummy || (!t_reply && reply && !r_dummy) {
                self.link(t, r);
                removed[r] = true;
            } else if r_dummy {
                self.link(r, t);
                removed[t] = true;
                table.insert(s, r);
            } else {
                let d = self.new_node(None);
                removed.push(false);
                let pos = self.roots.iter().position(|&x| x == t).unwrap_or(self.roots.len());
                self.roots.insert(pos, d);
                self.link(d, t);
                self.link(d, r);
                removed[t] = true;
                removed[r] = true;
                table.insert(s, d);
            }
        }
        self.roots.retain(|&x| !removed[x]);
    }

    fn write_node(&self, n: usize, out: &mut String) {
        let children = &self.nodes[n].children;
        match self.nodes[n].msg {
            Some(m) => {
                out.push_str(&self.infos[m].number.to_string());
                match children.len() {
                    0 => {}
                    1 => {
                        out.push(' ');
                        self.write_node(children[0], out);
                    }
                    _ => {
                        out.push(' ');
                        self.write_children(children, out);
                    }
                }
            }
            None if children.len() == 1 => self.write_node(children[0], out),
            None => self.write_children(children, out),
        }
    }

    fn write_children(&self, children: &[usize], out: &mut String) {
        for &c in children {
            out.push('(');
            self.write_node(c, out);
            out.push(')');
        }
    }

    fn write(&self) -> String {
        let mut out = String::new();
        for &r in &self.roots {
            out.push('(');
            self.write_node(r, &mut out);
            out.push(')');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infos(list: &[(&str, &[&str])]) -> Vec<Info> {
        list.iter()
            .enumerate()
            .map(|(i, (id, refs))| Info {
                number: i as u32 + 1,
                seq: i as u32 + 1,
                date: i as i64,
                subject: String::new(),
                reply: false,
                message_id: Some(id.to_string()),
                references: refs.iter().map(|r| r.to_string()).collect(),
            })
            .collect()
    }

    fn references(list: &[(&str, &[&str])]) -> String {
        let infos = infos(list);
        let mut t = Tree::build(&infos);
        t.finish(true);
        t.write()
    }

    #[test]
    fn own_references_override_links_from_other_messages() {
        // 1 claims b is a child of a; b itself says it has no parent.
        assert_eq!(references(&[("c", &["a", "b"]), ("b", &[])]), "(2 1)");
        // b's own parent would make a loop: the old link still goes.
        assert_eq!(references(&[("x", &["p", "b", "q"]), ("b", &["q"])]), "(2 1)");
        assert_eq!(references(&[("a", &[]), ("b", &["a"]), ("c", &["a"])]), "(1 (2)(3))");
        assert_eq!(references(&[("s", &["s"])]), "(1)");
    }

    #[test]
    fn message_id_extraction() {
        assert_eq!(message_ids(b"<a@x> junk <b@y>\n <c @z>"), ["a@x", "b@y", "c@z"]);
        assert_eq!(message_ids(b"<nodomain> <<d@e>"), ["d@e"]);
    }
}
