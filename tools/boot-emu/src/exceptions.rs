//! Exception entry and return for the Cortex-M4 (ARMv7-M ARM B1.5.6 "Exception entry
//! behavior", B1.5.8 "Exception return behavior"), done by the harness because Unicorn does
//! neither: its M-profile core reports SVC (`EXCP_SWI`) and EXC_RETURN branches
//! (`EXCP_EXCEPTION_EXIT`) to the interrupt hook instead of calling QEMU's
//! `arm_v7m_cpu_do_interrupt`, and its NVIC is a stub.
//!
//! Entry pushes the basic frame (R0–R3, R12, LR, return address, xPSR) on the stack in use,
//! 8-byte aligned (CCR.STKALIGN, with xPSR bit 9 recording the adjustment), sets IPSR (Unicorn's
//! own banking then selects MSP), LR to EXC_RETURN and PC to the vector at VTOR. Return pops the
//! frame from the stack EXC_RETURN names, restores xPSR (IPSR, IT state, flags), CONTROL.SPSEL
//! from EXC_RETURN, and re-checks pending interrupts. The extended (FP) frame is refused: the
//! Tock kernel and apps here are soft-float, so CONTROL.FPCA is never set.
//!
//! Unicorn's stack-pointer banking follows IPSR and CONTROL.SPSEL but honours an SPSEL write
//! only in privileged thread mode; return therefore clears nPRIV, enters thread mode, sets SPSEL,
//! then restores nPRIV, each through Unicorn's own MSR paths.

use unicorn_engine::{RegisterARM, Unicorn};

/// A fault of the exception machinery (a lockup or UsageFault on hardware).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExceptionFault(pub String);

fn rd<D>(uc: &Unicorn<'_, D>, r: RegisterARM) -> u32 {
    uc.reg_read(r).unwrap_or(0) as u32
}

fn wr<D>(uc: &mut Unicorn<'_, D>, r: RegisterARM, v: u32) -> Result<(), ExceptionFault> {
    uc.reg_write(r, u64::from(v))
        .map_err(|e| ExceptionFault(format!("register write {r:?}: {e:?}")))
}

const FRAME: [RegisterARM; 6] = [
    RegisterARM::R0,
    RegisterARM::R1,
    RegisterARM::R2,
    RegisterARM::R3,
    RegisterARM::R12,
    RegisterARM::LR,
];

/// IT-state bits of xPSR (as Unicorn's CPSR view also places them).
const IT_BITS: u32 = 0x0600_FC00;
/// NZCVQ and GE.
const FLAG_BITS: u32 = 0xF80F_0000;
const THUMB: u32 = 1 << 24;

/// The exception the CPU is handling (IPSR).
pub fn ipsr<D>(uc: &Unicorn<'_, D>) -> u32 {
    rd(uc, RegisterARM::IPSR) & 0x1FF
}

/// PRIMASK and BASEPRI.
pub fn masks<D>(uc: &Unicorn<'_, D>) -> (bool, u8) {
    (
        rd(uc, RegisterARM::PRIMASK) & 1 != 0,
        rd(uc, RegisterARM::BASEPRI) as u8,
    )
}

/// Takes exception `exception` with `return_address` stacked; `vtor` locates the vector table.
pub fn enter<D>(
    uc: &mut Unicorn<'_, D>,
    exception: u32,
    return_address: u32,
    vtor: u32,
) -> Result<(), ExceptionFault> {
    let current = ipsr(uc);
    let control = rd(uc, RegisterARM::CONTROL);
    if control & 0b100 != 0 {
        return Err(ExceptionFault(
            "exception entry with CONTROL.FPCA set: the extended frame is not modelled".into(),
        ));
    }
    let from_psp = current == 0 && control & 0b10 != 0;
    let sp = rd(uc, RegisterARM::SP);
    let xpsr = rd(uc, RegisterARM::XPSR);
    let it = rd(uc, RegisterARM::CPSR) & IT_BITS;
    let realign = (sp >> 2) & 1;
    let frame = sp.wrapping_sub(32) & !4;
    let mut words = [0u32; 8];
    for (w, r) in words.iter_mut().zip(FRAME) {
        *w = rd(uc, r);
    }
    words[6] = return_address & !1;
    words[7] = (xpsr & (FLAG_BITS | 0x1FF)) | it | THUMB | realign << 9;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    uc.mem_write(u64::from(frame), &bytes)
        .map_err(|e| ExceptionFault(format!("stacking at {frame:#x}: {e:?}")))?;
    wr(uc, RegisterARM::SP, frame)?;
    // Handler mode: Unicorn switches the active SP to MSP.
    wr(
        uc,
        RegisterARM::XPSR,
        (xpsr & FLAG_BITS) | THUMB | exception,
    )?;
    let exc_return = if current != 0 {
        0xFFFF_FFF1
    } else if from_psp {
        0xFFFF_FFFD
    } else {
        0xFFFF_FFF9
    };
    wr(uc, RegisterARM::LR, exc_return)?;
    let entry = vtor.wrapping_add(4 * exception);
    let vector = uc
        .mem_read_as_vec(u64::from(entry), 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .map_err(|e| ExceptionFault(format!("vector fetch at {entry:#x}: {e:?}")))?;
    if vector & 1 == 0 {
        return Err(ExceptionFault(format!(
            "vector {exception} at {entry:#x} is {vector:#x}: not a Thumb address (INVSTATE)"
        )));
    }
    wr(uc, RegisterARM::PC, vector)
}

/// Returns from the current exception with EXC_RETURN `value`; `others_active` says whether an
/// exception other than the one returning from stays active. Returns the IPSR returned to.
pub fn exit<D>(
    uc: &mut Unicorn<'_, D>,
    value: u32,
    others_active: bool,
) -> Result<u32, ExceptionFault> {
    let (to_thread, to_psp) = match value {
        0xFFFF_FFF1 => (false, false),
        0xFFFF_FFF9 => (true, false),
        0xFFFF_FFFD => (true, true),
        0xFFFF_FFE1 | 0xFFFF_FFE9 | 0xFFFF_FFED => {
            return Err(ExceptionFault(format!(
                "EXC_RETURN {value:#x}: extended (FP) frame, not modelled"
            )))
        }
        _ => {
            return Err(ExceptionFault(format!(
                "EXC_RETURN {value:#x} is reserved (INVPC)"
            )))
        }
    };
    let frame = rd(
        uc,
        if to_psp {
            RegisterARM::PSP
        } else {
            RegisterARM::MSP
        },
    );
    let bytes = uc
        .mem_read_as_vec(u64::from(frame), 32)
        .map_err(|e| ExceptionFault(format!("unstacking at {frame:#x}: {e:?}")))?;
    let w = |i: usize| {
        u32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    };
    let xpsr = w(7);
    let ret_ipsr = xpsr & 0x1FF;
    if to_thread != (ret_ipsr == 0) {
        return Err(ExceptionFault(format!(
            "EXC_RETURN {value:#x} with stacked IPSR {ret_ipsr} (INVPC)"
        )));
    }
    if to_thread && others_active {
        return Err(ExceptionFault(
            "return to thread mode with another exception active (INVPC)".into(),
        ));
    }
    if xpsr & THUMB == 0 {
        return Err(ExceptionFault(format!(
            "stacked xPSR {xpsr:#x} without the T bit (INVSTATE)"
        )));
    }
    let new_sp = frame.wrapping_add(32 + 4 * ((xpsr >> 9) & 1));
    wr(
        uc,
        if to_psp {
            RegisterARM::PSP
        } else {
            RegisterARM::MSP
        },
        new_sp,
    )?;
    let control = rd(uc, RegisterARM::CONTROL);
    let npriv = control & 1;
    if to_thread {
        // Privileged for the mode change (allowed in handler mode; SPSEL is ignored there).
        wr(uc, RegisterARM::CONTROL, control & !1)?;
    }
    wr(uc, RegisterARM::XPSR, xpsr & !(1 << 9))?;
    if to_thread {
        let spsel = u32::from(to_psp) << 1;
        wr(uc, RegisterARM::CONTROL, spsel)?;
        wr(uc, RegisterARM::CONTROL, spsel | npriv)?;
    }
    for (i, r) in FRAME.into_iter().enumerate() {
        wr(uc, r, w(i))?;
    }
    wr(uc, RegisterARM::PC, w(6) | 1)?;
    Ok(ret_ipsr)
}
