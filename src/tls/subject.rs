//! The user name an EXTERNAL login takes from a client certificate: the subject's common
//! name (CN), as RabbitMQ's rabbitmq_auth_mechanism_ssl with `ssl_cert_login_from =
//! common_name` (several CNs are joined with ",", as it does).
//!
//! Called by the connection handshake on a certificate rustls has already verified. A
//! small DER walk over the fields before the subject, instead of a full X.509 parser:
//! it reads only lengths it has checked and returns None on anything unexpected, never
//! panics.

/// `2.5.4.3`, id-at-commonName, as DER OID contents.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// `[0] EXPLICIT Version` at the start of a v2/v3 TBSCertificate.
const VERSION: u8 = 0xA0;

/// The subject's CN values joined with ",", or None when the certificate has none (or
/// cannot be read).
pub fn common_name(certificate: &[u8]) -> Option<String> {
    let (_, cert, _) = element(certificate, SEQUENCE)?;
    let (_, mut tbs, _) = element(cert, SEQUENCE)?;
    if tbs.first() == Some(&VERSION) {
        tbs = element(tbs, VERSION)?.2;
    }
    // serialNumber, signature, issuer, validity; then the subject.
    for _ in 0..4 {
        tbs = any(tbs)?.2;
    }
    let (_, mut names, _) = element(tbs, SEQUENCE)?;
    let mut found = Vec::new();
    while !names.is_empty() {
        let (_, mut rdn, rest) = element(names, SET)?;
        names = rest;
        while !rdn.is_empty() {
            let (_, pair, rest) = element(rdn, SEQUENCE)?;
            rdn = rest;
            let (_, oid, value) = element(pair, OID)?;
            if oid == COMMON_NAME {
                let (tag, text, _) = any(value)?;
                found.push(string(tag, text)?);
            }
        }
    }
    (!found.is_empty()).then(|| found.join(","))
}

/// A directory string's text: UTF8String, PrintableString, IA5String and T61String as
/// bytes, BMPString as UTF-16BE, UniversalString as UTF-32BE.
fn string(tag: u8, bytes: &[u8]) -> Option<String> {
    match tag {
        0x0C | 0x13 | 0x16 | 0x14 => Some(String::from_utf8_lossy(bytes).into_owned()),
        0x1E => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        0x1C => bytes
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// One DER element with the expected tag: (tag, contents, what follows).
pub(super) fn element(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    any(input).filter(|(t, _, _)| *t == tag)
}

/// One DER element of any (single-byte) tag: (tag, contents, what follows).
pub(super) fn any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (digits, rest) = rest.split_at(n);
        let len = digits.iter().fold(0usize, |len, d| len << 8 | *d as usize);
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::common_name;
    use rcgen::{CertificateParams, DnType, DnValue, KeyPair};

    fn certificate_with_cn(cn: Option<DnValue>) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "warren");
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.distinguished_name.push(DnType::CountryName, "NL");
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_subjects_common_name_is_read_in_each_string_type() {
        let utf8 = certificate_with_cn(Some(DnValue::Utf8String("zoë".into())));
        assert_eq!(common_name(&utf8).as_deref(), Some("zoë"));
        let printable = DnValue::PrintableString("svc-orders".try_into().unwrap());
        assert_eq!(
            common_name(&certificate_with_cn(Some(printable))).as_deref(),
            Some("svc-orders")
        );
        let bmp = DnValue::BmpString("zoë".try_into().unwrap());
        assert_eq!(
            common_name(&certificate_with_cn(Some(bmp))).as_deref(),
            Some("zoë")
        );
        assert_eq!(common_name(&certificate_with_cn(None)), None);
    }

    #[test]
    fn garbage_has_no_common_name() {
        assert_eq!(common_name(b""), None);
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(common_name(&[0x30, 0x03, 0x30, 0x01]), None);
        assert_eq!(common_name(&[0x02, 0x01, 0x00]), None);
    }

    /// Every cut and every single-byte change of a real certificate is read without a
    /// panic (a CA may sign odd subjects; the walk must stay total).
    #[test]
    fn damaged_certificates_are_read_without_panicking() {
        let der = certificate_with_cn(Some(DnValue::Utf8String("svc".into())));
        for end in 0..der.len() {
            let _ = common_name(&der[..end]);
        }
        for at in 0..der.len() {
            for value in [0x00, 0x7f, 0x80, 0x84, 0xff] {
                let mut bad = der.clone();
                bad[at] = value;
                let _ = common_name(&bad);
            }
        }
    }
}
