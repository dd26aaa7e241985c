//! The full-system simulator's core, shared by `tock-ota demo`, `tock-ota bench transfer` and
//! the tests: everything runs on `hw_models::SimBoard` in simulated time.
pub mod image;
pub mod signing;
pub mod system;
pub mod transfer;
