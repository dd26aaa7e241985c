//! A completion upcall that may have to wait for room in its process's task queue.
//!
//! The drivers here finish each started request with exactly one upcall. When the kernel cannot
//! queue it (the process's task queue is full), the completion is kept and queued again at the
//! process's next command, before anything else; until then the driver refuses new requests
//! (`BUSY`), so completions stay in order and none is lost. A process that is gone is owed
//! nothing.

use kernel::utilities::cells::OptionalCell;
use kernel::ProcessId;

/// The three upcall arguments.
pub type Args = (usize, usize, usize);

/// At most one kept completion.
pub struct KeptUpcall {
    kept: OptionalCell<(ProcessId, Args)>,
}

impl Default for KeptUpcall {
    fn default() -> Self {
        Self::new()
    }
}

impl KeptUpcall {
    pub const fn new() -> KeptUpcall {
        KeptUpcall {
            kept: OptionalCell::empty(),
        }
    }

    /// Queue `args` for `processid` with `schedule` (the driver's grant: `Ok(Ok(()))` queued,
    /// `Ok(Err(_))` the process exists but its queue is full, `Err(_)` no such process); keep
    /// them when the queue is full.
    pub fn deliver<E1, E2>(
        &self,
        processid: ProcessId,
        args: Args,
        schedule: impl Fn(ProcessId, Args) -> Result<Result<(), E1>, E2>,
    ) {
        match schedule(processid, args) {
            Ok(Ok(())) => self.kept.clear(),
            Ok(Err(_)) => self.kept.set((processid, args)),
            Err(_) => self.kept.clear(),
        }
    }

    /// Try again to queue the kept completion; `true` if none is left waiting.
    pub fn flush<E1, E2>(
        &self,
        schedule: impl Fn(ProcessId, Args) -> Result<Result<(), E1>, E2>,
    ) -> bool {
        if let Some((processid, args)) = self.kept.get() {
            self.deliver(processid, args, schedule);
        }
        self.kept.is_none()
    }
}
