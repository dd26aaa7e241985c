//! The simulated kernel the DFU app runs on: `dfu_app::Kernel` over the simulated board. The
//! staged-update driver is the update-region policy over the board's QSPI model, split as the
//! capsule splits it (`capsules/src/staged_update.rs`: a refusal the policy gives at once is the
//! command's error, anything later the completion's); the bulk-scan driver is [`Radio`]; the
//! alarm is the board's clock (1 MHz ticks, wrapping at 2^32 like Tock's). Waits take no host
//! time: they move the simulated clock to the next event or the deadline.
use adv_transfer::{Receiver, RxCounters, RxProgress};
use dfu_abi::{error, scan, update};
use dfu_app::{Batch, OpError};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use hw_models::SimBoard;
use update_region::{
    CallerId, Completion, Config, Error, Op, Request, SessionState, Step, UpdateRegion,
    MAX_POLICY_READ, SECTOR_SIZE,
};

use crate::radio::Radio;

/// The alarm's frequency: the board clock's microseconds.
const TICKS_PER_S: u32 = 1_000_000;

/// Stop a run that never converges (in advertising events).
const MAX_EVENTS: u64 = 50_000_000;

/// What the app did on this kernel, for the simulator's report.
#[derive(Debug, Default)]
pub struct Record {
    /// The app's console lines.
    pub log: Vec<String>,
    /// Finalize's completion and when it came (board µs).
    pub finalized: Option<(Completion, u64)>,
    /// The sequence number a confirm completed with.
    pub confirmed: Option<u32>,
    pub reboot_requested: bool,
    /// The receiver's counters and progress as last seen.
    pub rx: RxCounters,
    pub progress: Option<RxProgress>,
    /// The run did not converge.
    pub gave_up: bool,
    /// Simulated time (µs) from the app's first `OUTPUT_BEGIN` of a received stream's rebuild
    /// to the end of its finalize (the app decodes; the kernel erases and programs).
    pub rebuild_us: u64,
}

/// One boot's kernel. Without a radio the app is halted as soon as it waits for a batch (it
/// has confirmed and resumed by then): that is how the simulator runs a boot's start-up alone.
pub struct SimKernel<'k, 'r> {
    board: &'k mut SimBoard,
    policy: &'k mut UpdateRegion,
    owner: CallerId,
    radio: Option<&'k mut Radio<'r>>,
    on_progress: &'k mut dyn FnMut(&SimBoard, RxProgress),
    pub record: Record,
    halted: bool,
    /// The received-stream area's policy (where a delta patch is staged) and the staging
    /// slot's configuration; `None`: this kernel takes plain images only.
    stream: Option<(&'k mut UpdateRegion, Config)>,
    /// The app-update driver's `INSTALL` ([`SimKernel::with_app`]).
    app: Option<&'k mut AppInstall<'k>>,
    /// When the rebuild of a received stream began (`OUTPUT_BEGIN`), board µs.
    rebuild_from_us: Option<u64>,
    /// The update-signing key the app is built with ([`SimKernel::with_update_key`]).
    update_key: Option<[u8; 64]>,
}

/// The app-update driver's `INSTALL` of the staged TBF of `len` bytes on the board: `Ok` with
/// the installed version, or the driver's error (`tools/ota-sim/src/demo_app.rs` runs
/// `app-sim`'s installer behind it).
pub type AppInstall<'a> = dyn FnMut(&mut SimBoard, u32) -> Result<u32, OpError> + 'a;

impl<'k, 'r> SimKernel<'k, 'r> {
    /// `policy` has run its start-up scan on `board`.
    pub fn new(
        board: &'k mut SimBoard,
        policy: &'k mut UpdateRegion,
        owner: CallerId,
        radio: Option<&'k mut Radio<'r>>,
        on_progress: &'k mut dyn FnMut(&SimBoard, RxProgress),
    ) -> Self {
        SimKernel {
            board,
            policy,
            owner,
            radio,
            on_progress,
            record: Record::default(),
            halted: false,
            stream: None,
            app: None,
            rebuild_from_us: None,
            update_key: None,
        }
    }

    /// Stage received streams (compressed images and delta patches) in the received-stream area
    /// (`stream` has run its start-up scan), as the staged-update driver does: a session whose
    /// tag is a stream's (`adv_transfer::wire::is_stream_tag`) goes to the stream area; while a
    /// stream session exists, status, tag, erase, write, read and abort are its, the app
    /// rebuilds the image into the staging slot (`staging` is `policy`'s configuration) with
    /// `OUTPUT_BEGIN`, `OUTPUT_ERASE`, `OUTPUT_WRITE`, `OUTPUT_READ` and `BASE_READ`, and
    /// `FINALIZE` finalizes the staging slot's session, then forgets the stream session; a
    /// plain session forgets it.
    pub fn with_stream(mut self, stream: &'k mut UpdateRegion, staging: Config) -> Self {
        self.stream = Some((stream, staging));
        self
    }

    /// The update-signing key the DFU app checks a received compressed image against
    /// (`dfu_app::Kernel::update_key`: on a device, the key the app is built with).
    pub fn with_update_key(mut self, key: Option<[u8; 64]>) -> Self {
        self.update_key = key;
        self
    }

    /// A kernel with the app-update driver (`dfu_abi::app`): its `INSTALL` runs `install`.
    pub fn with_app(mut self, install: &'k mut AppInstall<'k>) -> Self {
        self.app = Some(install);
        self
    }

    /// Whether the session the app sees is the stream area's. A stream session whose image the
    /// staging slot holds finalized (the same tag) is over, as in the capsule: a power cut
    /// after the rebuild's boot request and before the stream session was forgotten leaves it.
    fn stream_active(&self) -> bool {
        self.stream.as_ref().is_some_and(|(p, _)| {
            let stream = p.status();
            let staged = self.policy.status();
            stream.state != SessionState::Idle
                && !(staged.state == SessionState::Finalized && staged.tag == stream.tag)
        })
    }

    /// The status of the session the app sees.
    fn session_status(&self) -> update_region::Status {
        match &self.stream {
            Some((stream, _)) if self.stream_active() => stream.status(),
            _ => self.policy.status(),
        }
    }

    /// Which area a begin with `tag` opens (true: the stream area): a delta session goes to
    /// the stream area; a plain one forgets any stream session first (which would otherwise
    /// stand in front of it).
    fn route_begin(&mut self, tag: [u8; update::TAG_LEN]) -> Result<bool, OpError> {
        if self.stream.is_none() {
            return Ok(false);
        }
        if adv_transfer::wire::is_stream_tag(&tag) {
            return Ok(true);
        }
        if self.stream_active() {
            self.request_on(true, Request::Abort, &[], &mut [])?;
        }
        Ok(false)
    }

    /// Whether the staging slot's session is the rebuild of the stream session (begun by
    /// `OUTPUT_BEGIN` with the stream's tag and not finalized).
    fn rebuilding(&self) -> bool {
        self.stream_active()
            && self.stream.as_ref().is_some_and(|(stream, _)| {
                let staged = self.policy.status();
                staged.state == SessionState::Staging && staged.tag == stream.status().tag
            })
    }

    /// `BASE_READ`: bytes of the kernel slot (internal flash), a delta patch's base.
    fn base_read(&mut self, offset: u32, out: &mut [u8]) -> Result<u32, OpError> {
        let slot = boot_nrf::NRF52840_DK.kernel_slot;
        if out.len() > update::BUF_LEN {
            return Err(OpError::Refused(error::SIZE));
        }
        if offset as u64 + out.len() as u64 > slot.len as u64 {
            return Err(OpError::Refused(error::SIZE));
        }
        self.board
            .internal
            .read(slot.start + offset, out)
            .map_err(|_| failed(Error::Flash))?;
        Ok(0)
    }

    fn now_us(&self) -> u64 {
        self.board.clock.now_us()
    }

    /// The board this kernel runs on (for a kernel that adds drivers around this one).
    pub fn board(&mut self) -> &mut SimBoard {
        self.board
    }

    fn advance_to(&mut self, us: u64) {
        if self.board.clock.now_us() < us {
            self.board.clock.advance_to(us);
        }
    }

    /// The run is over when the power failed or the sender heard the image complete.
    fn check_done(&mut self) {
        if !self.board.power.is_on() {
            self.halted = true;
        }
        if let Some(radio) = &self.radio {
            // Done, or refused by the app (the sender gives up).
            if radio.sender.is_over() {
                self.halted = true;
            }
            if radio.events > MAX_EVENTS {
                self.record.gave_up = true;
                self.halted = true;
            }
        }
    }

    /// The policy's request (the stream area's when `on_stream` and there is one), driven on
    /// the QSPI model as the capsule drives it.
    fn request_on(
        &mut self,
        on_stream: bool,
        request: Request,
        owner_data: &[u8],
        owner_buf: &mut [u8],
    ) -> Result<Completion, OpError> {
        let policy: &mut UpdateRegion = match (&mut self.stream, on_stream) {
            (Some((stream, _)), true) => stream,
            _ => self.policy,
        };
        let mut step = policy.request(self.owner, request);
        if let Step::Done(Err(e)) = step {
            // Refused before anything started: the command's own error, no upcall.
            return Err(OpError::Refused(e.abi_error()));
        }
        let mut scratch = [0u8; MAX_POLICY_READ];
        let mut flash_failed = false;
        loop {
            match step {
                Step::Done(Ok(c)) if !flash_failed => return Ok(c),
                Step::Done(Ok(_)) => return Err(failed(Error::Flash)),
                Step::Done(Err(e)) => {
                    return Err(failed(if flash_failed { Error::Flash } else { e }))
                }
                Step::Op(op) => {
                    let qspi = &mut self.board.qspi;
                    let result = match op {
                        Op::Read { address, len } => {
                            let n = (len as usize).min(MAX_POLICY_READ);
                            qspi.read(address, &mut scratch[..n]).map(|_| n)
                        }
                        Op::ReadIntoOwner { address, len } => {
                            let n = (len as usize).min(owner_buf.len());
                            qspi.read(address, &mut owner_buf[..n]).map(|_| 0)
                        }
                        Op::WriteOwnerData { address, len } => {
                            let n = (len as usize).min(owner_data.len());
                            qspi.write(address, &owner_data[..n]).map(|_| 0)
                        }
                        Op::Write { address, data } => qspi.write(address, data).map(|_| 0),
                        Op::Erase { address } => {
                            qspi.erase(address, address + SECTOR_SIZE).map(|_| 0)
                        }
                    };
                    step = match result {
                        Ok(n) => policy.op_done(Ok(&scratch[..n])),
                        Err(_) => {
                            flash_failed = true;
                            policy.op_done(Err(()))
                        }
                    };
                }
            }
        }
    }
}

fn failed(e: Error) -> OpError {
    OpError::Failed {
        code: e.abi_error(),
        detail: e.abi_detail(),
    }
}

impl dfu_app::Kernel for SimKernel<'_, '_> {
    fn exists(&mut self, driver: u32) -> bool {
        driver == update::DRIVER_NUM
            || driver == scan::DRIVER_NUM
            || (driver == dfu_abi::app::DRIVER_NUM && self.app.is_some())
    }

    fn app_install(&mut self, len: u32, _timeout_ms: u32) -> Result<u32, OpError> {
        let Some(install) = self.app.as_mut() else {
            return Err(OpError::Refused(error::NODEVICE));
        };
        let result = install(self.board, len);
        self.check_done();
        result
    }

    fn update_key(&mut self) -> Option<[u8; 64]> {
        self.update_key
    }

    fn update_status(&mut self) -> Result<(u32, u32, u32), u32> {
        let s = self.session_status();
        Ok((s.state.abi_state(), s.image_len, s.erased_sectors))
    }

    fn update_tag(&mut self, tag: &mut [u8; update::TAG_LEN]) -> Result<(), u32> {
        *tag = self.session_status().tag;
        Ok(())
    }

    /// The bootloader's journal names the image it installed: the running one while that is
    /// on trial or confirmed. Only a kernel that can rebuild from a delta says it.
    fn running_image(&mut self) -> Option<[u8; 16]> {
        self.stream.as_ref()?;
        let journal = boot_nrf::NRF52840_DK.journal;
        let record = boot_core::read_status(&mut self.board.qspi, journal).ok()??;
        let running = matches!(
            record.state,
            boot_core::State::Trial | boot_core::State::Confirmed
        );
        let mut id = [0u8; 16];
        id.copy_from_slice(&record.image_hash[..16]);
        running.then_some(id)
    }

    fn update_op(
        &mut self,
        command: u32,
        arg1: u32,
        arg2: u32,
        data: &[u8],
        out: &mut [u8],
        _timeout_ms: u32,
    ) -> Result<u32, OpError> {
        use update::command as c;
        let len = arg2 as usize;
        // The rebuild's output commands are the staging slot's begin, erase, write and read.
        let output = c::output_of(command).is_some();
        let number = c::output_of(command).unwrap_or(command);
        match number {
            c::WRITE | c::READ | c::BASE_READ if len > update::BUF_LEN => {
                return Err(OpError::Refused(error::SIZE))
            }
            c::WRITE if len > data.len() => return Err(OpError::Refused(error::INVAL)),
            c::READ | c::BASE_READ if len > out.len() => {
                return Err(OpError::Refused(error::INVAL))
            }
            _ => {}
        }
        if (output || command == c::BASE_READ) && !self.stream_active() {
            return Err(OpError::Refused(error::RESERVE));
        }
        if command == c::BASE_READ {
            return self.base_read(arg1, &mut out[..len]);
        }
        let rebuilt = matches!(number, c::ERASE | c::WRITE | c::READ) && output;
        if (rebuilt || command == c::FINALIZE) && self.stream_active() && !self.rebuilding() {
            return Err(OpError::Refused(error::RESERVE));
        }
        if command == c::FINALIZE && self.stream_active() {
            // The rebuilt image's finalize, then the stream session is forgotten.
            let result = self.request_on(false, Request::Finalize, &[], &mut []);
            if let Some(from) = self.rebuild_from_us.take() {
                self.record.rebuild_us += self.now_us() - from;
            }
            let result = result.and_then(|c| {
                self.request_on(true, Request::Abort, &[], &mut [])?;
                Ok(c)
            });
            self.check_done();
            let c = result?;
            self.record.finalized = Some((c, self.now_us()));
            return match c {
                Completion::Finalized { sequence, .. } => Ok(sequence),
                _ => Ok(0),
            };
        }
        if command == c::OUTPUT_BEGIN {
            self.rebuild_from_us.get_or_insert(self.now_us());
        }
        // As the capsule decodes them; BEGIN's tag is at the start of `data`, OUTPUT_BEGIN's
        // is the stream session's.
        let stream_tag = self.session_status().tag;
        let tag = || match output {
            true => Ok(stream_tag),
            false => data
                .get(..update::TAG_LEN)
                .and_then(|t| t.try_into().ok())
                .ok_or(OpError::Refused(error::INVAL)),
        };
        let request = match Request::from_command(number, arg1, arg2, tag) {
            Some(request) => request?,
            None => return Err(OpError::Refused(error::NOSUPPORT)),
        };
        let (owner_data, owner_buf): (&[u8], &mut [u8]) = match number {
            c::WRITE => (&data[..len], &mut []),
            c::READ => (&[], &mut out[..len]),
            _ => (&[], &mut []),
        };
        let on_stream = match request {
            _ if output => false,
            Request::Begin { tag, .. } => self.route_begin(tag)?,
            Request::Confirm => false,
            _ => self.stream_active(),
        };
        let result = self.request_on(on_stream, request, owner_data, owner_buf);
        self.check_done();
        match result? {
            c @ Completion::Finalized { sequence, .. } => {
                self.record.finalized = Some((c, self.now_us()));
                Ok(sequence)
            }
            Completion::Confirmed { sequence } => {
                self.record.confirmed = Some(sequence);
                Ok(sequence)
            }
            _ => Ok(0),
        }
    }

    fn reboot(&mut self) -> Result<(), u32> {
        if self.policy.status().state != update_region::SessionState::Finalized {
            return Err(error::RESERVE);
        }
        self.record.reboot_requested = true;
        self.halted = true;
        Ok(())
    }

    fn scan_wait(
        &mut self,
        command: u32,
        buffer: &mut [u8],
        timeout_ms: u32,
    ) -> Result<Option<Batch>, u32> {
        let now = self.now_us();
        let Some(radio) = self.radio.as_deref_mut() else {
            // No sender in this run: the app has started up and now only listens.
            self.halted = true;
            return Ok(None);
        };
        match command {
            scan::command::START if radio.is_scanning() => return Err(error::ALREADY),
            scan::command::START => radio.start_scan(now),
            scan::command::RELEASE if !radio.is_scanning() => return Err(error::RESERVE),
            scan::command::RELEASE => {}
            _ => return Err(error::NOSUPPORT),
        }
        let deadline = now + timeout_ms as u64 * 1000;
        radio.catch_up(now);
        let got = loop {
            if let Some(batch) = radio.take_batch(buffer) {
                break Some(batch);
            }
            match radio.next_event_at() {
                Some(t) if t <= deadline && radio.events <= MAX_EVENTS => {
                    if self.board.clock.now_us() < t {
                        self.board.clock.advance_to(t);
                    }
                    radio.catch_up(t);
                }
                _ => {
                    if self.board.clock.now_us() < deadline {
                        self.board.clock.advance_to(deadline);
                    }
                    radio.catch_up(deadline);
                    break radio.take_batch(buffer);
                }
            }
        };
        self.check_done();
        Ok(got)
    }

    fn scan_stop(&mut self) -> Result<(), u32> {
        let now = self.now_us();
        if let Some(radio) = self.radio.as_deref_mut() {
            radio.stop_scan(now);
        }
        Ok(())
    }

    fn advertise(&mut self, adv_data: &[u8]) -> Result<(), u32> {
        if adv_data.len() > scan::MAX_ADV_DATA {
            return Err(error::SIZE);
        }
        let now = self.now_us();
        if let Some(radio) = self.radio.as_deref_mut() {
            radio.advertise(now, adv_data);
        }
        self.check_done();
        Ok(())
    }

    fn ticks(&mut self) -> u32 {
        self.now_us() as u32
    }

    fn ticks_per_second(&mut self) -> u32 {
        TICKS_PER_S
    }

    fn sleep(&mut self, ms: u32) {
        let until = self.now_us() + ms as u64 * 1000;
        self.advance_to(until);
    }

    fn log(&mut self, line: std::fmt::Arguments<'_>) {
        self.record.log.push(line.to_string());
    }

    fn halted(&mut self) -> bool {
        self.halted
    }

    fn observe(&mut self, receiver: &Receiver<'_>) {
        self.record.rx = receiver.counters();
        let progress = receiver.progress();
        self.record.progress = Some(progress);
        (self.on_progress)(self.board, progress);
    }
}
