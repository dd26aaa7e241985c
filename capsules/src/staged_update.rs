//! Staged kernel update: stage a signed image in the QSPI staging slot, then ask the bootloader
//! to install it.
//!
//! Glue between userspace, the update-region policy (`update-region` crate: ownership, bounds,
//! erase bookkeeping, image check, boot-request records) and a byte-addressed QSPI flash
//! ([`AsyncNor`]). The policy decides; this capsule moves bytes and upcalls.
//!
//! Identity
//! --------
//!
//! The only caller allowed to stage, read back, finalize, abort, confirm or reboot is the process
//! whose `ShortId` equals the board's DFU id. The board's process checker assigns that `ShortId`
//! only to a process whose TBF ECDSA P-256 credential verified against the DFU signing key, so it
//! is not a name the app claims. Every other process (including any with a `LocallyUnique` id)
//! gets `NODEVICE` ("not available to the calling process", TRD104) for those commands. The boot
//! request record is composed and written by the policy's finalize from what it read back from
//! flash, never from userspace bytes.
//!
//! Syscall interface
//! -----------------
//!
//! Every number below (driver, commands, allows, upcall, states, error details) is defined once
//! in `dfu_abi::update`; the constants of this module are those, as the kernel's `usize`.
//!
//! Driver number `0xA0000`. Tock's registry (`capsules/core/src/driver.rs`) allocates categories
//! 0x0xxxx–0x9xxxx; 0xAxxxx is the first unallocated category, so an out-of-tree driver there
//! cannot collide with a driver upstream adds to an existing category.
//!
//! ### Commands (`arg1`, `arg2`)
//!
//! - `0`: driver exists (anyone).
//! - `1`: status (anyone): `success_u32_u32_u32(state, image_len, erased_sectors)`, state
//!   0 idle, 1 staging, 2 finalized; `BUSY` until the start-up scan of the region has finished
//!   (shortly after boot). A scan that failed on a flash error is run again by the next status
//!   command, so a poller with backoff gets its answer once the flash reads again. A kernel
//!   whose flash never answers cannot confirm its trial: the bootloader then reverts it after
//!   its trial boots, which is what we want of a kernel that can no longer receive updates.
//! - `2`: begin a session for an image of `arg1` bytes; the session tag is the first 16 bytes of
//!   read-only allow 0. The tag `dfu_abi::update::PREPARE_TAG` begins a prepare session: it
//!   only erases the slot ahead of a transfer (writes and finalize `RESERVE`), and is refused
//!   with `ALREADY` while a finalized image awaits its install (docs/update-region.md).
//! - `3`: erase the 4 KiB sector at staging offset `arg1` (one erased, with nothing written
//!   since, this boot or in a prepare session, is only recorded: no flash erase).
//! - `4`: write `arg2` bytes (≤ [`BUF_LEN`]) from read-only allow 0 at staging offset `arg1`.
//! - `5`: read `arg2` bytes (≤ [`BUF_LEN`]) at staging offset `arg1` into read-write allow 0
//!   (`INVAL` if that buffer is shorter than `arg2`).
//! - `6`: finalize: check the staged image and append the boot request.
//! - `7`: abort the session.
//! - `8`: confirm the running image (after a trial boot).
//! - `9`: copy the session tag into read-write allow 0 (to resume after a reboot).
//! - `10`: reboot into the bootloader (only once finalized).
//! - `11`: copy the running image's id (the first 16 bytes of its SHA-256 hash TLV) into
//!   read-write allow 0; `RESERVE` when the kernel cannot tell or takes no received streams
//!   ([`StagedUpdate::running_image`]). A receiver joins a delta session only against it.
//!
//! #### Received streams
//!
//! A session whose tag has the compressed or delta capability bit
//! (`adv_transfer::wire::is_stream_tag`) is a received stream, staged in the received-stream
//! area ([`crate::stream_rebuild`]). While it exists (a stream session whose tag is not that of
//! a finalized staging-slot session), status, tag, erase, write, read and abort are its own; a
//! plain begin forgets it. The DFU app rebuilds the plain signed image from it (the kernel does
//! not decode) with:
//!
//! - `12` output begin: begin the staging slot's session for an image of `arg1` bytes with the
//!   stream session's tag (the allow is not read); again after a power cut or a refused image:
//!   the output starts over.
//! - `13` output erase, `14` output write, `15` output read: as `3`, `4`, `5` on that staging
//!   slot session (same allows, checks and error codes); `RESERVE` unless the staging slot's
//!   session is staging with the stream session's tag (after `12`).
//! - `16` base read: copy `arg2` bytes (≤ [`BUF_LEN`]) of the running kernel's slot at `arg1`
//!   into read-write allow 0: `SIZE` beyond the slot, `INVAL` allow too short. No flash
//!   operation: its upcall is queued before the command returns.
//! - `6` finalize of a stream session: finalize the staging slot's session (`RESERVE` unless it
//!   is staging with the stream session's tag): the policy checks the image and appends the boot
//!   request, then the stream session is forgotten; the upcall carries the boot request's
//!   sequence. A refused image ends with `FAIL` and an `IMAGE_*` detail, the stream session kept.
//!
//! Commands 12–16 are `RESERVE` without a stream session, and only the DFU process's
//! (`NODEVICE`).
//!
//! #### Completions
//!
//! Commands 2–8 and 12–16 return success when the operation started and finish with exactly one
//! upcall 0; a synchronous failure means nothing was started and no upcall follows. The upcall
//! may already be queued when the command returns (e.g. a confirm of an image already confirmed
//! needs no flash operation, or a base read); the process sees it at its next yield either way. If the kernel cannot queue
//! the upcall (the process's task queue is full), the completion is kept and queued at the
//! process's next command of any kind (e.g. a status poll after its wait timed out); until then
//! new requests get `BUSY`.
//!
//! ### Upcall 0: `(command, status, value)`
//!
//! `status` is 0 on success, else a Tock `ErrorCode`. On success `value` is the boot-request
//! sequence for finalize and the confirmed sequence for confirm, else 0. On failure `value` is
//! [`policy_error_code`] of the policy's error (which check failed: `dfu_abi::update::detail`).
//!
//! ### Error codes
//!
//! `NODEVICE` not the DFU process; `BUSY` another operation in progress or start-up scan
//! running; `RESERVE` no session (begin first) or nothing to confirm; `ALREADY` the session is
//! finalized; `SIZE` range outside the image or slot, or bigger than [`BUF_LEN`], or a bad image
//! length; `INVAL` unaligned erase or an allow buffer too small; `NOACK` the write would touch a
//! sector not erased in this session or bytes already written; `FAIL` flash failure or the
//! staged image failed its check (see `value`).

use core::cell::Cell;

use kernel::grant::{AllowRoCount, AllowRwCount, Grant, UpcallCount};
use kernel::process::ShortId;
use kernel::processbuffer::{ReadableProcessBuffer, WriteableProcessBuffer};
use kernel::syscall::{CommandReturn, SyscallDriver};
use kernel::utilities::cells::{MapCell, OptionalCell, TakeCell};
use kernel::{ErrorCode, ProcessId};
use update_region::{
    CallerId, Completion, Config, Error, Op, Request, SessionState, Step, UpdateRegion,
    MAX_POLICY_READ, TAG_LEN,
};

use crate::kept_upcall::KeptUpcall;
use crate::nor::{AsyncNor, AsyncNorClient};
use crate::stream_rebuild::StreamArea;
use adv_transfer::wire::is_stream_tag;

use dfu_abi::update as abi;

/// Syscall driver number (see the module docs for the choice).
pub const DRIVER_NUM: usize = abi::DRIVER_NUM as usize;

/// Largest write or read per command: the kernel buffer userspace data is copied through.
pub const BUF_LEN: usize = abi::BUF_LEN;

// The tag the policy keeps is the tag the ABI moves.
const _: () = assert!(TAG_LEN == abi::TAG_LEN);

/// Upcall numbers.
pub mod upcall {
    use dfu_abi::update::upcall as abi;
    /// An operation finished: `(command, status, value)`.
    pub const DONE: usize = abi::DONE as usize;
    pub const COUNT: u8 = abi::COUNT;
}

/// Read-only allow numbers.
pub mod ro_allow {
    use dfu_abi::update::ro_allow as abi;
    /// Data for commands 4 and 14; the session tag for command 2.
    pub const DATA: usize = abi::DATA as usize;
    pub const COUNT: u8 = abi::COUNT;
}

/// Read-write allow numbers.
pub mod rw_allow {
    use dfu_abi::update::rw_allow as abi;
    /// Destination of commands 5 (read), 9 (tag), 11 (running), 15 and 16 (output and base
    /// read).
    pub const READ: usize = abi::READ as usize;
    pub const COUNT: u8 = abi::COUNT;
}

/// Command numbers.
pub mod command {
    use dfu_abi::update::command as abi;
    pub const EXISTS: usize = abi::EXISTS as usize;
    pub const STATUS: usize = abi::STATUS as usize;
    pub const BEGIN: usize = abi::BEGIN as usize;
    pub const ERASE: usize = abi::ERASE as usize;
    pub const WRITE: usize = abi::WRITE as usize;
    pub const READ: usize = abi::READ as usize;
    pub const FINALIZE: usize = abi::FINALIZE as usize;
    pub const ABORT: usize = abi::ABORT as usize;
    pub const CONFIRM: usize = abi::CONFIRM as usize;
    pub const TAG: usize = abi::TAG as usize;
    pub const REBOOT: usize = abi::REBOOT as usize;
    pub const RUNNING: usize = abi::RUNNING as usize;
    pub const OUTPUT_BEGIN: usize = abi::OUTPUT_BEGIN as usize;
    pub const OUTPUT_ERASE: usize = abi::OUTPUT_ERASE as usize;
    pub const OUTPUT_WRITE: usize = abi::OUTPUT_WRITE as usize;
    pub const OUTPUT_READ: usize = abi::OUTPUT_READ as usize;
    pub const BASE_READ: usize = abi::BASE_READ as usize;
}

/// The number reported in an upcall's `value` for a failed check (`dfu_abi::update::detail`).
pub fn policy_error_code(error: Error) -> usize {
    error.abi_detail() as usize
}

/// The syscall error code for a policy error (the policy names it as a `dfu_abi::error` number).
pub fn error_code(error: Error) -> ErrorCode {
    kernel_error_code(error.abi_error())
}

/// A `dfu_abi::error` number as the kernel's `ErrorCode` (the numbers are Tock's; see the ABI
/// test). An unknown number is `FAIL`.
pub fn kernel_error_code(code: u32) -> ErrorCode {
    use dfu_abi::error as e;
    match code {
        e::BUSY => ErrorCode::BUSY,
        e::ALREADY => ErrorCode::ALREADY,
        e::OFF => ErrorCode::OFF,
        e::RESERVE => ErrorCode::RESERVE,
        e::INVAL => ErrorCode::INVAL,
        e::SIZE => ErrorCode::SIZE,
        e::CANCEL => ErrorCode::CANCEL,
        e::NOMEM => ErrorCode::NOMEM,
        e::NOSUPPORT => ErrorCode::NOSUPPORT,
        e::NODEVICE => ErrorCode::NODEVICE,
        e::UNINSTALLED => ErrorCode::UNINSTALLED,
        e::NOACK => ErrorCode::NOACK,
        _ => ErrorCode::FAIL,
    }
}

/// The policy's caller id for a process: only a fixed `ShortId` (one the process checker
/// assigned) can be the owner.
pub fn caller_id(short_id: ShortId) -> Option<CallerId> {
    match short_id {
        ShortId::Fixed(id) => Some(id.get()),
        ShortId::LocallyUnique => None,
    }
}

/// Receives the end of each request the core runs.
pub trait StagedUpdateClient {
    /// `command` finished; `read` holds the bytes of a finished read (else empty).
    fn request_done(&self, command: usize, result: Result<Completion, Error>, read: &[u8]);
}

/// Resets the chip (board supplied: the capsule crate cannot touch the SCB).
pub trait SystemReset {
    fn reset(&self);
}

/// Longest write the policy issues itself (one control or progress record).
const POLICY_WRITE_MAX: usize = 64;

/// Fills the kernel buffer with the owner's bytes (copied from its read-only allow).
pub type OwnerData<'b> = &'b dyn Fn(&mut [u8]) -> Result<(), ErrorCode>;

/// One flash step, owned (copied out of the policy's borrow).
enum Action {
    Read {
        address: u32,
        len: u32,
    },
    ReadIntoOwner {
        address: u32,
        len: u32,
    },
    WriteOwner {
        address: u32,
        len: u32,
    },
    Write {
        address: u32,
        len: usize,
        bytes: [u8; POLICY_WRITE_MAX],
    },
    Erase {
        address: u32,
    },
    Done(Result<Completion, Error>),
    /// An operation is with the flash; its completion continues the request.
    InFlight,
}

impl Action {
    fn from_step(step: Step<'_>) -> Action {
        match step {
            Step::Done(result) => Action::Done(result),
            Step::Op(Op::Read { address, len }) => Action::Read { address, len },
            Step::Op(Op::ReadIntoOwner { address, len }) => Action::ReadIntoOwner { address, len },
            Step::Op(Op::WriteOwnerData { address, len }) => Action::WriteOwner { address, len },
            Step::Op(Op::Erase { address }) => Action::Erase { address },
            Step::Op(Op::Write { address, data }) => {
                let mut bytes = [0xFF; POLICY_WRITE_MAX];
                let len = data.len().min(POLICY_WRITE_MAX);
                bytes[..len].copy_from_slice(&data[..len]);
                if data.len() > POLICY_WRITE_MAX {
                    // The policy never writes more than one record at once; refuse rather than
                    // truncate.
                    return Action::Done(Err(Error::Flash));
                }
                Action::Write {
                    address,
                    len,
                    bytes,
                }
            }
        }
    }
}

/// Which buffer the flash holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Scratch { len: usize },
    Owner { len: usize },
    Erase,
}

/// A request that takes more than one policy request (see [`crate::stream_rebuild`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Job {
    Idle,
    /// A plain begin waits for the stream session's abort.
    PlainBegin(Request),
    /// Finalize of a stream session: the staging slot's finalize of the image the app rebuilt.
    Finalize,
    /// Forgetting the stream session; then `Completion` is reported.
    Forget(Completion),
}

/// The received-stream side of the core (present when the board gives a [`StreamArea`]).
struct Streams {
    policy: MapCell<UpdateRegion>,
    kernel_slot: &'static [u8],
}

/// The kernel-side core: runs one request at a time through the policy and the flash.
pub struct StagedUpdate<'a, F: AsyncNor<'a>> {
    flash: &'a F,
    policy: MapCell<UpdateRegion>,
    /// Owner data: write source, read destination.
    data: TakeCell<'static, [u8]>,
    /// The policy's own reads and writes.
    scratch: TakeCell<'static, [u8]>,
    in_flight: Cell<Option<InFlight>>,
    /// Length of the owner read in progress (returned with its completion).
    last_read_len: Cell<usize>,
    /// The start-up scan finished.
    started: Cell<bool>,
    /// The start-up scan ended in a flash failure (run again at the next status query).
    startup_failed: Cell<bool>,
    /// The command in progress (`None` while idle; start-up uses `usize::MAX`).
    active: Cell<Option<usize>>,
    client: OptionalCell<&'a dyn StagedUpdateClient>,
    /// Received streams; `None`: every session is staged in the staging slot.
    streams: Option<Streams>,
    /// The policy the current step runs on is the stream area's.
    on_stream: Cell<bool>,
    job: Cell<Job>,
}

const STARTUP: usize = usize::MAX;

impl<'a, F: AsyncNor<'a>> StagedUpdate<'a, F> {
    /// `data` must hold [`BUF_LEN`] bytes and `scratch` [`MAX_POLICY_READ`] bytes.
    pub fn new(
        flash: &'a F,
        config: Config,
        data: &'static mut [u8],
        scratch: &'static mut [u8],
    ) -> Result<StagedUpdate<'a, F>, Error> {
        if data.len() < BUF_LEN || scratch.len() < MAX_POLICY_READ {
            return Err(Error::BadConfig);
        }
        Ok(StagedUpdate {
            flash,
            policy: MapCell::new(UpdateRegion::new(config)?),
            data: TakeCell::new(data),
            scratch: TakeCell::new(scratch),
            in_flight: Cell::new(None),
            last_read_len: Cell::new(0),
            started: Cell::new(false),
            startup_failed: Cell::new(false),
            active: Cell::new(None),
            client: OptionalCell::empty(),
            streams: None,
            on_stream: Cell::new(false),
            job: Cell::new(Job::Idle),
        })
    }

    /// Take compressed images and delta patches in `area` (see [`crate::stream_rebuild`]).
    /// `BadConfig` if its owner is not the staging slot's or its policy configuration is
    /// unusable.
    pub fn with_streams(mut self, area: StreamArea) -> Result<Self, Error> {
        let owner = self.policy.map(|p| p.config().owner);
        if owner != Some(area.config.owner) {
            return Err(Error::BadConfig);
        }
        self.streams = Some(Streams {
            policy: MapCell::new(UpdateRegion::new(area.config)?),
            kernel_slot: area.kernel_slot,
        });
        Ok(self)
    }

    /// Whether a stream session exists (it stands in front of the staging slot's).
    ///
    /// A stream session whose image the staging slot holds finalized (the same tag) is over: a
    /// power cut after a rebuild's boot request and before the stream session was forgotten
    /// leaves it behind, and it must not stand in front of the finalized session.
    fn stream_active(&self) -> bool {
        let Some(s) = self.streams.as_ref() else {
            return false;
        };
        let Some(stream) = s.policy.map(|p| p.status()) else {
            return false;
        };
        if stream.state == SessionState::Idle {
            return false;
        }
        let staged = self.policy.map(|p| p.status());
        !staged.is_some_and(|m| m.state == SessionState::Finalized && m.tag == stream.tag)
    }

    /// The stream session's tag, while one exists (a session in the stream area whose tag is
    /// not that of a finalized staging-slot session).
    pub fn stream_tag(&self) -> Option<[u8; TAG_LEN]> {
        if !self.stream_active() {
            return None;
        }
        self.with_policy(true, |p| p.status().tag)
    }

    /// Whether the staging slot's session is the output of the stream session with `tag`: it is
    /// staging under that tag (after `OUTPUT_BEGIN`).
    fn output_open(&self, tag: [u8; TAG_LEN]) -> bool {
        self.policy
            .map(|p| p.status())
            .is_some_and(|m| m.state == SessionState::Staging && m.tag == tag)
    }

    /// `len` bytes of the running kernel's slot at `offset` (a delta patch's base), while a
    /// stream session exists: `RESERVE` without one (or without a stream area), `SIZE` beyond
    /// the slot or longer than [`BUF_LEN`].
    pub fn base(&self, offset: u32, len: u32) -> Result<&'static [u8], ErrorCode> {
        let Some(streams) = self.streams.as_ref() else {
            return Err(ErrorCode::RESERVE);
        };
        if !self.stream_active() {
            return Err(ErrorCode::RESERVE);
        }
        if len as usize > BUF_LEN {
            return Err(ErrorCode::SIZE);
        }
        let from = offset as usize;
        from.checked_add(len as usize)
            .and_then(|end| streams.kernel_slot.get(from..end))
            .ok_or(ErrorCode::SIZE)
    }

    /// Runs `f` on the stream area's policy when `on_stream`, else on the staging slot's.
    fn with_policy<R>(&self, on_stream: bool, f: impl FnOnce(&mut UpdateRegion) -> R) -> Option<R> {
        if on_stream {
            self.streams.as_ref().and_then(|s| s.policy.map(f))
        } else {
            self.policy.map(f)
        }
    }

    pub fn set_client(&self, client: &'a dyn StagedUpdateClient) {
        self.client.set(client);
    }

    /// Run the policy's start-up scan (once per boot, after the flash is ready).
    pub fn start(&self) -> Result<(), ErrorCode> {
        if self.active.get().is_some() {
            return Err(ErrorCode::BUSY);
        }
        let action = self
            .policy
            .map(|p| Action::from_step(p.start()))
            .ok_or(ErrorCode::FAIL)?;
        self.on_stream.set(false);
        self.active.set(Some(STARTUP));
        self.drive(action);
        Ok(())
    }

    /// The policy's status; `None` until the start-up scan has finished (what is staged is not
    /// known before). A start-up scan that failed (a flash read error) is run again here: the
    /// DFU app polls the status with backoff until it answers, so one bad read costs a retry,
    /// not every update (and the trial's confirm) until the next reset.
    pub fn status(&self) -> Option<update_region::Status> {
        if !self.started.get() {
            if self.startup_failed.get() && self.active.get().is_none() {
                self.startup_failed.set(false);
                let _ = self.start();
            }
            if !self.started.get() {
                return None;
            }
        }
        if self.stream_active() {
            return self.with_policy(true, |p| p.status());
        }
        self.policy.map(|p| p.status())
    }

    /// The running image's id, as far as the kernel can tell: the image of the newest confirm
    /// record (the DFU app confirms a trial at its start, so in steady state that is the image
    /// running). `None` before any confirm, while a boot request is newer than the last
    /// confirm, or when this core takes no received streams (then no delta session should be
    /// offered to it). A confirm of a trial the bootloader had reverted names the reverted
    /// image: a patch against it is then refused by the app's rebuild (`STREAM_WRONG_BASE`: the
    /// rebuild hashes the kernel slot itself, read with `BASE_READ`), nothing installed.
    pub fn running_image(&self) -> Option<[u8; abi::IMAGE_ID_LEN]> {
        self.streams.as_ref()?;
        if !self.started.get() {
            return None;
        }
        let record = self.policy.map(|p| p.status().newest_record)??;
        if record.kind != control_area::RecordKind::Confirm {
            return None;
        }
        let mut id = [0u8; abi::IMAGE_ID_LEN];
        id.copy_from_slice(&record.image_hash[..abi::IMAGE_ID_LEN]);
        Some(id)
    }

    /// Whether `short_id` is the update owner.
    pub fn is_owner(&self, short_id: ShortId) -> bool {
        let owner = self.policy.map(|p| p.config().owner);
        caller_id(short_id).is_some() && caller_id(short_id) == owner
    }

    /// Start `request` for the process with `short_id`, as `command`. `owner_data` is copied
    /// into the kernel buffer first (for writes). `Ok(())`: the client hears the end.
    pub fn request(
        &self,
        short_id: ShortId,
        command: usize,
        request: Request,
        owner_data: Option<OwnerData<'_>>,
    ) -> Result<(), ErrorCode> {
        self.start_request(short_id, command, request, owner_data, false)
    }

    /// Start `request` on the staging slot as the output of the stream session's rebuild
    /// (`OUTPUT_*`, see [`crate::stream_rebuild`]): a begin with the stream session's tag
    /// (anything else `INVAL`), or an erase, write or read of the staging slot's session once
    /// that begin happened. `RESERVE` without a stream session or, for erase, write and read,
    /// before the begin; otherwise as [`Self::request`].
    pub fn output(
        &self,
        short_id: ShortId,
        command: usize,
        request: Request,
        owner_data: Option<OwnerData<'_>>,
    ) -> Result<(), ErrorCode> {
        self.start_request(short_id, command, request, owner_data, true)
    }

    fn start_request(
        &self,
        short_id: ShortId,
        command: usize,
        request: Request,
        owner_data: Option<OwnerData<'_>>,
        output: bool,
    ) -> Result<(), ErrorCode> {
        let caller = caller_id(short_id).ok_or(ErrorCode::NODEVICE)?;
        if !self.is_owner(short_id) {
            return Err(ErrorCode::NODEVICE);
        }
        if self.active.get().is_some() {
            return Err(ErrorCode::BUSY);
        }
        match request {
            Request::Write { len, .. } | Request::Read { len, .. } if len as usize > BUF_LEN => {
                return Err(ErrorCode::SIZE)
            }
            _ => {}
        }
        if let Some(fill) = owner_data {
            let Request::Write { len, .. } = request else {
                return Err(ErrorCode::INVAL);
            };
            self.data
                .map(|d| fill(&mut d[..len as usize]))
                .ok_or(ErrorCode::BUSY)??;
        }
        // Which policy: a stream session's begin goes to the stream area, a plain one forgets
        // any stream session first; confirm and the rebuild's output are the staging slot's;
        // a stream session's finalize is the staging slot's finalize of the rebuilt image, then
        // the stream session is forgotten; the rest go to the session the owner sees.
        let mut request = request;
        let mut job = Job::Idle;
        let on_stream = if output {
            let tag = self.stream_tag().ok_or(ErrorCode::RESERVE)?;
            match request {
                Request::Begin { tag: t, .. } if t == tag => {}
                Request::Erase { .. } | Request::Write { .. } | Request::Read { .. } => {
                    if !self.output_open(tag) {
                        return Err(ErrorCode::RESERVE);
                    }
                }
                _ => return Err(ErrorCode::INVAL),
            }
            false
        } else {
            match request {
                Request::Begin { tag, .. } if self.streams.is_some() => {
                    if is_stream_tag(&tag) {
                        true
                    } else if self.stream_active() {
                        job = Job::PlainBegin(request);
                        request = Request::Abort;
                        true
                    } else {
                        false
                    }
                }
                Request::Confirm => false,
                Request::Finalize => match self.stream_tag() {
                    Some(tag) if self.output_open(tag) => {
                        job = Job::Finalize;
                        false
                    }
                    Some(_) => return Err(ErrorCode::RESERVE),
                    None => false,
                },
                _ => self.stream_active(),
            }
        };
        let action = self
            .with_policy(on_stream, |p| Action::from_step(p.request(caller, request)))
            .ok_or(ErrorCode::FAIL)?;
        if let Action::Done(Err(e)) = action {
            return Err(error_code(e));
        }
        self.on_stream.set(on_stream);
        self.job.set(job);
        self.active.set(Some(command));
        self.drive(action);
        Ok(())
    }

    fn op_done(&self, result: Result<&[u8], ()>) -> Action {
        self.with_policy(self.on_stream.get(), |p| {
            Action::from_step(p.op_done(result))
        })
        .unwrap_or(Action::Done(Err(Error::Flash)))
    }

    /// One policy request of a multi-step job, on the owner's behalf.
    fn sub_request(&self, on_stream: bool, request: Request) -> Action {
        self.on_stream.set(on_stream);
        let owner = self.policy.map(|p| p.config().owner).unwrap_or(0);
        self.with_policy(on_stream, |p| Action::from_step(p.request(owner, request)))
            .unwrap_or(Action::Done(Err(Error::Flash)))
    }

    /// A job ends in `error`: the request reports it.
    fn job_fail(&self, error: Error) -> Action {
        self.job.set(Job::Idle);
        self.on_stream.set(false);
        Action::Done(Err(error))
    }

    /// A policy request of a job ended with `result`: the job's next step.
    fn job_next(&self, result: Result<Completion, Error>) -> Action {
        let result = match result {
            Ok(c) => c,
            Err(e) => return self.job_fail(e),
        };
        match self.job.get() {
            Job::PlainBegin(request) => {
                self.job.set(Job::Idle);
                self.sub_request(false, request)
            }
            Job::Finalize => {
                self.job.set(Job::Forget(result));
                self.sub_request(true, Request::Abort)
            }
            Job::Forget(finalized) => {
                self.job.set(Job::Idle);
                self.on_stream.set(false);
                Action::Done(Ok(finalized))
            }
            Job::Idle => self.job_fail(Error::Flash),
        }
    }

    /// Perform actions until one is in flight or the request is done.
    fn drive(&self, mut action: Action) {
        loop {
            action = match action {
                Action::Done(result) => {
                    self.in_flight.set(None);
                    if self.job.get() != Job::Idle && self.active.get() != Some(STARTUP) {
                        action = self.job_next(result);
                        continue;
                    }
                    let command = self.active.take();
                    if command == Some(STARTUP) {
                        if result.is_ok() && self.streams.is_some() && !self.on_stream.get() {
                            // The staging slot is scanned; now the stream area.
                            self.active.set(Some(STARTUP));
                            self.on_stream.set(true);
                            action = self
                                .with_policy(true, |p| Action::from_step(p.start()))
                                .unwrap_or(Action::Done(Err(Error::Flash)));
                            continue;
                        }
                        self.on_stream.set(false);
                        self.started.set(result.is_ok());
                        self.startup_failed.set(result.is_err());
                    }
                    if let Some(command) = command.filter(|&c| c != STARTUP) {
                        let read_len = match result {
                            Ok(Completion::Read) => self.last_read_len.get(),
                            _ => 0,
                        };
                        // The client hears every end, even if the data buffer were missing.
                        let reported = self.data.map(|d| {
                            let read = &d[..read_len.min(d.len())];
                            self.client.map(|c| c.request_done(command, result, read));
                        });
                        if reported.is_none() {
                            self.client.map(|c| c.request_done(command, result, &[]));
                        }
                    }
                    return;
                }
                Action::Read { address, len } => {
                    let len = len as usize;
                    match self.scratch.take() {
                        Some(buf) => self.lend(InFlight::Scratch { len }, buf, |flash, buf| {
                            flash.read(address, buf, len)
                        }),
                        None => self.op_done(Err(())),
                    }
                }
                Action::ReadIntoOwner { address, len } => {
                    let len = len as usize;
                    self.last_read_len.set(len);
                    match self.data.take() {
                        Some(buf) if len <= buf.len() => {
                            self.lend(InFlight::Owner { len }, buf, |flash, buf| {
                                flash.read(address, buf, len)
                            })
                        }
                        Some(buf) => {
                            self.data.replace(buf);
                            self.op_done(Err(()))
                        }
                        None => self.op_done(Err(())),
                    }
                }
                Action::WriteOwner { address, len } => {
                    let len = len as usize;
                    match self.data.take() {
                        Some(buf) if len <= buf.len() => {
                            self.lend(InFlight::Owner { len }, buf, |flash, buf| {
                                flash.program(address, buf, len)
                            })
                        }
                        Some(buf) => {
                            self.data.replace(buf);
                            self.op_done(Err(()))
                        }
                        None => self.op_done(Err(())),
                    }
                }
                Action::Write {
                    address,
                    len,
                    bytes,
                } => match self.scratch.take() {
                    Some(buf) if len <= buf.len() => {
                        buf[..len].copy_from_slice(&bytes[..len]);
                        self.lend(InFlight::Scratch { len }, buf, |flash, buf| {
                            flash.program(address, buf, len)
                        })
                    }
                    Some(buf) => {
                        self.scratch.replace(buf);
                        self.op_done(Err(()))
                    }
                    None => self.op_done(Err(())),
                },
                Action::Erase { address } => {
                    // Marked in flight first: a completion may come back before the call returns.
                    self.in_flight.set(Some(InFlight::Erase));
                    match self.flash.erase_sector(address) {
                        Ok(()) => return,
                        Err(_) => {
                            self.in_flight.set(None);
                            self.op_done(Err(()))
                        }
                    }
                }
                Action::InFlight => return,
            };
        }
    }

    /// Lend `buf` to the flash for one operation: `Action::InFlight`, or the policy's next
    /// action if the operation could not start (the buffer is back).
    fn lend(
        &self,
        what: InFlight,
        buf: &'static mut [u8],
        start: impl FnOnce(&F, &'static mut [u8]) -> Result<(), (ErrorCode, &'static mut [u8])>,
    ) -> Action {
        // Marked in flight first: a completion may come back before the call returns.
        self.in_flight.set(Some(what));
        match start(self.flash, buf) {
            Ok(()) => Action::InFlight,
            Err((_, buf)) => {
                self.in_flight.set(None);
                match what {
                    InFlight::Owner { .. } => self.data.replace(buf),
                    _ => self.scratch.replace(buf),
                };
                self.op_done(Err(()))
            }
        }
    }

    /// Hand a returned buffer back and feed the result to the policy.
    fn buffer_back(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>, read: bool) {
        let next = match self.in_flight.get() {
            Some(InFlight::Scratch { len }) => {
                let action = match (result, read) {
                    (Ok(()), true) => self.op_done(Ok(&buffer[..len.min(buffer.len())])),
                    (Ok(()), false) => self.op_done(Ok(&[])),
                    (Err(_), _) => self.op_done(Err(())),
                };
                self.scratch.replace(buffer);
                action
            }
            Some(InFlight::Owner { .. }) => {
                self.data.replace(buffer);
                self.op_done(result.map(|()| &[][..]).map_err(|_| ()))
            }
            _ => {
                // A buffer we did not lend: keep it as the scratch buffer if that is missing.
                if self.scratch.is_none() {
                    self.scratch.replace(buffer);
                }
                return;
            }
        };
        self.in_flight.set(None);
        self.drive(next);
    }
}

impl<'a, F: AsyncNor<'a>> AsyncNorClient for StagedUpdate<'a, F> {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        self.buffer_back(buffer, result, true);
    }

    fn program_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        self.buffer_back(buffer, result, false);
    }

    fn erase_done(&self, result: Result<(), ErrorCode>) {
        if self.in_flight.get() != Some(InFlight::Erase) {
            return;
        }
        self.in_flight.set(None);
        let next = self.op_done(result.map(|()| &[][..]).map_err(|_| ()));
        self.drive(next);
    }

    fn ready(&self) {
        let _ = self.start();
    }
}

/// Per-process state: nothing beyond the allows and the upcall.
#[derive(Default)]
pub struct App;

/// The syscall driver over [`StagedUpdate`].
pub struct StagedUpdateDriver<'a, F: AsyncNor<'a>> {
    core: &'a StagedUpdate<'a, F>,
    apps: Grant<
        App,
        UpcallCount<{ upcall::COUNT }>,
        AllowRoCount<{ ro_allow::COUNT }>,
        AllowRwCount<{ rw_allow::COUNT }>,
    >,
    /// The process whose request is in flight (the DFU process).
    current: OptionalCell<ProcessId>,
    /// A completion the kernel could not queue (the process's task queue was full): it goes out
    /// at the process's next command, before anything else; until then new requests get
    /// `BUSY`, so completions stay in order and none is lost.
    undelivered: KeptUpcall,
    reset: &'a dyn SystemReset,
}

impl<'a, F: AsyncNor<'a>> StagedUpdateDriver<'a, F> {
    pub fn new(
        core: &'a StagedUpdate<'a, F>,
        apps: Grant<
            App,
            UpcallCount<{ upcall::COUNT }>,
            AllowRoCount<{ ro_allow::COUNT }>,
            AllowRwCount<{ rw_allow::COUNT }>,
        >,
        reset: &'a dyn SystemReset,
    ) -> StagedUpdateDriver<'a, F> {
        StagedUpdateDriver {
            core,
            apps,
            current: OptionalCell::empty(),
            undelivered: KeptUpcall::new(),
            reset,
        }
    }

    /// Queue `(command, status, value)` for `processid`; kept for a later attempt if the
    /// process exists but its upcall cannot be queued now ([`KeptUpcall`]).
    fn deliver(&self, processid: ProcessId, command: usize, status: usize, value: usize) {
        self.undelivered
            .deliver(processid, (command, status, value), |p, args| {
                self.schedule(p, args)
            });
    }

    /// Try again to queue a kept completion; `true` if none is left waiting.
    fn flush(&self) -> bool {
        self.undelivered.flush(|p, args| self.schedule(p, args))
    }

    fn schedule(
        &self,
        processid: ProcessId,
        args: (usize, usize, usize),
    ) -> Result<Result<(), kernel::upcall::UpcallError>, kernel::process::Error> {
        self.apps.enter(processid, |_, kernel_data| {
            kernel_data.schedule_upcall(upcall::DONE, args)
        })
    }

    fn read_tag(&self, processid: ProcessId) -> Result<[u8; TAG_LEN], ErrorCode> {
        self.apps
            .enter(processid, |_, kernel_data| {
                kernel_data
                    .get_readonly_processbuffer(ro_allow::DATA)
                    .and_then(|b| {
                        b.enter(|data| {
                            let mut tag = [0u8; TAG_LEN];
                            if data.len() < TAG_LEN {
                                return Err(ErrorCode::INVAL);
                            }
                            data[..TAG_LEN].copy_to_slice(&mut tag);
                            Ok(tag)
                        })
                    })
                    .unwrap_or(Err(ErrorCode::INVAL))
            })
            .unwrap_or(Err(ErrorCode::NOMEM))
    }

    /// Length of the process's read-write allow 0 (0 if none).
    fn read_room(&self, processid: ProcessId) -> usize {
        self.apps
            .enter(processid, |_, kernel_data| {
                kernel_data
                    .get_readwrite_processbuffer(rw_allow::READ)
                    .map_or(0, |b| b.len())
            })
            .unwrap_or(0)
    }

    /// Start `request` for `processid`: success means exactly one upcall follows (it may already
    /// be queued when this returns), a failure means none does.
    ///
    /// The process is recorded as the pending one *before* the core runs the request, because
    /// the core may finish it before `request` returns: a confirm that needs no flash operation,
    /// a flash operation that fails to start, or a flash that completes synchronously. Delivering
    /// from inside the command is safe: the grant is not entered across `core.request`, and the
    /// kernel only queues the upcall, which the process sees at its next yield, as it would a
    /// later one. (A deferred call would add a board-registered slot and a saved result for no
    /// gain.) The core refuses synchronously only before it starts anything, so clearing the
    /// pending process on refusal cannot drop a completion.
    ///
    /// With `output` the request is the rebuild's output on the staging slot
    /// ([`StagedUpdate::output`]).
    fn start(
        &self,
        processid: ProcessId,
        command: usize,
        request: Request,
        output: bool,
    ) -> CommandReturn {
        let short_id = processid.short_app_id();
        if !self.core.is_owner(short_id) {
            return CommandReturn::failure(ErrorCode::NODEVICE);
        }
        if self.current.is_some() || !self.flush() {
            // A request is still out (possibly for an earlier instance of the DFU process), or
            // its completion still waits for room in the process's task queue.
            return CommandReturn::failure(ErrorCode::BUSY);
        }
        self.current.set(processid);
        let result = if let Request::Write { len, .. } = request {
            let fill = |dst: &mut [u8]| -> Result<(), ErrorCode> {
                self.apps
                    .enter(processid, |_, kernel_data| {
                        kernel_data
                            .get_readonly_processbuffer(ro_allow::DATA)
                            .and_then(|b| {
                                b.enter(|data| {
                                    if data.len() < len as usize {
                                        return Err(ErrorCode::INVAL);
                                    }
                                    data[..dst.len()].copy_to_slice(dst);
                                    Ok(())
                                })
                            })
                            .unwrap_or(Err(ErrorCode::INVAL))
                    })
                    .unwrap_or(Err(ErrorCode::NOMEM))
            };
            self.core_request(short_id, command, request, Some(&fill), output)
        } else {
            self.core_request(short_id, command, request, None, output)
        };
        match result {
            Ok(()) => CommandReturn::success(),
            Err(e) => {
                self.current.clear();
                CommandReturn::failure(e)
            }
        }
    }

    fn core_request(
        &self,
        short_id: ShortId,
        command: usize,
        request: Request,
        owner_data: Option<OwnerData<'_>>,
        output: bool,
    ) -> Result<(), ErrorCode> {
        if output {
            self.core.output(short_id, command, request, owner_data)
        } else {
            self.core.request(short_id, command, request, owner_data)
        }
    }

    /// `BASE_READ`: copy the base bytes into the READ allow and queue the completion at once
    /// (no flash operation: the kernel slot is memory). Refused like a request while one is
    /// out, so completions stay in order.
    fn base_read(&self, processid: ProcessId, offset: u32, len: u32) -> CommandReturn {
        if !self.core.is_owner(processid.short_app_id()) {
            return CommandReturn::failure(ErrorCode::NODEVICE);
        }
        if self.current.is_some() || !self.flush() {
            return CommandReturn::failure(ErrorCode::BUSY);
        }
        let bytes = match self.core.base(offset, len) {
            Ok(bytes) => bytes,
            Err(e) => return CommandReturn::failure(e),
        };
        let ret = self.copy_to_read_allow(processid, bytes);
        if ret.is_success() {
            self.deliver(processid, command::BASE_READ, 0, 0);
        }
        ret
    }

    /// Copies `bytes` to the start of the caller's READ buffer (`INVAL` when it is missing or
    /// shorter than `bytes`; `NOMEM` when the process has no grant).
    fn copy_to_read_allow(&self, processid: ProcessId, bytes: &[u8]) -> CommandReturn {
        self.apps
            .enter(processid, |_, kernel_data| {
                kernel_data
                    .get_readwrite_processbuffer(rw_allow::READ)
                    .and_then(|b| {
                        b.mut_enter(|dst| {
                            if dst.len() < bytes.len() {
                                return CommandReturn::failure(ErrorCode::INVAL);
                            }
                            dst[..bytes.len()].copy_from_slice(bytes);
                            CommandReturn::success()
                        })
                    })
                    .unwrap_or(CommandReturn::failure(ErrorCode::INVAL))
            })
            .unwrap_or(CommandReturn::failure(ErrorCode::NOMEM))
    }
}

impl<'a, F: AsyncNor<'a>> StagedUpdateClient for StagedUpdateDriver<'a, F> {
    fn request_done(&self, command: usize, result: Result<Completion, Error>, read: &[u8]) {
        if let Some(processid) = self.current.take() {
            let _ = self.apps.enter(processid, |_, kernel_data| {
                if !read.is_empty() {
                    let _ = kernel_data
                        .get_readwrite_processbuffer(rw_allow::READ)
                        .and_then(|b| {
                            b.mut_enter(|dst| {
                                let n = dst.len().min(read.len());
                                dst[..n].copy_from_slice(&read[..n]);
                            })
                        });
                }
            });
            let (status, value) = match result {
                Ok(Completion::Finalized { sequence, .. })
                | Ok(Completion::Confirmed { sequence }) => (0, sequence as usize),
                Ok(_) => (0, 0),
                Err(e) => (usize::from(error_code(e)), policy_error_code(e)),
            };
            self.deliver(processid, command, status, value);
        }
    }
}

impl<'a, F: AsyncNor<'a>> SyscallDriver for StagedUpdateDriver<'a, F> {
    fn command(
        &self,
        command_num: usize,
        arg1: usize,
        arg2: usize,
        processid: ProcessId,
    ) -> CommandReturn {
        // Any command is a chance to hand over a completion kept from a full task queue: the
        // process issues one when its wait for the upcall times out (a status poll will do).
        self.flush();
        let offset = u32::try_from(arg1).unwrap_or(u32::MAX);
        let len = u32::try_from(arg2).unwrap_or(u32::MAX);
        match command_num {
            command::EXISTS => CommandReturn::success(),
            command::STATUS => match self.core.status() {
                Some(s) => CommandReturn::success_u32_u32_u32(
                    s.state.abi_state(),
                    s.image_len,
                    s.erased_sectors,
                ),
                None => CommandReturn::failure(ErrorCode::BUSY),
            },
            command::TAG => {
                if !self.core.is_owner(processid.short_app_id()) {
                    return CommandReturn::failure(ErrorCode::NODEVICE);
                }
                let Some(status) = self.core.status() else {
                    return CommandReturn::failure(ErrorCode::BUSY);
                };
                self.copy_to_read_allow(processid, &status.tag)
            }
            command::RUNNING => {
                if !self.core.is_owner(processid.short_app_id()) {
                    return CommandReturn::failure(ErrorCode::NODEVICE);
                }
                let Some(id) = self.core.running_image() else {
                    return CommandReturn::failure(ErrorCode::RESERVE);
                };
                self.copy_to_read_allow(processid, &id)
            }
            command::REBOOT => {
                if !self.core.is_owner(processid.short_app_id()) {
                    return CommandReturn::failure(ErrorCode::NODEVICE);
                }
                match self.core.status() {
                    Some(s) if s.state == SessionState::Finalized => {
                        self.reset.reset();
                        CommandReturn::success()
                    }
                    Some(_) => CommandReturn::failure(ErrorCode::RESERVE),
                    None => CommandReturn::failure(ErrorCode::BUSY),
                }
            }
            command::BASE_READ => self.base_read(processid, offset, len),
            // The policy's requests, decoded as the simulated kernel decodes them; the
            // rebuild's output commands are the staging slot's begin, erase, write and read.
            _ => {
                use dfu_abi::update::command as n;
                let number = u32::try_from(command_num).unwrap_or(u32::MAX);
                let (number, output) = match n::output_of(number) {
                    Some(plain) => (plain, true),
                    None => (number, false),
                };
                // BEGIN and READ touch the process's buffers: only the owner's.
                if matches!(number, n::BEGIN | n::READ)
                    && !self.core.is_owner(processid.short_app_id())
                {
                    return CommandReturn::failure(ErrorCode::NODEVICE);
                }
                // The bytes read must fit where they go: refuse now rather than cut them short.
                if number == n::READ && arg2 <= BUF_LEN && self.read_room(processid) < arg2 {
                    return CommandReturn::failure(ErrorCode::INVAL);
                }
                // The output's begin carries the stream session's tag, not the allow's.
                let tag = || match output {
                    true => self.core.stream_tag().ok_or(ErrorCode::RESERVE),
                    false => self.read_tag(processid),
                };
                match Request::from_command(number, offset, len, tag) {
                    Some(Ok(request)) => self.start(processid, command_num, request, output),
                    Some(Err(e)) => CommandReturn::failure(e),
                    None => CommandReturn::failure(ErrorCode::NOSUPPORT),
                }
            }
        }
    }

    fn allocate_grant(&self, processid: ProcessId) -> Result<(), kernel::process::Error> {
        self.apps.enter(processid, |_, _| {})
    }
}
