//! Image transfer over BLE legacy advertising: sender and receiver state machines, sans-IO.
//!
//! A sender broadcasts the image as 25-byte chunks, one per advertising event, each inside one
//! Manufacturer Specific Data AD structure (≤ 31 bytes of AdvData). The receiver stages chunks
//! as they come (any order, duplicates ignored), checks each 4 KiB block against its CRC-32 once
//! all its chunks are in, and reports in its own advertisements which chunks it still misses;
//! the sender retransmits those. A receiver that reboots mid-transfer reads back what it had
//! staged and continues. The byte layout is in `docs/transfer-protocol.md`.
//!
//! Neither side does I/O or keeps time: the caller feeds advertisements ([`Receiver::on_adv`],
//! [`Sender::on_adv`]) and ticks, performs the staging operations the receiver asks for
//! ([`Receiver::poll_op`] / [`Receiver::op_done`]) and transmits the advertisements the sides
//! produce ([`Sender::next_adv`], [`Receiver::status_adv`]). The host tool, the simulator and the
//! Tock DFU app share the same code.
#![no_std]
#![forbid(unsafe_code)]

pub mod bearer;
pub mod receiver;
pub mod sender;
pub mod wire;

pub use receiver::{FlashTiming, Receiver, RxCounters, RxOutcome, RxProgress, StageError, StageOp};
pub use sender::{Sender, SenderError, TxCounters, TxEvent};
pub use wire::{session_address, RxState, SessionInfo, DEFAULT_COMPANY_ID};

/// Link parameters shared by both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The company identifier in every AD structure.
    pub company_id: u16,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            company_id: DEFAULT_COMPANY_ID,
        }
    }
}
