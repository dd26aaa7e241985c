//! TIMER0 and PPI in the peripheral map: at their nRF52840 addresses, on the processor's
//! cycle, and connected to the RADIO as `aux_radio` connects them.

use boot_emu::periph::{HwEvent, Peripherals, PPI_BASE, RADIO_BASE, TIMER0_BASE};
use boot_emu::HwError;
use hw_models::SimBoard;

#[test]
fn timer0_counts_the_16_mhz_clock_to_the_processor_cycle_and_ppi_switches_the_radio_on() {
    let mut board = SimBoard::new(3);
    let (qspi, nvmc) = (board.qspi.port(), board.internal.port());
    let mut p = Peripherals::new(qspi, nvmc, 0, 0);
    // At 10 µs and 8 cycles into it (two 16 MHz ticks): the timer starts at 1 MHz, 32 bits.
    p.cpu_cycle_in_us = (10, 8);
    for (off, v) in [(0x508, 3), (0x510, 4), (0x000, 1)] {
        p.write(TIMER0_BASE + off, 4, v, 10).unwrap();
    }
    // 100 µs later, 7 cycles into the µs: one tick short of 100 timer steps.
    p.cpu_cycle_in_us = (110, 7);
    p.write(TIMER0_BASE + 0x04C, 4, 1, 110).unwrap();
    assert_eq!(p.read(TIMER0_BASE + 0x54C, 4, 110).unwrap(), 99);
    p.cpu_cycle_in_us = (110, 8);
    p.write(TIMER0_BASE + 0x04C, 4, 1, 110).unwrap();
    assert_eq!(p.read(TIMER0_BASE + 0x54C, 4, 110).unwrap(), 100);

    // COMPARE[0] at 500 -> RXEN through channel 21: the RADIO ramps up while the CPU sleeps.
    for (off, v) in [(0x510, 3), (0x514, 0x108), (0x518, 0x0203_0025), (0x508, 2)] {
        p.write(RADIO_BASE + off, 4, v, 110).unwrap();
    }
    p.write(TIMER0_BASE + 0x540, 4, 500, 110).unwrap();
    p.write(PPI_BASE + 0x504, 4, 1 << 21, 110).unwrap();
    assert_eq!(p.read(PPI_BASE + 0x500, 4, 110).unwrap(), 1 << 21);
    p.cpu_cycle_in_us = (0, 0);
    // The compare is at tick 2 + 16 × 500, inside µs 510: the RADIO acts at 511.
    assert_eq!(p.next_interrupt_us(110), Some(511));
    p.update_interrupts(511);
    assert_eq!(p.read(RADIO_BASE + 0x550, 4, 511).unwrap(), 1, "RXRU");

    // A PPI channel to a block the emulation lacks, and a TIMER0 register it does not know,
    // end the run with the address named.
    assert!(matches!(
        p.write(PPI_BASE + 0x504, 4, 1 << 28, 511),
        Err(HwEvent::Error(HwError::Unsupported { addr, value: 28, .. })) if addr == PPI_BASE + 0x504
    ));
    assert_eq!(
        p.read(TIMER0_BASE + 0x550, 4, 511),
        Err(HwEvent::Error(HwError::UnknownRegister {
            addr: TIMER0_BASE + 0x550,
            write: false
        }))
    );
}

/// Air with one packet planned at 5 ms, never put on.
struct Planned;

impl hw_models::radio::Air for Planned {
    fn pump(&mut self, _now_us: u64, _radio: &mut hw_models::radio::Radio) {}
    fn next_at(&self) -> Option<u64> {
        Some(5_000)
    }
}

#[test]
fn a_sleeping_cpu_wakes_for_the_air_only_while_the_radio_listens() {
    let mut board = SimBoard::new(3);
    let (qspi, nvmc) = (board.qspi.port(), board.internal.port());
    let mut air = Planned;
    let mut p = Peripherals::new(qspi, nvmc, 0, 0);
    p.air = Some(&mut air);
    // Disabled: nothing to wake for (a device asleep for good ends its run).
    assert_eq!(p.next_interrupt_us(0), None);
    for (off, v) in [(0x510, 3), (0x514, 0x108), (0x518, 0x0203_0025), (0x508, 2)] {
        p.write(RADIO_BASE + off, 4, v, 0).unwrap();
    }
    p.write(RADIO_BASE + 0x004, 4, 1, 10).unwrap();
    // RXEN given: READY at 150, then the planned packet.
    assert_eq!(p.next_interrupt_us(10), Some(150));
    p.update_interrupts(150);
    assert_eq!(p.next_interrupt_us(150), Some(5_000));
}
