//! Follows Bluetooth LE 5 extended and periodic advertising, sans-IO: no radio, no timer, no
//! allocation. The caller (the kernel's radio capsule, a simulator, a test) performs the
//! receive operations the [`Follower`] asks for and hands it what the radio heard; the follower
//! hands back each advertising event's AdvData, reassembled from its chain.
//!
//! - [`pdu`]: the Common Extended Advertising Payload Format (ADV_EXT_IND, AUX_ADV_IND,
//!   AUX_CHAIN_IND, AUX_SYNC_IND) parsed into a borrowed view, every length checked; and a
//!   small builder for tests, fuzzing and models.
//! - [`csa2`]: Channel Selection Algorithm #2, the channel of each periodic advertising event.
//! - [`follower`]: the schedule: AuxPtr to the next PDU, chains, periodic sync, window widening,
//!   sync loss and re-sync.
//!
//! The on-air facts (PHYs, T_MAFS, offset and interval units, the default clock accuracy) are
//! defined once, in `adv_transfer::bearer`; the timing formulas the follower and the simulator
//! share are here ([`address_air_us`], [`window_widening_us`]).
#![no_std]
#![forbid(unsafe_code)]

pub mod csa2;
pub mod follower;
pub mod pdu;

pub use adv_transfer::bearer::Phy;
pub use follower::{Config, Counters, Cut, Filter, Follower, Listen, Op, Report};
pub use pdu::{Adi, AdvMode, AuxPhy, AuxPtr, ExtPdu, PduError, SyncInfo};

/// Access address of every advertising channel PDU (primary and secondary channels), Vol 6
/// Part B §2.1.2; a periodic train uses the AA its SyncInfo gives.
pub const ADV_ACCESS_ADDRESS: u32 = 0x8E89_BED6;
/// CRC initialisation value of advertising channel PDUs, Vol 6 Part B §3.1.1.
pub const ADV_CRC_INIT: u32 = 0x55_5555;
/// The primary advertising channels.
pub const PRIMARY_CHANNELS: [u8; 3] = [37, 38, 39];

/// Allowance added to every receive window's widening on each side, µs: the two sides' active
/// clock jitter and the radio's timing tolerance. The project's link model has always used
/// 32 µs; it is conservative against the ±2 µs active clock jitter per side the Core
/// specification allows (Vol 6 Part B §4.2, timing requirements).
pub const WINDOW_JITTER_US: u32 = 32;

/// From the first bit of a packet's preamble to the end of its access address, µs: what lies
/// between a packet's start and the RADIO's ADDRESS event (40 µs at LE 1M, 24 µs at LE 2M).
pub const fn address_air_us(phy: Phy) -> u32 {
    (phy.preamble() as u32 + 4) * phy.ns_per_octet() / 1000
}

/// Window widening, µs, on each side of the expected start of a packet `since_us` after the
/// receiver last heard the sender (or after the packet that gave the offset): both sides'
/// sleep clock accuracies over that time, rounded up, plus [`WINDOW_JITTER_US`]
/// (Vol 6 Part B §4.5.7 gives the form for connections; the synchronization state, §4.4.5,
/// widens the same way from the last anchor heard). The simulator's periodic link uses this
/// function too.
pub const fn window_widening_us(sca_tx_ppm: u32, sca_rx_ppm: u32, since_us: u32) -> u32 {
    let ppm = sca_tx_ppm as u64 + sca_rx_ppm as u64;
    let drift = (ppm * since_us as u64).div_ceil(1_000_000);
    let w = drift + WINDOW_JITTER_US as u64;
    if w > u32::MAX as u64 {
        u32::MAX
    } else {
        w as u32
    }
}

/// Whether wrapping timer value `a` lies after `b` (less than half the timer's range ahead).
pub const fn is_after(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 1 << 31
}
