//! Runs a [`Rebuild`] to the end over storage that answers at once (the simulator's models,
//! tests). The Tock capsule drives the same [`Rebuild`] split-phase instead.
use crate::{Action, Area, Decoder, Error, Outcome, Rebuild, CHUNK};

/// The three areas as the caller's storage. Offsets are relative to each area.
pub trait Storage {
    type Error;
    fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Program output bytes; a write at a 4 KiB boundary must erase that sector first.
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error>;
}

/// Why [`run`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError<E> {
    /// The stream was refused (see [`Error`]).
    Rebuild(Error),
    /// The storage failed (a power cut in the simulator).
    Storage(E),
}

pub fn run<D: Decoder, S: Storage>(
    rebuild: &mut Rebuild<D>,
    storage: &mut S,
) -> Result<Outcome, RunError<S::Error>> {
    let mut buf = [0u8; CHUNK];
    let mut action = rebuild.start();
    loop {
        action = match action {
            Action::Read { area, offset, len } => {
                storage
                    .read(area, offset, &mut buf[..len])
                    .map_err(RunError::Storage)?;
                rebuild.read_done(&buf[..len])
            }
            Action::Write { offset, data } => {
                storage.write(offset, data).map_err(RunError::Storage)?;
                rebuild.write_done()
            }
            Action::Done(result) => return result.map_err(RunError::Rebuild),
        };
    }
}
