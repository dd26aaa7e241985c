//! The Cortex-M4 fault status registers and the choice of the exception a synchronous fault
//! raises (ARMv7-M ARM B3.2.15–B3.2.18 and B1.5.15; Cortex-M4 Generic User Guide 4.3.10–4.3.13).
//!
//! - CFSR (0xE000_ED28) holds MMFSR (byte 0), BFSR (byte 1) and UFSR (halfword 1); each can be
//!   read and written by byte, halfword or word (Tock's fault handler reads BFSR with `ldrb`).
//!   Writing 1 clears a bit; so does HFSR (0xED2C). MMFAR (0xED34) and BFAR (0xED38) hold the
//!   faulting address when MMFSR.MMARVALID / BFSR.BFARVALID say so. DFSR (0xED30) stays 0 (no
//!   debug events) and AFSR (0xED3C) is 0 on the Cortex-M4.
//! - A MemManage or BusFault is taken as itself only if SHCSR enables it and its priority is
//!   higher than the execution priority; otherwise it escalates to HardFault with
//!   HFSR.FORCED. A fault that HardFault cannot preempt either (the CPU is in HardFault or NMI)
//!   locks the CPU up, which the harness reports as an error.

use crate::mpu::{Access, Denied};
use crate::nvic::{Nvic, BUSFAULT, HARDFAULT, MEMMANAGE};

/// MMFSR.IACCVIOL: instruction fetch from a location the MPU forbids.
pub const IACCVIOL: u32 = 1 << 0;
/// MMFSR.DACCVIOL: data access the MPU forbids.
pub const DACCVIOL: u32 = 1 << 1;
/// MMFSR.MMARVALID: MMFAR holds the address.
pub const MMARVALID: u32 = 1 << 7;
/// BFSR.PRECISERR (in CFSR).
pub const PRECISERR: u32 = 1 << 9;
/// BFSR.BFARVALID (in CFSR).
pub const BFARVALID: u32 = 1 << 15;
/// HFSR.FORCED: a configurable fault escalated to HardFault.
pub const FORCED: u32 = 1 << 30;

/// The fault status and address registers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultStatus {
    pub cfsr: u32,
    pub hfsr: u32,
    pub mmfar: u32,
    pub bfar: u32,
}

/// How a refused access is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// Take this exception (MemManage, BusFault or, escalated, HardFault).
    Exception(u32),
    /// Neither the fault nor HardFault can preempt: the CPU locks up.
    Lockup,
}

/// Whether `offset` (from 0xE000_E000) is one of these registers.
pub fn owns(offset: u32) -> bool {
    (0xD28..0xD40).contains(&offset)
}

impl FaultStatus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a refused access of `access` kind at `addr` and returns the fault's exception
    /// number (before escalation).
    pub fn record(&mut self, denied: Denied, access: Access, addr: u32) -> u32 {
        match (denied, access) {
            (Denied::MemManage, Access::Fetch) => {
                self.cfsr |= IACCVIOL;
                MEMMANAGE
            }
            (Denied::MemManage, _) => {
                self.cfsr |= DACCVIOL | MMARVALID;
                self.mmfar = addr;
                MEMMANAGE
            }
            (Denied::BusFault, _) => {
                self.cfsr |= PRECISERR | BFARVALID;
                self.bfar = addr;
                BUSFAULT
            }
        }
    }

    /// Decides which exception fault `exception` raises given the NVIC state and the masks,
    /// setting HFSR.FORCED when it escalates.
    pub fn escalate(&mut self, exception: u32, nvic: &Nvic, primask: bool, basepri: u8) -> Taken {
        let execution = nvic.execution_priority(primask, basepri);
        if nvic.handler_enabled(exception) && nvic.priority(exception) < execution {
            Taken::Exception(exception)
        } else if nvic.priority(HARDFAULT) < execution {
            self.hfsr |= FORCED;
            Taken::Exception(HARDFAULT)
        } else {
            Taken::Lockup
        }
    }

    fn word(&self, aligned: u32) -> u32 {
        match aligned {
            0xD28 => self.cfsr,
            0xD2C => self.hfsr,
            0xD34 => self.mmfar,
            0xD38 => self.bfar,
            _ => 0,
        }
    }

    /// Reads `size` bytes at `offset`; `None` for an access the registers do not allow (a size
    /// other than 1, 2 or 4, or misaligned).
    pub fn read(&self, offset: u32, size: usize) -> Option<u32> {
        let (shift, mask) = lane(offset, size)?;
        Some((self.word(offset & !3) >> shift) & mask)
    }

    /// Writes `size` bytes of `value` at `offset`.
    pub fn write(&mut self, offset: u32, size: usize, value: u32) -> Option<()> {
        let (shift, mask) = lane(offset, size)?;
        let bits = (value & mask) << shift;
        match offset & !3 {
            0xD28 => self.cfsr &= !bits,
            0xD2C => self.hfsr &= !bits,
            0xD34 => self.mmfar = (self.mmfar & !(mask << shift)) | bits,
            0xD38 => self.bfar = (self.bfar & !(mask << shift)) | bits,
            _ => {}
        }
        Some(())
    }
}

/// Bit shift and mask of a naturally aligned byte, halfword or word access.
fn lane(offset: u32, size: usize) -> Option<(u32, u32)> {
    let mask = match size {
        1 => 0xFF,
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => return None,
    };
    offset
        .is_multiple_of(size as u32)
        .then_some(((offset & 3) * 8, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_violation_sets_daccviol_and_mmfar_and_bytes_read_and_clear() {
        let mut f = FaultStatus::new();
        assert_eq!(
            f.record(Denied::MemManage, Access::Write, 0x2000_0040),
            MEMMANAGE
        );
        assert_eq!(f.read(0xD28, 4), Some(0x82));
        assert_eq!(f.read(0xD28, 1), Some(0x82), "MMFSR by byte");
        assert_eq!(f.read(0xD29, 1), Some(0), "BFSR by byte");
        assert_eq!(f.read(0xD34, 4), Some(0x2000_0040));
        f.write(0xD28, 1, DACCVIOL).unwrap();
        assert_eq!(f.read(0xD28, 4), Some(0x80), "write 1 clears");
        assert_eq!(f.read(0xD29, 2), None, "misaligned halfword");
    }

    #[test]
    fn fetches_leave_mmfar_invalid_and_ppb_accesses_are_bus_faults() {
        let mut f = FaultStatus::new();
        f.record(Denied::MemManage, Access::Fetch, 0x2000_1000);
        assert_eq!(f.cfsr, IACCVIOL);
        assert_eq!(f.mmfar, 0);
        assert_eq!(
            f.record(Denied::BusFault, Access::Read, 0xE000_ED04),
            BUSFAULT
        );
        assert_eq!(f.read(0xD29, 1), Some(0x82));
        assert_eq!(f.read(0xD38, 4), Some(0xE000_ED04));
    }

    #[test]
    fn a_disabled_or_masked_fault_escalates_to_hardfault_and_a_fault_in_hardfault_locks_up() {
        let mut nvic = Nvic::new();
        let mut f = FaultStatus::new();
        // Reset: MEMFAULTENA clear, so MemManage escalates.
        assert_eq!(
            f.escalate(MEMMANAGE, &nvic, false, 0),
            Taken::Exception(HARDFAULT)
        );
        assert_eq!(f.hfsr, FORCED);
        f.write(0xD2C, 4, FORCED).unwrap();
        assert_eq!(f.hfsr, 0);
        nvic.write(0xD24, 1 << 16).unwrap(); // MEMFAULTENA
        assert_eq!(
            f.escalate(MEMMANAGE, &nvic, false, 0),
            Taken::Exception(MEMMANAGE)
        );
        assert_eq!(f.hfsr, 0);
        // PRIMASK raises the execution priority to 0: MemManage (priority 0) cannot preempt.
        assert_eq!(
            f.escalate(MEMMANAGE, &nvic, true, 0),
            Taken::Exception(HARDFAULT)
        );
        nvic.acknowledge(HARDFAULT);
        assert_eq!(f.escalate(MEMMANAGE, &nvic, false, 0), Taken::Lockup);
    }
}
