//! HAProxy PROXY protocol v1 (text) and v2 (binary) header parser, sans-IO.
//! Used only on listeners with `haproxy = yes`, and only for peers in
//! `haproxy_trusted_networks` (Dovecot disconnects everyone else there).
//! The header must arrive within `haproxy_timeout` (3 s) — the I/O layer's
//! job.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

/// v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line (107 bytes per the spec, CRLF included).
pub const V1_MAX: usize = 107;
/// Largest v2 header we accept (16-byte fixed part + TLVs).
pub const V2_MAX: usize = 16 + 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HaproxyError {
    #[error("HAProxy header is not PROXY v1 or v2")]
    NotProxy,
    #[error("invalid HAProxy v1 header: {0}")]
    V1(&'static str),
    #[error("invalid HAProxy v2 header: {0}")]
    V2(&'static str),
}

/// What the proxy told us about the real connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The real client and the address it connected to; `None` for
    /// `PROXY UNKNOWN` / v2 LOCAL (health checks): keep the socket's own.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    /// v2 PP2_TYPE_SSL said the client used TLS to the proxy.
    pub ssl: bool,
    /// Bytes the header took; the rest is client protocol input.
    pub consumed: usize,
}

/// Parses a header from the start of `buf`: `Ok(None)` means more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<ProxyHeader>, HaproxyError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'P' {
        return parse_v1(buf);
    }
    if buf[0] == b'\r' {
        let n = buf.len().min(12);
        if buf[..n] != V2_SIGNATURE[..n] {
            return Err(HaproxyError::NotProxy);
        }
        return parse_v2(buf);
    }
    Err(HaproxyError::NotProxy)
}

fn parse_v1(buf: &[u8]) -> Result<Option<ProxyHeader>, HaproxyError> {
    let n = buf.len().min(6);
    if buf[..n] != b"PROXY "[..n] {
        return Err(HaproxyError::NotProxy);
    }
    let Some(lf) = buf.iter().take(V1_MAX).position(|b| *b == b'\n') else {
        return if buf.len() >= V1_MAX { Err(HaproxyError::V1("line too long")) } else { Ok(None) };
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(HaproxyError::V1("missing CRLF"));
    }
    let line = std::str::from_utf8(&buf[6..lf - 1]).map_err(|_| HaproxyError::V1("not ASCII"))?;
    let fields: Vec<&str> = line.split(' ').collect();
    let consumed = lf + 1;
    match fields.as_slice() {
        ["UNKNOWN", ..] => Ok(Some(ProxyHeader { addresses: None, ssl: false, consumed })),
        [family, src, dst, sport, dport] => {
            let (src, dst): (IpAddr, IpAddr) = match *family {
                "TCP4" => (
                    src.parse::<Ipv4Addr>().map_err(|_| HaproxyError::V1("bad source address"))?.into(),
                    dst.parse::<Ipv4Addr>().map_err(|_| HaproxyError::V1("bad destination address"))?.into(),
                ),
                "TCP6" => (
                    src.parse::<Ipv6Addr>().map_err(|_| HaproxyError::V1("bad source address"))?.into(),
                    dst.parse::<Ipv6Addr>().map_err(|_| HaproxyError::V1("bad destination address"))?.into(),
                ),
                _ => return Err(HaproxyError::V1("unknown family")),
            };
            let port = |p: &str| {
                if p.is_empty() || p.len() > 5 || (p.len() > 1 && p.starts_with('0')) {
                    return Err(HaproxyError::V1("bad port"));
                }
                p.parse::<u16>().map_err(|_| HaproxyError::V1("bad port"))
            };
            let (sport, dport) = (port(sport)?, port(dport)?);
            Ok(Some(ProxyHeader {
                addresses: Some((SocketAddr::new(src, sport), SocketAddr::new(dst, dport))),
                ssl: false,
                consumed,
            }))
        }
        _ => Err(HaproxyError::V1("wrong number of fields")),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Option<ProxyHeader>, HaproxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(HaproxyError::V2("unsupported version"));
    }
    let command = ver_cmd & 0x0f;
    let fam = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if 16 + len > V2_MAX {
        return Err(HaproxyError::V2("header too large"));
    }
    if buf.len() < 16 + len {
        return Ok(None);
    }
    let body = &buf[16..16 + len];
    let consumed = 16 + len;
    match command {
        0 => return Ok(Some(ProxyHeader { addresses: None, ssl: false, consumed })),
        1 => {}
        _ => return Err(HaproxyError::V2("unknown command")),
    }
    let (addresses, tlv_start) = match fam {
        // AF_INET + STREAM
        0x11 => {
            if body.len() < 12 {
                return Err(HaproxyError::V2("short IPv4 address block"));
            }
            let src = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let dst = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
            let sport = u16::from_be_bytes([body[8], body[9]]);
            let dport = u16::from_be_bytes([body[10], body[11]]);
            (Some((SocketAddr::new(src.into(), sport), SocketAddr::new(dst.into(), dport))), 12)
        }
        // AF_INET6 + STREAM
        0x21 => {
            if body.len() < 36 {
                return Err(HaproxyError::V2("short IPv6 address block"));
            }
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&body[0..16]);
            d.copy_from_slice(&body[16..32]);
            let sport = u16::from_be_bytes([body[32], body[33]]);
            let dport = u16::from_be_bytes([body[34], body[35]]);
            (
                Some((
                    SocketAddr::new(Ipv6Addr::from(s).into(), sport),
                    SocketAddr::new(Ipv6Addr::from(d).into(), dport),
                )),
                36,
            )
        }
        // UNSPEC: keep the socket's addresses.
        0x00 => (None, 0),
        _ => return Err(HaproxyError::V2("unsupported address family")),
    };
    // TLVs: type, length (2), value. PP2_TYPE_SSL = 0x20, client bit 0x01.
    let mut ssl = false;
    let mut rest = &body[tlv_start..];
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(HaproxyError::V2("truncated TLV"));
        }
        let tlv_len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        if rest.len() < 3 + tlv_len {
            return Err(HaproxyError::V2("truncated TLV"));
        }
        if rest[0] == 0x20 && tlv_len >= 1 && rest[3] & 0x01 != 0 {
            ssl = true;
        }
        rest = &rest[3 + tlv_len..];
    }
    Ok(Some(ProxyHeader { addresses, ssl, consumed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1() {
        let h = parse(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 143\r\na NOOP\r\n").unwrap().unwrap();
        assert_eq!(
            h.addresses,
            Some(("192.0.2.1:56324".parse().unwrap(), "198.51.100.2:143".parse().unwrap()))
        );
        assert_eq!(h.consumed, 45);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4").unwrap(), None);
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().addresses, None);
        let h = parse(b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n").unwrap().unwrap();
        assert_eq!(h.addresses.unwrap().0, "[2001:db8::1]:1".parse().unwrap());
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n").is_err());
        assert!(parse(b"PROXY TCP4 ::1 5.6.7.8 1 1\r\n").is_err());
        assert!(parse(b"a NOOP\r\n").is_err());
        assert!(parse(&[b'P'; 200]).is_err());
    }

    #[test]
    fn v2() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([0x21, 0x11, 0, 12 + 5]);
        h.extend([10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0, 143]);
        h.extend([0x20, 0, 2, 0x01, 0]);
        h.extend(b"rest");
        for cut in 0..h.len() - 4 {
            assert_eq!(parse(&h[..cut]).unwrap(), None, "cut {cut}");
        }
        let p = parse(&h).unwrap().unwrap();
        assert_eq!(p.addresses, Some(("10.0.0.1:8080".parse().unwrap(), "10.0.0.2:143".parse().unwrap())));
        assert!(p.ssl);
        assert_eq!(p.consumed, h.len() - 4);
        let mut local = V2_SIGNATURE.to_vec();
        local.extend([0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().unwrap().addresses, None);
        let mut bad = V2_SIGNATURE.to_vec();
        bad.extend([0x21, 0x11, 0, 3, 1, 2, 3]);
        assert!(parse(&bad).is_err());
    }
}
