//! The parts of a Tock TBF (version 2) an app install needs, read from staged bytes: the base
//! lengths, the header (checksum, program header, package name) and the credential footers.
//!
//! The kernel parses the copied binary again with upstream's `tock-tbf` before it may run; this
//! parse is at least as strict where it matters here (checksum, a program header, a name, binary
//! end inside the TBF), so a TBF it accepts is one the kernel's loader parses too (the capsule
//! tests compare the two on the same bytes). `tock-tbf` is not on crates.io, hence this one.

use crate::Refusal;

/// Bytes of the TBF base header (version, header length, total length, flags, checksum).
pub const BASE_LEN: usize = 16;

/// TLV type of the program header, the package name and a credentials footer.
const TLV_PROGRAM: u16 = 9;
const TLV_PACKAGE_NAME: u16 = 3;
const TLV_CREDENTIALS: u16 = 128;
/// Length of the program header TLV's value: init offset, protected trailer, minimum RAM,
/// binary end, binary version.
const PROGRAM_LEN: usize = 20;
/// Credential format of ECDSA P-256 (`TbfFooterV2CredentialsType::EcdsaNistP256`).
const FORMAT_ECDSA_P256: u32 = 6;
/// Bytes of an ECDSA P-256 credential after its format word: `r || s`.
pub const SIGNATURE_LEN: usize = 64;

/// Longest package name kept from the staged header.
pub const MAX_NAME: usize = 32;

/// `(header_len, total_len)` from the first 8 bytes, checked against the staged length. The
/// whole header must fit `max_header` bytes (one read).
pub fn check_lengths(
    base: &[u8; 8],
    staged_len: usize,
    max_header: usize,
) -> Result<(u16, u32), Refusal> {
    let version = u16::from_le_bytes([base[0], base[1]]);
    let header_len = u16::from_le_bytes([base[2], base[3]]);
    let total_len = u32::from_le_bytes([base[4], base[5], base[6], base[7]]);
    if version != 2
        || usize::from(header_len) < BASE_LEN
        || u32::from(header_len) > total_len
        || usize::try_from(total_len).ok() != Some(staged_len)
        || usize::from(header_len) > max_header
    {
        return Err(Refusal::NotTbf);
    }
    Ok((header_len, total_len))
}

/// What the header check found in the staged TBF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagedApp {
    pub total_len: u32,
    pub header_len: u16,
    /// End of the integrity region (header and binary): the signed bytes are `0..binary_end`,
    /// the footers follow.
    pub binary_end: u32,
    pub version: u32,
    name: [u8; MAX_NAME],
    name_len: u8,
}

impl StagedApp {
    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..usize::from(self.name_len)]).unwrap_or("")
    }
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parse the staged header (exactly `header_len` bytes): checksum (XOR of its words, the
/// checksum word skipped), the TLVs, a program header and a package name.
pub fn check_header(header: &[u8], total_len: u32) -> Result<StagedApp, Refusal> {
    let header_len = u16::try_from(header.len()).map_err(|_| Refusal::NotTbf)?;
    let stored = le32(header, 12).ok_or(Refusal::BadHeader)?;
    let checksum = header
        .chunks_exact(4)
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .fold(0u32, |acc, (_, w)| {
            acc ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]])
        });
    if checksum != stored {
        return Err(Refusal::BadHeader);
    }
    let mut program = None;
    let mut name: Option<&[u8]> = None;
    let mut rest = &header[BASE_LEN..];
    while !rest.is_empty() {
        let (Some(tipe), Some(len)) = (le16(rest, 0), le16(rest, 2)) else {
            return Err(Refusal::BadHeader);
        };
        let len = usize::from(len);
        let value = rest.get(4..4 + len).ok_or(Refusal::BadHeader)?;
        match tipe {
            TLV_PROGRAM if program.is_none() => {
                if len != PROGRAM_LEN {
                    return Err(Refusal::BadHeader);
                }
                program = Some(value);
            }
            TLV_PACKAGE_NAME => {
                core::str::from_utf8(value).map_err(|_| Refusal::BadHeader)?;
                name = Some(value);
            }
            _ => {}
        }
        // TLVs are padded to a multiple of 4 bytes; the last one may end the header unpadded.
        rest = rest.get((4 + len).next_multiple_of(4)..).unwrap_or(&[]);
    }
    let program = program.ok_or(Refusal::NotApp)?;
    let name = name.filter(|n| !n.is_empty() && n.len() <= MAX_NAME);
    let name = name.ok_or(Refusal::NotApp)?;
    let binary_end = le32(program, 12).ok_or(Refusal::BadHeader)?;
    let version = le32(program, 16).ok_or(Refusal::BadHeader)?;
    if binary_end < u32::from(header_len) || binary_end > total_len {
        return Err(Refusal::BadHeader);
    }
    let mut kept = [0; MAX_NAME];
    kept[..name.len()].copy_from_slice(name);
    Ok(StagedApp {
        total_len,
        header_len,
        binary_end,
        version,
        name: kept,
        // name.len() <= MAX_NAME (32), checked above.
        name_len: name.len() as u8,
    })
}

/// The first ECDSA P-256 credential (`r || s`) in the footer TLVs (the bytes from
/// `binary_end`). A TLV that runs past the bytes ends the walk. `None`: unsigned (or signed
/// only in a format the board does not check).
pub fn ecdsa_p256_credential(footers: &[u8]) -> Option<[u8; SIGNATURE_LEN]> {
    let mut rest = footers;
    while let (Some(tipe), Some(len)) = (le16(rest, 0), le16(rest, 2)) {
        let len = usize::from(len);
        let value = rest.get(4..4 + len)?;
        if tipe == TLV_CREDENTIALS && le32(value, 0) == Some(FORMAT_ECDSA_P256) {
            if let Some(signature) = value.get(4..4 + SIGNATURE_LEN) {
                return signature.try_into().ok();
            }
        }
        rest = &rest[4 + len..];
    }
    None
}
