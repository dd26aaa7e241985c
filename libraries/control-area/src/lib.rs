//! Records the kernel writes into the QSPI control area for the bootloader: a boot request for a
//! staged image, and a confirmation of the running trial image.
//!
//! The request sector is written only by the kernel (the update-region capsule) and read by the
//! bootloader; the bootloader keeps its own journal and status elsewhere (see `docs/layout.md`), so
//! the two sides never program the same flash. Records are appended into erased 64-byte slots and
//! never rewritten; the newest valid record (highest sequence) wins. A CRC-32 over each record
//! detects a program torn by a power cut, and an erased (all 0xFF) slot marks the end of the log.
#![no_std]
#![forbid(unsafe_code)]

/// Size of one record slot in bytes.
pub const RECORD_LEN: usize = 64;
/// "TOTA" read as a little-endian u32.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"TOTA");

/// What a record asks of the bootloader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// Install the image staged in the staging slot (its total length and header+payload hash given).
    BootRequest,
    /// The running trial image works: keep it and raise the security-counter floor.
    Confirm,
}

impl RecordKind {
    fn to_u16(self) -> u16 {
        match self {
            RecordKind::BootRequest => 1,
            RecordKind::Confirm => 2,
        }
    }
    fn from_u16(v: u16) -> Option<Self> {
        match v {
            1 => Some(RecordKind::BootRequest),
            2 => Some(RecordKind::Confirm),
            _ => None,
        }
    }
}

/// One decoded control record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: RecordKind,
    /// Strictly increasing across the log; the newest valid record wins.
    pub sequence: u32,
    /// BootRequest: total bytes of the staged image (header, payload, TLVs). Confirm: 0.
    pub image_len: u32,
    /// BootRequest: the image's SHA-256 TLV value. Confirm: the SHA-256 TLV value of the image
    /// being confirmed (so a confirm can never apply to a different image).
    pub image_hash: [u8; 32],
}

/// Why a slot does not hold a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// All bytes are 0xFF: the end of the log.
    Erased,
    /// Wrong magic, unknown kind or CRC mismatch: torn or foreign data, to be skipped.
    Corrupt,
}

impl Record {
    /// Byte layout (little-endian): magic u32 | kind u16 | 0 u16 | sequence u32 | image_len u32 |
    /// image_hash [32] | reserved 0xFF [12] | crc32 u32 over bytes 0..60.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0xFF; RECORD_LEN];
        out[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        out[4..6].copy_from_slice(&self.kind.to_u16().to_le_bytes());
        out[6..8].copy_from_slice(&0u16.to_le_bytes());
        out[8..12].copy_from_slice(&self.sequence.to_le_bytes());
        out[12..16].copy_from_slice(&self.image_len.to_le_bytes());
        out[16..48].copy_from_slice(&self.image_hash);
        let crc = crc32(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(slot: &[u8; RECORD_LEN]) -> Result<Record, DecodeError> {
        if is_erased(slot) {
            return Err(DecodeError::Erased);
        }
        let word =
            |at: usize| u32::from_le_bytes([slot[at], slot[at + 1], slot[at + 2], slot[at + 3]]);
        if word(0) != RECORD_MAGIC || word(60) != crc32(&slot[..60]) {
            return Err(DecodeError::Corrupt);
        }
        let kind = RecordKind::from_u16(u16::from_le_bytes([slot[4], slot[5]]))
            .ok_or(DecodeError::Corrupt)?;
        let mut image_hash = [0; 32];
        image_hash.copy_from_slice(&slot[16..48]);
        Ok(Record {
            kind,
            sequence: word(8),
            image_len: word(12),
            image_hash,
        })
    }
}

/// The forward scan of a request sector's append-only log, fed in pieces (sans-IO: the caller
/// reads the flash). Slots are filled in order, so the first erased slot ends the log and is
/// where the next record goes; the newest record is the valid one with the highest sequence;
/// torn (corrupt) slots are skipped. (The bootloader reads the same log from its end instead:
/// `boot_core`'s request scan, which stops as soon as its answer is settled.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogScan {
    /// The newest valid record so far.
    pub newest: Option<Record>,
    /// Offset of the first erased slot, once found.
    pub next_free: Option<usize>,
    /// Offset of the next slot to be fed.
    at: usize,
}

impl LogScan {
    /// A scan from the start of the sector.
    pub const fn new() -> Self {
        LogScan {
            newest: None,
            next_free: None,
            at: 0,
        }
    }

    /// A scan that continues at sector offset `at` with `newest` found before it.
    pub const fn resume(newest: Option<Record>, at: usize) -> Self {
        LogScan {
            newest,
            next_free: None,
            at,
        }
    }

    /// Feeds the next slots of the sector, in order (whole slots; a trailing partial slot is
    /// ignored). Returns whether the log has ended (an erased slot was found); slots fed after
    /// that change nothing.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.next_free.is_some() {
            return true;
        }
        for chunk in bytes.chunks_exact(RECORD_LEN) {
            let mut slot = [0; RECORD_LEN];
            slot.copy_from_slice(chunk);
            match Record::decode(&slot) {
                Ok(r) => {
                    if self.newest.is_none_or(|n| r.sequence > n.sequence) {
                        self.newest = Some(r);
                    }
                }
                Err(DecodeError::Erased) => {
                    self.next_free = Some(self.at);
                    return true;
                }
                Err(DecodeError::Corrupt) => {}
            }
            self.at += RECORD_LEN;
        }
        false
    }
}

/// Scan a request sector's contents: the newest valid record, and the offset of the first erased
/// slot where the next record goes (`None` when the sector is full and must be erased first).
pub fn scan(sector: &[u8]) -> (Option<Record>, Option<usize>) {
    let mut log = LogScan::new();
    log.feed(sector);
    (log.newest, log.next_free)
}

/// Whether `bytes` read as erased NOR flash (all 0xFF); compared four words at a time.
pub fn is_erased(bytes: &[u8]) -> bool {
    let mut blocks = bytes.chunks_exact(16);
    for b in &mut blocks {
        let mut all = u32::MAX;
        for w in b.chunks_exact(4) {
            all &= u32::from_ne_bytes([w[0], w[1], w[2], w[3]]);
        }
        if all != u32::MAX {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| b == 0xFF)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib), four bits per step: a 64-byte table, about four
/// times faster than bitwise and small enough for the bootloader.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        crc = (crc >> 4) ^ CRC_NIBBLE[(crc & 0xF) as usize];
        crc = (crc >> 4) ^ CRC_NIBBLE[(crc & 0xF) as usize];
    }
    !crc
}

/// `CRC_NIBBLE[n]`: the CRC register after shifting the four bits `n` out of it.
const CRC_NIBBLE: [u32; 16] = {
    let mut t = [0u32; 16];
    let mut n = 0;
    while n < 16 {
        let mut c = n as u32;
        let mut bit = 0;
        while bit < 4 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
            bit += 1;
        }
        t[n] = c;
        n += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn request(seq: u32) -> Record {
        Record {
            kind: RecordKind::BootRequest,
            sequence: seq,
            image_len: 1234,
            image_hash: [seq as u8; 32],
        }
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn erased_means_every_byte_is_ff() {
        let mut b = [0xFFu8; 71];
        for len in 0..=b.len() {
            assert!(is_erased(&b[..len]));
        }
        for at in 0..b.len() {
            b[at] = 0x7F;
            assert!(!is_erased(&b), "byte {at}");
            assert!(is_erased(&b[..at]));
            b[at] = 0xFF;
        }
    }

    #[test]
    fn crc32_agrees_with_the_bitwise_definition() {
        fn bitwise(data: &[u8]) -> u32 {
            let mut crc = !0u32;
            for &byte in data {
                crc ^= byte as u32;
                for _ in 0..8 {
                    crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
                }
            }
            !crc
        }
        let data: [u8; 256] = core::array::from_fn(|i| (i as u8).wrapping_mul(167) ^ 0x5A);
        for len in 0..=data.len() {
            assert_eq!(crc32(&data[..len]), bitwise(&data[..len]), "length {len}");
        }
    }

    #[test]
    fn records_round_trip_and_any_flipped_bit_is_rejected() {
        let r = request(7);
        let bytes = r.encode();
        assert_eq!(Record::decode(&bytes), Ok(r));
        for bit in 0..RECORD_LEN * 8 {
            let mut torn = bytes;
            torn[bit / 8] ^= 1 << (bit % 8);
            if bit / 8 >= 48 && bit / 8 < 60 {
                // Reserved bytes are covered by the CRC too.
                assert_eq!(Record::decode(&torn), Err(DecodeError::Corrupt));
            } else {
                assert!(Record::decode(&torn).is_err(), "bit {bit} flip accepted");
            }
        }
    }

    #[test]
    fn a_scan_fed_in_pieces_finds_what_one_pass_finds() {
        let mut sector = [0xFFu8; 1024];
        for (i, seq) in [4u32, 2, 7, 5].into_iter().enumerate() {
            sector[i * 64..(i + 1) * 64].copy_from_slice(&request(seq).encode());
        }
        sector[2 * 64 + 20] &= 0xF0; // seq 7 torn: a program cut short
        for piece in [64, 128, 256, 1024] {
            let mut log = LogScan::new();
            let mut ended = false;
            for chunk in sector.chunks(piece) {
                ended = log.feed(chunk);
            }
            assert!(ended, "piece {piece}");
            assert_eq!((log.newest, log.next_free), scan(&sector), "piece {piece}");
            assert_eq!(log.newest, Some(request(5)));
            assert_eq!(log.next_free, Some(256));
        }
        // Resumed after the first two slots with their newest: the same answer.
        let mut log = LogScan::resume(Some(request(4)), 128);
        assert!(log.feed(&sector[128..]));
        assert_eq!((log.newest, log.next_free), (Some(request(5)), Some(256)));
        // Fed after the end: nothing changes.
        assert!(log.feed(&request(99).encode()));
        assert_eq!(log.newest, Some(request(5)));
    }

    #[test]
    fn scan_finds_newest_valid_record_and_next_free_slot() {
        let mut sector = [0xFFu8; 4096];
        sector[0..64].copy_from_slice(&request(1).encode());
        sector[64..128].copy_from_slice(&request(3).encode());
        let mut torn = request(9).encode();
        torn[20] &= 0xF0; // a program cut short: some bits never cleared
        sector[128..192].copy_from_slice(&torn);
        assert_eq!(scan(&sector), (Some(request(3)), Some(192)));
        assert_eq!(scan(&[0xFF; 4096]), (None, Some(0)));
        let full: [u8; 4096] = core::array::from_fn(|i| request((i / 64) as u32).encode()[i % 64]);
        assert_eq!(scan(&full), (Some(request(63)), None));
    }
}
