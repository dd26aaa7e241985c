//! The RADIO, TIMER0 and PPI together: the three register models ([`crate::radio`],
//! [`crate::timer`], [`crate::ppi`]) on one time line, so that what PPI connects happens at
//! the hardware's time, whatever the CPU does meanwhile.
//!
//! Time is given twice by the caller: the emulated µs (the RADIO's and the air's unit) and the
//! 16 MHz tick of the same instant (TIMER0's unit, finer: the CPU's cycle / 4). [`RadioBus::advance`]
//! walks from the last instant to the new one event by event, in time order:
//!
//! - a TIMER0 COMPARE\[n\] that an enabled PPI channel routes fires its tasks at its tick
//!   (RADIO RXEN/DISABLE act at the next whole µs, ⌈tick / 16⌉: the RADIO model counts µs);
//! - a RADIO event (READY, ADDRESS, END, DISABLED) that an enabled channel routes fires its
//!   tasks at its µs (TIMER0 CAPTURE\[n\] takes the counter at that instant's tick, µs × 16);
//! - a TIMER0 compare and a RADIO event at the same instant: the compare first (so a timeout's
//!   DISABLE wins over an ADDRESS in the same µs, as `aux_radio` expects of the silicon).
//!
//! A task a PPI channel may trigger is one the bus can deliver without memory: RADIO RXEN and
//! DISABLE, TIMER0 START/STOP/CLEAR/CAPTURE\[n\]. RADIO TXEN through PPI (channel 20) would need
//! the transmit buffer's bytes at that instant and is refused when the channel is enabled, as
//! is every endpoint outside RADIO and TIMER0 ([`crate::ppi`]).
//!
//! The walk is bounded ([`MAX_STEPS`] events per call): a configuration that makes events
//! faster than that (none a driver would write) is an error, not a hang.

use crate::ppi::{Ppi, PpiError, RADIO_BASE, TIMER0_BASE};
use crate::radio::{Radio, RadioError};
use crate::timer::{Timer, TimerError, CC_COUNT};

/// Events one [`RadioBus::advance`] may walk through before it gives up.
pub const MAX_STEPS: usize = 100_000;
/// 16 MHz ticks per µs.
pub const TICKS_PER_US: u64 = 16;

/// Why a bus access is refused: the model that refused it and its offset in its block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    Radio(RadioError),
    Timer(TimerError),
    Ppi(PpiError),
    /// More than [`MAX_STEPS`] events in one advance.
    Runaway,
}

/// Event registers the bus can route: RADIO READY, ADDRESS, END, DISABLED; TIMER0
/// COMPARE\[0..3\].
pub fn routable_event(addr: u32) -> bool {
    matches!(addr.wrapping_sub(RADIO_BASE), 0x100 | 0x104 | 0x10C | 0x110)
        || (TIMER0_BASE + 0x140..TIMER0_BASE + 0x140 + 4 * CC_COUNT as u32).contains(&addr)
}

/// Task registers the bus can deliver: RADIO RXEN, DISABLE; TIMER0 START, STOP, CLEAR,
/// CAPTURE\[0..3\].
pub fn deliverable_task(addr: u32) -> bool {
    matches!(addr.wrapping_sub(RADIO_BASE), 0x004 | 0x010)
        || matches!(
            addr.wrapping_sub(TIMER0_BASE),
            0x000 | 0x004 | 0x00C | 0x040..=0x04C
        )
}

/// TIMER0 and PPI, and the instant they and the RADIO (the caller's, passed to each call)
/// were walked to.
#[derive(Clone, Debug)]
pub struct RadioBus {
    pub timer0: Timer,
    pub ppi: Ppi,
    /// The instant walked to: (µs, tick).
    at: (u64, u64),
    /// Tasks PPI triggered, counted (RADIO RXEN/DISABLE, TIMER0 captures).
    pub ppi_tasks: u64,
}

impl Default for RadioBus {
    fn default() -> Self {
        Self::new()
    }
}

impl RadioBus {
    /// Reset state.
    pub fn new() -> Self {
        RadioBus {
            timer0: Timer::new(),
            ppi: Ppi::new(routable_event, deliverable_task),
            at: (0, 0),
            ppi_tasks: 0,
        }
    }

    /// TIMER0 COMPARE registers some enabled channel routes (bit n).
    fn routed_compares(&self) -> u32 {
        (0..CC_COUNT as u32)
            .filter(|n| self.ppi.routes(TIMER0_BASE + 0x140 + 4 * n))
            .fold(0, |m, n| m | (1 << n))
    }

    fn deliver(
        &mut self,
        radio: &mut Radio,
        event: u32,
        us: u64,
        tick: u64,
    ) -> Result<(), BusError> {
        let tasks: Vec<u32> = self.ppi.tasks_of(event).collect();
        for task in tasks {
            self.ppi_tasks += 1;
            if task & !0xFFF == RADIO_BASE {
                radio
                    .write(task & 0xFFF, 1, us, None)
                    .map_err(BusError::Radio)?;
            } else {
                self.timer0
                    .task(task & 0xFFF, tick)
                    .map_err(BusError::Timer)?;
            }
        }
        Ok(())
    }

    /// The RADIO's logged events, routed through PPI at their times.
    fn route_radio_events(&mut self, radio: &mut Radio) -> Result<(), BusError> {
        for (event, us) in radio.take_fired() {
            let eep = RADIO_BASE + 0x100 + 4 * event;
            if self.ppi.routes(eep) {
                self.deliver(radio, eep, us, us * TICKS_PER_US)?;
            }
        }
        Ok(())
    }

    /// Walks RADIO, TIMER0 and PPI to `(now_us, now_tick)` (see the module docs).
    pub fn advance(
        &mut self,
        radio: &mut Radio,
        now_us: u64,
        now_tick: u64,
    ) -> Result<(), BusError> {
        for _ in 0..MAX_STEPS {
            let (_, at_tick) = self.at;
            let compare = self
                .timer0
                .next_compare_of(self.routed_compares(), at_tick)
                .filter(|&(t, _)| t <= now_tick);
            let radio_at = radio
                .next_event_us()
                .map(|us| us * TICKS_PER_US)
                .filter(|&t| t > at_tick && t <= now_tick);
            let compare = compare
                .map(|(t, _)| t)
                .filter(|&t| radio_at.is_none_or(|r| t <= r));
            match (compare, radio_at) {
                (Some(t), _) => {
                    let us = t.div_ceil(TICKS_PER_US);
                    let fired = self.timer0.advance(t) & self.routed_compares();
                    radio.advance(us);
                    self.route_radio_events(radio)?;
                    self.at = (us.max(self.at.0), t);
                    for n in 0..CC_COUNT as u32 {
                        if fired & (1 << n) != 0 {
                            self.deliver(radio, TIMER0_BASE + 0x140 + 4 * n, us, t)?;
                        }
                    }
                }
                (_, Some(t)) => {
                    let us = t / TICKS_PER_US;
                    self.timer0.advance(t);
                    radio.advance(us);
                    self.route_radio_events(radio)?;
                    self.at = (us.max(self.at.0), t);
                }
                (None, None) => {
                    self.timer0.advance(now_tick);
                    radio.advance(now_us);
                    self.route_radio_events(radio)?;
                    self.at = (now_us.max(self.at.0), now_tick.max(at_tick));
                    return Ok(());
                }
            }
        }
        Err(BusError::Runaway)
    }

    /// The next µs after `now_tick` at which something happens on its own: a RADIO state
    /// change, a routed TIMER0 compare, or TIMER0's interrupt.
    pub fn next_event_us(&self, radio: &Radio, now_tick: u64) -> Option<u64> {
        let compare = self
            .timer0
            .next_compare_of(self.routed_compares(), now_tick)
            .map(|(t, _)| t);
        let irq = self.timer0.next_irq(now_tick);
        [
            radio.next_event_us(),
            compare.map(|t| t.div_ceil(TICKS_PER_US)),
            irq.map(|t| t.div_ceil(TICKS_PER_US)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Reads a RADIO, TIMER0 or PPI register (absolute address).
    pub fn read(
        &mut self,
        radio: &mut Radio,
        addr: u32,
        now_us: u64,
        now_tick: u64,
    ) -> Result<u32, BusError> {
        self.advance(radio, now_us, now_tick)?;
        let off = addr & 0xFFF;
        match addr & !0xFFF {
            RADIO_BASE => radio.read(off, now_us).map_err(BusError::Radio),
            TIMER0_BASE => self.timer0.read(off, now_tick).map_err(BusError::Timer),
            _ => self.ppi.read(off).map_err(BusError::Ppi),
        }
    }

    /// Writes a RADIO, TIMER0 or PPI register (absolute address); `tx_bytes` as
    /// [`Radio::write`] takes them.
    pub fn write(
        &mut self,
        radio: &mut Radio,
        addr: u32,
        value: u32,
        now_us: u64,
        now_tick: u64,
        tx_bytes: Option<&[u8]>,
    ) -> Result<(), BusError> {
        self.advance(radio, now_us, now_tick)?;
        let off = addr & 0xFFF;
        match addr & !0xFFF {
            RADIO_BASE => {
                let r = radio.write(off, value, now_us, tx_bytes);
                // A DISABLE or a START by hand logs events too.
                self.route_radio_events(radio)?;
                r.map_err(BusError::Radio)
            }
            TIMER0_BASE => self
                .timer0
                .write(off, value, now_tick)
                .map_err(BusError::Timer),
            _ => self.ppi.write(off, value).map_err(BusError::Ppi),
        }
    }

    /// The RADIO's interrupt line (IRQ 1) at `now`.
    pub fn radio_irq(
        &mut self,
        radio: &mut Radio,
        now_us: u64,
        now_tick: u64,
    ) -> Result<bool, BusError> {
        self.advance(radio, now_us, now_tick)?;
        Ok(radio.irq(now_us))
    }

    /// TIMER0's interrupt line (IRQ 8) at `now`.
    pub fn timer0_irq(
        &mut self,
        radio: &mut Radio,
        now_us: u64,
        now_tick: u64,
    ) -> Result<bool, BusError> {
        self.advance(radio, now_us, now_tick)?;
        Ok(self.timer0.irq(now_tick))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radio::{AirPacket, Phy, Radio};

    const RAM: std::ops::Range<u32> = 0x2000_0000..0x2004_0000;
    const BUF: u32 = 0x2000_1000;
    const T: u32 = TIMER0_BASE;
    const R: u32 = RADIO_BASE;
    const P: u32 = crate::ppi::PPI_BASE;
    /// aux_radio's channels: 21 (COMPARE[0] -> RXEN), 22 (COMPARE[1] -> DISABLE), 26
    /// (ADDRESS -> CAPTURE[1]).
    const CHANNELS: u32 = (1 << 21) | (1 << 22) | (1 << 26);

    /// TIMER0 at 1 MHz from tick `start`, the RADIO set for BLE channel `channel` (frequency
    /// offset `freq`) at `phy` with fast ramp-up, MAXLEN 255, READY_START and END_DISABLE, the
    /// DISABLED interrupt; as `aux_radio` programs them.
    /// The RADIO and the bus together, as the emulator's peripherals hold them.
    struct Rig {
        radio: Radio,
        bus: RadioBus,
    }

    impl Rig {
        fn read(&mut self, a: u32, us: u64, tick: u64) -> Result<u32, BusError> {
            self.bus.read(&mut self.radio, a, us, tick)
        }
        fn write(&mut self, a: u32, v: u32, us: u64, tick: u64) -> Result<(), BusError> {
            self.bus.write(&mut self.radio, a, v, us, tick, None)
        }
        fn radio_irq(&mut self, us: u64, tick: u64) -> Result<bool, BusError> {
            self.bus.radio_irq(&mut self.radio, us, tick)
        }
        fn next_event_us(&self, tick: u64) -> Option<u64> {
            self.bus.next_event_us(&self.radio, tick)
        }
    }

    fn armed(start: u64, freq: u32, phy: Phy, rxen_us: u32, timeout_us: u32) -> Rig {
        let mut b = Rig {
            radio: Radio::new(RAM),
            bus: RadioBus::new(),
        };
        let us = start / 16;
        let w = |b: &mut Rig, a, v| b.write(a, v, us, start).unwrap();
        w(&mut b, T + 0x508, 3);
        w(&mut b, T + 0x510, 4);
        w(&mut b, T, 1);
        let (mode, plen) = match phy {
            Phy::Le1M => (3, 0),
            Phy::Le2M => (4, 1 << 24),
        };
        for (o, v) in [
            (0x650, 1),
            (0x510, mode),
            (0x508, freq),
            (0x514, 0x108 | plen),
            (0x518, 0x0203_00FF),
            (0x51C, 0x89BE_D600),
            (0x524, 0x8E),
            (0x534, 0x103),
            (0x504, BUF),
            (0x200, 0b11),
            (0x304, 1 << 4),
        ] {
            w(&mut b, R + o, v);
        }
        w(&mut b, T + 0x540, rxen_us);
        w(&mut b, T + 0x544, timeout_us);
        w(&mut b, P + 0x504, CHANNELS);
        b
    }

    fn packet(at_us: u64, mhz: u32, phy: Phy, n: usize) -> AirPacket {
        AirPacket {
            at_us,
            mhz,
            s0: 0x07,
            length: n as u8,
            payload: (0..n).map(|i| i as u8).collect(),
            crc_ok: true,
            phy,
            aa: crate::radio::ADV_ACCESS_ADDRESS,
        }
    }

    #[test]
    fn compare_switches_the_radio_on_and_address_captures_the_timer() {
        // Timer started at tick 3 (0.1875 µs): counter c at tick 3 + 16 c.
        let mut b = armed(3, 10, Phy::Le2M, 1_000, 1_300);
        // A 2M packet of 200 payload bytes on channel 3 (2410 MHz) at 1,048 µs; one on another
        // channel and one at 1M just before it are not heard.
        b.radio.air(packet(1_040, 2412, Phy::Le2M, 10));
        b.radio.air(packet(1_045, 2410, Phy::Le1M, 10));
        b.radio.air(packet(1_048, 2410, Phy::Le2M, 200));
        // Asleep until the bus says something happens: the compare at tick 3 + 16,000.
        assert_eq!(b.next_event_us(3), Some(1_001));
        assert_eq!(b.read(R + 0x550, 1_000, 16_000).unwrap(), 0, "DISABLED");
        assert_eq!(b.read(R + 0x550, 1_001, 16_016).unwrap(), 1, "RXRU");
        // RXEN at 1,001 µs, fast ramp-up: RX from 1,041.
        assert_eq!(b.read(R + 0x550, 1_041, 16_656).unwrap(), 3, "RX");
        assert_eq!(b.read(R + 0x100, 1_041, 16_656).unwrap(), 1, "READY");
        // ADDRESS at 1,048 + 24 µs (2 preamble and 4 address octets at 4 µs): captured.
        let end = 1_048 + u64::from(Phy::Le2M.air_us(200));
        assert_eq!(end, 1_048 + 4 * (2 + 4 + 2 + 200 + 3));
        assert!(!b.radio_irq(end - 1, 16 * (end - 1)).unwrap());
        // Captured at tick 16 × 1,072: the counter, started 3 ticks in, reads 1,071 there.
        assert_eq!(
            b.bus.timer0.read(0x544, 16 * end).unwrap(),
            1_071,
            "CC[1] = ADDRESS"
        );
        assert!(b.radio_irq(end, 16 * end).unwrap(), "END_DISABLE: DISABLED");
        assert_eq!(b.read(R + 0x400, end, 16 * end).unwrap(), 1, "CRC ok");
        let writes = std::mem::take(&mut b.radio.dma_writes);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].1.len(), 2 + 200, "S0, LENGTH, 200 bytes");
        assert_eq!(b.radio.missed, 2);
        // The timeout's compare was overwritten by the capture: nothing more until the timer
        // wraps (2^32 µs).
        assert!(b.next_event_us(16 * end).is_some_and(|t| t > 1 << 32));
        assert_eq!(b.bus.ppi_tasks, 2, "RXEN, CAPTURE[1]");
    }

    #[test]
    fn the_timeout_disables_a_radio_that_heard_nothing() {
        let mut b = armed(0, 26, Phy::Le1M, 500, 900);
        // Only a packet too late for the window (after the timeout).
        b.radio.air(packet(2_000, 2426, Phy::Le1M, 30));
        assert!(!b.radio_irq(899, 16 * 899).unwrap());
        assert_eq!(b.radio.read(0x550, 899).unwrap(), 3, "RX");
        assert!(b.radio_irq(900, 16 * 900).unwrap(), "DISABLE by COMPARE[1]");
        assert_eq!(b.read(R + 0x10C, 900, 16 * 900).unwrap(), 0, "no END");
        assert_eq!(
            b.bus.timer0.read(0x544, 16 * 900).unwrap(),
            900,
            "nothing captured"
        );
        assert_eq!(
            b.read(R + 0x550, 3_000, 16 * 3_000).unwrap(),
            0,
            "stays DISABLED"
        );
        assert!(b.radio.dma_writes.is_empty());
    }

    #[test]
    fn a_timeout_in_the_address_microsecond_wins() {
        // Packet at 1M from 1,000: ADDRESS at 1,040; the timeout compares at 1,040 too.
        let mut b = armed(0, 2, Phy::Le1M, 900, 1_040);
        b.radio.air(packet(1_000, 2402, Phy::Le1M, 20));
        assert!(b.radio_irq(1_040, 16 * 1_040).unwrap());
        assert_eq!(b.read(R + 0x550, 2_000, 16 * 2_000).unwrap(), 0);
        assert!(
            b.radio.dma_writes.is_empty(),
            "disabled before the packet ended"
        );
        assert_eq!(b.bus.timer0.read(0x544, 16 * 2_000).unwrap(), 1_040);
    }

    #[test]
    fn channels_off_nothing_happens_and_txen_by_ppi_is_refused() {
        let mut b = armed(0, 2, Phy::Le1M, 100, 500);
        b.write(P + 0x508, CHANNELS, 0, 0).unwrap();
        assert_eq!(b.next_event_us(0), None);
        assert_eq!(b.read(R + 0x550, 1_000, 16_000).unwrap(), 0);
        assert!(matches!(
            b.write(P + 0x504, 1 << 20, 1_000, 16_000),
            Err(BusError::Ppi(PpiError::Endpoint { channel: 20, .. }))
        ));
        assert!(matches!(
            b.read(T + 0x600, 1_000, 16_000),
            Err(BusError::Timer(TimerError::Unknown))
        ));
    }
}
