//! The update-region policy: the kernel-independent core of the staged-update capsule.
//!
//! One process (the owner, identified by an opaque id the kernel assigns, e.g. a Tock `ShortId`)
//! may stage an image in the QSPI staging slot; the policy
//!
//! - checks the caller against the one authorised owner,
//! - keeps every write, erase and read inside the staging slot,
//! - accepts a write only into a sector erased in this staging session and only into bytes that
//!   still read back erased (0xFF), so a program can never AND new data into old data,
//! - accepts writes in any order,
//! - remembers across a reboot what was staged (a progress record in the slot's last sector),
//! - on `finalize`, reads the staged image back through ota-image's [`StreamChecker`] (layout,
//!   SHA-256 over the hashed range against the image's hash TLV) and only then appends the boot
//!   request record — the only path that writes a boot request into the control area,
//! - on `confirm` after a trial boot, appends a Confirm record for the image last requested,
//! - lets the owner erase the slot ahead of a transfer in a *prepare session*
//!   (`dfu_abi::update::PREPARE_TAG`: erases only; not while a boot request awaits its install)
//!   and remembers which sectors are erased and unwritten since: a later session's erase of
//!   one records it without erasing again.
//!
//! It is sans-IO: it never touches flash. Each request yields the flash operations to perform
//! ([`Op`], absolute QSPI addresses) one at a time; the caller performs one and hands its result to
//! [`UpdateRegion::op_done`], which yields the next [`Step`]. The Tock capsule drives it
//! split-phase from flash callbacks; [`blocking::BlockingDriver`] drives it over any
//! `embedded_storage` `NorFlash` for the bootloader-side tools, simulator and tests.
//!
//! The byte layout of the progress record and the request rules are in `docs/update-region.md`.
#![no_std]
#![forbid(unsafe_code)]

pub mod blocking;

use control_area::{Record, RecordKind, RECORD_LEN};
use ota_image::{ImageError, StreamChecker};

/// Flash erase unit of the MX25R6435F (and the unit of the policy's bookkeeping).
pub const SECTOR_SIZE: u32 = dfu_abi::update::SECTOR_SIZE;
/// Largest staging slot the bookkeeping covers (256 sectors).
pub const MAX_SECTORS: usize = 256;
/// Largest read the policy itself asks for: the driver's scratch buffer must be this big.
pub const MAX_POLICY_READ: usize = 256;
/// Length of the opaque tag the owner stores with a staging session (e.g. a transfer session id).
pub const TAG_LEN: usize = 16;

/// "TOUR" little-endian: the progress record's magic.
const PROGRESS_MAGIC: u32 = u32::from_le_bytes(*b"TOUR");
const PROGRESS_VERSION: u8 = 1;
const PROGRESS_HEADER_LEN: usize = 64;
/// Offset in the progress sector of the 4-byte finalized mark (0xFF.. = not yet).
const FINALIZED_MARK_AT: u32 = 64;
/// Offset in the progress sector of the erased-sector bitmap (a cleared bit = sector erased).
const ERASED_BITMAP_AT: u32 = 128;

/// Opaque caller identity supplied by the kernel glue (never by the caller itself).
pub type CallerId = u32;

/// Where the policy lives in QSPI and who may use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The one caller allowed to stage, finalize, abort and confirm.
    pub owner: CallerId,
    /// Absolute QSPI address of the staging slot (sector aligned).
    pub staging_base: u32,
    /// Staging slot length in bytes (a multiple of [`SECTOR_SIZE`], at most
    /// `MAX_SECTORS` sectors). Its last sector holds the progress record.
    pub staging_len: u32,
    /// Absolute QSPI address of the control-area request sector.
    pub request_base: u32,
}

impl Config {
    /// The nRF52840-DK layout (`docs/layout.md`): request sector at 0, staging slot at 1 MiB.
    pub const fn nrf52840dk(owner: CallerId) -> Config {
        Config {
            owner,
            staging_base: 0x10_0000,
            staging_len: 0x10_0000,
            request_base: 0,
        }
    }

    /// The DK's received-stream area (`docs/layout.md`): a compressed image or delta patch is
    /// staged here under the same policy, then rebuilt into the staging slot. It is never
    /// finalized: its boot request comes from the staging slot's session after the rebuild.
    pub const fn nrf52840dk_stream(owner: CallerId) -> Config {
        Config {
            owner,
            staging_base: 0x30_0000,
            staging_len: 0x4_0000,
            request_base: 0,
        }
    }

    /// Largest image that can be staged: the slot less the progress sector.
    pub const fn max_image_len(&self) -> u32 {
        self.staging_len - SECTOR_SIZE
    }

    /// Absolute address of the progress sector (the slot's last sector).
    pub const fn progress_base(&self) -> u32 {
        self.staging_base + self.staging_len - SECTOR_SIZE
    }

    fn check(&self) -> Result<(), Error> {
        let sectors = self.staging_len / SECTOR_SIZE;
        if !self.staging_base.is_multiple_of(SECTOR_SIZE)
            || !self.staging_len.is_multiple_of(SECTOR_SIZE)
            || !self.request_base.is_multiple_of(SECTOR_SIZE)
            || sectors < 2
            || sectors as usize > MAX_SECTORS
            || self.staging_base.checked_add(self.staging_len).is_none()
        {
            return Err(Error::BadConfig);
        }
        let overlaps = self.request_base < self.staging_base + self.staging_len
            && self.staging_base < self.request_base + SECTOR_SIZE;
        if overlaps {
            return Err(Error::BadConfig);
        }
        Ok(())
    }
}

/// What the owner asks for. Offsets are relative to the start of the staging slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Start a new staging session for an image of `image_len` bytes, tagged with `tag`
    /// (returned by [`Status`] after a reboot so the owner can resume). Forgets any previous one.
    Begin { tag: [u8; TAG_LEN], image_len: u32 },
    /// Erase the 4 KiB sector that contains `offset` (must be sector aligned).
    Erase { offset: u32 },
    /// Write `len` bytes of the owner's data at `offset`. The driver holds the bytes.
    Write { offset: u32, len: u32 },
    /// Read `len` staged bytes at `offset` into the owner's buffer.
    Read { offset: u32, len: u32 },
    /// Check the staged image and append the boot request record.
    Finalize,
    /// Forget the staging session (the staged bytes stay until the next session erases them).
    Abort,
    /// After a trial boot: append a Confirm record for the image last requested.
    Confirm,
}

impl Request {
    /// The request a staged-update driver command stands for (`dfu_abi::update::command`, with
    /// the command's two arguments), so the capsule and the simulated kernel decode commands
    /// alike. BEGIN's tag is not in the arguments: `tag` is called for BEGIN alone, to read it
    /// from the caller's buffer, and its error is returned. `None`: the command is not a policy
    /// request (EXISTS, STATUS, TAG, REBOOT or an unknown number); the driver answers it itself.
    pub fn from_command<E>(
        command: u32,
        arg1: u32,
        arg2: u32,
        tag: impl FnOnce() -> Result<[u8; TAG_LEN], E>,
    ) -> Option<Result<Request, E>> {
        use dfu_abi::update::command as c;
        Some(Ok(match command {
            c::BEGIN => match tag() {
                Ok(tag) => Request::Begin {
                    tag,
                    image_len: arg1,
                },
                Err(e) => return Some(Err(e)),
            },
            c::ERASE => Request::Erase { offset: arg1 },
            c::WRITE => Request::Write {
                offset: arg1,
                len: arg2,
            },
            c::READ => Request::Read {
                offset: arg1,
                len: arg2,
            },
            c::FINALIZE => Request::Finalize,
            c::ABORT => Request::Abort,
            c::CONFIRM => Request::Confirm,
            _ => return None,
        }))
    }
}

/// One flash operation for the driver to perform. Addresses are absolute QSPI addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Read `len` (≤ [`MAX_POLICY_READ`]) bytes and pass them to `op_done`.
    Read { address: u32, len: u32 },
    /// Read `len` bytes into the owner's buffer; pass an empty slice to `op_done`.
    ReadIntoOwner { address: u32, len: u32 },
    /// Program the owner's `len` bytes (the ones given with [`Request::Write`]) at `address`.
    WriteOwnerData { address: u32, len: u32 },
    /// Program the policy's own bytes (progress and control records) at `address`.
    Write { address: u32, data: &'a [u8] },
    /// Erase the 4 KiB sector at `address`.
    Erase { address: u32 },
}

/// What [`UpdateRegion::request`] and [`UpdateRegion::op_done`] yield next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Perform this operation, then call `op_done`.
    Op(Op<'a>),
    /// The request finished.
    Done(Result<Completion, Error>),
}

/// How a request finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Start-up scan finished; see [`UpdateRegion::status`].
    Started,
    Begun,
    Erased,
    Written,
    Read,
    /// The boot request with this sequence number was appended.
    Finalized {
        sequence: u32,
        image_len: u32,
        image_hash: [u8; 32],
    },
    Aborted,
    /// The Confirm record with this sequence number was appended (or already there).
    Confirmed {
        sequence: u32,
    },
}

/// Why a request was refused or failed. Nothing already staged is lost by a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The configuration does not describe a usable slot.
    BadConfig,
    /// The caller is not the authorised owner.
    NotOwner,
    /// Another request is still in progress, or the start-up scan has not run.
    Busy,
    /// The policy has not completed its start-up scan.
    NotStarted,
    /// No staging session: call `Begin` first.
    NoSession,
    /// The session is finalized: only `Begin`, `Abort` and `Confirm` are accepted.
    AlreadyFinalized,
    /// The range leaves the staged image (or the slot).
    OutOfBounds { offset: u32, len: u32 },
    /// `offset` is not at a sector boundary.
    Unaligned { offset: u32 },
    /// Zero length, or an image length of zero or beyond the slot.
    BadLength { len: u32 },
    /// The write touches a sector not erased in this session.
    NotErased { offset: u32 },
    /// The write touches bytes that no longer read back erased (already written).
    NotBlank { offset: u32 },
    /// The flash operation failed (the request stopped; state is as before the failed step).
    Flash,
    /// The staged data is not an image: its magic is wrong.
    ImageBadMagic,
    /// The image header's sizes are inconsistent or do not fit the staged length.
    ImageBadLayout,
    /// The image has no SHA-256 TLV.
    ImageHashMissing,
    /// The staged bytes do not hash to the image's SHA-256 TLV.
    ImageHashMismatch,
    /// No boot request was made that a Confirm could apply to.
    NothingToConfirm,
    /// A received stream (compressed image or delta patch) was refused while the kernel rebuilt
    /// the image from it; `detail` says why (`dfu_abi::update::detail::STREAM_*`, from
    /// `ota_reconstruct::Error::abi_detail`). Nothing was requested.
    StreamRefused { detail: u32 },
}

impl Error {
    /// The check that failed, as the staged-update driver reports it to userspace in an upcall's
    /// `value` (`dfu_abi::update::detail`).
    pub fn abi_detail(self) -> u32 {
        use dfu_abi::update::detail as d;
        match self {
            Error::BadConfig => d::BAD_CONFIG,
            Error::NotOwner => d::NOT_OWNER,
            Error::Busy => d::BUSY,
            Error::NotStarted => d::NOT_STARTED,
            Error::NoSession => d::NO_SESSION,
            Error::AlreadyFinalized => d::ALREADY_FINALIZED,
            Error::OutOfBounds { .. } => d::OUT_OF_BOUNDS,
            Error::Unaligned { .. } => d::UNALIGNED,
            Error::BadLength { .. } => d::BAD_LENGTH,
            Error::NotErased { .. } => d::NOT_ERASED,
            Error::NotBlank { .. } => d::NOT_BLANK,
            Error::Flash => d::FLASH,
            Error::ImageBadMagic => d::IMAGE_BAD_MAGIC,
            Error::ImageBadLayout => d::IMAGE_BAD_LAYOUT,
            Error::ImageHashMissing => d::IMAGE_HASH_MISSING,
            Error::ImageHashMismatch => d::IMAGE_HASH_MISMATCH,
            Error::NothingToConfirm => d::NOTHING_TO_CONFIRM,
            Error::StreamRefused { detail } => detail,
        }
    }

    /// The syscall error code the staged-update driver answers with (`dfu_abi::error`, Tock's
    /// `ErrorCode` numbers).
    pub fn abi_error(self) -> u32 {
        use dfu_abi::error as e;
        match self {
            Error::NotOwner => e::NODEVICE,
            Error::Busy | Error::NotStarted => e::BUSY,
            Error::NoSession | Error::NothingToConfirm => e::RESERVE,
            Error::AlreadyFinalized => e::ALREADY,
            Error::OutOfBounds { .. } | Error::BadLength { .. } => e::SIZE,
            Error::Unaligned { .. } | Error::BadConfig => e::INVAL,
            Error::NotErased { .. } | Error::NotBlank { .. } => e::NOACK,
            Error::Flash
            | Error::ImageBadMagic
            | Error::ImageBadLayout
            | Error::ImageHashMissing
            | Error::ImageHashMismatch
            | Error::StreamRefused { .. } => e::FAIL,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::BadConfig => write!(f, "update-region configuration is invalid"),
            Error::NotOwner => write!(f, "caller is not the update-region owner"),
            Error::Busy => write!(f, "another update-region request is in progress"),
            Error::NotStarted => write!(f, "update-region start-up scan has not run"),
            Error::NoSession => write!(f, "no staging session (begin first)"),
            Error::AlreadyFinalized => write!(f, "staging session already finalized"),
            Error::OutOfBounds { offset, len } => {
                write!(f, "range {offset:#x}+{len:#x} is outside the staged image")
            }
            Error::Unaligned { offset } => write!(f, "offset {offset:#x} is not sector aligned"),
            Error::BadLength { len } => write!(f, "length {len} is not allowed"),
            Error::NotErased { offset } => {
                write!(f, "sector at {offset:#x} was not erased in this session")
            }
            Error::NotBlank { offset } => write!(f, "bytes at {offset:#x} are already written"),
            Error::Flash => write!(f, "flash operation failed"),
            Error::ImageBadMagic => write!(f, "staged data is not an image (bad magic)"),
            Error::ImageBadLayout => write!(f, "staged image sizes are inconsistent"),
            Error::ImageHashMissing => write!(f, "staged image has no SHA-256 TLV"),
            Error::ImageHashMismatch => write!(f, "staged image does not match its SHA-256 TLV"),
            Error::NothingToConfirm => write!(f, "no boot request to confirm"),
            Error::StreamRefused { detail } => {
                write!(
                    f,
                    "received stream refused while rebuilding (detail {detail})"
                )
            }
        }
    }
}

/// Staging state as last known (persisted in the progress record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// No staging session.
    Idle,
    /// Accepting erases and writes.
    Staging,
    /// Finalized: a boot request for this image was appended.
    Finalized,
}

impl SessionState {
    /// The number the staged-update driver's status command reports (`dfu_abi::update::state`).
    pub fn abi_state(self) -> u32 {
        use dfu_abi::update::state;
        match self {
            SessionState::Idle => state::IDLE,
            SessionState::Staging => state::STAGING,
            SessionState::Finalized => state::FINALIZED,
        }
    }
}

/// A snapshot for the owner (and for a status command anyone may use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: SessionState,
    /// Declared image length of the session (0 when idle).
    pub image_len: u32,
    /// The owner's tag for the session (all 0xFF when idle).
    pub tag: [u8; TAG_LEN],
    /// Sectors of the image area erased in this session.
    pub erased_sectors: u32,
    /// The newest valid control record, if any.
    pub newest_record: Option<Record>,
}

#[derive(Clone, Copy, Debug)]
enum Job {
    None,
    Start(StartStep),
    Begin { step: u8 },
    Erase { sector: u32, step: u8 },
    Write { offset: u32, len: u32, checked: u32 },
    Read,
    Finalize(FinalizeStep),
    Abort,
    Confirm { step: u8 },
}

#[derive(Clone, Copy, Debug)]
enum StartStep {
    Header,
    Finalized,
    Bitmap,
    Requests { at: u32 },
}

#[derive(Clone, Copy, Debug)]
enum FinalizeStep {
    /// Reading the staged image into ota-image's checker.
    Check,
    EraseRequests,
    WriteRequest,
    MarkFinalized,
}

/// The update-region policy state machine. See the crate docs.
pub struct UpdateRegion {
    config: Config,
    started: bool,
    state: SessionState,
    image_len: u32,
    tag: [u8; TAG_LEN],
    /// Bit set = sector erased in this session (RAM mirror of the progress bitmap).
    erased: [u8; MAX_SECTORS / 8],
    /// Bit set = sector known to be erased and not written since (RAM only, whatever the
    /// session): erased by this policy this boot with no write request into it after, or
    /// erased in a prepare session found at start-up (nothing is ever written in one). An
    /// erase request for such a sector records it as erased without erasing again.
    clean: [u8; MAX_SECTORS / 8],
    newest_record: Option<Record>,
    /// Offset of the first erased record slot in the request sector (None: sector full).
    next_free_slot: Option<u32>,
    job: Job,
    /// Bytes the policy writes itself (progress records, control records, marks).
    out: [u8; 64],
    // Finalize working state.
    checker: StreamChecker,
    total_len: u32,
    image_hash: [u8; 32],
    read_range: (u32, u32),
    pending_start_read: Option<(u32, u32)>,
}

impl UpdateRegion {
    /// A policy for `config`. Call [`UpdateRegion::start`] (and drive it to completion) before
    /// anything else, once per boot.
    pub fn new(config: Config) -> Result<UpdateRegion, Error> {
        config.check()?;
        Ok(UpdateRegion {
            config,
            started: false,
            state: SessionState::Idle,
            image_len: 0,
            tag: [0xFF; TAG_LEN],
            erased: [0; MAX_SECTORS / 8],
            clean: [0; MAX_SECTORS / 8],
            newest_record: None,
            next_free_slot: None,
            job: Job::None,
            out: [0xFF; 64],
            checker: StreamChecker::new(0),
            total_len: 0,
            image_hash: [0; 32],
            read_range: (0, 0),
            pending_start_read: None,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// True while a request is in progress.
    pub fn is_busy(&self) -> bool {
        !matches!(self.job, Job::None)
    }

    pub fn status(&self) -> Status {
        let sectors = self.image_len.div_ceil(SECTOR_SIZE);
        let erased_sectors = (0..sectors).filter(|&s| self.is_erased(s)).count() as u32;
        Status {
            state: self.state,
            image_len: self.image_len,
            tag: self.tag,
            erased_sectors,
            newest_record: self.newest_record,
        }
    }

    /// Whether the sector holding staging offset `offset` is erased in this session.
    pub fn sector_erased(&self, offset: u32) -> bool {
        self.state != SessionState::Idle && self.is_erased(offset / SECTOR_SIZE)
    }

    fn is_erased(&self, sector: u32) -> bool {
        let s = sector as usize;
        s < MAX_SECTORS && self.erased[s / 8] & (1 << (s % 8)) != 0
    }

    fn is_clean(&self, sector: u32) -> bool {
        let s = sector as usize;
        s < MAX_SECTORS && self.clean[s / 8] & (1 << (s % 8)) != 0
    }

    fn set_clean(&mut self, sector: u32, clean: bool) {
        let s = sector as usize;
        if s < MAX_SECTORS {
            if clean {
                self.clean[s / 8] |= 1 << (s % 8);
            } else {
                self.clean[s / 8] &= !(1 << (s % 8));
            }
        }
    }

    /// Whether the session is a prepare session (erases only).
    fn preparing(&self) -> bool {
        self.state == SessionState::Staging && self.tag == dfu_abi::update::PREPARE_TAG
    }

    /// Start-up scan: read the progress record and the request sector. Needs no caller identity
    /// because it changes nothing.
    pub fn start(&mut self) -> Step<'_> {
        if self.is_busy() {
            return Step::Done(Err(Error::Busy));
        }
        self.state = SessionState::Idle;
        self.image_len = 0;
        self.tag = [0xFF; TAG_LEN];
        self.erased = [0; MAX_SECTORS / 8];
        self.clean = [0; MAX_SECTORS / 8];
        self.newest_record = None;
        self.next_free_slot = None;
        self.job = Job::Start(StartStep::Header);
        Step::Op(Op::Read {
            address: self.config.progress_base(),
            len: PROGRESS_HEADER_LEN as u32,
        })
    }

    /// Begin `request` on behalf of `caller`.
    pub fn request(&mut self, caller: CallerId, request: Request) -> Step<'_> {
        match self.try_request(caller, request) {
            Ok(()) => {}
            Err(e) => return Step::Done(Err(e)),
        }
        if let Job::Erase { sector, step: 1 } = self.job {
            if self.is_erased(sector) {
                // Clean and already recorded: nothing to do.
                self.job = Job::None;
                return Step::Done(Ok(Completion::Erased));
            }
        }
        self.next_op()
    }

    fn try_request(&mut self, caller: CallerId, request: Request) -> Result<(), Error> {
        if caller != self.config.owner {
            return Err(Error::NotOwner);
        }
        if self.is_busy() {
            return Err(Error::Busy);
        }
        if !self.started {
            return Err(Error::NotStarted);
        }
        let staging_ok = || match self.state {
            SessionState::Idle => Err(Error::NoSession),
            SessionState::Finalized => Err(Error::AlreadyFinalized),
            SessionState::Staging => Ok(()),
        };
        self.job = match request {
            Request::Begin { tag, image_len } => {
                if image_len == 0 || image_len > self.config.max_image_len() {
                    return Err(Error::BadLength { len: image_len });
                }
                let awaiting_install = self.state == SessionState::Finalized
                    && self
                        .newest_record
                        .is_some_and(|r| r.kind == RecordKind::BootRequest);
                if tag == dfu_abi::update::PREPARE_TAG && awaiting_install {
                    // Preparing would erase the image the boot request names.
                    return Err(Error::AlreadyFinalized);
                }
                self.state = SessionState::Idle;
                self.erased = [0; MAX_SECTORS / 8];
                self.image_len = image_len;
                self.tag = tag;
                Job::Begin { step: 0 }
            }
            Request::Erase { offset } => {
                staging_ok()?;
                if !offset.is_multiple_of(SECTOR_SIZE) {
                    return Err(Error::Unaligned { offset });
                }
                if offset >= self.image_len {
                    return Err(Error::OutOfBounds {
                        offset,
                        len: SECTOR_SIZE,
                    });
                }
                let sector = offset / SECTOR_SIZE;
                Job::Erase {
                    sector,
                    // A clean sector is only recorded as erased in this session.
                    step: u8::from(self.is_clean(sector)),
                }
            }
            Request::Write { offset, len } => {
                staging_ok()?;
                if self.preparing() {
                    return Err(Error::NoSession);
                }
                self.check_range(offset, len)?;
                let first = offset / SECTOR_SIZE;
                let last = (offset + len - 1) / SECTOR_SIZE;
                if let Some(s) = (first..=last).find(|&s| !self.is_erased(s)) {
                    return Err(Error::NotErased {
                        offset: s * SECTOR_SIZE,
                    });
                }
                // From here on these sectors may hold data (even if the write fails midway).
                for s in first..=last {
                    self.set_clean(s, false);
                }
                Job::Write {
                    offset,
                    len,
                    checked: 0,
                }
            }
            Request::Read { offset, len } => {
                if self.state == SessionState::Idle {
                    return Err(Error::NoSession);
                }
                self.check_range(offset, len)?;
                self.read_range = (offset, len);
                Job::Read
            }
            Request::Finalize => {
                staging_ok()?;
                if self.preparing() {
                    return Err(Error::NoSession);
                }
                self.checker = StreamChecker::new(self.image_len);
                if self.checker.is_done() {
                    // Refused before reading a byte: the image is shorter than a header.
                    return Err(Error::ImageBadLayout);
                }
                Job::Finalize(FinalizeStep::Check)
            }
            Request::Abort => {
                if self.state == SessionState::Idle {
                    return Err(Error::NoSession);
                }
                Job::Abort
            }
            Request::Confirm => {
                match self.newest_record {
                    Some(r) if r.kind == RecordKind::BootRequest => {}
                    // Already confirmed: nothing to write, report it done.
                    Some(r) if r.kind == RecordKind::Confirm => {
                        self.job = Job::Confirm { step: 2 };
                        return Ok(());
                    }
                    _ => return Err(Error::NothingToConfirm),
                }
                Job::Confirm { step: 0 }
            }
        };
        Ok(())
    }

    fn check_range(&self, offset: u32, len: u32) -> Result<(), Error> {
        if len == 0 {
            return Err(Error::BadLength { len });
        }
        match offset.checked_add(len) {
            Some(end) if end <= self.image_len => Ok(()),
            _ => Err(Error::OutOfBounds { offset, len }),
        }
    }

    fn abs(&self, offset: u32) -> u32 {
        self.config.staging_base + offset
    }

    /// The operation the current job needs next (or its completion).
    fn next_op(&mut self) -> Step<'_> {
        let progress = self.config.progress_base();
        match self.job {
            Job::None => Step::Done(Err(Error::Busy)),
            Job::Start(_) => match self.pending_start_read {
                Some((address, len)) => Step::Op(Op::Read { address, len }),
                None => Step::Done(Err(Error::Busy)),
            },
            Job::Begin { step: 0 } => Step::Op(Op::Erase { address: progress }),
            Job::Begin { .. } => {
                self.out = [0xFF; 64];
                self.out[0..4].copy_from_slice(&PROGRESS_MAGIC.to_le_bytes());
                self.out[4] = PROGRESS_VERSION;
                self.out[8..12].copy_from_slice(&self.image_len.to_le_bytes());
                self.out[12..28].copy_from_slice(&self.tag);
                let crc = control_area::crc32(&self.out[..60]);
                self.out[60..64].copy_from_slice(&crc.to_le_bytes());
                Step::Op(Op::Write {
                    address: progress,
                    data: &self.out[..64],
                })
            }
            Job::Erase { sector, step: 0 } => Step::Op(Op::Erase {
                address: self.abs(sector * SECTOR_SIZE),
            }),
            Job::Erase { sector, .. } => {
                // Clear the sector's bit; the other bits of the byte are written as they are
                // (programming 0 over 0 changes nothing, 1 over 1 leaves them erased).
                let s = sector as usize;
                let erased_bits = self.erased[s / 8] | (1 << (s % 8));
                self.out[0] = !erased_bits;
                Step::Op(Op::Write {
                    address: progress + ERASED_BITMAP_AT + (s / 8) as u32,
                    data: &self.out[..1],
                })
            }
            Job::Write {
                offset,
                len,
                checked,
            } => {
                if checked < len {
                    let piece = (len - checked).min(MAX_POLICY_READ as u32);
                    Step::Op(Op::Read {
                        address: self.abs(offset + checked),
                        len: piece,
                    })
                } else {
                    Step::Op(Op::WriteOwnerData {
                        address: self.abs(offset),
                        len,
                    })
                }
            }
            Job::Read => Step::Op(Op::ReadIntoOwner {
                address: self.abs(self.read_range.0),
                len: self.read_range.1,
            }),
            Job::Finalize(step) => self.finalize_op(step),
            Job::Abort => Step::Op(Op::Erase { address: progress }),
            Job::Confirm { step: 0 } => {
                if self.next_free_slot.is_none() {
                    Step::Op(Op::Erase {
                        address: self.config.request_base,
                    })
                } else {
                    self.job = Job::Confirm { step: 1 };
                    self.next_op()
                }
            }
            Job::Confirm { step: 1 } => {
                let hash = self.newest_record.map(|r| r.image_hash).unwrap_or([0; 32]);
                let record = Record {
                    kind: RecordKind::Confirm,
                    sequence: self.next_sequence(),
                    image_len: 0,
                    image_hash: hash,
                };
                self.out = record.encode();
                let at = self.config.request_base + self.next_free_slot.unwrap_or(0);
                Step::Op(Op::Write {
                    address: at,
                    data: &self.out[..RECORD_LEN],
                })
            }
            Job::Confirm { .. } => {
                self.job = Job::None;
                let sequence = self.newest_record.map(|r| r.sequence).unwrap_or(0);
                Step::Done(Ok(Completion::Confirmed { sequence }))
            }
        }
    }

    fn next_sequence(&self) -> u32 {
        self.newest_record
            .map(|r| r.sequence.wrapping_add(1))
            .unwrap_or(1)
    }

    fn finalize_op(&mut self, step: FinalizeStep) -> Step<'_> {
        match step {
            FinalizeStep::Check => Step::Op(Op::Read {
                address: self.abs(self.checker.position()),
                len: self.checker.wanted().min(MAX_POLICY_READ as u32),
            }),
            FinalizeStep::EraseRequests => Step::Op(Op::Erase {
                address: self.config.request_base,
            }),
            FinalizeStep::WriteRequest => {
                let record = Record {
                    kind: RecordKind::BootRequest,
                    sequence: self.next_sequence(),
                    image_len: self.total_len,
                    image_hash: self.image_hash,
                };
                self.out = record.encode();
                let at = self.config.request_base + self.next_free_slot.unwrap_or(0);
                Step::Op(Op::Write {
                    address: at,
                    data: &self.out[..RECORD_LEN],
                })
            }
            FinalizeStep::MarkFinalized => {
                self.out[..4].copy_from_slice(&[0; 4]);
                Step::Op(Op::Write {
                    address: self.config.progress_base() + FINALIZED_MARK_AT,
                    data: &self.out[..4],
                })
            }
        }
    }

    /// The result of the operation last yielded: `Ok(bytes)` for [`Op::Read`] (exactly the
    /// bytes asked for), `Ok(&[])` for the others, `Err(())` if the flash operation failed.
    pub fn op_done(&mut self, result: Result<&[u8], ()>) -> Step<'_> {
        let job = self.job;
        let data = match result {
            Ok(d) => d,
            Err(()) => {
                // A record slot that failed mid-program may hold a torn record: never reuse it.
                if matches!(
                    job,
                    Job::Finalize(FinalizeStep::WriteRequest) | Job::Confirm { step: 1 }
                ) {
                    self.advance_free_slot();
                }
                self.job = Job::None;
                return Step::Done(Err(Error::Flash));
            }
        };
        match self.advance(job, data) {
            Ok(Some(done)) => {
                self.job = Job::None;
                Step::Done(Ok(done))
            }
            Ok(None) => self.next_op(),
            Err(e) => {
                self.job = Job::None;
                Step::Done(Err(e))
            }
        }
    }

    fn advance_free_slot(&mut self) {
        self.next_free_slot = self
            .next_free_slot
            .map(|at| at + RECORD_LEN as u32)
            .filter(|&at| at < SECTOR_SIZE);
    }

    /// Consume one completion; `Ok(None)` means `self.job` now names the next step.
    fn advance(&mut self, job: Job, data: &[u8]) -> Result<Option<Completion>, Error> {
        match job {
            Job::None => return Err(Error::Busy),
            Job::Start(step) => return self.advance_start(step, data),
            Job::Begin { step: 0 } => self.job = Job::Begin { step: 1 },
            Job::Begin { .. } => {
                self.state = SessionState::Staging;
                return Ok(Some(Completion::Begun));
            }
            Job::Erase { sector, step: 0 } => {
                self.set_clean(sector, true);
                if self.is_erased(sector) {
                    return Ok(Some(Completion::Erased));
                }
                self.job = Job::Erase { sector, step: 1 };
            }
            Job::Erase { sector, .. } => {
                let s = sector as usize;
                self.erased[s / 8] |= 1 << (s % 8);
                return Ok(Some(Completion::Erased));
            }
            Job::Write {
                offset,
                len,
                checked,
            } => {
                if checked >= len {
                    return Ok(Some(Completion::Written));
                }
                if let Some(i) = data.iter().position(|&b| b != 0xFF) {
                    return Err(Error::NotBlank {
                        offset: offset + checked + i as u32,
                    });
                }
                let piece = (len - checked).min(MAX_POLICY_READ as u32);
                if data.len() != piece as usize {
                    return Err(Error::Flash);
                }
                self.job = Job::Write {
                    offset,
                    len,
                    checked: checked + piece,
                };
            }
            Job::Read => return Ok(Some(Completion::Read)),
            Job::Abort => {
                self.state = SessionState::Idle;
                self.image_len = 0;
                self.tag = [0xFF; TAG_LEN];
                self.erased = [0; MAX_SECTORS / 8];
                return Ok(Some(Completion::Aborted));
            }
            Job::Confirm { step: 0 } => {
                self.next_free_slot = Some(0);
                self.job = Job::Confirm { step: 1 };
            }
            Job::Confirm { .. } => {
                let hash = self.newest_record.map(|r| r.image_hash).unwrap_or([0; 32]);
                let sequence = self.next_sequence();
                self.newest_record = Some(Record {
                    kind: RecordKind::Confirm,
                    sequence,
                    image_len: 0,
                    image_hash: hash,
                });
                self.advance_free_slot();
                return Ok(Some(Completion::Confirmed { sequence }));
            }
            Job::Finalize(step) => {
                let next = match step {
                    FinalizeStep::Check => {
                        let wanted = self.checker.wanted().min(MAX_POLICY_READ as u32);
                        if data.len() != wanted as usize {
                            return Err(Error::Flash);
                        }
                        self.checker.feed(data).map_err(Error::from)?;
                        if !self.checker.is_done() {
                            return Ok(None);
                        }
                        let checker = core::mem::replace(&mut self.checker, StreamChecker::new(0));
                        let checked = checker.finish().map_err(Error::from)?;
                        self.image_hash = checked.check_hash().map_err(Error::from)?;
                        self.total_len = checked.info().total_len;
                        if self.next_free_slot.is_none() {
                            FinalizeStep::EraseRequests
                        } else {
                            FinalizeStep::WriteRequest
                        }
                    }
                    FinalizeStep::EraseRequests => {
                        self.next_free_slot = Some(0);
                        FinalizeStep::WriteRequest
                    }
                    FinalizeStep::WriteRequest => {
                        self.newest_record = Some(Record {
                            kind: RecordKind::BootRequest,
                            sequence: self.next_sequence(),
                            image_len: self.total_len,
                            image_hash: self.image_hash,
                        });
                        self.advance_free_slot();
                        FinalizeStep::MarkFinalized
                    }
                    FinalizeStep::MarkFinalized => {
                        self.state = SessionState::Finalized;
                        let sequence = self.newest_record.map(|r| r.sequence).unwrap_or(0);
                        return Ok(Some(Completion::Finalized {
                            sequence,
                            image_len: self.total_len,
                            image_hash: self.image_hash,
                        }));
                    }
                };
                self.job = Job::Finalize(next);
            }
        }
        Ok(None)
    }

    fn advance_start(&mut self, step: StartStep, data: &[u8]) -> Result<Option<Completion>, Error> {
        let progress = self.config.progress_base();
        let (next, op) = match step {
            StartStep::Header => {
                if let Some((image_len, tag)) = decode_progress_header(data, &self.config) {
                    self.state = SessionState::Staging;
                    self.image_len = image_len;
                    self.tag = tag;
                    (StartStep::Finalized, (progress + FINALIZED_MARK_AT, 4))
                } else {
                    (
                        StartStep::Requests { at: 0 },
                        (self.config.request_base, 256),
                    )
                }
            }
            StartStep::Finalized => {
                if data.iter().any(|&b| b != 0xFF) {
                    self.state = SessionState::Finalized;
                }
                let bitmap_len = (self.config.staging_len / SECTOR_SIZE).div_ceil(8);
                (StartStep::Bitmap, (progress + ERASED_BITMAP_AT, bitmap_len))
            }
            StartStep::Bitmap => {
                for (mirror, &stored) in self.erased.iter_mut().zip(data) {
                    *mirror = !stored;
                }
                if self.preparing() {
                    // Nothing is written in a prepare session: what it erased still is.
                    self.clean = self.erased;
                }
                (
                    StartStep::Requests { at: 0 },
                    (self.config.request_base, 256),
                )
            }
            StartStep::Requests { at } => {
                let mut log = control_area::LogScan::resume(self.newest_record, at as usize);
                log.feed(data);
                self.newest_record = log.newest;
                self.next_free_slot = log.next_free.map(|o| o as u32);
                let at = at + 256;
                if self.next_free_slot.is_some() || at >= SECTOR_SIZE {
                    self.started = true;
                    return Ok(Some(Completion::Started));
                }
                (
                    StartStep::Requests { at },
                    (self.config.request_base + at, 256),
                )
            }
        };
        self.job = Job::Start(next);
        self.pending_start_read = Some(op);
        Ok(None)
    }
}

/// The finalize refusal for an image ota-image's checker refused: the magic, the hash TLV and the
/// hash have their own; every other refusal the checker can give without a key is a layout one.
impl From<ImageError<core::convert::Infallible>> for Error {
    fn from(e: ImageError<core::convert::Infallible>) -> Error {
        match e {
            ImageError::BadMagic(_) => Error::ImageBadMagic,
            ImageError::MissingHash => Error::ImageHashMissing,
            ImageError::HashMismatch => Error::ImageHashMismatch,
            _ => Error::ImageBadLayout,
        }
    }
}

fn decode_progress_header(data: &[u8], config: &Config) -> Option<(u32, [u8; TAG_LEN])> {
    if data.len() < PROGRESS_HEADER_LEN {
        return None;
    }
    let word = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    if word(0) != PROGRESS_MAGIC
        || data[4] != PROGRESS_VERSION
        || word(60) != control_area::crc32(&data[..60])
    {
        return None;
    }
    let image_len = word(8);
    if image_len == 0 || image_len > config.max_image_len() {
        return None;
    }
    let mut tag = [0; TAG_LEN];
    tag.copy_from_slice(&data[12..28]);
    Some((image_len, tag))
}
