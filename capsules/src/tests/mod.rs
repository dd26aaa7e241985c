//! Host tests against the real `kernel` crate: the capsules' logic with a NOR flash model that
//! completes operations when the test says so (split-phase, like the hardware).

mod fake_nor;
mod identity;
mod scan_ring;
mod staged_update;
