//! nRF52840 register blocks used by the flash drivers and the bootloader.
//!
//! Addresses, offsets and fields follow the nRF52840 Product Specification v1.x (QSPI, NVMC,
//! ACL, POWER, CLOCK, WDT and GPIO chapters) and agree with Nordic's `nrf52840.h` MDK header.
//! Only the registers this project touches are named; the gaps are reserved.

use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

/// QSPI peripheral base address.
pub const QSPI_BASE: usize = 0x4002_9000;
/// NVMC base address.
pub const NVMC_BASE: usize = 0x4001_E000;
/// ACL base address (shares the NVMC's 4 KiB peripheral slot; its registers start at 0x800).
pub const ACL_BASE: usize = 0x4001_E000;
/// POWER base address.
pub const POWER_BASE: usize = 0x4000_0000;
/// CLOCK base address (same slot as POWER, different registers).
pub const CLOCK_BASE: usize = 0x4000_0000;
/// WDT base address.
pub const WDT_BASE: usize = 0x4001_0000;
/// GPIO port 0 base address (port 1 is at 0x5000_0300).
pub const GPIO_P0_BASE: usize = 0x5000_0000;
/// Start of the QSPI execute-in-place window.
pub const QSPI_XIP_BASE: usize = 0x1200_0000;
/// Value that reloads the watchdog when written to an enabled RR register.
pub const WDT_RELOAD_VALUE: u32 = 0x6E52_4635;

register_bitfields![u32,
    /// A task register: write 1 to trigger.
    pub Task [
        TRIGGER OFFSET(0) NUMBITS(1) []
    ],
    /// An event register: 1 when generated; write 0 to clear.
    pub Event [
        GENERATED OFFSET(0) NUMBITS(1) []
    ],
    /// QSPI INTEN/INTENSET/INTENCLR.
    pub QspiInt [
        READY OFFSET(0) NUMBITS(1) []
    ],
    /// QSPI ENABLE.
    pub QspiEnable [
        ENABLE OFFSET(0) NUMBITS(1) [Disabled = 0, Enabled = 1]
    ],
    /// QSPI READ.CNT / WRITE.CNT: bytes, a multiple of 4.
    pub QspiCount [
        CNT OFFSET(0) NUMBITS(18) []
    ],
    /// QSPI ERASE.LEN.
    pub QspiEraseLen [
        LEN OFFSET(0) NUMBITS(2) [Len4KB = 0, Len64KB = 1, All = 2]
    ],
    /// A PSEL register.
    pub Psel [
        PIN OFFSET(0) NUMBITS(5) [],
        PORT OFFSET(5) NUMBITS(1) [],
        CONNECT OFFSET(31) NUMBITS(1) [Connected = 0, Disconnected = 1]
    ],
    /// QSPI IFCONFIG0: opcodes used by READ/WRITE tasks and addressing.
    pub IfConfig0 [
        READOC OFFSET(0) NUMBITS(3) [
            FastRead = 0, Read2O = 1, Read2IO = 2, Read4O = 3, Read4IO = 4
        ],
        WRITEOC OFFSET(3) NUMBITS(3) [Pp = 0, Pp2O = 1, Pp4O = 2, Pp4IO = 3],
        ADDRMODE OFFSET(6) NUMBITS(1) [Bit24 = 0, Bit32 = 1],
        DPMENABLE OFFSET(7) NUMBITS(1) [Disable = 0, Enable = 1],
        PPSIZE OFFSET(12) NUMBITS(1) [Bytes256 = 0, Bytes512 = 1]
    ],
    /// QSPI IFCONFIG1: SCK = 32 MHz / (SCKFREQ + 1).
    pub IfConfig1 [
        SCKDELAY OFFSET(0) NUMBITS(8) [],
        DPMEN OFFSET(24) NUMBITS(1) [Exit = 0, Enter = 1],
        SPIMODE OFFSET(25) NUMBITS(1) [Mode0 = 0, Mode3 = 1],
        SCKFREQ OFFSET(28) NUMBITS(4) []
    ],
    /// QSPI STATUS.
    pub QspiStatus [
        DPM OFFSET(2) NUMBITS(1) [],
        READY OFFSET(3) NUMBITS(1) [Busy = 0, Ready = 1],
        SREG OFFSET(24) NUMBITS(8) []
    ],
    /// QSPI DPMDUR, in units of 16 µs.
    pub DpmDur [
        ENTER OFFSET(0) NUMBITS(16) [],
        EXIT OFFSET(16) NUMBITS(16) []
    ],
    /// QSPI ADDRCONF (extended addressing).
    pub AddrConf [
        OPCODE OFFSET(0) NUMBITS(8) [],
        BYTE0 OFFSET(8) NUMBITS(8) [],
        BYTE1 OFFSET(16) NUMBITS(8) [],
        MODE OFFSET(24) NUMBITS(2) [NoInstr = 0, Opcode = 1, OpByte0 = 2, All = 3],
        WIPWAIT OFFSET(26) NUMBITS(1) [],
        WREN OFFSET(27) NUMBITS(1) []
    ],
    /// QSPI CINSTRCONF: writing it starts the custom instruction.
    pub CinstrConf [
        OPCODE OFFSET(0) NUMBITS(8) [],
        /// Opcode plus data bytes: 1..=9.
        LENGTH OFFSET(8) NUMBITS(4) [],
        LIO2 OFFSET(12) NUMBITS(1) [],
        LIO3 OFFSET(13) NUMBITS(1) [],
        WIPWAIT OFFSET(14) NUMBITS(1) [],
        WREN OFFSET(15) NUMBITS(1) [],
        LFEN OFFSET(16) NUMBITS(1) [],
        LFSTOP OFFSET(17) NUMBITS(1) []
    ],
    /// QSPI IFTIMING.
    pub IfTiming [
        RXDELAY OFFSET(8) NUMBITS(3) []
    ],
    /// NVMC READY / READYNEXT.
    pub NvmcReady [
        READY OFFSET(0) NUMBITS(1) [Busy = 0, Ready = 1]
    ],
    /// NVMC CONFIG.
    pub NvmcConfig [
        WEN OFFSET(0) NUMBITS(2) [Ren = 0, Wen = 1, Een = 2]
    ],
    /// NVMC ERASEALL / ERASEUICR.
    pub NvmcErase [
        ERASE OFFSET(0) NUMBITS(1) [NoOperation = 0, Erase = 1]
    ],
    /// NVMC ERASEPAGEPARTIALCFG: duration of one partial erase, ms.
    pub NvmcPartialCfg [
        DURATION OFFSET(0) NUMBITS(7) []
    ],
    /// NVMC ICACHECNF.
    pub ICacheCnf [
        CACHEEN OFFSET(0) NUMBITS(1) [],
        CACHEPROFEN OFFSET(8) NUMBITS(1) []
    ],
    /// ACL[n].PERM: set bits cannot be cleared until reset.
    pub AclPerm [
        WRITE OFFSET(1) NUMBITS(1) [Enable = 0, Disable = 1],
        READ OFFSET(2) NUMBITS(1) [Enable = 0, Disable = 1]
    ],
    /// POWER RESETREAS: write 1 to clear a bit.
    pub ResetReas [
        RESETPIN OFFSET(0) NUMBITS(1) [],
        DOG OFFSET(1) NUMBITS(1) [],
        SREQ OFFSET(2) NUMBITS(1) [],
        LOCKUP OFFSET(3) NUMBITS(1) [],
        OFF OFFSET(16) NUMBITS(1) [],
        LPCOMP OFFSET(17) NUMBITS(1) [],
        DIF OFFSET(18) NUMBITS(1) [],
        NFC OFFSET(19) NUMBITS(1) [],
        VBUS OFFSET(20) NUMBITS(1) []
    ],
    /// POWER GPREGRET / GPREGRET2: retained across soft resets.
    pub GpRegRet [
        GPREGRET OFFSET(0) NUMBITS(8) []
    ],
    /// CLOCK HFCLKSTAT.
    pub HfClkStat [
        SRC OFFSET(0) NUMBITS(1) [Rc = 0, Xtal = 1],
        STATE OFFSET(16) NUMBITS(1) [NotRunning = 0, Running = 1]
    ],
    /// CLOCK LFCLKSTAT.
    pub LfClkStat [
        SRC OFFSET(0) NUMBITS(2) [Rc = 0, Xtal = 1, Synth = 2],
        STATE OFFSET(16) NUMBITS(1) [NotRunning = 0, Running = 1]
    ],
    /// CLOCK LFCLKSRC.
    pub LfClkSrc [
        SRC OFFSET(0) NUMBITS(2) [Rc = 0, Xtal = 1, Synth = 2],
        BYPASS OFFSET(16) NUMBITS(1) [],
        EXTERNAL OFFSET(17) NUMBITS(1) []
    ],
    /// WDT RUNSTATUS.
    pub WdtRunStatus [
        RUNNING OFFSET(0) NUMBITS(1) []
    ],
    /// WDT RREN: one bit per reload register.
    pub WdtRren [
        RR OFFSET(0) NUMBITS(8) []
    ],
    /// GPIO PIN_CNF[n].
    pub PinCnf [
        DIR OFFSET(0) NUMBITS(1) [Input = 0, Output = 1],
        INPUT OFFSET(1) NUMBITS(1) [Connect = 0, Disconnect = 1],
        PULL OFFSET(2) NUMBITS(2) [Disabled = 0, Pulldown = 1, Pullup = 3],
        DRIVE OFFSET(8) NUMBITS(3) [S0S1 = 0, H0S1 = 1, S0H1 = 2, H0H1 = 3],
        SENSE OFFSET(16) NUMBITS(2) [Disabled = 0, High = 2, Low = 3]
    ],
    /// WDT CONFIG.
    pub WdtConfig [
        SLEEP OFFSET(0) NUMBITS(1) [Pause = 0, Run = 1],
        HALT OFFSET(3) NUMBITS(1) [Pause = 0, Run = 1]
    ]
];

register_structs! {
    /// QSPI (0x4002_9000).
    pub QspiRegisters {
        (0x000 => pub tasks_activate: WriteOnly<u32, Task::Register>),
        (0x004 => pub tasks_readstart: WriteOnly<u32, Task::Register>),
        (0x008 => pub tasks_writestart: WriteOnly<u32, Task::Register>),
        (0x00C => pub tasks_erasestart: WriteOnly<u32, Task::Register>),
        (0x010 => pub tasks_deactivate: WriteOnly<u32, Task::Register>),
        (0x014 => _reserved0),
        (0x100 => pub events_ready: ReadWrite<u32, Event::Register>),
        (0x104 => _reserved1),
        (0x300 => pub inten: ReadWrite<u32, QspiInt::Register>),
        (0x304 => pub intenset: ReadWrite<u32, QspiInt::Register>),
        (0x308 => pub intenclr: ReadWrite<u32, QspiInt::Register>),
        (0x30C => _reserved2),
        (0x500 => pub enable: ReadWrite<u32, QspiEnable::Register>),
        /// Flash source address (word aligned).
        (0x504 => pub read_src: ReadWrite<u32>),
        /// RAM destination address (word aligned).
        (0x508 => pub read_dst: ReadWrite<u32>),
        (0x50C => pub read_cnt: ReadWrite<u32, QspiCount::Register>),
        /// Flash destination address (word aligned).
        (0x510 => pub write_dst: ReadWrite<u32>),
        /// RAM source address (word aligned).
        (0x514 => pub write_src: ReadWrite<u32>),
        (0x518 => pub write_cnt: ReadWrite<u32, QspiCount::Register>),
        (0x51C => pub erase_ptr: ReadWrite<u32>),
        (0x520 => pub erase_len: ReadWrite<u32, QspiEraseLen::Register>),
        (0x524 => pub psel_sck: ReadWrite<u32, Psel::Register>),
        (0x528 => pub psel_csn: ReadWrite<u32, Psel::Register>),
        (0x52C => _reserved3),
        (0x530 => pub psel_io0: ReadWrite<u32, Psel::Register>),
        (0x534 => pub psel_io1: ReadWrite<u32, Psel::Register>),
        (0x538 => pub psel_io2: ReadWrite<u32, Psel::Register>),
        (0x53C => pub psel_io3: ReadWrite<u32, Psel::Register>),
        (0x540 => pub xipoffset: ReadWrite<u32>),
        (0x544 => pub ifconfig0: ReadWrite<u32, IfConfig0::Register>),
        (0x548 => _reserved4),
        (0x600 => pub ifconfig1: ReadWrite<u32, IfConfig1::Register>),
        (0x604 => pub status: ReadOnly<u32, QspiStatus::Register>),
        (0x608 => _reserved5),
        (0x614 => pub dpmdur: ReadWrite<u32, DpmDur::Register>),
        (0x618 => _reserved6),
        (0x624 => pub addrconf: ReadWrite<u32, AddrConf::Register>),
        (0x628 => _reserved7),
        (0x634 => pub cinstrconf: ReadWrite<u32, CinstrConf::Register>),
        /// Custom instruction data bytes 0..=3 (byte 0 in bits 7:0).
        (0x638 => pub cinstrdat0: ReadWrite<u32>),
        /// Custom instruction data bytes 4..=7.
        (0x63C => pub cinstrdat1: ReadWrite<u32>),
        (0x640 => pub iftiming: ReadWrite<u32, IfTiming::Register>),
        (0x644 => @END),
    }
}

register_structs! {
    /// NVMC (0x4001_E000).
    pub NvmcRegisters {
        (0x000 => _reserved0),
        (0x400 => pub ready: ReadOnly<u32, NvmcReady::Register>),
        (0x404 => _reserved1),
        (0x408 => pub readynext: ReadOnly<u32, NvmcReady::Register>),
        (0x40C => _reserved2),
        (0x504 => pub config: ReadWrite<u32, NvmcConfig::Register>),
        /// Writing a page's start address erases it (CONFIG = EEN).
        (0x508 => pub erasepage: ReadWrite<u32>),
        (0x50C => pub eraseall: ReadWrite<u32, NvmcErase::Register>),
        (0x510 => _reserved3),
        (0x514 => pub eraseuicr: ReadWrite<u32, NvmcErase::Register>),
        (0x518 => pub erasepagepartial: ReadWrite<u32>),
        (0x51C => pub erasepagepartialcfg: ReadWrite<u32, NvmcPartialCfg::Register>),
        (0x520 => _reserved4),
        (0x540 => pub icachecnf: ReadWrite<u32, ICacheCnf::Register>),
        (0x544 => _reserved5),
        (0x548 => pub ihit: ReadWrite<u32>),
        (0x54C => pub imiss: ReadWrite<u32>),
        (0x550 => @END),
    }
}

register_structs! {
    /// One ACL region.
    pub AclRegion {
        /// Start of the region (page aligned).
        (0x0 => pub addr: ReadWrite<u32>),
        /// Size in bytes (multiple of the page size).
        (0x4 => pub size: ReadWrite<u32>),
        (0x8 => pub perm: ReadWrite<u32, AclPerm::Register>),
        (0xC => _unused),
        (0x10 => @END),
    }
}

register_structs! {
    /// ACL (0x4001_E000): eight regions, locked until reset once written.
    pub AclRegisters {
        (0x000 => _reserved0),
        (0x800 => pub acl: [AclRegion; 8]),
        (0x880 => @END),
    }
}

register_structs! {
    /// POWER (0x4000_0000): reset reason and retained registers.
    pub PowerRegisters {
        (0x000 => _reserved0),
        (0x400 => pub resetreas: ReadWrite<u32, ResetReas::Register>),
        (0x404 => _reserved1),
        (0x500 => pub systemoff: WriteOnly<u32, Task::Register>),
        (0x504 => _reserved2),
        (0x51C => pub gpregret: ReadWrite<u32, GpRegRet::Register>),
        (0x520 => pub gpregret2: ReadWrite<u32, GpRegRet::Register>),
        (0x524 => @END),
    }
}

register_structs! {
    /// CLOCK (0x4000_0000).
    pub ClockRegisters {
        (0x000 => pub tasks_hfclkstart: WriteOnly<u32, Task::Register>),
        (0x004 => pub tasks_hfclkstop: WriteOnly<u32, Task::Register>),
        (0x008 => pub tasks_lfclkstart: WriteOnly<u32, Task::Register>),
        (0x00C => pub tasks_lfclkstop: WriteOnly<u32, Task::Register>),
        (0x010 => _reserved0),
        (0x100 => pub events_hfclkstarted: ReadWrite<u32, Event::Register>),
        (0x104 => pub events_lfclkstarted: ReadWrite<u32, Event::Register>),
        (0x108 => _reserved1),
        (0x40C => pub hfclkstat: ReadOnly<u32, HfClkStat::Register>),
        (0x410 => _reserved2),
        (0x418 => pub lfclkstat: ReadOnly<u32, LfClkStat::Register>),
        (0x41C => _reserved3),
        (0x518 => pub lfclksrc: ReadWrite<u32, LfClkSrc::Register>),
        (0x51C => @END),
    }
}

register_structs! {
    /// One GPIO port (P0 at 0x5000_0000): only the pin configuration is used here.
    pub GpioRegisters {
        (0x000 => _reserved0),
        (0x700 => pub pin_cnf: [ReadWrite<u32, PinCnf::Register>; 32]),
        (0x780 => @END),
    }
}

register_structs! {
    /// WDT (0x4001_0000).
    pub WdtRegisters {
        (0x000 => pub tasks_start: WriteOnly<u32, Task::Register>),
        (0x004 => _reserved0),
        (0x100 => pub events_timeout: ReadWrite<u32, Event::Register>),
        (0x104 => _reserved1),
        (0x400 => pub runstatus: ReadOnly<u32, WdtRunStatus::Register>),
        (0x404 => pub reqstatus: ReadOnly<u32, WdtRren::Register>),
        (0x408 => _reserved2),
        /// Counter reload value in 32.768 kHz ticks.
        (0x504 => pub crv: ReadWrite<u32>),
        (0x508 => pub rren: ReadWrite<u32, WdtRren::Register>),
        (0x50C => pub config: ReadWrite<u32, WdtConfig::Register>),
        (0x510 => _reserved3),
        /// Write [`WDT_RELOAD_VALUE`] to reload.
        (0x600 => pub rr: [WriteOnly<u32>; 8]),
        (0x620 => @END),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn qspi_offsets_match_the_product_specification() {
        assert_eq!(offset_of!(QspiRegisters, events_ready), 0x100);
        assert_eq!(offset_of!(QspiRegisters, enable), 0x500);
        assert_eq!(offset_of!(QspiRegisters, erase_len), 0x520);
        assert_eq!(offset_of!(QspiRegisters, psel_io3), 0x53C);
        assert_eq!(offset_of!(QspiRegisters, ifconfig1), 0x600);
        assert_eq!(offset_of!(QspiRegisters, cinstrconf), 0x634);
        assert_eq!(size_of::<QspiRegisters>(), 0x644);
    }

    #[test]
    fn other_blocks() {
        assert_eq!(offset_of!(NvmcRegisters, config), 0x504);
        assert_eq!(offset_of!(NvmcRegisters, erasepage), 0x508);
        assert_eq!(offset_of!(AclRegisters, acl), 0x800);
        assert_eq!(size_of::<AclRegion>(), 0x10);
        assert_eq!(offset_of!(PowerRegisters, gpregret), 0x51C);
        assert_eq!(offset_of!(PowerRegisters, resetreas), 0x400);
        assert_eq!(offset_of!(ClockRegisters, hfclkstat), 0x40C);
        assert_eq!(offset_of!(WdtRegisters, rr), 0x600);
        assert_eq!(offset_of!(WdtRegisters, crv), 0x504);
        assert_eq!(offset_of!(GpioRegisters, pin_cnf), 0x700);
    }
}
