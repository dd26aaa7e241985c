//! The receiving side: advertisements and timer ticks in; staging operations and status
//! advertisements out. One staging operation is outstanding at a time.
use crate::bearer::{Bearer, BearerSet, Geometry};
use crate::wire::*;

/// Chunks that may wait in RAM while a staging operation is in flight.
pub const QUEUE_LEN: usize = 8;
/// Largest read the receiver asks for (its verification buffer).
pub const READ_LEN: usize = 256;
/// A joined session with no PDU for this long may be replaced by a new announce.
pub const SESSION_TIMEOUT_MS: u64 = 30_000;

/// How long the staging flash takes, for a receiver that erases only part of the image before
/// it names a chained bearer ([`Receiver::set_flash_timing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlashTiming {
    /// One 4 KiB sector erase, µs.
    pub erase_sector_us: u32,
    /// One page program, µs.
    pub program_page_us: u32,
    /// The program page, bytes (a write is programmed page by page).
    pub page_len: u32,
}

/// What the receiver asks the staging store (the update-region) to do. Offsets are relative to
/// the start of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageOp<'a> {
    /// Start a new staging session for `image_len` bytes, remembering `tag`.
    Begin { tag: [u8; 16], image_len: u32 },
    /// Erase the 4 KiB block at `offset`.
    Erase { offset: u32 },
    /// Program `data` at `offset` (into erased, never-written bytes).
    Write { offset: u32, data: &'a [u8] },
    /// Read `len` (≤ [`READ_LEN`]) bytes at `offset`; hand them to `op_done`.
    Read { offset: u32, len: u32 },
    /// Check the staged image and request the boot.
    Finalize,
}

/// How a staging operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageError {
    /// The block was not erased in this session.
    NotErased,
    /// The bytes were already written.
    NotBlank,
    /// Finalize refused the staged image.
    Rejected,
    /// Anything else (flash failure, busy): retried later.
    Failed,
}

/// What became of one advertisement (for counters and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxOutcome {
    /// A new chunk, queued for staging.
    Chunk,
    /// A chunk already held (or already queued).
    Duplicate,
    /// An announce that started, resumed or repeated the session.
    Announce,
    /// Block CRCs learnt.
    Manifest,
    /// Not addressed to us: other AD structures, company, or a status PDU.
    NotOurs,
    /// A control PDU of another session.
    OtherSession,
    /// A PDU from an advertiser that is not the session's sender ([`session_address`]): a data
    /// PDU of another transfer, or an announce or manifest whose address does not match its
    /// session id. Never staged.
    Foreign,
    /// A chunk index beyond the image, or a block beyond it in a manifest.
    OutOfRange,
    /// Wrong length for its kind, unknown kind, or a broken AD structure.
    Malformed,
    /// More than 31 bytes.
    Oversized,
    /// A chunk that arrived before any session was joined, or while the queue was full.
    Dropped,
    /// A second copy of a chunk still waiting in RAM, with other bytes: one of the two is
    /// corrupted or forged and nothing tells which, so neither is staged (the chunk is reported
    /// missing and sent again). Costs a chunk's air time instead of a block's.
    Mismatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Listening,
    /// Waiting to issue / for completion of `Begin`.
    Beginning,
    /// After a reboot: reading the staged bytes back to learn which chunks are there.
    Rebuilding {
        at: u32,
    },
    Receiving,
    Finalizing,
    Done(RxState),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    /// Must be erased before its first write.
    Unknown,
    /// Erased in this session (or holding chunks found after a reboot).
    Erased,
    /// Every chunk staged and its CRC checked.
    Verified,
}

#[derive(Clone, Copy, Debug)]
struct Queued<const N: usize> {
    index: u32,
    len: u8,
    data: [u8; N],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InFlight {
    Begin,
    Erase {
        block: u32,
    },
    Write {
        slot: usize,
    },
    /// Consecutive queued chunks written as one run (a bit per queue slot).
    WriteRun {
        slots: u8,
    },
    Rebuild {
        at: u32,
        len: u32,
    },
    Verify {
        block: u32,
        at: u32,
        len: u32,
    },
    Finalize,
}

/// What became of one extended or periodic event's AdvData ([`Receiver::on_ext_adv`]); each
/// PDU is also counted in [`RxCounters`] as [`Receiver::on_adv`] counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtOutcome {
    /// Our PDUs (AD structures) in it.
    pub pdus: u32,
    /// New chunks queued.
    pub chunks: u32,
    /// The AdvData ended inside a structure (a lost PDU cut the chain).
    pub truncated: bool,
}

/// Counters for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxCounters {
    pub chunks: u32,
    pub duplicates: u32,
    pub ignored: u32,
    pub dropped: u32,
    /// PDUs from an advertiser other than the session's sender ([`RxOutcome::Foreign`]).
    pub foreign: u32,
    pub crc_failures: u32,
    pub conflicts: u32,
    /// Chunks dropped because two copies disagreed ([`RxOutcome::Mismatch`]).
    pub mismatches: u32,
}

/// Progress for a display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxProgress {
    pub state: RxState,
    pub received_chunks: u32,
    pub total_chunks: u32,
    pub verified_blocks: u32,
    pub total_blocks: u32,
}

/// The receiver state machine. `bitmap` is caller storage, one bit per chunk:
/// [`Receiver::bitmap_len`] bytes for the largest image accepted. `CHUNK_MAX` is the longest
/// chunk its RAM queue holds: legacy chunks by default ([`Receiver::new`]); a receiver that
/// follows extended or periodic advertising holds that bearer's chunks
/// ([`Receiver::with_bearers`], [`Geometry::for_bearer`]).
pub struct Receiver<'a, const CHUNK_MAX: usize = CHUNK_LEN> {
    company_id: u16,
    max_image_len: u32,
    bitmap: &'a mut [u8],
    resume_tag: Option<[u8; 16]>,
    resumed_complete: bool,
    /// The joined session (its image fits the tables).
    session: Option<SessionInfo>,
    /// The last announced session this receiver refused (reported in the status only).
    refused: Option<SessionInfo>,
    phase: Phase,
    blocks: [Block; MAX_BLOCKS],
    crcs: [u32; MAX_BLOCKS],
    crc_known: [u8; MAX_BLOCKS / 8],
    queue: [Option<Queued<CHUNK_MAX>>; QUEUE_LEN],
    in_flight: Option<InFlight>,
    verify_crc: Crc32,
    /// The block being CRC-checked and the next offset in it.
    verifying: Option<(u32, u32)>,
    received: u32,
    /// One past the highest chunk index taken this session ([`Receiver::frontier`]).
    frontier: u32,
    status_cursor: u32,
    last_activity_ms: u64,
    now_ms: u64,
    counters: RxCounters,
    /// The id of the image this receiver's device runs ([`Receiver::set_running_image`]).
    running: Option<[u8; BASE_ID_LEN]>,
    /// A delta session announced and waiting for its base PDU before it is joined.
    pending_delta: Option<SessionInfo>,
    /// Whether this device installs apps ([`Receiver::accept_apps`]).
    apps: bool,
    /// An app session announced and waiting for its target PDU before it is joined.
    pending_app: Option<SessionInfo>,
    /// The joined app session's package name (bytes, length; 0: not an app session).
    target: ([u8; TARGET_NAME_MAX], u8),
    /// The bearers this receiver can follow (legacy always).
    bearers: BearerSet,
    /// The joined session's bearer: `None` until the sender's offer or its first manifest or
    /// chunk decides it (see `decide`).
    bearer: Option<Bearer>,
    /// Whether the joined session's sender offered bearers (the status then names the pick).
    offer_heard: bool,
    /// The joined session's chunk geometry (its bearer's; legacy until decided).
    geom: Geometry,
    /// A chained session's pre-erase is under way: every sector the image needs is erased
    /// before the status names the pick ([`Receiver::preparing`]).
    pre_erase: bool,
    /// The staging flash's timing, if known: the pre-erase then stops where the erases left
    /// fit between the chunks ([`Receiver::set_flash_timing`]).
    flash: Option<FlashTiming>,
    /// Caller storage where consecutive chunks of a chained session are joined into one write
    /// ([`Receiver::set_write_buffer`]); empty: each chunk is written alone.
    write_buf: &'a mut [u8],
}

impl<'a> Receiver<'a> {
    /// Bytes of bitmap storage needed for images up to `max_image_len` (over any bearer: the
    /// legacy geometry has the most chunks).
    pub const fn bitmap_len(max_image_len: u32) -> usize {
        (Geometry::LEGACY.total_chunks(max_image_len) as usize).div_ceil(8)
    }

    /// A receiver for images up to `max_image_len` bytes (capped by `bitmap` and the protocol).
    /// `resume` is the tag of the staging session the store still holds after a reboot, if any,
    /// and `resume_finalized` whether that session was already finalized.
    pub fn new(
        company_id: u16,
        max_image_len: u32,
        bitmap: &'a mut [u8],
        resume: Option<[u8; 16]>,
        resume_finalized: bool,
    ) -> Self {
        Self::with_bearers(
            company_id,
            max_image_len,
            bitmap,
            resume,
            resume_finalized,
            BearerSet::LEGACY,
        )
    }
}

impl<'a, const CHUNK_MAX: usize> Receiver<'a, CHUNK_MAX> {
    /// [`Receiver::new`] for a receiver that can also follow `bearers` (those whose chunks fit
    /// its queue, `CHUNK_MAX`; legacy always). It picks the fastest a sender offers.
    pub fn with_bearers(
        company_id: u16,
        max_image_len: u32,
        bitmap: &'a mut [u8],
        resume: Option<[u8; 16]>,
        resume_finalized: bool,
        bearers: BearerSet,
    ) -> Self {
        // Every receiver takes legacy chunks (a legacy sender, an old staging session).
        const { assert!(CHUNK_MAX >= CHUNK_LEN) };
        let mut followed = BearerSet::LEGACY;
        for b in Bearer::ALL {
            if bearers.contains(b) && Geometry::for_bearer(b).chunk_len as usize <= CHUNK_MAX {
                followed = followed.with(b);
            }
        }
        // Whole blocks the bitmap has bits for; bits past the protocol's largest image are
        // never used (and would overflow the product).
        let bits = bitmap.len().min(Receiver::bitmap_len(MAX_IMAGE_LEN)) as u32 * 8;
        let by_bitmap = (bits / CHUNKS_PER_BLOCK) * BLOCK_LEN as u32;
        Receiver {
            company_id,
            max_image_len: max_image_len.min(MAX_IMAGE_LEN).min(by_bitmap),
            bitmap,
            resume_tag: resume,
            resumed_complete: resume_finalized,
            session: None,
            refused: None,
            phase: Phase::Listening,
            blocks: [Block::Unknown; MAX_BLOCKS],
            crcs: [0; MAX_BLOCKS],
            crc_known: [0; MAX_BLOCKS / 8],
            queue: [None; QUEUE_LEN],
            in_flight: None,
            verify_crc: Crc32::new(),
            verifying: None,
            received: 0,
            frontier: 0,
            status_cursor: 0,
            last_activity_ms: 0,
            now_ms: 0,
            counters: RxCounters::default(),
            running: None,
            pending_delta: None,
            apps: false,
            pending_app: None,
            target: ([0; TARGET_NAME_MAX], 0),
            bearers: followed,
            bearer: None,
            offer_heard: false,
            geom: Geometry::LEGACY,
            pre_erase: false,
            flash: None,
            write_buf: &mut [],
        }
    }

    /// The bearers this receiver follows.
    pub fn bearers(&self) -> BearerSet {
        self.bearers
    }

    /// The joined session's bearer, once decided.
    pub fn bearer(&self) -> Option<Bearer> {
        self.session.and(self.bearer)
    }

    /// Storage for joining consecutive chunks of a chained session into one write: a chunk
    /// of 228 bytes crosses a 256-byte page and takes two page programs alone; seven in a row
    /// take seven instead of thirteen. Up to `buf.len()` bytes are written at a time (two
    /// chained chunks or more to matter). Legacy sessions write chunk by chunk as always.
    pub fn set_write_buffer(&mut self, buf: &'a mut [u8]) {
        self.write_buf = buf;
    }

    /// The staging flash's timing. Without it a chained session's pre-erase covers the whole
    /// image. With it, it covers the first blocks only, as many as the erases of the rest do
    /// not fit in the bearer's time per block ([`Receiver::pre_erase_blocks`]): the rest are
    /// erased ahead while the data flows, as on legacy.
    pub fn set_flash_timing(&mut self, timing: Option<FlashTiming>) {
        self.flash = timing;
    }

    /// How many blocks of the joined session a chained bearer's pre-erase covers: all of them
    /// without a flash timing; with one, the fewest `k` for which staging the session after
    /// the pick takes no longer than the bearer carries it at its limit ([`Bearer::budget`]):
    /// `(n − k) × erase + n × programs per block ≤ n × air time per block`, so
    /// `k = ⌈n × (erase + programs − air) / erase⌉`, between 0 and `n`.
    pub fn pre_erase_blocks(&self) -> u32 {
        let Some(info) = self.session else {
            return 0;
        };
        let n = info.blocks();
        let (Some(timing), Some(bearer)) = (self.flash, self.bearer) else {
            return n;
        };
        let limit = bearer.budget().limit_bytes_per_s;
        if timing.erase_sector_us == 0 || timing.page_len == 0 || limit <= 0.0 {
            return n;
        }
        // Page programs of a whole block's chunks (a chunk crossing a page takes two).
        let pages: u32 = (0..self.geom.chunks_per_block)
            .map(|c| {
                let first = c * self.geom.chunk_len;
                let last = (first + self.geom.chunk_len).min(BLOCK_LEN as u32) - 1;
                last / timing.page_len - first / timing.page_len + 1
            })
            .sum();
        let air_us = BLOCK_LEN as f64 * 1e6 / limit;
        let flash_us = timing.erase_sector_us as f64 + (pages * timing.program_page_us) as f64;
        let deficit = flash_us - air_us;
        if deficit <= 0.0 {
            return 0;
        }
        let k = n as f64 * deficit / timing.erase_sector_us as f64;
        // ⌈k⌉ without std's float functions.
        let whole = k as u32;
        let k = if (whole as f64) < k { whole + 1 } else { whole };
        k.min(n)
    }

    /// Whether the receiver is still preparing a chained bearer it picked: its staging session
    /// is not begun (or not rebuilt after a reboot) or some sector the announced image needs is
    /// not erased yet. Its status then says so ([`STATUS_BEARER_PREPARING`]) instead of naming
    /// the pick, so the data flows only into erased flash: at a chained bearer's rate an erase
    /// per block while chunks arrive is more than the staging flash keeps up with. Legacy
    /// sessions are never prepared (their erases run ahead of the chunks, as always).
    pub fn preparing(&self) -> bool {
        let Some(info) = self.session else {
            return false;
        };
        if !self.bearer.is_some_and(|b| b.chained()) {
            return false;
        }
        match self.phase {
            Phase::Beginning | Phase::Rebuilding { .. } => true,
            Phase::Receiving => {
                self.pre_erase
                    && (0..self.pre_erase_blocks().min(info.blocks()))
                        .any(|b| self.blocks[b as usize] == Block::Unknown)
            }
            _ => false,
        }
    }

    /// Whether this receiver's device installs userspace apps (off by default). An app session
    /// ([`capability::APP`]) is refused as [`RxState::Unsupported`] unless it does; with it,
    /// the session is joined once its target PDU names the app.
    pub fn accept_apps(&mut self, yes: bool) {
        self.apps = yes;
    }

    /// The package name of the app the joined session carries; `None` for a kernel image. A
    /// user finishes a completed app session by installing that app (its [`StageOp::Finalize`]
    /// means "the TBF is staged and CRC-checked"), not by finalizing a kernel image.
    pub fn target(&self) -> Option<&[u8]> {
        let (name, len) = &self.target;
        (self.session.is_some() && *len > 0).then(|| &name[..*len as usize])
    }

    /// The first [`BASE_ID_LEN`] bytes of the hash TLV of the image the device runs, if known.
    /// A delta session is joined only when its base PDU names this image; otherwise, or when
    /// unknown, it is refused with [`RxState::WrongBase`] and the status says what runs.
    pub fn set_running_image(&mut self, id: Option<[u8; BASE_ID_LEN]>) {
        self.running = id;
    }

    pub fn counters(&self) -> RxCounters {
        self.counters
    }

    /// The announced session: the joined one, else the last one refused (see [`Receiver::state`]).
    pub fn session(&self) -> Option<SessionInfo> {
        self.session.or(self.refused)
    }

    pub fn state(&self) -> RxState {
        match self.phase {
            Phase::Listening => RxState::Listening,
            Phase::Done(s) => s,
            _ => RxState::Receiving,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Done(RxState::Complete)
    }

    pub fn progress(&self) -> RxProgress {
        let (total_chunks, total_blocks) = self
            .session
            .map(|s| (self.geom.total_chunks(s.image_len), s.blocks()))
            .unwrap_or((0, 0));
        RxProgress {
            state: self.state(),
            received_chunks: self.received,
            total_chunks,
            verified_blocks: self.blocks[..total_blocks as usize]
                .iter()
                .filter(|b| **b == Block::Verified)
                .count() as u32,
            total_blocks,
        }
    }

    /// One past the highest chunk index taken since the session was joined (0: none yet). A
    /// sender sends its first pass in index order, so while this grows the pass is still
    /// coming; resends fill gaps below it.
    pub fn frontier(&self) -> u32 {
        self.frontier
    }

    /// True when no chunk fits in RAM until a staging operation is done. A caller that feeds a
    /// whole scan batch before staging (rather than one advertisement at a time) lets two
    /// disagreeing copies of a chunk meet in RAM ([`RxOutcome::Mismatch`]) instead of staging
    /// whichever came first.
    pub fn queue_full(&self) -> bool {
        self.queue.iter().all(|q| q.is_some())
    }

    /// The passage of time (for the session timeout).
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    fn has(&self, chunk: u32) -> bool {
        self.bitmap[(chunk / 8) as usize] & (1 << (chunk % 8)) != 0
    }

    fn set(&mut self, chunk: u32, on: bool) {
        let (byte, bit) = ((chunk / 8) as usize, 1u8 << (chunk % 8));
        let was = self.bitmap[byte] & bit != 0;
        if on && !was {
            self.bitmap[byte] |= bit;
            self.received += 1;
        } else if !on && was {
            self.bitmap[byte] &= !bit;
            self.received -= 1;
        }
    }

    fn crc_of(&self, block: u32) -> Option<u32> {
        let b = block as usize;
        (self.crc_known[b / 8] & (1 << (b % 8)) != 0).then_some(self.crcs[b])
    }

    fn block_chunks(&self, block: u32) -> core::ops::Range<u32> {
        let total = self
            .session
            .map(|s| self.geom.total_chunks(s.image_len))
            .unwrap_or(0);
        let first = block * self.geom.chunks_per_block;
        first..(first + self.geom.chunks_per_block).min(total)
    }

    /// Forget a block's chunks: it will be erased and received again.
    fn reset_block(&mut self, block: u32) {
        for c in self.block_chunks(block) {
            self.set(c, false);
        }
        let geom = self.geom;
        for q in self.queue.iter_mut() {
            if q.is_some_and(|q| geom.block_of(q.index) == block) {
                *q = None;
            }
        }
        self.blocks[block as usize] = Block::Unknown;
        if self.verifying.is_some_and(|(b, _)| b == block) {
            self.verifying = None;
        }
    }

    /// Hand the receiver one advertisement: its advertiser address `adv_a` (AdvA, as sent:
    /// least significant byte first) and its AdvData.
    pub fn on_adv(&mut self, adv_a: [u8; 6], adv_data: &[u8]) -> RxOutcome {
        let outcome = self.classify(adv_a, adv_data);
        self.count(outcome);
        outcome
    }

    fn count(&mut self, outcome: RxOutcome) {
        match outcome {
            RxOutcome::Chunk | RxOutcome::Announce | RxOutcome::Manifest => {
                self.last_activity_ms = self.now_ms
            }
            RxOutcome::Duplicate => {
                self.counters.duplicates += 1;
                self.last_activity_ms = self.now_ms;
            }
            RxOutcome::Dropped => self.counters.dropped += 1,
            RxOutcome::Foreign => self.counters.foreign += 1,
            RxOutcome::Mismatch => self.counters.mismatches += 1,
            _ => self.counters.ignored += 1,
        }
    }

    fn classify(&mut self, adv_a: [u8; 6], adv_data: &[u8]) -> RxOutcome {
        match unframe(self.company_id, adv_data) {
            Ok(pdu) => self.classify_pdu(adv_a, pdu),
            Err(FrameError::Oversized) => RxOutcome::Oversized,
            Err(FrameError::Truncated) => RxOutcome::Malformed,
            Err(FrameError::NotOurs) => RxOutcome::NotOurs,
        }
    }

    /// Hand the receiver the AdvData of one extended or periodic advertising event (the chain
    /// reassembled, ≤ [`EXT_ADV_DATA_MAX`] bytes; cut short where a PDU of the chain was lost)
    /// from advertiser `adv_a` (a periodic train's: the one it was synchronised to). Each of our
    /// AD structures is taken as one PDU; a structure cut by the lost rest is dropped. The
    /// caller keeps room in the queue for an event's chunks ([`Receiver::queue_free`]).
    pub fn on_ext_adv(&mut self, adv_a: [u8; 6], adv_data: &[u8]) -> ExtOutcome {
        let mut out = ExtOutcome::default();
        for item in ext_pdus(self.company_id, adv_data) {
            let outcome = match item {
                Ok(pdu) => self.classify_pdu(adv_a, pdu),
                Err(FrameError::Oversized) => RxOutcome::Oversized,
                Err(_) => {
                    out.truncated = true;
                    RxOutcome::Malformed
                }
            };
            out.pdus += 1;
            if outcome == RxOutcome::Chunk {
                out.chunks += 1;
            }
            self.count(outcome);
        }
        out
    }

    /// Free places in the RAM queue (an extended event brings up to 7 chunks).
    pub fn queue_free(&self) -> usize {
        self.queue.iter().filter(|q| q.is_none()).count()
    }

    fn classify_pdu(&mut self, adv_a: [u8; 6], pdu: &[u8]) -> RxOutcome {
        if pdu.len() < 2 {
            return RxOutcome::Malformed;
        }
        let head = u16::from_be_bytes([pdu[0], pdu[1]]);
        if head < CONTROL_FLOOR {
            // Another sender's chunk is told apart by its address before anything else.
            if self
                .session
                .is_some_and(|s| adv_a != session_address(s.session))
            {
                return RxOutcome::Foreign;
            }
            return self.on_chunk(head as u32, &pdu[2..]);
        }
        match pdu[0] {
            KIND_ANNOUNCE => match parse_announce(pdu) {
                Ok(info) if adv_a != session_address(info.session) => RxOutcome::Foreign,
                Ok(info) => self.on_announce(info),
                Err(AnnounceError::Version {
                    session: Some(session),
                    ..
                }) => {
                    // Refused in the status, so the sender says so instead of waiting.
                    self.refuse(
                        SessionInfo {
                            session,
                            image_len: 0,
                            image_crc: 0,
                            capabilities: 0,
                        },
                        RxState::VersionMismatch,
                    );
                    RxOutcome::Announce
                }
                Err(_) => RxOutcome::Malformed,
            },
            KIND_MANIFEST => self.on_manifest(adv_a, pdu),
            KIND_BEARERS => self.on_bearers(adv_a, pdu),
            KIND_BASE => self.on_base(adv_a, pdu),
            KIND_TARGET => self.on_target(adv_a, pdu),
            KIND_STATUS => RxOutcome::NotOurs,
            _ => RxOutcome::Malformed,
        }
    }

    fn on_announce(&mut self, info: SessionInfo) -> RxOutcome {
        if let Some(current) = self.session {
            if current.session == info.session {
                return if current == info {
                    RxOutcome::Announce
                } else {
                    RxOutcome::Malformed
                };
            }
            let idle = self.now_ms.saturating_sub(self.last_activity_ms) >= SESSION_TIMEOUT_MS;
            let busy = matches!(self.phase, Phase::Finalizing) || self.in_flight.is_some();
            if !idle || busy {
                return RxOutcome::OtherSession;
            }
        }
        // A transfer this receiver cannot take is refused in the status, without joining it:
        // its geometry never reaches the tables sized for the images we accept.
        let app = info.capabilities & capability::APP != 0;
        let refusal = if info.capabilities & !capability::SUPPORTED != 0
            || (app && (!self.apps || info.capabilities != capability::APP))
        {
            Some(RxState::Unsupported)
        } else if info.image_len == 0 || info.image_len > self.max_image_len {
            Some(RxState::TooLarge)
        } else {
            None
        };
        if let Some(state) = refusal {
            self.refuse(info, state);
            return RxOutcome::Announce;
        }
        if info.capabilities & capability::DELTA != 0 {
            if self.running.is_none() {
                self.refuse(info, RxState::WrongBase);
            } else {
                // Joined once its base PDU names the running image.
                self.pending_delta = Some(info);
            }
            return RxOutcome::Announce;
        }
        if app {
            // Joined once its target PDU names the app.
            self.pending_app = Some(info);
            return RxOutcome::Announce;
        }
        self.join(info);
        RxOutcome::Announce
    }

    /// An app session's target: join the announced session and remember the app's name.
    fn on_target(&mut self, adv_a: [u8; 6], pdu: &[u8]) -> RxOutcome {
        let Some((session, name)) = parse_target(pdu) else {
            return RxOutcome::Malformed;
        };
        let Some(info) = self.pending_app else {
            // The target repeated after each announce of the joined session.
            return match self.session {
                Some(s) if s.session == session => {
                    if self.target() == Some(name) {
                        RxOutcome::Announce
                    } else {
                        RxOutcome::Malformed
                    }
                }
                _ => RxOutcome::NotOurs,
            };
        };
        if session != info.session {
            return RxOutcome::OtherSession;
        }
        if adv_a != session_address(info.session) {
            return RxOutcome::Foreign;
        }
        self.pending_app = None;
        self.join(info);
        self.target.0[..name.len()].copy_from_slice(name);
        self.target.1 = name.len() as u8;
        RxOutcome::Announce
    }

    /// A delta session's base: join the announced session if it is the running image.
    fn on_base(&mut self, adv_a: [u8; 6], pdu: &[u8]) -> RxOutcome {
        if pdu.len() != BASE_LEN {
            return RxOutcome::Malformed;
        }
        let Some(info) = self.pending_delta else {
            return RxOutcome::NotOurs;
        };
        if le32(pdu, 1) != info.session {
            return RxOutcome::OtherSession;
        }
        if adv_a != session_address(info.session) {
            return RxOutcome::Foreign;
        }
        self.pending_delta = None;
        if self.running.is_some_and(|r| pdu[5..] == r) {
            self.join(info);
        } else {
            self.refuse(info, RxState::WrongBase);
        }
        RxOutcome::Announce
    }

    fn join(&mut self, info: SessionInfo) {
        // Join (or switch to) this session; one announced earlier and still waiting for its
        // base or target PDU is dropped (it would otherwise join later, past the busy check).
        self.refused = None;
        self.pending_delta = None;
        self.pending_app = None;
        self.target.1 = 0;
        self.session = Some(info);
        self.bitmap.fill(0);
        self.received = 0;
        self.frontier = 0;
        self.blocks = [Block::Unknown; MAX_BLOCKS];
        self.crc_known = [0; MAX_BLOCKS / 8];
        self.queue = [None; QUEUE_LEN];
        self.verifying = None;
        self.status_cursor = 0;
        self.offer_heard = false;
        self.pre_erase = false;
        // Legacy-only receivers know their bearer at once; others wait for the sender's offer.
        self.set_bearer((!self.bearers.beyond_legacy()).then_some(Bearer::Legacy));
        let resumed = self.resume_tag.filter(|t| t[..14] == info.tag()[..14]);
        if let Some(tag) = resumed {
            // The staged session's bearer (and so its geometry) is in its tag.
            let bearer =
                tag_bearer(&tag).filter(|b| *b == Bearer::Legacy || self.bearers.contains(*b));
            self.set_bearer(bearer);
        }
        if resumed.is_some() && self.bearer.is_some() {
            self.phase = if self.resumed_complete {
                Phase::Done(RxState::Complete)
            } else {
                Phase::Rebuilding { at: 0 }
            };
        } else {
            self.phase = Phase::Beginning;
        }
        self.resume_tag = None;
    }

    fn set_bearer(&mut self, bearer: Option<Bearer>) {
        self.bearer = bearer;
        self.geom = Geometry::for_bearer(bearer.unwrap_or(Bearer::Legacy));
    }

    /// The sender's bearer offer: pick the fastest bearer both sides have, once per session
    /// (before the first manifest or chunk; a sender that offers sends neither before it
    /// heard the pick).
    fn on_bearers(&mut self, adv_a: [u8; 6], pdu: &[u8]) -> RxOutcome {
        let Some((session, offered)) = parse_bearers(pdu) else {
            return RxOutcome::Malformed;
        };
        let Some(info) = self.session else {
            return RxOutcome::NotOurs;
        };
        if session != info.session {
            return RxOutcome::OtherSession;
        }
        if adv_a != session_address(info.session) {
            return RxOutcome::Foreign;
        }
        self.offer_heard = true;
        if self.bearer.is_none() {
            self.set_bearer(Some(self.bearers.best_common(offered)));
        }
        RxOutcome::Announce
    }

    /// A manifest or chunk of a session whose bearer is not decided: its sender offered none
    /// (or the offer was never heard), so it is legacy.
    fn decide_legacy(&mut self) {
        if self.bearer.is_none() {
            self.set_bearer(Some(Bearer::Legacy));
        }
    }

    /// Refuse an announced transfer in the status without joining it (a joined session goes on).
    fn refuse(&mut self, info: SessionInfo, state: RxState) {
        if self.session.is_none() {
            self.refused = Some(info);
            self.phase = Phase::Done(state);
        }
    }

    fn on_manifest(&mut self, adv_a: [u8; 6], pdu: &[u8]) -> RxOutcome {
        if pdu.len() < MANIFEST_HEAD + 4 || !(pdu.len() - MANIFEST_HEAD).is_multiple_of(4) {
            return RxOutcome::Malformed;
        }
        let Some(info) = self.session else {
            return RxOutcome::Dropped;
        };
        if le32(pdu, 1) != info.session {
            return RxOutcome::OtherSession;
        }
        if adv_a != session_address(info.session) {
            return RxOutcome::Foreign;
        }
        self.decide_legacy();
        let first = le16(pdu, 5) as u32;
        let count = ((pdu.len() - MANIFEST_HEAD) / 4) as u32;
        if first + count > info.blocks() {
            return RxOutcome::OutOfRange;
        }
        for i in 0..count {
            let b = (first + i) as usize;
            // The first CRC heard for a block stands; a conflicting one is ignored.
            if self.crc_known[b / 8] & (1 << (b % 8)) == 0 {
                self.crcs[b] = le32(pdu, MANIFEST_HEAD + 4 * i as usize);
                self.crc_known[b / 8] |= 1 << (b % 8);
            }
        }
        RxOutcome::Manifest
    }

    fn on_chunk(&mut self, index: u32, data: &[u8]) -> RxOutcome {
        let Some(info) = self.session else {
            return RxOutcome::Dropped;
        };
        self.decide_legacy();
        if index >= self.geom.total_chunks(info.image_len) {
            return RxOutcome::OutOfRange;
        }
        let (_, len) = self.geom.chunk_range(index, info.image_len);
        if data.len() != len {
            return RxOutcome::Malformed;
        }
        if !matches!(self.phase, Phase::Receiving) {
            return if self.has(index) || self.phase == Phase::Done(RxState::Complete) {
                RxOutcome::Duplicate
            } else {
                RxOutcome::Dropped
            };
        }
        if let Some(slot) = self
            .queue
            .iter()
            .position(|q| q.is_some_and(|q| q.index == index))
        {
            let writing = match self.in_flight {
                Some(InFlight::Write { slot: s }) => s == slot,
                Some(InFlight::WriteRun { slots }) => slots & (1 << slot) != 0,
                _ => false,
            };
            let same = self.queue[slot].is_some_and(|q| q.data[..len] == *data);
            if same || writing {
                return RxOutcome::Duplicate;
            }
            self.queue[slot] = None;
            return RxOutcome::Mismatch;
        }
        if self.has(index) || self.blocks[self.geom.block_of(index) as usize] == Block::Verified {
            return RxOutcome::Duplicate;
        }
        let Some(slot) = self.queue.iter().position(|q| q.is_none()) else {
            return RxOutcome::Dropped;
        };
        let mut q = Queued {
            index,
            len: len as u8,
            data: [0; CHUNK_MAX],
        };
        q.data[..len].copy_from_slice(data);
        self.queue[slot] = Some(q);
        self.counters.chunks += 1;
        self.frontier = self.frontier.max(index + 1);
        RxOutcome::Chunk
    }

    /// The next staging operation to perform, if any (`None` while one is in flight).
    pub fn poll_op(&mut self) -> Option<StageOp<'_>> {
        if self.in_flight.is_some() {
            return None;
        }
        let info = self.session?;
        match self.phase {
            Phase::Listening | Phase::Done(_) | Phase::Finalizing => return None,
            // Nothing is staged before the bearer (and so the geometry) is known.
            Phase::Beginning if self.bearer.is_none() => return None,
            Phase::Beginning => {
                self.in_flight = Some(InFlight::Begin);
                return Some(StageOp::Begin {
                    tag: info.tag_on(self.bearer),
                    image_len: info.image_len,
                });
            }
            Phase::Rebuilding { at } => {
                let len = (info.image_len - at).min(READ_LEN as u32);
                self.in_flight = Some(InFlight::Rebuild { at, len });
                return Some(StageOp::Read { offset: at, len });
            }
            Phase::Receiving => {}
        }
        // 1. Check a block whose chunks are all staged and whose CRC is known.
        if self.verifying.is_none() {
            if let Some(block) = (0..info.blocks()).find(|&b| {
                self.blocks[b as usize] == Block::Erased
                    && self.crc_of(b).is_some()
                    && self.block_chunks(b).all(|c| self.has(c))
            }) {
                self.verify_crc = Crc32::new();
                self.verify_crc.update(&info.session.to_le_bytes());
                self.verifying = Some((block, 0));
            }
        }
        if let Some((block, at)) = self.verifying {
            let len = (self.block_len(block) - at).min(READ_LEN as u32);
            self.in_flight = Some(InFlight::Verify { block, at, len });
            return Some(StageOp::Read {
                offset: block * BLOCK_LEN as u32 + at,
                len,
            });
        }
        // 2. Stage a queued chunk (erasing its block first if needed). Joining runs of chunks,
        // the lowest index first, so a run starts at its beginning.
        let joining = self.bearer.is_some_and(|b| b.chained()) && !self.write_buf.is_empty();
        let first = if joining {
            (0..QUEUE_LEN)
                .filter(|&s| self.queue[s].is_some())
                .min_by_key(|&s| self.queue[s].map(|q| q.index))
        } else {
            self.queue.iter().position(|q| q.is_some())
        };
        if let Some(slot) = first {
            let q = self.queue[slot].unwrap_or(Queued {
                index: 0,
                len: 0,
                data: [0; CHUNK_MAX],
            });
            let block = self.geom.block_of(q.index);
            if self.blocks[block as usize] == Block::Unknown {
                self.in_flight = Some(InFlight::Erase { block });
                return Some(StageOp::Erase {
                    offset: block * BLOCK_LEN as u32,
                });
            }
            let (offset, _) = self.geom.chunk_range(q.index, info.image_len);
            if let Some((slots, len)) = self.run_from(q.index, block) {
                self.in_flight = Some(InFlight::WriteRun { slots });
                return Some(StageOp::Write {
                    offset,
                    data: &self.write_buf[..len],
                });
            }
            self.in_flight = Some(InFlight::Write { slot });
            let q = self.queue[slot].as_ref()?;
            return Some(StageOp::Write {
                offset,
                data: &q.data[..q.len as usize],
            });
        }
        // 3. All blocks verified: finalize.
        if (0..info.blocks()).all(|b| self.blocks[b as usize] == Block::Verified) {
            self.phase = Phase::Finalizing;
            self.in_flight = Some(InFlight::Finalize);
            return Some(StageOp::Finalize);
        }
        // 4. A chained session's pre-erase: every block not erased yet, in order, before the
        // status names the pick (see `preparing`).
        if self.pre_erase {
            if let Some(block) = (0..self.pre_erase_blocks().min(info.blocks()))
                .find(|&b| self.blocks[b as usize] == Block::Unknown)
            {
                self.in_flight = Some(InFlight::Erase { block });
                return Some(StageOp::Erase {
                    offset: block * BLOCK_LEN as u32,
                });
            }
            self.pre_erase = false;
        }
        // 5. Erase ahead: the first unknown block after one that holds chunks, so the erase
        // (up to 240 ms on the MX25R6435F) is done before its chunks arrive.
        if let Some(block) = (1..info.blocks()).find(|&b| {
            self.blocks[b as usize] == Block::Unknown
                && self.blocks[b as usize - 1] != Block::Unknown
        }) {
            self.in_flight = Some(InFlight::Erase { block });
            return Some(StageOp::Erase {
                offset: block * BLOCK_LEN as u32,
            });
        }
        None
    }

    /// Join the queued chunks `first`, `first + 1`, … of `block` into the write buffer, as many
    /// as fit: their slots and length, if a chained session has a buffer and two or more join.
    fn run_from(&mut self, first: u32, block: u32) -> Option<(u8, usize)> {
        if !self.bearer.is_some_and(|b| b.chained()) || self.write_buf.is_empty() {
            return None;
        }
        let (mut slots, mut len, mut count) = (0u8, 0usize, 0);
        let mut index = first;
        while self.geom.block_of(index) == block {
            let Some(slot) = self
                .queue
                .iter()
                .position(|q| q.is_some_and(|q| q.index == index))
            else {
                break;
            };
            let q = self.queue[slot].as_ref()?;
            let n = q.len as usize;
            if len + n > self.write_buf.len() {
                break;
            }
            self.write_buf[len..len + n].copy_from_slice(&q.data[..n]);
            slots |= 1 << slot;
            len += n;
            count += 1;
            index += 1;
        }
        (count >= 2).then_some((slots, len))
    }

    fn block_len(&self, block: u32) -> u32 {
        let image_len = self.session.map(|s| s.image_len).unwrap_or(0);
        (image_len - block * BLOCK_LEN as u32).min(BLOCK_LEN as u32)
    }

    /// The outcome of the operation last returned by [`Receiver::poll_op`]: `Ok(bytes)` with
    /// the bytes of a `Read`, `Ok(&[])` otherwise.
    pub fn op_done(&mut self, result: Result<&[u8], StageError>) {
        let Some(op) = self.in_flight.take() else {
            return;
        };
        let Some(info) = self.session else {
            return;
        };
        match (op, result) {
            (InFlight::Begin, Ok(_)) => {
                self.phase = Phase::Receiving;
                self.pre_erase = self.bearer.is_some_and(|b| b.chained());
            }
            (InFlight::Begin, Err(_)) => {}
            (InFlight::Erase { block }, Ok(_)) => {
                for c in self.block_chunks(block) {
                    self.set(c, false);
                }
                self.blocks[block as usize] = Block::Erased;
            }
            (InFlight::Erase { .. }, Err(_)) => {}
            (InFlight::Write { slot }, Ok(_)) => {
                if let Some(q) = self.queue[slot].take() {
                    self.set(q.index, true);
                }
            }
            (InFlight::WriteRun { slots }, Ok(_)) => {
                for slot in (0..QUEUE_LEN).filter(|s| slots & (1 << s) != 0) {
                    if let Some(q) = self.queue[slot].take() {
                        self.set(q.index, true);
                    }
                }
            }
            (InFlight::WriteRun { slots }, Err(e)) => {
                let slot = (0..QUEUE_LEN).find(|s| slots & (1 << s) != 0);
                let block = slot
                    .and_then(|s| self.queue[s])
                    .map(|q| self.geom.block_of(q.index));
                if let (StageError::NotErased | StageError::NotBlank, Some(block)) = (e, block) {
                    self.counters.conflicts += 1;
                    self.reset_block(block);
                }
            }
            (InFlight::Write { slot }, Err(e)) => {
                let block = self.queue[slot].map(|q| self.geom.block_of(q.index));
                // The store disagrees with what we believe: start the block over.
                if let (StageError::NotErased | StageError::NotBlank, Some(block)) = (e, block) {
                    self.counters.conflicts += 1;
                    self.reset_block(block);
                }
            }
            (InFlight::Rebuild { at, len }, Ok(bytes)) => {
                for (i, &b) in bytes.iter().take(len as usize).enumerate() {
                    if b != 0xFF {
                        let c = self.geom.chunk_of(at + i as u32);
                        self.set(c, true);
                        self.blocks[self.geom.block_of(c) as usize] = Block::Erased;
                    }
                }
                let at = at + len;
                self.phase = if at >= info.image_len {
                    // A reboot during the pre-erase (or after it) goes on erasing what is
                    // left; sectors holding chunks are kept, erased ones are erased again.
                    self.pre_erase = self.bearer.is_some_and(|b| b.chained());
                    Phase::Receiving
                } else {
                    Phase::Rebuilding { at }
                };
            }
            (InFlight::Rebuild { .. }, Err(_)) => {}
            (InFlight::Verify { block, at, len }, Ok(bytes)) => {
                self.verify_crc
                    .update(&bytes[..(len as usize).min(bytes.len())]);
                let at = at + len;
                let block_len = self.block_len(block);
                if at < block_len {
                    self.verifying = Some((block, at));
                    return;
                }
                self.verifying = None;
                if Some(self.verify_crc.finish()) == self.crc_of(block) {
                    self.blocks[block as usize] = Block::Verified;
                } else {
                    self.counters.crc_failures += 1;
                    self.reset_block(block);
                }
            }
            (InFlight::Verify { .. }, Err(_)) => self.verifying = None,
            (InFlight::Finalize, Ok(_)) => self.phase = Phase::Done(RxState::Complete),
            (InFlight::Finalize, Err(StageError::Rejected)) => {
                self.phase = Phase::Done(RxState::Rejected)
            }
            (InFlight::Finalize, Err(_)) => self.phase = Phase::Receiving,
        }
    }

    /// Build this receiver's status advertisement (AdvData); 0 if it has nothing to report yet.
    pub fn status_adv(&mut self, out: &mut [u8; ADV_DATA_MAX]) -> usize {
        let mut pdu = [0u8; PDU_MAX];
        pdu[0] = KIND_STATUS;
        pdu[5] = self.state() as u8;
        if let (true, Some(b), Some(_)) = (self.offer_heard, self.bearer, self.session) {
            let nibble = if self.preparing() {
                STATUS_BEARER_PREPARING
            } else {
                b.code()
            };
            pdu[5] |= nibble << STATUS_BEARER_SHIFT;
        }
        let Some(info) = self.session else {
            // A refusal: the session id and the state, nothing missing.
            let Some(refused) = self.refused else {
                return 0;
            };
            pdu[1..5].copy_from_slice(&refused.session.to_le_bytes());
            pdu[6..8].copy_from_slice(&NO_BLOCK.to_le_bytes());
            if self.state() == RxState::WrongBase {
                let id = self.running.unwrap_or([0xFF; BASE_ID_LEN]);
                pdu[STATUS_HEAD..STATUS_HEAD + BASE_ID_LEN].copy_from_slice(&id);
                return frame(self.company_id, &pdu[..STATUS_HEAD + BASE_ID_LEN], out);
            }
            return frame(self.company_id, &pdu[..STATUS_HEAD], out);
        };
        pdu[1..5].copy_from_slice(&info.session.to_le_bytes());
        // Ask for the CRCs of the first block that has chunks but no CRC yet.
        let need = (0..info.blocks())
            .find(|&b| self.crc_of(b).is_none() && self.blocks[b as usize] != Block::Unknown)
            .map(|b| b as u16)
            .unwrap_or(NO_BLOCK);
        pdu[6..8].copy_from_slice(&need.to_le_bytes());
        let total = self.geom.total_chunks(info.image_len);
        let missing = |r: &Self, c: u32| {
            !r.has(c)
                && r.blocks[r.geom.block_of(c) as usize] != Block::Verified
                && !r.queue.iter().flatten().any(|q| q.index == c)
        };
        // Report the window that starts at the first missing chunk from the cursor on
        // (wrapping), so successive reports walk the whole image.
        let start = (self.status_cursor..total)
            .chain(0..self.status_cursor.min(total))
            .find(|&c| missing(self, c));
        let base = start.unwrap_or(total);
        pdu[8..10].copy_from_slice(&(base.min(u16::MAX as u32) as u16).to_le_bytes());
        for i in 0..STATUS_WINDOW {
            let c = base + i;
            if c < total && missing(self, c) {
                pdu[STATUS_HEAD + (i / 8) as usize] |= 1 << (i % 8);
            }
        }
        self.status_cursor = if base + STATUS_WINDOW >= total {
            0
        } else {
            base + STATUS_WINDOW
        };
        frame(self.company_id, &pdu, out)
    }
}
