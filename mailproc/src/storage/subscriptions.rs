//! The `subscriptions` file (sans-IO codec), Dovecot 2.3 version 2:
//! `V\t2\n\n` then one mailbox per line, hierarchy levels separated by a
//! tab so the file does not depend on the namespace separator.

/// Parses the file into names as lists of hierarchy levels.
pub fn parse(text: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines();
    let mut out = Vec::new();
    let mut first = lines.next();
    if first.is_some_and(|l| l.starts_with("V\t")) {
        // Version header, then an empty line.
        if lines.clone().next() == Some("") {
            lines.next();
        }
        first = None;
    }
    for line in first.into_iter().chain(lines) {
        if !line.is_empty() {
            out.push(line.split('\t').map(str::to_string).collect());
        }
    }
    out
}

/// Formats names (lists of levels).
pub fn format(names: &[Vec<String>]) -> String {
    let mut out = String::from("V\t2\n\n");
    for n in names {
        out.push_str(&n.join("\t"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn dovecot_file() {
        let names = super::parse("V\t2\n\nSent\na\tb\nEntw&APw-rfe\n");
        assert_eq!(
            names,
            vec![vec!["Sent".to_string()], vec!["a".into(), "b".into()], vec!["Entw&APw-rfe".into()]]
        );
        assert_eq!(super::format(&names), "V\t2\n\nSent\na\tb\nEntw&APw-rfe\n");
        assert_eq!(super::parse("old\nstyle\n").len(), 2);
    }
}
