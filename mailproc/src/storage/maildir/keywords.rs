//! `dovecot-keywords` (sans-IO): lines `<index> <name>`; the index is the
//! letter `a` + index in Maildir file names.

/// Parses the file into an index-addressed list (gaps are empty strings).
pub fn parse(text: &str) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    for line in text.lines() {
        let Some((idx, name)) = line.split_once(' ') else { continue };
        let Ok(idx) = idx.parse::<usize>() else { continue };
        if idx >= 26 || name.is_empty() {
            continue;
        }
        if list.len() <= idx {
            list.resize(idx + 1, String::new());
        }
        list[idx] = name.to_string();
    }
    list
}

/// Formats a list.
pub fn format(list: &[String]) -> String {
    list.iter().enumerate().filter(|(_, n)| !n.is_empty()).map(|(i, n)| format!("{i} {n}\n")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let list = super::parse("0 $Forwarded\n1 foo\n2 bar\n");
        assert_eq!(list, vec!["$Forwarded", "foo", "bar"]);
        assert_eq!(super::format(&list), "0 $Forwarded\n1 foo\n2 bar\n");
    }
}
