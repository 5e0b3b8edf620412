//! Dates as Dovecot writes them: RFC 5322 in the server's local time zone
//! for `Received:` (`Wed, 25 Nov 2026 03:58:44 +0000`), and the
//! `[YYYY-MM-DD HH:MM:SS]` stamp on internal-error replies.

/// Broken-down local time.
struct Local {
    year: i64,
    month: usize,
    day: i64,
    weekday: usize,
    hour: i64,
    minute: i64,
    second: i64,
    offset_secs: i64,
}

fn local(time: i64) -> Local {
    let t = time as libc::time_t;
    // SAFETY: localtime_r only writes the `tm` we own and reads `t`; a
    // zeroed tm is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        // Out-of-range times: fall back to the epoch in UTC.
        return Local {
            year: 1970,
            month: 0,
            day: 1,
            weekday: 4,
            hour: 0,
            minute: 0,
            second: 0,
            offset_secs: 0,
        };
    }
    Local {
        year: i64::from(tm.tm_year) + 1900,
        month: tm.tm_mon.clamp(0, 11) as usize,
        day: i64::from(tm.tm_mday),
        weekday: tm.tm_wday.clamp(0, 6) as usize,
        hour: i64::from(tm.tm_hour),
        minute: i64::from(tm.tm_min),
        second: i64::from(tm.tm_sec),
        offset_secs: tm.tm_gmtoff,
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `Wed, 25 Nov 2026 03:58:44 +0000`.
pub fn rfc822(time: i64) -> String {
    let l = local(time);
    let sign = if l.offset_secs < 0 { '-' } else { '+' };
    let off = l.offset_secs.abs() / 60;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        WEEKDAYS[l.weekday],
        l.day,
        MONTHS[l.month],
        l.year,
        l.hour,
        l.minute,
        l.second,
        off / 60,
        off % 60
    )
}

/// `2026-11-25 03:48:22`, as in `MAIL_ERRSTR_CRITICAL_MSG_STAMP`.
pub fn stamp(time: i64) -> String {
    let l = local(time);
    format!("{}-{:02}-{:02} {:02}:{:02}:{:02}", l.year, l.month + 1, l.day, l.hour, l.minute, l.second)
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        // 2026-11-25 03:58:44 UTC; the local zone may differ, so check shape.
        let d = rfc822(1_795_579_124);
        assert_eq!(d.len(), "Wed, 25 Nov 2026 03:58:44 +0000".len(), "{d}");
        assert!(d.contains(" 2026 ") && d.contains("Nov"), "{d}");
        let s = stamp(1_795_579_124);
        assert!(s.starts_with("2026-11-2"), "{s}");
    }
}
