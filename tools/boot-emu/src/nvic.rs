//! The Cortex-M4 NVIC and the System Control Block's exception state, register level (ARMv7-M
//! Architecture Reference Manual, B3.4 "Nested Vectored Interrupt Controller" and B3.2.3–B3.2.13
//! "System control block"; Cortex-M4 Generic User Guide 4.2 and 4.3). Unicorn (QEMU's M-profile
//! core without its `armv7m_nvic` device) has none of this: it stubs every NVIC call.
//!
//! - External interrupts 0..63 (ICTR.INTLINESNUM = 1; the nRF52840 wires 48): ISER/ICER,
//!   ISPR/ICPR, IABR, IPR. The nRF52840 implements 3 priority bits (the top three of each byte).
//! - Peripheral lines are level-sensitive ([`Nvic::set_lines`]): a high line pends its interrupt
//!   unless it is active; it pends again after the handler returns if still high. Software can
//!   pend and clear any interrupt, enabled or not (Tock's kernel loop relies on pending bits of
//!   disabled interrupts).
//! - System exceptions: HardFault (3, priority −1), MemManage (4), BusFault (5), UsageFault (6),
//!   SVCall (11), PendSV (14), SysTick (15), their priorities in SHPR1–3, pending bits in ICSR
//!   (PendSV, SysTick) and SHCSR, active bits in SHCSR.
//! - Exception selection: the pending, enabled exception with the lowest priority value (then
//!   the lowest number) is taken if its priority is below the execution priority, which active
//!   exceptions, PRIMASK and BASEPRI set. AIRCR.PRIGROUP is taken as 0..=4 (all three
//!   implemented bits are group priority), which is Tock's setting (reset value).

/// External interrupt lines.
pub const LINES: u32 = 64;
/// Implemented priority bits (mask of a priority byte).
pub const PRIO_MASK: u8 = 0xE0;

pub const HARDFAULT: u32 = 3;
pub const MEMMANAGE: u32 = 4;
pub const BUSFAULT: u32 = 5;
pub const USAGEFAULT: u32 = 6;
pub const SVCALL: u32 = 11;
pub const PENDSV: u32 = 14;
pub const SYSTICK: u32 = 15;

/// NVIC and SCB exception state.
#[derive(Clone, Debug)]
pub struct Nvic {
    enabled: u64,
    pending: u64,
    active: u64,
    lines: u64,
    prio: [u8; LINES as usize],
    /// Pending and active bits of system exceptions, indexed by exception number.
    sys_pending: u16,
    sys_active: u16,
    /// Priorities of exceptions 4..=15 (SHPR1..3 bytes).
    shpr: [u8; 12],
    /// SHCSR enable bits (MEMFAULTENA 16, BUSFAULTENA 17, USGFAULTENA 18).
    shcsr_enables: u32,
}

impl Default for Nvic {
    fn default() -> Self {
        Self::new()
    }
}

impl Nvic {
    /// Reset state: nothing enabled, pending or active, every priority 0.
    pub fn new() -> Self {
        Nvic {
            enabled: 0,
            pending: 0,
            active: 0,
            lines: 0,
            prio: [0; LINES as usize],
            sys_pending: 0,
            sys_active: 0,
            shpr: [0; 12],
            shcsr_enables: 0,
        }
    }

    /// The levels of the peripheral interrupt lines (bit n: line n).
    pub fn set_lines(&mut self, lines: u64) {
        self.lines = lines;
        self.pending |= lines & !self.active;
    }

    /// Pends a system exception (PendSV, SysTick, a fault) or an external interrupt (16 + n).
    pub fn pend(&mut self, exception: u32) {
        match exception {
            16.. if exception < 16 + LINES => self.pending |= 1 << (exception - 16),
            2..=15 => self.sys_pending |= 1 << exception,
            _ => {}
        }
    }

    /// The priority of an exception (HardFault −1; others their register's value).
    pub fn priority(&self, exception: u32) -> i16 {
        match exception {
            HARDFAULT => -1,
            4..=15 => i16::from(self.shpr[(exception - 4) as usize]),
            16.. if exception < 16 + LINES => i16::from(self.prio[(exception - 16) as usize]),
            _ => 256,
        }
    }

    /// Whether an exception may be taken as itself: MemManage, BusFault and UsageFault need
    /// their SHCSR enable bit (a fault of a disabled one escalates to HardFault).
    pub fn handler_enabled(&self, exception: u32) -> bool {
        match exception {
            MEMMANAGE => self.shcsr_enables & (1 << 16) != 0,
            BUSFAULT => self.shcsr_enables & (1 << 17) != 0,
            USAGEFAULT => self.shcsr_enables & (1 << 18) != 0,
            _ => true,
        }
    }

    /// The execution priority: the highest (lowest value) of the active exceptions', PRIMASK's
    /// (0) and BASEPRI's; 256 in thread mode with neither.
    pub fn execution_priority(&self, primask: bool, basepri: u8) -> i16 {
        let mut p: i16 = 256;
        for e in 2..16 {
            if self.sys_active & (1 << e) != 0 {
                p = p.min(self.priority(e));
            }
        }
        for n in 0..LINES {
            if self.active & (1 << n) != 0 {
                p = p.min(self.priority(16 + n));
            }
        }
        if basepri & PRIO_MASK != 0 {
            p = p.min(i16::from(basepri & PRIO_MASK));
        }
        if primask {
            p = p.min(0);
        }
        p
    }

    /// The pending exception with the highest priority, whether or not it may preempt.
    pub fn highest_pending(&self) -> Option<u32> {
        let mut best: Option<(i16, u32)> = None;
        let mut consider = |prio: i16, e: u32| {
            if best.is_none_or(|(bp, _)| prio < bp) {
                best = Some((prio, e));
            }
        };
        for e in 2..16 {
            if self.sys_pending & (1 << e) != 0 && self.handler_enabled(e) {
                consider(self.priority(e), e);
            }
        }
        let ready = self.pending & self.enabled;
        for n in 0..LINES {
            if ready & (1 << n) != 0 {
                consider(self.priority(16 + n), 16 + n);
            }
        }
        best.map(|(_, e)| e)
    }

    /// The exception to take now, if one may preempt the execution priority.
    pub fn to_take(&self, primask: bool, basepri: u8) -> Option<u32> {
        let e = self.highest_pending()?;
        (self.priority(e) < self.execution_priority(primask, basepri)).then_some(e)
    }

    /// Exception entry: `exception` leaves pending and becomes active.
    pub fn acknowledge(&mut self, exception: u32) {
        if exception >= 16 {
            let bit = 1 << (exception - 16);
            self.pending &= !bit;
            self.active |= bit;
        } else {
            self.sys_pending &= !(1 << exception);
            self.sys_active |= 1 << exception;
        }
    }

    /// Exception return from `exception`; a line still high pends again. Returns false if the
    /// exception was not active (an illegal exception return: a UsageFault on hardware).
    pub fn complete(&mut self, exception: u32) -> bool {
        if exception >= 16 {
            let bit = 1u64 << (exception - 16);
            if self.active & bit == 0 {
                return false;
            }
            self.active &= !bit;
            self.pending |= self.lines & bit;
        } else {
            if self.sys_active & (1 << exception) == 0 {
                return false;
            }
            self.sys_active &= !(1 << exception);
        }
        true
    }

    /// Whether an exception other than `current` is active (for EXC_RETURN to thread mode:
    /// returning to thread mode with others active is illegal unless CCR.NONBASETHRDENA).
    pub fn others_active(&self, current: u32) -> bool {
        let mut active = self.active;
        let mut sys = self.sys_active;
        if current >= 16 {
            active &= !(1 << (current - 16));
        } else {
            sys &= !(1 << current);
        }
        active != 0 || sys != 0
    }

    /// Reads an SCS register the NVIC owns, at `offset` from 0xE000_E000; `None` if it is not
    /// one of them. `ipsr` is the exception the CPU is handling (ICSR.VECTACTIVE).
    pub fn read(&self, offset: u32, ipsr: u32) -> Option<u32> {
        let half = |v: u64, o: u32, base: u32| (v >> (32 * ((o - base) / 4))) as u32;
        Some(match offset {
            0x100 | 0x104 => half(self.enabled, offset, 0x100),
            0x108..=0x11C | 0x188..=0x19C | 0x208..=0x21C | 0x288..=0x29C | 0x308..=0x31C => 0,
            0x180 | 0x184 => half(self.enabled, offset, 0x180),
            0x200 | 0x204 => half(self.pending, offset, 0x200),
            0x280 | 0x284 => half(self.pending, offset, 0x280),
            0x300 | 0x304 => half(self.active, offset, 0x300),
            0x400..=0x43C => {
                let i = (offset - 0x400) as usize;
                u32::from_le_bytes([
                    self.prio[i],
                    self.prio[i + 1],
                    self.prio[i + 2],
                    self.prio[i + 3],
                ])
            }
            0x440..=0x4EC => 0,
            0xD04 => {
                let pending = self.highest_pending().unwrap_or(0);
                let isr_pending = self.pending & self.enabled != 0;
                (ipsr & 0x1FF)
                    | (pending & 0x1FF) << 12
                    | u32::from(isr_pending) << 22
                    | u32::from(self.sys_pending & (1 << SYSTICK) != 0) << 26
                    | u32::from(self.sys_pending & (1 << PENDSV) != 0) << 28
                    | u32::from(!self.others_active(ipsr)) << 11
            }
            0xD18..=0xD20 => {
                let i = (offset - 0xD18) as usize;
                u32::from_le_bytes([
                    self.shpr[i],
                    self.shpr[i + 1],
                    self.shpr[i + 2],
                    self.shpr[i + 3],
                ])
            }
            0xD24 => {
                let a = |e: u32| u32::from(self.sys_active & (1 << e) != 0);
                let p = |e: u32| u32::from(self.sys_pending & (1 << e) != 0);
                a(MEMMANAGE)
                    | a(BUSFAULT) << 1
                    | a(USAGEFAULT) << 3
                    | a(SVCALL) << 7
                    | a(PENDSV) << 10
                    | a(SYSTICK) << 11
                    | p(USAGEFAULT) << 12
                    | p(MEMMANAGE) << 13
                    | p(BUSFAULT) << 14
                    | p(SVCALL) << 15
                    | self.shcsr_enables
            }
            _ => return None,
        })
    }

    /// Writes an SCS register the NVIC owns; `None` if it is not one of them.
    pub fn write(&mut self, offset: u32, value: u32) -> Option<()> {
        let shift = |o: u32, base: u32| 32 * ((o - base) / 4);
        let v = u64::from(value);
        match offset {
            0x100 | 0x104 => self.enabled |= v << shift(offset, 0x100),
            0x180 | 0x184 => self.enabled &= !(v << shift(offset, 0x180)),
            0x200 | 0x204 => self.pending |= v << shift(offset, 0x200),
            0x280 | 0x284 => self.pending &= !(v << shift(offset, 0x280)),
            // Lines 64.. do not exist: writes are ignored (RAZ/WI).
            0x108..=0x11C | 0x188..=0x19C | 0x208..=0x21C | 0x288..=0x29C | 0x440..=0x4EC => {}
            0x400..=0x43C => {
                let i = (offset - 0x400) as usize;
                for (k, b) in value.to_le_bytes().into_iter().enumerate() {
                    self.prio[i + k] = b & PRIO_MASK;
                }
            }
            0xD04 => {
                if value & (1 << 28) != 0 {
                    self.sys_pending |= 1 << PENDSV;
                }
                if value & (1 << 27) != 0 {
                    self.sys_pending &= !(1 << PENDSV);
                }
                if value & (1 << 26) != 0 {
                    self.sys_pending |= 1 << SYSTICK;
                }
                if value & (1 << 25) != 0 {
                    self.sys_pending &= !(1 << SYSTICK);
                }
            }
            0xD18..=0xD20 => {
                let i = (offset - 0xD18) as usize;
                for (k, b) in value.to_le_bytes().into_iter().enumerate() {
                    self.shpr[i + k] = b & PRIO_MASK;
                }
            }
            0xD24 => self.shcsr_enables = value & (0b111 << 16),
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_pending_of_a_disabled_interrupt_is_visible_and_not_taken() {
        let mut n = Nvic::new();
        n.write(0x200, 1 << 17).unwrap();
        assert_eq!(n.read(0x200, 0), Some(1 << 17));
        assert_eq!(n.to_take(false, 0), None, "disabled");
        n.write(0x100, 1 << 17).unwrap();
        assert_eq!(n.to_take(false, 0), Some(16 + 17));
        n.write(0x180, 1 << 17).unwrap();
        n.write(0x280, 1 << 17).unwrap();
        assert_eq!(n.read(0x200, 0), Some(0));
    }

    #[test]
    fn priority_masking_by_primask_basepri_and_active_handlers() {
        let mut n = Nvic::new();
        n.write(0x100, 0b11).unwrap();
        n.write(0x400, 0x0000_4020).unwrap(); // IRQ0 priority 0x20, IRQ1 0x40
        n.set_lines(0b10);
        assert_eq!(
            n.to_take(true, 0),
            None,
            "PRIMASK masks all configurable priorities"
        );
        assert_eq!(
            n.to_take(false, 0x40),
            None,
            "BASEPRI 0x40 masks priority 0x40"
        );
        assert_eq!(n.to_take(false, 0x60), Some(17));
        n.acknowledge(17);
        n.set_lines(0b11);
        assert_eq!(
            n.to_take(false, 0),
            Some(16),
            "0x20 preempts an active 0x40"
        );
        n.acknowledge(16);
        assert!(n.complete(16));
        assert!(n.complete(17));
        assert_eq!(
            n.read(0x204 - 4, 0).map(|v| v & 0b11),
            Some(0b11),
            "lines still high pend again"
        );
    }

    #[test]
    fn system_exceptions_pend_through_icsr_and_order_by_number_on_ties() {
        let mut n = Nvic::new();
        n.write(0xD04, (1 << 28) | (1 << 26)).unwrap();
        assert_eq!(
            n.to_take(false, 0),
            Some(PENDSV),
            "same priority: lower number first"
        );
        n.write(0xD20, 0x4000_0000).unwrap(); // SysTick 0x40, PendSV 0
        n.write(0xD20, 0x40E0_0000).unwrap(); // PendSV 0xE0
        assert_eq!(n.to_take(false, 0), Some(SYSTICK));
        assert_eq!(n.read(0xD04, 0).map(|v| v >> 12 & 0x1FF), Some(SYSTICK));
        n.write(0xD04, (1 << 27) | (1 << 25)).unwrap();
        assert_eq!(n.to_take(false, 0), None);
    }

    #[test]
    fn returning_from_an_inactive_exception_is_refused() {
        let mut n = Nvic::new();
        assert!(!n.complete(SVCALL));
        assert!(!n.complete(16 + 3));
    }

    #[test]
    fn priority_bytes_keep_three_bits() {
        let mut n = Nvic::new();
        n.write(0x404, 0xFFFF_FFFF).unwrap();
        assert_eq!(n.read(0x404, 0), Some(0xE0E0_E0E0));
        assert_eq!(n.priority(16 + 4), 0xE0);
    }
}
