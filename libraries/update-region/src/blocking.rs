//! A blocking driver for the policy over any `embedded_storage` NOR flash: for the simulator,
//! host tools and tests. The Tock capsule drives the same state machine split-phase instead.
use crate::{
    CallerId, Completion, Error, Op, Request, Status, Step, UpdateRegion, MAX_POLICY_READ,
};
use embedded_storage::nor_flash::NorFlash;

/// Why a blocking request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockingError<E> {
    /// The policy refused or the staged data failed a check.
    Policy(Error),
    /// The flash itself failed (e.g. power lost); the policy was told and stopped the request.
    Flash(E),
}

impl<E: core::fmt::Debug> core::fmt::Display for BlockingError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlockingError::Policy(e) => write!(f, "{e}"),
            BlockingError::Flash(e) => write!(f, "flash error: {e:?}"),
        }
    }
}

/// Runs policy requests to completion on `flash` (absolute QSPI addresses).
pub struct BlockingDriver<'a, F> {
    pub policy: &'a mut UpdateRegion,
    pub flash: &'a mut F,
}

impl<'a, F: NorFlash> BlockingDriver<'a, F> {
    pub fn new(policy: &'a mut UpdateRegion, flash: &'a mut F) -> Self {
        BlockingDriver { policy, flash }
    }

    /// The start-up scan (once per boot).
    pub fn start(&mut self) -> Result<Status, BlockingError<F::Error>> {
        self.drive(None, &[], &mut [])?;
        Ok(self.policy.status())
    }

    /// Run `request` for `caller`; `owner_data` is the data of a `Write`, `owner_buf` receives a
    /// `Read`.
    pub fn run(
        &mut self,
        caller: CallerId,
        request: Request,
        owner_data: &[u8],
        owner_buf: &mut [u8],
    ) -> Result<Completion, BlockingError<F::Error>> {
        if let Request::Write { len, .. } = request {
            if owner_data.len() != len as usize {
                return Err(BlockingError::Policy(Error::BadLength { len }));
            }
        }
        if let Request::Read { len, .. } = request {
            if owner_buf.len() != len as usize {
                return Err(BlockingError::Policy(Error::BadLength { len }));
            }
        }
        self.drive(Some((caller, request)), owner_data, owner_buf)
    }

    /// Performs the policy's operations until it is done: the start-up scan (`None`) or a request.
    /// A flash failure is reported to the policy and wins over the policy's own verdict.
    fn drive(
        &mut self,
        request: Option<(CallerId, Request)>,
        owner_data: &[u8],
        owner_buf: &mut [u8],
    ) -> Result<Completion, BlockingError<F::Error>> {
        let mut scratch = [0u8; MAX_POLICY_READ];
        let mut flash_error = None;
        let mut step = match request {
            None => self.policy.start(),
            Some((caller, request)) => self.policy.request(caller, request),
        };
        loop {
            match step {
                Step::Done(r) => {
                    return match (r, flash_error) {
                        (_, Some(e)) => Err(BlockingError::Flash(e)),
                        (r, None) => r.map_err(BlockingError::Policy),
                    }
                }
                Step::Op(op) => {
                    let result = perform(self.flash, op, owner_data, owner_buf, &mut scratch);
                    let result = match result {
                        Ok(n) => Ok(&scratch[..n]),
                        Err(e) => {
                            flash_error = Some(e);
                            Err(())
                        }
                    };
                    step = self.policy.op_done(result);
                }
            }
        }
    }

    pub fn write(
        &mut self,
        caller: CallerId,
        offset: u32,
        data: &[u8],
    ) -> Result<Completion, BlockingError<F::Error>> {
        let len = data.len() as u32;
        self.run(caller, Request::Write { offset, len }, data, &mut [])
    }

    pub fn read(
        &mut self,
        caller: CallerId,
        offset: u32,
        buf: &mut [u8],
    ) -> Result<Completion, BlockingError<F::Error>> {
        let len = buf.len() as u32;
        self.run(caller, Request::Read { offset, len }, &[], buf)
    }
}

/// Perform one operation; returns how many scratch bytes hold read data.
fn perform<F: NorFlash>(
    flash: &mut F,
    op: Op<'_>,
    owner_data: &[u8],
    owner_buf: &mut [u8],
    scratch: &mut [u8; MAX_POLICY_READ],
) -> Result<usize, F::Error> {
    match op {
        Op::Read { address, len } => {
            let n = (len as usize).min(MAX_POLICY_READ);
            flash.read(address, &mut scratch[..n])?;
            Ok(n)
        }
        Op::ReadIntoOwner { address, len } => {
            let n = (len as usize).min(owner_buf.len());
            flash.read(address, &mut owner_buf[..n])?;
            Ok(0)
        }
        Op::WriteOwnerData { address, len } => {
            let n = (len as usize).min(owner_data.len());
            flash.write(address, &owner_data[..n])?;
            Ok(0)
        }
        Op::Write { address, data } => {
            flash.write(address, data)?;
            Ok(0)
        }
        Op::Erase { address } => {
            flash.erase(address, address + crate::SECTOR_SIZE)?;
            Ok(0)
        }
    }
}
