//! App updates on the simulated DK: the app-install library's code run against the hardware
//! models, and the every-operation power-cut campaign over an app update: the
//! nRF52840's NVMC (internal flash, the app region) and the MX25R6435F behind the QSPI driver
//! (staging, the page journal, the trial record), as `boot-sim` does for the bootloader.
//!
//! A device holds the DFU app (v1) and "blink" v3 in its app region, laid out so that pages are
//! shared between binaries (the DFU app's last page holds blink's header, blink's last page the
//! new slot's start), and blink v4 in staging. A scenario runs the library's code as the kernel
//! would: the install machine (`Installer`), every app-region page write through the page
//! journal, the trial record, boots (journal replay, the kernel's load rule, `trial::decide`),
//! confirm or revert. Each run cuts the power before, or tears, one flash operation (program or
//! erase, on either flash), reboots and checks the invariant:
//!
//! - the DFU app is loadable (the board can receive again);
//! - exactly one version of blink runs (3 or 4): the kernel runs the highest loadable version
//!   of an app, so "never both" holds as long as one is loadable, and "never neither" is what a
//!   cut could break;
//!
//! then finishes the job as the device would (the DFU app resends, the app confirms, or the
//! trial runs out) and checks the end state: the expected version runs, exactly one blink
//! binary is left loadable (the other was turned into padding), no trial and no pending journal
//! record are left.
//!
//! A control run of the same campaign with the journal bypassed (upstream's page
//! read-modify-write straight to the NVMC) finds cuts that break the invariant
//! (`tests/power_cuts.rs`). `tock-ota bench power-cuts --app` reports the campaign.
#![forbid(unsafe_code)]

pub mod tab;
pub mod tbf;

use std::cell::RefCell;
use std::collections::HashMap;

use app_install::journal::{Data, FlashOp, Journal, JournalLayout, PAGE};
use app_install::region::{self, Entry};
use app_install::trial::{self, Decision, Found, TrialRecord};
use app_install::{
    Action, Context, Credentials, Event, Installed, InstalledApps, Installer, Refusal,
};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use hw_models::nrf52840_flash::FlashError;
use hw_models::SimBoard;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use tbf::{key, public, tbf, Keys};

const REGION: u32 = 0x4_0000;
const REGION_LEN: usize = 0x4000;
/// The staging slot in the QSPI flash (`update_region::Config::nrf52840dk`'s).
pub const STAGING: u32 = 0x10_0000;
const LAYOUT: JournalLayout = JournalLayout::NRF52840DK;
/// Boots a trial may take before it reverts (the board constant of the model).
pub const MAX_BOOTS: u32 = trial::BOOTS;
const DFU_ID: u32 = 1;
/// The DFU app's binary and blink's: blink's header shares the DFU app's only page, blink's
/// tail the new slot's page.
const DFU_LEN: u32 = 0xF00;
const BLINK_LEN: u32 = 0x600;

fn dfu_key() -> SigningKey {
    key(1)
}

fn app_key() -> SigningKey {
    key(2)
}

/// The kernel's process checker: a credential that verifies against one of the board's keys
/// (the DFU key or the app key), over the integrity region. Cached by the binary's bytes.
pub struct Checker {
    keys: Vec<p256::ecdsa::VerifyingKey>,
    cache: RefCell<HashMap<Vec<u8>, bool>>,
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

impl Checker {
    pub fn new() -> Checker {
        Checker::with_app_keys(vec![public(&app_key())])
    }

    /// The DFU key and these app keys.
    pub fn with_app_keys(app_keys: Vec<VerifyingKey>) -> Checker {
        let mut keys = vec![public(&dfu_key())];
        keys.extend(app_keys);
        Checker {
            keys,
            cache: RefCell::new(HashMap::new()),
        }
    }

    fn accepts(&self, binary: &[u8], binary_end: u32) -> bool {
        if let Some(&known) = self.cache.borrow().get(binary) {
            return known;
        }
        let digest = Sha256::digest(&binary[..binary_end as usize]);
        let verdict = app_install::tbf::ecdsa_p256_credential(&binary[binary_end as usize..])
            .and_then(|sig| Signature::from_slice(&sig).ok())
            .is_some_and(|sig| {
                self.keys
                    .iter()
                    .any(|k| k.verify_prehash(&digest, &sig).is_ok())
            });
        self.cache.borrow_mut().insert(binary.to_vec(), verdict);
        verdict
    }
}

/// A binary the kernel would load.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Loadable {
    addr: u32,
    name: String,
    version: u32,
    total_len: u32,
}

pub struct Device {
    pub board: SimBoard,
    checker: Checker,
    journaled: bool,
    staged_len: usize,
    /// The app being updated: its installed TBF, package name, installed and staged versions.
    installed: Vec<u8>,
    app: String,
    versions: (u32, u32),
    /// The keys `INSTALL` checks a staged app's credential against.
    app_keys: Vec<VerifyingKey>,
    region_len: usize,
    /// The journal's record and data sectors as a device that has already done
    /// [`USED_SLOTS`] page writes has them.
    journal_sectors: Option<(Vec<u8>, Vec<u8>)>,
}

/// Journal records in use before the scenario: the record sector fills up (and is erased)
/// during the scenario's install, so the campaign cuts that erase too.
pub const USED_SLOTS: usize = app_install::journal::SLOTS as usize - 4;

pub type Flash<T> = Result<T, FlashError>;

/// What a device holds before an update besides the DFU app: one app installed (its TBF), one
/// TBF of the same app staged, and the app keys the board trusts.
pub struct Setup {
    pub installed: Vec<u8>,
    pub staged: Vec<u8>,
    pub app_keys: Vec<VerifyingKey>,
}

impl Setup {
    /// The campaign's: blink v3 installed, blink v4 staged, both signed with the app key.
    pub fn campaign() -> Setup {
        Setup {
            installed: tbf("blink", 3, Some(&app_key()), BLINK_LEN),
            staged: tbf("blink", 4, Some(&app_key()), BLINK_LEN),
            app_keys: vec![public(&app_key())],
        }
    }
}

impl Device {
    /// A device with the apps installed and blink v4 staged; `journaled`: page writes go
    /// through the journal (else straight to the NVMC, as upstream writes them).
    pub fn new(checker: Checker, journaled: bool) -> Device {
        Device::with_setup(checker, journaled, Setup::campaign())
    }

    /// A device with the DFU app and `setup`'s app installed and its staged TBF in staging.
    /// The app region is the campaign's 16 KiB, or more if the three binaries need it.
    pub fn with_setup(checker: Checker, journaled: bool, setup: Setup) -> Device {
        let staged = setup.staged;
        let old = tab::parse_tbf(&setup.installed).expect("the installed TBF parses");
        // The staged TBF may be one the installer refuses (that is what a run can show).
        let new_version = tab::parse_tbf(&staged).map_or(0, |t| t.version);
        let needed = (DFU_LEN as usize + setup.installed.len() + staged.len())
            .next_multiple_of(PAGE)
            + 2 * PAGE;
        let board = SimBoard::new(1);
        board.chip().load(STAGING, &staged);
        let mut device = Device {
            board,
            checker,
            journaled,
            staged_len: staged.len(),
            installed: setup.installed,
            app: old.name,
            versions: (old.version, new_version),
            app_keys: setup.app_keys,
            region_len: needed.max(REGION_LEN),
            journal_sectors: None,
        };
        device.provision();
        if journaled {
            // Rewrite the DFU app's page with its own content until the record sector is
            // nearly full; keep the sectors for every provisioning.
            let page = device.board.nvmc().raw()[REGION as usize..][..PAGE].to_vec();
            for _ in 0..USED_SLOTS {
                device.write_page(REGION, &page).expect("no cut armed");
            }
            let records = device.qspi_sector(LAYOUT.records).expect("no cut armed");
            let data = device.qspi_sector(LAYOUT.data).expect("no cut armed");
            device.journal_sectors = Some((records, data));
            device.provision();
        }
        device
    }

    /// The state before the update: the two apps installed, the journal and trial sectors
    /// erased (staging keeps the staged TBF). Power on, no cut armed.
    pub fn provision(&mut self) {
        let mut region = vec![0xFF; self.region_len];
        region[..DFU_LEN as usize].copy_from_slice(&tbf("dfu", 1, Some(&dfu_key()), DFU_LEN));
        region[DFU_LEN as usize..][..self.installed.len()].copy_from_slice(&self.installed);
        self.board.power_cycle().expect("power comes back");
        self.board.nvmc().load(REGION, &region);
        for sector in [LAYOUT.data, LAYOUT.records, LAYOUT.trial] {
            self.board.chip().load(sector, &[0xFF; PAGE]);
        }
        if let Some((records, data)) = &self.journal_sectors {
            self.board.chip().load(LAYOUT.records, records);
            self.board.chip().load(LAYOUT.data, data);
        }
    }

    /// Run `op`; `page` is the page content for [`Data::Page`].
    fn exec_with(&mut self, op: FlashOp, page: &[u8]) -> Flash<()> {
        match op {
            FlashOp::QspiErase { addr } => self.board.qspi.erase(addr, addr + PAGE as u32),
            FlashOp::QspiProgram {
                addr,
                data: Data::Page,
            } => self.board.qspi.write(addr, page),
            FlashOp::QspiProgram {
                addr,
                data: Data::Bytes(bytes),
            } => self.board.qspi.write(addr, bytes),
            FlashOp::InternalErase { addr } => self.board.internal.erase(addr, addr + PAGE as u32),
            FlashOp::InternalProgram { addr } => self.board.internal.write(addr, page),
        }
    }

    fn exec(&mut self, op: FlashOp) -> Flash<()> {
        self.exec_with(op, &[])
    }

    fn qspi_sector(&mut self, addr: u32) -> Flash<Vec<u8>> {
        let mut out = vec![0; PAGE];
        self.board.qspi.read(addr, &mut out)?;
        Ok(out)
    }

    /// Write one internal page: through the journal, or (control) as upstream does.
    fn write_page(&mut self, page: u32, content: &[u8]) -> Flash<()> {
        if !self.journaled {
            self.exec(FlashOp::InternalErase { addr: page })?;
            return self.exec_with(FlashOp::InternalProgram { addr: page }, content);
        }
        let records = self.qspi_sector(LAYOUT.records)?;
        let mut journal = Journal::scan(LAYOUT, &records);
        assert_eq!(journal.pending(), None, "a page write while one is pending");
        let mut write = journal.write(page, content);
        while let Some(op) = write.next_op() {
            self.exec_with(op, content)?;
        }
        Ok(())
    }

    /// Upstream's `NonvolatileToPages`: each page the range touches, read, patched, written.
    fn write_bytes(&mut self, addr: u32, bytes: &[u8]) -> Flash<()> {
        let mut at = addr;
        let end = addr + bytes.len() as u32;
        while at < end {
            let page = at & !(PAGE as u32 - 1);
            let upto = end.min(page + PAGE as u32);
            let mut content = self.board.nvmc().raw()[page as usize..][..PAGE].to_vec();
            content[(at - page) as usize..(upto - page) as usize]
                .copy_from_slice(&bytes[(at - addr) as usize..(upto - addr) as usize]);
            self.write_page(page, &content)?;
            at = upto;
        }
        Ok(())
    }

    fn region(&self) -> Vec<u8> {
        self.board.nvmc().raw()[REGION as usize..][..self.region_len].to_vec()
    }

    /// The package name of the app the setup installed.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Bytes `INSTALL` takes from staging (the transfer's image length).
    pub fn set_staged_len(&mut self, len: usize) {
        self.staged_len = len;
    }

    /// What the kernel loads at boot: parsed apps whose credential verifies.
    fn loadable(&self) -> Vec<Loadable> {
        let region = self.region();
        region::walk(&region, REGION)
            .filter_map(|entry| match entry {
                Entry::App { addr, app } => {
                    let bytes = &region[(addr - REGION) as usize..][..app.total_len as usize];
                    self.checker
                        .accepts(bytes, app.binary_end)
                        .then(|| Loadable {
                            addr,
                            name: app.name().to_string(),
                            version: app.version,
                            total_len: app.total_len,
                        })
                }
                _ => None,
            })
            .collect()
    }

    /// The version of `name` the kernel runs: the highest loadable one.
    pub fn running(&self, name: &str) -> Option<u32> {
        self.loadable()
            .iter()
            .filter(|l| l.name == name)
            .map(|l| l.version)
            .max()
    }

    pub fn trial(&mut self) -> Flash<Option<(TrialRecord, u32)>> {
        Ok(TrialRecord::decode(&self.qspi_sector(LAYOUT.trial)?))
    }

    /// A boot: replay the journal (before processes load), load, then what the app-update
    /// capsule does about a trial; a revert resets the board and boots again.
    pub fn boot(&mut self) -> Flash<()> {
        for _ in 0..4 {
            let records = self.qspi_sector(LAYOUT.records)?;
            let mut journal = Journal::scan(LAYOUT, &records);
            if journal.pending().is_some() {
                let data = self.qspi_sector(LAYOUT.data)?;
                if let Some(mut replay) = journal.replay(&data) {
                    while let Some(op) = replay.next_op() {
                        self.exec_with(op, &data)?;
                    }
                }
            }
            let record = self.trial()?;
            let loadable = self.loadable();
            let found = record.map_or(
                Found {
                    new: None,
                    old: false,
                },
                |(r, _)| Found {
                    new: loadable
                        .iter()
                        .find(|l| l.name == r.name() && l.version == r.new_version)
                        .map(|l| l.addr),
                    old: loadable
                        .iter()
                        .any(|l| l.name == r.name() && l.version < r.new_version),
                },
            );
            match trial::decide(record, found, MAX_BOOTS) {
                Decision::None => return Ok(()),
                Decision::End => return self.exec(FlashOp::QspiErase { addr: LAYOUT.trial }),
                Decision::Continue { boots } => {
                    let at = LAYOUT.trial + trial::mark_offset(boots).unwrap();
                    return self.exec(FlashOp::QspiProgram {
                        addr: at,
                        data: Data::Bytes(&[0; 4]),
                    });
                }
                Decision::Revert { new } => {
                    self.pad(new)?;
                    self.exec(FlashOp::QspiErase { addr: LAYOUT.trial })?;
                    // The board resets; boot again.
                }
            }
        }
        panic!("boot did not settle");
    }

    /// Turn the loadable binary at `addr` into padding.
    fn pad(&mut self, addr: u32) -> Flash<()> {
        let len = self
            .loadable()
            .iter()
            .find(|l| l.addr == addr)
            .map(|l| l.total_len)
            .expect("a loadable binary to pad");
        self.write_bytes(addr, &trial::padding_header(len))
    }

    /// The app confirms: every older version becomes padding, then the trial ends.
    pub fn confirm(&mut self) -> Flash<()> {
        let Some((record, _)) = self.trial()? else {
            return Ok(());
        };
        // The capsule's order: pad what `older_binary` names, walk again, until none is left.
        for _ in 0..64 {
            let region = self.region();
            let Some((addr, len)) = trial::older_binary(&record, region::walk(&region, REGION))
            else {
                return self.exec(FlashOp::QspiErase { addr: LAYOUT.trial });
            };
            self.write_bytes(addr, &trial::padding_header(len))?;
        }
        panic!("confirm did not settle");
    }

    /// `INSTALL` from the DFU app, run by the library's install machine.
    pub fn install(&mut self) -> Flash<Result<u32, Refusal>> {
        let apps = Apps(self.loadable());
        let keys = Keys(self.app_keys.clone());
        let cx = Context {
            apps: &apps,
            credentials: &keys as &dyn Credentials,
            dfu: DFU_ID,
        };
        let mut installer = Installer::new();
        let mut buffer = Vec::new();
        let mut slot = 0;
        let mut action = installer.on(
            Event::Install {
                len: self.staged_len,
            },
            &cx,
        );
        loop {
            action = match action {
                Action::Read { offset, len } => {
                    buffer = vec![0; len];
                    self.board.qspi.read(STAGING + offset, &mut buffer)?;
                    installer.on(Event::ReadDone(Ok(&buffer)), &cx)
                }
                Action::Unload(_) => installer.on(Event::UnloadDone(Ok(())), &cx),
                Action::RecordTrial(record) => {
                    self.exec(FlashOp::QspiErase { addr: LAYOUT.trial })?;
                    self.exec(FlashOp::QspiProgram {
                        addr: LAYOUT.trial,
                        data: Data::Bytes(&record.encode()),
                    })?;
                    installer.on(Event::TrialRecorded(Ok(())), &cx)
                }
                Action::Setup { len } => {
                    // Upstream's allocator: after the last binary; a padding header there.
                    let region = self.region();
                    slot = region::walk(&region, REGION)
                        .map(|e| match e {
                            Entry::Padding { addr, len } | Entry::Invalid { addr, len } => {
                                addr + len
                            }
                            Entry::App { addr, app } => addr + app.total_len,
                        })
                        .last()
                        .unwrap_or(REGION);
                    assert!(slot as usize + len <= REGION as usize + self.region_len);
                    self.write_bytes(slot, &trial::padding_header(len as u32))?;
                    installer.on(Event::SetupDone(Ok(())), &cx)
                }
                Action::Write { offset, len } => {
                    let chunk = buffer[..len].to_vec();
                    self.write_bytes(slot + offset, &chunk)?;
                    installer.on(Event::WriteDone(Ok(())), &cx)
                }
                Action::Finalize => installer.on(Event::FinalizeDone(Ok(())), &cx),
                Action::Abort => installer.on(Event::AbortDone, &cx),
                Action::Load => installer.on(Event::LoadDone(Ok(())), &cx),
                Action::Done(result) => return Ok(result),
                Action::None => panic!("the install stalled"),
            };
        }
    }

    /// The invariant after any boot.
    pub fn check_boot(&self) -> Result<(), String> {
        let loadable = self.loadable();
        if !loadable.iter().any(|l| l.name == "dfu" && l.version == 1) {
            return Err(format!("the DFU app is not loadable: {loadable:?}"));
        }
        let (old, new) = self.versions;
        match self.running(&self.app) {
            Some(v) if v == old || v == new => Ok(()),
            other => Err(format!("{} runs {other:?}: {loadable:?}", self.app)),
        }
    }

    /// The end state: `version` runs, one blink binary, no trial, no pending journal write.
    pub fn check_end(&mut self, version: u32) -> Result<(), String> {
        self.check_boot()?;
        let binaries: Vec<u32> = self
            .loadable()
            .iter()
            .filter(|l| l.name == self.app)
            .map(|l| l.version)
            .collect();
        if binaries != [version] {
            return Err(format!(
                "{} binaries {binaries:?}, expected [{version}]",
                self.app
            ));
        }
        let trial = self.trial().map_err(|e| format!("{e:?}"))?;
        if trial.is_some() {
            return Err(format!("a trial is left: {trial:?}"));
        }
        let records = self
            .qspi_sector(LAYOUT.records)
            .map_err(|e| format!("{e:?}"))?;
        if Journal::scan(LAYOUT, &records).pending().is_some() {
            return Err("a journal record is left pending".into());
        }
        Ok(())
    }
}

/// The process table the install machine asks (ids: DFU 1, others 2).
struct Apps(Vec<Loadable>);

impl InstalledApps<u32> for Apps {
    fn installed(&self, name: &str, staged: u32) -> Option<Installed<u32>> {
        let version = self
            .0
            .iter()
            .filter(|l| l.name == name)
            .map(|l| l.version)
            .max()?;
        Some(Installed {
            id: if name == "dfu" { DFU_ID } else { 2 },
            staged_is_newer: staged > version,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Install, reboot, the new version confirms.
    Confirm,
    /// Install, then boots until the trial runs out.
    Revert,
}

impl Scenario {
    pub fn run(self, device: &mut Device) -> Flash<()> {
        assert_eq!(device.install()?, Ok(4));
        device.boot()?;
        match self {
            Scenario::Confirm => device.confirm(),
            Scenario::Revert => {
                for _ in 0..MAX_BOOTS {
                    device.boot()?;
                }
                Ok(())
            }
        }
    }

    pub fn final_version(self) -> u32 {
        match self {
            Scenario::Confirm => 4,
            Scenario::Revert => 3,
        }
    }

    /// After a cut and a boot: finish as the device would.
    pub fn finish(self, device: &mut Device) -> Flash<()> {
        match self {
            Scenario::Confirm => {
                if device.trial()?.is_none() && device.running("blink") == Some(3) {
                    // The install never committed: the DFU app installs again.
                    assert_eq!(device.install()?, Ok(4));
                    device.boot()?;
                }
                device.confirm()
            }
            Scenario::Revert => {
                for _ in 0..=MAX_BOOTS {
                    device.boot()?;
                }
                Ok(())
            }
        }
    }
}

/// One run of the campaign: a cut before (or, `torn`, inside) operation `n` of the scenario,
/// then a boot, the invariant, the rest of the update and the end state. `None` if the
/// scenario ended before operation `n`.
pub fn one_cut(
    device: &mut Device,
    scenario: Scenario,
    n: u64,
    torn: bool,
) -> Option<Result<(), String>> {
    cuts(device, scenario, n, torn, None)
}

/// Arm a cut before (or, `torn`, inside) the `n`-th operation from now.
fn arm(device: &Device, n: u64, torn: bool) {
    if torn {
        device.board.power.cut_inside(n + 1);
    } else {
        device.board.power.cut_after(n);
    }
}

/// [`one_cut`], and with `second`, a second cut at that operation (before, or torn) of the
/// boot that follows the first: the recovery itself is cut.
pub fn cuts(
    device: &mut Device,
    scenario: Scenario,
    n: u64,
    torn: bool,
    second: Option<(u64, bool)>,
) -> Option<Result<(), String>> {
    device.provision();
    arm(device, n, torn);
    if scenario.run(device).is_ok() {
        return None;
    }
    device.board.power_cycle().expect("power comes back");
    if let Some((m, torn)) = second {
        arm(device, m, torn);
        let cut = device.boot().is_err();
        device.board.power_cycle().expect("power comes back");
        if !cut {
            // The boot ended before the second cut: it is not a double cut.
            return None;
        }
    }
    let result = (|| {
        device.boot().map_err(|e| format!("boot: {e:?}"))?;
        device.check_boot()?;
        scenario
            .finish(device)
            .map_err(|e| format!("finish: {e:?}"))?;
        device.boot().map_err(|e| format!("boot: {e:?}"))?;
        device.check_end(scenario.final_version())
    })();
    Some(result)
}

/// What a campaign found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Program/erase operations of the uninterrupted scenario.
    pub operations: u64,
    /// Runs with a cut (before, or torn inside, an operation).
    pub cuts: u64,
    /// Runs that broke the invariant or did not reach the expected end.
    pub failures: Vec<String>,
}

/// Every `stride`-th operation of `scenario`, cut before and torn.
pub fn campaign(scenario: Scenario, journaled: bool, stride: u64) -> Report {
    let stride = stride.max(1);
    let mut clean = Device::new(Checker::new(), journaled);
    let start = clean.board.power.ops();
    scenario.run(&mut clean).expect("no cut");
    clean.board.power_cycle().unwrap();
    clean.boot().unwrap();
    clean.check_end(scenario.final_version()).unwrap();
    let ops = clean.board.power.ops() - start;
    let mut failures = Vec::new();
    let mut cuts = 0;
    let mut n = 0;
    while n < ops {
        for torn in [false, true] {
            if let Some(result) = one_cut(&mut clean, scenario, n, torn) {
                cuts += 1;
                if let Err(why) = result {
                    failures.push(format!(
                        "{scenario:?} cut {} op {n}: {why}",
                        if torn { "inside" } else { "before" }
                    ));
                }
            }
        }
        n += stride;
    }
    Report {
        operations: ops,
        cuts,
        failures,
    }
}
