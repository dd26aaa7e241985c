//! Figures for `tock-ota bench boot`: the bootloader's cost under emulation.
//!
//! - Boot with nothing pending: instructions from reset to the kernel jump, simulated time,
//!   peak stack. Measured twice: on a fresh device (empty journal and request sector, the best
//!   case) and on a device after a confirmed update (the journal holds the install's records,
//!   the request sector a boot request and a confirm), the state a device spends its life in;
//!   and on a long-lived device, the most work an idle boot has (the journal ring has wrapped
//!   and its newest sector is full; the request sector holds 62 records, two short of the erase
//!   the kernel does when it is full).
//! - Verify of a staged image of N bytes: a boot that hashes the whole image and checks its
//!   signature, then refuses it (valid hash, wrong signature) costs the verify plus the
//!   nothing-pending work; the difference is the verify. Where the firmware refuses a size
//!   before hashing (an image larger than the kernel slot), the figure is extrapolated linearly
//!   from two measured sizes and marked so.
//! - The whole install of a valid image: reset to the jump into the new kernel.

pub mod cuts;

use crate::rig::{kernel_image, Rig, NEW_KERNEL_SP, OLD_KERNEL_SP};
use crate::{EmuError, Exit, Firmware, RunReport, CPU_HZ};

/// How the bench makes staged images the firmware accepts or refuses.
pub trait ImageMaker {
    /// A signed image whose payload is `payload`; returns the image and its hash TLV value.
    fn signed(&self, payload: &[u8]) -> (Vec<u8>, [u8; 32]);
    /// The same image with its signature broken (the hash still matches).
    fn bad_signature(&self, payload: &[u8]) -> (Vec<u8>, [u8; 32]);
}

/// One measured (or extrapolated) phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Phase {
    pub instructions: u64,
    /// CPU time at the assumed CPI.
    pub cpu_s: f64,
    /// Simulated time: CPU at the assumed CPI plus flash stalls and transfers.
    pub simulated_s: f64,
    /// Not measured directly (see the module docs).
    pub extrapolated: bool,
}

/// All figures of the report.
#[derive(Clone, Debug)]
pub struct BootFigures {
    pub cpi: f64,
    pub cpu_hz: f64,
    pub firmware_flash_bytes: usize,
    pub nothing_pending: Phase,
    /// Nothing pending, after an install and its confirm (`None` if that could not be set up;
    /// `missing` says why).
    pub after_update: Option<Phase>,
    /// Nothing pending on a long-lived device (see the module docs).
    pub long_lived: Option<Phase>,
    pub peak_stack_bytes: u32,
    /// (image payload bytes, verify phase)
    pub verify: Vec<(usize, Phase)>,
    /// (image payload bytes, whole install from reset to the new kernel)
    pub install: Vec<(usize, Phase)>,
    /// Phases that could not be measured, and why.
    pub missing: Vec<String>,
}

fn phase(r: &RunReport, cpi: f64) -> Phase {
    let insns = r.instructions_to_jump.unwrap_or(r.instructions);
    Phase {
        instructions: insns,
        cpu_s: insns as f64 * cpi / CPU_HZ,
        simulated_s: r.simulated_us as f64 / 1e6,
        extrapolated: false,
    }
}

fn minus(a: Phase, b: Phase) -> Phase {
    Phase {
        instructions: a.instructions.saturating_sub(b.instructions),
        cpu_s: (a.cpu_s - b.cpu_s).max(0.0),
        simulated_s: (a.simulated_s - b.simulated_s).max(0.0),
        extrapolated: a.extrapolated || b.extrapolated,
    }
}

fn expect_jump(r: &RunReport, what: &str) -> Result<(), String> {
    match r.exit {
        Exit::KernelJump { .. } => Ok(()),
        other => Err(format!("{what}: expected the kernel jump, got {other:?}")),
    }
}

fn emu(what: &str) -> impl Fn(EmuError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A boot that hashes and refuses a badly signed image of `size` payload bytes.
fn refused_boot(
    fw: &Firmware,
    maker: &dyn ImageMaker,
    size: usize,
    cpi: f64,
) -> Result<(Phase, u32), String> {
    let payload = kernel_image(0x8000, NEW_KERNEL_SP, size, 2);
    let (image, hash) = maker.bad_signature(&payload);
    let mut rig = Rig::new(fw.clone(), 2, OLD_KERNEL_LEN);
    rig.stage(&image);
    rig.request_boot(hash, image.len() as u32);
    let r = rig
        .boot(true)
        .map_err(emu("boot with a badly signed image"))?;
    expect_jump(&r, "boot with a badly signed image")?;
    if !rig.kernel_is(&kernel_image(0x8000, OLD_KERNEL_SP, OLD_KERNEL_LEN, 1)) {
        return Err(format!(
            "a badly signed {size}-byte image changed the kernel slot"
        ));
    }
    Ok((phase(&r, cpi), r.peak_stack_bytes))
}

/// A boot that installs a valid image of `size` payload bytes and jumps to it; also returns
/// the rig and the image hash for the boots after it.
fn install_boot(
    fw: &Firmware,
    maker: &dyn ImageMaker,
    size: usize,
    cpi: f64,
) -> Result<(Phase, u32, Rig, [u8; 32]), String> {
    let payload = kernel_image(0x8000, NEW_KERNEL_SP, size, 3);
    let (image, hash) = maker.signed(&payload);
    let mut rig = Rig::new(fw.clone(), 3, OLD_KERNEL_LEN);
    rig.stage(&image);
    rig.request_boot(hash, image.len() as u32);
    let r = rig.boot(true).map_err(emu("install boot"))?;
    match r.exit {
        Exit::KernelJump { sp, .. } if sp == NEW_KERNEL_SP => {
            Ok((phase(&r, cpi), r.peak_stack_bytes, rig, hash))
        }
        other => Err(format!(
            "install of {size} bytes ended with {other:?}, not in the new kernel"
        )),
    }
}

/// On `rig` just after an install of the image with `hash`: the kernel confirms and one boot
/// records the confirm.
fn confirm_update(rig: &mut Rig, hash: [u8; 32]) -> Result<(), String> {
    rig.confirm(hash);
    let r = rig.boot(true).map_err(emu("boot that confirms"))?;
    expect_jump(&r, "boot that confirms")?;
    if rig.status().map(|s| s.state) != Some(boot_core::State::Confirmed) {
        return Err(format!(
            "after the confirm the status is {:?}, not Confirmed",
            rig.status()
        ));
    }
    Ok(())
}

/// A device after a confirmed update of `size` payload bytes, ready for a boot with nothing
/// pending.
pub fn updated_rig(fw: &Firmware, maker: &dyn ImageMaker, size: usize) -> Result<Rig, String> {
    let (_, _, mut rig, hash) = install_boot(fw, maker, size, crate::CPI_ASSUMED)?;
    confirm_update(&mut rig, hash)?;
    Ok(rig)
}

/// On `rig` just after an install of the image with `hash`: the kernel confirms, one boot
/// records the confirm, and the boot after that, with nothing pending, is measured.
fn after_update_boot(rig: &mut Rig, hash: [u8; 32], cpi: f64) -> Result<(Phase, u32), String> {
    confirm_update(rig, hash)?;
    let r = rig
        .boot(true)
        .map_err(emu("boot with nothing pending after an update"))?;
    match r.exit {
        Exit::KernelJump { sp, .. } if sp == NEW_KERNEL_SP => {
            Ok((phase(&r, cpi), r.peak_stack_bytes))
        }
        other => Err(format!(
            "boot after the confirmed update ended with {other:?}, not in the new kernel"
        )),
    }
}

/// A device that has taken many updates, written as the kernel and the bootloader leave it: 31
/// boot requests each followed by its confirm in the request sector (62 of its 64 slots), and a
/// journal whose ring has come round, with the newest record, `Confirmed` for the last request,
/// in the last slot of its sector. Nothing is pending.
pub fn long_lived_rig(fw: &Firmware) -> Rig {
    use boot_core::{JournalRecord, Reason, State, PAGE};
    let mut rig = Rig::new(fw.clone(), 4, OLD_KERNEL_LEN);
    let hash = |i: u32| [i as u8 ^ 0x5A; 32];
    let updates = 31;
    for i in 0..updates {
        rig.request_boot(hash(i), 4096);
        rig.confirm(hash(i));
    }
    // Boot request sequences are 1, 3, 5, ...: the last one is the handled one.
    let last_request = 2 * updates - 1;
    let journal = rig.layout.journal;
    let sectors = journal.len / PAGE;
    let slots = PAGE as usize / boot_core::journal::RECORD_LEN;
    let newest_sector = sectors / 2;
    let mut bytes = vec![0xFFu8; journal.len as usize];
    for ring_pos in 0..sectors {
        // The oldest sector is the one after the newest.
        let sector = (newest_sector + 1 + ring_pos) % sectors;
        for slot in 0..slots {
            let sequence = 1 + ring_pos * slots as u32 + slot as u32;
            let newest = ring_pos == sectors - 1 && slot == slots - 1;
            let rec = JournalRecord {
                sequence,
                state: State::Confirmed,
                reason: Reason::None,
                attempts: 0,
                request_sequence: if newest { last_request } else { sequence },
                image_hash: if newest {
                    hash(updates - 1)
                } else {
                    [0x11; 32]
                },
                payload_len: 4096,
                payload_offset: 0x20,
                installed: 0,
                backed_up: 0,
                security_counter: u32::MAX,
            };
            let at = (sector * PAGE) as usize + slot * boot_core::journal::RECORD_LEN;
            bytes[at..at + boot_core::journal::RECORD_LEN].copy_from_slice(&rec.encode());
        }
    }
    rig.board.chip().load(journal.start, &bytes);
    rig
}

/// The idle boot of [`long_lived_rig`]: it must run the old kernel and write nothing.
fn long_lived_boot(fw: &Firmware, cpi: f64) -> Result<(Phase, u32), String> {
    let mut rig = long_lived_rig(fw);
    let before = rig.board.chip().raw().to_vec();
    let r = rig
        .boot(true)
        .map_err(emu("boot with nothing pending on a long-lived device"))?;
    match r.exit {
        Exit::KernelJump { sp, .. } if sp == OLD_KERNEL_SP => {}
        other => {
            return Err(format!(
                "the long-lived device's idle boot ended with {other:?}, not in its kernel"
            ))
        }
    }
    if rig.board.chip().raw() != &before[..] {
        return Err("the long-lived device's idle boot wrote to the QSPI flash".into());
    }
    Ok((phase(&r, cpi), r.peak_stack_bytes))
}

/// The size of the kernel already in the slot: the stock DK kernel's.
const OLD_KERNEL_LEN: usize = 176 * 1024;

/// Runs every scenario of the report.
pub fn boot_figures(
    fw: &Firmware,
    maker: &dyn ImageMaker,
    verify_sizes: &[usize],
    install_sizes: &[usize],
) -> Result<BootFigures, String> {
    let cpi = crate::CPI_ASSUMED;
    let mut rig = Rig::new(fw.clone(), 1, OLD_KERNEL_LEN);
    let r = rig.boot(true).map_err(emu("boot with nothing pending"))?;
    expect_jump(&r, "boot with nothing pending")?;
    let nothing = phase(&r, cpi);
    let mut peak = r.peak_stack_bytes;
    let mut missing = Vec::new();

    let mut measured: Vec<(usize, Phase)> = Vec::new();
    let mut verify = Vec::new();
    for &size in verify_sizes {
        match refused_boot(fw, maker, size, cpi) {
            Ok((total, stack)) => {
                peak = peak.max(stack);
                let p = minus(total, nothing);
                // Far cheaper than hashing at the measured rate: refused on size before hashing.
                let hashed = measured.last().is_none_or(|&(s, m)| {
                    p.instructions * s as u64 >= m.instructions * size as u64 / 2
                });
                if hashed {
                    measured.push((size, p));
                    verify.push((size, p));
                } else if let Some(e) = extrapolate(&measured, size) {
                    verify.push((size, e));
                } else {
                    missing.push(format!("verify of {size} bytes: refused before hashing"));
                }
            }
            Err(e) => missing.push(e),
        }
    }

    let mut install = Vec::new();
    let mut updated = None;
    for &size in install_sizes {
        match install_boot(fw, maker, size, cpi) {
            Ok((p, stack, rig, hash)) => {
                peak = peak.max(stack);
                install.push((size, p));
                updated.get_or_insert((rig, hash));
            }
            Err(e) => missing.push(e),
        }
    }
    if updated.is_none() {
        // No install row asked for (or it failed): the stock kernel size stands in.
        match install_boot(fw, maker, OLD_KERNEL_LEN, cpi) {
            Ok((_, _, rig, hash)) => updated = Some((rig, hash)),
            Err(e) => missing.push(e),
        }
    }
    // A measured idle boot: its phase, its stack depth into the peak, or why it is missing.
    let mut idle = |run: Result<(Phase, u32), String>| match run {
        Ok((p, stack)) => {
            peak = peak.max(stack);
            Some(p)
        }
        Err(e) => {
            missing.push(e);
            None
        }
    };
    let after_update =
        updated.and_then(|(mut rig, hash)| idle(after_update_boot(&mut rig, hash, cpi)));
    let long_lived = idle(long_lived_boot(fw, cpi));

    Ok(BootFigures {
        cpi,
        cpu_hz: CPU_HZ,
        firmware_flash_bytes: fw.flash_bytes(),
        nothing_pending: nothing,
        after_update,
        long_lived,
        peak_stack_bytes: peak,
        verify,
        install,
        missing,
    })
}

/// Instructions per function (largest first), and the call chain and depth at the deepest stack.
pub type Profile = (Vec<(String, u64)>, Option<(String, u32)>);

/// Instructions per function for one boot of `rig`, largest first, and the function running
/// at the deepest stack with that depth.
pub fn profile(rig: &mut Rig) -> Result<Profile, String> {
    let cfg = crate::BootConfig {
        profile: true,
        kernel_slot: rig.kernel_slot(),
        resetreas: rig.resetreas,
        gpregret: rig.gpregret,
        ..Default::default()
    };
    let clock = rig.board.clock.clone();
    let r = crate::run(
        &rig.fw,
        rig.board.qspi.port(),
        rig.board.internal.port(),
        &clock,
        &cfg,
    )
    .map_err(emu("profiled boot"))?;
    let mut v: Vec<_> = r.profile.into_iter().collect();
    v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    Ok((v, r.deepest_stack))
}

/// A linear fit through the two largest measured sizes, evaluated at `size`.
fn extrapolate(measured: &[(usize, Phase)], size: usize) -> Option<Phase> {
    let n = measured.len();
    if n < 2 {
        return None;
    }
    let (s0, p0) = measured[n - 2];
    let (s1, p1) = measured[n - 1];
    let k = (size as f64 - s0 as f64) / (s1 as f64 - s0 as f64);
    let lerp = |a: f64, b: f64| a + (b - a) * k;
    Some(Phase {
        instructions: lerp(p0.instructions as f64, p1.instructions as f64).round() as u64,
        cpu_s: lerp(p0.cpu_s, p1.cpu_s),
        simulated_s: lerp(p0.simulated_s, p1.simulated_s),
        extrapolated: true,
    })
}

/// Result of [`power_cut_campaign`].
#[derive(Clone, Debug, Default)]
pub struct CutCampaign {
    /// Program/erase operations of one uninterrupted install.
    pub operations: u64,
    /// Cuts tried (before and inside each operation).
    pub tried: u64,
    /// Cuts after which the next boots reached a whole kernel (old, or new as a trial).
    pub recovered: u64,
    /// What went wrong otherwise.
    pub failures: Vec<String>,
}

/// Cuts the power before, and inside, every program/erase operation of an install of a
/// `payload_len`-byte image by the real firmware (every `stride`-th operation; 0 picks a
/// stride for about 100 operations, always including the last), then boots
/// until a kernel runs and checks that the kernel slot holds the old or the new kernel whole.
pub fn power_cut_campaign(
    fw: &Firmware,
    maker: &dyn ImageMaker,
    payload_len: usize,
    stride: u64,
) -> CutCampaign {
    let old_len = 16 * 1024;
    let new = kernel_image(0x8000, NEW_KERNEL_SP, payload_len, 9);
    let old = kernel_image(0x8000, OLD_KERNEL_SP, old_len, 1);
    let (image, hash) = maker.signed(&new);
    let fresh = |seed| {
        let mut rig = Rig::new(fw.clone(), seed, old_len);
        rig.stage(&image);
        rig.request_boot(hash, image.len() as u32);
        rig
    };
    let mut out = CutCampaign::default();
    let mut rig = fresh(1);
    let ops0 = rig.board.power.ops();
    if let Err(e) = rig.boot(true) {
        out.failures.push(format!("uninterrupted install: {e}"));
        return out;
    }
    out.operations = rig.board.power.ops() - ops0;
    let stride = if stride == 0 {
        out.operations.div_ceil(100).max(1)
    } else {
        stride
    };
    let mut picks: Vec<u64> = (1..=out.operations).step_by(stride as usize).collect();
    if picks.last() != Some(&out.operations) {
        picks.push(out.operations);
    }
    for n in picks {
        for inside in [false, true] {
            out.tried += 1;
            let mut rig = fresh(1000 + n);
            if inside {
                rig.board.power.cut_inside(n);
            } else {
                rig.board.power.cut_after(n - 1);
            }
            match recover(&mut rig, &old, &new) {
                Ok(()) => out.recovered += 1,
                Err(e) => out.failures.push(format!(
                    "cut {} operation {n}: {e}",
                    if inside { "inside" } else { "before" }
                )),
            }
        }
    }
    out
}

/// Boots after a cut until a kernel runs (at most 6 boots); checks the kernel slot.
fn recover(rig: &mut Rig, old: &[u8], new: &[u8]) -> Result<(), String> {
    for _ in 0..6 {
        let r = rig.boot(true).map_err(|e| e.to_string())?;
        match r.exit {
            Exit::KernelJump { sp, .. } => {
                let whole = if sp == NEW_KERNEL_SP {
                    rig.kernel_is(new)
                } else {
                    sp == OLD_KERNEL_SP && rig.kernel_is(old)
                };
                return if whole {
                    Ok(())
                } else {
                    Err(format!("kernel slot is not a whole kernel (sp {sp:#x})"))
                };
            }
            Exit::PowerLost => rig.power_cycle(),
            Exit::SystemReset | Exit::WatchdogReset => {}
            Exit::Halted { pc } => return Err(format!("CPU parked at {pc:#x}")),
            Exit::Budget { pc } => return Err(format!("instruction budget spent at {pc:#x}")),
            Exit::Console => return Err("stopped on console output".into()),
        }
    }
    Err("no kernel within 6 boots".into())
}
