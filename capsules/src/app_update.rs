//! App update: install a TBF staged in the QSPI staging slot as the new version of a userspace
//! app, through upstream's dynamic process loading (`kernel::dynamic_binary_storage`).
//!
//! Design, upstream facts and the power-fail argument: `docs/app-updates.md`. This module holds
//! the kernel-side core:
//!
//! - the checks of the staged TBF, on bytes read from staging ([`check_lengths`],
//!   [`check_header`], [`footers_signed`]; the header is parsed by `tock-tbf`, as the kernel
//!   parses it at load);
//! - [`Installer`], a sans-IO state machine: check → unload the old version → setup → copy
//!   (every chunk but the first, then the chunk holding the header, so the slot stays padding
//!   until the copy is whole) → finalize → load the new one → trial. Unload comes first because
//!   upstream's storage accepts it only while idle and a running process blocks its
//!   replacement; an install that fails after the unload leaves the old version stopped until
//!   the board resets (at boot it is the only valid version and runs);
//! - [`AppUpdate`], the split-phase glue over [`AsyncNor`] (staging) and upstream's
//!   `DynamicBinaryStore`, `DynamicProcessUnload` and `DynamicProcessLoad`.
//!
//! Only the DFU app may install (the caller's `ShortId` must be the board's DFU id, the same
//! rule as the staged-update driver). A TBF that names the DFU app itself is refused
//! ([`Refusal::SelfUpdate`]). [`AppUpdateDriver`] is the syscall layer (`dfu_abi::app`);
//! [`ProcessTable`] answers the anti-rollback question from the kernel's processes. Confirm,
//! revert, the page journal and the trial record follow; see the document.

use core::cell::Cell;
use core::num::NonZeroU32;

use kernel::capabilities::ProcessManagementCapability;
use kernel::dynamic_binary_storage::{
    DynamicBinaryStore, DynamicBinaryStoreClient, DynamicProcessLoad, DynamicProcessLoadClient,
    DynamicProcessUnload, DynamicProcessUnloadClient,
};
use kernel::grant::{AllowRoCount, AllowRwCount, Grant, UpcallCount};
use kernel::process::{BinaryVersion, ProcessLoadError, ShortId};
use kernel::syscall::{CommandReturn, SyscallDriver};
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::{ErrorCode, Kernel, ProcessId};

use crate::kept_upcall::KeptUpcall;
use crate::nor::{AsyncNor, AsyncNorClient};

use dfu_abi::app::detail;

/// Bytes moved per flash operation: upstream's buffer for `DynamicBinaryStore::write`.
pub const CHUNK: usize = kernel::dynamic_binary_storage::BUF_LEN;

/// Longest package name kept from the staged header.
pub const MAX_NAME: usize = 32;

/// TBF TLV type of a credentials footer, and the format number of an ECDSA P-256 credential.
const TLV_CREDENTIALS: u16 = tock_tbf::types::TbfHeaderTypes::TbfFooterCredentials as u16;
const FORMAT_ECDSA_P256: u32 = tock_tbf::types::TbfFooterV2CredentialsType::EcdsaNistP256 as u32;
/// Bytes of an ECDSA P-256 credential after its format word.
const ECDSA_P256_LEN: usize = 64;

/// Why an install was refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotDfu,
    Busy,
    NotTbf,
    BadHeader,
    NotApp,
    Unsigned,
    NotNewer { staged: u32 },
    SelfUpdate,
    StagingFlash,
    Store,
    Unload,
    Load,
}

impl Refusal {
    /// The `dfu_abi::app::detail` number.
    pub fn detail(self) -> u32 {
        match self {
            Refusal::NotDfu => detail::NOT_DFU,
            Refusal::Busy => detail::BUSY,
            Refusal::NotTbf => detail::NOT_TBF,
            Refusal::BadHeader => detail::BAD_HEADER,
            Refusal::NotApp => detail::NOT_APP,
            Refusal::Unsigned => detail::UNSIGNED,
            Refusal::NotNewer { .. } => detail::NOT_NEWER,
            Refusal::SelfUpdate => detail::SELF_UPDATE,
            Refusal::StagingFlash => detail::STAGING_FLASH,
            Refusal::Store => detail::STORE,
            Refusal::Unload => detail::UNLOAD,
            Refusal::Load => detail::LOAD,
        }
    }
}

/// A `ShortId` that prints (the kernel's type has no `Debug`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sid(pub ShortId);

impl core::fmt::Debug for Sid {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            ShortId::Fixed(id) => write!(f, "Fixed({:#x})", id.get()),
            ShortId::LocallyUnique => f.write_str("LocallyUnique"),
        }
    }
}

/// The installed process of a package name, against a staged version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installed {
    pub short_id: Sid,
    /// The staged `binary_version` is higher than the installed process's (a process without
    /// a version counts as 0).
    pub staged_is_newer: bool,
}

/// Which process runs a package name, and whether a staged version is newer (anti-rollback).
/// The kernel's `BinaryVersion` only compares (it has no getter), hence the question form.
pub trait InstalledApps {
    fn installed(&self, name: &str, staged_version: u32) -> Option<Installed>;
}

/// [`InstalledApps`] over the kernel's process table (a board holds the capability).
pub struct ProcessTable<C: ProcessManagementCapability> {
    kernel: &'static Kernel,
    capability: C,
}

impl<C: ProcessManagementCapability> ProcessTable<C> {
    pub fn new(kernel: &'static Kernel, capability: C) -> ProcessTable<C> {
        ProcessTable { kernel, capability }
    }
}

impl<C: ProcessManagementCapability> InstalledApps for ProcessTable<C> {
    fn installed(&self, name: &str, staged_version: u32) -> Option<Installed> {
        let staged = NonZeroU32::new(staged_version).map(BinaryVersion::new);
        let mut found = None;
        self.kernel
            .process_each_capability(&self.capability, |process| {
                if found.is_none() && process.get_process_name() == name {
                    found = Some(Installed {
                        short_id: Sid(process.short_app_id()),
                        staged_is_newer: staged > process.binary_version(),
                    });
                }
            });
        found
    }
}

/// What the header check found in the staged TBF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagedApp {
    pub total_len: u32,
    pub header_len: u16,
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

/// The TBF base (first 8 bytes) against the staged length: `(header_len, total_len)`. The
/// whole header must fit one [`CHUNK`] read.
pub fn check_lengths(base: &[u8; 8], staged_len: usize) -> Result<(u16, u32), Refusal> {
    let (version, header_len, total_len) =
        tock_tbf::parse::parse_tbf_header_lengths(base).map_err(|_| Refusal::NotTbf)?;
    if version != 2
        || usize::try_from(total_len).ok() != Some(staged_len)
        || usize::from(header_len) > CHUNK
    {
        return Err(Refusal::NotTbf);
    }
    Ok((header_len, total_len))
}

/// Parse the staged header (`header_len` bytes) as the kernel will: checksum, TLVs, program
/// header, package name.
pub fn check_header(header: &[u8], total_len: u32) -> Result<StagedApp, Refusal> {
    let parsed = tock_tbf::parse::parse_tbf_header(header, 2).map_err(|_| Refusal::BadHeader)?;
    if !parsed.is_app() {
        return Err(Refusal::NotApp);
    }
    let name = parsed.get_package_name().ok_or(Refusal::NotApp)?;
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Refusal::NotApp);
    }
    let binary_end = parsed.get_binary_end();
    let header_len = u16::try_from(header.len()).map_err(|_| Refusal::NotTbf)?;
    if binary_end < u32::from(header_len) || binary_end > total_len {
        return Err(Refusal::BadHeader);
    }
    let mut stored = [0; MAX_NAME];
    stored[..name.len()].copy_from_slice(name.as_bytes());
    Ok(StagedApp {
        total_len,
        header_len,
        binary_end,
        version: parsed.get_binary_version(),
        name: stored,
        // name.len() <= MAX_NAME (32), checked above.
        name_len: name.len() as u8,
    })
}

/// Whether the footer TLVs (from `binary_end`) hold an ECDSA P-256 credential. A TLV that runs
/// past the bytes ends the walk. The signature itself is verified by the board's checker on
/// the copied binary; this refuses an unsigned TBF before the app region changes.
pub fn footers_signed(footers: &[u8]) -> bool {
    let mut rest = footers;
    while let (Some(t), Some(l)) = (rest.get(0..2), rest.get(2..4)) {
        let tipe = u16::from_le_bytes([t[0], t[1]]);
        let len = usize::from(u16::from_le_bytes([l[0], l[1]]));
        let Some(value) = rest.get(4..4 + len) else {
            return false;
        };
        if tipe == TLV_CREDENTIALS && len >= 4 + ECDSA_P256_LEN {
            let format = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
            if format == FORMAT_ECDSA_P256 {
                return true;
            }
        }
        rest = &rest[4 + len..];
    }
    false
}

/// The `i`-th chunk offset of a `total_len` copy: every chunk but the first in order, then the
/// first (it holds the TBF header, which turns the slot from padding into an app).
pub fn chunk_offset(i: u32, total_len: u32) -> Option<u32> {
    let chunk = CHUNK as u32;
    let count = total_len.div_ceil(chunk);
    if i >= count {
        None
    } else if i + 1 == count {
        Some(0)
    } else {
        Some((i + 1) * chunk)
    }
}

/// Length of the chunk at `offset`.
fn chunk_len(offset: u32, total_len: u32) -> usize {
    (total_len - offset).min(CHUNK as u32) as usize
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Job {
    app: StagedApp,
    old: Option<Sid>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    ReadBase { staged_len: usize },
    ReadHeader { total_len: u32 },
    ReadFooter { app: StagedApp },
    Setup(Job),
    CopyRead { job: Job, index: u32 },
    CopyWrite { job: Job, index: u32 },
    Finalize(Job),
    Unload(Job),
    Load(Job),
    Abort(Refusal),
    Trial(Job),
}

/// A completion (or the start) the installer reacts to.
#[derive(Debug)]
pub enum Event<'a> {
    /// `INSTALL` of a TBF of `len` bytes, from the DFU app (the caller check is done).
    Install {
        len: usize,
    },
    ReadDone(Result<&'a [u8], ErrorCode>),
    SetupDone(Result<(), ErrorCode>),
    WriteDone(Result<(), ErrorCode>),
    FinalizeDone(Result<(), ErrorCode>),
    AbortDone,
    UnloadDone(Result<(), ErrorCode>),
    LoadDone(Result<(), ProcessLoadError>),
}

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read `len` bytes at staging offset `offset`.
    Read {
        offset: u32,
        len: usize,
    },
    Setup {
        len: usize,
    },
    /// Write the chunk just read to slot offset `offset`.
    Write {
        offset: u32,
        len: usize,
    },
    Finalize,
    Abort,
    Unload(Sid),
    Load,
    /// The install ended: the new version (now in trial), or why not.
    Done(Result<u32, Refusal>),
    /// Nothing (an event that does not belong to the current phase).
    None,
}

/// The sans-IO install state machine. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installer {
    phase: Phase,
}

impl Default for Installer {
    fn default() -> Self {
        Self::new()
    }
}

impl Installer {
    pub const fn new() -> Installer {
        Installer { phase: Phase::Idle }
    }

    /// Idle: a new install may start.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// The version in trial, if any.
    pub fn trial_version(&self) -> Option<u32> {
        match self.phase {
            Phase::Trial(job) => Some(job.app.version),
            _ => None,
        }
    }

    fn done(&mut self, result: Result<u32, Refusal>) -> Action {
        self.phase = match result {
            Ok(_) => self.phase,
            Err(_) => Phase::Idle,
        };
        Action::Done(result)
    }

    fn refuse_before_store(&mut self, refusal: Refusal) -> Action {
        self.phase = Phase::Idle;
        Action::Done(Err(refusal))
    }

    fn abort(&mut self, refusal: Refusal) -> Action {
        self.phase = Phase::Abort(refusal);
        Action::Abort
    }

    /// React to `event`; `apps` answers which version is installed.
    pub fn on(&mut self, event: Event, apps: &dyn InstalledApps, dfu: ShortId) -> Action {
        match (self.phase, event) {
            (Phase::Idle, Event::Install { len }) => {
                if len < 8 {
                    return self.refuse_before_store(Refusal::NotTbf);
                }
                self.phase = Phase::ReadBase { staged_len: len };
                Action::Read { offset: 0, len: 8 }
            }
            (_, Event::Install { .. }) => Action::Done(Err(Refusal::Busy)),
            (
                Phase::ReadBase { .. } | Phase::ReadHeader { .. } | Phase::ReadFooter { .. },
                Event::ReadDone(Err(_)),
            ) => self.refuse_before_store(Refusal::StagingFlash),
            (Phase::ReadBase { staged_len }, Event::ReadDone(Ok(bytes))) => {
                let Ok(base) = <&[u8; 8]>::try_from(bytes) else {
                    return self.refuse_before_store(Refusal::StagingFlash);
                };
                match check_lengths(base, staged_len) {
                    Ok((header_len, total_len)) => {
                        self.phase = Phase::ReadHeader { total_len };
                        Action::Read {
                            offset: 0,
                            len: usize::from(header_len),
                        }
                    }
                    Err(refusal) => self.refuse_before_store(refusal),
                }
            }
            (Phase::ReadHeader { total_len }, Event::ReadDone(Ok(header))) => {
                match check_header(header, total_len) {
                    Ok(app) => {
                        let footer_len = ((total_len - app.binary_end) as usize).min(CHUNK);
                        if footer_len == 0 {
                            return self.refuse_before_store(Refusal::Unsigned);
                        }
                        self.phase = Phase::ReadFooter { app };
                        Action::Read {
                            offset: app.binary_end,
                            len: footer_len,
                        }
                    }
                    Err(refusal) => self.refuse_before_store(refusal),
                }
            }
            (Phase::ReadFooter { app }, Event::ReadDone(Ok(footers))) => {
                if !footers_signed(footers) {
                    return self.refuse_before_store(Refusal::Unsigned);
                }
                let installed = apps.installed(app.name(), app.version);
                if let Some(installed) = installed {
                    if installed.short_id.0 == dfu {
                        return self.refuse_before_store(Refusal::SelfUpdate);
                    }
                    if !installed.staged_is_newer {
                        return self.refuse_before_store(Refusal::NotNewer {
                            staged: app.version,
                        });
                    }
                }
                let job = Job {
                    app,
                    old: installed.map(|i| i.short_id),
                };
                match job.old {
                    // Upstream's storage unloads only while it is idle (not between `setup`
                    // and `load`), and a running process blocks loading its replacement: the
                    // old version stops before the copy starts.
                    Some(old) => {
                        self.phase = Phase::Unload(job);
                        Action::Unload(old)
                    }
                    None => self.setup(job),
                }
            }
            (Phase::Setup(_), Event::SetupDone(Err(_))) => {
                // Upstream gives the slot back itself when setup fails.
                self.refuse_before_store(Refusal::Store)
            }
            (Phase::Setup(job), Event::SetupDone(Ok(()))) => self.read_chunk(job, 0),
            (Phase::CopyRead { .. }, Event::ReadDone(Err(_))) => self.abort(Refusal::StagingFlash),
            (Phase::CopyRead { job, index }, Event::ReadDone(Ok(bytes))) => {
                let Some(offset) = chunk_offset(index, job.app.total_len) else {
                    return self.abort(Refusal::Store);
                };
                let len = chunk_len(offset, job.app.total_len);
                if bytes.len() != len {
                    return self.abort(Refusal::StagingFlash);
                }
                self.phase = Phase::CopyWrite { job, index };
                Action::Write { offset, len }
            }
            (Phase::CopyWrite { .. }, Event::WriteDone(Err(_))) => self.abort(Refusal::Store),
            (Phase::CopyWrite { job, index }, Event::WriteDone(Ok(()))) => {
                self.read_chunk(job, index + 1)
            }
            (Phase::Finalize(_), Event::FinalizeDone(Err(_))) => self.abort(Refusal::Store),
            (Phase::Finalize(job), Event::FinalizeDone(Ok(()))) => {
                self.phase = Phase::Load(job);
                Action::Load
            }
            (Phase::Unload(_), Event::UnloadDone(Err(_))) => {
                self.refuse_before_store(Refusal::Unload)
            }
            (Phase::Unload(job), Event::UnloadDone(Ok(()))) => self.setup(job),
            // Upstream reports each loaded process and then the end of loading, both as
            // `load_done`: the first report is the verdict, later ones find another phase.
            (Phase::Load(_), Event::LoadDone(Err(_))) => self.done(Err(Refusal::Load)),
            (Phase::Load(job), Event::LoadDone(Ok(()))) => {
                self.phase = Phase::Trial(job);
                Action::Done(Ok(job.app.version))
            }
            (Phase::Abort(refusal), Event::AbortDone) => self.done(Err(refusal)),
            _ => Action::None,
        }
    }

    fn setup(&mut self, job: Job) -> Action {
        self.phase = Phase::Setup(job);
        Action::Setup {
            len: job.app.total_len as usize,
        }
    }

    fn read_chunk(&mut self, job: Job, index: u32) -> Action {
        match chunk_offset(index, job.app.total_len) {
            Some(offset) => {
                self.phase = Phase::CopyRead { job, index };
                Action::Read {
                    offset,
                    len: chunk_len(offset, job.app.total_len),
                }
            }
            None => {
                self.phase = Phase::Finalize(job);
                Action::Finalize
            }
        }
    }
}

/// Receives the end of an install.
pub trait AppUpdateClient {
    fn install_done(&self, result: Result<u32, Refusal>);
}

/// The split-phase glue: staging reads over [`AsyncNor`], the app region and processes over
/// upstream's dynamic-loading traits. Completions may arrive before the call that started
/// them returns: the state is stored before each call down.
pub struct AppUpdate<'a> {
    staging: &'a dyn AsyncNor<'a>,
    staging_base: u32,
    staging_len: u32,
    store: &'a dyn DynamicBinaryStore,
    unloader: &'a dyn DynamicProcessUnload,
    loader: &'a dyn DynamicProcessLoad,
    apps: &'a dyn InstalledApps,
    dfu: ShortId,
    installer: Cell<Installer>,
    buffer: TakeCell<'static, [u8]>,
    /// Length of the last read, kept for the write that follows it.
    read_len: Cell<usize>,
    client: OptionalCell<&'a dyn AppUpdateClient>,
}

impl<'a> AppUpdate<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        staging: &'a dyn AsyncNor<'a>,
        staging_base: u32,
        staging_len: u32,
        store: &'a dyn DynamicBinaryStore,
        unloader: &'a dyn DynamicProcessUnload,
        loader: &'a dyn DynamicProcessLoad,
        apps: &'a dyn InstalledApps,
        dfu: ShortId,
        buffer: &'static mut [u8; CHUNK],
    ) -> AppUpdate<'a> {
        AppUpdate {
            staging,
            staging_base,
            staging_len,
            store,
            unloader,
            loader,
            apps,
            dfu,
            installer: Cell::new(Installer::new()),
            buffer: TakeCell::new(buffer),
            read_len: Cell::new(0),
            client: OptionalCell::empty(),
        }
    }

    pub fn set_client(&self, client: &'a dyn AppUpdateClient) {
        self.client.set(client);
    }

    /// The install state machine (for status).
    pub fn installer(&self) -> Installer {
        self.installer.get()
    }

    /// Start installing the TBF of `len` bytes at the start of the staging slot. `Ok` means
    /// exactly one `install_done` follows (possibly before this returns).
    pub fn install(&self, caller: ShortId, len: usize) -> Result<(), Refusal> {
        if caller != self.dfu {
            return Err(Refusal::NotDfu);
        }
        if !self.installer.get().is_idle() {
            return Err(Refusal::Busy);
        }
        if u32::try_from(len).map_or(true, |len| len > self.staging_len) {
            return Err(Refusal::NotTbf);
        }
        self.advance(Event::Install { len });
        Ok(())
    }

    fn advance(&self, event: Event) {
        let mut installer = self.installer.get();
        let action = installer.on(event, self.apps, self.dfu);
        self.installer.set(installer);
        self.perform(action);
    }

    /// Run `action`; a refusal to start becomes the matching failed completion.
    fn perform(&self, action: Action) {
        match action {
            Action::None => {}
            Action::Done(result) => self.client.map(|c| c.install_done(result)).unwrap_or(()),
            Action::Read { offset, len } => {
                let Some(buffer) = self.buffer.take() else {
                    return self.advance(Event::ReadDone(Err(ErrorCode::BUSY)));
                };
                self.read_len.set(len);
                if let Err((error, buffer)) =
                    self.staging.read(self.staging_base + offset, buffer, len)
                {
                    self.buffer.replace(buffer);
                    self.advance(Event::ReadDone(Err(error)));
                }
            }
            Action::Setup { len } => match self.store.setup(len) {
                Ok(_) => {}
                Err(error) => self.advance(Event::SetupDone(Err(error))),
            },
            Action::Write { offset, len } => {
                let Some(buffer) = self.buffer.take() else {
                    return self.advance(Event::WriteDone(Err(ErrorCode::BUSY)));
                };
                let mut slice = SubSliceMut::new(buffer);
                slice.slice(..len);
                if let Err(error) = self.store.write(slice, offset as usize) {
                    // Upstream keeps the buffer when `write` refuses; this machine then aborts
                    // and can no longer read, which ends the install with the refusal.
                    self.advance(Event::WriteDone(Err(error)));
                }
            }
            Action::Finalize => {
                if let Err(error) = self.store.finalize() {
                    self.advance(Event::FinalizeDone(Err(error)));
                }
            }
            Action::Abort => {
                if self.store.abort().is_err() {
                    self.advance(Event::AbortDone);
                }
            }
            Action::Unload(Sid(short_id)) => {
                if let Err(error) = self.unloader.unload(short_id) {
                    self.advance(Event::UnloadDone(Err(error)));
                }
            }
            Action::Load => {
                if self.loader.load().is_err() {
                    self.advance(Event::LoadDone(Err(ProcessLoadError::InternalError)));
                }
            }
        }
    }
}

impl AsyncNorClient for AppUpdate<'_> {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        let len = self.read_len.get().min(buffer.len());
        let mut installer = self.installer.get();
        let action = installer.on(
            Event::ReadDone(result.map(|()| &buffer[..len])),
            self.apps,
            self.dfu,
        );
        self.installer.set(installer);
        self.buffer.replace(buffer);
        self.perform(action);
    }

    fn program_done(&self, _buffer: &'static mut [u8], _result: Result<(), ErrorCode>) {}

    fn erase_done(&self, _result: Result<(), ErrorCode>) {}
}

impl DynamicBinaryStoreClient for AppUpdate<'_> {
    fn setup_done(&self, result: Result<(), ErrorCode>) {
        self.advance(Event::SetupDone(result));
    }

    fn write_done(&self, result: Result<(), ErrorCode>, buffer: &'static mut [u8], _length: usize) {
        self.buffer.replace(buffer);
        self.advance(Event::WriteDone(result));
    }

    fn finalize_done(&self, result: Result<(), ErrorCode>) {
        self.advance(Event::FinalizeDone(result));
    }

    fn abort_done(&self, _result: Result<(), ErrorCode>) {
        self.advance(Event::AbortDone);
    }
}

impl DynamicProcessUnloadClient for AppUpdate<'_> {
    fn unload_done(&self, result: Result<(), ErrorCode>, _app_handle: usize) {
        self.advance(Event::UnloadDone(result));
    }
}

impl DynamicProcessLoadClient for AppUpdate<'_> {
    fn load_done(&self, result: Result<(), ProcessLoadError>) {
        self.advance(Event::LoadDone(result));
    }
}

/// Syscall driver number (`dfu_abi::app`).
pub const DRIVER_NUM: usize = dfu_abi::app::DRIVER_NUM as usize;

/// Command numbers.
pub mod command {
    use dfu_abi::app::command as abi;
    pub const EXISTS: usize = abi::EXISTS as usize;
    pub const STATUS: usize = abi::STATUS as usize;
    pub const INSTALL: usize = abi::INSTALL as usize;
    pub const CONFIRM: usize = abi::CONFIRM as usize;
    pub const REVERT: usize = abi::REVERT as usize;
}

/// Upcall numbers.
pub mod upcall {
    use dfu_abi::app::upcall as abi;
    /// An operation finished: `(command, status, detail)`.
    pub const DONE: usize = abi::DONE as usize;
    pub const COUNT: u8 = abi::COUNT;
}

/// The syscall error for an install refused before it started.
fn refusal_error(refusal: Refusal) -> ErrorCode {
    match refusal {
        Refusal::NotDfu => ErrorCode::NODEVICE,
        Refusal::Busy => ErrorCode::BUSY,
        Refusal::NotTbf => ErrorCode::SIZE,
        _ => ErrorCode::FAIL,
    }
}

/// The grant type of [`AppUpdateDriver`]: one upcall, no allows.
pub type AppUpdateGrant =
    Grant<(), UpcallCount<{ upcall::COUNT }>, AllowRoCount<0>, AllowRwCount<0>>;

/// The syscall driver over [`AppUpdate`] (`dfu_abi::app`).
///
/// - `EXISTS` and `STATUS` (`(state, version in trial or 0)`) for anyone;
/// - `INSTALL(len)`: the DFU app only (`NODEVICE` otherwise); `BUSY` while an install runs, a
///   version is in trial or a completion waits for room in the task queue; `SIZE` if `len`
///   exceeds the staging slot. Success means exactly one upcall `(INSTALL, status, detail)`
///   follows (possibly queued before the command returns): status 0 and the installed
///   version, or `FAIL` and the [`Refusal::detail`];
/// - `CONFIRM`, `REVERT`: `NOSUPPORT` until confirm and revert exist (`docs/app-updates.md`).
pub struct AppUpdateDriver<'a> {
    core: &'a AppUpdate<'a>,
    apps: AppUpdateGrant,
    current: OptionalCell<ProcessId>,
    undelivered: KeptUpcall,
}

impl<'a> AppUpdateDriver<'a> {
    pub fn new(core: &'a AppUpdate<'a>, apps: AppUpdateGrant) -> AppUpdateDriver<'a> {
        AppUpdateDriver {
            core,
            apps,
            current: OptionalCell::empty(),
            undelivered: KeptUpcall::new(),
        }
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
}

impl AppUpdateClient for AppUpdateDriver<'_> {
    fn install_done(&self, result: Result<u32, Refusal>) {
        let Some(processid) = self.current.take() else {
            return;
        };
        let (status, value) = match result {
            Ok(version) => (0, version as usize),
            Err(refusal) => (usize::from(ErrorCode::FAIL), refusal.detail() as usize),
        };
        self.undelivered
            .deliver(processid, (command::INSTALL, status, value), |p, args| {
                self.schedule(p, args)
            });
    }
}

impl SyscallDriver for AppUpdateDriver<'_> {
    fn command(
        &self,
        command_num: usize,
        arg1: usize,
        _arg2: usize,
        processid: ProcessId,
    ) -> CommandReturn {
        self.undelivered.flush(|p, args| self.schedule(p, args));
        match command_num {
            command::EXISTS => CommandReturn::success(),
            command::STATUS => {
                let installer = self.core.installer();
                let (state, version) = match installer.trial_version() {
                    Some(version) => (dfu_abi::app::state::TRIAL, version),
                    None if installer.is_idle() => (dfu_abi::app::state::IDLE, 0),
                    None => (dfu_abi::app::state::INSTALLING, 0),
                };
                CommandReturn::success_u32_u32(state, version)
            }
            command::INSTALL => {
                if processid.short_app_id() != self.core.dfu {
                    return CommandReturn::failure(ErrorCode::NODEVICE);
                }
                if self.current.is_some() || !self.undelivered.flush(|p, a| self.schedule(p, a)) {
                    return CommandReturn::failure(ErrorCode::BUSY);
                }
                // Set before starting: the completion may arrive before `install` returns.
                self.current.set(processid);
                match self.core.install(processid.short_app_id(), arg1) {
                    Ok(()) => CommandReturn::success(),
                    Err(refusal) => {
                        self.current.clear();
                        CommandReturn::failure(refusal_error(refusal))
                    }
                }
            }
            command::CONFIRM | command::REVERT => CommandReturn::failure(ErrorCode::NOSUPPORT),
            _ => CommandReturn::failure(ErrorCode::NOSUPPORT),
        }
    }

    fn allocate_grant(&self, processid: ProcessId) -> Result<(), kernel::process::Error> {
        self.apps.enter(processid, |_, _| {})
    }
}
