//! The on-air format: AD structure framing, PDU kinds, chunk geometry and the block CRC.
//! `docs/transfer-protocol.md` describes the same bytes in prose.

/// Legacy advertising carries at most 31 bytes of AdvData per PDU.
pub const ADV_DATA_MAX: usize = 31;
/// AD type "Manufacturer Specific Data" (Bluetooth Assigned Numbers, Generic Access Profile).
pub const AD_TYPE_MANUFACTURER_SPECIFIC: u8 = 0xFF;
/// Company identifier 0xFFFF: reserved by the Bluetooth SIG for internal use and testing.
/// A product replaces it with its own assigned identifier ([`crate::Link::company_id`]).
pub const DEFAULT_COMPANY_ID: u16 = 0xFFFF;
/// Bytes of one AD structure's own framing: length, type, 16-bit company identifier.
pub const AD_OVERHEAD: usize = 4;
/// Protocol bytes per PDU: what is left of the AdvData after the AD framing.
pub const PDU_MAX: usize = ADV_DATA_MAX - AD_OVERHEAD;

/// Image bytes in one data PDU (27 − 2-byte chunk index).
pub const CHUNK_LEN: usize = 25;
/// A block is one 4 KiB flash sector of the staged image; each has its own CRC.
pub const BLOCK_LEN: usize = 4096;
/// log2 of [`BLOCK_LEN`], as sent in the announce.
pub const BLOCK_LOG2: u8 = 12;
/// Chunks never cross a block boundary: 163 chunks of 25 bytes and one of 21 per full block.
pub const CHUNKS_PER_BLOCK: u32 = BLOCK_LEN.div_ceil(CHUNK_LEN) as u32;
/// Largest image the protocol (and the receiver's fixed tables) carries: 256 blocks, 1 MiB.
pub const MAX_BLOCKS: usize = 256;
pub const MAX_IMAGE_LEN: u32 = (MAX_BLOCKS * BLOCK_LEN) as u32;
pub const MAX_CHUNKS: u32 = MAX_BLOCKS as u32 * CHUNKS_PER_BLOCK;
/// Data PDUs start with a big-endian chunk index below this; control PDUs with a byte ≥ 0xF0.
pub const CONTROL_FLOOR: u16 = 0xF000;

/// Protocol version in the announce. Version 2 binds data PDUs to their session through the
/// advertiser address ([`session_address`]); version 1 had no binding.
pub const VERSION: u8 = 2;

/// The advertiser address (AdvA, as sent: least significant byte first) a sender of `session`
/// advertises from: a static random device address (the two top bits set) holding the session
/// id, so a receiver tells a data PDU of its session from another sender's at no AdvData cost.
/// The fixed bytes keep the random part from being all zeros or all ones, as the Core
/// specification requires of a static address.
pub const fn session_address(session: u32) -> [u8; 6] {
    let s = session.to_le_bytes();
    [s[0], s[1], s[2], s[3], 0x7A, 0xC0 | 0x2D]
}

/// Control PDU kinds (first byte).
pub const KIND_ANNOUNCE: u8 = 0xF1;
pub const KIND_MANIFEST: u8 = 0xF2;
pub const KIND_STATUS: u8 = 0xF8;
/// Base of a delta session (sender → receiver, right after each announce of the session):
/// kind, session, then the first [`BASE_ID_LEN`] bytes of the SHA-256 hash TLV of the signed
/// image the patch was made against.
pub const KIND_BASE: u8 = 0xF3;
/// Bytes of an image hash that identify a base (in [`KIND_BASE`] and the `WrongBase` status).
pub const BASE_ID_LEN: usize = 16;
pub const BASE_LEN: usize = 5 + BASE_ID_LEN;
/// Target of an app session (sender → receiver, right after each announce of the session):
/// kind, session, the length of the app's TBF package name, then the name's bytes. A kernel
/// session has none. The receiver's user installs a completed app session as that app instead
/// of finalizing a kernel image.
pub const KIND_TARGET: u8 = 0xF4;
/// Bytes of a target PDU before the name.
pub const TARGET_HEAD: usize = 6;
/// Longest package name a target PDU carries (what is left of a PDU after its head).
pub const TARGET_NAME_MAX: usize = PDU_MAX - TARGET_HEAD;

pub const ANNOUNCE_LEN: usize = 17;
/// Manifest: kind, session, first block, then up to this many CRC-32s.
pub const MANIFEST_HEAD: usize = 7;
pub const CRCS_PER_MANIFEST: usize = (PDU_MAX - MANIFEST_HEAD) / 4;
/// Status: kind, session, state, need-manifest block, bitmap base, then the bitmap.
pub const STATUS_HEAD: usize = 10;
pub const STATUS_BITMAP_BYTES: usize = PDU_MAX - STATUS_HEAD;
/// Chunks one status PDU reports on.
pub const STATUS_WINDOW: u32 = (STATUS_BITMAP_BYTES * 8) as u32;
/// "No manifest needed" in a status PDU.
pub const NO_BLOCK: u16 = 0xFFFF;

/// Capability bits in the announce. A receiver refuses any bit it does not implement, so a
/// sender can add compressed or delta images later without an old receiver staging garbage.
pub mod capability {
    /// The chunks carry a compressed image (imgtool's format, MCUboot's compressed-image
    /// flags). Carried like [`DELTA`]: the kernel stages it in its received-stream area and
    /// decodes the plain image from it at finalize.
    pub const COMPRESSED: u8 = 1 << 0;
    /// The chunks carry a delta patch against the running kernel (`ota-reconstruct`'s format).
    /// The transfer carries it as any image; the session tag keeps the bit, so the kernel
    /// stages it in its received-stream area and rebuilds the image from it at finalize. A
    /// kernel that cannot refuses the session at begin or the patch at finalize: nothing of
    /// it is installed.
    pub const DELTA: u8 = 1 << 1;
    /// The chunks carry a userspace app: one TBF with its credential footer, as elf2tab made
    /// it. The session's target PDU ([`super::KIND_TARGET`]) names the app. Never combined
    /// with [`COMPRESSED`] or [`DELTA`] (refused as unsupported); a receiver takes it only when
    /// its device installs apps ([`crate::Receiver::accept_apps`]), else `Unsupported`.
    pub const APP: u8 = 1 << 2;
    /// What this version carries: plain images, compressed images, delta patches and apps.
    pub const SUPPORTED: u8 = COMPRESSED | DELTA | APP;
}

/// The receiver's state as reported in its status PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RxState {
    /// Listening; no session joined yet.
    Listening = 0,
    /// Receiving chunks.
    Receiving = 1,
    /// Every block staged and CRC-checked; the image is finalized.
    Complete = 2,
    /// The announce asked for a capability this receiver lacks.
    Unsupported = 3,
    /// The image does not fit.
    TooLarge = 4,
    /// The staged image failed its final check (finalize refused it).
    Rejected = 5,
    /// The announce is of another protocol version: nothing of it is staged.
    VersionMismatch = 6,
    /// A delta session whose base is not the image this receiver runs (or the receiver does
    /// not know what it runs): nothing of it is staged. The status carries the running image's
    /// id ([`BASE_ID_LEN`] bytes, all 0xFF when unknown) after its head.
    WrongBase = 7,
}

impl RxState {
    pub fn from_u8(v: u8) -> Option<RxState> {
        Some(match v {
            0 => RxState::Listening,
            1 => RxState::Receiving,
            2 => RxState::Complete,
            3 => RxState::Unsupported,
            4 => RxState::TooLarge,
            5 => RxState::Rejected,
            6 => RxState::VersionMismatch,
            7 => RxState::WrongBase,
            _ => return None,
        })
    }

    /// A refusal: the receiver will not take this transfer, so its sender stops.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            RxState::Unsupported
                | RxState::TooLarge
                | RxState::Rejected
                | RxState::VersionMismatch
                | RxState::WrongBase
        )
    }
}

/// The staging tag's byte that names a chained session's bearer (`Bearer::code`); 0xFF, as in
/// every tag written before bearers existed, is legacy.
pub const TAG_BEARER: usize = 14;

/// The staging tag's byte that holds the session's capability bits ([`capability`]).
pub const TAG_CAPABILITIES: usize = 12;

/// Whether a staging tag is a received stream's: a compressed image or a delta patch, staged in
/// the received-stream area and rebuilt into the staging slot before finalize.
pub fn is_stream_tag(tag: &[u8; 16]) -> bool {
    tag[TAG_CAPABILITIES] & (capability::COMPRESSED | capability::DELTA) != 0
}

/// A staging tag read back: its session number.
pub fn tag_session(tag: &[u8; 16]) -> u32 {
    u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]])
}

/// A staging tag read back: the bearer its session was received on (legacy for 0xFF); `None`
/// for a code this build does not know.
pub fn tag_bearer(tag: &[u8; 16]) -> Option<crate::bearer::Bearer> {
    match tag[TAG_BEARER] {
        0xFF => Some(crate::bearer::Bearer::Legacy),
        code => crate::bearer::Bearer::from_code(code),
    }
}

/// What a transfer is: the announce's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub session: u32,
    pub image_len: u32,
    /// CRC-32 of the whole image (identifies it when a receiver resumes).
    pub image_crc: u32,
    pub capabilities: u8,
}

impl SessionInfo {
    /// The 16-byte tag stored with the staging session so a rebooted receiver knows what it has.
    pub fn tag(&self) -> [u8; 16] {
        let mut t = [0xFF; 16];
        t[0..4].copy_from_slice(&self.session.to_le_bytes());
        t[4..8].copy_from_slice(&self.image_len.to_le_bytes());
        t[8..12].copy_from_slice(&self.image_crc.to_le_bytes());
        t[TAG_CAPABILITIES] = self.capabilities;
        t[13] = VERSION;
        t
    }

    /// The tag of this session received on `bearer`: a chained bearer's code in byte
    /// [`TAG_BEARER`]; a legacy session's tag is [`SessionInfo::tag`] as it always was.
    pub fn tag_on(&self, bearer: Option<crate::bearer::Bearer>) -> [u8; 16] {
        let mut t = self.tag();
        if let Some(b) = bearer.filter(|b| b.chained()) {
            t[TAG_BEARER] = b.code();
        }
        t
    }

    pub fn total_chunks(&self) -> u32 {
        total_chunks(self.image_len)
    }

    pub fn blocks(&self) -> u32 {
        self.image_len.div_ceil(BLOCK_LEN as u32)
    }
}

/// Chunks needed for an image of `image_len` bytes.
pub fn total_chunks(image_len: u32) -> u32 {
    let full = image_len / BLOCK_LEN as u32;
    let rest = image_len % BLOCK_LEN as u32;
    full * CHUNKS_PER_BLOCK + rest.div_ceil(CHUNK_LEN as u32)
}

/// Image offset and length of chunk `index` (caller checks `index < total_chunks`).
pub fn chunk_range(index: u32, image_len: u32) -> (u32, usize) {
    let block = index / CHUNKS_PER_BLOCK;
    let within = (index % CHUNKS_PER_BLOCK) * CHUNK_LEN as u32;
    let offset = block * BLOCK_LEN as u32 + within;
    let len = (CHUNK_LEN as u32)
        .min(BLOCK_LEN as u32 - within)
        .min(image_len.saturating_sub(offset));
    (offset, len as usize)
}

/// The chunk holding image offset `offset`.
pub fn chunk_of(offset: u32) -> u32 {
    let block = offset / BLOCK_LEN as u32;
    block * CHUNKS_PER_BLOCK + (offset % BLOCK_LEN as u32) / CHUNK_LEN as u32
}

/// Wrap a protocol PDU in its AD structure; returns the AdvData length.
pub fn frame(company_id: u16, pdu: &[u8], out: &mut [u8; ADV_DATA_MAX]) -> usize {
    let n = pdu.len().min(PDU_MAX);
    out[0] = (n + 3) as u8;
    out[1] = AD_TYPE_MANUFACTURER_SPECIFIC;
    out[2..4].copy_from_slice(&company_id.to_le_bytes());
    out[4..4 + n].copy_from_slice(&pdu[..n]);
    n + AD_OVERHEAD
}

/// Why AdvData was not taken as one of our PDUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// More than 31 bytes: not a legacy advertisement.
    Oversized,
    /// An AD structure runs past the end of the AdvData.
    Truncated,
    /// No Manufacturer Specific structure with our company identifier.
    NotOurs,
}

/// Find our PDU among the AD structures of `adv_data`.
pub fn unframe(company_id: u16, adv_data: &[u8]) -> Result<&[u8], FrameError> {
    if adv_data.len() > ADV_DATA_MAX {
        return Err(FrameError::Oversized);
    }
    let mut at = 0;
    while at < adv_data.len() {
        let len = adv_data[at] as usize;
        if len == 0 {
            // Zero length ends the significant part (the rest is padding).
            break;
        }
        let end = at + 1 + len;
        if end > adv_data.len() {
            return Err(FrameError::Truncated);
        }
        let body = &adv_data[at + 1..end];
        if body[0] == AD_TYPE_MANUFACTURER_SPECIFIC
            && body.len() >= 3
            && u16::from_le_bytes([body[1], body[2]]) == company_id
        {
            return Ok(&body[3..]);
        }
        at = end;
    }
    Err(FrameError::NotOurs)
}

/// CRC-32 (IEEE, reflected; the same as `control-area`'s) with a 1 KiB table built at compile
/// time: the receiver checks every staged byte, so it is worth the table.
#[derive(Clone, Copy, Debug)]
pub struct Crc32(u32);

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    pub const fn new() -> Self {
        Crc32(!0)
    }
    pub fn update(&mut self, data: &[u8]) {
        let mut c = self.0;
        for &b in data {
            c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }
    pub fn finish(&self) -> u32 {
        !self.0
    }
    /// CRC of one block, bound to its session: CRC-32 over the session id (LE) then the bytes.
    pub fn block(session: u32, bytes: &[u8]) -> u32 {
        let mut c = Crc32::new();
        c.update(&session.to_le_bytes());
        c.update(bytes);
        c.finish()
    }
    pub fn of(bytes: &[u8]) -> u32 {
        let mut c = Crc32::new();
        c.update(bytes);
        c.finish()
    }
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Encode an announce PDU.
pub fn announce(info: &SessionInfo, out: &mut [u8; PDU_MAX]) -> usize {
    out[0] = KIND_ANNOUNCE;
    out[1] = VERSION;
    out[2..6].copy_from_slice(&info.session.to_le_bytes());
    out[6..10].copy_from_slice(&info.image_len.to_le_bytes());
    out[10..14].copy_from_slice(&info.image_crc.to_le_bytes());
    out[14] = info.capabilities;
    out[15] = CHUNK_LEN as u8;
    out[16] = BLOCK_LOG2;
    ANNOUNCE_LEN
}

/// Encode the target PDU of app session `session`: the app's TBF package name (1 to
/// [`TARGET_NAME_MAX`] bytes; the caller checks, [`crate::Sender::new_app`] refuses others).
pub fn target(session: u32, name: &[u8], out: &mut [u8; PDU_MAX]) -> usize {
    let n = name.len().min(TARGET_NAME_MAX);
    out[0] = KIND_TARGET;
    out[1..5].copy_from_slice(&session.to_le_bytes());
    out[5] = n as u8;
    out[TARGET_HEAD..TARGET_HEAD + n].copy_from_slice(&name[..n]);
    TARGET_HEAD + n
}

/// Decode a target PDU: its session and the app's name; `None` unless well formed (a name of
/// 1 to [`TARGET_NAME_MAX`] bytes that fills the PDU exactly).
pub fn parse_target(pdu: &[u8]) -> Option<(u32, &[u8])> {
    if pdu.len() <= TARGET_HEAD || pdu[0] != KIND_TARGET {
        return None;
    }
    let n = pdu[5] as usize;
    (n > 0 && n <= TARGET_NAME_MAX && pdu.len() == TARGET_HEAD + n)
        .then(|| (le32(pdu, 1), &pdu[TARGET_HEAD..]))
}

/// Why an announce PDU was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnounceError {
    /// Another protocol version; `session` is its session id when the PDU is long enough to
    /// hold one where every version so far puts it (bytes 2–5), so the refusal can name it.
    Version { version: u8, session: Option<u32> },
    /// Not a well-formed announce of this version.
    Malformed,
}

/// Decode an announce PDU.
pub fn parse_announce(pdu: &[u8]) -> Result<SessionInfo, AnnounceError> {
    if pdu.len() < 2 || pdu[0] != KIND_ANNOUNCE {
        return Err(AnnounceError::Malformed);
    }
    if pdu[1] != VERSION {
        return Err(AnnounceError::Version {
            version: pdu[1],
            session: (pdu.len() >= 6).then(|| le32(pdu, 2)),
        });
    }
    if pdu.len() != ANNOUNCE_LEN || pdu[15] as usize != CHUNK_LEN || pdu[16] != BLOCK_LOG2 {
        return Err(AnnounceError::Malformed);
    }
    Ok(SessionInfo {
        session: le32(pdu, 2),
        image_len: le32(pdu, 6),
        image_crc: le32(pdu, 10),
        capabilities: pdu[14],
    })
}

/// Bearer offer (sender → receiver, right after each announce of a sender that can send the
/// data over more than legacy advertising): kind, session, the bearers offered
/// ([`crate::bearer::BearerSet`] bits). The receiver picks the fastest it can follow and says
/// so in its status ([`STATUS_BEARER_SHIFT`]); the data then travels over that bearer in chunks
/// of its geometry ([`crate::bearer::Geometry::for_bearer`]).
pub const KIND_BEARERS: u8 = 0xF5;
pub const BEARERS_LEN: usize = 6;
/// The status's state byte carries the bearer the receiver picked (its code, 0: no offer
/// heard) in its high nibble; the state itself stays in the low nibble. A receiver that heard no
/// offer sends the byte as before.
pub const STATUS_BEARER_SHIFT: u8 = 4;
/// The status's high nibble while a receiver that picked a chained bearer erases the sectors
/// the announced image needs, before it names its pick: the sender keeps holding the data and
/// does not count the status towards its legacy fallback.
pub const STATUS_BEARER_PREPARING: u8 = 0xF;
/// Most AdvData of an event of an extended or periodic set.
pub const EXT_ADV_DATA_MAX: usize = crate::bearer::CHAIN_ADV_DATA_MAX;
/// Largest protocol PDU in one AD structure (length octet, type, company identifier).
pub const EXT_PDU_MAX: usize = crate::bearer::AD_STRUCTURE_MAX - AD_OVERHEAD;

/// Encode a bearer offer.
pub fn bearers(session: u32, offered: crate::bearer::BearerSet, out: &mut [u8]) -> usize {
    out[0] = KIND_BEARERS;
    out[1..5].copy_from_slice(&session.to_le_bytes());
    out[5] = offered.bits();
    BEARERS_LEN
}

/// Decode a bearer offer: its session and the bearers offered.
pub fn parse_bearers(pdu: &[u8]) -> Option<(u32, crate::bearer::BearerSet)> {
    (pdu.len() == BEARERS_LEN && pdu[0] == KIND_BEARERS)
        .then(|| (le32(pdu, 1), crate::bearer::BearerSet::from_bits(pdu[5])))
}

/// Append one AD structure holding `pdu` (≤ [`EXT_PDU_MAX`]) to `out` at `at`; returns the new
/// end, or `None` if it does not fit.
pub fn frame_into(company_id: u16, pdu: &[u8], out: &mut [u8], at: usize) -> Option<usize> {
    let end = at + AD_OVERHEAD + pdu.len();
    if pdu.len() > EXT_PDU_MAX || end > out.len() {
        return None;
    }
    out[at] = (pdu.len() + 3) as u8;
    out[at + 1] = AD_TYPE_MANUFACTURER_SPECIFIC;
    out[at + 2..at + 4].copy_from_slice(&company_id.to_le_bytes());
    out[at + 4..end].copy_from_slice(pdu);
    Some(end)
}

/// Our PDUs among the AD structures of an extended or periodic event's AdvData, in order. A
/// structure that runs past the end (the chain lost a PDU: the rest of the event is missing) ends
/// the walk with `Err(Truncated)`; AdvData over [`EXT_ADV_DATA_MAX`] yields `Err(Oversized)`.
pub fn ext_pdus(company_id: u16, adv_data: &[u8]) -> ExtPdus<'_> {
    ExtPdus {
        company_id,
        adv_data,
        at: if adv_data.len() > EXT_ADV_DATA_MAX {
            usize::MAX
        } else {
            0
        },
    }
}

/// See [`ext_pdus`].
pub struct ExtPdus<'a> {
    company_id: u16,
    adv_data: &'a [u8],
    at: usize,
}

impl<'a> Iterator for ExtPdus<'a> {
    type Item = Result<&'a [u8], FrameError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.at == usize::MAX {
            self.at = usize::MAX - 1;
            return Some(Err(FrameError::Oversized));
        }
        while self.at < self.adv_data.len() {
            let at = self.at;
            let len = self.adv_data[at] as usize;
            if len == 0 {
                break;
            }
            let end = at + 1 + len;
            if end > self.adv_data.len() {
                self.at = self.adv_data.len();
                return Some(Err(FrameError::Truncated));
            }
            self.at = end;
            let body = &self.adv_data[at + 1..end];
            if body[0] == AD_TYPE_MANUFACTURER_SPECIFIC
                && body.len() >= 3
                && u16::from_le_bytes([body[1], body[2]]) == self.company_id
            {
                return Some(Ok(&body[3..]));
            }
        }
        self.at = self.adv_data.len().min(usize::MAX - 1);
        None
    }
}
