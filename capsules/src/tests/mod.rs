//! Host tests against the real `kernel` crate: the capsules' logic with a NOR flash model that
//! completes operations when the test says so (split-phase, like the hardware).
//!
//! The flash model and the test images live in `tests/support/` so that the syscall-layer
//! integration tests (which need a process double, hence `unsafe`) use the same ones.

mod abi;
#[path = "../../tests/support/fake_alarm.rs"]
#[allow(dead_code)]
mod fake_alarm;
#[path = "../../tests/support/fake_nor.rs"]
mod fake_nor;
#[path = "../../tests/support/fake_radio.rs"]
mod fake_radio;
mod identity;
#[path = "../../tests/support/image.rs"]
mod image;
mod scan_ring;
mod staged_update;
