//! `doveadm who` and `doveadm kick`, as Dovecot 2.3's doveadm-who.c and
//! doveadm-kick.c: both read anvil's `CONNECT-DUMP` (one
//! `<service>/<ip>/<user>\t<pid>\t<count>` line per session group, an
//! empty line at the end) from `<base_dir>/anvil` (root-only, doveadm runs
//! as root), filter it with an optional user mask (`*`/`?` wildcards,
//! case-insensitive) and/or an `ip[/bits]` mask, and then either
//! print the table (`who`) or SIGTERM the matching processes (`kick`);
//! a post-login process that gets SIGTERM says its goodbye (`* BYE Server
//! shutting down.`) and exits, which is what ends the client's session.
//!
//! The table goes through [`Table`], a copy of the behaviour of Dovecot's
//! `table` formatter (titles on stderr, values on stdout, widths from the
//! values, the spare width given to the EXPAND column — or the last one).

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use dovecote_anvil::protocol::{tab_unescape, HANDSHAKE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// sysexits EX_USAGE.
const EXIT_USAGE: u8 = 64;
/// `DOVEADM_EX_NOTFOUND` (= EX_NOUSER).
const EXIT_NOTFOUND: u8 = 67;
/// sysexits EX_TEMPFAIL: anvil unreachable.
const EXIT_TEMPFAIL: u8 = 75;
/// Width the table formatter fits when stdout is not a terminal.
const COLUMNS: usize = 80;
/// Longest wait for anvil's dump.
const ANVIL_TIMEOUT: Duration = Duration::from_secs(10);

/// One `CONNECT-DUMP` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoLine {
    pub service: String,
    pub ip: Option<IpAddr>,
    pub username: String,
    pub pid: u32,
    pub refcount: u32,
}

/// Parses `<ident>\t<pid>\t<count>`; the ident is `service/ip/user`
/// (imap, pop3) or `service/user` (lmtp). The user may contain `/`.
pub fn parse_line(line: &str) -> Option<WhoLine> {
    let mut fields = line.split('\t');
    let ident = tab_unescape(fields.next()?);
    let pid = fields.next()?.parse().ok()?;
    let refcount = fields.next()?.parse().ok()?;
    let (service, rest) = ident.split_once('/')?;
    let (ip, username) = match rest.split_once('/') {
        Some((ip, user)) => (ip.parse().ok(), user),
        None => (None, rest),
    };
    Some(WhoLine { service: service.to_owned(), ip, username: username.to_owned(), pid, refcount })
}

/// The positional masks of `who` and `kick`.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub username: Option<String>,
    pub net: Option<(IpAddr, u8)>,
}

impl Filter {
    /// Each mask is an `ip[/bits]` range or else a user mask; at most one
    /// of each, as in Dovecot.
    pub fn parse(masks: &[&str]) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for mask in masks {
            if let Some(net) = parse_range(mask) {
                if filter.net.is_some() {
                    return Err("Multiple network masks not supported".into());
                }
                filter.net = Some(net);
            } else {
                if filter.username.is_some() {
                    return Err("Multiple username masks not supported".into());
                }
                filter.username = Some((*mask).to_owned());
            }
        }
        Ok(filter)
    }

    fn user_matches(&self, user: &str) -> bool {
        self.username.as_deref().is_none_or(|mask| wildcard_match_icase(user, mask))
    }

    fn ip_matches(&self, ip: Option<IpAddr>) -> bool {
        match (self.net, ip) {
            (None, _) => true,
            (Some((net, bits)), Some(ip)) => in_network(ip, net, bits),
            (Some(_), None) => false,
        }
    }

    pub fn matches_line(&self, line: &WhoLine) -> bool {
        self.user_matches(&line.username) && self.ip_matches(line.ip)
    }
}

/// `net_parse_range`: `1.2.3.4`, `1.2.3.0/24`, `::1`, `fe80::/10`.
fn parse_range(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = match text.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (text, None),
    };
    let ip: IpAddr = ip.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max)?,
        None => max,
    };
    Some((ip, bits))
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (a, b, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32u32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (a >> shift) == (b >> shift)
}

/// Dovecot's `wildcard_match_icase`: `*` any run, `?` one character.
pub fn wildcard_match_icase(text: &str, mask: &str) -> bool {
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let m: Vec<char> = mask.to_lowercase().chars().collect();
    let (mut ti, mut mi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if mi < m.len() && (m[mi] == '?' || m[mi] == t[ti]) {
            ti += 1;
            mi += 1;
        } else if mi < m.len() && m[mi] == '*' {
            star = Some((mi, ti));
            mi += 1;
        } else if let Some((smi, sti)) = star {
            mi = smi + 1;
            ti = sti + 1;
            star = Some((smi, sti + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|c| *c == '*')
}

/// Reads anvil's `CONNECT-DUMP`.
pub fn connect_dump(path: &Path) -> Result<Vec<WhoLine>, String> {
    let mut stream =
        UnixStream::connect(path).map_err(|e| format!("connect({}) failed: {e}", path.display()))?;
    let _ = stream.set_read_timeout(Some(ANVIL_TIMEOUT));
    stream
        .write_all(format!("{HANDSHAKE}\nCONNECT-DUMP\n").as_bytes())
        .map_err(|e| format!("write({}) failed: {e}", path.display()))?;
    let mut text = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if text.starts_with(b"\n") || text.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read({}) failed: {e}", path.display())),
        }
    }
    let text = String::from_utf8_lossy(&text);
    let mut lines = Vec::new();
    for line in text.split('\n') {
        if line.is_empty() {
            break;
        }
        match parse_line(line) {
            Some(l) => lines.push(l),
            None => eprintln!("Error: Invalid input: {line}"),
        }
    }
    Ok(lines)
}

/// A `who` row: one user on one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoUser {
    pub username: String,
    pub service: String,
    pub connections: u32,
    pub pids: Vec<u32>,
    pub ips: Vec<IpAddr>,
}

/// Groups dump lines per (user, service), pids and IPs in order of
/// appearance; rows sorted by user then service (Dovecot prints them in
/// hash order, i.e. no promised order).
pub fn aggregate(lines: &[WhoLine]) -> Vec<WhoUser> {
    let mut users: Vec<WhoUser> = Vec::new();
    for line in lines {
        let idx = match users.iter().position(|u| u.username == line.username && u.service == line.service) {
            Some(i) => i,
            None => {
                users.push(WhoUser {
                    username: line.username.clone(),
                    service: line.service.clone(),
                    connections: 0,
                    pids: Vec::new(),
                    ips: Vec::new(),
                });
                users.len() - 1
            }
        };
        let user = &mut users[idx];
        user.connections += line.refcount;
        if let Some(ip) = line.ip {
            if !user.ips.contains(&ip) {
                user.ips.push(ip);
            }
        }
        if !user.pids.contains(&line.pid) {
            user.pids.push(line.pid);
        }
    }
    users.sort_by(|a, b| (&a.username, &a.service).cmp(&(&b.username, &b.service)));
    users
}

fn user_matches(filter: &Filter, user: &WhoUser) -> bool {
    filter.user_matches(&user.username)
        && (filter.net.is_none() || user.ips.iter().any(|ip| filter.ip_matches(Some(*ip))))
}

fn parenthesised<T: ToString>(items: &[T]) -> String {
    format!("({})", items.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "))
}

/// One column of [`Table`].
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    pub right: bool,
    pub expand: bool,
}

const fn col(title: &'static str) -> Column {
    Column { title, right: false, expand: false }
}

/// Dovecot's `table` formatter: rendered titles (for stderr) and values
/// (for stdout).
pub struct Table {
    pub titles: String,
    pub body: String,
}

impl Table {
    pub fn render(columns: &[Column], rows: &[Vec<String>], width: usize) -> Table {
        let n = columns.len();
        let mut min: Vec<usize> = columns.iter().map(|c| c.title.chars().count()).collect();
        let mut max = min.clone();
        let mut len = min.clone();
        for row in rows {
            for i in 0..n {
                let l = row.get(i).map_or(0, |v| v.chars().count());
                min[i] = min[i].min(l);
                if max[i] < l {
                    max[i] = l;
                    len[i] = l;
                }
            }
        }
        let mut total = max.iter().map(|m| m + 1).sum::<usize>().saturating_sub(1);
        while total > width {
            let before = total;
            for i in (0..n).rev() {
                let diff = len[i] - min[i];
                if total - diff <= width {
                    let cut = total - width;
                    len[i] -= cut;
                    total -= cut;
                    break;
                }
                if diff > 0 {
                    // Dovecot narrows the column but not its running total
                    // here; the next round sees the same total and stops.
                    len[i] -= if diff == 1 { 1 } else { diff / 2 };
                }
            }
            if total == before {
                break;
            }
        }
        if total < width && n > 0 {
            let target = columns.iter().position(|c| c.expand).unwrap_or(n - 1);
            len[target] += (width - total) / 2;
        }
        let cell = |out: &mut String, i: usize, value: &str| {
            let pad = len[i].saturating_sub(value.chars().count());
            if columns[i].right {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(value);
            } else {
                out.push_str(value);
                out.extend(std::iter::repeat_n(' ', pad));
            }
            out.push(if i + 1 == n { '\n' } else { ' ' });
        };
        let mut titles = String::new();
        for (i, c) in columns.iter().enumerate() {
            cell(&mut titles, i, c.title);
        }
        let mut body = String::new();
        for row in rows {
            for i in 0..n {
                cell(&mut body, i, row.get(i).map_or("", String::as_str));
            }
        }
        Table { titles, body }
    }

    fn print(&self) {
        eprint!("{}", self.titles);
        print!("{}", self.body);
    }
}

struct Options<'a> {
    socket: Option<PathBuf>,
    separate: bool,
    force: bool,
    masks: Vec<&'a str>,
}

fn parse_options<'a>(args: &[&'a str]) -> Result<Options<'a>, String> {
    let mut o = Options { socket: None, separate: false, force: false, masks: Vec::new() };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "-a" => o.socket = Some(PathBuf::from(it.next().ok_or("-a needs a socket path")?)),
            "-1" => o.separate = true,
            "-f" => o.force = true,
            a if a.starts_with('-') && a.len() > 1 => return Err(format!("Unknown parameter: {a}")),
            a => o.masks.push(a),
        }
    }
    Ok(o)
}

/// The filter of the masks given and anvil's sessions, or the exit code
/// after saying why not.
fn masks_and_sessions(base_dir: &Path, o: &Options<'_>) -> Result<(Filter, Vec<WhoLine>), ExitCode> {
    let filter = Filter::parse(&o.masks).map_err(|e| usage(&e))?;
    let path = o.socket.clone().unwrap_or_else(|| base_dir.join("anvil"));
    let lines = connect_dump(&path).map_err(|e| {
        eprintln!("Fatal: {e}");
        ExitCode::from(EXIT_TEMPFAIL)
    })?;
    Ok((filter, lines))
}

fn usage(text: &str) -> ExitCode {
    eprintln!("Error: {text}");
    ExitCode::from(EXIT_USAGE)
}

/// `doveadm who [-a <anvil socket path>] [-1] [<user mask>] [<ip/bits>]`.
pub fn who(base_dir: &Path, args: &[&str]) -> ExitCode {
    let o = match parse_options(args) {
        Ok(o) if !o.force => o,
        Ok(_) => return usage("Unknown parameter: -f"),
        Err(e) => return usage(&e),
    };
    let (filter, lines) = match masks_and_sessions(base_dir, &o) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let table = if o.separate {
        let columns =
            [Column { title: "username", right: false, expand: true }, col("proto"), col("pid"), col("ip")];
        let rows: Vec<Vec<String>> = lines
            .iter()
            .filter(|l| filter.matches_line(l))
            .flat_map(|l| {
                let ip = l.ip.map(|ip| ip.to_string()).unwrap_or_default();
                let row = vec![l.username.clone(), l.service.clone(), l.pid.to_string(), ip];
                std::iter::repeat_n(row, l.refcount as usize)
            })
            .collect();
        Table::render(&columns, &rows, COLUMNS)
    } else {
        let columns = [
            col("username"),
            Column { title: "#", right: true, expand: false },
            col("proto"),
            col("(pids)"),
            col("(ips)"),
        ];
        let rows: Vec<Vec<String>> = aggregate(&lines)
            .iter()
            .filter(|u| user_matches(&filter, u))
            .map(|u| {
                vec![
                    u.username.clone(),
                    u.connections.to_string(),
                    u.service.clone(),
                    parenthesised(&u.pids),
                    parenthesised(&u.ips),
                ]
            })
            .collect();
        Table::render(&columns, &rows, COLUMNS)
    };
    table.print();
    ExitCode::SUCCESS
}

/// What `kick` decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KickPlan {
    /// Processes to SIGTERM, with every user each one serves.
    pub pids: Vec<(u32, Vec<String>)>,
    /// Set when a process also serves users the masks don't match and
    /// `-f` was not given: nothing is kicked, these users are listed.
    pub warning_users: Vec<String>,
}

/// Dovecot's rule: a process is kicked when all the users it serves
/// match; if only some do, nothing is kicked without `-f`.
pub fn plan_kick(lines: &[WhoLine], filter: &Filter, force: bool) -> KickPlan {
    // pid → [(user, matches)] in order of appearance.
    let mut pids: Vec<(u32, Vec<(String, bool)>)> = Vec::new();
    for line in lines {
        let matched = filter.matches_line(line);
        let idx = match pids.iter().position(|(p, _)| *p == line.pid) {
            Some(i) => i,
            None => {
                pids.push((line.pid, Vec::new()));
                pids.len() - 1
            }
        };
        let users = &mut pids[idx].1;
        match users.iter_mut().find(|(u, _)| *u == line.username) {
            Some(entry) => entry.1 |= matched,
            None => users.push((line.username.clone(), matched)),
        }
    }
    let mut plan = KickPlan::default();
    for (pid, users) in pids {
        let matching = users.iter().filter(|(_, m)| *m).count();
        if matching == 0 {
            continue;
        }
        if matching < users.len() && !force {
            plan.warning_users.extend(users.iter().filter(|(_, m)| !*m).map(|(u, _)| u.clone()));
            continue;
        }
        plan.pids.push((pid, users.into_iter().map(|(u, _)| u).collect()));
    }
    plan
}

/// `doveadm kick [-a <anvil socket path>] [-f] <user mask>[|]<ip/bits>`.
pub fn kick(base_dir: &Path, args: &[&str]) -> ExitCode {
    let o = match parse_options(args) {
        Ok(o) if !o.separate => o,
        Ok(_) => return usage("Unknown parameter: -1"),
        Err(e) => return usage(&e),
    };
    if o.masks.is_empty() {
        return usage("user and/or ip[/bits] must be specified.");
    }
    let (filter, lines) = match masks_and_sessions(base_dir, &o) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let plan = plan_kick(&lines, &filter, o.force);
    if !plan.warning_users.is_empty() {
        print_kicked(
            "warning: other connections would also be kicked from following users:",
            plan.warning_users,
        );
        println!("Use the '-f' option to enforce the disconnect.");
        return ExitCode::SUCCESS;
    }
    let mut kicked = Vec::new();
    for (pid, users) in plan.pids {
        let Ok(raw) = i32::try_from(pid) else { continue };
        match kill(Pid::from_raw(raw), Signal::SIGTERM) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => kicked.extend(users),
            Err(e) => eprintln!("kill({pid}, SIGTERM) failed: {e}"),
        }
    }
    if kicked.is_empty() {
        println!("no users kicked");
        return ExitCode::from(EXIT_NOTFOUND);
    }
    print_kicked("kicked connections from the following users:", kicked);
    ExitCode::SUCCESS
}

fn print_kicked(title: &str, mut users: Vec<String>) {
    users.sort();
    users.dedup();
    println!("{title}");
    let mut line = String::new();
    for u in users {
        line.push_str(&u);
        line.push(' ');
    }
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<WhoLine> {
        text.lines().map(|l| parse_line(l).unwrap()).collect()
    }

    #[test]
    fn parses_dump_lines() {
        let l = parse_line("imap/127.0.0.1/a/b@x\t42\t2").unwrap();
        assert_eq!(l.service, "imap");
        assert_eq!(l.ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(l.username, "a/b@x");
        assert_eq!((l.pid, l.refcount), (42, 2));
        let lmtp = parse_line("lmtp/bob\t7\t1").unwrap();
        assert_eq!((lmtp.ip, lmtp.username.as_str()), (None, "bob"));
        assert!(parse_line("nouser\t1\t1").is_none());
        assert!(parse_line("imap/1.2.3.4/a\tx\t1").is_none());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match_icase("Alice@Example.com", "*@example.com"));
        assert!(wildcard_match_icase("alice", "al?ce"));
        assert!(wildcard_match_icase("alice", "*"));
        assert!(!wildcard_match_icase("alice", "bob"));
        assert!(!wildcard_match_icase("alice", "alic"));
        assert!(wildcard_match_icase("abcbc", "a*bc"));
    }

    #[test]
    fn filters_by_user_and_network() {
        let f = Filter::parse(&["*@d", "10.0.0.0/8"]).unwrap();
        assert!(f.matches_line(&parse_line("imap/10.1.2.3/a@d\t1\t1").unwrap()));
        assert!(!f.matches_line(&parse_line("imap/11.1.2.3/a@d\t1\t1").unwrap()));
        assert!(!f.matches_line(&parse_line("imap/10.1.2.3/a@e\t1\t1").unwrap()));
        assert!(Filter::parse(&["a", "b"]).is_err());
        assert!(Filter::parse(&["::1", "127.0.0.1"]).is_err());
    }

    #[test]
    fn who_table_as_dovecot_prints_it() {
        let l =
            lines("imap/127.0.0.1/alice\t100\t1\nimap/127.0.0.1/alice\t101\t1\npop3/127.0.0.1/bob\t102\t1");
        let users = aggregate(&l);
        assert_eq!(users[0].connections, 2);
        assert_eq!(users[0].pids, vec![100, 101]);
        let columns = [
            col("username"),
            Column { title: "#", right: true, expand: false },
            col("proto"),
            col("(pids)"),
            col("(ips)"),
        ];
        let rows: Vec<Vec<String>> = users
            .iter()
            .map(|u| {
                vec![
                    u.username.clone(),
                    u.connections.to_string(),
                    u.service.clone(),
                    parenthesised(&u.pids),
                    parenthesised(&u.ips),
                ]
            })
            .collect();
        let t = Table::render(&columns, &rows, 80);
        // 8+1+1+1+5+1+9+1+11 = 38 wide; the last column gets (80-38)/2.
        let pad = " ".repeat(21);
        assert_eq!(t.titles, format!("username # proto (pids)    (ips)      {pad}\n"));
        assert_eq!(
            t.body,
            format!(
                "alice    2 imap  (100 101) (127.0.0.1){pad}\nbob      1 pop3  (102)     (127.0.0.1){pad}\n"
            )
        );
    }

    #[test]
    fn kick_takes_whole_processes_only() {
        let l = lines("imap/1.1.1.1/alice\t100\t1\nimap/1.1.1.1/bob\t200\t1\nimap/1.1.1.1/carol\t300\t1\nimap/1.1.1.1/alice\t300\t1");
        let f = Filter::parse(&["alice"]).unwrap();
        let plan = plan_kick(&l, &f, false);
        assert_eq!(plan.warning_users, vec!["carol".to_owned()]);
        let forced = plan_kick(&l, &f, true);
        assert_eq!(
            forced.pids,
            vec![(100, vec!["alice".into()]), (300, vec!["carol".into(), "alice".into()])]
        );
        assert!(plan_kick(&l, &Filter::parse(&["nobody"]).unwrap(), false).pids.is_empty());
    }
}
