//! Exhaustive power cuts on the bootloader binary: for each phase of an update of a small
//! image (the install boot, the boot that records the kernel's confirm, the boot that reverts
//! an unconfirmed trial), the phase's boot is run once uninterrupted to list its flash
//! operations (NVMC word writes and page erases, QSPI page programs and erases), then once per
//! operation with the power cut before it starts and once with the power cut inside it (the
//! models tear it: some bits of a program, part of an erase). After each cut the board is
//! powered up and the bootloader booted again until it jumps to a kernel; the run recovers when
//! that kernel is whole (old or new, byte for byte) and is the one the journal names (new for
//! `Trial`/`Confirmed`, old otherwise), and the phase ends as it must (install: `Trial`,
//! confirm: `Confirmed`, revert: `Reverted`).

use std::collections::BTreeMap;

use boot_core::State;
use hw_models::OpKind;

use crate::bench::ImageMaker;
use crate::rig::{kernel_image, Rig, NEW_KERNEL_SP, OLD_KERNEL_SP};
use crate::{Exit, Firmware};

/// The three phases, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Install,
    Confirm,
    Revert,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Install, Phase::Confirm, Phase::Revert];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Install => "install",
            Phase::Confirm => "confirm",
            Phase::Revert => "revert",
        }
    }

    /// The status the phase ends in, and whether the new kernel then runs.
    fn outcome(self) -> (State, bool) {
        match self {
            Phase::Install => (State::Trial, true),
            Phase::Confirm => (State::Confirmed, true),
            Phase::Revert => (State::Reverted, false),
        }
    }
}

/// Cuts of one kind of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCuts {
    /// Operations of this kind over the phases' uninterrupted boots.
    pub operations: u64,
    /// Cuts before an operation of this kind, and inside one.
    pub before: u64,
    pub inside: u64,
}

/// One phase's figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseCuts {
    pub phase: Phase,
    /// Flash operations of the phase's uninterrupted boot.
    pub operations: u64,
    pub cuts: u64,
    pub recovered: u64,
}

/// Result of [`exhaustive`].
#[derive(Clone, Debug, Default)]
pub struct Campaign {
    /// Payload bytes of the old kernel and of the new one.
    pub old_len: usize,
    pub new_len: usize,
    pub cuts: u64,
    pub recovered: u64,
    /// Flash operations of the three phases' uninterrupted boots.
    pub flash_operations: u64,
    pub by_kind: BTreeMap<OpKind, KindCuts>,
    pub by_phase: Vec<PhaseCuts>,
    /// Boots run in all (cut boots and recovery boots).
    pub boots: u64,
    pub failures: Vec<String>,
}

/// The board's non-volatile state before a phase's boot.
#[derive(Clone)]
struct Snapshot {
    nvmc: Vec<u8>,
    chip: Vec<u8>,
    resetreas: u32,
    gpregret: u32,
}

fn snapshot(rig: &mut Rig) -> Snapshot {
    Snapshot {
        nvmc: rig.board.nvmc().raw().to_vec(),
        chip: rig.board.chip().raw().to_vec(),
        resetreas: rig.resetreas,
        gpregret: rig.gpregret,
    }
}

fn restore(fw: &Firmware, snap: &Snapshot, seed: u64) -> Rig {
    let mut rig = Rig::new(fw.clone(), seed, 0);
    rig.board.nvmc().load(0, &snap.nvmc);
    rig.board.chip().load(0, &snap.chip);
    rig.resetreas = snap.resetreas;
    rig.gpregret = snap.gpregret;
    rig
}

/// The update's two kernels and the board states before each phase.
struct Update {
    old: Vec<u8>,
    new: Vec<u8>,
    before: Vec<(Phase, Snapshot)>,
}

/// Boots once, expecting a jump into a kernel.
fn boot_to_kernel(rig: &mut Rig, what: &str) -> Result<u32, String> {
    let r = rig.boot(true).map_err(|e| format!("{what}: {e}"))?;
    match r.exit {
        Exit::KernelJump { sp, .. } => Ok(sp),
        other => Err(format!("{what}: {other:?}")),
    }
}

fn prepare(
    fw: &Firmware,
    maker: &dyn ImageMaker,
    old_len: usize,
    new_len: usize,
) -> Result<Update, String> {
    let old = kernel_image(0x8000, OLD_KERNEL_SP, old_len, 1);
    let new = kernel_image(0x8000, NEW_KERNEL_SP, new_len, 9);
    let (image, hash) = maker.signed(&new);
    let mut rig = Rig::new(fw.clone(), 1, old_len);
    rig.stage(&image);
    rig.request_boot(hash, image.len() as u32);
    let mut before = vec![(Phase::Install, snapshot(&mut rig))];
    boot_to_kernel(&mut rig, "install")?;
    let installed = snapshot(&mut rig);

    // Confirm: the trial kernel appends its confirm; the next boot records it.
    rig.confirm(hash);
    before.push((Phase::Confirm, snapshot(&mut rig)));

    // Revert: trial boots without a confirm until one reverts; the state before that boot.
    let mut rig = restore(fw, &installed, 2);
    for _ in 0..8 {
        let snap = snapshot(&mut rig);
        boot_to_kernel(&mut rig, "trial boot")?;
        if rig.status().map(|s| s.state) == Some(State::Reverted) {
            before.push((Phase::Revert, snap));
            return Ok(Update { old, new, before });
        }
    }
    Err("no boot reverted the unconfirmed trial".into())
}

/// Boots after a cut until a kernel runs (at most 6 boots) and checks it.
fn recover(rig: &mut Rig, up: &Update, phase: Phase, boots: &mut u64) -> Result<(), String> {
    for _ in 0..6 {
        *boots += 1;
        let r = rig.boot(true).map_err(|e| e.to_string())?;
        match r.exit {
            Exit::KernelJump { sp, .. } => return check(rig, up, phase, sp),
            Exit::PowerLost => rig.power_cycle(),
            Exit::SystemReset | Exit::WatchdogReset => {}
            Exit::Halted { pc } => return Err(format!("CPU parked at {pc:#x}")),
            Exit::Budget { pc } => return Err(format!("instruction budget spent at {pc:#x}")),
            Exit::Console => return Err("stopped on console output".into()),
        }
    }
    Err("no kernel within 6 boots".into())
}

/// The jumped-to kernel is whole and the one the journal names, and the phase ended as it must.
fn check(rig: &mut Rig, up: &Update, phase: Phase, sp: u32) -> Result<(), String> {
    let state = rig.status().map(|s| s.state);
    let journal_new = matches!(state, Some(State::Trial | State::Confirmed));
    let (kernel, want_sp) = if journal_new {
        (&up.new, NEW_KERNEL_SP)
    } else {
        (&up.old, OLD_KERNEL_SP)
    };
    if sp != want_sp {
        return Err(format!(
            "jumped with sp {sp:#x} while the status is {state:?}"
        ));
    }
    if !rig.kernel_is(kernel) {
        return Err(format!(
            "status {state:?} but the kernel slot is not that kernel whole"
        ));
    }
    let (want, new) = phase.outcome();
    if state != Some(want) || journal_new != new {
        return Err(format!("ended with status {state:?}, want {want:?}"));
    }
    Ok(())
}

/// One cut: before (or inside) the `n`-th operation of `phase`'s boot, then recovery.
/// Returns the verdict and the boots it took.
fn cut_run(
    fw: &Firmware,
    snap: &Snapshot,
    up: &Update,
    phase: Phase,
    n: u64,
    inside: bool,
) -> (Result<(), String>, u64) {
    let mut rig = restore(fw, snap, 1000 + 2 * n + u64::from(inside));
    if inside {
        rig.board.power.cut_inside(n);
    } else {
        rig.board.power.cut_after(n - 1);
    }
    let mut boots = 1;
    let result = match rig.boot(true) {
        Ok(r) if r.exit == Exit::PowerLost => {
            rig.power_cycle();
            recover(&mut rig, up, phase, &mut boots)
        }
        Ok(r) => Err(format!("the cut was never reached: {:?}", r.exit)),
        Err(e) => Err(e.to_string()),
    };
    (result, boots)
}

/// `f` over `jobs` on `threads` threads; results in job order.
fn run_parallel<J: Sync, R: Send>(
    jobs: &[J],
    threads: usize,
    f: impl Fn(&J) -> R + Sync,
) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break };
                        mine.push((i, f(job)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a campaign worker panicked"))
            .collect()
    });
    done.sort_by_key(|&(i, _)| i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Cuts before and inside every `stride`-th flash operation (1: every one; the last operation
/// of each phase is always included) of the install, confirm and revert boots of an update
/// from an `old_len`-byte kernel to a `new_len`-byte one, on `threads` threads.
pub fn exhaustive(
    fw: &Firmware,
    maker: &dyn ImageMaker,
    old_len: usize,
    new_len: usize,
    stride: u64,
    threads: usize,
) -> Campaign {
    let mut out = Campaign {
        old_len,
        new_len,
        ..Campaign::default()
    };
    let up = match prepare(fw, maker, old_len, new_len) {
        Ok(up) => up,
        Err(e) => {
            out.failures.push(format!("setting up the update: {e}"));
            return out;
        }
    };
    for (phase, snap) in &up.before {
        let phase = *phase;
        // The uninterrupted boot: its operations, in order, and its outcome.
        let mut clean = restore(fw, snap, 3);
        clean.board.power.log_ops();
        out.boots += 1;
        let ok = boot_to_kernel(&mut clean, "uninterrupted")
            .and_then(|sp| check(&mut clean, &up, phase, sp));
        if let Err(e) = ok {
            out.failures
                .push(format!("{} without cuts: {e}", phase.name()));
            continue;
        }
        let ops = clean.board.power.op_log();
        out.flash_operations += ops.len() as u64;
        for &k in &ops {
            out.by_kind.entry(k).or_default().operations += 1;
        }
        let total = ops.len() as u64;
        let mut picks: Vec<u64> = (1..=total).step_by(stride.max(1) as usize).collect();
        if total > 0 && picks.last() != Some(&total) {
            picks.push(total);
        }
        let jobs: Vec<(u64, bool)> = picks
            .iter()
            .flat_map(|&n| [(n, false), (n, true)])
            .collect();
        let results = run_parallel(&jobs, threads, |&(n, inside)| {
            cut_run(fw, snap, &up, phase, n, inside)
        });
        let mut row = PhaseCuts {
            phase,
            operations: total,
            cuts: 0,
            recovered: 0,
        };
        for (&(n, inside), (result, boots)) in jobs.iter().zip(results) {
            let kind = ops[n as usize - 1];
            row.cuts += 1;
            out.boots += boots;
            let counts = out.by_kind.entry(kind).or_default();
            if inside {
                counts.inside += 1;
            } else {
                counts.before += 1;
            }
            match result {
                Ok(()) => row.recovered += 1,
                Err(e) => out.failures.push(format!(
                    "{} cut {} operation {n} ({}): {e}",
                    phase.name(),
                    if inside { "inside" } else { "before" },
                    kind.name()
                )),
            }
        }
        out.cuts += row.cuts;
        out.recovered += row.recovered;
        out.by_phase.push(row);
    }
    out
}
