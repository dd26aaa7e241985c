//! Register-level models of the nRF52840 peripherals the bootloader touches.
//!
//! Each model decodes the register offsets of one peripheral (nRF52840 Product Specification
//! v1.7: NVMC §4.3, ACL §6.1, POWER §5.3, CLOCK §6.4, WDT §6.36, QSPI §6.19; Cortex-M4 SCS from
//! the ARMv7-M Architecture Reference Manual B3) and turns tasks into calls on the
//! `nrf52840-flash` port traits, which the `hw-models` flash models implement. An offset that is
//! not listed is an error, as is any access that is not a 32-bit word access.

use nrf52840_flash::{FlashError, NvmcPort, QspiEraseLen, QspiPort};

/// First address of the nRF52840 data RAM; EasyDMA reaches nothing else.
pub const RAM_START: u32 = 0x2000_0000;
/// Size of the nRF52840 data RAM.
pub const RAM_SIZE: u32 = 0x4_0000;
/// Size of the internal flash.
pub const FLASH_SIZE: u32 = 0x10_0000;
/// Internal flash page (erase unit).
pub const PAGE_SIZE: u32 = 0x1000;

/// POWER and CLOCK share this 4 KiB block.
pub const POWER_CLOCK_BASE: u32 = 0x4000_0000;
/// Watchdog timer.
pub const WDT_BASE: u32 = 0x4001_0000;
/// NVMC and ACL share this 4 KiB block.
pub const NVMC_ACL_BASE: u32 = 0x4001_E000;
/// QSPI peripheral.
pub const QSPI_BASE: u32 = 0x4002_9000;
/// GPIO P0 (P1 follows at +0x300).
pub const GPIO_BASE: u32 = 0x5000_0000;
/// System control space (SysTick, NVIC, SCB, FPU control).
pub const SCS_BASE: u32 = 0xE000_E000;
/// RADIO.
pub const RADIO_BASE: u32 = 0x4000_1000;
/// UARTE0 (Tock's console).
pub const UARTE0_BASE: u32 = 0x4000_2000;
/// RTC1 (Tock's alarm).
pub const RTC1_BASE: u32 = 0x4001_1000;

/// The value a WDT reload register expects.
const WDT_RELOAD: u32 = 0x6E52_4635;
/// AIRCR write that requests a system reset (VECTKEY 0x05FA, SYSRESETREQ).
const AIRCR_SYSRESETREQ: u32 = 0x05FA_0004;
/// Cortex-M4 r0p1 CPUID.
const CPUID_CORTEX_M4: u32 = 0x410F_C241;

/// Why the modelled hardware stopped the CPU or why the run is a failure.
#[derive(Clone, Debug, PartialEq)]
pub enum HwError {
    /// A peripheral register the models do not know.
    UnknownRegister { addr: u32, write: bool },
    /// A peripheral access that is not a 32-bit word access.
    BadAccessSize { addr: u32, size: usize },
    /// A store into the flash window while NVMC.CONFIG does not enable writes (a bus fault).
    FlashWriteNotEnabled { addr: u32, config: u32 },
    /// A store into the flash window that is not one aligned 32-bit word.
    FlashWriteNotWord { addr: u32, size: usize },
    /// ERASEPAGE while NVMC.CONFIG does not enable erase.
    EraseNotEnabled { addr: u32, config: u32 },
    /// A write or erase inside an ACL region with write permission removed (a bus fault).
    AclViolation { addr: u32, region: usize },
    /// An EasyDMA transfer that breaks the QSPI rules (pointer in RAM, word aligned, length a
    /// non-zero multiple of 4 within the CNT field).
    DmaRule {
        task: &'static str,
        what: &'static str,
        value: u32,
    },
    /// A QSPI task started while the peripheral is disabled or not activated.
    QspiNotReady { task: &'static str },
    /// A register value the models do not support (for example QSPI long-frame mode).
    Unsupported {
        addr: u32,
        value: u32,
        what: &'static str,
    },
    /// The flash model reported a misuse (anything but a power cut).
    Flash(FlashError),
}

/// A request of the modelled hardware to end the run normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwStop {
    /// A flash operation found the power off (injected cut).
    PowerLost,
    /// AIRCR.SYSRESETREQ.
    SystemReset,
    /// The watchdog expired.
    WatchdogReset,
}

/// What ended a register access: either a failure or a request to stop.
#[derive(Clone, Debug, PartialEq)]
pub enum HwEvent {
    Error(HwError),
    Stop(HwStop),
}

impl From<HwError> for HwEvent {
    fn from(e: HwError) -> Self {
        HwEvent::Error(e)
    }
}

fn flash_event(e: FlashError) -> HwEvent {
    match e {
        FlashError::PowerLost => HwEvent::Stop(HwStop::PowerLost),
        other => HwEvent::Error(HwError::Flash(other)),
    }
}

fn radio_error(e: hw_models::radio::RadioError, addr: u32, write: bool) -> HwEvent {
    HwEvent::Error(match e {
        hw_models::radio::RadioError::Unknown => HwError::UnknownRegister { addr, write },
        hw_models::radio::RadioError::Unsupported(what, value) => {
            HwError::Unsupported { addr, value, what }
        }
    })
}

fn uarte_error(e: crate::uarte::UarteError, addr: u32, write: bool) -> HwEvent {
    HwEvent::Error(match e {
        crate::uarte::UarteError::Unknown => HwError::UnknownRegister { addr, write },
        crate::uarte::UarteError::Rule(what, value) => HwError::Unsupported { addr, value, what },
    })
}

/// One ACL region as the firmware configured it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AclRegion {
    pub addr: u32,
    pub size: u32,
    pub perm: u32,
    /// Which of ADDR, SIZE, PERM have been written (each may be written once per reset).
    written: u8,
}

impl AclRegion {
    /// PERM.WRITE: write and erase disabled.
    pub fn denies_write(&self) -> bool {
        self.perm & 0b10 != 0 && self.size != 0
    }

    fn contains(&self, addr: u32) -> bool {
        addr >= self.addr && addr - self.addr < self.size
    }
}

/// Counters the reports use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HwCounters {
    pub nvmc_word_writes: u64,
    pub nvmc_page_erases: u64,
    pub qspi_read_bytes: u64,
    pub qspi_write_bytes: u64,
    pub qspi_erases: u64,
    pub qspi_custom: u64,
    pub wdt_feeds: u64,
}

/// A word the CPU stored into the flash window, and the value the flash really holds after the
/// NVMC wrote it (NOR flash only clears bits).
pub type FlashFixup = (u32, u32);

/// The modelled peripherals of one power-on.
pub struct Peripherals<'a, Q: QspiPort, N: NvmcPort> {
    pub qspi_port: &'a mut Q,
    pub nvmc_port: &'a mut N,
    // POWER / CLOCK
    pub resetreas: u32,
    pub gpregret: u32,
    pub gpregret2: u32,
    dcdcen: u32,
    approtect_disable: u32,
    hfclk_started: bool,
    lfclk_started: bool,
    lfclksrc: u32,
    // WDT
    pub wdt_running: bool,
    wdt_crv: u32,
    wdt_rren: u32,
    wdt_config: u32,
    wdt_pending: u32,
    /// Simulated time (µs) at which the watchdog expires, while it runs.
    pub wdt_deadline_us: u64,
    // NVMC / ACL
    pub nvmc_config: u32,
    pub icachecnf: u32,
    pub acl: [AclRegion; 8],
    // QSPI
    qspi_enable: u32,
    qspi_active: bool,
    qspi_ready_event: u32,
    qspi_inten: u32,
    qspi_read: [u32; 3],
    qspi_write: [u32; 3],
    qspi_erase: [u32; 2],
    qspi_psel: [u32; 6],
    qspi_xipoffset: u32,
    qspi_ifconfig0: u32,
    qspi_ifconfig1: u32,
    qspi_dpmdur: u32,
    qspi_addrconf: u32,
    qspi_iftiming: u32,
    qspi_cinstrconf: u32,
    qspi_cinstrdat: [u32; 2],
    // SCS
    pub cpacr: u32,
    pub vtor: u32,
    scs_store: std::collections::BTreeMap<u32, u32>,
    /// NVIC and SCB exception state.
    pub nvic: crate::nvic::Nvic,
    /// SysTick.
    pub systick: crate::systick::SysTick,
    /// MPU.
    pub mpu: crate::mpu::Mpu,
    /// The exception the CPU is handling (IPSR), kept by the CPU side for ICSR.
    pub ipsr: u32,
    /// RTC1.
    pub rtc1: crate::rtc::Rtc,
    /// UARTE0.
    pub uarte0: crate::uarte::Uarte,
    /// RADIO (hw-models).
    pub radio: hw_models::radio::Radio,
    /// What is on air around the RADIO.
    pub air: Option<&'a mut dyn hw_models::radio::Air>,
    /// Bytes an EasyDMA transfer starting with the current register write reads from RAM, read
    /// by the caller beforehand (the UARTE's STARTTX).
    pub dma_source_bytes: Option<Vec<u8>>,
    /// UICR (carried across power-ons by the caller).
    pub uicr: crate::ficr::Uicr,
    /// Errata workaround registers as written ([`crate::ficr::ERRATA_REGISTERS`]).
    pub errata: std::collections::BTreeMap<u32, u32>,
    /// GPIO registers as written (OUT/DIR/LATCH/DETECTMODE/PIN_CNF of P0 and P1).
    pub gpio: std::collections::BTreeMap<u32, u32>,
    pub counters: HwCounters,
    /// Flash-window stores whose stored value must be replaced by what the flash holds.
    pub fixups: Vec<FlashFixup>,
    /// RAM writes done by EasyDMA, applied to emulator memory by the caller.
    pub dma_writes: Vec<(u32, Vec<u8>)>,
}

impl<'a, Q: QspiPort, N: NvmcPort> Peripherals<'a, Q, N> {
    /// Reset state, with the retained POWER registers given.
    pub fn new(qspi_port: &'a mut Q, nvmc_port: &'a mut N, resetreas: u32, gpregret: u32) -> Self {
        Peripherals {
            qspi_port,
            nvmc_port,
            resetreas,
            gpregret,
            gpregret2: 0,
            dcdcen: 0,
            approtect_disable: 0,
            hfclk_started: false,
            lfclk_started: false,
            lfclksrc: 0,
            wdt_running: false,
            wdt_crv: 0xFFFF_FFFF,
            wdt_rren: 1,
            wdt_config: 1,
            wdt_pending: 0,
            wdt_deadline_us: u64::MAX,
            nvmc_config: 0,
            icachecnf: 0,
            acl: [AclRegion::default(); 8],
            qspi_enable: 0,
            qspi_active: false,
            qspi_ready_event: 0,
            qspi_inten: 0,
            qspi_read: [0; 3],
            qspi_write: [0; 3],
            qspi_erase: [0; 2],
            qspi_psel: [0xFFFF_FFFF; 6],
            qspi_xipoffset: 0,
            qspi_ifconfig0: 0,
            qspi_ifconfig1: 0x0004_0480,
            qspi_dpmdur: 0xFFFF_FFFF,
            qspi_addrconf: 0x0000_00B7,
            qspi_iftiming: 0x0000_0200,
            qspi_cinstrconf: 0,
            qspi_cinstrdat: [0; 2],
            cpacr: 0,
            vtor: 0,
            scs_store: Default::default(),
            errata: Default::default(),
            nvic: crate::nvic::Nvic::new(),
            systick: crate::systick::SysTick::new(),
            mpu: crate::mpu::Mpu::new(),
            ipsr: 0,
            rtc1: crate::rtc::Rtc::new(),
            uarte0: crate::uarte::Uarte::new(),
            radio: hw_models::radio::Radio::new(RAM_START..RAM_START + RAM_SIZE),
            air: None,
            dma_source_bytes: None,
            uicr: crate::ficr::Uicr::erased(),
            gpio: Default::default(),
            counters: HwCounters::default(),
            fixups: Vec::new(),
            dma_writes: Vec::new(),
        }
    }

    /// Whether CP10/CP11 (the FPU) are enabled for privileged and user code.
    pub fn fpu_enabled(&self) -> bool {
        self.cpacr & (0xF << 20) == (0xF << 20)
    }

    fn acl_check(&self, addr: u32) -> Result<(), HwEvent> {
        match self
            .acl
            .iter()
            .position(|r| r.denies_write() && r.contains(addr))
        {
            Some(region) => Err(HwError::AclViolation { addr, region }.into()),
            None => Ok(()),
        }
    }

    /// The watchdog already runs at power-on (started before a soft reset, which does not stop
    /// it): `crv` ticks of 32.768 kHz, reload registers `rren`, counted from `now_us`.
    pub fn start_watchdog(&mut self, crv: u32, rren: u32, now_us: u64) {
        self.wdt_crv = crv;
        self.wdt_rren = rren;
        self.wdt_running = true;
        self.wdt_reload(now_us);
    }

    /// Arms the watchdog deadline from CRV (32.768 kHz ticks) at simulated time `now_us`.
    fn wdt_reload(&mut self, now_us: u64) {
        let ticks = u64::from(self.wdt_crv) + 1;
        self.wdt_deadline_us = now_us + ticks * 1_000_000 / 32_768;
    }

    /// The watchdog has expired at `now_us`.
    pub fn wdt_expired(&self, now_us: u64) -> bool {
        self.wdt_running && now_us >= self.wdt_deadline_us
    }

    /// A CPU store of `size` bytes of `value` at `addr` in the flash window.
    pub fn flash_store(&mut self, addr: u32, size: usize, value: u32) -> Result<(), HwEvent> {
        if self.nvmc_config & 0b11 != 1 {
            return Err(HwError::FlashWriteNotEnabled {
                addr,
                config: self.nvmc_config,
            }
            .into());
        }
        if size != 4 || !addr.is_multiple_of(4) {
            return Err(HwError::FlashWriteNotWord { addr, size }.into());
        }
        self.acl_check(addr)?;
        let result = self.nvmc_port.write_word(addr, value);
        // Whatever happened (a torn write included), the window shows what the flash holds.
        let mut now = [0u8; 4];
        self.nvmc_port.read(addr, &mut now).map_err(flash_event)?;
        self.fixups.push((addr, u32::from_le_bytes(now)));
        result.map_err(flash_event)?;
        self.counters.nvmc_word_writes += 1;
        Ok(())
    }

    /// Brings the NVIC's view of the interrupt sources up to `now_us`: the peripherals' lines
    /// (RADIO is IRQ 1, UARTE0 IRQ 2, RTC1 IRQ 17, QSPI IRQ 41: nRF52840 PS, "Instantiation") and SysTick's
    /// reloads. RADIO EasyDMA writes land in `dma_writes`.
    pub fn update_interrupts(&mut self, now_us: u64) {
        self.pump_air(now_us);
        let mut lines = 0u64;
        if self.rtc1.irq(now_us) {
            lines |= 1 << 17;
        }
        if self.uarte0.irq(now_us) {
            lines |= 1 << 2;
        }
        if self.radio.irq(now_us) {
            lines |= 1 << 1;
        }
        if self.qspi_ready_event & self.qspi_inten & 1 != 0 {
            lines |= 1 << 41;
        }
        self.dma_writes.append(&mut self.radio.dma_writes);
        self.nvic.set_lines(lines);
        if self.systick.poll(now_us) > 0 {
            self.nvic.pend(crate::nvic::SYSTICK);
        }
    }

    fn pump_air(&mut self, now_us: u64) {
        if let Some(air) = self.air.as_mut() {
            air.pump(now_us, &mut self.radio);
        }
    }

    /// The earliest time after `now_us` at which a modelled source raises an interrupt (or a
    /// packet goes on air).
    pub fn next_interrupt_us(&self, now_us: u64) -> Option<u64> {
        [
            self.rtc1.next_irq_us(now_us),
            self.uarte0.next_event_us(),
            self.radio.next_event_us(),
            self.systick.next_irq_us(now_us),
        ]
        .into_iter()
        .flatten()
        .filter(|&t| t > now_us)
        .min()
    }

    /// Reads one 32-bit peripheral register.
    pub fn read(&mut self, addr: u32, size: usize, now_us: u64) -> Result<u32, HwEvent> {
        if size != 4 || !addr.is_multiple_of(4) {
            return Err(HwError::BadAccessSize { addr, size }.into());
        }
        let unknown = HwEvent::Error(HwError::UnknownRegister { addr, write: false });
        let base = addr & !0xFFF;
        let off = addr & 0xFFF;
        let value = match (base, off) {
            (POWER_CLOCK_BASE, 0x100) => u32::from(self.hfclk_started),
            (POWER_CLOCK_BASE, 0x104) => u32::from(self.lfclk_started),
            (POWER_CLOCK_BASE, 0x400) => self.resetreas,
            (POWER_CLOCK_BASE, 0x40C) => {
                if self.hfclk_started {
                    0x0001_0001
                } else {
                    0
                }
            }
            (POWER_CLOCK_BASE, 0x418) => {
                if self.lfclk_started {
                    0x0001_0000 | self.lfclksrc
                } else {
                    0
                }
            }
            (POWER_CLOCK_BASE, 0x518) => self.lfclksrc,
            (POWER_CLOCK_BASE, 0x51C) => self.gpregret,
            (POWER_CLOCK_BASE, 0x520) => self.gpregret2,
            (POWER_CLOCK_BASE, 0x578) => self.dcdcen,
            // APPROTECT.DISABLE (variants from AAF0 on): SWDISABLE is 0x5A.
            (POWER_CLOCK_BASE, 0x558) => self.approtect_disable,
            (WDT_BASE, 0x400) => u32::from(self.wdt_running),
            (WDT_BASE, 0x404) => self.wdt_rren & !self.wdt_pending,
            (WDT_BASE, 0x504) => self.wdt_crv,
            (WDT_BASE, 0x508) => self.wdt_rren,
            (WDT_BASE, 0x50C) => self.wdt_config,
            (NVMC_ACL_BASE, 0x400) | (NVMC_ACL_BASE, 0x408) => 1,
            (NVMC_ACL_BASE, 0x504) => self.nvmc_config,
            (NVMC_ACL_BASE, 0x540) => self.icachecnf,
            (NVMC_ACL_BASE, 0x548) | (NVMC_ACL_BASE, 0x54C) => 0,
            (NVMC_ACL_BASE, 0x800..=0x87F) => {
                let r = &self.acl[((off - 0x800) / 0x10) as usize];
                match off & 0xF {
                    0x0 => r.addr,
                    0x4 => r.size,
                    0x8 => r.perm,
                    _ => return Err(unknown),
                }
            }
            (QSPI_BASE, 0x100) => self.qspi_ready_event,
            (QSPI_BASE, 0x300) | (QSPI_BASE, 0x304) | (QSPI_BASE, 0x308) => self.qspi_inten,
            (QSPI_BASE, 0x500) => self.qspi_enable,
            (QSPI_BASE, 0x504..=0x50C) => self.qspi_read[((off - 0x504) / 4) as usize],
            (QSPI_BASE, 0x510..=0x518) => self.qspi_write[((off - 0x510) / 4) as usize],
            (QSPI_BASE, 0x51C..=0x520) => self.qspi_erase[((off - 0x51C) / 4) as usize],
            (QSPI_BASE, 0x524..=0x53C) if off != 0x52C => {
                self.qspi_psel[((off - 0x524) / 4) as usize - usize::from(off > 0x52C)]
            }
            (QSPI_BASE, 0x540) => self.qspi_xipoffset,
            (QSPI_BASE, 0x544) => self.qspi_ifconfig0,
            (QSPI_BASE, 0x600) => self.qspi_ifconfig1,
            (QSPI_BASE, 0x604) => {
                // STATUS: READY (no task in progress; every task completes at once here) and
                // SREG, the flash's status register as the peripheral last polled it.
                let mut sr = [0u8; 1];
                self.qspi_port
                    .custom(0x05, &mut sr, false)
                    .map_err(flash_event)?;
                (u32::from(sr[0]) << 24) | (1 << 3)
            }
            (QSPI_BASE, 0x614) => self.qspi_dpmdur,
            (QSPI_BASE, 0x624) => self.qspi_addrconf,
            (QSPI_BASE, 0x634) => self.qspi_cinstrconf,
            (QSPI_BASE, 0x638) => self.qspi_cinstrdat[0],
            (QSPI_BASE, 0x63C) => self.qspi_cinstrdat[1],
            (QSPI_BASE, 0x640) => self.qspi_iftiming,
            (GPIO_BASE, o) if gpio_storage(o) => self.gpio.get(&o).copied().unwrap_or(
                // PIN_CNF resets to 0x2 (input buffer disconnected).
                if gpio_port_offset(o) >= 0x700 { 2 } else { 0 },
            ),
            // ICTR: INTLINESNUM 1, 64 interrupt lines (the nRF52840 uses 48).
            (SCS_BASE, 0x004) => 1,
            (SCS_BASE, 0xD00) => CPUID_CORTEX_M4,
            (SCS_BASE, 0xD08) => self.vtor,
            (SCS_BASE, 0xD88) => self.cpacr,
            (SCS_BASE, o @ 0x010..=0x01C) => self.systick.read(o, now_us).ok_or(unknown)?,
            (SCS_BASE, o @ 0xD90..=0xDB8) => self.mpu.read(o).ok_or(unknown)?,
            (SCS_BASE, o) if self.nvic.read(o, self.ipsr).is_some() => {
                self.nvic.read(o, self.ipsr).unwrap_or_default()
            }
            (SCS_BASE, o) if scs_storage(o) => self.scs_store.get(&o).copied().unwrap_or(0),
            (crate::ficr::FICR_BASE, o) => crate::ficr::ficr_word(o).ok_or(unknown)?,
            (RTC1_BASE, o) => self.rtc1.read(o, now_us).ok_or(unknown)?,
            (UARTE0_BASE, o) => self
                .uarte0
                .read(o, now_us)
                .map_err(|e| uarte_error(e, addr, false))?,
            (RADIO_BASE, o) => {
                self.pump_air(now_us);
                let v = self.radio.read(o, now_us);
                self.dma_writes.append(&mut self.radio.dma_writes);
                v.map_err(|e| radio_error(e, addr, false))?
            }
            (crate::ficr::UICR_BASE, o) => self.uicr.word(o).ok_or(unknown)?,
            _ if crate::ficr::ERRATA_REGISTERS.contains(&addr) => {
                self.errata.get(&addr).copied().unwrap_or(0)
            }
            _ => return Err(unknown),
        };
        Ok(value)
    }

    /// Writes one 32-bit peripheral register at simulated time `now_us`.
    pub fn write(
        &mut self,
        addr: u32,
        size: usize,
        value: u32,
        now_us: u64,
    ) -> Result<(), HwEvent> {
        if size != 4 || !addr.is_multiple_of(4) {
            return Err(HwError::BadAccessSize { addr, size }.into());
        }
        let unknown = HwEvent::Error(HwError::UnknownRegister { addr, write: true });
        let base = addr & !0xFFF;
        let off = addr & 0xFFF;
        match (base, off) {
            (POWER_CLOCK_BASE, 0x000) => {
                if value & 1 != 0 {
                    self.hfclk_started = true;
                }
            }
            (POWER_CLOCK_BASE, 0x004) => {
                if value & 1 != 0 {
                    self.hfclk_started = false;
                }
            }
            (POWER_CLOCK_BASE, 0x008) => {
                if value & 1 != 0 {
                    self.lfclk_started = true;
                }
            }
            (POWER_CLOCK_BASE, 0x00C) => {
                if value & 1 != 0 {
                    self.lfclk_started = false;
                }
            }
            (POWER_CLOCK_BASE, 0x100) => self.hfclk_started &= value != 0,
            (POWER_CLOCK_BASE, 0x104) => self.lfclk_started &= value != 0,
            // RESETREAS: write 1 to clear.
            (POWER_CLOCK_BASE, 0x400) => self.resetreas &= !value,
            (POWER_CLOCK_BASE, 0x518) => self.lfclksrc = value & 0x3_0003,
            (POWER_CLOCK_BASE, 0x51C) => self.gpregret = value & 0xFF,
            (POWER_CLOCK_BASE, 0x520) => self.gpregret2 = value & 0xFF,
            (POWER_CLOCK_BASE, 0x578) => self.dcdcen = value & 1,
            (POWER_CLOCK_BASE, 0x558) => self.approtect_disable = value & 0xFF,
            (WDT_BASE, 0x000) => {
                if value & 1 != 0 && !self.wdt_running {
                    self.wdt_running = true;
                    self.wdt_reload(now_us);
                }
            }
            // CRV, RREN and CONFIG are read-only once the watchdog runs.
            (WDT_BASE, 0x504) if !self.wdt_running => self.wdt_crv = value.max(0xF),
            (WDT_BASE, 0x508) if !self.wdt_running => self.wdt_rren = value & 0xFF,
            (WDT_BASE, 0x50C) if !self.wdt_running => self.wdt_config = value & 0x9,
            (WDT_BASE, 0x504..=0x50C) => {}
            (WDT_BASE, 0x600..=0x61C) => {
                let bit = 1 << ((off - 0x600) / 4);
                if value == WDT_RELOAD && self.wdt_rren & bit != 0 {
                    self.wdt_pending |= bit;
                    if self.wdt_pending & self.wdt_rren == self.wdt_rren {
                        self.wdt_pending = 0;
                        self.counters.wdt_feeds += 1;
                        if self.wdt_running {
                            self.wdt_reload(now_us);
                        }
                    }
                }
            }
            (NVMC_ACL_BASE, 0x504) => self.nvmc_config = value & 0b11,
            // ERASEPAGE with the UICR's address: Tock's nRF52 NVMC driver erases the UICR
            // this way (`erase_uicr`); the PS lists only ERASEUICR for it. Modelled as
            // ERASEUICR, an assumption that DKs running Tock bear out.
            (NVMC_ACL_BASE, 0x508) if value == crate::ficr::UICR_BASE => {
                if self.nvmc_config & 0b11 != 2 {
                    return Err(HwError::EraseNotEnabled {
                        addr: value,
                        config: self.nvmc_config,
                    }
                    .into());
                }
                self.uicr.erase();
            }
            (NVMC_ACL_BASE, 0x508) => {
                if self.nvmc_config & 0b11 != 2 {
                    return Err(HwError::EraseNotEnabled {
                        addr: value,
                        config: self.nvmc_config,
                    }
                    .into());
                }
                if !value.is_multiple_of(PAGE_SIZE) || value >= FLASH_SIZE {
                    return Err(HwError::Flash(FlashError::Misaligned {
                        what: nrf52840_flash::Misalignment::EraseUnit,
                        value,
                    })
                    .into());
                }
                self.acl_check(value)?;
                let result = self.nvmc_port.erase_page(value);
                let mut page = vec![0u8; PAGE_SIZE as usize];
                self.nvmc_port.read(value, &mut page).map_err(flash_event)?;
                for (i, w) in page.chunks_exact(4).enumerate() {
                    let word = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                    self.fixups.push((value + 4 * i as u32, word));
                }
                result.map_err(flash_event)?;
                self.counters.nvmc_page_erases += 1;
            }
            (NVMC_ACL_BASE, 0x540) => self.icachecnf = value & 0x101,
            (NVMC_ACL_BASE, 0x548) | (NVMC_ACL_BASE, 0x54C) => {}
            (NVMC_ACL_BASE, 0x800..=0x87F) => {
                let r = &mut self.acl[((off - 0x800) / 0x10) as usize];
                let field = (off & 0xF) / 4;
                if field > 2 {
                    return Err(unknown);
                }
                // Each ACL register takes one write per reset; later writes are ignored.
                if r.written & (1 << field) == 0 {
                    r.written |= 1 << field;
                    match field {
                        0 => r.addr = value,
                        1 => r.size = value,
                        _ => r.perm = value & 0b110,
                    }
                }
            }
            (QSPI_BASE, 0x000) => {
                if value & 1 != 0 {
                    if self.qspi_enable & 1 == 0 {
                        return Err(HwError::QspiNotReady { task: "ACTIVATE" }.into());
                    }
                    self.qspi_active = true;
                    self.qspi_ready_event = 1;
                }
            }
            (QSPI_BASE, 0x004) if value & 1 != 0 => self.qspi_readstart()?,
            (QSPI_BASE, 0x008) if value & 1 != 0 => self.qspi_writestart()?,
            (QSPI_BASE, 0x00C) if value & 1 != 0 => self.qspi_erasestart()?,
            (QSPI_BASE, 0x010) => {
                if value & 1 != 0 {
                    self.qspi_active = false;
                    self.qspi_ready_event = 1;
                }
            }
            (QSPI_BASE, 0x004..=0x00C) => {}
            (QSPI_BASE, 0x100) => self.qspi_ready_event = value & 1,
            (QSPI_BASE, 0x300) => self.qspi_inten = value & 1,
            (QSPI_BASE, 0x304) => self.qspi_inten |= value & 1,
            (QSPI_BASE, 0x308) => self.qspi_inten &= !(value & 1),
            (QSPI_BASE, 0x500) => {
                self.qspi_enable = value & 1;
                if self.qspi_enable == 0 {
                    self.qspi_active = false;
                }
            }
            (QSPI_BASE, 0x504..=0x50C) => self.qspi_read[((off - 0x504) / 4) as usize] = value,
            (QSPI_BASE, 0x510..=0x518) => self.qspi_write[((off - 0x510) / 4) as usize] = value,
            (QSPI_BASE, 0x51C..=0x520) => self.qspi_erase[((off - 0x51C) / 4) as usize] = value,
            (QSPI_BASE, 0x524..=0x53C) if off != 0x52C => {
                self.qspi_psel[((off - 0x524) / 4) as usize - usize::from(off > 0x52C)] = value
            }
            (QSPI_BASE, 0x540) => self.qspi_xipoffset = value,
            (QSPI_BASE, 0x544) => self.qspi_ifconfig0 = value,
            (QSPI_BASE, 0x600) => {
                self.qspi_ifconfig1 = value;
                let sckfreq = value >> 28;
                self.qspi_port.set_sck_hz(32_000_000 / (sckfreq + 1));
            }
            (QSPI_BASE, 0x614) => self.qspi_dpmdur = value,
            (QSPI_BASE, 0x624) => self.qspi_addrconf = value,
            (QSPI_BASE, 0x634) => self.qspi_custom(value)?,
            (QSPI_BASE, 0x638) => self.qspi_cinstrdat[0] = value,
            (QSPI_BASE, 0x63C) => self.qspi_cinstrdat[1] = value,
            (QSPI_BASE, 0x640) => self.qspi_iftiming = value,
            (GPIO_BASE, o) if gpio_storage(o) => {
                self.gpio.insert(o, value);
            }
            (SCS_BASE, 0xD08) => self.vtor = value & 0xFFFF_FF80,
            (SCS_BASE, o @ 0x010..=0x01C) => match self.systick.write(o, value, now_us) {
                Some(Ok(())) => {}
                Some(Err(what)) => return Err(HwError::Unsupported { addr, value, what }.into()),
                None => return Err(unknown),
            },
            (SCS_BASE, o @ 0xD90..=0xDB8) => self.mpu.write(o, value).ok_or(unknown)?,
            (SCS_BASE, o) if self.nvic.write(o, value).is_some() => {}
            (SCS_BASE, 0xD0C) => {
                if value & 0xFFFF_0004 == AIRCR_SYSRESETREQ {
                    return Err(HwEvent::Stop(HwStop::SystemReset));
                }
                self.scs_store.insert(off, value);
            }
            (SCS_BASE, 0xD88) => self.cpacr = value & (0xF << 20),
            (SCS_BASE, o) if scs_storage(o) => {
                self.scs_store.insert(o, value);
            }
            _ if crate::ficr::ERRATA_REGISTERS.contains(&addr) => {
                self.errata.insert(addr, value);
            }
            (RTC1_BASE, o) => self.rtc1.write(o, value, now_us).ok_or(unknown)?,
            (RADIO_BASE, o) => {
                self.pump_air(now_us);
                let bytes = self.dma_source_bytes.take();
                let r = self.radio.write(o, value, now_us, bytes.as_deref());
                self.dma_writes.append(&mut self.radio.dma_writes);
                r.map_err(|e| radio_error(e, addr, true))?
            }
            (UARTE0_BASE, o) => {
                let bytes = self.dma_source_bytes.take();
                self.uarte0
                    .write(o, value, bytes.as_deref(), now_us)
                    .map_err(|e| uarte_error(e, addr, true))?
            }
            (crate::ficr::UICR_BASE, o) => {
                if self.nvmc_config & 0b11 != 1 {
                    return Err(HwError::FlashWriteNotEnabled {
                        addr,
                        config: self.nvmc_config,
                    }
                    .into());
                }
                self.uicr.program(o, value).ok_or(unknown)?;
            }
            // ERASEUICR
            (NVMC_ACL_BASE, 0x514) if value & 1 != 0 => {
                if self.nvmc_config & 0b11 != 2 {
                    return Err(HwError::EraseNotEnabled {
                        addr: crate::ficr::UICR_BASE,
                        config: self.nvmc_config,
                    }
                    .into());
                }
                self.uicr.erase();
            }
            _ => return Err(unknown),
        }
        Ok(())
    }

    fn require_active(&self, task: &'static str) -> Result<(), HwEvent> {
        if self.qspi_enable & 1 == 0 || !self.qspi_active {
            return Err(HwError::QspiNotReady { task }.into());
        }
        Ok(())
    }

    /// Checks an EasyDMA RAM buffer, flash address and length against the QSPI rules.
    fn dma_rules(task: &'static str, ram: u32, flash: u32, cnt: u32) -> Result<(), HwEvent> {
        let fail = |what, value| Err(HwError::DmaRule { task, what, value }.into());
        if !(RAM_START..RAM_START + RAM_SIZE).contains(&ram)
            || ram
                .checked_add(cnt)
                .is_none_or(|end| end > RAM_START + RAM_SIZE)
        {
            return fail("RAM buffer outside data RAM", ram);
        }
        if !ram.is_multiple_of(4) {
            return fail("RAM buffer not word aligned", ram);
        }
        if !flash.is_multiple_of(4) {
            return fail("flash address not word aligned", flash);
        }
        if cnt == 0 || !cnt.is_multiple_of(4) || cnt > 0x3_FFFF {
            return fail("length not a non-zero multiple of 4 within CNT", cnt);
        }
        Ok(())
    }

    fn qspi_readstart(&mut self) -> Result<(), HwEvent> {
        self.require_active("READSTART")?;
        let [src, dst, cnt] = self.qspi_read;
        Self::dma_rules("READSTART", dst, src, cnt)?;
        let mut buf = AlignedBuf::new(cnt as usize);
        self.qspi_port
            .read(src, buf.as_mut())
            .map_err(flash_event)?;
        self.counters.qspi_read_bytes += u64::from(cnt);
        self.dma_writes.push((dst, buf.as_mut().to_vec()));
        self.qspi_ready_event = 1;
        Ok(())
    }

    fn qspi_writestart(&mut self) -> Result<(), HwEvent> {
        self.require_active("WRITESTART")?;
        let [dst, src, cnt] = self.qspi_write;
        Self::dma_rules("WRITESTART", src, dst, cnt)?;
        // The caller fills the source bytes from emulator RAM before the task runs.
        Err(HwEvent::Error(HwError::Unsupported {
            addr: QSPI_BASE + 0x008,
            value: cnt,
            what: "WRITESTART must go through Peripherals::qspi_write_from",
        }))
    }

    /// WRITESTART with the EasyDMA source bytes already fetched from emulator RAM.
    pub fn qspi_write_from(&mut self, src: &[u8]) -> Result<(), HwEvent> {
        let dst = self.qspi_write[0];
        let mut buf = AlignedBuf::new(src.len());
        buf.as_mut().copy_from_slice(src);
        self.qspi_port
            .write(dst, buf.as_mut())
            .map_err(flash_event)?;
        self.counters.qspi_write_bytes += src.len() as u64;
        self.qspi_ready_event = 1;
        Ok(())
    }

    /// The RAM range WRITESTART will read, after checking the rules.
    pub fn qspi_write_source(&self) -> Result<(u32, u32), HwEvent> {
        self.require_active("WRITESTART")?;
        let [dst, src, cnt] = self.qspi_write;
        Self::dma_rules("WRITESTART", src, dst, cnt)?;
        Ok((src, cnt))
    }

    fn qspi_erasestart(&mut self) -> Result<(), HwEvent> {
        self.require_active("ERASESTART")?;
        let [ptr, len] = self.qspi_erase;
        let len = match len {
            0 => QspiEraseLen::Sector4K,
            1 => QspiEraseLen::Block64K,
            2 => QspiEraseLen::All,
            other => {
                return Err(HwError::Unsupported {
                    addr: QSPI_BASE + 0x520,
                    value: other,
                    what: "ERASE.LEN",
                }
                .into())
            }
        };
        self.qspi_port.erase(ptr, len).map_err(flash_event)?;
        self.counters.qspi_erases += 1;
        self.qspi_ready_event = 1;
        Ok(())
    }

    fn qspi_custom(&mut self, conf: u32) -> Result<(), HwEvent> {
        self.qspi_cinstrconf = conf;
        self.require_active("CINSTRCONF")?;
        if conf & (1 << 16) != 0 {
            return Err(HwError::Unsupported {
                addr: QSPI_BASE + 0x634,
                value: conf,
                what: "CINSTRCONF.LFEN (long frame)",
            }
            .into());
        }
        let opcode = (conf & 0xFF) as u8;
        let length = (conf >> 8) & 0xF;
        if !(1..=9).contains(&length) {
            return Err(HwError::Unsupported {
                addr: QSPI_BASE + 0x634,
                value: conf,
                what: "CINSTRCONF.LENGTH",
            }
            .into());
        }
        let wipwait = conf & (1 << 14) != 0;
        let wren = conf & (1 << 15) != 0;
        if wipwait {
            // The peripheral polls WIP before sending the instruction.
            for _ in 0..1_000_000 {
                let mut sr = [0u8; 1];
                self.qspi_port
                    .custom(0x05, &mut sr, false)
                    .map_err(flash_event)?;
                if sr[0] & 1 == 0 {
                    break;
                }
                self.qspi_port.delay_us(10);
            }
        }
        let mut data = [0u8; 8];
        data[..4].copy_from_slice(&self.qspi_cinstrdat[0].to_le_bytes());
        data[4..].copy_from_slice(&self.qspi_cinstrdat[1].to_le_bytes());
        let n = (length - 1) as usize;
        self.qspi_port
            .custom(opcode, &mut data[..n], wren)
            .map_err(flash_event)?;
        self.qspi_cinstrdat[0] = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        self.qspi_cinstrdat[1] = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
        self.counters.qspi_custom += 1;
        self.qspi_ready_event = 1;
        Ok(())
    }
}

/// GPIO P0/P1 registers kept as plain storage (the pins drive nothing modelled).
fn gpio_storage(off: u32) -> bool {
    off < 0x300 + 0x780 && matches!(gpio_port_offset(off), 0x504..=0x524 | 0x700..=0x77C)
}

/// Offset inside its port's block (P1 registers sit 0x300 above P0's).
fn gpio_port_offset(off: u32) -> u32 {
    if off >= 0x800 {
        off - 0x300
    } else {
        off
    }
}

/// SCS registers kept as plain storage: SysTick, NVIC enable/pending/priority, SCB control and
/// fault status, FPU context control.
fn scs_storage(off: u32) -> bool {
    matches!(off,
        0x010..=0x018
        | 0x100..=0x11C
        | 0x180..=0x19C
        | 0x200..=0x21C
        | 0x280..=0x29C
        | 0x400..=0x4EC
        | 0xD04
        | 0xD0C..=0xD3C
        | 0xF34..=0xF3C)
}

/// A word-aligned host buffer, so the port models' own EasyDMA alignment checks see the
/// alignment of the emulated RAM buffer (already checked) rather than of the host allocation.
struct AlignedBuf {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let bytes = vec![0u8; len + 3];
        let start = bytes.as_ptr().align_offset(4).min(3);
        AlignedBuf { bytes, start, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
}
