//! The user name in a client certificate (`ssl_cert_username_field`,
//! default `commonName`), as Dovecot's `ssl_iostream_get_peer_name` reads
//! it: the subject attribute of that name, first occurrence. Only the
//! DER needed to reach the subject is walked; anything malformed yields
//! `None` (the certificate already verified, so this is belt and braces).

/// Attribute OIDs (DER content bytes) by the OpenSSL long/short names an
/// admin may write in `ssl_cert_username_field`.
fn field_oid(field: &str) -> Option<&'static [u8]> {
    Some(match field {
        "commonName" | "CN" => &[0x55, 0x04, 0x03],
        "surname" | "SN" => &[0x55, 0x04, 0x04],
        "serialNumber" => &[0x55, 0x04, 0x05],
        "givenName" | "GN" => &[0x55, 0x04, 0x2a],
        "uid" | "userId" | "UID" => &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01],
        "emailAddress" => &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        "x500UniqueIdentifier" => &[0x55, 0x04, 0x2d],
        "organizationName" | "O" => &[0x55, 0x04, 0x0a],
        "organizationalUnitName" | "OU" => &[0x55, 0x04, 0x0b],
        _ => return None,
    })
}

/// One DER TLV: (tag, content, rest).
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The DER of the certificate's subject Name.
fn subject(cert: &[u8]) -> Option<&[u8]> {
    let (SEQUENCE, cert, _) = tlv(cert)? else { return None };
    let (SEQUENCE, tbs, _) = tlv(cert)? else { return None };
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xa0 {
        rest = after; // [0] version
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (SEQUENCE, subject, _) = tlv(rest)? else { return None };
    Some(subject)
}

/// The value of `field` in the certificate's subject.
pub fn peer_name(cert_der: &[u8], field: &str) -> Option<String> {
    let oid = field_oid(field)?;
    let mut rdns = subject(cert_der)?;
    while !rdns.is_empty() {
        let (SET, set, next) = tlv(rdns)? else { return None };
        rdns = next;
        let mut attrs = set;
        while !attrs.is_empty() {
            let (SEQUENCE, attr, more) = tlv(attrs)? else { return None };
            attrs = more;
            let (OID, attr_oid, value) = tlv(attr)? else { return None };
            if attr_oid == oid {
                let (_, text, _) = tlv(value)?;
                return String::from_utf8(text.to_vec()).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal certificate-shaped DER with subject `O=Example, CN=alice`.
    fn fake_cert() -> Vec<u8> {
        fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut v = vec![tag, content.len() as u8];
            v.extend_from_slice(content);
            v
        }
        let attr = |oid: &[u8], value: &str| {
            let mut a = wrap(OID, oid);
            a.extend(wrap(0x0c, value.as_bytes()));
            wrap(SET, &wrap(SEQUENCE, &a))
        };
        let mut subject = attr(&[0x55, 0x04, 0x0a], "Example");
        subject.extend(attr(&[0x55, 0x04, 0x03], "alice"));
        let mut tbs = wrap(0xa0, &wrap(0x02, &[2]));
        tbs.extend(wrap(0x02, &[1]));
        tbs.extend(wrap(SEQUENCE, &[]));
        tbs.extend(wrap(SEQUENCE, &attr(&[0x55, 0x04, 0x03], "ca")));
        tbs.extend(wrap(SEQUENCE, &[]));
        tbs.extend(wrap(SEQUENCE, &subject));
        wrap(SEQUENCE, &wrap(SEQUENCE, &tbs))
    }

    #[test]
    fn reads_subject_fields_not_issuer() {
        let cert = fake_cert();
        assert_eq!(peer_name(&cert, "commonName").as_deref(), Some("alice"));
        assert_eq!(peer_name(&cert, "CN").as_deref(), Some("alice"));
        assert_eq!(peer_name(&cert, "organizationName").as_deref(), Some("Example"));
        assert_eq!(peer_name(&cert, "emailAddress"), None);
        assert_eq!(peer_name(&cert, "nonsense"), None);
    }

    #[test]
    fn malformed_input_is_none() {
        let cert = fake_cert();
        for cut in 0..cert.len() {
            let _ = peer_name(&cert[..cut], "commonName");
        }
        assert_eq!(peer_name(&[], "CN"), None);
        assert_eq!(peer_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], "CN"), None);
    }
}
