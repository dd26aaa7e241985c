//! Installing a TBF staged in external flash as the new version of a userspace Tock app: the
//! checks, the credential check, the copy order and the steps around upstream's dynamic process
//! loading, as a sans-IO state machine. The Tock capsule (`capsules/src/app_update.rs`) is glue
//! between this machine and the kernel's traits; host models run the very same machine.
//!
//! [`Installer::on`] takes an [`Event`] (the start, or a completion) and returns the next
//! [`Action`] (read staging, set up / write / finalize / abort the app-region slot, unload the
//! old process, load the new one, or done). The order:
//!
//! 1. **check** (reads only): the TBF base against the staged length, the header (checksum,
//!    program header, package name, version), the footers (an ECDSA P-256 credential);
//!    self-update and anti-rollback ([`InstalledApps`]);
//! 2. **credential**: SHA-256 over the integrity region (`0..binary_end`, as elf2tab signs and
//!    the kernel's checker hashes), read from staging chunk by chunk, then the signature against
//!    the board's app keys ([`Credentials`]). A TBF the board would refuse at load is refused
//!    here, while the installed version still runs;
//! 3. **unload** the old process (upstream's storage unloads only while idle, and a running
//!    process blocks loading its replacement);
//! 4. **trial record** ([`trial`]): written before the app region changes, so a boot after
//!    any later cut knows a trial of this version began;
//! 5. **copy**: setup, then every chunk but the first, then the chunk holding the header (the
//!    slot stays upstream's padding until the copy is whole), finalize;
//! 6. **load**; the new version is then in trial.
//!
//! Every internal-flash page the copy (and a later confirm or revert) writes goes through the
//! page [`journal`]; [`trial::decide`] is what a boot does about a trial; [`region`] walks the
//! app region as the kernel does.
#![no_std]
#![forbid(unsafe_code)]

pub mod journal;
pub mod region;
pub mod tbf;
pub mod trial;

use core::fmt::Debug;

use dfu_abi::app::detail;
use ota_image::Sha256;

pub use tbf::{StagedApp, SIGNATURE_LEN};

/// Bytes moved per flash operation: upstream's `dynamic_binary_storage::BUF_LEN` (the capsule
/// checks the two agree at compile time).
pub const CHUNK: usize = 512;

/// Why an install was refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotDfu,
    Busy,
    NotTbf,
    BadHeader,
    NotApp,
    Unsigned,
    /// The ECDSA P-256 credential does not verify against any app key of the board.
    KeyRejected,
    NotNewer {
        staged: u32,
    },
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
            Refusal::KeyRejected => detail::KEY_REJECTED,
            Refusal::NotNewer { .. } => detail::NOT_NEWER,
            Refusal::SelfUpdate => detail::SELF_UPDATE,
            Refusal::StagingFlash => detail::STAGING_FLASH,
            Refusal::Store => detail::STORE,
            Refusal::Unload => detail::UNLOAD,
            Refusal::Load => detail::LOAD,
        }
    }
}

/// The installed process of a package name, against a staged version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Installed<Id> {
    pub id: Id,
    /// The staged `binary_version` is higher than the installed process's (a process without
    /// a version counts as 0).
    pub staged_is_newer: bool,
}

/// Which process runs a package name, and whether a staged version is newer (anti-rollback).
/// The kernel's `BinaryVersion` only compares (it has no getter), hence the question form.
pub trait InstalledApps<Id> {
    fn installed(&self, name: &str, staged_version: u32) -> Option<Installed<Id>>;
}

/// The board's check of an ECDSA P-256 credential: does `signature` (`r || s`) over the
/// SHA-256 `digest` verify against one of the keys an updated app may be signed with? The
/// DFU signing key is not one of them: a binary it signs gets the DFU app's id.
pub trait Credentials {
    fn accepts(&self, digest: &[u8; 32], signature: &[u8; SIGNATURE_LEN]) -> bool;
}

/// Whether the kernel's credential check would accept the app at the start of `binary` (its
/// `app.total_len` bytes, as the app region holds them): an ECDSA P-256 credential in its
/// footers that verifies over `0..binary_end` against `credentials`.
pub fn verifies(binary: &[u8], app: &StagedApp, credentials: &dyn Credentials) -> bool {
    let (Some(signed), Some(footers)) = (
        binary.get(..app.binary_end as usize),
        binary.get(app.binary_end as usize..app.total_len as usize),
    ) else {
        return false;
    };
    let Some(signature) = tbf::ecdsa_p256_credential(footers) else {
        return false;
    };
    let mut hasher = Sha256::new();
    hasher.update(signed);
    credentials.accepts(&hasher.finalize(), &signature)
}

/// A failed flash or kernel operation (the glue logs nothing more specific).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed;

/// What the installer asks of its environment on an event.
pub struct Context<'a, Id> {
    pub apps: &'a dyn InstalledApps<Id>,
    pub credentials: &'a dyn Credentials,
    /// The DFU app's id: the only caller, and an app it may not replace.
    pub dfu: Id,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Job<Id> {
    app: StagedApp,
    old: Option<Id>,
}

#[derive(Clone, Debug)]
enum Phase<Id> {
    Idle,
    ReadBase {
        staged_len: usize,
    },
    ReadHeader {
        total_len: u32,
    },
    ReadFooter {
        app: StagedApp,
    },
    /// Hashing the integrity region; `next` is the offset of the chunk being read.
    Hash {
        job: Job<Id>,
        signature: [u8; SIGNATURE_LEN],
        hasher: Sha256,
        next: u32,
    },
    Unload(Job<Id>),
    RecordTrial(Job<Id>),
    Setup(Job<Id>),
    CopyRead {
        job: Job<Id>,
        index: u32,
    },
    CopyWrite {
        job: Job<Id>,
        index: u32,
    },
    Finalize(Job<Id>),
    Load(Job<Id>),
    Abort(Refusal),
}

/// A completion (or the start) the installer reacts to.
#[derive(Debug)]
pub enum Event<'a> {
    /// An install of the TBF of `len` bytes at staging offset 0, from the DFU app (the caller
    /// check is the glue's).
    Install {
        len: usize,
    },
    ReadDone(Result<&'a [u8], Failed>),
    SetupDone(Result<(), Failed>),
    WriteDone(Result<(), Failed>),
    FinalizeDone(Result<(), Failed>),
    AbortDone,
    UnloadDone(Result<(), Failed>),
    TrialRecorded(Result<(), Failed>),
    LoadDone(Result<(), Failed>),
}

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<Id> {
    /// Read `len` bytes at staging offset `offset`.
    Read {
        offset: u32,
        len: usize,
    },
    /// Set up a slot of `len` bytes in the app region.
    Setup {
        len: usize,
    },
    /// Write the chunk just read (`len` bytes) to slot offset `offset`.
    Write {
        offset: u32,
        len: usize,
    },
    Finalize,
    Abort,
    Unload(Id),
    /// Write the trial record (erase the trial sector, program the record).
    RecordTrial(trial::TrialRecord),
    Load,
    /// The install ended: the new version (now in trial), or why not.
    Done(Result<u32, Refusal>),
    /// Nothing (an event that does not belong to the current phase).
    None,
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

/// Whether the process that runs `name` has exactly `version` (the question form of
/// [`InstalledApps`]: `version` is not newer than it, `version + 1` is).
fn runs_exactly<Id>(apps: &dyn InstalledApps<Id>, name: &str, version: u32) -> bool {
    let not_older = apps
        .installed(name, version)
        .is_some_and(|i| !i.staged_is_newer);
    let not_newer = version.checked_add(1).is_none_or(|next| {
        apps.installed(name, next)
            .is_some_and(|i| i.staged_is_newer)
    });
    not_older && not_newer
}

/// Length of the chunk at `offset` of a region ending at `end`.
fn chunk_len(offset: u32, end: u32) -> usize {
    (end - offset).min(CHUNK as u32) as usize
}

/// The sans-IO install state machine. See the crate docs.
///
/// Besides the install in progress it knows the trial that runs (the record it wrote, or one a
/// boot found and handed to [`Installer::resume`]): an `INSTALL` of the version in trial, by a
/// DFU app that restarted mid-session, answers it as installed; an install of anything else
/// while a trial runs is [`Refusal::Busy`] (the trial sector holds one record).
#[derive(Clone, Debug)]
pub struct Installer<Id> {
    phase: Phase<Id>,
    trial: Option<trial::TrialRecord>,
}

impl<Id: Copy + Eq + Debug> Default for Installer<Id> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Id: Copy + Eq + Debug> Installer<Id> {
    pub const fn new() -> Installer<Id> {
        Installer {
            phase: Phase::Idle,
            trial: None,
        }
    }

    /// A boot found `record` in the trial sector. It counts as a running trial only while the
    /// record's version is the one that runs (a record whose copy never committed does not
    /// block the next install, which writes its own record). Ignored while an install runs.
    pub fn resume(&mut self, record: trial::TrialRecord) {
        if self.is_idle() {
            self.trial = Some(record);
        }
    }

    /// The trial sector was erased (a confirm or revert finished): no trial runs.
    pub fn end_trial(&mut self) {
        self.trial = None;
    }

    /// The trial that runs, if any.
    pub fn trial(&self) -> Option<&trial::TrialRecord> {
        self.trial.as_ref()
    }

    /// Idle: a new install may start.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle)
    }

    /// The version of the trial record this machine knows, if any.
    pub fn trial_version(&self) -> Option<u32> {
        self.trial.map(|record| record.new_version)
    }

    /// The trial that runs: the known record, if its version is the one running.
    pub fn running_trial(&self, apps: &dyn InstalledApps<Id>) -> Option<&trial::TrialRecord> {
        self.trial
            .as_ref()
            .filter(|r| runs_exactly(apps, r.name(), r.new_version))
    }

    /// Whether the app region or the process table may have changed: from the unload on.
    pub fn changing(&self) -> bool {
        !matches!(
            self.phase,
            Phase::Idle
                | Phase::ReadBase { .. }
                | Phase::ReadHeader { .. }
                | Phase::ReadFooter { .. }
                | Phase::Hash { .. }
        )
    }

    fn refuse(&mut self, refusal: Refusal) -> Action<Id> {
        self.phase = Phase::Idle;
        Action::Done(Err(refusal))
    }

    fn abort(&mut self, refusal: Refusal) -> Action<Id> {
        self.phase = Phase::Abort(refusal);
        Action::Abort
    }

    /// React to `event`.
    pub fn on(&mut self, event: Event, cx: &Context<Id>) -> Action<Id> {
        let phase = core::mem::replace(&mut self.phase, Phase::Idle);
        match (phase, event) {
            (Phase::Idle, Event::Install { len }) => {
                if len < 8 {
                    return self.refuse(Refusal::NotTbf);
                }
                self.phase = Phase::ReadBase { staged_len: len };
                Action::Read { offset: 0, len: 8 }
            }
            (phase, Event::Install { .. }) => {
                self.phase = phase;
                Action::Done(Err(Refusal::Busy))
            }
            (
                Phase::ReadBase { .. }
                | Phase::ReadHeader { .. }
                | Phase::ReadFooter { .. }
                | Phase::Hash { .. },
                Event::ReadDone(Err(Failed)),
            ) => self.refuse(Refusal::StagingFlash),
            (Phase::ReadBase { staged_len }, Event::ReadDone(Ok(bytes))) => {
                let Ok(base) = <&[u8; 8]>::try_from(bytes) else {
                    return self.refuse(Refusal::StagingFlash);
                };
                match tbf::check_lengths(base, staged_len, CHUNK) {
                    Ok((header_len, total_len)) => {
                        self.phase = Phase::ReadHeader { total_len };
                        Action::Read {
                            offset: 0,
                            len: usize::from(header_len),
                        }
                    }
                    Err(refusal) => self.refuse(refusal),
                }
            }
            (Phase::ReadHeader { total_len }, Event::ReadDone(Ok(header))) => {
                match tbf::check_header(header, total_len) {
                    Ok(app) => {
                        let footer_len = chunk_len(app.binary_end, total_len);
                        if footer_len == 0 {
                            return self.refuse(Refusal::Unsigned);
                        }
                        self.phase = Phase::ReadFooter { app };
                        Action::Read {
                            offset: app.binary_end,
                            len: footer_len,
                        }
                    }
                    Err(refusal) => self.refuse(refusal),
                }
            }
            (Phase::ReadFooter { app }, Event::ReadDone(Ok(footers))) => {
                let Some(signature) = tbf::ecdsa_p256_credential(footers) else {
                    return self.refuse(Refusal::Unsigned);
                };
                if let Some(record) = self.running_trial(cx.apps).copied() {
                    // The install that recorded this trial already ran: the version in trial
                    // runs (its binary passed the kernel's credential check when it loaded).
                    if record.name() == app.name() && record.new_version == app.version {
                        return Action::Done(Ok(app.version));
                    }
                    return self.refuse(Refusal::Busy);
                }
                let installed = cx.apps.installed(app.name(), app.version);
                if let Some(installed) = installed {
                    if installed.id == cx.dfu {
                        return self.refuse(Refusal::SelfUpdate);
                    }
                    if !installed.staged_is_newer {
                        return self.refuse(Refusal::NotNewer {
                            staged: app.version,
                        });
                    }
                }
                let job = Job {
                    app,
                    old: installed.map(|i| i.id),
                };
                self.hash_chunk(job, signature, Sha256::new(), 0)
            }
            (
                Phase::Hash {
                    job,
                    signature,
                    mut hasher,
                    next,
                },
                Event::ReadDone(Ok(bytes)),
            ) => {
                if bytes.len() != chunk_len(next, job.app.binary_end) {
                    return self.refuse(Refusal::StagingFlash);
                }
                hasher.update(bytes);
                let next = next + bytes.len() as u32;
                if next < job.app.binary_end {
                    return self.hash_chunk(job, signature, hasher, next);
                }
                let digest = hasher.finalize();
                if !cx.credentials.accepts(&digest, &signature) {
                    return self.refuse(Refusal::KeyRejected);
                }
                match job.old {
                    Some(old) => {
                        self.phase = Phase::Unload(job);
                        Action::Unload(old)
                    }
                    None => self.record_trial(job),
                }
            }
            (Phase::Unload(_), Event::UnloadDone(Err(Failed))) => self.refuse(Refusal::Unload),
            (Phase::Unload(job), Event::UnloadDone(Ok(()))) => self.record_trial(job),
            (Phase::RecordTrial(_), Event::TrialRecorded(Err(Failed))) => {
                self.refuse(Refusal::Store)
            }
            (Phase::RecordTrial(job), Event::TrialRecorded(Ok(()))) => self.setup(job),
            // Upstream gives the slot back itself when setup fails.
            (Phase::Setup(_), Event::SetupDone(Err(Failed))) => self.refuse(Refusal::Store),
            (Phase::Setup(job), Event::SetupDone(Ok(()))) => self.read_chunk(job, 0),
            (Phase::CopyRead { .. }, Event::ReadDone(Err(Failed))) => {
                self.abort(Refusal::StagingFlash)
            }
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
            (Phase::CopyWrite { .. }, Event::WriteDone(Err(Failed))) => self.abort(Refusal::Store),
            (Phase::CopyWrite { job, index }, Event::WriteDone(Ok(()))) => {
                self.read_chunk(job, index + 1)
            }
            (Phase::Finalize(_), Event::FinalizeDone(Err(Failed))) => self.abort(Refusal::Store),
            (Phase::Finalize(job), Event::FinalizeDone(Ok(()))) => {
                self.phase = Phase::Load(job);
                Action::Load
            }
            // Upstream reports each loaded process and then the end of loading, both as
            // `load_done`: the first report is the verdict, later ones find another phase.
            (Phase::Load(_), Event::LoadDone(Err(Failed))) => self.refuse(Refusal::Load),
            (Phase::Load(job), Event::LoadDone(Ok(()))) => {
                self.trial =
                    trial::TrialRecord::new(job.app.name(), job.app.version, job.old.is_some());
                Action::Done(Ok(job.app.version))
            }
            (Phase::Abort(refusal), Event::AbortDone) => self.refuse(refusal),
            (phase, _) => {
                self.phase = phase;
                Action::None
            }
        }
    }

    fn hash_chunk(
        &mut self,
        job: Job<Id>,
        signature: [u8; SIGNATURE_LEN],
        hasher: Sha256,
        next: u32,
    ) -> Action<Id> {
        let len = chunk_len(next, job.app.binary_end);
        self.phase = Phase::Hash {
            job,
            signature,
            hasher,
            next,
        };
        Action::Read { offset: next, len }
    }

    fn record_trial(&mut self, job: Job<Id>) -> Action<Id> {
        match trial::TrialRecord::new(job.app.name(), job.app.version, job.old.is_some()) {
            Some(record) => {
                self.phase = Phase::RecordTrial(job);
                Action::RecordTrial(record)
            }
            // The header check keeps names within the record's limit.
            None => self.refuse(Refusal::NotApp),
        }
    }

    fn setup(&mut self, job: Job<Id>) -> Action<Id> {
        self.phase = Phase::Setup(job);
        Action::Setup {
            len: job.app.total_len as usize,
        }
    }

    fn read_chunk(&mut self, job: Job<Id>, index: u32) -> Action<Id> {
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
