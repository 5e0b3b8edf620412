//! The headers LMTP puts in front of each recipient's copy, as Dovecot
//! 2.3 writes them (LF line endings, like the stored message; the
//! continuation lines start with a tab, shown here as spaces):
//!
//! ```text
//! Return-Path: <sender@example.org>
//! Delivered-To: alice
//! Received: from client.example ([127.0.0.1])
//!     by mx.example with LMTP
//!     id uViXBe5cBmuTNgAAg+zDdQ
//!     (envelope-from <sender@example.org>)
//!     for <alice>; Wed, 25 Nov 2026 03:58:44 +0000
//! ```
//!
//! `Delivered-To:` and the `for <…>` clause appear only when the
//! transaction has a single recipient (Dovecot: "none" is always used with
//! several recipients); `Received:` only with `lmtp_add_received_header`.

use std::net::IpAddr;

/// What the headers are built from.
#[derive(Debug, Clone)]
pub struct Trace<'a> {
    /// `MAIL FROM` address (empty for `<>`).
    pub from: &'a str,
    /// The `LHLO` domain, if the client sent one.
    pub lhlo: Option<&'a str>,
    pub remote_ip: Option<IpAddr>,
    /// The connection is TLS (`with LMTPS`).
    pub secured: bool,
    pub hostname: &'a str,
    /// The transaction id.
    pub id: &'a str,
    /// `Delivered-To:` address, when one is written.
    pub delivered_to: Option<&'a str>,
    /// The `for <…>` address, when the transaction has one recipient.
    pub for_rcpt: Option<&'a str>,
    /// Add `Received:`.
    pub received: bool,
    /// Seconds since the epoch.
    pub time: i64,
}

/// The header block (each line LF-terminated).
pub fn trace_headers(t: &Trace<'_>) -> Vec<u8> {
    let mut h = format!("Return-Path: <{}>\n", t.from);
    if let Some(to) = t.delivered_to {
        h.push_str(&format!("Delivered-To: {to}\n"));
    }
    if t.received {
        h.push_str(&format!("Received: from {}", t.lhlo.unwrap_or("unknown")));
        if let Some(ip) = t.remote_ip {
            h.push_str(&format!(" ([{ip}])"));
        }
        h.push_str(&format!(
            "\n\tby {} with {}\n\tid {}\n\t(envelope-from <{}>)",
            t.hostname,
            if t.secured { "LMTPS" } else { "LMTP" },
            t.id,
            t.from
        ));
        if let Some(rcpt) = t.for_rcpt {
            h.push_str(&format!("\n\tfor <{rcpt}>"));
        }
        h.push_str(&format!("; {}\n", crate::date::rfc822(t.time)));
    }
    h.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multiple_recipients() {
        let mut t = Trace {
            from: "s@x",
            lhlo: Some("client.example"),
            remote_ip: Some("127.0.0.1".parse().unwrap()),
            secured: false,
            hostname: "vm",
            id: "ID",
            delivered_to: Some("alice"),
            for_rcpt: Some("alice"),
            received: true,
            time: 0,
        };
        let one = String::from_utf8(trace_headers(&t)).unwrap();
        let date = crate::date::rfc822(0);
        assert_eq!(
            one,
            format!(
                "Return-Path: <s@x>\nDelivered-To: alice\nReceived: from client.example ([127.0.0.1])\n\tby vm with LMTP\n\tid ID\n\t(envelope-from <s@x>)\n\tfor <alice>; {date}\n"
            )
        );
        t.delivered_to = None;
        t.for_rcpt = None;
        t.lhlo = None;
        t.remote_ip = None;
        let many = String::from_utf8(trace_headers(&t)).unwrap();
        assert_eq!(
            many,
            format!(
                "Return-Path: <s@x>\nReceived: from unknown\n\tby vm with LMTP\n\tid ID\n\t(envelope-from <s@x>); {date}\n"
            )
        );
        t.received = false;
        assert_eq!(trace_headers(&t), b"Return-Path: <s@x>\n");
    }
}
