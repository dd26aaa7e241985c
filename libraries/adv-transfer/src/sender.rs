//! The sending side: one advertisement per advertising event out; the receiver's status
//! advertisements in. It sends the image once in order, then whatever the receiver reports
//! missing, until the receiver reports the image complete.
use crate::bearer::{Bearer, BearerSet, Geometry};
use crate::wire::*;

/// Send an announce every this many PDUs, so a receiver that starts or reboots mid-transfer
/// joins within a second or so (at 40 events/s) while costing under 1 % of the air.
pub const ANNOUNCE_EVERY: u32 = 128;

/// A sender that offers bearers beyond legacy falls back to legacy after this many statuses
/// that name no pick (a receiver that does not know the offer, or never heard it). A status
/// that says the receiver is preparing its pick ([`STATUS_BEARER_PREPARING`]) does not count.
pub const STATUSES_WITHOUT_PICK: u8 = 3;

/// Why a sender could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenderError {
    /// Empty, or larger than the protocol carries ([`MAX_IMAGE_LEN`]).
    BadImageLength(usize),
    /// The capability bits ask for something this implementation does not produce.
    UnsupportedCapabilities(u8),
    /// An app session needs its target, the app's package name ([`Sender::new_app`]).
    AppWithoutTarget,
    /// The app's package name is empty or longer than a target PDU carries.
    BadTargetName(usize),
}

impl core::fmt::Display for SenderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SenderError::BadImageLength(n) => {
                write!(f, "image of {n} bytes cannot be sent (1..={MAX_IMAGE_LEN})")
            }
            SenderError::UnsupportedCapabilities(c) => {
                write!(f, "unsupported capabilities {c:#04x}")
            }
            SenderError::AppWithoutTarget => {
                write!(f, "an app session needs the app's package name")
            }
            SenderError::BadTargetName(n) => write!(
                f,
                "app package name of {n} bytes cannot be announced (1..={TARGET_NAME_MAX})"
            ),
        }
    }
}

/// What the sender learnt from an advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxEvent {
    /// Not a status for this session.
    Ignored,
    /// A status: `missing` chunks newly queued for retransmission.
    Status { state: RxState, missing: u32 },
}

/// Counters for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxCounters {
    pub pdus: u64,
    pub data_pdus: u64,
    pub retransmissions: u64,
    pub announces: u64,
    pub manifests: u64,
    pub statuses_heard: u64,
    /// Bytes of AdvData put on air (the AD framing included).
    pub adv_bytes: u64,
}

/// The sender state machine over an image held in memory.
pub struct Sender<'a> {
    company_id: u16,
    image: &'a [u8],
    info: SessionInfo,
    total_chunks: u32,
    /// Next chunk of the first, in-order pass.
    pass_cursor: u32,
    /// Chunks the receiver reported missing, not yet resent.
    requested: [u8; (MAX_CHUNKS as usize).div_ceil(8)],
    requested_count: u32,
    /// On a chained bearer, what the last status asked for (chunks and the manifest group):
    /// sent again, round after round, until the next status. The receiver hears nothing for a
    /// while after each status (it stops following to advertise it, then syncs again), just
    /// when the sender answers: an answer sent once would be lost every time.
    answer: [u8; (MAX_CHUNKS as usize).div_ceil(8)],
    answer_manifest: Option<u32>,
    retx_cursor: u32,
    /// Manifest groups (of `CRCS_PER_MANIFEST` blocks) already sent in the first pass.
    manifests_sent: u32,
    manifest_request: Option<u32>,
    since_announce: u32,
    receiver_state: Option<RxState>,
    counters: TxCounters,
    /// A delta session's base id, sent in a base PDU after each announce.
    base: Option<[u8; BASE_ID_LEN]>,
    base_due: bool,
    /// What the receiver said it runs when it refused the base (`None` inside: unknown).
    receiver_running: Option<Option<[u8; BASE_ID_LEN]>>,
    /// An app session's package name (bytes, length), sent in a target PDU after each announce.
    target: Option<([u8; TARGET_NAME_MAX], u8)>,
    target_due: bool,
    /// The bearers this sender can send the data over ([`Sender::offer_bearers`]).
    offered: BearerSet,
    offer_due: bool,
    /// The session's bearer: `None` while the offer waits for the receiver's pick.
    bearer: Option<Bearer>,
    geom: Geometry,
    statuses_without_pick: u8,
    /// A PDU that did not fit the last extended event; it opens the next one.
    carry: Option<([u8; EXT_PDU_MAX], usize)>,
    /// The last PDU was filler (an announce repeated for want of anything else).
    idle: bool,
    /// A round of the last status's answer is under way (one filler announce between rounds).
    repeating: bool,
}

impl<'a> Sender<'a> {
    /// A sender for `image` in session `session` (pick a random non-zero id per transfer;
    /// reuse it to let a rebooted receiver resume).
    pub fn new(
        company_id: u16,
        image: &'a [u8],
        session: u32,
        capabilities: u8,
    ) -> Result<Self, SenderError> {
        if image.is_empty() || image.len() > MAX_IMAGE_LEN as usize {
            return Err(SenderError::BadImageLength(image.len()));
        }
        if capabilities & !capability::SUPPORTED != 0
            || (capabilities & capability::APP != 0 && capabilities != capability::APP)
        {
            return Err(SenderError::UnsupportedCapabilities(capabilities));
        }
        if capabilities & capability::APP != 0 {
            return Err(SenderError::AppWithoutTarget);
        }
        let info = SessionInfo {
            session,
            image_len: image.len() as u32,
            image_crc: Crc32::of(image),
            capabilities,
        };
        Ok(Sender {
            company_id,
            image,
            info,
            total_chunks: info.total_chunks(),
            pass_cursor: 0,
            requested: [0; (MAX_CHUNKS as usize).div_ceil(8)],
            requested_count: 0,
            answer: [0; (MAX_CHUNKS as usize).div_ceil(8)],
            answer_manifest: None,
            retx_cursor: 0,
            manifests_sent: 0,
            manifest_request: None,
            since_announce: ANNOUNCE_EVERY,
            receiver_state: None,
            counters: TxCounters::default(),
            base: None,
            base_due: false,
            receiver_running: None,
            target: None,
            target_due: false,
            offered: BearerSet::LEGACY,
            offer_due: false,
            bearer: Some(Bearer::Legacy),
            geom: Geometry::LEGACY,
            statuses_without_pick: 0,
            carry: None,
            idle: false,
            repeating: false,
        })
    }

    /// Offer the receiver `bearers` for the data (legacy is always among them): a bearer PDU
    /// follows each announce, and no manifest or chunk goes out until a status names the
    /// receiver's pick, or [`STATUSES_WITHOUT_PICK`] statuses named none (then legacy).
    pub fn offer_bearers(&mut self, bearers: BearerSet) {
        let bearers = BearerSet::from_bits(bearers.bits());
        self.offered = bearers;
        if bearers.beyond_legacy() && self.pass_cursor == 0 {
            self.bearer = None;
        }
    }

    /// The session's bearer, once the receiver picked it (legacy from the start when nothing
    /// else is offered). Data PDUs then go out in [`Sender::next_event`] for a chained bearer,
    /// [`Sender::next_adv`] for legacy; before, [`Sender::next_adv`] sends announces and offers.
    pub fn bearer(&self) -> Option<Bearer> {
        self.bearer
    }

    /// The session's chunk geometry (legacy until a bearer is picked).
    pub fn geometry(&self) -> Geometry {
        self.geom
    }

    fn commit(&mut self, bearer: Bearer) {
        self.bearer = Some(bearer);
        self.geom = Geometry::for_bearer(bearer);
        self.total_chunks = self.geom.total_chunks(self.info.image_len);
    }

    /// A sender for a userspace app: `tbf` is the app's TBF (with its credential footer),
    /// `name` its package name, announced in a target PDU after each announce. A name that is
    /// empty or longer than [`TARGET_NAME_MAX`] bytes is refused ([`SenderError::BadTargetName`]).
    pub fn new_app(
        company_id: u16,
        tbf: &'a [u8],
        session: u32,
        name: &[u8],
    ) -> Result<Self, SenderError> {
        if name.is_empty() || name.len() > TARGET_NAME_MAX {
            return Err(SenderError::BadTargetName(name.len()));
        }
        let mut sender = Sender::new(company_id, tbf, session, 0)?;
        sender.info.capabilities = capability::APP;
        let mut bytes = [0u8; TARGET_NAME_MAX];
        bytes[..name.len()].copy_from_slice(name);
        sender.target = Some((bytes, name.len() as u8));
        Ok(sender)
    }

    /// A sender for a delta patch made against the signed image whose hash TLV starts with
    /// `base` ([`BASE_ID_LEN`] bytes). The receiver joins only if that is what it runs; else it
    /// refuses with [`RxState::WrongBase`] and [`Sender::receiver_running`] says what it runs.
    pub fn new_delta(
        company_id: u16,
        patch: &'a [u8],
        session: u32,
        base: [u8; BASE_ID_LEN],
    ) -> Result<Self, SenderError> {
        let mut sender = Sender::new(company_id, patch, session, capability::DELTA)?;
        sender.base = Some(base);
        Ok(sender)
    }

    /// After a [`RxState::WrongBase`] refusal: the id of the image the receiver runs, `None`
    /// when the receiver does not know it. `None` outside if no such refusal was heard.
    pub fn receiver_running(&self) -> Option<Option<[u8; BASE_ID_LEN]>> {
        self.receiver_running
    }

    pub fn info(&self) -> SessionInfo {
        self.info
    }

    /// The advertiser address (AdvA) this sender must advertise from: receivers take data PDUs
    /// of the session from this address only ([`session_address`]).
    pub fn address(&self) -> [u8; 6] {
        session_address(self.info.session)
    }

    pub fn counters(&self) -> TxCounters {
        self.counters
    }

    /// The receiver's state as last reported.
    pub fn receiver_state(&self) -> Option<RxState> {
        self.receiver_state
    }

    /// True once the receiver reported the image staged and finalized.
    pub fn is_complete(&self) -> bool {
        self.receiver_state == Some(RxState::Complete)
    }

    /// True once there is nothing more to send: the image is complete, or the receiver refused
    /// it ([`RxState::is_refusal`]).
    pub fn is_over(&self) -> bool {
        self.is_complete() || self.receiver_state.is_some_and(RxState::is_refusal)
    }

    /// Chunks sent at least once in the first pass.
    pub fn first_pass_sent(&self) -> u32 {
        self.pass_cursor
    }

    pub fn total_chunks(&self) -> u32 {
        self.total_chunks
    }

    /// Fill `out` with the AdvData for the next advertising event; returns its length.
    pub fn next_adv(&mut self, out: &mut [u8; ADV_DATA_MAX]) -> usize {
        let mut pdu = [0u8; EXT_PDU_MAX];
        let n = self.next_pdu(&mut pdu);
        let len = frame(self.company_id, &pdu[..n], out);
        self.counters.pdus += 1;
        self.counters.adv_bytes += len as u64;
        len
    }

    /// Fill `out` with the AdvData of the next extended or periodic event (the session's bearer
    /// is chained): as many AD structures, each one PDU, as fit; returns its length. An event
    /// ends early after a filler announce (nothing else to send).
    pub fn next_event(&mut self, out: &mut [u8; EXT_ADV_DATA_MAX]) -> usize {
        let mut at = 0;
        loop {
            let (pdu, n) = match self.carry.take() {
                Some(c) => c,
                None => {
                    let mut pdu = [0u8; EXT_PDU_MAX];
                    let n = self.next_pdu(&mut pdu);
                    (pdu, n)
                }
            };
            match frame_into(self.company_id, &pdu[..n], out, at) {
                Some(end) => {
                    self.counters.pdus += 1;
                    self.counters.adv_bytes += (end - at) as u64;
                    at = end;
                }
                None => {
                    self.carry = Some((pdu, n));
                    return at;
                }
            }
            if self.idle {
                return at;
            }
        }
    }

    /// The chunk index of the PDU carried to the next event, if it is a data PDU.
    fn carried_chunk(&self) -> Option<u32> {
        let (pdu, n) = self.carry.as_ref()?;
        let head = u16::from_be_bytes([pdu[0], pdu[1]]);
        (*n >= 2 && head < CONTROL_FLOOR).then_some(head as u32)
    }

    fn next_pdu(&mut self, pdu: &mut [u8; EXT_PDU_MAX]) -> usize {
        self.idle = false;
        if let (Some(base), true) = (self.base, self.base_due) {
            self.base_due = false;
            pdu[0] = KIND_BASE;
            pdu[1..5].copy_from_slice(&self.info.session.to_le_bytes());
            pdu[5..BASE_LEN].copy_from_slice(&base);
            return BASE_LEN;
        }
        if let (Some((name, len)), true) = (self.target, self.target_due) {
            self.target_due = false;
            return legacy_pdu(pdu, |p| target(self.info.session, &name[..len as usize], p));
        }
        if self.offer_due {
            self.offer_due = false;
            return bearers(self.info.session, self.offered, pdu);
        }
        if self.bearer.is_none() {
            // Waiting for the receiver's pick: announce (and offer) only.
            self.idle = true;
            return self.announce(pdu);
        }
        self.since_announce += 1;
        if self.since_announce >= ANNOUNCE_EVERY {
            return self.announce(pdu);
        }
        if let Some(block) = self.manifest_request.take() {
            return self.manifest(block / CRCS_PER_MANIFEST as u32, pdu);
        }
        // In the first pass, a block's CRC goes out just before its first chunk.
        if self.pass_cursor < self.total_chunks {
            let group = self.geom.block_of(self.pass_cursor) / CRCS_PER_MANIFEST as u32;
            if group >= self.manifests_sent {
                self.manifests_sent = group + 1;
                return self.manifest(group, pdu);
            }
        }
        if self.requested_count > 0 {
            if let Some(c) = self.take_requested() {
                self.counters.retransmissions += 1;
                return self.chunk(c, pdu);
            }
        }
        if self.pass_cursor < self.total_chunks {
            let c = self.pass_cursor;
            self.pass_cursor += 1;
            return self.chunk(c, pdu);
        }
        // On a chained bearer the last status's answer again, if it asked for anything.
        if self.bearer.is_some_and(|b| b.chained()) && !self.repeating {
            self.repeating = true;
            self.manifest_request = self.answer_manifest;
            for (at, &byte) in self.answer.iter().enumerate() {
                self.requested[at] |= byte;
            }
            self.requested_count = self.requested.iter().map(|b| b.count_ones()).sum();
            if self.requested_count > 0 || self.manifest_request.is_some() {
                return self.next_pdu(pdu);
            }
        }
        self.repeating = false;
        // Nothing known to be missing: repeat the announce until a status says more.
        self.idle = true;
        self.announce(pdu)
    }

    fn announce(&mut self, pdu: &mut [u8; EXT_PDU_MAX]) -> usize {
        self.since_announce = 0;
        self.counters.announces += 1;
        self.base_due = self.base.is_some();
        self.target_due = self.target.is_some();
        self.offer_due = self.offered.beyond_legacy();
        let info = self.info;
        legacy_pdu(pdu, |p| announce(&info, p))
    }

    fn take_requested(&mut self) -> Option<u32> {
        let total = self.total_chunks;
        let start = self.retx_cursor.min(total);
        let found = (start..total)
            .chain(0..start)
            .find(|&c| self.requested[(c / 8) as usize] & (1 << (c % 8)) != 0)?;
        self.requested[(found / 8) as usize] &= !(1 << (found % 8));
        self.requested_count -= 1;
        self.retx_cursor = found + 1;
        Some(found)
    }

    fn chunk(&mut self, index: u32, pdu: &mut [u8; EXT_PDU_MAX]) -> usize {
        let (offset, len) = self.geom.chunk_range(index, self.info.image_len);
        pdu[0..2].copy_from_slice(&(index as u16).to_be_bytes());
        pdu[2..2 + len].copy_from_slice(&self.image[offset as usize..offset as usize + len]);
        self.counters.data_pdus += 1;
        2 + len
    }

    fn manifest(&mut self, group: u32, pdu: &mut [u8; EXT_PDU_MAX]) -> usize {
        let first = group * CRCS_PER_MANIFEST as u32;
        let count = (self.info.blocks() - first).min(CRCS_PER_MANIFEST as u32);
        pdu[0] = KIND_MANIFEST;
        pdu[1..5].copy_from_slice(&self.info.session.to_le_bytes());
        pdu[5..7].copy_from_slice(&(first as u16).to_le_bytes());
        for i in 0..count {
            let start = ((first + i) as usize) * BLOCK_LEN;
            let end = (start + BLOCK_LEN).min(self.image.len());
            let crc = Crc32::block(self.info.session, &self.image[start..end]);
            let at = MANIFEST_HEAD + 4 * i as usize;
            pdu[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        }
        self.counters.manifests += 1;
        MANIFEST_HEAD + 4 * count as usize
    }

    /// Hand the sender an advertisement heard from a receiver.
    pub fn on_adv(&mut self, adv_data: &[u8]) -> TxEvent {
        let Ok(pdu) = unframe(self.company_id, adv_data) else {
            return TxEvent::Ignored;
        };
        if pdu.len() < STATUS_HEAD || pdu[0] != KIND_STATUS || le32(pdu, 1) != self.info.session {
            return TxEvent::Ignored;
        }
        let Some(state) = RxState::from_u8(pdu[5] & ((1 << STATUS_BEARER_SHIFT) - 1)) else {
            return TxEvent::Ignored;
        };
        if self.bearer.is_none() {
            // The pick, if the status names one this sender offered. A receiver still erasing
            // for its pick is waited for: its status is no reason to fall back.
            let code = pdu[5] >> STATUS_BEARER_SHIFT;
            match Bearer::from_code(code) {
                Some(b) if self.offered.contains(b) => self.commit(b),
                _ if code == STATUS_BEARER_PREPARING => {}
                _ => {
                    self.statuses_without_pick += 1;
                    if self.statuses_without_pick >= STATUSES_WITHOUT_PICK {
                        self.commit(Bearer::Legacy);
                    }
                }
            }
        }
        self.counters.statuses_heard += 1;
        self.receiver_state = Some(state);
        if state == RxState::WrongBase {
            let id = pdu.get(STATUS_HEAD..STATUS_HEAD + BASE_ID_LEN);
            let known = id.filter(|id| id.iter().any(|b| *b != 0xFF));
            self.receiver_running = Some(known.map(|id| {
                let mut r = [0u8; BASE_ID_LEN];
                r.copy_from_slice(id);
                r
            }));
            // The bytes after the head are the id, not a bitmap.
            return TxEvent::Status { state, missing: 0 };
        }
        let need = le16(pdu, 6);
        self.answer = [0; (MAX_CHUNKS as usize).div_ceil(8)];
        self.answer_manifest = None;
        if need != NO_BLOCK && (need as u32) < self.info.blocks() {
            self.manifest_request = Some(need as u32);
            self.answer_manifest = Some(need as u32);
        }
        let base = le16(pdu, 8) as u32;
        let mut missing = 0;
        for (i, &byte) in pdu[STATUS_HEAD..].iter().enumerate() {
            for bit in 0..8 {
                let c = base + (i * 8 + bit) as u32;
                // Chunks of the first pass not sent yet are coming anyway.
                // Nor is one waiting for the next event (not on air yet).
                if byte & (1 << bit) != 0
                    && c < self.pass_cursor.min(self.total_chunks)
                    && Some(c) != self.carried_chunk()
                {
                    let (at, mask) = ((c / 8) as usize, 1u8 << (c % 8));
                    self.answer[at] |= mask;
                    if self.requested[at] & mask == 0 {
                        self.requested[at] |= mask;
                        self.requested_count += 1;
                        missing += 1;
                    }
                }
            }
        }
        TxEvent::Status { state, missing }
    }
}

/// Build a PDU of at most [`PDU_MAX`] bytes with an encoder of legacy size into `pdu`.
fn legacy_pdu(pdu: &mut [u8; EXT_PDU_MAX], f: impl FnOnce(&mut [u8; PDU_MAX]) -> usize) -> usize {
    let mut p = [0u8; PDU_MAX];
    let n = f(&mut p).min(PDU_MAX);
    pdu[..n].copy_from_slice(&p[..n]);
    n
}
