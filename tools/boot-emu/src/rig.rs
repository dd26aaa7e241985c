//! A DK board for the bootloader under emulation: `hw_models::SimBoard` flashes with the
//! bootloader ELF in internal flash, a stand-in kernel in the kernel slot, and helpers to stage
//! an image and write the kernel's control records the way the kernel does.

use std::ops::Range;

use boot_core::Layout;
use boot_nrf::NRF52840_DK;
use hw_models::SimBoard;

use crate::{run, stub_kernel, BootConfig, EmuError, Firmware, RunReport};

/// Initial stack pointer of the stand-in kernel that is in the slot before an update.
pub const OLD_KERNEL_SP: u32 = 0x2003_F000;
/// Initial stack pointer of the stand-in kernel an update installs.
pub const NEW_KERNEL_SP: u32 = 0x2003_E000;

/// POWER.RESETREAS bits.
pub const RESETREAS_RESETPIN: u32 = 1 << 0;
pub const RESETREAS_DOG: u32 = 1 << 1;
pub const RESETREAS_SREQ: u32 = 1 << 2;

/// A stand-in kernel of `len` bytes (at least the 32-byte stub): the stub's vector table and
/// code with `initial_sp`, then filler that differs per `seed`.
pub fn kernel_image(slot: u32, initial_sp: u32, len: usize, seed: u8) -> Vec<u8> {
    let mut image = stub_kernel(slot, initial_sp);
    let stub = image.len();
    image.extend(
        (stub..len.max(stub))
            .map(|i| (i as u8).wrapping_mul(29) ^ seed.rotate_left((i >> 10) as u32 % 8)),
    );
    image
}

/// The emulated DK.
pub struct Rig {
    pub board: SimBoard,
    pub fw: Firmware,
    pub layout: Layout,
    /// RESETREAS for the next boot.
    pub resetreas: u32,
    /// GPREGRET as the last boot left it (retained across resets).
    pub gpregret: u32,
    /// Instruction budget of one boot.
    pub max_instructions: u64,
    /// The watchdog runs at the next power-on with (CRV, RREN): it survives soft resets.
    pub watchdog: Option<(u32, u32)>,
    next_seq: u32,
}

impl Rig {
    /// Erased flashes, `fw` in internal flash, the old stand-in kernel of `kernel_len` bytes in
    /// the kernel slot.
    pub fn new(fw: Firmware, seed: u64, kernel_len: usize) -> Self {
        let board = SimBoard::new(seed);
        for (addr, bytes) in &fw.flash_segments {
            board.nvmc().load(*addr, bytes);
        }
        let layout = NRF52840_DK;
        let slot = layout.kernel_slot.start;
        board
            .nvmc()
            .load(slot, &kernel_image(slot, OLD_KERNEL_SP, kernel_len, 1));
        Rig {
            board,
            fw,
            layout,
            resetreas: RESETREAS_RESETPIN,
            gpregret: 0,
            max_instructions: 3_000_000_000,
            watchdog: None,
            next_seq: 1,
        }
    }

    /// The kernel slot's address range.
    pub fn kernel_slot(&self) -> Range<u32> {
        self.layout.kernel_slot.start..self.layout.kernel_slot.end()
    }

    /// One power-on from reset, stopping at the kernel jump (or running into the kernel).
    pub fn boot(&mut self, stop_at_kernel: bool) -> Result<RunReport, EmuError> {
        self.boot_watching(stop_at_kernel, Vec::new())
    }

    /// [`Rig::boot`], counting executions of the `watch` addresses.
    pub fn boot_watching(
        &mut self,
        stop_at_kernel: bool,
        watch: Vec<u32>,
    ) -> Result<RunReport, EmuError> {
        let cfg = BootConfig {
            resetreas: self.resetreas,
            gpregret: self.gpregret,
            kernel_slot: self.kernel_slot(),
            stop_at_kernel,
            max_instructions: self.max_instructions,
            watch,
            watchdog: self.watchdog,
            ..BootConfig::default()
        };
        let clock = self.board.clock.clone();
        let report = run(
            &self.fw,
            self.board.qspi.port(),
            self.board.internal.port(),
            &clock,
            &cfg,
        )?;
        self.gpregret = report.gpregret;
        self.resetreas = match report.exit {
            crate::Exit::WatchdogReset => {
                // A watchdog reset stops the watchdog.
                self.watchdog = None;
                RESETREAS_DOG
            }
            crate::Exit::SystemReset => RESETREAS_SREQ,
            _ => RESETREAS_RESETPIN,
        };
        Ok(report)
    }

    /// Power off and on (flash contents stay, torn operations resolve).
    pub fn power_cycle(&mut self) {
        self.board.power_cycle().expect("the models power up again");
        self.resetreas = RESETREAS_RESETPIN;
        self.gpregret = 0;
        self.watchdog = None;
    }

    /// Puts `image` at the start of the staging slot (the rest erased), as the kernel leaves it.
    pub fn stage(&mut self, image: &[u8]) {
        let s = self.layout.staging;
        let mut fill = vec![0xFF; s.len as usize];
        let n = image.len().min(fill.len());
        fill[..n].copy_from_slice(&image[..n]);
        self.board.chip().load(s.start, &fill);
    }

    /// Appends a control record to the request sector as the kernel does.
    pub fn append_record(&mut self, mut rec: control_area::Record) {
        rec.sequence = self.next_seq;
        self.next_seq += 1;
        let s = self.layout.request_sector;
        let sector = self.board.chip().raw()[s.start as usize..s.end() as usize].to_vec();
        let (_, free) = control_area::scan(&sector);
        let at = free.expect("request sector has room");
        self.board.chip().load(s.start + at as u32, &rec.encode());
    }

    /// A boot request for a staged image of `len` bytes whose hash TLV is `hash`.
    pub fn request_boot(&mut self, hash: [u8; 32], len: u32) {
        self.append_record(control_area::Record {
            kind: control_area::RecordKind::BootRequest,
            sequence: 0,
            image_len: len,
            image_hash: hash,
        });
    }

    /// The kernel's confirmation of the running image with `hash`.
    pub fn confirm(&mut self, hash: [u8; 32]) {
        self.append_record(control_area::Record {
            kind: control_area::RecordKind::Confirm,
            sequence: 0,
            image_len: 0,
            image_hash: hash,
        });
    }

    /// Whether the kernel slot starts with `bytes`.
    pub fn kernel_is(&self, bytes: &[u8]) -> bool {
        let s = self.layout.kernel_slot.start as usize;
        self.board.nvmc().raw()[s..s + bytes.len()] == *bytes
    }

    /// The bootloader's status record (newest journal record), as the kernel reads it.
    pub fn status(&mut self) -> Option<boot_core::JournalRecord> {
        boot_core::read_status(&mut self.board.qspi, self.layout.journal)
            .ok()
            .flatten()
    }
}
