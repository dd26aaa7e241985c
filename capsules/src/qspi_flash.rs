//! nRF52840 QSPI driver for an external NOR flash (the DK's MX25R6435F).
//!
//! Interrupt driven and split-phase, the Tock way: every operation starts a QSPI task and returns;
//! the QSPI `READY` interrupt ([`QspiFlash::handle_interrupt`]) advances the operation and calls
//! the client when it is done. It implements
//!
//! - `kernel::hil::flash::Flash` with 4 KiB pages (`write_page` erases the sector, then programs
//!   it 256 bytes at a time), for any Tock capsule that speaks the flash HIL, and
//! - [`AsyncNor`], byte addressed, for the staged-update driver.
//!
//! Hardware rules it keeps (nRF52840 Product Specification, QSPI chapter):
//! - EasyDMA needs a word-aligned RAM pointer and a length that is a multiple of 4, and the flash
//!   address of READ/WRITE must be word aligned. Page buffers are `#[repr(align(4))]`; byte
//!   operations go through a word-aligned bounce buffer: reads fetch the aligned superset,
//!   programs pad the head and tail with 0xFF (programming 0xFF leaves NOR bits unchanged).
//! - One program never crosses a 256-byte flash page (the chip would wrap inside the page).
//! - The `READY` event after WRITE or ERASE means the transfer is done, not that the chip is:
//!   the driver then issues RDSR as a custom instruction with `WIPWAIT` set and repeats it until
//!   the status register's WIP bit reads clear.
//!
//! The interface runs single-line SPI (FASTREAD 0x0B, PP 0x02) at 8 MHz: well above what the
//! advertising bearer delivers, and needs no quad-enable bit written to the chip's status
//! register. Pins, clock divider and capacity are the board's ([`QspiConfig`]).

use core::cell::Cell;

use kernel::hil;
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::utilities::registers::interfaces::{Readable, Writeable};
use kernel::utilities::registers::{register_bitfields, register_structs, ReadWrite, WriteOnly};
use kernel::utilities::StaticRef;
use kernel::ErrorCode;

use crate::nor::{range_ok, AsyncNor, AsyncNorClient, SECTOR_SIZE};

/// Base address of the QSPI peripheral.
pub const QSPI_BASE: usize = 0x4002_9000;

/// Program page of the MX25R6435F.
const PROGRAM_PAGE: u32 = 256;
/// Bounce buffer: one program page plus a word of head and tail padding.
const BOUNCE_WORDS: usize = (PROGRAM_PAGE as usize + 8) / 4;
/// RDSR opcode and the status register's write-in-progress bit.
const OPCODE_RDSR: u32 = 0x05;
const STATUS_WIP: u32 = 0x01;

register_structs! {
    /// QSPI register block (the part this driver uses).
    pub QspiRegisters {
        (0x000 => tasks_activate: WriteOnly<u32>),
        (0x004 => tasks_readstart: WriteOnly<u32>),
        (0x008 => tasks_writestart: WriteOnly<u32>),
        (0x00C => tasks_erasestart: WriteOnly<u32>),
        (0x010 => tasks_deactivate: WriteOnly<u32>),
        (0x014 => _reserved0),
        (0x100 => events_ready: ReadWrite<u32>),
        (0x104 => _reserved1),
        (0x304 => intenset: ReadWrite<u32, Inten::Register>),
        (0x308 => intenclr: ReadWrite<u32, Inten::Register>),
        (0x30C => _reserved2),
        (0x500 => enable: ReadWrite<u32>),
        (0x504 => read_src: ReadWrite<u32>),
        (0x508 => read_dst: ReadWrite<u32>),
        (0x50C => read_cnt: ReadWrite<u32>),
        (0x510 => write_dst: ReadWrite<u32>),
        (0x514 => write_src: ReadWrite<u32>),
        (0x518 => write_cnt: ReadWrite<u32>),
        (0x51C => erase_ptr: ReadWrite<u32>),
        (0x520 => erase_len: ReadWrite<u32>),
        (0x524 => psel_sck: ReadWrite<u32>),
        (0x528 => psel_csn: ReadWrite<u32>),
        (0x52C => _reserved3),
        (0x530 => psel_io0: ReadWrite<u32>),
        (0x534 => psel_io1: ReadWrite<u32>),
        (0x538 => psel_io2: ReadWrite<u32>),
        (0x53C => psel_io3: ReadWrite<u32>),
        (0x540 => _reserved4),
        (0x544 => ifconfig0: ReadWrite<u32, IfConfig0::Register>),
        (0x548 => _reserved5),
        (0x600 => ifconfig1: ReadWrite<u32, IfConfig1::Register>),
        (0x604 => _reserved6),
        (0x634 => cinstrconf: ReadWrite<u32, CinstrConf::Register>),
        (0x638 => cinstrdat0: ReadWrite<u32>),
        (0x63C => _reserved7),
        (0x700 => @END),
    }
}

register_bitfields![u32,
    Inten [
        READY 0
    ],
    IfConfig0 [
        /// 0 = FASTREAD (0x0B).
        READOC OFFSET(0) NUMBITS(3) [],
        /// 0 = PP (0x02).
        WRITEOC OFFSET(3) NUMBITS(3) [],
        /// 0 = 24-bit addressing.
        ADDRMODE OFFSET(6) NUMBITS(1) [],
        DPMENABLE OFFSET(7) NUMBITS(1) [],
        /// 0 = 256-byte program pages.
        PPSIZE OFFSET(12) NUMBITS(1) []
    ],
    IfConfig1 [
        SCKDELAY OFFSET(0) NUMBITS(8) [],
        DPMEN OFFSET(24) NUMBITS(1) [],
        SPIMODE OFFSET(25) NUMBITS(1) [],
        /// SCK = 32 MHz / (SCKFREQ + 1).
        SCKFREQ OFFSET(28) NUMBITS(4) []
    ],
    CinstrConf [
        OPCODE OFFSET(0) NUMBITS(8) [],
        /// Opcode plus data bytes (1 = opcode only).
        LENGTH OFFSET(8) NUMBITS(4) [],
        LIO2 OFFSET(12) NUMBITS(1) [],
        LIO3 OFFSET(13) NUMBITS(1) [],
        WIPWAIT OFFSET(15) NUMBITS(1) [],
        WREN OFFSET(16) NUMBITS(1) []
    ]
];

/// What a board chooses: pins (PSEL values: `port * 32 + pin`), clock, capacity.
#[derive(Clone, Copy, Debug)]
pub struct QspiConfig {
    pub sck: u32,
    pub csn: u32,
    pub io: [u32; 4],
    /// SCK = 32 MHz / (divider + 1).
    pub sck_divider: u32,
    /// Flash size in bytes.
    pub capacity: u32,
}

impl QspiConfig {
    /// The nRF52840-DK: MX25R6435F (8 MiB) on P0.19 (SCK), P0.17 (CSN), P0.20–P0.23 (IO0–IO3),
    /// at 8 MHz.
    pub const fn nrf52840dk() -> QspiConfig {
        QspiConfig {
            sck: 19,
            csn: 17,
            io: [20, 21, 22, 23],
            sck_divider: 3,
            capacity: 8 * 1024 * 1024,
        }
    }
}

/// A 4 KiB flash-HIL page, word aligned for EasyDMA.
#[repr(align(4))]
pub struct QspiPage(pub [u8; SECTOR_SIZE as usize]);

impl Default for QspiPage {
    fn default() -> Self {
        QspiPage([0xFF; SECTOR_SIZE as usize])
    }
}

impl AsMut<[u8]> for QspiPage {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// Word-aligned scratch for byte-granular operations.
pub struct Bounce(pub [u32; BOUNCE_WORDS]);

impl Bounce {
    pub const fn new() -> Bounce {
        Bounce([0xFFFF_FFFF; BOUNCE_WORDS])
    }
}

impl Default for Bounce {
    fn default() -> Self {
        Bounce::new()
    }
}

/// Who started the current operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// `hil::flash` page operation.
    Page,
    /// `AsyncNor` byte operation.
    Nor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Off,
    Activating,
    Idle,
    /// Reading `len` bytes from `address` (`done` so far).
    Read {
        owner: Owner,
        address: u32,
        len: u32,
        done: u32,
    },
    /// Programming `len` bytes at `address`; `chunk` is the size of the transfer in flight.
    Program {
        owner: Owner,
        address: u32,
        len: u32,
        done: u32,
        chunk: u32,
        waiting: bool,
    },
    /// Erasing the sector at `address` (then programming the page for `write_page`).
    Erase {
        owner: Owner,
        address: u32,
        waiting: bool,
        then_program: bool,
    },
}

/// The QSPI flash driver. See the module docs.
pub struct QspiFlash<'a> {
    regs: StaticRef<QspiRegisters>,
    config: QspiConfig,
    state: Cell<State>,
    page_client: OptionalCell<&'a dyn hil::flash::Client<QspiFlash<'a>>>,
    nor_client: OptionalCell<&'a dyn AsyncNorClient>,
    page: TakeCell<'static, QspiPage>,
    nor_buffer: TakeCell<'static, [u8]>,
    bounce: TakeCell<'static, Bounce>,
}

impl<'a> QspiFlash<'a> {
    pub fn new(
        regs: StaticRef<QspiRegisters>,
        config: QspiConfig,
        bounce: &'static mut Bounce,
    ) -> QspiFlash<'a> {
        QspiFlash {
            regs,
            config,
            state: Cell::new(State::Off),
            page_client: OptionalCell::empty(),
            nor_client: OptionalCell::empty(),
            page: TakeCell::empty(),
            nor_buffer: TakeCell::empty(),
            bounce: TakeCell::new(bounce),
        }
    }

    /// Configure pins and interface, enable the peripheral and activate it. Operations requested
    /// before activation completes get `BUSY`.
    pub fn initialize(&self) {
        let r = &*self.regs;
        r.psel_sck.set(self.config.sck);
        r.psel_csn.set(self.config.csn);
        r.psel_io0.set(self.config.io[0]);
        r.psel_io1.set(self.config.io[1]);
        r.psel_io2.set(self.config.io[2]);
        r.psel_io3.set(self.config.io[3]);
        r.ifconfig0.write(
            IfConfig0::READOC.val(0)
                + IfConfig0::WRITEOC.val(0)
                + IfConfig0::ADDRMODE.val(0)
                + IfConfig0::DPMENABLE.val(0)
                + IfConfig0::PPSIZE.val(0),
        );
        r.ifconfig1.write(
            IfConfig1::SCKDELAY.val(1)
                + IfConfig1::SPIMODE.val(0)
                + IfConfig1::SCKFREQ.val(self.config.sck_divider & 0xF),
        );
        r.events_ready.set(0);
        r.intenset.write(Inten::READY::SET);
        r.enable.set(1);
        self.state.set(State::Activating);
        r.tasks_activate.set(1);
    }

    /// The QSPI interrupt: a task finished.
    pub fn handle_interrupt(&self) {
        let r = &*self.regs;
        if r.events_ready.get() == 0 {
            return;
        }
        r.events_ready.set(0);
        match self.state.get() {
            State::Off | State::Idle => {}
            State::Activating => {
                self.state.set(State::Idle);
                self.nor_client.map(|c| c.ready());
            }
            State::Read {
                owner,
                address,
                len,
                done,
            } => {
                let chunk = self.read_chunk_len(owner, address + done, len - done);
                if owner == Owner::Nor {
                    self.copy_out_of_bounce(address + done, done, chunk);
                }
                let done = done + chunk;
                if done >= len {
                    self.finish(owner, Ok(()), false);
                } else {
                    self.state.set(State::Read {
                        owner,
                        address,
                        len,
                        done,
                    });
                    self.start_read(owner, address + done, len - done, done);
                }
            }
            State::Program {
                owner,
                address,
                len,
                done,
                chunk,
                waiting,
            } => {
                if !waiting {
                    self.state.set(State::Program {
                        owner,
                        address,
                        len,
                        done,
                        chunk,
                        waiting: true,
                    });
                    self.poll_status();
                } else if r.cinstrdat0.get() & STATUS_WIP != 0 {
                    self.poll_status();
                } else {
                    let done = done + chunk;
                    if done >= len {
                        self.finish(owner, Ok(()), true);
                    } else {
                        self.start_program(owner, address, len, done);
                    }
                }
            }
            State::Erase {
                owner,
                address,
                waiting,
                then_program,
            } => {
                if !waiting {
                    self.state.set(State::Erase {
                        owner,
                        address,
                        waiting: true,
                        then_program,
                    });
                    self.poll_status();
                } else if r.cinstrdat0.get() & STATUS_WIP != 0 {
                    self.poll_status();
                } else if then_program {
                    self.start_program(owner, address, SECTOR_SIZE, 0);
                } else {
                    self.state.set(State::Idle);
                    match owner {
                        Owner::Page => self.page_client.map(|c| c.erase_complete(Ok(()))),
                        Owner::Nor => self.nor_client.map(|c| c.erase_done(Ok(()))),
                    };
                }
            }
        }
    }

    fn poll_status(&self) {
        let r = &*self.regs;
        r.cinstrconf.write(
            CinstrConf::OPCODE.val(OPCODE_RDSR)
                + CinstrConf::LENGTH.val(2)
                + CinstrConf::LIO2::SET
                + CinstrConf::LIO3::SET
                + CinstrConf::WIPWAIT::SET,
        );
    }

    fn finish(&self, owner: Owner, result: Result<(), ErrorCode>, program: bool) {
        self.state.set(State::Idle);
        let flash_result = result.map_err(|_| hil::flash::Error::FlashError);
        match owner {
            Owner::Page => {
                if let Some(page) = self.page.take() {
                    self.page_client.map(move |c| {
                        if program {
                            c.write_complete(page, flash_result)
                        } else {
                            c.read_complete(page, flash_result)
                        }
                    });
                }
            }
            Owner::Nor => {
                if let Some(buffer) = self.nor_buffer.take() {
                    self.nor_client.map(move |c| {
                        if program {
                            c.program_done(buffer, result)
                        } else {
                            c.read_done(buffer, result)
                        }
                    });
                }
            }
        }
    }

    /// Bytes a read transfer covers from `address` with `remaining` to go.
    fn read_chunk_len(&self, owner: Owner, address: u32, remaining: u32) -> u32 {
        match owner {
            // Page reads are whole, aligned sectors: one transfer.
            Owner::Page => remaining,
            Owner::Nor => {
                let head = address % 4;
                remaining.min(PROGRAM_PAGE - head)
            }
        }
    }

    fn start_read(&self, owner: Owner, address: u32, remaining: u32, done: u32) {
        let r = &*self.regs;
        match owner {
            Owner::Page => {
                self.page.map(|page| {
                    r.read_dst.set(page.0.as_ptr() as usize as u32 + done);
                });
                r.read_src.set(address);
                r.read_cnt.set(remaining);
            }
            Owner::Nor => {
                let chunk = self.read_chunk_len(owner, address, remaining);
                let aligned = address & !3;
                let count = (address - aligned + chunk).next_multiple_of(4);
                self.bounce
                    .map(|b| r.read_dst.set(b.0.as_ptr() as usize as u32));
                r.read_src.set(aligned);
                r.read_cnt.set(count);
            }
        }
        r.tasks_readstart.set(1);
    }

    /// Copy `chunk` bytes read at `address` from the bounce buffer into the client's buffer at
    /// `offset`.
    fn copy_out_of_bounce(&self, address: u32, offset: u32, chunk: u32) {
        let head = (address % 4) as usize;
        self.bounce.map(|bounce| {
            self.nor_buffer.map(|buffer| {
                for i in 0..chunk as usize {
                    let at = head + i;
                    let byte = bounce.0[at / 4].to_le_bytes()[at % 4];
                    if let Some(slot) = buffer.get_mut(offset as usize + i) {
                        *slot = byte;
                    }
                }
            });
        });
    }

    /// Start the program transfer for bytes `done..` of an operation of `len` at `address`.
    fn start_program(&self, owner: Owner, address: u32, len: u32, done: u32) {
        let r = &*self.regs;
        let at = address + done;
        let to_page_end = PROGRAM_PAGE - at % PROGRAM_PAGE;
        let chunk = (len - done).min(to_page_end);
        match owner {
            Owner::Page => {
                self.page
                    .map(|page| r.write_src.set(page.0.as_ptr() as usize as u32 + done));
                r.write_dst.set(at);
                r.write_cnt.set(chunk);
            }
            Owner::Nor => {
                // Pad to whole words with 0xFF, which programs nothing.
                let head = at % 4;
                let count = (head + chunk).next_multiple_of(4);
                self.bounce.map(|bounce| {
                    bounce.0.iter_mut().for_each(|w| *w = 0xFFFF_FFFF);
                    self.nor_buffer.map(|buffer| {
                        for i in 0..chunk as usize {
                            let byte = buffer.get(done as usize + i).copied().unwrap_or(0xFF);
                            let pos = head as usize + i;
                            let mut bytes = bounce.0[pos / 4].to_le_bytes();
                            bytes[pos % 4] = byte;
                            bounce.0[pos / 4] = u32::from_le_bytes(bytes);
                        }
                    });
                    r.write_src.set(bounce.0.as_ptr() as usize as u32);
                });
                r.write_dst.set(at - head);
                r.write_cnt.set(count);
            }
        }
        self.state.set(State::Program {
            owner,
            address,
            len,
            done,
            chunk,
            waiting: false,
        });
        r.tasks_writestart.set(1);
    }

    fn start_erase(&self, owner: Owner, address: u32, then_program: bool) {
        let r = &*self.regs;
        self.state.set(State::Erase {
            owner,
            address,
            waiting: false,
            then_program,
        });
        r.erase_ptr.set(address);
        // 0 = 4 KiB sector.
        r.erase_len.set(0);
        r.tasks_erasestart.set(1);
    }

    fn idle(&self) -> Result<(), ErrorCode> {
        match self.state.get() {
            State::Idle => Ok(()),
            State::Off => Err(ErrorCode::OFF),
            _ => Err(ErrorCode::BUSY),
        }
    }

    fn page_address(&self, page_number: usize) -> Option<u32> {
        let address = u32::try_from(page_number).ok()?.checked_mul(SECTOR_SIZE)?;
        range_ok(address, SECTOR_SIZE as usize, self.config.capacity).then_some(address)
    }
}

impl<'a, C: hil::flash::Client<Self>> hil::flash::HasClient<'a, C> for QspiFlash<'a> {
    fn set_client(&self, client: &'a C) {
        self.page_client.set(client);
    }
}

impl hil::flash::Flash for QspiFlash<'_> {
    type Page = QspiPage;

    fn read_page(
        &self,
        page_number: usize,
        buf: &'static mut Self::Page,
    ) -> Result<(), (ErrorCode, &'static mut Self::Page)> {
        let Some(address) = self.page_address(page_number) else {
            return Err((ErrorCode::INVAL, buf));
        };
        if let Err(e) = self.idle() {
            return Err((e, buf));
        }
        self.page.replace(buf);
        self.state.set(State::Read {
            owner: Owner::Page,
            address,
            len: SECTOR_SIZE,
            done: 0,
        });
        self.start_read(Owner::Page, address, SECTOR_SIZE, 0);
        Ok(())
    }

    fn write_page(
        &self,
        page_number: usize,
        buf: &'static mut Self::Page,
    ) -> Result<(), (ErrorCode, &'static mut Self::Page)> {
        let Some(address) = self.page_address(page_number) else {
            return Err((ErrorCode::INVAL, buf));
        };
        if let Err(e) = self.idle() {
            return Err((e, buf));
        }
        self.page.replace(buf);
        self.start_erase(Owner::Page, address, true);
        Ok(())
    }

    fn erase_page(&self, page_number: usize) -> Result<(), ErrorCode> {
        let address = self.page_address(page_number).ok_or(ErrorCode::INVAL)?;
        self.idle()?;
        self.start_erase(Owner::Page, address, false);
        Ok(())
    }
}

impl<'a> AsyncNor<'a> for QspiFlash<'a> {
    fn set_nor_client(&self, client: &'a dyn AsyncNorClient) {
        self.nor_client.set(client);
    }

    fn capacity(&self) -> u32 {
        self.config.capacity
    }

    fn read(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        if len == 0 || len > buffer.len() || !range_ok(address, len, self.config.capacity) {
            return Err((ErrorCode::INVAL, buffer));
        }
        if let Err(e) = self.idle() {
            return Err((e, buffer));
        }
        self.nor_buffer.replace(buffer);
        let len = len as u32;
        self.state.set(State::Read {
            owner: Owner::Nor,
            address,
            len,
            done: 0,
        });
        self.start_read(Owner::Nor, address, len, 0);
        Ok(())
    }

    fn program(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        if len == 0 || len > buffer.len() || !range_ok(address, len, self.config.capacity) {
            return Err((ErrorCode::INVAL, buffer));
        }
        if let Err(e) = self.idle() {
            return Err((e, buffer));
        }
        self.nor_buffer.replace(buffer);
        self.start_program(Owner::Nor, address, len as u32, 0);
        Ok(())
    }

    fn erase_sector(&self, address: u32) -> Result<(), ErrorCode> {
        if !address.is_multiple_of(SECTOR_SIZE)
            || !range_ok(address, SECTOR_SIZE as usize, self.config.capacity)
        {
            return Err(ErrorCode::INVAL);
        }
        self.idle()?;
        self.start_erase(Owner::Nor, address, false);
        Ok(())
    }
}
