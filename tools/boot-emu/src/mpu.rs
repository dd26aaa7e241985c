//! The Cortex-M4 MPU (PMSAv7), register level and its access check (ARMv7-M ARM B3.5;
//! Cortex-M4 Generic User Guide 4.5). Tock configures it per process
//! (`arch/cortex-m/src/mpu.rs`) so that a process reaches only its own flash and RAM.
//!
//! - 8 regions (TYPE.DREGION = 8): RNR selects one, RBAR (with VALID it also selects) and RASR
//!   program it; the aliases at 0xDA4–0xDB8 are the same RBAR/RASR pair.
//! - A region covers 2^(SIZE+1) bytes (SIZE ≥ 4) aligned to its size; regions of 256 bytes and
//!   more have 8 sub-regions that SRD disables one by one. Among the enabled regions that hold an
//!   address, the highest-numbered one decides.
//! - AP (access permissions, privileged/unprivileged): 0 none/none, 1 RW/none, 2 RW/RO, 3 RW/RW,
//!   5 RO/none, 6 and 7 RO/RO; XN forbids instruction fetches.
//! - With CTRL.ENABLE clear every access is allowed; with it set, an address no region holds is
//!   allowed only to privileged code with CTRL.PRIVDEFENA (the default map). The System region
//!   (0xE000_0000 and up) is always outside the MPU's reach for privileged code; unprivileged
//!   access to the PPB is a bus fault, which the check refuses too.

/// Number of regions.
pub const REGIONS: usize = 8;

/// What an access does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Fetch,
}

/// The Private Peripheral Bus (SCS, SysTick, NVIC, MPU ...): unprivileged code reaching it
/// gets a precise BusFault, MPU or not (ARMv7-M ARM B3.1).
pub const PPB_START: u32 = 0xE000_0000;
pub const PPB_END: u32 = 0xE010_0000;

/// Which fault a refused access raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// An MPU violation (MMFSR.IACCVIOL or DACCVIOL).
    MemManage,
    /// An unprivileged access to the PPB (BFSR.PRECISERR).
    BusFault,
}

/// MPU state.
#[derive(Clone, Debug, Default)]
pub struct Mpu {
    ctrl: u32,
    rnr: u32,
    rbar: [u32; REGIONS],
    rasr: [u32; REGIONS],
}

impl Mpu {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the MPU is on.
    pub fn enabled(&self) -> bool {
        self.ctrl & 1 != 0
    }

    /// Reads an MPU register (offset from 0xE000_E000); `None` if it is not one.
    pub fn read(&self, offset: u32) -> Option<u32> {
        let r = (self.rnr as usize) % REGIONS;
        Some(match offset {
            0xD90 => (REGIONS as u32) << 8,
            0xD94 => self.ctrl,
            0xD98 => self.rnr,
            0xD9C | 0xDA4 | 0xDAC | 0xDB4 => self.rbar[r] | r as u32,
            0xDA0 | 0xDA8 | 0xDB0 | 0xDB8 => self.rasr[r],
            _ => return None,
        })
    }

    /// Writes an MPU register; `None` if it is not one.
    pub fn write(&mut self, offset: u32, value: u32) -> Option<()> {
        match offset {
            0xD94 => self.ctrl = value & 0b111,
            0xD98 => self.rnr = value & 0xFF,
            0xD9C | 0xDA4 | 0xDAC | 0xDB4 => {
                if value & (1 << 4) != 0 {
                    self.rnr = value & 0xF;
                }
                let r = (self.rnr as usize) % REGIONS;
                self.rbar[r] = value & !0x1F;
            }
            0xDA0 | 0xDA8 | 0xDB0 | 0xDB8 => {
                let r = (self.rnr as usize) % REGIONS;
                self.rasr[r] = value;
            }
            _ => return None,
        }
        Some(())
    }

    /// The highest-numbered enabled region holding `addr` (sub-region disables applied).
    fn region_for(&self, addr: u32) -> Option<usize> {
        (0..REGIONS).rev().find(|&r| {
            let rasr = self.rasr[r];
            if rasr & 1 == 0 {
                return false;
            }
            let size_field = (rasr >> 1) & 0x1F;
            if size_field < 4 {
                return false;
            }
            let size = 1u64 << (size_field + 1);
            let base = u64::from(self.rbar[r]) & !(size - 1);
            let a = u64::from(addr);
            if a < base || a >= base + size {
                return false;
            }
            if size >= 256 {
                let sub = ((a - base) / (size / 8)) as u32;
                let srd = (rasr >> 8) & 0xFF;
                if srd & (1 << sub) != 0 {
                    return false;
                }
            }
            true
        })
    }

    /// Whether the MPU can refuse a privileged access: it is on and either has no default map
    /// (PRIVDEFENA clear) or an enabled region that denies privileged reads or writes.
    /// Tock's configuration never does (its regions are RW or RO for unprivileged code, RW for
    /// privileged, with PRIVDEFENA), so privileged accesses need no check.
    pub fn restricts_privileged(&self) -> bool {
        self.enabled()
            && (self.ctrl & 0b100 == 0
                || (0..REGIONS).any(|r| {
                    let rasr = self.rasr[r];
                    rasr & 1 != 0 && !matches!((rasr >> 24) & 0b111, 1..=3)
                }))
    }

    /// Checks an access as the hardware does: `Err` names the fault it raises.
    pub fn check(&self, addr: u32, access: Access, privileged: bool) -> Result<(), Denied> {
        if !privileged && (PPB_START..PPB_END).contains(&addr) {
            return Err(Denied::BusFault);
        }
        if self.allows(addr, access, privileged) {
            Ok(())
        } else {
            Err(Denied::MemManage)
        }
    }

    /// Whether an access is allowed.
    pub fn allows(&self, addr: u32, access: Access, privileged: bool) -> bool {
        if !privileged && addr >= 0xE000_0000 {
            return false;
        }
        if !self.enabled() || (privileged && addr >= 0xE000_0000) {
            return true;
        }
        let Some(r) = self.region_for(addr) else {
            return privileged && self.ctrl & 0b100 != 0;
        };
        let rasr = self.rasr[r];
        let ap = (rasr >> 24) & 0b111;
        let xn = rasr & (1 << 28) != 0;
        if access == Access::Fetch && xn {
            return false;
        }
        let (read, write) = match (ap, privileged) {
            (0, _) | (1, false) | (5, false) => (false, false),
            (1, true) | (2, true) | (3, _) => (true, true),
            (2, false) | (5, true) | (6, _) | (7, _) => (true, false),
            _ => (false, false),
        };
        match access {
            Access::Read | Access::Fetch => read,
            Access::Write => write,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RASR: enable, SIZE, SRD, AP, XN.
    fn rasr(size_log2: u32, srd: u32, ap: u32, xn: bool) -> u32 {
        1 | ((size_log2 - 1) << 1) | (srd << 8) | (ap << 24) | (u32::from(xn) << 28)
    }

    fn process_mpu() -> Mpu {
        let mut m = Mpu::new();
        // Region 0: the process's flash, 64 KiB at 0x40000, read-only, executable.
        m.write(0xD9C, 0x0004_0000 | 0x10).unwrap();
        m.write(0xDA0, rasr(16, 0, 6, false)).unwrap();
        // Region 1: its RAM, 8 KiB at 0x2000_8000, RW, no execute, upper half disabled.
        m.write(0xD9C, 0x2000_8000 | 0x10 | 1).unwrap();
        m.write(0xDA0, rasr(13, 0xF0, 3, true)).unwrap();
        m.write(0xD94, 0b101).unwrap(); // ENABLE | PRIVDEFENA
        m
    }

    #[test]
    fn a_process_reaches_its_regions_only() {
        let m = process_mpu();
        assert!(m.allows(0x0004_0100, Access::Fetch, false));
        assert!(
            !m.allows(0x0004_0100, Access::Write, false),
            "flash is read-only"
        );
        assert!(m.allows(0x2000_8010, Access::Write, false));
        assert!(!m.allows(0x2000_8010, Access::Fetch, false), "XN");
        assert!(
            !m.allows(0x2000_9000, Access::Read, false),
            "disabled sub-region"
        );
        assert!(!m.allows(0x2000_0000, Access::Read, false), "kernel RAM");
        assert!(!m.allows(0x0000_8000, Access::Read, false), "kernel flash");
        assert!(!m.allows(0xE000_E010, Access::Read, false), "PPB");
    }

    #[test]
    fn privileged_code_uses_the_default_map() {
        let mut m = process_mpu();
        assert!(m.allows(0x2000_0000, Access::Write, true));
        m.write(0xD94, 0b001).unwrap();
        assert!(!m.allows(0x2000_0000, Access::Write, true), "no PRIVDEFENA");
        assert!(m.allows(0xE000_E010, Access::Write, true));
        m.write(0xD94, 0).unwrap();
        assert!(m.allows(0x2000_0000, Access::Write, false), "MPU off");
    }

    #[test]
    fn refusals_name_their_fault_and_privileged_checks_are_needed_only_when_regions_deny() {
        let mut m = process_mpu();
        assert_eq!(
            m.check(0x2000_0000, Access::Read, false),
            Err(Denied::MemManage)
        );
        assert_eq!(
            m.check(0xE000_ED04, Access::Read, false),
            Err(Denied::BusFault)
        );
        assert_eq!(m.check(0xE000_ED04, Access::Read, true), Ok(()));
        assert_eq!(m.check(0x2000_8000, Access::Write, false), Ok(()));
        // Read-only for privileged code too (AP 6): privileged writes to flash are refused.
        assert!(m.restricts_privileged());
        assert_eq!(
            m.check(0x0004_0000, Access::Write, true),
            Err(Denied::MemManage)
        );
        // Tock's configuration (AP 2: privileged RW, unprivileged RO) never refuses privileged
        // code.
        m.write(0xD9C, 0x0004_0000 | 0x10).unwrap();
        m.write(0xDA0, rasr(16, 0, 2, false)).unwrap();
        assert!(!m.restricts_privileged());
        assert_eq!(m.check(0x0004_0000, Access::Write, true), Ok(()));
        assert_eq!(
            m.check(0x0004_0000, Access::Write, false),
            Err(Denied::MemManage)
        );
        // A privileged read-only region (AP 5) or no default map restricts privileged code.
        m.write(0xD9C, 0x2000_0000 | 0x10 | 2).unwrap();
        m.write(0xDA0, rasr(10, 0, 5, true)).unwrap();
        assert!(m.restricts_privileged());
        assert_eq!(
            m.check(0x2000_0010, Access::Write, true),
            Err(Denied::MemManage)
        );
        m.write(0xDA0, 0).unwrap();
        assert!(!m.restricts_privileged());
        m.write(0xD94, 0b001).unwrap();
        assert!(m.restricts_privileged());
        m.write(0xD94, 0).unwrap();
        assert!(!m.restricts_privileged(), "MPU off");
        // Off or not, unprivileged code never reaches the PPB.
        assert_eq!(
            m.check(0xE000_E010, Access::Write, false),
            Err(Denied::BusFault)
        );
    }

    #[test]
    fn registers_read_back_through_rnr() {
        let mut m = process_mpu();
        assert_eq!(m.read(0xD90), Some(8 << 8));
        m.write(0xD98, 1).unwrap();
        assert_eq!(m.read(0xD9C), Some(0x2000_8001));
        assert_eq!(m.read(0xDA0), Some(rasr(13, 0xF0, 3, true)));
    }
}
