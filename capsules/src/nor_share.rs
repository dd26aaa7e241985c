//! Sharing one [`AsyncNor`] between kernel users: the staged-update core and the app-update
//! core and the app-region page journal use the QSPI flash, which has one client. [`NorShare`] is that client; each user
//! gets a [`NorUser`], an `AsyncNor` of its own. One operation runs at a time: a user's
//! operation while another runs waits (one per user) and starts when the device is free, the
//! other users' waiting operations first, so no user starves another.
//!
//! A call on an idle device starts the operation at once and returns the device's own answer;
//! a waiting operation that the device then refuses to start completes with that error.

use core::cell::Cell;

use kernel::utilities::cells::{MapCell, OptionalCell};
use kernel::ErrorCode;

use crate::nor::{AsyncNor, AsyncNorClient};

/// Most users of one device.
pub const MAX_USERS: usize = 3;

enum Op {
    Read {
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    },
    Program {
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    },
    Erase {
        address: u32,
    },
}

/// The device's client; see the module docs.
pub struct NorShare<'a> {
    nor: &'a dyn AsyncNor<'a>,
    users: [OptionalCell<&'a NorUser<'a>>; MAX_USERS],
    /// The user whose operation runs.
    current: OptionalCell<usize>,
}

impl<'a> NorShare<'a> {
    pub fn new(nor: &'a dyn AsyncNor<'a>) -> NorShare<'a> {
        NorShare {
            nor,
            users: [
                OptionalCell::empty(),
                OptionalCell::empty(),
                OptionalCell::empty(),
            ],
            current: OptionalCell::empty(),
        }
    }

    /// Register `user` (at most [`MAX_USERS`]); `Err` if there is no room.
    pub fn add_user(&self, user: &'a NorUser<'a>) -> Result<(), ErrorCode> {
        let slot = self
            .users
            .iter()
            .position(|u| u.is_none())
            .ok_or(ErrorCode::NOMEM)?;
        user.index.set(slot);
        self.users[slot].set(user);
        Ok(())
    }

    /// Start `op` for user `index` now; the device's refusal comes back with the buffer.
    fn start(&self, index: usize, op: Op) -> Result<(), (ErrorCode, Option<&'static mut [u8]>)> {
        self.current.set(index);
        let result = match op {
            Op::Read {
                address,
                buffer,
                len,
            } => self
                .nor
                .read(address, buffer, len)
                .map_err(|(e, b)| (e, Some(b))),
            Op::Program {
                address,
                buffer,
                len,
            } => self
                .nor
                .program(address, buffer, len)
                .map_err(|(e, b)| (e, Some(b))),
            Op::Erase { address } => self.nor.erase_sector(address).map_err(|e| (e, None)),
        };
        if result.is_err() {
            self.current.clear();
        }
        result
    }

    fn submit(&self, index: usize, op: Op) -> Result<(), (ErrorCode, Option<&'static mut [u8]>)> {
        let Some(user) = self.users.get(index).and_then(|u| u.get()) else {
            return Err((ErrorCode::OFF, op.into_buffer()));
        };
        if self.current.get() == Some(index) || user.waiting.is_some() {
            return Err((ErrorCode::BUSY, op.into_buffer()));
        }
        if self.current.is_some() {
            user.waiting.put(op);
            return Ok(());
        }
        self.start(index, op)
    }

    /// The device is free: start the next waiting operation, from the user after `after`.
    fn start_next(&self, after: usize) {
        for step in 1..=MAX_USERS {
            let index = (after + step) % MAX_USERS;
            let Some(user) = self.users[index].get() else {
                continue;
            };
            let Some(op) = user.waiting.take() else {
                continue;
            };
            let kind = op.kind();
            match self.start(index, op) {
                Ok(()) => return,
                Err((error, buffer)) => user.fail(kind, error, buffer),
            }
        }
    }

    /// The user of the operation that just ended, the device now free.
    fn finish(&self) -> Option<&'a NorUser<'a>> {
        let index = self.current.take()?;
        self.start_next(index);
        self.users.get(index).and_then(|u| u.get())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Read,
    Program,
    Erase,
}

impl Op {
    fn into_buffer(self) -> Option<&'static mut [u8]> {
        match self {
            Op::Read { buffer, .. } | Op::Program { buffer, .. } => Some(buffer),
            Op::Erase { .. } => None,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Op::Read { .. } => Kind::Read,
            Op::Program { .. } => Kind::Program,
            Op::Erase { .. } => Kind::Erase,
        }
    }
}

impl AsyncNorClient for NorShare<'_> {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        if let Some(user) = self.finish() {
            user.client.map(|c| c.read_done(buffer, result));
        }
    }

    fn program_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        if let Some(user) = self.finish() {
            user.client.map(|c| c.program_done(buffer, result));
        }
    }

    fn erase_done(&self, result: Result<(), ErrorCode>) {
        if let Some(user) = self.finish() {
            user.client.map(|c| c.erase_done(result));
        }
    }

    fn ready(&self) {
        for user in &self.users {
            user.map(|u| u.client.map(|c| c.ready()));
        }
    }
}

/// One user's view of the shared device.
pub struct NorUser<'a> {
    share: &'a NorShare<'a>,
    index: Cell<usize>,
    waiting: MapCell<Op>,
    client: OptionalCell<&'a dyn AsyncNorClient>,
}

impl<'a> NorUser<'a> {
    /// A user of `share`; register it with [`NorShare::add_user`].
    pub fn new(share: &'a NorShare<'a>) -> NorUser<'a> {
        NorUser {
            share,
            index: Cell::new(usize::MAX),
            waiting: MapCell::empty(),
            client: OptionalCell::empty(),
        }
    }

    /// A waiting operation the device refused to start: its completion, with the error.
    fn fail(&self, kind: Kind, error: ErrorCode, buffer: Option<&'static mut [u8]>) {
        self.client.map(|c| match (kind, buffer) {
            (Kind::Read, Some(buffer)) => c.read_done(buffer, Err(error)),
            (Kind::Program, Some(buffer)) => c.program_done(buffer, Err(error)),
            (Kind::Erase, _) => c.erase_done(Err(error)),
            // Reads and programs always carry their buffer back.
            (_, None) => {}
        });
    }

    fn submit_buffered(&self, op: Op) -> Result<(), (ErrorCode, &'static mut [u8])> {
        self.share
            .submit(self.index.get(), op)
            .map_err(|(error, buffer)| match buffer {
                Some(buffer) => (error, buffer),
                // A read or program always hands its buffer back on refusal.
                None => unreachable_buffer(error),
            })
    }
}

/// Reads and programs carry a buffer through every path; keep the type checker satisfied
/// without a panic path: an empty static slice stands in.
fn unreachable_buffer(error: ErrorCode) -> (ErrorCode, &'static mut [u8]) {
    (error, &mut [])
}

impl<'a> AsyncNor<'a> for NorUser<'a> {
    fn set_nor_client(&self, client: &'a dyn AsyncNorClient) {
        self.client.set(client);
    }

    fn capacity(&self) -> u32 {
        self.share.nor.capacity()
    }

    fn read(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        self.submit_buffered(Op::Read {
            address,
            buffer,
            len,
        })
    }

    fn program(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        self.submit_buffered(Op::Program {
            address,
            buffer,
            len,
        })
    }

    fn erase_sector(&self, address: u32) -> Result<(), ErrorCode> {
        self.share
            .submit(self.index.get(), Op::Erase { address })
            .map_err(|(error, _)| error)
    }
}
