//! A split-phase NOR flash model: erase sets a 4 KiB sector to 0xFF, program only clears bits,
//! and each operation completes only when the test calls [`FakeNor::complete`] (or, with
//! `immediate`, before the call that started it returns).
//!
//! Shared by the crate's unit tests (included by path) and the integration tests.

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::vec;
use std::vec::Vec;

use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::ErrorCode;

use tock_ota_capsules::nor::{range_ok, AsyncNor, AsyncNorClient, SECTOR_SIZE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    Read { address: u32, len: usize },
    Program { address: u32, len: usize },
    Erase { address: u32 },
}

pub struct FakeNor {
    pub memory: RefCell<Vec<u8>>,
    client: OptionalCell<&'static dyn AsyncNorClient>,
    pending: Cell<Option<Pending>>,
    buffer: TakeCell<'static, [u8]>,
    /// Fail the next operation's completion.
    pub fail_next: Cell<bool>,
    pub operations: Cell<usize>,
    /// Complete each operation before the call that started it returns.
    pub immediate: Cell<bool>,
    /// Refuse to start the next operation (`FAIL`, buffer handed back).
    pub refuse_next: Cell<bool>,
}

impl FakeNor {
    pub fn new(capacity: usize) -> &'static FakeNor {
        Box::leak(Box::new(FakeNor {
            memory: RefCell::new(vec![0xFF; capacity]),
            client: OptionalCell::empty(),
            pending: Cell::new(None),
            buffer: TakeCell::empty(),
            fail_next: Cell::new(false),
            operations: Cell::new(0),
            immediate: Cell::new(false),
            refuse_next: Cell::new(false),
        }))
    }

    pub fn pending(&self) -> Option<Pending> {
        self.pending.get()
    }

    /// Complete the outstanding operation; `false` if there was none.
    pub fn complete(&self) -> bool {
        let Some(op) = self.pending.take() else {
            return false;
        };
        let fail = self.fail_next.replace(false);
        let result = if fail { Err(ErrorCode::FAIL) } else { Ok(()) };
        match op {
            Pending::Read { address, len } => {
                let buffer = self.buffer.take().unwrap();
                if !fail {
                    let a = address as usize;
                    buffer[..len].copy_from_slice(&self.memory.borrow()[a..a + len]);
                }
                self.client.map(|c| c.read_done(buffer, result));
            }
            Pending::Program { address, len } => {
                let buffer = self.buffer.take().unwrap();
                if !fail {
                    let a = address as usize;
                    let mut memory = self.memory.borrow_mut();
                    for (cell, byte) in memory[a..a + len].iter_mut().zip(&buffer[..len]) {
                        *cell &= *byte;
                    }
                }
                self.client.map(|c| c.program_done(buffer, result));
            }
            Pending::Erase { address } => {
                if !fail {
                    let a = address as usize;
                    self.memory.borrow_mut()[a..a + SECTOR_SIZE as usize].fill(0xFF);
                }
                self.client.map(|c| c.erase_done(result));
            }
        }
        true
    }

    /// Complete operations until none is outstanding; returns how many ran.
    pub fn run(&self) -> usize {
        let mut n = 0;
        while self.complete() {
            n += 1;
            assert!(n < 1_000_000, "flash operations never stop");
        }
        n
    }

    fn start(
        &self,
        op: Pending,
        buffer: &'static mut [u8],
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        if self.pending.get().is_some() {
            return Err((ErrorCode::BUSY, buffer));
        }
        if self.refuse_next.replace(false) {
            return Err((ErrorCode::FAIL, buffer));
        }
        self.buffer.replace(buffer);
        self.pending.set(Some(op));
        self.operations.set(self.operations.get() + 1);
        if self.immediate.get() {
            self.complete();
        }
        Ok(())
    }
}

impl AsyncNor<'static> for FakeNor {
    fn set_nor_client(&self, client: &'static dyn AsyncNorClient) {
        self.client.set(client);
    }

    fn capacity(&self) -> u32 {
        self.memory.borrow().len() as u32
    }

    fn read(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        if len > buffer.len() || !range_ok(address, len, self.capacity()) {
            return Err((ErrorCode::INVAL, buffer));
        }
        self.start(Pending::Read { address, len }, buffer)
    }

    fn program(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        if len > buffer.len() || !range_ok(address, len, self.capacity()) {
            return Err((ErrorCode::INVAL, buffer));
        }
        self.start(Pending::Program { address, len }, buffer)
    }

    fn erase_sector(&self, address: u32) -> Result<(), ErrorCode> {
        if !address.is_multiple_of(SECTOR_SIZE)
            || !range_ok(address, SECTOR_SIZE as usize, self.capacity())
        {
            return Err(ErrorCode::INVAL);
        }
        if self.pending.get().is_some() {
            return Err(ErrorCode::BUSY);
        }
        if self.refuse_next.replace(false) {
            return Err(ErrorCode::FAIL);
        }
        self.pending.set(Some(Pending::Erase { address }));
        self.operations.set(self.operations.get() + 1);
        if self.immediate.get() {
            self.complete();
        }
        Ok(())
    }
}
