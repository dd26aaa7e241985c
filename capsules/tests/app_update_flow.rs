//! The app-update core over the real kernel crate's dynamic-loading traits: a staged TBF in a
//! NOR fake is checked (its ECDSA P-256 credential against the board's app keys included),
//! copied through a `DynamicBinaryStore` fake (header chunk last), the old process unloaded, the
//! new one loaded; refusals leave the app region and processes untouched.
//! Every flow runs twice: completions deferred (the test delivers them) and completions that
//! arrive before the call that started them returns.

#[path = "support/fake_alarm.rs"]
mod fake_alarm;
#[path = "support/fake_nor.rs"]
#[allow(dead_code)]
mod fake_nor;
#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use core::num::NonZeroU32;
use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::vec;
use std::vec::Vec;

use app_install::trial::TrialRecord;
use fake_alarm::{FakeAlarm, SYNC_TICKS};
use fake_nor::FakeNor;
use kernel::dynamic_binary_storage::{
    DynamicBinaryStore, DynamicBinaryStoreClient, DynamicProcessLoad, DynamicProcessLoadClient,
    DynamicProcessUnload, DynamicProcessUnloadClient,
};
use kernel::hil::time::Alarm;
use kernel::process::{FaultAction, ProcessFaultPolicy, ProcessLoadError, ShortId};
use kernel::syscall::SyscallDriver;
use kernel::utilities::cells::OptionalCell;
use kernel::utilities::leasable_buffer::SubSliceMut;
use kernel::ErrorCode;
use p256_host::ecdsa::signature::hazmat::PrehashSigner;
use p256_host::ecdsa::{Signature, SigningKey};
use process::{Cap, FakeProcess, Harness, Queued};
use sha2::{Digest, Sha256};
use tock_ota_capsules::app_update::{
    command, upcall, AppKeys, AppUpdate, AppUpdateClient, AppUpdateDriver, AppUpdateGrant,
    InstalledApps, ProcessTable, Refusal, Sid, TrialEnd, TrialFaultPolicy, CHUNK, DRIVER_NUM,
    TRIAL_BOOTS, TRIAL_FAULTS, TRIAL_WINDOW_S,
};
use tock_ota_capsules::journaled_flash::{RegionPatch, RegionPatchClient};
use tock_ota_capsules::nor::{AsyncNor, AsyncNorClient};
use tock_ota_capsules::staged_update::SystemReset;

const DFU: ShortId = ShortId::Fixed(NonZeroU32::new(0x1D4).unwrap());
const OLD: ShortId = ShortId::Fixed(NonZeroU32::new(0x8000_0042).unwrap());
const STAGING_BASE: u32 = 0x1000;
const TRIAL_SECTOR: u32 = 0xF_F000;

/// The key the board accepts for updated apps in these tests, and one it does not.
fn app_key() -> SigningKey {
    SigningKey::from_slice(&[7; 32]).unwrap()
}

fn foreign_key() -> SigningKey {
    SigningKey::from_slice(&[9; 32]).unwrap()
}

/// The board's app keys (`x || y`).
fn board_keys() -> &'static AppKeys {
    let point = app_key().verifying_key().to_sec1_point(false);
    let key: [u8; 64] = point.as_bytes()[1..].try_into().unwrap();
    let keys: &'static [[u8; 64]] = Box::leak(Box::new([key]));
    Box::leak(Box::new(AppKeys::new(keys)))
}

/// A TBF v2 as elf2tab lays it out: base header, program header, package name, binary, then
/// footers (an ECDSA P-256 credential over `0..binary_end` signed with the board's app key when
/// `signed`, else a reserved credential of the same size).
fn tbf(name: &str, version: u32, signed: bool, total: u32) -> Vec<u8> {
    tbf_signed_by(name, version, signed.then(app_key).as_ref(), total)
}

fn tbf_signed_by(name: &str, version: u32, signer: Option<&SigningKey>, total: u32) -> Vec<u8> {
    let mut tlvs = Vec::new();
    // Program header (type 9): init offset, protected trailer, min RAM, binary end, version.
    let padded_name = name.len().div_ceil(4) * 4;
    let header_len = 16 + 4 + 20 + 4 + padded_name;
    let footer_len = 4 + 4 + 64;
    let binary_end = total - footer_len as u32;
    tlvs.extend_from_slice(&9u16.to_le_bytes());
    tlvs.extend_from_slice(&20u16.to_le_bytes());
    for word in [header_len as u32, 0, 4096, binary_end, version] {
        tlvs.extend_from_slice(&word.to_le_bytes());
    }
    tlvs.extend_from_slice(&3u16.to_le_bytes());
    tlvs.extend_from_slice(&(name.len() as u16).to_le_bytes());
    tlvs.extend_from_slice(name.as_bytes());
    tlvs.resize(tlvs.len() + padded_name - name.len(), 0);

    let mut out = Vec::new();
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // flags: enabled
    out.extend_from_slice(&0u32.to_le_bytes()); // checksum, below
    out.extend_from_slice(&tlvs);
    let checksum = out
        .chunks(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .fold(0, |a, w| a ^ w);
    out[12..16].copy_from_slice(&checksum.to_le_bytes());
    // The binary: a recognisable pattern.
    while out.len() < binary_end as usize {
        out.push((out.len() % 251) as u8);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&128u16.to_le_bytes());
    out.extend_from_slice(&68u16.to_le_bytes());
    match signer {
        Some(key) => {
            let signature: Signature = key.sign_prehash(&digest).unwrap();
            out.extend_from_slice(&6u32.to_le_bytes());
            out.extend_from_slice(&signature.to_bytes());
        }
        None => {
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend(core::iter::repeat_n(0xA5, 64));
        }
    }
    assert_eq!(out.len(), total as usize);
    out
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Setup(usize),
    Write { offset: usize, len: usize },
    Finalize,
    Abort,
    Unload(Sid),
    Load,
}

#[derive(Clone, Copy)]
enum Completion {
    Setup,
    Write(usize),
    Finalize,
    Abort,
    Unload,
    Load,
}

/// Upstream's three dynamic-loading traits over a vector "app region slot", logging each call.
struct FakeStore {
    slot: RefCell<Vec<u8>>,
    log: RefCell<Vec<Op>>,
    immediate: Cell<bool>,
    fail_write_at: Cell<Option<usize>>,
    fail_load: Cell<bool>,
    /// Between `setup` and `load`/`abort`: upstream's storage refuses `unload` then.
    session: Cell<bool>,
    pending: RefCell<Vec<Completion>>,
    buffer: RefCell<Option<&'static mut [u8]>>,
    storage_client: OptionalCell<&'static dyn DynamicBinaryStoreClient>,
    load_client: OptionalCell<&'static dyn DynamicProcessLoadClient>,
    unload_client: OptionalCell<&'static dyn DynamicProcessUnloadClient>,
}

impl FakeStore {
    fn new(immediate: bool) -> &'static FakeStore {
        Box::leak(Box::new(FakeStore {
            slot: RefCell::new(Vec::new()),
            log: RefCell::new(Vec::new()),
            immediate: Cell::new(immediate),
            fail_write_at: Cell::new(None),
            fail_load: Cell::new(false),
            session: Cell::new(false),
            pending: RefCell::new(Vec::new()),
            buffer: RefCell::new(None),
            storage_client: OptionalCell::empty(),
            load_client: OptionalCell::empty(),
            unload_client: OptionalCell::empty(),
        }))
    }

    fn start(&self, op: Op, completion: Completion) {
        self.log.borrow_mut().push(op);
        self.pending.borrow_mut().push(completion);
        if self.immediate.get() {
            self.complete();
        }
    }

    /// Deliver the oldest pending completion; `false` if none.
    fn complete(&self) -> bool {
        let next = {
            let mut pending = self.pending.borrow_mut();
            if pending.is_empty() {
                return false;
            }
            pending.remove(0)
        };
        let client = self.storage_client.get().unwrap();
        match next {
            Completion::Setup => client.setup_done(Ok(())),
            Completion::Write(len) => {
                let buffer = self.buffer.borrow_mut().take().unwrap();
                client.write_done(Ok(()), buffer, len);
            }
            Completion::Finalize => client.finalize_done(Ok(())),
            Completion::Abort => client.abort_done(Ok(())),
            Completion::Unload => self.unload_client.get().unwrap().unload_done(Ok(()), 0),
            Completion::Load => {
                // Upstream reports the loaded (or refused) process, then the end of loading,
                // both as `load_done`, the second always `Ok`.
                let client = self.load_client.get().unwrap();
                if self.fail_load.get() {
                    client.load_done(Err(ProcessLoadError::NotEnoughMemory));
                } else {
                    client.load_done(Ok(()));
                }
                client.load_done(Ok(()));
            }
        }
        true
    }
}

impl DynamicBinaryStore for FakeStore {
    fn setup(&self, app_length: usize) -> Result<usize, ErrorCode> {
        *self.slot.borrow_mut() = vec![0xFF; app_length];
        self.session.set(true);
        self.start(Op::Setup(app_length), Completion::Setup);
        Ok(app_length)
    }

    fn write(&self, buffer: SubSliceMut<'static, u8>, offset: usize) -> Result<(), ErrorCode> {
        let len = buffer.len();
        if self.fail_write_at.get() == Some(offset) {
            self.log.borrow_mut().push(Op::Write { offset, len });
            return Err(ErrorCode::FAIL);
        }
        let data = buffer.take();
        self.slot.borrow_mut()[offset..offset + len].copy_from_slice(&data[..len]);
        *self.buffer.borrow_mut() = Some(data);
        self.start(Op::Write { offset, len }, Completion::Write(len));
        Ok(())
    }

    fn finalize(&self) -> Result<(), ErrorCode> {
        self.start(Op::Finalize, Completion::Finalize);
        Ok(())
    }

    fn abort(&self) -> Result<(), ErrorCode> {
        self.session.set(false);
        self.start(Op::Abort, Completion::Abort);
        Ok(())
    }

    fn set_storage_client(&self, client: &'static dyn DynamicBinaryStoreClient) {
        self.storage_client.set(client);
    }
}

impl DynamicProcessLoad for FakeStore {
    fn load(&self) -> Result<(), ErrorCode> {
        self.session.set(false);
        self.start(Op::Load, Completion::Load);
        Ok(())
    }

    fn set_load_client(&self, client: &'static dyn DynamicProcessLoadClient) {
        self.load_client.set(client);
    }
}

impl DynamicProcessUnload for FakeStore {
    fn unload(&self, app: ShortId) -> Result<(), ErrorCode> {
        if self.session.get() {
            self.log.borrow_mut().push(Op::Unload(Sid(app)));
            return Err(ErrorCode::BUSY);
        }
        self.start(Op::Unload(Sid(app)), Completion::Unload);
        Ok(())
    }

    fn set_unload_client(&self, client: &'static dyn DynamicProcessUnloadClient) {
        self.unload_client.set(client);
    }
}

/// The kernel with the DFU process and "blink" v3 in its slots, and the driver's grant
/// (created first, as a board does).
struct Kernel {
    harness: Harness,
    grant: Option<AppUpdateGrant>,
    dfu: &'static FakeProcess,
    blink: &'static FakeProcess,
}

fn kernel() -> Kernel {
    let harness = Harness::new();
    let grant = Some(harness.grant(DRIVER_NUM));
    let dfu = harness.add_process(0, 1, DFU);
    dfu.set_binary("dfu", 1);
    let blink = harness.add_process(1, 2, OLD);
    blink.set_binary("blink", 3);
    Kernel {
        harness,
        grant,
        dfu,
        blink,
    }
}

/// The process table through the real kernel: process doubles in the kernel's slots, read by
/// the capsule's `ProcessTable`.
fn apps(kernel: &Kernel) -> &'static ProcessTable<Cap> {
    Box::leak(Box::new(ProcessTable::new(kernel.harness.kernel, Cap)))
}

#[derive(Default)]
struct Results(RefCell<Vec<Result<u32, Refusal>>>);

impl AppUpdateClient for Results {
    fn install_done(&self, result: Result<u32, Refusal>) {
        self.0.borrow_mut().push(result);
    }

    fn trial_ended(&self, _how: TrialEnd, _result: Result<u32, ErrorCode>) {
        panic!("these tests end no trial through the recording client");
    }
}

struct Rig {
    kernel: Kernel,
    driver: &'static AppUpdateDriver<'static>,
    nor: &'static FakeNor,
    store: &'static FakeStore,
    update: &'static AppUpdate<'static>,
    results: &'static Results,
}

fn rig(immediate: bool, staged: &[u8]) -> Rig {
    rig_with(immediate, staged, false)
}

/// `via_driver`: completions go to the syscall driver (else to a recording client).
fn rig_with(immediate: bool, staged: &[u8], via_driver: bool) -> Rig {
    let mut kernel = kernel();
    let nor = FakeNor::new(0x10_0000);
    nor.immediate.set(immediate);
    nor.memory.borrow_mut()[STAGING_BASE as usize..][..staged.len()].copy_from_slice(staged);
    let store = FakeStore::new(immediate);
    let apps = apps(&kernel);
    let buffer = Box::leak(Box::new([0u8; CHUNK]));
    let update: &'static AppUpdate<'static> = Box::leak(Box::new(AppUpdate::new(
        nor,
        STAGING_BASE,
        0x8_0000,
        TRIAL_SECTOR,
        store,
        store,
        store,
        apps,
        board_keys(),
        DFU,
        buffer,
    )));
    nor.set_nor_client(update);
    store.set_storage_client(update);
    store.set_load_client(update);
    store.set_unload_client(update);
    let results: &'static Results = Box::leak(Box::default());
    let driver: &'static AppUpdateDriver<'static> = Box::leak(Box::new(AppUpdateDriver::new(
        update,
        kernel.grant.take().unwrap(),
    )));
    if via_driver {
        update.set_client(driver);
    } else {
        update.set_client(results);
    }
    Rig {
        kernel,
        driver,
        nor,
        store,
        update,
        results,
    }
}

impl Rig {
    /// Deliver deferred completions until nothing is pending.
    fn run(&self) {
        for _ in 0..10_000 {
            if !(self.nor.complete() || self.store.complete()) {
                return;
            }
        }
        panic!("the install did not settle");
    }

    fn install(
        &self,
        caller: ShortId,
        len: usize,
    ) -> Result<Option<Result<u32, Refusal>>, Refusal> {
        self.update.install(caller, len)?;
        self.run();
        let results = self.results.0.borrow();
        assert!(results.len() <= 1, "more than one completion: {results:?}");
        Ok(results.first().copied())
    }

    fn log(&self) -> Vec<Op> {
        self.store.log.borrow().clone()
    }
}

const TOTAL: u32 = 1300;

#[test]
fn old_app_is_unloaded_then_newer_signed_app_stored_then_loaded() {
    for immediate in [false, true] {
        let staged = tbf("blink", 4, true, TOTAL);
        let rig = rig(immediate, &staged);
        assert_eq!(
            rig.install(DFU, staged.len()),
            Ok(Some(Ok(4))),
            "immediate={immediate}"
        );
        assert_eq!(
            rig.log(),
            [
                Op::Unload(Sid(OLD)),
                Op::Setup(TOTAL as usize),
                Op::Write {
                    offset: 512,
                    len: 512
                },
                Op::Write {
                    offset: 1024,
                    len: 276
                },
                Op::Write {
                    offset: 0,
                    len: 512
                },
                Op::Finalize,
                Op::Load,
            ]
        );
        assert_eq!(
            *rig.store.slot.borrow(),
            staged,
            "the slot holds the staged TBF"
        );
        assert_eq!(rig.update.installer().trial_version(), Some(4));
        // The trial record was written to its sector before the copy.
        let sector = rig.nor.memory.borrow()[TRIAL_SECTOR as usize..][..4096].to_vec();
        let (record, boots) = TrialRecord::decode(&sector).expect("a trial record");
        assert_eq!(
            (record.name(), record.new_version, record.had_old, boots),
            ("blink", 4, true, 0)
        );
        // The kernel now runs v4 (the fake store does not touch the process table).
        rig.kernel.blink.set_binary("blink", 4);
        // The DFU app, restarted mid-session, asks again: installed, nothing copied, no
        // second record.
        rig.store.log.borrow_mut().clear();
        rig.results.0.borrow_mut().clear();
        let erases = rig.nor.operations.get();
        assert_eq!(rig.install(DFU, staged.len()), Ok(Some(Ok(4))));
        assert!(rig.log().is_empty(), "{:?}", rig.log());
        assert_eq!(rig.update.trial_version(), Some(4));
        let sector = rig.nor.memory.borrow()[TRIAL_SECTOR as usize..][..4096].to_vec();
        assert_eq!(
            TrialRecord::decode(&sector).map(|(r, _)| r.new_version),
            Some(4)
        );
        assert!(rig.nor.operations.get() > erases, "the staged TBF was read");
        // Another version while v4 is in trial: the trial sector holds one record.
        rig.nor.memory.borrow_mut()[STAGING_BASE as usize..][..staged.len()]
            .copy_from_slice(&tbf("blink", 5, true, TOTAL));
        rig.results.0.borrow_mut().clear();
        assert_eq!(rig.install(DFU, staged.len()), Ok(Some(Err(Refusal::Busy))));
        assert!(rig.log().is_empty(), "{:?}", rig.log());
    }
}

/// A trial record in the NOR fake's trial sector, as an install left it before a reboot.
fn leave_trial_record(rig: &Rig, name: &str, version: u32) {
    leave_trial_record_marked(rig, name, version, 1);
}

/// ... with `marks` boots counted.
fn leave_trial_record_marked(rig: &Rig, name: &str, version: u32, marks: usize) {
    let record = TrialRecord::new(name, version, true).unwrap().encode();
    let mut memory = rig.nor.memory.borrow_mut();
    memory[TRIAL_SECTOR as usize..][..4096].fill(0xFF);
    memory[TRIAL_SECTOR as usize..][..record.len()].copy_from_slice(&record);
    memory[TRIAL_SECTOR as usize + 64..][..4 * marks].fill(0);
}

#[test]
fn after_a_reboot_the_version_in_trial_is_answered_as_installed() {
    for immediate in [false, true] {
        let staged = tbf("blink", 4, true, TOTAL);
        let rig = rig_with(immediate, &staged, true);
        let dfu = rig.kernel.dfu;
        // The previous boot installed v4; it runs in trial.
        rig.kernel.blink.set_binary("blink", 4);
        leave_trial_record(&rig, "blink", 4);
        let status = |rig: &Rig| {
            rig.driver
                .command(command::STATUS, 0, 0, dfu.id())
                .get_success_2_u32()
        };
        assert_eq!(status(&rig), Some((dfu_abi::app::state::IDLE, 0)));
        // The QSPI flash comes up: the capsule reads the trial sector.
        AsyncNorClient::ready(rig.update);
        if !immediate {
            // An install while the record is being read is busy, without flash access.
            assert_eq!(
                rig.driver
                    .command(command::INSTALL, staged.len(), 0, dfu.id())
                    .get_failure(),
                Some(ErrorCode::BUSY)
            );
            rig.run();
        }
        assert_eq!(status(&rig), Some((dfu_abi::app::state::TRIAL, 4)));
        assert_eq!(
            rig.command_as(dfu, command::INSTALL, staged.len()),
            Ok(done((command::INSTALL, 0, 4))),
            "immediate={immediate}"
        );
        assert!(rig.log().is_empty(), "nothing copied: {:?}", rig.log());
    }
}

#[test]
fn a_trial_record_whose_version_does_not_run_blocks_nothing() {
    for immediate in [false, true] {
        let staged = tbf("blink", 4, true, TOTAL);
        let rig = rig(immediate, &staged);
        // A cut before the copy committed: the record names v4, v3 still runs.
        leave_trial_record(&rig, "blink", 4);
        AsyncNorClient::ready(rig.update);
        rig.run();
        assert_eq!(rig.update.installer().trial_version(), Some(4));
        assert_eq!(rig.update.trial_version(), None, "v4 does not run");
        assert_eq!(rig.install(DFU, staged.len()), Ok(Some(Ok(4))));
        assert_eq!(rig.log().first(), Some(&Op::Unload(Sid(OLD))));
        assert_eq!(rig.log().last(), Some(&Op::Load));
        // The install wrote its own record (no boot marks).
        let sector = rig.nor.memory.borrow()[TRIAL_SECTOR as usize..][..4096].to_vec();
        let (record, boots) = TrialRecord::decode(&sector).expect("a trial record");
        assert_eq!((record.name(), record.new_version, boots), ("blink", 4, 0));
    }
}

#[test]
fn a_torn_or_absent_trial_record_is_no_trial() {
    let staged = tbf("blink", 4, true, TOTAL);
    let rig = rig(false, &staged);
    leave_trial_record(&rig, "blink", 4);
    // Torn: the CRC no longer matches.
    rig.nor.memory.borrow_mut()[TRIAL_SECTOR as usize + 20] ^= 1;
    rig.kernel.blink.set_binary("blink", 4);
    AsyncNorClient::ready(rig.update);
    rig.run();
    assert_eq!(rig.update.installer().trial_version(), None);
    assert_eq!(rig.update.trial_version(), None);
    // v4 already runs: an install of v4 is not newer (no trial says it was this install).
    assert_eq!(
        rig.install(DFU, staged.len()),
        Ok(Some(Err(Refusal::NotNewer { staged: 4 })))
    );
}

#[test]
fn an_app_signed_with_a_key_the_board_does_not_accept_is_refused_before_the_old_app_stops() {
    for immediate in [false, true] {
        let staged = tbf_signed_by("blink", 4, Some(&foreign_key()), TOTAL);
        let rig = rig(immediate, &staged);
        assert_eq!(
            rig.install(DFU, staged.len()),
            Ok(Some(Err(Refusal::KeyRejected)))
        );
        // No unload, no setup: "blink" v3 still runs, the app region is untouched.
        assert!(rig.log().is_empty(), "{:?}", rig.log());
        assert!(rig.update.installer().is_idle());
        // One changed byte of the binary under a valid signature: refused the same way.
        let mut tampered = tbf("blink", 4, true, TOTAL);
        tampered[900] ^= 1;
        let rig = rig_with(immediate, &tampered, false);
        assert_eq!(
            rig.install(DFU, tampered.len()),
            Ok(Some(Err(Refusal::KeyRejected)))
        );
        assert!(rig.log().is_empty());
    }
}

#[test]
fn the_staged_header_check_agrees_with_the_kernels_tbf_parser() {
    let mut cases = vec![tbf("blink", 4, true, TOTAL), tbf("a", 1, true, 600)];
    let mut bad_checksum = tbf("blink", 4, true, TOTAL);
    bad_checksum[20] ^= 1;
    cases.push(bad_checksum);
    let mut bad_program_len = tbf("blink", 4, true, TOTAL);
    bad_program_len[18] = 16;
    cases.push(bad_program_len);
    for staged in cases {
        let header_len = usize::from(u16::from_le_bytes([staged[2], staged[3]]));
        let header = &staged[..header_len];
        let ours = app_install::tbf::check_header(header, staged.len() as u32);
        let upstream = tock_tbf::parse::parse_tbf_header(header, 2);
        match (&ours, &upstream) {
            (Ok(app), Ok(parsed)) => {
                assert_eq!(Some(app.name()), parsed.get_package_name());
                assert_eq!(app.version, parsed.get_binary_version());
                assert_eq!(app.binary_end, parsed.get_binary_end());
            }
            (Err(_), Err(_)) => {}
            _ => panic!(
                "disagree: ours {ours:?}, upstream ok = {}",
                upstream.is_ok()
            ),
        }
    }
}

#[test]
fn unsigned_app_is_refused_before_the_app_region_changes() {
    for immediate in [false, true] {
        let staged = tbf("blink", 4, false, TOTAL);
        let rig = rig(immediate, &staged);
        assert_eq!(
            rig.install(DFU, staged.len()),
            Ok(Some(Err(Refusal::Unsigned)))
        );
        assert!(rig.log().is_empty());
        assert!(rig.update.installer().is_idle());
    }
}

#[test]
fn lower_or_equal_version_is_refused() {
    for (version, immediate) in [(2, false), (3, true)] {
        let staged = tbf("blink", version, true, TOTAL);
        let rig = rig(immediate, &staged);
        assert_eq!(
            rig.install(DFU, staged.len()),
            Ok(Some(Err(Refusal::NotNewer { staged: version })))
        );
        assert!(rig.log().is_empty());
    }
}

#[test]
fn caller_that_is_not_the_dfu_app_is_refused_without_flash_access() {
    let staged = tbf("blink", 4, true, TOTAL);
    let rig = rig(true, &staged);
    assert_eq!(rig.install(OLD, staged.len()), Err(Refusal::NotDfu));
    assert_eq!(
        rig.install(ShortId::LocallyUnique, staged.len()),
        Err(Refusal::NotDfu)
    );
    assert_eq!(rig.nor.operations.get(), 0);
    assert!(rig.log().is_empty());
    assert!(rig.results.0.borrow().is_empty());
}

#[test]
fn the_dfu_app_cannot_update_itself() {
    let staged = tbf("dfu", 9, true, TOTAL);
    let rig = rig(false, &staged);
    assert_eq!(
        rig.install(DFU, staged.len()),
        Ok(Some(Err(Refusal::SelfUpdate)))
    );
    assert!(rig.log().is_empty());
}

#[test]
fn corrupt_header_and_wrong_length_are_refused() {
    let mut staged = tbf("blink", 4, true, TOTAL);
    staged[20] ^= 1; // inside the program header: checksum no longer matches
    let corrupt = rig(true, &staged);
    assert_eq!(
        corrupt.install(DFU, staged.len()),
        Ok(Some(Err(Refusal::BadHeader)))
    );

    let staged = tbf("blink", 4, true, TOTAL);
    let rig2 = rig(true, &staged);
    assert_eq!(
        rig2.install(DFU, staged.len() - 4),
        Ok(Some(Err(Refusal::NotTbf)))
    );
    assert!(corrupt.log().is_empty() && rig2.log().is_empty());
}

#[test]
fn a_new_app_is_stored_and_loaded_without_unload() {
    let staged = tbf("sensor", 1, true, TOTAL);
    let rig = rig(false, &staged);
    assert_eq!(rig.install(DFU, staged.len()), Ok(Some(Ok(1))));
    assert!(!rig.log().iter().any(|op| matches!(op, Op::Unload(_))));
    assert_eq!(rig.log().last(), Some(&Op::Load));
}

#[test]
fn a_refused_write_aborts_the_slot_and_loads_nothing() {
    for immediate in [false, true] {
        let staged = tbf("blink", 4, true, TOTAL);
        let rig = rig(immediate, &staged);
        rig.store.fail_write_at.set(Some(1024));
        assert_eq!(
            rig.install(DFU, staged.len()),
            Ok(Some(Err(Refusal::Store)))
        );
        let log = rig.log();
        assert_eq!(log.last(), Some(&Op::Abort));
        assert!(!log.iter().any(|op| matches!(op, Op::Load)));
        assert!(rig.update.installer().is_idle());
    }
}

#[test]
fn a_staging_read_failure_ends_the_install_with_a_reason() {
    let staged = tbf("blink", 4, true, TOTAL);
    let rig = rig(false, &staged);
    rig.nor.fail_next.set(true);
    assert_eq!(
        rig.install(DFU, staged.len()),
        Ok(Some(Err(Refusal::StagingFlash)))
    );
    assert!(rig.log().is_empty());
    // The machine is idle again and a retry succeeds.
    rig.results.0.borrow_mut().clear();
    assert_eq!(rig.install(DFU, staged.len()), Ok(Some(Ok(4))));
}

#[test]
fn a_refused_load_is_reported_once_despite_the_later_end_of_loading() {
    for immediate in [false, true] {
        let staged = tbf("blink", 4, true, TOTAL);
        let rig = rig(immediate, &staged);
        rig.store.fail_load.set(true);
        assert_eq!(rig.install(DFU, staged.len()), Ok(Some(Err(Refusal::Load))));
        assert_eq!(rig.log().last(), Some(&Op::Load));
        assert_eq!(rig.update.installer().trial_version(), None);
    }
}

#[test]
fn an_unload_the_storage_refuses_ends_the_install_before_the_app_region_changes() {
    let staged = tbf("blink", 4, true, TOTAL);
    let rig = rig(true, &staged);
    // Upstream's storage is between setup and load (another loader's session): it refuses.
    rig.store.session.set(true);
    assert_eq!(
        rig.install(DFU, staged.len()),
        Ok(Some(Err(Refusal::Unload)))
    );
    assert_eq!(rig.log(), [Op::Unload(Sid(OLD))]);
    assert!(rig.update.installer().is_idle());
}

#[test]
fn the_process_table_finds_an_app_by_name_and_compares_versions() {
    let table = apps(&kernel());
    let blink = table.installed("blink", 4).unwrap();
    assert_eq!(blink.id, Sid(OLD));
    assert!(blink.staged_is_newer);
    assert!(!table.installed("blink", 3).unwrap().staged_is_newer);
    assert!(!table.installed("blink", 2).unwrap().staged_is_newer);
    assert_eq!(table.installed("dfu", 7).unwrap().id, Sid(DFU));
    assert_eq!(table.installed("sensor", 1), None);
}

impl Rig {
    /// Issue `cmd` as `process` and let everything finish: a failure queues nothing; an
    /// accepted `INSTALL` queues exactly one upcall, whose `(status, value)` is returned.
    fn command_as(
        &self,
        process: &FakeProcess,
        cmd: usize,
        arg1: usize,
    ) -> Result<Vec<Queued>, ErrorCode> {
        let ret = self.driver.command(cmd, arg1, 0, process.id());
        self.run();
        let upcalls = process.take_upcalls();
        if let Some(error) = ret.get_failure() {
            assert!(
                upcalls.is_empty(),
                "command {cmd} failed but queued {upcalls:?}"
            );
            return Err(error);
        }
        Ok(upcalls)
    }
}

fn done(args: (usize, usize, usize)) -> Vec<Queued> {
    vec![Queued {
        driver_num: DRIVER_NUM,
        subscribe_num: upcall::DONE,
        args,
    }]
}

#[test]
fn install_over_the_syscall_driver_ends_with_exactly_one_upcall() {
    for immediate in [false, true] {
        let staged = tbf("blink", 4, true, TOTAL);
        let rig = rig_with(immediate, &staged, true);
        let dfu = rig.kernel.dfu;
        assert_eq!(
            rig.command_as(dfu, command::INSTALL, staged.len()),
            Ok(done((command::INSTALL, 0, 4)))
        );
        let status = rig.driver.command(command::STATUS, 0, 0, dfu.id());
        assert_eq!(
            status.get_failure(),
            None,
            "status is answered while a version is in trial"
        );
        // In trial (the kernel runs v4): the same install again is answered as installed.
        rig.kernel.blink.set_binary("blink", 4);
        assert_eq!(
            rig.driver
                .command(command::STATUS, 0, 0, dfu.id())
                .get_success_2_u32(),
            Some((dfu_abi::app::state::TRIAL, 4))
        );
        assert_eq!(
            rig.command_as(dfu, command::INSTALL, staged.len()),
            Ok(done((command::INSTALL, 0, 4)))
        );
    }
}

#[test]
fn a_refused_install_is_one_failure_upcall_with_its_reason() {
    let staged = tbf("blink", 4, false, TOTAL);
    let rig = rig_with(false, &staged, true);
    assert_eq!(
        rig.command_as(rig.kernel.dfu, command::INSTALL, staged.len()),
        Ok(done((
            command::INSTALL,
            usize::from(ErrorCode::FAIL),
            dfu_abi::app::detail::UNSIGNED as usize
        )))
    );
}

#[test]
fn only_the_dfu_app_may_install() {
    let staged = tbf("blink", 4, true, TOTAL);
    let rig = rig_with(true, &staged, true);
    let blink = rig.kernel.blink;
    assert_eq!(
        rig.command_as(blink, command::INSTALL, staged.len()),
        Err(ErrorCode::NODEVICE)
    );
    assert_eq!(rig.command_as(blink, command::EXISTS, 0), Ok(vec![]));
    assert_eq!(rig.command_as(blink, command::STATUS, 0), Ok(vec![]));
    // No trial runs: blink is not an app in trial.
    assert_eq!(
        rig.command_as(blink, command::CONFIRM, 0),
        Err(ErrorCode::NODEVICE)
    );
    assert_eq!(
        rig.command_as(rig.kernel.dfu, command::INSTALL, 0x10_0000),
        Err(ErrorCode::SIZE)
    );
    assert_eq!(rig.nor.operations.get(), 0);
    assert!(rig.log().is_empty());
}

#[test]
fn a_completion_that_finds_the_task_queue_full_goes_out_at_the_next_command() {
    let staged = tbf("blink", 4, false, TOTAL);
    let rig = rig_with(true, &staged, true);
    let dfu = rig.kernel.dfu;
    dfu.queue_full.set(true);
    assert_eq!(
        rig.command_as(dfu, command::INSTALL, staged.len()),
        Ok(vec![])
    );
    // Still full: a new install waits for the kept completion.
    assert_eq!(
        rig.command_as(dfu, command::INSTALL, staged.len()),
        Err(ErrorCode::BUSY)
    );
    dfu.queue_full.set(false);
    assert_eq!(
        rig.command_as(dfu, command::STATUS, 0),
        Ok(done((
            command::INSTALL,
            usize::from(ErrorCode::FAIL),
            dfu_abi::app::detail::UNSIGNED as usize
        )))
    );
}

const REGION_BASE: u32 = 0x4_0000;
const PAGE: usize = 4096;

/// The app region as the CPU reads it, written by patches the test completes (or at once).
struct FakeRegion {
    memory: RefCell<Vec<u8>>,
    immediate: bool,
    pending: Cell<bool>,
    fail_next: Cell<bool>,
    patches: RefCell<Vec<(u32, usize)>>,
    client: OptionalCell<&'static dyn RegionPatchClient>,
}

impl RegionPatch<'static> for FakeRegion {
    fn with_region(&self, f: &mut dyn FnMut(&[u8], u32)) {
        f(&self.memory.borrow(), REGION_BASE);
    }

    fn patch(&self, address: u32, bytes: &[u8]) -> Result<(), ErrorCode> {
        let offset = (address - REGION_BASE) as usize;
        assert!(!self.pending.get(), "a patch while one is pending");
        assert!(
            !bytes.is_empty() && offset % PAGE + bytes.len() <= PAGE,
            "a patch across a page: {address:#x} + {}",
            bytes.len()
        );
        self.patches.borrow_mut().push((address, bytes.len()));
        if self.fail_next.take() {
            return Err(ErrorCode::FAIL);
        }
        self.memory.borrow_mut()[offset..][..bytes.len()].copy_from_slice(bytes);
        if self.immediate {
            self.client.map(|c| c.patched(Ok(())));
        } else {
            self.pending.set(true);
        }
        Ok(())
    }

    fn set_patch_client(&self, client: &'static dyn RegionPatchClient) {
        self.client.set(client);
    }
}

impl FakeRegion {
    fn complete(&self) -> bool {
        if !self.pending.take() {
            return false;
        }
        self.client.map(|c| c.patched(Ok(())));
        true
    }

    /// What the kernel walks over: (package name, version), ("", 0) for padding.
    fn entries(&self) -> Vec<(String, u32)> {
        app_install::region::walk(&self.memory.borrow(), REGION_BASE)
            .map(|e| match e {
                app_install::region::Entry::App { app, .. } => {
                    (app.name().to_string(), app.version)
                }
                _ => (String::new(), 0),
            })
            .collect()
    }
}

#[derive(Default)]
struct CountReset(Cell<usize>);

impl SystemReset for CountReset {
    fn reset(&self) {
        self.0.set(self.0.get() + 1);
    }
}

struct TrialRig {
    rig: Rig,
    region: &'static FakeRegion,
    reset: &'static CountReset,
    /// The trial window's alarm (32768 Hz, like the DK's RTC).
    alarm: &'static FakeAlarm,
}

impl TrialRig {
    fn run(&self) {
        for _ in 0..10_000 {
            if !(self.rig.nor.complete() || self.rig.store.complete() || self.region.complete()) {
                return;
            }
        }
        panic!("the trial's end did not settle");
    }

    /// `cmd` from `process`: the command's error, or the upcalls it queued.
    fn command_as(&self, process: &FakeProcess, cmd: usize) -> Result<Vec<Queued>, ErrorCode> {
        let ret = self.rig.driver.command(cmd, 0, 0, process.id());
        self.run();
        let upcalls = process.take_upcalls();
        if let Some(error) = ret.get_failure() {
            assert!(
                upcalls.is_empty(),
                "command {cmd} failed but queued {upcalls:?}"
            );
            return Err(error);
        }
        Ok(upcalls)
    }

    /// Boots counted in the trial sector.
    fn marks(&self) -> u32 {
        let sector = self.rig.nor.memory.borrow()[TRIAL_SECTOR as usize..][..4096].to_vec();
        TrialRecord::decode(&sector).map_or(0, |(_, boots)| boots)
    }

    fn trial(&self) -> Option<(String, u32)> {
        let sector = self.rig.nor.memory.borrow()[TRIAL_SECTOR as usize..][..4096].to_vec();
        TrialRecord::decode(&sector).map(|(r, _)| (r.name().to_string(), r.new_version))
    }
}

/// After an update of blink from v3 to v4 and a reboot: the app region holds blink v3 (its
/// `old_len` bytes, so v4's header may straddle a page) then v4, the trial record names v4,
/// the kernel runs v4, and the capsule read the record when the QSPI flash came up.
fn trial_rig(immediate: bool, old_len: u32) -> TrialRig {
    let t = boot_rig(immediate, old_len, 1, Some(&app_key()));
    AsyncNorClient::ready(t.rig.update);
    t.run();
    RegionPatchClient::region_ready(t.rig.update, Ok(()));
    t.run();
    assert_eq!(t.rig.update.trial_version(), Some(4));
    assert_eq!(t.marks(), 2, "this boot is counted");
    t
}

/// The same start-up, before the QSPI flash and the journal report ready: `marks` boots
/// counted so far, v4 signed by `new_signer` (not loadable without an accepted credential).
fn boot_rig(
    immediate: bool,
    old_len: u32,
    marks: usize,
    new_signer: Option<&SigningKey>,
) -> TrialRig {
    let rig = rig_with(immediate, &tbf("blink", 4, true, TOTAL), true);
    let mut memory = vec![0xFF; 4 * PAGE];
    memory[..old_len as usize].copy_from_slice(&tbf("blink", 3, true, old_len));
    memory[old_len as usize..][..TOTAL as usize]
        .copy_from_slice(&tbf_signed_by("blink", 4, new_signer, TOTAL));
    let region: &'static FakeRegion = Box::leak(Box::new(FakeRegion {
        memory: RefCell::new(memory),
        immediate,
        pending: Cell::new(false),
        fail_next: Cell::new(false),
        patches: RefCell::new(Vec::new()),
        client: OptionalCell::empty(),
    }));
    let reset: &'static CountReset = Box::leak(Box::default());
    region.set_patch_client(rig.update);
    rig.update.set_trial_end(region, reset, TRIAL_BOOTS);
    let alarm: &'static FakeAlarm = Box::leak(Box::default());
    alarm.set_alarm_client(rig.update);
    rig.update
        .set_trial_window(alarm, TRIAL_WINDOW_S, TRIAL_FAULTS);
    rig.kernel.blink.set_binary("blink", 4);
    leave_trial_record_marked(&rig, "blink", 4, marks);
    TrialRig {
        rig,
        region,
        reset,
        alarm,
    }
}

#[test]
fn the_app_in_trial_confirms_itself_the_old_binary_becomes_padding_and_the_trial_ends() {
    for immediate in [false, true] {
        let t = trial_rig(immediate, TOTAL);
        let blink = t.rig.kernel.blink;
        assert_eq!(
            t.command_as(blink, command::CONFIRM),
            Ok(done((command::CONFIRM, 0, 4))),
            "immediate={immediate}"
        );
        assert_eq!(
            t.region.entries(),
            [(String::new(), 0), ("blink".to_string(), 4)]
        );
        assert_eq!(*t.region.patches.borrow(), [(REGION_BASE, 16)]);
        assert_eq!(t.trial(), None, "the trial sector is erased");
        assert_eq!(t.reset.0.get(), 0);
        assert_eq!(
            t.rig
                .driver
                .command(command::STATUS, 0, 0, blink.id())
                .get_success_2_u32(),
            Some((dfu_abi::app::state::IDLE, 0))
        );
        // Nothing left to confirm.
        assert_eq!(
            t.command_as(blink, command::CONFIRM),
            Err(ErrorCode::NODEVICE)
        );
        assert_eq!(
            t.command_as(t.rig.kernel.dfu, command::CONFIRM),
            Err(ErrorCode::ALREADY)
        );
    }
}

#[test]
fn the_dfu_app_reverts_the_new_binary_becomes_padding_across_a_page_and_the_board_resets() {
    for immediate in [false, true] {
        // v4's header starts 4 bytes before a page boundary.
        let t = trial_rig(immediate, PAGE as u32 - 4);
        let dfu = t.rig.kernel.dfu;
        assert_eq!(
            t.command_as(t.rig.kernel.blink, command::REVERT),
            Err(ErrorCode::NODEVICE),
            "only the DFU app reverts"
        );
        assert_eq!(
            t.command_as(dfu, command::REVERT),
            Ok(done((command::REVERT, 0, 4))),
            "immediate={immediate}"
        );
        let v4 = REGION_BASE + PAGE as u32 - 4;
        assert_eq!(
            *t.region.patches.borrow(),
            [(v4, 4), (v4 + 4, 12)],
            "one journaled page write per page"
        );
        assert_eq!(
            t.region.entries(),
            [("blink".to_string(), 3), (String::new(), 0)]
        );
        assert_eq!(t.trial(), None);
        assert_eq!(t.reset.0.get(), 1, "the board boots the kept version");
    }
}

#[test]
fn a_failed_padding_write_keeps_the_trial_and_reports_the_error() {
    for immediate in [false, true] {
        let t = trial_rig(immediate, TOTAL);
        t.region.fail_next.set(true);
        let dfu = t.rig.kernel.dfu;
        assert_eq!(
            t.command_as(dfu, command::CONFIRM),
            Ok(done((command::CONFIRM, usize::from(ErrorCode::FAIL), 0)))
        );
        assert_eq!(t.trial(), Some(("blink".to_string(), 4)));
        assert_eq!(t.rig.update.trial_version(), Some(4));
        // The same command again finishes it.
        assert_eq!(
            t.command_as(dfu, command::CONFIRM),
            Ok(done((command::CONFIRM, 0, 4)))
        );
        assert_eq!(t.trial(), None);
    }
}

#[test]
fn install_and_revert_during_a_confirm_are_busy() {
    let t = trial_rig(false, TOTAL);
    let (blink, dfu) = (t.rig.kernel.blink, t.rig.kernel.dfu);
    assert!(t
        .rig
        .driver
        .command(command::CONFIRM, 0, 0, blink.id())
        .is_success());
    assert_eq!(
        t.rig
            .driver
            .command(command::INSTALL, TOTAL as usize, 0, dfu.id())
            .get_failure(),
        Some(ErrorCode::BUSY)
    );
    assert_eq!(
        t.rig
            .driver
            .command(command::REVERT, 0, 0, dfu.id())
            .get_failure(),
        Some(ErrorCode::BUSY)
    );
    t.run();
    assert_eq!(blink.take_upcalls(), done((command::CONFIRM, 0, 4)));
}

/// Start-up: the QSPI flash reports ready (the trial record is read), then the journal (the
/// region is whole); the decision is made once both happened, in either order.
fn start(t: &TrialRig, journal_first: bool) {
    if journal_first {
        RegionPatchClient::region_ready(t.rig.update, Ok(()));
        t.run();
    }
    AsyncNorClient::ready(t.rig.update);
    t.run();
    if !journal_first {
        RegionPatchClient::region_ready(t.rig.update, Ok(()));
        t.run();
    }
}

#[test]
fn a_boot_during_the_trial_is_counted_and_installs_wait_for_the_decision() {
    for (immediate, journal_first) in [(false, false), (true, false), (false, true), (true, true)] {
        let t = boot_rig(immediate, TOTAL, 1, Some(&app_key()));
        let dfu = t.rig.kernel.dfu;
        // Before the decision an install waits, and nothing is written.
        assert_eq!(
            t.rig
                .driver
                .command(command::INSTALL, TOTAL as usize, 0, dfu.id())
                .get_failure(),
            Some(ErrorCode::BUSY)
        );
        start(&t, journal_first);
        assert_eq!(
            t.marks(),
            2,
            "immediate={immediate} journal_first={journal_first}"
        );
        assert_eq!(t.trial(), Some(("blink".to_string(), 4)));
        assert_eq!(t.reset.0.get(), 0);
        assert_eq!(
            t.region.entries(),
            [("blink".to_string(), 3), ("blink".to_string(), 4)]
        );
        // Decided once: another report changes nothing.
        RegionPatchClient::region_ready(t.rig.update, Ok(()));
        t.run();
        assert_eq!(t.marks(), 2);
    }
}

#[test]
fn a_boot_past_the_trial_boots_reverts_to_the_kept_binary_and_resets() {
    for immediate in [false, true] {
        let t = boot_rig(
            immediate,
            PAGE as u32 - 4,
            TRIAL_BOOTS as usize,
            Some(&app_key()),
        );
        start(&t, false);
        assert_eq!(
            t.region.entries(),
            [("blink".to_string(), 3), (String::new(), 0)],
            "immediate={immediate}"
        );
        assert_eq!(t.trial(), None);
        assert_eq!(t.reset.0.get(), 1);
    }
}

#[test]
fn a_boot_ends_a_trial_whose_new_binary_does_not_load_or_whose_confirm_was_cut() {
    for immediate in [false, true] {
        // The copy never committed a binary the kernel loads (its credential fails).
        let t = boot_rig(immediate, TOTAL, 1, Some(&foreign_key()));
        start(&t, false);
        assert_eq!(t.trial(), None, "immediate={immediate}");
        assert_eq!(t.rig.update.installer().trial_version(), None);
        assert_eq!(t.reset.0.get(), 0);
        assert!(t.region.patches.borrow().is_empty(), "no binary is touched");

        // A confirm cut after it padded the old binary, before it erased the record.
        let t = boot_rig(immediate, TOTAL, 1, Some(&app_key()));
        let padding = app_install::trial::padding_header(TOTAL);
        t.region.memory.borrow_mut()[..16].copy_from_slice(&padding);
        start(&t, false);
        assert_eq!(t.trial(), None);
        assert_eq!(
            t.region.entries(),
            [(String::new(), 0), ("blink".to_string(), 4)]
        );
        assert_eq!(t.reset.0.get(), 0);
    }
}

/// The trial window in the fake alarm's ticks.
const WINDOW_TICKS: u32 = TRIAL_WINDOW_S * 32768;

/// What the app region holds after a revert: the kept v3, then padding where v4 was.
fn reverted() -> Vec<(String, u32)> {
    vec![("blink".to_string(), 3), (String::new(), 0)]
}

#[test]
fn a_trial_not_confirmed_within_the_window_is_reverted_and_the_board_resets() {
    for immediate in [false, true] {
        let t = trial_rig(immediate, PAGE as u32 - 4);
        assert_eq!(
            t.alarm.due_in(),
            Some(WINDOW_TICKS),
            "the boot's decision arms the window"
        );
        t.alarm.advance(WINDOW_TICKS - 1);
        t.run();
        assert_eq!(t.reset.0.get(), 0);
        assert_eq!(t.trial(), Some(("blink".to_string(), 4)));
        assert!(t.region.patches.borrow().is_empty());
        t.alarm.advance(1);
        t.run();
        assert_eq!(t.region.entries(), reverted(), "immediate={immediate}");
        assert_eq!(t.trial(), None);
        assert_eq!(t.reset.0.get(), 1, "the board boots the kept version");
        assert_eq!(t.alarm.due_in(), None);
        // Nobody asked for it: no upcall.
        assert!(t.rig.kernel.dfu.take_upcalls().is_empty());
        assert!(t.rig.kernel.blink.take_upcalls().is_empty());
    }
}

#[test]
fn a_confirm_within_the_window_disarms_it() {
    for immediate in [false, true] {
        let t = trial_rig(immediate, TOTAL);
        let blink = t.rig.kernel.blink;
        t.alarm.advance(WINDOW_TICKS / 2);
        assert_eq!(
            t.command_as(blink, command::CONFIRM),
            Ok(done((command::CONFIRM, 0, 4)))
        );
        assert_eq!(t.alarm.due_in(), None, "immediate={immediate}");
        t.alarm.advance(WINDOW_TICKS);
        t.run();
        assert_eq!(t.alarm.fired.get(), 0);
        assert_eq!(t.reset.0.get(), 0);
        assert_eq!(
            t.region.entries(),
            [(String::new(), 0), ("blink".to_string(), 4)]
        );
    }
}

#[test]
fn a_failed_confirm_leaves_the_window_running() {
    let t = trial_rig(true, TOTAL);
    t.region.fail_next.set(true);
    assert_eq!(
        t.command_as(t.rig.kernel.blink, command::CONFIRM),
        Ok(done((command::CONFIRM, usize::from(ErrorCode::FAIL), 0)))
    );
    assert_eq!(t.alarm.due_in(), Some(WINDOW_TICKS));
    assert!(t.alarm.fire());
    t.run();
    assert_eq!(t.region.entries(), reverted());
    assert_eq!(t.reset.0.get(), 1);
}

#[test]
fn the_window_running_out_while_a_confirm_runs_ends_the_trial_once_as_confirmed() {
    let t = trial_rig(false, TOTAL);
    let blink = t.rig.kernel.blink;
    // The confirm's padding write is pending when the window runs out.
    assert!(t
        .rig
        .driver
        .command(command::CONFIRM, 0, 0, blink.id())
        .is_success());
    assert!(t.alarm.fire());
    assert!(t.alarm.due_in().is_some(), "the revert waits");
    t.run();
    assert_eq!(blink.take_upcalls(), done((command::CONFIRM, 0, 4)));
    assert_eq!(t.alarm.due_in(), None, "the confirm's end disarms it");
    assert_eq!(
        t.region.entries(),
        [(String::new(), 0), ("blink".to_string(), 4)]
    );
    assert_eq!(*t.region.patches.borrow(), [(REGION_BASE, 16)]);
    assert_eq!(t.trial(), None);
    assert_eq!(t.reset.0.get(), 0);
}

#[test]
fn a_confirm_while_the_windows_revert_runs_is_busy_and_the_revert_ends_the_trial() {
    let t = trial_rig(false, TOTAL);
    let blink = t.rig.kernel.blink;
    assert!(t.alarm.fire());
    // The revert's padding write is pending.
    assert_eq!(t.command_as(blink, command::CONFIRM), Err(ErrorCode::BUSY));
    assert_eq!(t.region.entries(), reverted());
    assert_eq!(*t.region.patches.borrow(), [(REGION_BASE + TOTAL, 16)]);
    assert_eq!(t.trial(), None);
    assert_eq!(t.reset.0.get(), 1);
}

#[test]
fn an_install_arms_the_window_and_it_reverts_the_unconfirmed_version() {
    for immediate in [false, true] {
        // The region already holds v4 after v3 (as the copy leaves it); no trial yet, v3 runs.
        let t = boot_rig(immediate, TOTAL, 0, Some(&app_key()));
        t.rig.nor.memory.borrow_mut()[TRIAL_SECTOR as usize..][..4096].fill(0xFF);
        let (dfu, blink) = (t.rig.kernel.dfu, t.rig.kernel.blink);
        blink.set_binary("blink", 3);
        start(&t, false);
        assert_eq!(t.alarm.due_in(), None, "no trial, no window");
        assert_eq!(
            t.rig.command_as(dfu, command::INSTALL, TOTAL as usize),
            Ok(done((command::INSTALL, 0, 4))),
            "immediate={immediate}"
        );
        assert_eq!(t.alarm.due_in(), Some(WINDOW_TICKS));
        // The kernel runs the new version; the window runs out.
        blink.set_binary("blink", 4);
        t.alarm.advance(WINDOW_TICKS / 2);
        // The DFU app asks again (restarted mid-session): installed, the window goes on.
        assert_eq!(
            t.rig.command_as(dfu, command::INSTALL, TOTAL as usize),
            Ok(done((command::INSTALL, 0, 4)))
        );
        assert_eq!(t.alarm.due_in(), Some(WINDOW_TICKS / 2));
        assert!(t.alarm.fire());
        t.run();
        assert_eq!(t.region.entries(), reverted());
        assert_eq!(t.trial(), None);
        assert_eq!(t.reset.0.get(), 1);
    }
}

/// The board's fault policy over the rig's capsule.
fn fault_policy(t: &TrialRig) -> &'static TrialFaultPolicy<'static> {
    let policy: &'static TrialFaultPolicy<'static> = Box::leak(Box::default());
    policy.set_update(t.rig.update);
    policy
}

fn restarts(policy: &TrialFaultPolicy, process: &FakeProcess) -> bool {
    match policy.action(process) {
        FaultAction::Restart => true,
        FaultAction::Stop => false,
        FaultAction::Panic => panic!("the policy never panics the board"),
    }
}

#[test]
fn the_app_in_trial_is_restarted_below_the_fault_limit_and_reverted_at_it() {
    for immediate in [false, true] {
        let t = trial_rig(immediate, TOTAL);
        let policy = fault_policy(&t);
        let blink = t.rig.kernel.blink;
        let operations = t.rig.nor.operations.get();
        for restarted in 0..TRIAL_FAULTS as usize - 1 {
            blink.restarts.set(restarted);
            assert!(restarts(policy, blink), "fault {}", restarted + 1);
            assert_eq!(t.alarm.due_in(), Some(WINDOW_TICKS));
        }
        blink.restarts.set(TRIAL_FAULTS as usize - 1);
        assert!(!restarts(policy, blink), "the last fault stops it");
        // Nothing was written from the fault path: the alarm runs the revert, at once.
        assert!(t.region.patches.borrow().is_empty());
        assert_eq!(t.rig.nor.operations.get(), operations);
        assert!(t.alarm.due_in().is_some_and(|ticks| ticks <= SYNC_TICKS));
        assert!(t.alarm.fire());
        t.run();
        assert_eq!(t.region.entries(), reverted(), "immediate={immediate}");
        assert_eq!(t.trial(), None);
        assert_eq!(t.reset.0.get(), 1);
    }
}

#[test]
fn a_fault_of_another_process_stops_it_without_a_revert() {
    let t = trial_rig(true, TOTAL);
    let policy = fault_policy(&t);
    let (dfu, blink) = (t.rig.kernel.dfu, t.rig.kernel.blink);
    assert!(!restarts(policy, dfu));
    // The same app at another version than the one in trial.
    blink.set_binary("blink", 3);
    assert!(!restarts(policy, blink));
    blink.set_binary("blink", 4);
    assert_eq!(t.alarm.due_in(), Some(WINDOW_TICKS), "the window only");
    assert_eq!(t.trial(), Some(("blink".to_string(), 4)));
    // A policy without the capsule, and the app once confirmed: stopped too.
    let unconnected: &'static TrialFaultPolicy<'static> = Box::leak(Box::default());
    assert!(!restarts(unconnected, blink));
    assert_eq!(
        t.command_as(blink, command::CONFIRM),
        Ok(done((command::CONFIRM, 0, 4)))
    );
    assert!(!restarts(policy, blink));
    assert_eq!(t.alarm.due_in(), None);
    assert_eq!(t.reset.0.get(), 0);
}

/// Issue #17 item 3, found by the whole-device emulation: a power cut inside an install's copy
/// leaves the trial record (v4) written, the old v3 whole and v4's binary partly copied (its
/// credential does not verify) while the kernel runs v3. Once the boot decision ended that
/// trial, the DFU app's INSTALL (it resumes its session) must run again, not be `BUSY` for the
/// rest of the boot.
#[test]
fn after_a_cut_inside_the_copy_the_boot_decision_frees_install_again() {
    for (immediate, journal_first) in [(false, false), (true, false), (false, true), (true, true)] {
        let t = boot_rig(immediate, TOTAL, 1, Some(&foreign_key()));
        t.rig.kernel.blink.set_binary("blink", 3);
        start(&t, journal_first);
        let case = format!("immediate={immediate} journal_first={journal_first}");
        assert_eq!(t.trial(), None, "{case}: the cut trial is ended");
        assert_eq!(t.reset.0.get(), 0, "{case}");
        let dfu = t.rig.kernel.dfu;
        assert_eq!(
            t.rig.command_as(dfu, command::INSTALL, TOTAL as usize),
            Ok(done((command::INSTALL, 0, 4))),
            "{case}: the install runs again"
        );
        assert_eq!(t.trial(), Some(("blink".to_string(), 4)), "{case}");
    }
}

/// The page journal reports at start-up that it could not be read (or its replay failed):
/// no decision is made this boot (the record and its boot count stay for the next boot's),
/// and `INSTALL` is refused with a reason, not `BUSY` for the whole boot.
#[test]
fn a_journal_failed_at_start_up_refuses_install_instead_of_busy() {
    for (immediate, journal_first) in [(false, false), (true, false), (false, true), (true, true)] {
        let t = boot_rig(immediate, TOTAL, 1, Some(&foreign_key()));
        t.rig.kernel.blink.set_binary("blink", 3);
        let case = format!("immediate={immediate} journal_first={journal_first}");
        if journal_first {
            RegionPatchClient::region_ready(t.rig.update, Err(ErrorCode::FAIL));
            t.run();
        }
        AsyncNorClient::ready(t.rig.update);
        t.run();
        if !journal_first {
            RegionPatchClient::region_ready(t.rig.update, Err(ErrorCode::FAIL));
            t.run();
        }
        assert_eq!(t.trial(), Some(("blink".to_string(), 4)), "{case}: kept");
        assert_eq!(t.marks(), 1, "{case}: no decision, no mark");
        assert_eq!(t.reset.0.get(), 0, "{case}");
        let dfu = t.rig.kernel.dfu;
        assert_eq!(
            t.rig
                .driver
                .command(command::INSTALL, TOTAL as usize, 0, dfu.id())
                .get_failure(),
            Some(ErrorCode::FAIL),
            "{case}: refused with a reason"
        );
    }
}
