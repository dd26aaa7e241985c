//! The DER form of an ECDSA signature, `SEQUENCE { INTEGER r, INTEGER s }`, to raw `r ‖ s`.

/// The longest DER P-256 signature (both integers 33 bytes) — also imgtool's padded length.
pub const MAX_DER_SIGNATURE_LEN: usize = 72;

/// Converts a DER ECDSA P-256 signature to 64 raw bytes `r ‖ s`.
///
/// Trailing zero bytes after the sequence are accepted: imgtool's `--pad-sig` pads signatures
/// to 72 bytes that way. Anything else that is not minimal, well-formed DER is refused.
pub fn der_to_raw_signature(der: &[u8]) -> Option<[u8; 64]> {
    let (&tag, rest) = der.split_first()?;
    let (&len, rest) = rest.split_first()?;
    if tag != 0x30 || len >= 0x80 || usize::from(len) > rest.len() {
        return None;
    }
    let (body, padding) = rest.split_at(usize::from(len));
    if padding.iter().any(|&b| b != 0) {
        return None;
    }
    let mut raw = [0u8; 64];
    let body = integer(body, &mut raw[..32])?;
    let body = integer(body, &mut raw[32..])?;
    if !body.is_empty() {
        return None;
    }
    Some(raw)
}

/// Parses one positive, minimally encoded INTEGER of at most 32 value bytes into `out`
/// (right-aligned); returns what follows it.
fn integer<'a>(input: &'a [u8], out: &mut [u8]) -> Option<&'a [u8]> {
    let (&tag, rest) = input.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if tag != 0x02 || len == 0 || len > 33 || len > rest.len() {
        return None;
    }
    let (mut value, rest) = rest.split_at(len);
    if value[0] & 0x80 != 0 {
        return None; // negative
    }
    if value[0] == 0 && len > 1 {
        if value[1] & 0x80 == 0 {
            return None; // non-minimal
        }
        value = &value[1..];
    }
    if value.len() > 32 {
        return None;
    }
    out[32 - value.len()..].copy_from_slice(value);
    Some(rest)
}

/// Encodes raw `r ‖ s` as a minimal DER ECDSA signature into `out`; returns its length.
pub fn raw_to_der_signature(raw: &[u8; 64], out: &mut [u8; MAX_DER_SIGNATURE_LEN]) -> usize {
    let mut len = 2;
    for half in [&raw[..32], &raw[32..]] {
        let skip = half.iter().take_while(|&&b| b == 0).count().min(31);
        let value = &half[skip..];
        let pad = usize::from(value[0] & 0x80 != 0);
        out[len] = 0x02;
        out[len + 1] = (value.len() + pad) as u8;
        len += 2;
        if pad == 1 {
            out[len] = 0;
            len += 1;
        }
        out[len..len + value.len()].copy_from_slice(value);
        len += value.len();
    }
    out[0] = 0x30;
    out[1] = (len - 2) as u8;
    len
}
