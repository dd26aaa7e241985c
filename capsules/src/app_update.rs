//! App update: install a TBF staged in the QSPI staging slot as the new version of a userspace
//! app, through upstream's dynamic process loading (`kernel::dynamic_binary_storage`).
//!
//! Design, upstream facts and the power-fail argument: `docs/app-updates.md`. The install's
//! logic (checks, credential, copy order, the state machine) is the `app-install` library; this
//! module is its glue to the kernel:
//!
//! - [`AppUpdate`], split-phase over [`AsyncNor`] (staging) and upstream's
//!   `DynamicBinaryStore`, `DynamicProcessUnload` and `DynamicProcessLoad`;
//! - [`ProcessTable`], the anti-rollback question asked of the kernel's processes;
//! - [`AppKeys`], the credential check: ECDSA P-256 (the verifier the board's app credential
//!   checker uses too, [`crate::p256_verifier`]) against the keys an updated app may be signed
//!   with, run on the staged bytes before the installed version is stopped;
//! - [`AppUpdateDriver`], the syscall layer (`dfu_abi::app`).
//!
//! Only the DFU app may install (the caller's `ShortId` must be the board's DFU id, the same
//! rule as the staged-update driver). A TBF that names the DFU app itself is refused
//! ([`Refusal::SelfUpdate`]).
//!
//! The trial ([`AppUpdate::end_trial`]): the app in trial confirms itself (or the DFU app does
//! on its behalf), the DFU app may revert. Both pad binaries the `app_install::trial` helpers
//! name, through the page journal's [`RegionPatch`], then erase the trial record; a revert
//! resets. The record is read when the QSPI flash is ready, so a trial survives reboots.
//! A trial that is not confirmed within the board's window (an alarm, [`TrialTimer`]), or whose
//! app faults `trial::FAULTS` times in a boot ([`TrialFaultPolicy`]), is reverted the same way.

use core::cell::Cell;
use core::num::NonZeroU32;

use kernel::capabilities::ProcessManagementCapability;
use kernel::dynamic_binary_storage::{
    DynamicBinaryStore, DynamicBinaryStoreClient, DynamicProcessLoad, DynamicProcessLoadClient,
    DynamicProcessUnload, DynamicProcessUnloadClient,
};
use kernel::grant::{AllowRoCount, AllowRwCount, Grant, UpcallCount};
use kernel::hil::time::{Alarm, AlarmClient, ConvertTicks};
use kernel::process::{
    BinaryVersion, FaultAction, Process, ProcessFaultPolicy, ProcessLoadError, ShortId,
};
use kernel::syscall::{CommandReturn, SyscallDriver};
use kernel::utilities::cells::{MapCell, OptionalCell, TakeCell};
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::{ErrorCode, Kernel, ProcessId};

use crate::journaled_flash::{RegionPatch, RegionPatchClient};
use crate::kept_upcall::KeptUpcall;
use crate::nor::{AsyncNor, AsyncNorClient};
use crate::staged_update::SystemReset;

pub use app_install::journal::{JournalLayout, PAGE as JOURNAL_PAGE};
use app_install::region;
/// Boots a trial may take on the DK before a boot reverts it.
pub use app_install::trial::BOOTS as TRIAL_BOOTS;
/// Faults of the app in trial, in one boot, that revert it on the DK.
pub use app_install::trial::FAULTS as TRIAL_FAULTS;
/// Seconds the app in trial has to confirm itself on the DK, from each boot (or its install).
pub use app_install::trial::WINDOW_S as TRIAL_WINDOW_S;
use app_install::trial::{self, Decision, TrialRecord, MARKS_AT, MAX_MARKS};
pub use app_install::{
    chunk_offset, Credentials, Installed, InstalledApps, Refusal, StagedApp, CHUNK, SIGNATURE_LEN,
};
use app_install::{Action, Context, Event, Failed};

// The library's chunk is upstream's buffer for `DynamicBinaryStore::write`.
const _: () = assert!(CHUNK == kernel::dynamic_binary_storage::BUF_LEN);

/// The install machine over kernel `ShortId`s.
pub type Installer = app_install::Installer<Sid>;

/// A `ShortId` that prints (the kernel's type has no `Debug`): the library's app id.
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

impl<C: ProcessManagementCapability> InstalledApps<Sid> for ProcessTable<C> {
    fn installed(&self, name: &str, staged_version: u32) -> Option<Installed<Sid>> {
        let staged = NonZeroU32::new(staged_version).map(BinaryVersion::new);
        let mut found = None;
        self.kernel
            .process_each_capability(&self.capability, |process| {
                if found.is_none() && process.get_process_name() == name {
                    found = Some(Installed {
                        id: Sid(process.short_app_id()),
                        staged_is_newer: staged > process.binary_version(),
                    });
                }
            });
        found
    }
}

/// The public keys (64 bytes, `x || y`) an updated app may be signed with: the board's
/// verifying keys without the DFU key (a binary it signs gets the DFU app's `ShortId`,
/// `identity::short_id_for`). A key that is not a curve point accepts nothing.
pub struct AppKeys {
    keys: &'static [[u8; 64]],
}

impl AppKeys {
    pub const fn new(keys: &'static [[u8; 64]]) -> AppKeys {
        AppKeys { keys }
    }
}

impl Credentials for AppKeys {
    fn accepts(&self, digest: &[u8; 32], signature: &[u8; SIGNATURE_LEN]) -> bool {
        self.keys
            .iter()
            .any(|key| crate::p256_verifier::verify(key, digest, signature))
    }
}

/// How a trial ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrialEnd {
    /// The new version stays: every older binary of the app becomes padding.
    Confirm,
    /// The new binary becomes padding and the board resets: the kept old version runs.
    Revert,
}

/// Receives the end of an install, and of a confirm (a revert ends in a reset; its report
/// comes only if it failed).
pub trait AppUpdateClient {
    fn install_done(&self, result: Result<u32, Refusal>);
    /// `Ok`: the version that was in trial.
    fn trial_ended(&self, how: TrialEnd, result: Result<u32, ErrorCode>);
}

/// Bytes of a padding header (`trial::padding_header`).
const PADDING_LEN: usize = 16;

/// Seconds before a revert the trial's alarm asked for is tried again, when an install, a
/// confirm or a revert ran when it fired (or the revert failed).
const RETRY_S: u32 = 1;

/// The trial's alarm, whatever the board's alarm type: its client is the [`AppUpdate`]
/// (`AlarmClient`), set by the board.
pub trait TrialTimer {
    /// Fire in `seconds` (0: as soon as the alarm can), replacing any earlier request.
    fn start(&self, seconds: u32);
    fn stop(&self);
    fn armed(&self) -> bool;
}

impl<'a, A: Alarm<'a>> TrialTimer for A {
    fn start(&self, seconds: u32) {
        self.set_alarm(self.now(), self.ticks_from_seconds(seconds));
    }
    fn stop(&self) {
        let _ = self.disarm();
    }
    fn armed(&self) -> bool {
        self.is_armed()
    }
}

/// The split-phase glue: staging reads over [`AsyncNor`], the app region and processes over
/// upstream's dynamic-loading traits. Completions may arrive before the call that started
/// them returns: the state is stored before each call down.
pub struct AppUpdate<'a> {
    staging: &'a dyn AsyncNor<'a>,
    staging_base: u32,
    staging_len: u32,
    /// The external-flash sector of the trial record (`app_install::journal::JournalLayout`).
    trial_sector: u32,
    store: &'a dyn DynamicBinaryStore,
    unloader: &'a dyn DynamicProcessUnload,
    loader: &'a dyn DynamicProcessLoad,
    apps: &'a dyn InstalledApps<Sid>,
    credentials: &'a dyn Credentials,
    dfu: ShortId,
    installer: MapCell<Installer>,
    buffer: TakeCell<'static, [u8]>,
    /// Length of the last read, kept for the write that follows it.
    read_len: Cell<usize>,
    /// The trial record to program once its sector is erased.
    trial_record: OptionalCell<TrialRecord>,
    /// The trial sector is being read (once, when the QSPI flash is ready).
    reading_trial: Cell<bool>,
    /// The app region writer and the board reset a confirm or revert needs (`set_trial_end`).
    patcher: OptionalCell<&'a dyn RegionPatch<'a>>,
    reset: OptionalCell<&'a dyn SystemReset>,
    /// A confirm or revert that runs, and the trial it ends.
    ending: OptionalCell<(TrialEnd, TrialRecord)>,
    /// The padding header being written: its address, the binary's length, bytes written.
    padding: Cell<Option<(u32, u32, usize)>>,
    /// The trial sector is being erased to end the trial.
    erasing_trial: Cell<bool>,
    /// The boot decision (`trial::decide`): the record and boot count read at start-up, the
    /// app region whole (the journal read), made, and its flash operation running.
    boot_record: OptionalCell<(TrialRecord, u32)>,
    trial_read: Cell<bool>,
    region_ready: Cell<bool>,
    /// The page journal reported the region failed at start-up: no decision this boot, and
    /// `INSTALL` is refused (`Refusal::Store`) rather than left waiting.
    region_failed: Cell<bool>,
    decided: Cell<bool>,
    boot_op: Cell<bool>,
    max_boots: Cell<u32>,
    /// The trial window (`set_trial_window`): its alarm, its length, the faults that revert.
    timer: OptionalCell<&'a dyn TrialTimer>,
    window_s: Cell<u32>,
    max_faults: Cell<u32>,
    client: OptionalCell<&'a dyn AppUpdateClient>,
}

impl<'a> AppUpdate<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        staging: &'a dyn AsyncNor<'a>,
        staging_base: u32,
        staging_len: u32,
        trial_sector: u32,
        store: &'a dyn DynamicBinaryStore,
        unloader: &'a dyn DynamicProcessUnload,
        loader: &'a dyn DynamicProcessLoad,
        apps: &'a dyn InstalledApps<Sid>,
        credentials: &'a dyn Credentials,
        dfu: ShortId,
        buffer: &'static mut [u8; CHUNK],
    ) -> AppUpdate<'a> {
        AppUpdate {
            staging,
            staging_base,
            staging_len,
            trial_sector,
            store,
            unloader,
            loader,
            apps,
            credentials,
            dfu,
            installer: MapCell::new(Installer::new()),
            buffer: TakeCell::new(buffer),
            read_len: Cell::new(0),
            trial_record: OptionalCell::empty(),
            reading_trial: Cell::new(false),
            patcher: OptionalCell::empty(),
            reset: OptionalCell::empty(),
            ending: OptionalCell::empty(),
            padding: Cell::new(None),
            erasing_trial: Cell::new(false),
            boot_record: OptionalCell::empty(),
            trial_read: Cell::new(false),
            region_ready: Cell::new(false),
            region_failed: Cell::new(false),
            decided: Cell::new(false),
            boot_op: Cell::new(false),
            max_boots: Cell::new(trial::BOOTS),
            timer: OptionalCell::empty(),
            window_s: Cell::new(trial::WINDOW_S),
            max_faults: Cell::new(trial::FAULTS),
            client: OptionalCell::empty(),
        }
    }

    pub fn set_client(&self, client: &'a dyn AppUpdateClient) {
        self.client.set(client);
    }

    /// What ending a trial needs: a writer of the app region at an address of its own (the
    /// page journal's [`RegionPatch`]), the board reset (after a revert), and the boots a trial
    /// may take (`trial::BOOTS` on the DK). Without them `CONFIRM` and `REVERT` answer
    /// `NOSUPPORT` and no boot decision is made. With them, installs wait (`BUSY`) for the
    /// boot decision, or are refused (`Refusal::Store`) when the journal reports the region
    /// failed.
    pub fn set_trial_end(
        &self,
        patcher: &'a dyn RegionPatch<'a>,
        reset: &'a dyn SystemReset,
        max_boots: u32,
    ) {
        self.patcher.set(patcher);
        self.reset.set(reset);
        self.max_boots.set(max_boots);
    }

    /// The trial's time limit and fault limit (`trial::WINDOW_S` and `trial::FAULTS` on the
    /// DK): `timer` is armed for `window_s` when a boot's decision lets the trial go on and
    /// when an install has loaded the new version; when it fires before a confirm, the trial
    /// is reverted (as `REVERT` does: pad the new binary, erase the record, reset). The window
    /// restarts at each boot (the boot count bounds the boots). The fault policy
    /// ([`TrialFaultPolicy`]) restarts the app in trial below `max_faults` faults in a boot, and
    /// at the limit fires the alarm at once. Needs `set_trial_end`; without a timer there is
    /// no window and the app in trial is stopped at its first fault, as every other app.
    pub fn set_trial_window(&self, timer: &'a dyn TrialTimer, window_s: u32, max_faults: u32) {
        self.timer.set(timer);
        self.window_s.set(window_s);
        self.max_faults.set(max_faults);
    }

    /// A fault of `process` (the fault policy's question, from the kernel's fault path):
    /// whether to restart it. The app in trial (the record's name and version; the record is
    /// known once the install wrote it or the trial sector was read) is restarted below the
    /// fault limit; at the limit it is not, and the trial's alarm is set to fire at once: the
    /// revert runs from the alarm, not from the fault path.
    pub fn restart_after_fault(&self, process: &dyn Process) -> bool {
        let Some(timer) = self.timer.get() else {
            return false;
        };
        let version = process.binary_version();
        let in_trial = self
            .installer
            .map(|i| {
                i.trial().is_some_and(|r| {
                    r.name() == process.get_process_name()
                        && version == NonZeroU32::new(r.new_version).map(BinaryVersion::new)
                })
            })
            .unwrap_or(false);
        if !in_trial {
            return false;
        }
        if trial::restart_after_fault(process.get_restart_count(), self.max_faults.get()) {
            return true;
        }
        timer.start(0);
        false
    }

    /// Whether an install, a confirm or revert, the boot's trial read or its decision runs.
    fn busy(&self) -> bool {
        !self.installer().is_idle()
            || self.reading_trial.get()
            || self.ending.is_some()
            || self.boot_op.get()
            || (self.patcher.is_some() && !self.decided.get())
    }

    /// The boot decision, once the trial record was read and the app region is whole: what
    /// `trial::decide` says about the record and what the region holds as the kernel loads it
    /// (`trial::found`: parsed headers, credentials the app keys accept). `Continue`: program
    /// this boot's mark; `End`: erase the record; `Revert`: the revert path of `end_trial`
    /// (pad the new binary, erase, reset).
    fn decide_boot(&self) {
        let Some(patcher) = self.patcher.get() else {
            return;
        };
        if self.decided.get() || !self.region_ready.get() || !self.trial_read.get() {
            return;
        }
        self.decided.set(true);
        let record = self.boot_record.take();
        let mut found = trial::Found {
            new: None,
            old: false,
        };
        if let Some((record, _)) = record {
            patcher.with_region(&mut |bytes, base| {
                found = trial::found(&record, bytes, base, self.credentials);
            });
        }
        match trial::decide(record, found, self.max_boots.get()) {
            Decision::None => {}
            Decision::End => {
                self.installer.map(|i| i.end_trial());
                self.boot_op.set(true);
                if self.staging.erase_sector(self.trial_sector).is_err() {
                    self.boot_op.set(false);
                }
            }
            Decision::Continue { boots } => {
                self.timer.map(|t| t.start(self.window_s.get()));
                let (Some(offset), Some(buffer)) = (trial::mark_offset(boots), self.buffer.take())
                else {
                    return;
                };
                buffer[..4].fill(0);
                self.boot_op.set(true);
                let address = self.trial_sector + offset;
                if let Err((_, buffer)) = self.staging.program(address, buffer, 4) {
                    self.boot_op.set(false);
                    self.buffer.replace(buffer);
                }
            }
            Decision::Revert { .. } => {
                if let Some((record, _)) = record {
                    self.ending.set((TrialEnd::Revert, record));
                    self.end_step();
                }
            }
        }
    }

    /// May `caller` end the trial `how`? The DFU app may do both; the app in trial may
    /// confirm itself: its `ShortId` is the one of the process that runs the record's package
    /// name at the record's version (`identity`: a fixed id from the name for every app key,
    /// `LocallyUnique`, which equals nothing, for no credential).
    pub fn may_end(&self, caller: ShortId, how: TrialEnd) -> bool {
        if caller == self.dfu {
            return true;
        }
        let Some(record) = self
            .installer
            .map(|i| i.running_trial(self.apps).copied())
            .flatten()
        else {
            return false;
        };
        how == TrialEnd::Confirm
            && self
                .apps
                .installed(record.name(), record.new_version)
                .is_some_and(|running| running.id == Sid(caller))
    }

    /// Confirm or revert the version in trial (the caller check is [`Self::may_end`]'s).
    /// `Ok`: exactly one `trial_ended` follows (possibly before this returns), except after a
    /// revert that succeeded: the board resets. `ALREADY`: no trial runs; `NOSUPPORT`: the
    /// board gave no region writer.
    ///
    /// Both follow `app_install::trial` as the models do: pad what `trial::older_binary`
    /// (confirm) or `trial::new_binary` (revert) names in the app region, walk again, until
    /// nothing is named; then erase the trial sector (a revert then resets). A cut anywhere
    /// leaves the record, and the next boot's decision (or the same command again) finishes.
    pub fn end_trial(&self, how: TrialEnd) -> Result<(), ErrorCode> {
        if self.patcher.is_none() || self.reset.is_none() {
            return Err(ErrorCode::NOSUPPORT);
        }
        if self.busy() {
            return Err(ErrorCode::BUSY);
        }
        let Some(record) = self
            .installer
            .map(|i| i.running_trial(self.apps).copied())
            .flatten()
        else {
            return Err(ErrorCode::ALREADY);
        };
        self.ending.set((how, record));
        self.end_step();
        Ok(())
    }

    /// The next operation of a confirm or revert.
    fn end_step(&self) {
        let (Some((how, record)), Some(patcher)) = (self.ending.get(), self.patcher.get()) else {
            return;
        };
        // Bounded: each pass writes a piece of a header or names a binary to pad.
        for _ in 0..2 * PADDING_LEN {
            if let Some((address, len, written)) = self.padding.get() {
                if written >= PADDING_LEN {
                    self.padding.set(None);
                    continue;
                }
                // One page at a time: the part of the header up to the page's end.
                let at = address + written as u32;
                let page_left = JOURNAL_PAGE - at as usize % JOURNAL_PAGE;
                let end = PADDING_LEN.min(written + page_left);
                let header = trial::padding_header(len);
                self.padding.set(Some((address, len, end)));
                if let Err(error) = patcher.patch(at, &header[written..end]) {
                    self.padding.set(None);
                    self.end_done(Err(error));
                }
                return;
            }
            let mut next = None;
            patcher.with_region(&mut |bytes, base| {
                let entries = region::walk(bytes, base);
                next = match how {
                    TrialEnd::Confirm => trial::older_binary(&record, entries),
                    TrialEnd::Revert => trial::new_binary(&record, entries),
                };
            });
            match next {
                Some((address, len)) => self.padding.set(Some((address, len, 0))),
                None => {
                    self.erasing_trial.set(true);
                    if let Err(error) = self.staging.erase_sector(self.trial_sector) {
                        self.erasing_trial.set(false);
                        self.end_done(Err(error));
                    }
                    return;
                }
            }
        }
        self.end_done(Err(ErrorCode::FAIL));
    }

    fn end_done(&self, result: Result<(), ErrorCode>) {
        let Some((how, record)) = self.ending.take() else {
            return;
        };
        if result.is_ok() {
            self.installer.map(|i| i.end_trial());
            self.timer.map(|t| t.stop());
            if how == TrialEnd::Revert {
                // The new version's process still runs from its (now padding) slot, and the
                // kernel cannot load the kept one at its address: boot again.
                self.reset.map(|r| r.reset());
            }
        }
        let result = result.map(|()| record.new_version);
        self.client.map(|c| c.trial_ended(how, result));
    }

    /// The install state machine (for status).
    pub fn installer(&self) -> Installer {
        self.installer.map(|i| i.clone()).unwrap_or_default()
    }

    /// The version in trial: the trial record's, while that version is the one that runs.
    pub fn trial_version(&self) -> Option<u32> {
        self.installer
            .map(|i| i.running_trial(self.apps).map(|r| r.new_version))
            .flatten()
    }

    /// Read the trial record a previous boot left (the QSPI flash is ready): an `INSTALL` of
    /// the version in trial then answers it as installed, and `STATUS` reports the trial.
    fn read_trial(&self) {
        if self.reading_trial.get() || !self.installer().is_idle() {
            return;
        }
        let Some(buffer) = self.buffer.take() else {
            return;
        };
        self.reading_trial.set(true);
        let len = (MARKS_AT + 4 * MAX_MARKS) as usize;
        if let Err((_, buffer)) = self.staging.read(self.trial_sector, buffer, len) {
            // No record known this boot: no decision either.
            self.reading_trial.set(false);
            self.buffer.replace(buffer);
            self.trial_read.set(true);
            self.decide_boot();
        }
    }

    /// Step the machine on `event` (the machine is put back before the action runs, so a
    /// completion that arrives inside the action finds it).
    fn step(&self, event: Event) -> Action<Sid> {
        let cx = Context {
            apps: self.apps,
            credentials: self.credentials,
            dfu: Sid(self.dfu),
        };
        self.installer
            .map(|installer| installer.on(event, &cx))
            .unwrap_or(Action::None)
    }

    /// Start installing the TBF of `len` bytes at the start of the staging slot. `Ok` means
    /// exactly one `install_done` follows (possibly before this returns).
    pub fn install(&self, caller: ShortId, len: usize) -> Result<(), Refusal> {
        if caller != self.dfu {
            return Err(Refusal::NotDfu);
        }
        if self.region_failed.get() {
            return Err(Refusal::Store);
        }
        if self.busy() {
            return Err(Refusal::Busy);
        }
        if u32::try_from(len).map_or(true, |len| len > self.staging_len) {
            return Err(Refusal::NotTbf);
        }
        self.advance(Event::Install { len });
        Ok(())
    }

    fn advance(&self, event: Event) {
        let action = self.step(event);
        self.perform(action);
    }

    /// Run `action`; a refusal to start becomes the matching failed completion.
    fn perform(&self, action: Action<Sid>) {
        match action {
            Action::None => {}
            Action::Done(result) => {
                // The new version was loaded (or is the one in trial): its window runs.
                if let Some(timer) = self.timer.get().filter(|t| result.is_ok() && !t.armed()) {
                    timer.start(self.window_s.get());
                }
                self.client.map(|c| c.install_done(result));
            }
            Action::Read { offset, len } => {
                let Some(buffer) = self.buffer.take() else {
                    return self.advance(Event::ReadDone(Err(Failed)));
                };
                self.read_len.set(len);
                if let Err((_, buffer)) = self.staging.read(self.staging_base + offset, buffer, len)
                {
                    self.buffer.replace(buffer);
                    self.advance(Event::ReadDone(Err(Failed)));
                }
            }
            Action::Setup { len } => match self.store.setup(len) {
                Ok(_) => {}
                Err(_) => self.advance(Event::SetupDone(Err(Failed))),
            },
            Action::Write { offset, len } => {
                let Some(buffer) = self.buffer.take() else {
                    return self.advance(Event::WriteDone(Err(Failed)));
                };
                let mut slice = SubSliceMut::new(buffer);
                slice.slice(..len);
                if self.store.write(slice, offset as usize).is_err() {
                    // Upstream keeps the buffer when `write` refuses; this machine then aborts
                    // and can no longer read, which ends the install with the refusal.
                    self.advance(Event::WriteDone(Err(Failed)));
                }
            }
            Action::Finalize => {
                if self.store.finalize().is_err() {
                    self.advance(Event::FinalizeDone(Err(Failed)));
                }
            }
            Action::Abort => {
                if self.store.abort().is_err() {
                    self.advance(Event::AbortDone);
                }
            }
            Action::Unload(Sid(short_id)) => {
                if self.unloader.unload(short_id).is_err() {
                    self.advance(Event::UnloadDone(Err(Failed)));
                }
            }
            Action::RecordTrial(record) => {
                // Erase, then program the record (`erase_done`).
                self.trial_record.set(record);
                if self.staging.erase_sector(self.trial_sector).is_err() {
                    self.trial_record.clear();
                    self.advance(Event::TrialRecorded(Err(Failed)));
                }
            }
            Action::Load => {
                if self.loader.load().is_err() {
                    self.advance(Event::LoadDone(Err(Failed)));
                }
            }
        }
    }
}

impl AsyncNorClient for AppUpdate<'_> {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        if self.reading_trial.take() {
            let record = result.ok().and_then(|()| TrialRecord::decode(buffer));
            self.buffer.replace(buffer);
            if let Some((found, boots)) = record {
                self.installer.map(|i| i.resume(found));
                self.boot_record.set((found, boots));
            }
            self.trial_read.set(true);
            return self.decide_boot();
        }
        let len = self.read_len.get().min(buffer.len());
        let action = self.step(Event::ReadDone(
            result.map(|()| &buffer[..len]).map_err(|_| Failed),
        ));
        self.buffer.replace(buffer);
        self.perform(action);
    }

    /// Only the trial record, and a boot mark, are programmed.
    fn program_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        self.buffer.replace(buffer);
        if self.boot_op.take() {
            return;
        }
        self.advance(Event::TrialRecorded(result.map_err(|_| Failed)));
    }

    /// The QSPI flash is up: read the trial record.
    fn ready(&self) {
        self.read_trial();
    }

    /// Only the trial sector is erased: before an install records its trial, or to end one.
    fn erase_done(&self, result: Result<(), ErrorCode>) {
        if self.erasing_trial.take() {
            return self.end_done(result);
        }
        if self.boot_op.take() {
            return;
        }
        let Some(record) = self.trial_record.take() else {
            return;
        };
        let Some(buffer) = self.buffer.take().filter(|_| result.is_ok()) else {
            return self.advance(Event::TrialRecorded(Err(Failed)));
        };
        let bytes = record.encode();
        buffer[..bytes.len()].copy_from_slice(&bytes);
        if let Err((_, buffer)) = self.staging.program(self.trial_sector, buffer, bytes.len()) {
            self.buffer.replace(buffer);
            self.advance(Event::TrialRecorded(Err(Failed)));
        }
    }
}

/// The trial window ran out, or the fault policy asked: revert, as `REVERT` does. An install, a
/// confirm or a revert that runs then is waited for (the alarm is armed again first; a
/// confirm's end disarms it, so a confirm and a revert never both happen); no trial: nothing.
impl AlarmClient for AppUpdate<'_> {
    fn alarm(&self) {
        self.timer.map(|t| t.start(RETRY_S));
        if let Err(ErrorCode::ALREADY | ErrorCode::NOSUPPORT) = self.end_trial(TrialEnd::Revert) {
            self.timer.map(|t| t.stop());
        }
    }
}

/// The board's process fault policy with app updates: the app in trial is restarted after a
/// fault until its `trial::FAULTS`-th in a boot, which stops it and reverts the trial
/// ([`AppUpdate::restart_after_fault`]); every other process is stopped, not restarted (a
/// crashing updater must not loop on the flash). Handed to the process loader before the
/// [`AppUpdate`] exists: `set_update` connects it.
#[derive(Default)]
pub struct TrialFaultPolicy<'a> {
    update: OptionalCell<&'a AppUpdate<'a>>,
}

impl<'a> TrialFaultPolicy<'a> {
    pub fn set_update(&self, update: &'a AppUpdate<'a>) {
        self.update.set(update);
    }
}

impl ProcessFaultPolicy for TrialFaultPolicy<'_> {
    fn action(&self, process: &dyn Process) -> FaultAction {
        if self
            .update
            .map_or(false, |u| u.restart_after_fault(process))
        {
            FaultAction::Restart
        } else {
            FaultAction::Stop
        }
    }
}

impl RegionPatchClient for AppUpdate<'_> {
    fn region_ready(&self, result: Result<(), ErrorCode>) {
        if result.is_err() {
            // The region cannot be written this boot: no decision; the record stays for the
            // next boot's.
            self.region_failed.set(true);
            self.decided.set(true);
            return;
        }
        self.region_ready.set(true);
        self.decide_boot();
    }

    fn patched(&self, result: Result<(), ErrorCode>) {
        match result {
            Ok(()) => self.end_step(),
            Err(error) => {
                self.padding.set(None);
                self.end_done(Err(error));
            }
        }
    }
}

impl DynamicBinaryStoreClient for AppUpdate<'_> {
    fn setup_done(&self, result: Result<(), ErrorCode>) {
        self.advance(Event::SetupDone(result.map_err(|_| Failed)));
    }

    fn write_done(&self, result: Result<(), ErrorCode>, buffer: &'static mut [u8], _length: usize) {
        self.buffer.replace(buffer);
        self.advance(Event::WriteDone(result.map_err(|_| Failed)));
    }

    fn finalize_done(&self, result: Result<(), ErrorCode>) {
        self.advance(Event::FinalizeDone(result.map_err(|_| Failed)));
    }

    fn abort_done(&self, _result: Result<(), ErrorCode>) {
        self.advance(Event::AbortDone);
    }
}

impl DynamicProcessUnloadClient for AppUpdate<'_> {
    fn unload_done(&self, result: Result<(), ErrorCode>, _app_handle: usize) {
        self.advance(Event::UnloadDone(result.map_err(|_| Failed)));
    }
}

impl DynamicProcessLoadClient for AppUpdate<'_> {
    fn load_done(&self, result: Result<(), ProcessLoadError>) {
        self.advance(Event::LoadDone(result.map_err(|_| Failed)));
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
/// - `INSTALL(len)`: the DFU app only (`NODEVICE` otherwise); `BUSY` while an install runs, the
///   trial record is being read or a completion waits for room in the task queue; `SIZE` if
///   `len` exceeds the staging slot. While a version runs in trial (the record an install
///   wrote, or one a previous boot left, read when the QSPI flash is ready), an `INSTALL` of
///   that same version ends after the staged header and footer checks with status 0 and the
///   version (a DFU app restarted mid-session asks again; nothing is copied), and one of
///   anything else ends with `FAIL` and the `BUSY` detail. Success means exactly one upcall `(INSTALL, status, detail)`
///   follows (possibly queued before the command returns): status 0 and the installed
///   version, or `FAIL` and the [`Refusal::detail`];
/// - `CONFIRM`: the app in trial itself, or the DFU app on its behalf (`NODEVICE` for anyone
///   else, and for everyone but the DFU app when no trial runs); `REVERT`: the DFU app only.
///   `ALREADY` when no trial runs, `BUSY` while an install, a confirm or revert runs,
///   `NOSUPPORT` on a board without a region writer. Success means one upcall
///   `(CONFIRM or REVERT, status, version)` follows (possibly queued before the command
///   returns) — except after a revert that succeeded, which resets the board.
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

    fn trial_ended(&self, how: TrialEnd, result: Result<u32, ErrorCode>) {
        let Some(processid) = self.current.take() else {
            return;
        };
        let command = match how {
            TrialEnd::Confirm => command::CONFIRM,
            TrialEnd::Revert => command::REVERT,
        };
        let (status, value) = match result {
            Ok(version) => (0, version as usize),
            Err(error) => (usize::from(error), 0),
        };
        self.undelivered
            .deliver(processid, (command, status, value), |p, args| {
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
                let (state, version) = match self.core.trial_version() {
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
            command::CONFIRM | command::REVERT => {
                let how = if command_num == command::CONFIRM {
                    TrialEnd::Confirm
                } else {
                    TrialEnd::Revert
                };
                if !self.core.may_end(processid.short_app_id(), how) {
                    return CommandReturn::failure(ErrorCode::NODEVICE);
                }
                if self.current.is_some() || !self.undelivered.flush(|p, a| self.schedule(p, a)) {
                    return CommandReturn::failure(ErrorCode::BUSY);
                }
                // Set before starting: the completion may arrive before `end_trial` returns.
                self.current.set(processid);
                match self.core.end_trial(how) {
                    Ok(()) => CommandReturn::success(),
                    Err(error) => {
                        self.current.clear();
                        CommandReturn::failure(error)
                    }
                }
            }
            _ => CommandReturn::failure(ErrorCode::NOSUPPORT),
        }
    }

    fn allocate_grant(&self, processid: ProcessId) -> Result<(), kernel::process::Error> {
        self.apps.enter(processid, |_, _| {})
    }
}
