//! The QSPI capsule at register level against the project's hardware models.
//!
//! The driver writes a RAM-backed copy of the QSPI register block; this harness forwards what
//! it wrote to the register-level QSPI model of `hw-models` (the one the CPU emulator runs:
//! tasks, READY, EasyDMA rules, MX25R6435F timing and busy state, page wrap,
//! program-only-clears-bits), mirrors the model's registers back, and calls the interrupt
//! handler when READY is raised with its interrupt enabled. EasyDMA copies through an address
//! space made of the buffers the driver was given ([`HostRam`]); no reference to a buffer the
//! driver holds is ever made. Alarms run on the models' simulated clock as the nRF52840's RTC
//! does: 32768 Hz ticks, never firing sooner than the second tick boundary.

#[path = "support/fake_alarm.rs"]
#[allow(dead_code)]
mod fake_alarm;

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex};

use hw_models::nrf52840_flash::QspiPort;
use hw_models::qspi_regs::{self as q, DmaMemory, DmaUnreachable, QspiFault, QspiRegisters};
use hw_models::{Mx25r6435f, Power, QspiPeripheral, SimClock};
use kernel::hil::flash::{Flash, HasClient};
use kernel::hil::time::{Alarm, AlarmClient, Freq32KHz, Ticks, Ticks32, Time};
use kernel::utilities::cells::OptionalCell;
use kernel::utilities::StaticRef;
use kernel::ErrorCode;
use tock_ota_capsules::nor::{AsyncNor, AsyncNorClient};
use tock_ota_capsules::qspi_flash::{Bounce, QspiConfig, QspiFlash, QspiPage, Registers};

/// Words in the RAM copy of the register block.
const REG_WORDS: usize = 0x700 / 4;

/// Registers the driver writes to make something happen (a task, a custom instruction, an
/// interrupt-enable change); their RAM word is kept 0, so each write of a non-zero value is seen.
const TRIGGERS: [u32; 8] = [
    q::TASKS_ACTIVATE,
    q::TASKS_DEACTIVATE,
    q::TASKS_READSTART,
    q::TASKS_WRITESTART,
    q::TASKS_ERASESTART,
    q::CINSTRCONF,
    q::INTENSET,
    q::INTENCLR,
];

/// The driver's RAM as EasyDMA sees it: the buffers it was given, each named by the host
/// address the driver exposed for it. The driver stores the low 32 bits of that address.
struct HostRam<'r>(&'r [(usize, usize)]);

impl HostRam<'_> {
    fn find(&self, low: u32, len: usize) -> Result<*mut u8, DmaUnreachable> {
        for &(at, size) in self.0 {
            let full = (at & !0xFFFF_FFFF) | low as usize;
            if full >= at && full + len <= at + size {
                return Ok(std::ptr::with_exposed_provenance_mut(full));
            }
        }
        Err(DmaUnreachable)
    }
}

impl DmaMemory for HostRam<'_> {
    fn dma_read(&mut self, addr: u32, dst: &mut [u8]) -> Result<(), DmaUnreachable> {
        let from = self.find(addr, dst.len())?;
        // SAFETY: EasyDMA's read of a buffer the driver handed over by address (exposed with
        // `as_mut_ptr`) and does not touch until READY; `find` checked the range lies inside
        // it; single-threaded, and no reference to the range is live here.
        unsafe { std::ptr::copy_nonoverlapping(from, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn dma_write(&mut self, addr: u32, src: &[u8]) -> Result<(), DmaUnreachable> {
        let to = self.find(addr, src.len())?;
        // SAFETY: as in `dma_read`, EasyDMA's write.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), to, src.len()) };
        Ok(())
    }
}

/// RTC tick rate; the compare rule is `fake_alarm::rtc_compare`.
const RTC_HZ: u64 = 32_768;

/// The RTC behind Tock's alarm, on the simulated clock.
struct SimAlarm {
    clock: SimClock,
    /// The compare value while armed, in ticks since the clock's start.
    compare: Cell<Option<u64>>,
    client: OptionalCell<&'static dyn AlarmClient>,
}

impl SimAlarm {
    fn ticks(&self) -> u64 {
        self.clock.now_us() * RTC_HZ / 1_000_000
    }

    /// The clock time of the compare match, disarming the alarm.
    fn take_deadline_us(&self) -> Option<u64> {
        let tick = self.compare.take()?;
        Some((tick * 1_000_000).div_ceil(RTC_HZ))
    }
}

impl Time for SimAlarm {
    type Frequency = Freq32KHz;
    type Ticks = Ticks32;
    fn now(&self) -> Ticks32 {
        Ticks32::from(self.ticks() as u32)
    }
}

impl Alarm<'static> for SimAlarm {
    fn set_alarm_client(&self, client: &'static dyn AlarmClient) {
        self.client.set(client);
    }
    fn set_alarm(&self, reference: Ticks32, dt: Ticks32) {
        let now = self.now();
        let expire = fake_alarm::rtc_compare(now, reference, dt);
        let ahead = u64::from(expire.wrapping_sub(now).into_u32());
        self.compare.set(Some(self.ticks() + ahead));
    }
    fn get_alarm(&self) -> Ticks32 {
        Ticks32::from(self.compare.get().unwrap_or(0) as u32)
    }
    fn disarm(&self) -> Result<(), ErrorCode> {
        self.compare.set(None);
        Ok(())
    }
    fn is_armed(&self) -> bool {
        self.compare.get().is_some()
    }
    fn minimum_dt(&self) -> Ticks32 {
        Ticks32::from(fake_alarm::SYNC_TICKS)
    }
}

/// A finished read: the buffer's bytes and the result.
type ReadDone = (Vec<u8>, Result<(), ErrorCode>);

#[derive(Default)]
struct Client {
    /// How often `ready` was reported.
    ready: Cell<usize>,
    reads: RefCell<Vec<ReadDone>>,
    programs: RefCell<Vec<Result<(), ErrorCode>>>,
    erases: RefCell<Vec<Result<(), ErrorCode>>>,
    buffer: RefCell<Option<&'static mut [u8]>>,
    page: RefCell<Option<&'static mut QspiPage>>,
    page_results: RefCell<Vec<Result<(), kernel::hil::flash::Error>>>,
}

impl AsyncNorClient for Client {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        self.reads.borrow_mut().push((buffer.to_vec(), result));
        *self.buffer.borrow_mut() = Some(buffer);
    }
    fn program_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        self.programs.borrow_mut().push(result);
        *self.buffer.borrow_mut() = Some(buffer);
    }
    fn erase_done(&self, result: Result<(), ErrorCode>) {
        self.erases.borrow_mut().push(result);
    }
    fn ready(&self) {
        self.ready.set(self.ready.get() + 1);
    }
}

type Driver = QspiFlash<'static, SimAlarm>;

impl kernel::hil::flash::Client<Driver> for Client {
    fn read_complete(
        &self,
        page: &'static mut QspiPage,
        result: Result<(), kernel::hil::flash::Error>,
    ) {
        self.page_results.borrow_mut().push(result);
        *self.page.borrow_mut() = Some(page);
    }
    fn write_complete(
        &self,
        page: &'static mut QspiPage,
        result: Result<(), kernel::hil::flash::Error>,
    ) {
        self.page_results.borrow_mut().push(result);
        *self.page.borrow_mut() = Some(page);
    }
    fn erase_complete(&self, result: Result<(), kernel::hil::flash::Error>) {
        self.page_results.borrow_mut().push(result);
    }
}

struct Rig {
    regs: *mut u32,
    /// The peripheral: the register-level model over the port model.
    model: RefCell<QspiRegisters>,
    port: RefCell<QspiPeripheral>,
    clock: SimClock,
    alarm: &'static SimAlarm,
    driver: &'static Driver,
    client: &'static Client,
    /// RAM buffers the driver may hand to EasyDMA: (address, length).
    dma_buffers: RefCell<Vec<(usize, usize)>>,
    /// Peripheral errors the model reported (a driver that would fault on hardware).
    faults: RefCell<Vec<QspiFault>>,
    /// Custom instructions sent: (opcode, clock µs).
    instructions: RefCell<Vec<(u8, u64)>>,
    /// The next task or instruction runs but raises no READY (a lost interrupt).
    lose_ready: Cell<bool>,
    /// The next READY reaches the driver's register but its interrupt is served only after
    /// the alarm (the kernel serves RTC1 before QSPI; a CPU stalled by an NVMC erase lets
    /// both fire together).
    late_ready: Cell<bool>,
}

impl Rig {
    fn new() -> Rig {
        Rig::new_at(0)
    }

    /// A rig whose driver starts `start_us` into the simulated clock (the RTC's tick phase),
    /// the peripheral and the part in their reset state.
    fn new_at(start_us: u64) -> Rig {
        Rig::build(start_us, false)
    }

    /// A rig whose driver starts where the bootloader left off: the part powered up by the
    /// bootloader's blocking driver (high-performance mode), the peripheral enabled, activated
    /// and configured as it configures it (pins, quad modes, 32 MHz SCK).
    fn after_bootloader() -> Rig {
        Rig::build(0, true)
    }

    fn build(start_us: u64, after_bootloader: bool) -> Rig {
        let regs: &'static mut [u32; REG_WORDS] = Box::leak(Box::new([0u32; REG_WORDS]));
        let regs = regs.as_mut_ptr();
        let clock = SimClock::new();
        let power = Power::new(clock.clone(), 1);
        let chip = Arc::new(Mutex::new(Mx25r6435f::new(clock.clone(), power.clone(), 1)));
        if after_bootloader {
            let port = QspiPeripheral::new(chip.clone(), clock.clone(), power.clone());
            let mut boot = hw_models::nrf52840_flash::QspiFlash::new(
                port,
                hw_models::nrf52840_flash::PowerMode::HighPerformance,
            );
            boot.init().expect("the bootloader's power-up");
        }
        let mut port = QspiPeripheral::new(chip, clock.clone(), power);
        // IFCONFIG1's reset SCKFREQ.
        port.set_sck_hz(32_000_000);
        clock.advance_to(start_us);
        let alarm: &'static SimAlarm = Box::leak(Box::new(SimAlarm {
            clock: clock.clone(),
            compare: Cell::new(None),
            client: OptionalCell::empty(),
        }));
        let bounce: &'static mut Bounce = Box::leak(Box::default());
        let bounce_at = (bounce.0.as_mut_ptr() as usize, bounce.0.len() * 4);
        // SAFETY: `regs` points to a leaked, word-aligned block large enough for the QSPI
        // register layout; only the driver and this harness (single-threaded) touch it.
        let static_ref = unsafe { StaticRef::new(regs as *const Registers) };
        let driver: &'static Driver = Box::leak(Box::new(QspiFlash::new(
            static_ref,
            alarm,
            QspiConfig::nrf52840dk(),
            bounce,
        )));
        let client: &'static Client = Box::leak(Box::default());
        alarm.set_alarm_client(driver);
        driver.set_nor_client(client);
        HasClient::set_client(driver, client);
        let rig = Rig {
            regs,
            model: RefCell::new(QspiRegisters::new()),
            port: RefCell::new(port),
            clock,
            alarm,
            driver,
            client,
            dma_buffers: RefCell::new(vec![bounce_at]),
            faults: RefCell::new(Vec::new()),
            instructions: RefCell::new(Vec::new()),
            lose_ready: Cell::new(false),
            late_ready: Cell::new(false),
        };
        if after_bootloader {
            let config = QspiConfig::nrf52840dk();
            let psel = |p: u8| u32::from(p & 31) | (u32::from(p >> 5) << 5);
            for (offset, pin) in (q::PSEL_SCK..=q::PSEL_IO3).step_by(4).zip([
                Some(config.sck),
                Some(config.csn),
                None,
                Some(config.io[0]),
                Some(config.io[1]),
                Some(config.io[2]),
                Some(config.io[3]),
            ]) {
                if let Some(pin) = pin {
                    rig.poke(offset, psel(pin));
                }
            }
            rig.poke(q::IFCONFIG0, 4 | (3 << 3));
            rig.poke(q::IFCONFIG1, 1);
            rig.poke(q::ENABLE, 1);
            rig.poke(q::TASKS_ACTIVATE, 1);
            rig.poke(q::EVENTS_READY, 0);
        }
        rig.mirror();
        rig.driver.initialize();
        rig.settle();
        assert_eq!(
            rig.client.ready.get(),
            1,
            "power-up sequence did not finish: {:?}",
            rig.faults
        );
        rig
    }

    fn get(&self, offset: u32) -> u32 {
        let word = offset as usize / 4;
        assert!(word < REG_WORDS);
        // SAFETY: `word` < REG_WORDS, inside the leaked block.
        unsafe { self.regs.add(word).read_volatile() }
    }

    fn set(&self, offset: u32, value: u32) {
        let word = offset as usize / 4;
        assert!(word < REG_WORDS);
        // SAFETY: as in `get`.
        unsafe { self.regs.add(word).write_volatile(value) }
    }

    /// A register write into the model (as the driver's store would reach the peripheral).
    fn poke(&self, offset: u32, value: u32) {
        let buffers = self.dma_buffers.borrow();
        let result = self.model.borrow_mut().write(
            offset,
            value,
            &mut *self.port.borrow_mut(),
            &mut HostRam(&buffers),
        );
        if let Err(e) = result {
            self.faults.borrow_mut().push(e);
        }
    }

    /// Copies the model's registers into the driver's RAM copy (trigger registers read 0).
    fn mirror(&self) {
        let model = self.model.borrow();
        let mut port = self.port.borrow_mut();
        for offset in q::STORAGE_REGISTERS {
            self.set(
                offset,
                model.read(offset, &mut *port).expect("a known register"),
            );
        }
        for offset in TRIGGERS {
            self.set(offset, 0);
        }
    }

    /// Forwards what the driver wrote since the last [`Rig::mirror`]: storage registers whose
    /// value changed, then at most one trigger. Returns whether a trigger ran.
    fn forward(&self) -> bool {
        for offset in q::STORAGE_REGISTERS {
            let wrote = self.get(offset);
            let held = self
                .model
                .borrow()
                .read(offset, &mut *self.port.borrow_mut())
                .expect("a known register");
            if wrote != held {
                self.poke(offset, wrote);
            }
        }
        // Interrupt enables take effect at once; then at most one task or instruction.
        for offset in [q::INTENSET, q::INTENCLR] {
            let wrote = self.get(offset);
            if wrote != 0 {
                self.set(offset, 0);
                self.poke(offset, wrote);
            }
        }
        let Some(offset) = TRIGGERS.into_iter().find(|&t| self.get(t) != 0) else {
            return false;
        };
        let value = self.get(offset);
        if offset == q::CINSTRCONF {
            self.instructions
                .borrow_mut()
                .push(((value & 0xFF) as u8, self.clock.now_us()));
        }
        self.poke(offset, value);
        true
    }

    /// READY raised by the model: into the driver's copy, and the interrupt if enabled.
    fn deliver_ready(&self) {
        let mut model = self.model.borrow_mut();
        let mut port = self.port.borrow_mut();
        if model.read(q::EVENTS_READY, &mut *port).expect("READY") == 0 {
            return;
        }
        model
            .write(q::EVENTS_READY, 0, &mut *port, &mut HostRam(&[]))
            .expect("READY is writable");
        let interrupt = model.read(q::INTEN, &mut *port).expect("INTEN") & 1 != 0;
        drop((model, port));
        if self.lose_ready.replace(false) {
            return;
        }
        self.set(q::EVENTS_READY, 1);
        if self.late_ready.replace(false) {
            // Served late: the READY time-out alarm fires first.
            let deadline = self.alarm.take_deadline_us().expect("READY is timed");
            self.clock.advance_to(deadline);
            self.alarm.client.map(|c| c.alarm());
            return;
        }
        if interrupt {
            self.driver.handle_interrupt();
        }
    }

    /// Play the peripheral until the driver waits for nothing.
    fn settle(&self) {
        for _ in 0..1_000_000 {
            if self.forward() {
                self.mirror();
                self.deliver_ready();
            } else if let Some(deadline) = self.alarm.take_deadline_us() {
                self.mirror();
                self.clock.advance_to(deadline);
                self.alarm.client.map(|c| c.alarm());
            } else {
                self.mirror();
                return;
            }
        }
        panic!(
            "the driver never went idle; faults: {:?}",
            self.faults.borrow()
        );
    }

    fn chip_bytes(&self, at: u32, len: usize) -> Vec<u8> {
        let port = self.port.borrow();
        let mut chip = port.chip();
        chip.raw()[at as usize..at as usize + len].to_vec()
    }

    fn take_buffer(&self) -> &'static mut [u8] {
        self.client
            .buffer
            .borrow_mut()
            .take()
            .expect("buffer returned")
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

#[test]
fn power_up_reads_the_jedec_id_and_sets_up_the_part_without_a_fault() {
    let rig = Rig::new();
    assert!(rig.faults.borrow().is_empty(), "{:?}", rig.faults.borrow());
}

#[test]
fn unaligned_byte_ranges_round_trip_across_page_boundaries() {
    let rig = Rig::new();
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 1200].into_boxed_slice());
    rig.driver.erase_sector(0x1000).unwrap();
    rig.settle();
    rig.driver.erase_sector(0x2000).unwrap();
    rig.settle();
    assert_eq!(*rig.client.erases.borrow(), vec![Ok(()), Ok(())]);

    // Odd address and length, crossing 256-byte pages and the sector boundary.
    let (at, len) = (0x1F3Fu32, 701usize);
    let data = pattern(len, 7);
    buffer[..len].copy_from_slice(&data);
    rig.driver
        .program(at, buffer, len)
        .map_err(|(e, _)| e)
        .unwrap();
    rig.settle();
    assert_eq!(*rig.client.programs.borrow(), vec![Ok(())]);
    assert!(rig.faults.borrow().is_empty(), "{:?}", rig.faults.borrow());
    assert_eq!(rig.chip_bytes(at, len), data);
    // The padding did not touch the neighbours.
    assert_eq!(rig.chip_bytes(at - 3, 3), vec![0xFF; 3]);
    assert_eq!(rig.chip_bytes(at + len as u32, 3), vec![0xFF; 3]);

    for (offset, n) in [(0usize, 1usize), (1, 3), (5, 256), (255, 300), (2, 699)] {
        let buffer = rig.take_buffer();
        buffer.fill(0);
        rig.driver
            .read(at + offset as u32, buffer, n)
            .map_err(|(e, _)| e)
            .unwrap();
        rig.settle();
        let (got, result) = rig.client.reads.borrow_mut().pop().unwrap();
        assert_eq!(result, Ok(()));
        assert_eq!(
            &got[..n],
            &data[offset..offset + n],
            "read at +{offset} len {n}"
        );
    }
}

#[test]
fn erase_returns_a_sector_to_ff_and_waits_for_the_part() {
    let rig = Rig::new();
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 64].into_boxed_slice());
    rig.driver.erase_sector(0x3000).unwrap();
    rig.settle();
    buffer.copy_from_slice(&pattern(64, 1));
    rig.driver
        .program(0x3010, buffer, 64)
        .map_err(|(e, _)| e)
        .unwrap();
    rig.settle();
    let before = rig.clock.now_us();
    rig.driver.erase_sector(0x3000).unwrap();
    rig.settle();
    // High-performance sector erase: tens of milliseconds on the model's clock.
    assert!(
        rig.clock.now_us() - before >= 20_000,
        "erase did not wait for WIP"
    );
    assert_eq!(rig.chip_bytes(0x3000, 4096), vec![0xFF; 4096]);
    assert!(rig.faults.borrow().is_empty(), "{:?}", rig.faults.borrow());
}

#[test]
fn flash_hil_pages_round_trip() {
    let rig = Rig::new();
    let page: &'static mut QspiPage = Box::leak(Box::default());
    rig.dma_buffers
        .borrow_mut()
        .push((page.0.as_mut_ptr() as usize, page.0.len()));
    let data = pattern(4096, 3);
    page.0.copy_from_slice(&data);
    rig.driver.write_page(5, page).map_err(|(e, _)| e).unwrap();
    rig.settle();
    assert_eq!(rig.client.page_results.borrow_mut().pop(), Some(Ok(())));
    assert_eq!(rig.chip_bytes(5 * 4096, 4096), data);
    let page = rig.client.page.borrow_mut().take().unwrap();
    page.0.fill(0);
    rig.driver.read_page(5, page).map_err(|(e, _)| e).unwrap();
    rig.settle();
    assert_eq!(rig.client.page_results.borrow_mut().pop(), Some(Ok(())));
    let page = rig.client.page.borrow_mut().take().unwrap();
    assert_eq!(&page.0[..], &data[..]);
    assert!(rig.faults.borrow().is_empty(), "{:?}", rig.faults.borrow());
}

#[test]
fn requests_outside_the_part_or_while_busy_are_refused() {
    let rig = Rig::new();
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 16].into_boxed_slice());
    let buffer = match rig.driver.read(8 * 1024 * 1024 - 4, buffer, 16) {
        Err((e, b)) => {
            assert_eq!(e, ErrorCode::INVAL);
            b
        }
        Ok(()) => panic!("read past the end accepted"),
    };
    assert_eq!(rig.driver.erase_sector(0x1001), Err(ErrorCode::INVAL));
    rig.driver.erase_sector(0).unwrap();
    assert_eq!(rig.driver.erase_sector(0x1000), Err(ErrorCode::BUSY));
    assert!(matches!(
        rig.driver.program(0, buffer, 16),
        Err((ErrorCode::BUSY, _))
    ));
    rig.settle();
}

#[test]
fn the_wake_up_wait_lasts_its_35_us_whatever_the_rtc_tick_phase() {
    // The RTC ticks every 30.5 µs; an alarm for one tick fires on the second tick boundary,
    // 30.5–61 µs later depending on where in a tick it was set.
    for start_us in 0..31 {
        let rig = Rig::new_at(start_us);
        let sent = rig.instructions.borrow();
        let wake = sent
            .iter()
            .position(|&(opcode, _)| opcode == 0xAB)
            .expect("the power-up wakes the part (RDP)");
        let (next, at) = sent[wake + 1];
        let waited = at - sent[wake].1;
        assert!(
            waited >= 35,
            "starting {start_us} µs into a tick, opcode {next:#04x} followed RDP after {waited} µs"
        );
    }
}

#[test]
fn a_part_stuck_busy_times_out_after_twice_its_program_maximum_of_elapsed_time() {
    let rig = Rig::new();
    let buffer: &'static mut [u8] = Box::leak(vec![0x5A; 16].into_boxed_slice());
    rig.port.borrow().chip().set_stuck_busy(true);
    let before = rig.clock.now_us();
    rig.driver
        .program(0x4000, buffer, 16)
        .map_err(|(e, _)| e)
        .unwrap();
    rig.settle();
    assert_eq!(*rig.client.programs.borrow(), vec![Err(ErrorCode::FAIL)]);
    // The bound is 2 × 10 ms (tPP max); the status polls every ~6 µs that the RTC stretches to
    // ≥ 61 µs must not stretch it.
    let took = rig.clock.now_us() - before;
    assert!(
        (20_000..21_000).contains(&took),
        "the time-out came after {took} µs"
    );
}

#[test]
fn a_lost_ready_interrupt_fails_the_operation_and_the_driver_comes_back() {
    let rig = Rig::new();
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 64].into_boxed_slice());
    rig.driver.erase_sector(0x5000).unwrap();
    rig.settle();
    rig.lose_ready.set(true);
    let before = rig.clock.now_us();
    rig.driver
        .read(0x5000, buffer, 64)
        .map_err(|(e, _)| e)
        .unwrap();
    rig.settle();
    let (_, result) = rig
        .client
        .reads
        .borrow_mut()
        .pop()
        .expect("the read never ended");
    assert_eq!(result, Err(ErrorCode::FAIL));
    let took = rig.clock.now_us() - before;
    assert!(took < 20_000, "the read failed after {took} µs");
    // The peripheral was brought up again (without a second `ready`), and works.
    assert_eq!(rig.client.ready.get(), 1);
    let buffer = rig.take_buffer();
    rig.driver
        .read(0x5000, buffer, 64)
        .map_err(|(e, _)| e)
        .unwrap();
    rig.settle();
    let (got, result) = rig.client.reads.borrow_mut().pop().unwrap();
    assert_eq!(result, Ok(()));
    assert_eq!(got[..64], [0xFF; 64]);
    assert!(rig.faults.borrow().is_empty(), "{:?}", rig.faults.borrow());
}

#[test]
fn power_up_from_the_bootloaders_state_deactivates_first_and_finishes() {
    // The peripheral enabled and active, SCK at 32 MHz, the part in high-performance mode.
    let rig = Rig::after_bootloader();
    assert_eq!(rig.model.borrow().activations_while_active, 0);
    assert!(rig.faults.borrow().is_empty(), "{:?}", rig.faults.borrow());
    // And it works: erase, program, read back.
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 32].into_boxed_slice());
    rig.driver.erase_sector(0x6000).unwrap();
    rig.settle();
    buffer.copy_from_slice(&pattern(32, 9));
    rig.driver
        .program(0x6004, buffer, 32)
        .map_err(|(e, _)| e)
        .unwrap();
    rig.settle();
    assert_eq!(rig.chip_bytes(0x6004, 32), pattern(32, 9));
    assert!(rig.faults.borrow().is_empty(), "{:?}", rig.faults.borrow());
}

#[test]
fn power_up_from_reset_activates_once_without_deactivating() {
    let rig = Rig::new();
    assert_eq!(rig.model.borrow().activations_while_active, 0);
    assert!(rig.model.borrow().is_active());
    assert!(rig.faults.borrow().is_empty(), "{:?}", rig.faults.borrow());
}

#[test]
fn an_easydma_pointer_outside_the_drivers_buffers_faults_and_the_read_fails() {
    let rig = Rig::new();
    // The bounce buffer is no longer RAM EasyDMA may use: the model must refuse the transfer
    // (on silicon, a bus error) instead of touching host memory, and no READY comes.
    rig.dma_buffers.borrow_mut().clear();
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 16].into_boxed_slice());
    rig.driver
        .read(0x1000, buffer, 16)
        .map_err(|(e, _)| e)
        .unwrap();
    rig.settle();
    let (_, result) = rig.client.reads.borrow_mut().pop().expect("the read ended");
    assert_eq!(result, Err(ErrorCode::FAIL));
    assert!(
        matches!(
            rig.faults.borrow().first(),
            Some(QspiFault::DmaRule {
                task: "READSTART",
                what: "RAM buffer not reachable by EasyDMA",
                ..
            })
        ),
        "{:?}",
        rig.faults.borrow()
    );
}

#[test]
fn a_ready_served_after_its_time_out_alarm_is_no_time_out() {
    let rig = Rig::new();
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 64].into_boxed_slice());
    rig.driver.erase_sector(0x5000).unwrap();
    rig.settle();
    rig.late_ready.set(true);
    rig.driver
        .read(0x5000, buffer, 64)
        .map_err(|(e, _)| e)
        .unwrap();
    rig.settle();
    assert!(!rig.late_ready.get(), "the late READY was played");
    let (got, result) = rig
        .client
        .reads
        .borrow_mut()
        .pop()
        .expect("the read never ended");
    assert_eq!(result, Ok(()), "READY came: the read goes on");
    assert_eq!(got[..64], [0xFF; 64]);
    assert_eq!(rig.client.ready.get(), 1);
    assert!(rig.faults.borrow().is_empty(), "{:?}", rig.faults.borrow());
}
