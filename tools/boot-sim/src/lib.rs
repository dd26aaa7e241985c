//! Host harness on `hw_models::SimBoard`: a board with a layout, scripted boots, a stand-in image
//! format, and the power-cut campaign (exhaustive single cuts and random multi-cut sequences).
//! Used by boot-core's flow tests (this crate's `tests/`), the fuzz `boot` target, the emulator's
//! images and `tock-ota bench power-cuts` / `bench install`.

#![forbid(unsafe_code)]

use boot_core::image::{CheckPolicy, CheckedImage, ImageChecker};
use boot_core::journal::{JournalRecord, Reason, State};
use boot_core::layout::{Layout, Region};
use boot_core::{BootDecision, BootEnv, BootError, ResetReason};
use boot_nrf::BackgroundQspi;
use embedded_storage::nor_flash::ReadNorFlash;
use hw_models::SimBoard;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// A small layout for fast exhaustive runs: 4-page kernel slot, 2-sector journal.
pub const SMALL: Layout = Layout::SMALL;

/// A layout with a 1 MiB kernel slot for the 512 KiB install benchmark.
pub const BENCH: Layout = Layout {
    bootloader: Region::new(0x0000_0000, 0x7000),
    state_page: Region::new(0x0000_7000, 0x1000),
    kernel_slot: Region::new(0x0000_8000, 0xF_0000),
    apps: Region::new(0x000F_8000, 0x8000),
    request_sector: Region::new(0x00_0000, 0x1000),
    journal: Region::new(0x00_1000, 0xF000),
    staging: Region::new(0x10_0000, 0x10_0000),
    revert: Region::new(0x20_0000, 0x10_0000),
    max_trial_boots: 3,
};

/// Key of the stand-in image format.
pub const TEST_KEY: [u8; 8] = *b"testkey1";
const MAGIC: u32 = ota_image::IMAGE_MAGIC;
/// Header size of the stand-in format.
pub const HDR: u32 = 32;

/// A stand-in image with the shape of an MCUboot image: header (magic, load address, header
/// size, payload length, security counter), payload, then SHA-256 over header+payload and a
/// keyed "signature" SHA-256(key ‖ hash). Lets the boot flow be tested without P-256.
pub fn make_image(payload: &[u8], load: u32, counter: u32) -> Vec<u8> {
    let mut img = vec![0u8; HDR as usize];
    img[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    img[4..8].copy_from_slice(&load.to_le_bytes());
    img[8..12].copy_from_slice(&HDR.to_le_bytes());
    img[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    img[16..20].copy_from_slice(&counter.to_le_bytes());
    img.extend_from_slice(payload);
    let hash: [u8; 32] = Sha256::digest(&img).into();
    let sig: [u8; 32] = Sha256::new()
        .chain_update(TEST_KEY)
        .chain_update(hash)
        .finalize()
        .into();
    img.extend_from_slice(&hash);
    img.extend_from_slice(&sig);
    img
}

/// The hash a boot request names for a stand-in image.
pub fn image_hash(img: &[u8]) -> [u8; 32] {
    let n = img.len();
    let mut h = [0; 32];
    if n >= 64 {
        h.copy_from_slice(&img[n - 64..n - 32]);
    }
    h
}

/// Checker for the stand-in format.
pub struct TestChecker {
    pub key: [u8; 8],
}

impl ImageChecker for TestChecker {
    fn check<F: ReadNorFlash>(
        &self,
        f: &mut F,
        slot: Region,
        policy: &CheckPolicy,
    ) -> Result<CheckedImage, Reason> {
        let mut h = [0u8; HDR as usize];
        f.read(slot.start, &mut h).map_err(|_| Reason::ReadFailed)?;
        let w = |a: usize| u32::from_le_bytes([h[a], h[a + 1], h[a + 2], h[a + 3]]);
        if w(0) != MAGIC {
            return Err(Reason::BadMagic);
        }
        let (load, hdr, len, counter) = (w(4), w(8), w(12), w(16));
        let total = hdr
            .checked_add(len)
            .and_then(|t| t.checked_add(64))
            .ok_or(Reason::Malformed)?;
        if hdr != HDR || total > slot.len {
            return Err(Reason::Malformed);
        }
        let mut sha = Sha256::new();
        let mut buf = [0u8; 256];
        let mut off = 0;
        while off < hdr + len {
            let n = (hdr + len - off).min(256) as usize;
            f.read(slot.start + off, &mut buf[..n])
                .map_err(|_| Reason::ReadFailed)?;
            sha.update(&buf[..n]);
            off += n as u32;
        }
        let hash: [u8; 32] = sha.finalize().into();
        let mut tr = [0u8; 64];
        f.read(slot.start + hdr + len, &mut tr)
            .map_err(|_| Reason::ReadFailed)?;
        if tr[..32] != hash {
            return Err(Reason::HashMismatch);
        }
        let sig: [u8; 32] = Sha256::new()
            .chain_update(self.key)
            .chain_update(hash)
            .finalize()
            .into();
        if tr[32..] != sig {
            return Err(Reason::BadSignature);
        }
        if counter < policy.min_security_counter {
            return Err(Reason::Downgrade);
        }
        if len > policy.max_payload_len {
            return Err(Reason::TooLarge);
        }
        if load != 0 && load != policy.kernel_addr {
            return Err(Reason::WrongLoadAddress);
        }
        Ok(CheckedImage {
            hash,
            payload_offset: hdr,
            payload_len: len,
            hashed_after_payload: 0,
            total_len: total,
            security_counter: Some(counter),
        })
    }
}

/// A boot request for `img` as the kernel writes it.
pub fn boot_request(seq: u32, hash: [u8; 32], len: u32) -> control_area::Record {
    control_area::Record {
        kind: control_area::RecordKind::BootRequest,
        sequence: seq,
        image_len: len,
        image_hash: hash,
    }
}

/// A confirm record for the image with `hash`.
pub fn confirm(seq: u32, hash: [u8; 32]) -> control_area::Record {
    control_area::Record {
        kind: control_area::RecordKind::Confirm,
        sequence: seq,
        image_len: 0,
        image_hash: hash,
    }
}

/// Deterministic kernel-like bytes, different for every `seed`.
pub fn kernel_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8).wrapping_mul(31).wrapping_add(seed)
                ^ ((i >> 8) as u8).rotate_left(seed as u32 % 8)
        })
        .collect()
}

/// A `SimBoard` with a layout.
pub struct Board {
    pub sim: SimBoard,
    pub layout: Layout,
    /// Which image format [`Board::boot`] validates.
    pub format: ImageFormat,
}

/// The image format a simulated bootloader accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// [`make_image`] images, checked by [`TestChecker`] (no P-256: fast).
    StandIn,
    /// MCUboot images signed with [`SIM_SIGNING_KEY`], checked by `ota-image` with RustCrypto.
    Mcuboot,
}

/// Flash contents to restart a scenario from.
#[derive(Clone)]
pub struct Snapshot {
    internal: Vec<u8>,
    qspi: Vec<u8>,
}

impl Board {
    pub fn new(layout: Layout, seed: u64) -> Self {
        Board {
            sim: SimBoard::new(seed),
            layout,
            format: ImageFormat::StandIn,
        }
    }

    fn internal_end(&self) -> usize {
        self.layout
            .kernel_slot
            .end()
            .max(self.layout.state_page.end()) as usize
    }
    fn qspi_end(&self) -> usize {
        [
            self.layout.request_sector,
            self.layout.journal,
            self.layout.staging,
            self.layout.revert,
        ]
        .iter()
        .map(|r| r.end())
        .max()
        .unwrap_or(0) as usize
    }

    pub fn snapshot(&mut self) -> Snapshot {
        let (ie, qe) = (self.internal_end(), self.qspi_end());
        Snapshot {
            internal: self.sim.nvmc().raw()[..ie].to_vec(),
            qspi: self.sim.chip().raw()[..qe].to_vec(),
        }
    }

    pub fn from_snapshot(layout: Layout, snap: &Snapshot, seed: u64) -> Self {
        let b = Board::new(layout, seed);
        b.sim.nvmc().load(0, &snap.internal);
        b.sim.chip().load(0, &snap.qspi);
        b
    }

    /// One boot with the stand-in checker.
    pub fn boot(&mut self, watchdog: bool) -> Result<BootDecision, BootError> {
        match self.format {
            ImageFormat::StandIn => self.boot_with(&TestChecker { key: TEST_KEY }, watchdog),
            ImageFormat::Mcuboot => {
                let key = ota_image::PublicKey::from_raw(&sim_public_key(&SIM_SIGNING_KEY))
                    .map_err(|_| BootError::Denied)?;
                let checker = boot_core::OtaChecker {
                    key: &key,
                    verifier: ota_image::RustCryptoVerifier,
                };
                self.boot_with(&checker, watchdog)
            }
        }
    }

    /// One boot with any checker.
    pub fn boot_with<C: ImageChecker>(
        &mut self,
        checker: &C,
        watchdog: bool,
    ) -> Result<BootDecision, BootError> {
        let mut env = BootEnv {
            layout: &self.layout,
            internal: &mut self.sim.internal,
            qspi: &mut BackgroundQspi(&mut self.sim.qspi),
            checker,
            reset_reason: ResetReason { watchdog },
        };
        boot_core::boot(&mut env)
    }

    pub fn provision(&mut self, kernel: &[u8]) {
        boot_core::provision(&self.layout, &mut self.sim.internal, kernel)
            .expect("provisioning on a powered board");
    }

    /// Whether the kernel slot starts with exactly `kernel`.
    pub fn kernel_is(&self, kernel: &[u8]) -> bool {
        let s = self.layout.kernel_slot.start as usize;
        self.sim.nvmc().raw()[s..s + kernel.len()] == *kernel
    }

    pub fn status(&mut self) -> Option<JournalRecord> {
        self.sim.qspi.wait().ok()?;
        boot_core::read_status(&mut self.sim.qspi, self.layout.journal)
            .ok()
            .flatten()
    }

    pub fn floor(&mut self) -> u32 {
        self.slot_state().floor
    }

    /// The bootloader's state page: floor, whether the kernel slot is whole, the backup hash.
    pub fn slot_state(&mut self) -> boot_core::SlotState {
        boot_core::state::read(&mut self.sim.internal, self.layout.state_page)
            .map(|(s, _)| s)
            .unwrap_or(boot_core::SlotState::NEW)
    }

    /// Appends a control record the way the kernel does (no faults).
    pub fn request(&mut self, rec: control_area::Record) {
        let s = self.layout.request_sector;
        let sector = self.sim.chip().raw()[s.start as usize..s.end() as usize].to_vec();
        let (_, free) = control_area::scan(&sector);
        if let Some(at) = free {
            self.sim.chip().load(s.start + at as u32, &rec.encode());
        }
    }

    /// Appends `rec` to the journal as the newest record (the next sequence), the way an
    /// attacker who can write the external flash would forge one (no faults).
    pub fn forge_journal(&mut self, rec: JournalRecord) {
        let q = &mut self.sim.qspi;
        q.wait().expect("powered");
        let mut j = boot_core::Journal::scan(q, self.layout.journal).expect("powered");
        j.append(q, rec)
            .expect("powered")
            .expect("the slot reads back");
    }

    /// Puts `image` in the staging slot (no faults).
    pub fn stage(&mut self, image: &[u8]) {
        let s = self.layout.staging;
        let mut fill = vec![0xFF; s.len as usize];
        let n = image.len().min(fill.len());
        fill[..n].copy_from_slice(&image[..n]);
        self.sim.chip().load(s.start, &fill);
    }

    /// Boots until a boot succeeds (power back after each failure), at most `tries` times.
    pub fn boot_until_ok(&mut self, tries: usize) -> Result<BootDecision, BootError> {
        let mut last = Err(BootError::CopyFailed);
        for _ in 0..tries {
            let _ = self.sim.power_cycle();
            last = self.boot(false);
            if last.is_ok() {
                return last;
            }
        }
        last
    }
}

/// Which part of an update a cut lands in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Validate, back up, install, first trial boot.
    Install,
    /// The boot that sees the kernel's confirm.
    Confirm,
    /// The boot that reverts an unconfirmed trial.
    Revert,
    /// The boot after a watchdog reset of the trial.
    WatchdogRevert,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::Install,
        Phase::Confirm,
        Phase::Revert,
        Phase::WatchdogRevert,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Phase::Install => "install",
            Phase::Confirm => "confirm",
            Phase::Revert => "revert",
            Phase::WatchdogRevert => "watchdog-revert",
        }
    }
}

/// The update every campaign run performs: an old kernel, a signed new one, its counter.
pub struct Scenario {
    pub layout: Layout,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
    pub image: Vec<u8>,
    pub counter: u32,
    pub format: ImageFormat,
}

impl Scenario {
    /// Old kernel of `old_len` bytes, new of `new_len` (stand-in format).
    pub fn new(layout: Layout, old_len: usize, new_len: usize) -> Self {
        let old = kernel_bytes(old_len, 1);
        let new = kernel_bytes(new_len, 2);
        let image = make_image(&new, 0, 5);
        Scenario {
            layout,
            old,
            new,
            image,
            counter: 5,
            format: ImageFormat::StandIn,
        }
    }

    /// The same with a signed MCUboot image (verified with P-256 on every validation).
    pub fn mcuboot(layout: Layout, old_len: usize, new_len: usize) -> Self {
        let mut sc = Scenario::new(layout, old_len, new_len);
        sc.image = sign_mcuboot(
            &sc.new,
            &SIM_SIGNING_KEY,
            &SimSign {
                security_counter: Some(sc.counter),
                ..SimSign::default()
            },
        );
        sc.format = ImageFormat::Mcuboot;
        sc
    }

    /// A board in this scenario's format from a snapshot.
    pub fn board(&self, snap: &Snapshot, seed: u64) -> Board {
        let mut b = Board::from_snapshot(self.layout, snap, seed);
        b.format = self.format;
        b
    }

    fn hash(&self) -> [u8; 32] {
        match self.format {
            ImageFormat::StandIn => image_hash(&self.image),
            ImageFormat::Mcuboot => mcuboot_hash(&self.image),
        }
    }

    /// Board with the old kernel, the image staged and the boot request written.
    pub fn start(&self, seed: u64) -> Board {
        let mut b = Board::new(self.layout, seed);
        b.format = self.format;
        b.provision(&self.old);
        b.stage(&self.image);
        b.request(boot_request(1, self.hash(), self.image.len() as u32));
        b
    }

    /// The state right before `phase`'s boot, and that boot's reset reason.
    pub fn before(&self, phase: Phase, seed: u64) -> Result<(Snapshot, bool), String> {
        let mut b = self.start(seed);
        if phase != Phase::Install {
            b.boot(false).map_err(|e| format!("install: {e:?}"))?;
        }
        match phase {
            Phase::Install => {}
            Phase::Confirm => b.request(confirm(2, self.hash())),
            Phase::Revert => {
                for _ in 1..self.layout.max_trial_boots {
                    b.boot(false).map_err(|e| format!("trial: {e:?}"))?;
                }
            }
            Phase::WatchdogRevert => {}
        }
        Ok((b.snapshot(), phase == Phase::WatchdogRevert))
    }

    /// What must hold after the phase's boot (and any recovery): the status and kernel.
    fn expect(&self, phase: Phase, b: &mut Board) -> Result<(), String> {
        let st = b.status().map(|s| s.state);
        let (want, kernel) = match phase {
            Phase::Install => (State::Trial, &self.new),
            Phase::Confirm => (State::Confirmed, &self.new),
            Phase::Revert | Phase::WatchdogRevert => (State::Reverted, &self.old),
        };
        if phase == Phase::WatchdogRevert && st == Some(State::Trial) {
            // Power failed before the revert was journaled: the reset that follows is a
            // power-on reset, not a watchdog one, so the trial simply continues.
            return if b.kernel_is(&self.new) {
                Ok(())
            } else {
                Err(String::from(
                    "watchdog: trial status but not the new kernel",
                ))
            };
        }
        if st != Some(want) {
            return Err(format!("{}: status {st:?}, want {want:?}", phase.name()));
        }
        if !b.kernel_is(kernel) {
            return Err(format!(
                "{}: kernel slot is not the expected kernel",
                phase.name()
            ));
        }
        if phase == Phase::Confirm && b.floor() != self.counter {
            return Err(format!(
                "confirm: floor {} want {}",
                b.floor(),
                self.counter
            ));
        }
        Ok(())
    }

    /// Invariant after any successful boot: the kernel is whole (old or new), matching the status.
    pub fn consistent(&self, b: &mut Board, d: &BootDecision) -> Result<(), String> {
        let st = b.status().map(|s| s.state);
        let new = matches!(st, Some(State::Trial | State::Confirmed));
        let kernel = if new { &self.new } else { &self.old };
        if !b.kernel_is(kernel) {
            return Err(format!(
                "status {st:?} but the kernel slot holds something else"
            ));
        }
        if d.trial != (st == Some(State::Trial)) {
            return Err(format!("decision trial={} with status {st:?}", d.trial));
        }
        Ok(())
    }
}

/// Totals of a campaign.
#[derive(Clone, Debug, Default)]
pub struct CampaignReport {
    pub cuts: u64,
    pub recovered: u64,
    /// (phase, cuts, recovered, operations in the phase's boot)
    pub by_phase: Vec<(String, u64, u64, u64)>,
    pub failures: Vec<String>,
}

/// A cut before every program/erase of each phase's boot and a torn cut inside every one,
/// `stride` > 1 to sample every stride-th operation.
pub fn exhaustive(sc: &Scenario, stride: u64, seed: u64) -> CampaignReport {
    let mut rep = CampaignReport::default();
    for phase in Phase::ALL {
        let (snap, watchdog) = match sc.before(phase, seed) {
            Ok(s) => s,
            Err(e) => {
                rep.failures.push(e);
                continue;
            }
        };
        let mut clean = sc.board(&snap, seed);
        let ops0 = clean.sim.power.ops();
        let ok = clean.boot(watchdog);
        let total = clean.sim.power.ops() - ops0;
        if let Err(e) = ok
            .map_err(|e| format!("{e:?}"))
            .and_then(|_| sc.expect(phase, &mut clean))
        {
            rep.failures
                .push(format!("{} without cuts: {e}", phase.name()));
            continue;
        }
        let (mut cuts, mut recovered) = (0, 0);
        let mut n = 0;
        while n <= total {
            for torn in [false, true] {
                if torn && n == 0 {
                    continue;
                }
                cuts += 1;
                let mut b = sc.board(&snap, seed ^ n);
                if torn {
                    b.sim.power.cut_inside(n);
                } else {
                    b.sim.power.cut_after(n);
                }
                let first = b.boot(watchdog);
                let res = match first {
                    Ok(d) if b.sim.power.is_on() => Ok(d),
                    _ => b.boot_until_ok(4).map_err(|e| format!("{e:?}")),
                };
                let verdict = res.and_then(|d| {
                    sc.consistent(&mut b, &d)?;
                    sc.expect(phase, &mut b)
                });
                match verdict {
                    Ok(()) => recovered += 1,
                    Err(e) => rep.failures.push(format!(
                        "{} cut {} op {n}: {e}",
                        phase.name(),
                        if torn { "inside" } else { "before" }
                    )),
                }
            }
            n += stride;
        }
        rep.cuts += cuts;
        rep.recovered += recovered;
        rep.by_phase
            .push((String::from(phase.name()), cuts, recovered, total));
    }
    rep
}

/// `runs` whole updates (install, trial boots, confirm or not) with random cuts (before or inside
/// operations, up to `max_cuts` per run) at random points; after every successful boot the kernel
/// must be whole and match the status, and each run must end confirmed (new kernel) or
/// reverted (old kernel) as its script says.
pub fn random(sc: &Scenario, runs: u64, max_cuts: u32, seed: u64) -> CampaignReport {
    let mut rep = CampaignReport::default();
    let (snap, _) = match sc.before(Phase::Install, seed) {
        Ok(s) => s,
        Err(e) => {
            rep.failures.push(e);
            return rep;
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for run in 0..runs {
        let confirm_it = rng.gen_bool(0.5);
        let mut b = sc.board(&snap, seed ^ run);
        let mut cuts_left = rng.gen_range(1..=max_cuts);
        let mut cuts_made = 0u64;
        let mut confirmed_written = false;
        let mut verdict = Err(String::from("did not finish"));
        for _ in 0..40 {
            if cuts_left > 0 && rng.gen_bool(0.7) {
                let n = rng.gen_range(0..120);
                if rng.gen_bool(0.5) {
                    b.sim.power.cut_inside(n.max(1));
                } else {
                    b.sim.power.cut_after(n);
                }
                cuts_left -= 1;
            }
            let r = b.boot(false);
            let on = b.sim.power.is_on();
            let _ = b.sim.power_cycle();
            if !on {
                cuts_made += 1;
                continue;
            }
            let d = match r {
                Ok(d) => d,
                Err(e) => {
                    verdict = Err(format!("boot error with power on: {e:?}"));
                    break;
                }
            };
            if let Err(e) = sc.consistent(&mut b, &d) {
                verdict = Err(e);
                break;
            }
            let st = b.status().map(|s| s.state);
            if d.trial && confirm_it && !confirmed_written {
                b.request(confirm(2, sc.hash()));
                confirmed_written = true;
            }
            let want = if confirm_it {
                State::Confirmed
            } else {
                State::Reverted
            };
            if st == Some(want) && cuts_left == 0 {
                verdict = if want == State::Confirmed && b.floor() != sc.counter {
                    Err(String::from("confirmed without raising the floor"))
                } else {
                    Ok(())
                };
                break;
            }
            if matches!(st, Some(State::Confirmed | State::Reverted)) && st != Some(want) {
                verdict = Err(format!("ended {st:?}, want {want:?}"));
                break;
            }
        }
        rep.cuts += cuts_made;
        match verdict {
            Ok(()) => rep.recovered += cuts_made,
            Err(e) => rep.failures.push(format!("random run {run}: {e}")),
        }
    }
    rep.by_phase
        .push((String::from("random"), rep.cuts, rep.recovered, 0));
    rep
}

/// Totals of [`qspi_absent`].
#[derive(Clone, Debug, Default)]
pub struct QspiAbsentReport {
    /// Start-ups tried: one after each program/erase operation of the phase's boot.
    pub points: u64,
    /// Of those, the kernel slot was whole and the firmware would jump into it.
    pub jumped: u64,
    /// The state page said the slot is being written: the firmware waits.
    pub waited: u64,
    /// Start-ups whose kernel slot held neither kernel whole (where a bootloader that jumps
    /// whenever QSPI is absent would run half of two kernels).
    pub half_written: u64,
    /// The boot with the external flash back ended as the phase should.
    pub recovered: u64,
    pub failures: Vec<String>,
}

/// The external flash does not answer at start-up after each program/erase operation of
/// `phase`'s boot (every `stride`-th): power is cut there, the next start-up finds no QSPI
/// chip ([`boot_core::boot_without_qspi`], what the firmware then runs), and the one after has
/// it back. Without the chip the kernel slot may be entered only when it holds a whole kernel
/// (old or new); with the chip back the update must end as without the failure.
pub fn qspi_absent(sc: &Scenario, phase: Phase, stride: u64, seed: u64) -> QspiAbsentReport {
    let mut rep = QspiAbsentReport::default();
    let (snap, watchdog) = match sc.before(phase, seed) {
        Ok(s) => s,
        Err(e) => {
            rep.failures.push(e);
            return rep;
        }
    };
    let mut clean = sc.board(&snap, seed);
    let ops0 = clean.sim.power.ops();
    let _ = clean.boot(watchdog);
    let total = clean.sim.power.ops() - ops0;
    let mut n = 0;
    while n <= total {
        rep.points += 1;
        let mut b = sc.board(&snap, seed ^ n);
        b.sim.power.cut_after(n);
        let _ = b.boot(watchdog);
        let _ = b.sim.power_cycle();
        let whole = b.kernel_is(&sc.old) || b.kernel_is(&sc.new);
        rep.half_written += u64::from(!whole);
        let verdict = match boot_core::boot_without_qspi(&sc.layout, &mut b.sim.internal) {
            Ok(Some(d)) if whole && (!d.trial || b.kernel_is(&sc.new)) => {
                rep.jumped += 1;
                Ok(())
            }
            Ok(Some(d)) => Err(format!(
                "jumps (trial {}) into a half-written slot",
                d.trial
            )),
            Ok(None) => {
                rep.waited += 1;
                Ok(())
            }
            Err(e) => Err(format!("{e:?}")),
        }
        .and_then(|()| {
            // The chip is back (after a power-on reset).
            let d = b.boot_until_ok(4).map_err(|e| format!("{e:?}"))?;
            sc.consistent(&mut b, &d)?;
            sc.expect(phase, &mut b)
        });
        match verdict {
            Ok(()) => rep.recovered += 1,
            Err(e) => rep.failures.push(format!("{} op {n}: {e}", phase.name())),
        }
        n += stride;
    }
    rep
}

/// Result of [`install_time`].
#[derive(Clone, Copy, Debug)]
pub struct InstallTiming {
    /// Simulated seconds from reset to the jump decision (validate, back up, install, verify).
    pub simulated_s: f64,
    /// The kernel slot holds the new kernel and the decision is a trial boot.
    pub installed: bool,
}

/// Installs a `bytes`-long kernel over a different old kernel of the same size on a SimBoard
/// with the [`BENCH`] layout (QSPI in high-performance mode) and times the boot.
pub fn install_time(bytes: usize) -> Result<InstallTiming, BootError> {
    let mut b = Board::new(BENCH, 1);
    let old = kernel_bytes(bytes, 1);
    let new = kernel_bytes(bytes, 2);
    let image = make_image(&new, 0, 1);
    b.provision(&old);
    b.stage(&image);
    b.request(boot_request(1, image_hash(&image), image.len() as u32));
    let t0 = b.sim.clock.now_us();
    let d = b.boot(false)?;
    Ok(InstallTiming {
        simulated_s: (b.sim.clock.now_us() - t0) as f64 / 1e6,
        installed: d.trial && b.kernel_is(&new),
    })
}

/// A fixed P-256 signing key for simulated images (never a real key).
pub const SIM_SIGNING_KEY: [u8; 32] = [
    0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a, 0x79, 0x88, 0x97, 0xa6, 0xb5, 0xc4, 0xd3, 0xe2, 0xf1, 0x10,
    0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba, 0xcb, 0xdc, 0xed, 0xfe, 0x0f, 0x01,
];

/// The raw x‖y public key of `secret`.
pub fn sim_public_key(secret: &[u8; 32]) -> [u8; 64] {
    ota_image::build::raw_public_key(&sim_signing_key(secret))
}

fn sim_signing_key(secret: &[u8; 32]) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(secret).expect("a valid scalar")
}

/// Options of [`sign_mcuboot`].
#[derive(Clone, Copy, Debug)]
pub struct SimSign {
    pub load_addr: u32,
    pub security_counter: Option<u32>,
    pub header_size: u16,
}

impl Default for SimSign {
    fn default() -> Self {
        SimSign {
            load_addr: 0,
            security_counter: Some(1),
            header_size: 0x20,
        }
    }
}

/// An MCUboot/imgtool-format image for the simulations, built by ota-image's builder: version
/// 1.0.0, zero header padding, protected SEC_CNT, then SHA256, KEYHASH and a DER ECDSA P-256
/// signature, deterministic (RFC 6979).
pub fn sign_mcuboot(payload: &[u8], secret: &[u8; 32], opts: &SimSign) -> Vec<u8> {
    ota_image::build::ImageBuilder {
        version: ota_image::ImageVersion {
            major: 1,
            ..ota_image::ImageVersion::default()
        },
        header_size: opts.header_size.max(32),
        header_fill: 0,
        load_addr: opts.load_addr,
        security_counter: opts.security_counter,
        ..ota_image::build::ImageBuilder::default()
    }
    .sign(payload, &sim_signing_key(secret))
    .expect("a simulated payload fits an image")
}

/// The SHA-256 TLV value of an image made by [`sign_mcuboot`] (for boot requests).
pub fn mcuboot_hash(img: &[u8]) -> [u8; 32] {
    if img.len() < 32 {
        return [0; 32];
    }
    let mut head = [0u8; 32];
    head.copy_from_slice(&img[..32]);
    let h = ota_image::ImageHeader::decode(&head);
    let (hdr, prot) = (
        usize::from(h.header_size),
        usize::from(h.protected_tlv_size),
    );
    let len = h.image_size as usize;
    Sha256::digest(&img[..(hdr + len + prot).min(img.len())]).into()
}
