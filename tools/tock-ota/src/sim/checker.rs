//! The bootloader's image check for the simulator: MCUboot-format structure, SHA-256,
//! security counter, size and load address, read from the staging slot in 256-byte pieces.
use boot_core::{CheckPolicy, CheckedImage, ImageChecker, Reason, Region};
use embedded_storage::nor_flash::ReadNorFlash;
use sha2::{Digest, Sha256};

const MAGIC: u32 = 0x96f3_b83d;
const TLV_INFO: u16 = 0x6907;
const TLV_PROT_INFO: u16 = 0x6908;
const TLV_SHA256: u16 = 0x10;
const TLV_SEC_CNT: u16 = 0x50;

/// TLVs as (type, value) pairs.
pub type Tlvs = Vec<(u16, Vec<u8>)>;
/// A signature check over the image hash, given the unprotected TLVs.
pub type SignatureCheck<'a> = &'a dyn Fn(&[u8; 32], &[(u16, Vec<u8>)]) -> bool;

/// Checks structure and hash; the signature check is delegated to `signature`, called with the
/// image hash and the unprotected TLVs so any verifier can be plugged in.
pub struct McubootChecker<'a> {
    pub signature: SignatureCheck<'a>,
}

fn read<F: ReadNorFlash>(f: &mut F, at: u32, buf: &mut [u8]) -> Result<(), Reason> {
    f.read(at, buf).map_err(|_| Reason::ReadFailed)
}

/// The TLVs of the area starting at `at` (info header included); `magic` is its info magic.
fn tlvs<F: ReadNorFlash>(
    f: &mut F,
    slot: Region,
    at: u32,
    magic: u16,
) -> Result<(u32, Tlvs), Reason> {
    let mut info = [0u8; 4];
    if at.checked_add(4).is_none_or(|e| e > slot.len) {
        return Err(Reason::Malformed);
    }
    read(f, slot.start + at, &mut info)?;
    let total = u16::from_le_bytes([info[2], info[3]]) as u32;
    if u16::from_le_bytes([info[0], info[1]]) != magic || total < 4 || at + total > slot.len {
        return Err(Reason::Malformed);
    }
    let mut out = Vec::new();
    let mut p = at + 4;
    while p + 4 <= at + total {
        let mut h = [0u8; 4];
        read(f, slot.start + p, &mut h)?;
        let kind = u16::from_le_bytes([h[0], h[1]]);
        let len = u16::from_le_bytes([h[2], h[3]]) as u32;
        if p + 4 + len > at + total {
            return Err(Reason::Malformed);
        }
        let mut v = vec![0u8; len as usize];
        read(f, slot.start + p + 4, &mut v)?;
        out.push((kind, v));
        p += 4 + len;
    }
    Ok((total, out))
}

impl ImageChecker for McubootChecker<'_> {
    fn check<F: ReadNorFlash>(
        &self,
        f: &mut F,
        slot: Region,
        policy: &CheckPolicy,
    ) -> Result<CheckedImage, Reason> {
        let mut h = [0u8; 32];
        read(f, slot.start, &mut h)?;
        let w = |a: usize| u32::from_le_bytes([h[a], h[a + 1], h[a + 2], h[a + 3]]);
        if w(0) != MAGIC {
            return Err(Reason::BadMagic);
        }
        let load = w(4);
        let hdr = u16::from_le_bytes([h[8], h[9]]) as u32;
        let prot = u16::from_le_bytes([h[10], h[11]]) as u32;
        let len = w(12);
        if hdr < 32 {
            return Err(Reason::TruncatedHeader);
        }
        let hashed_end = hdr
            .checked_add(len)
            .and_then(|v| v.checked_add(prot))
            .filter(|&e| e <= slot.len)
            .ok_or(Reason::Malformed)?;
        let mut counter = None;
        if prot > 0 {
            let (total, prot_tlvs) = tlvs(f, slot, hdr + len, TLV_PROT_INFO)?;
            if total != prot {
                return Err(Reason::Malformed);
            }
            for (kind, v) in prot_tlvs {
                if kind == TLV_SEC_CNT && v.len() == 4 {
                    counter = Some(u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
                }
            }
        }
        let (tlv_total, unprot) = tlvs(f, slot, hashed_end, TLV_INFO)?;
        let mut sha = Sha256::new();
        let mut buf = [0u8; 256];
        let mut off = 0;
        while off < hashed_end {
            let n = (hashed_end - off).min(256) as usize;
            read(f, slot.start + off, &mut buf[..n])?;
            sha.update(&buf[..n]);
            off += n as u32;
        }
        let hash: [u8; 32] = sha.finalize().into();
        let stored = unprot
            .iter()
            .find(|(k, v)| *k == TLV_SHA256 && v.len() == 32)
            .ok_or(Reason::MissingHash)?;
        if stored.1[..] != hash {
            return Err(Reason::HashMismatch);
        }
        if !(self.signature)(&hash, &unprot) {
            return Err(Reason::BadSignature);
        }
        if counter.unwrap_or(0) < policy.min_security_counter {
            return Err(Reason::Downgrade);
        }
        if len > policy.max_payload_len {
            return Err(Reason::TooLarge);
        }
        if load != 0 && load != policy.kernel_addr {
            return Err(Reason::WrongLoadAddress);
        }
        Ok(CheckedImage {
            hash,
            payload_offset: hdr,
            payload_len: len,
            hashed_after_payload: prot,
            total_len: hashed_end + tlv_total,
            security_counter: counter,
        })
    }
}
