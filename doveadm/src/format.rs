//! doveadm's output formatters, matching Dovecot 2.3's byte for byte where
//! we have observed them:
//! * `table`: a header row and aligned columns, each as wide as its
//!   widest cell, one space apart; if the line would pass 80 columns the
//!   last columns are narrowed (their cells padded to the narrowed width,
//!   longer cells printed whole);
//! * `pager`: `key: value` lines per record, records separated by a form
//!   feed line;
//! * `tab`: a header row and rows, TAB-separated;
//! * `flow`: `key=value` pairs per record on one line.
//!
//! `extra` carries additional `listener:` lines per record (pager and flow)
//! — dovecote's addition to `service status`.

const COLUMNS: usize = 80;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Pager,
    Tab,
    Flow,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "table" => Some(Format::Table),
            "pager" => Some(Format::Pager),
            "tab" => Some(Format::Tab),
            "flow" => Some(Format::Flow),
            _ => None,
        }
    }
}

pub fn render(format: Format, headers: &[&str], rows: &[Vec<String>], extra: &[Vec<String>]) -> String {
    let no_extra = Vec::new();
    let extra_of = |i: usize| extra.get(i).unwrap_or(&no_extra);
    let mut out = String::new();
    match format {
        Format::Tab => {
            out.push_str(&headers.join("\t"));
            out.push('\n');
            for row in rows {
                out.push_str(&row.join("\t"));
                out.push('\n');
            }
        }
        Format::Flow => {
            for (i, row) in rows.iter().enumerate() {
                let mut pairs: Vec<String> =
                    headers.iter().zip(row).map(|(h, v)| format!("{h}={v}")).collect();
                pairs.extend(extra_of(i).iter().map(|l| format!("listener=\"{l}\"")));
                out.push_str(&pairs.join(" "));
                out.push('\n');
            }
        }
        Format::Pager => {
            for (i, row) in rows.iter().enumerate() {
                if i > 0 {
                    out.push_str("\x0c\n");
                }
                for (h, v) in headers.iter().zip(row) {
                    out.push_str(&format!("{h}: {v}\n"));
                }
                for l in extra_of(i) {
                    out.push_str(&format!("listener: {l}\n"));
                }
            }
        }
        Format::Table => {
            let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
            for row in rows {
                for (w, v) in widths.iter_mut().zip(row) {
                    *w = (*w).max(v.len());
                }
            }
            let value_widths: Vec<usize> = (0..headers.len())
                .map(|c| rows.iter().map(|r| r.get(c).map_or(0, String::len)).max().unwrap_or(0))
                .collect();
            let mut total: usize = widths.iter().sum::<usize>() + widths.len().saturating_sub(1);
            for c in (0..widths.len()).rev() {
                if total <= COLUMNS {
                    break;
                }
                let floor = value_widths[c].max(1);
                let cut = (total - COLUMNS).min(widths[c] - floor);
                widths[c] -= cut;
                total -= cut;
            }
            let line = |cells: Vec<&str>, pad_last: bool| {
                let mut s = String::new();
                let n = cells.len();
                for (c, cell) in cells.into_iter().enumerate() {
                    if c > 0 {
                        s.push(' ');
                    }
                    s.push_str(cell);
                    if c + 1 < n || pad_last {
                        for _ in cell.len()..widths[c] {
                            s.push(' ');
                        }
                    }
                }
                s.push('\n');
                s
            };
            out.push_str(line(headers.to_vec(), true).trim_end_matches([' ', '\n']));
            out.push('\n');
            for row in rows {
                out.push_str(&line(row.iter().map(String::as_str).collect(), true));
            }
        }
    }
    out
}

pub fn print(format: Format, headers: &[&str], rows: &[Vec<String>], extra: &[Vec<String>]) {
    print!("{}", render(format, headers, rows, extra));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    /// Captured from Debian's doveadm 2.3.19.1 `process status`.
    #[test]
    fn table_matches_dovecot_process_status() {
        let headers = [
            "name",
            "pid",
            "available_count",
            "total_count",
            "idle_start",
            "last_status_update",
            "last_kill_sent",
        ];
        let rows = vec![
            row(&["stats", "2874", "997", "3", "0", "1795569524", "0"]),
            row(&["imap-login", "2871", "1", "0", "1795569523", "1795569523", "0"]),
        ];
        let expected =
            "name       pid  available_count total_count idle_start last_status_update last_kill_sent\n\
                        stats      2874 997             3           0          1795569524         0     \n\
                        imap-login 2871 1               0           1795569523 1795569523         0     \n";
        assert_eq!(render(Format::Table, &headers, &rows, &[]), expected);
    }

    #[test]
    fn pager_separates_records_with_form_feed() {
        let out = render(Format::Pager, &["name", "n"], &[row(&["a", "1"]), row(&["b", "2"])], &[]);
        assert_eq!(out, "name: a\nn: 1\n\x0c\nname: b\nn: 2\n");
    }
}
