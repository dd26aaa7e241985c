//! The full-system simulator, shared by `tock-ota demo`, `tock-ota bench transfer` and
//! the tests: everything runs on `hw_models::SimBoard` in simulated time, and the DFU app on the
//! board is `dfu-app`, the code the Tock app runs. [`demo`] is `tock-ota demo`'s command.
#![forbid(unsafe_code)]
pub mod demo;
pub mod demo_app;
pub mod ext_kernel;
pub mod image;
pub mod kernel;
pub mod radio;
pub mod signing;
pub mod system;
pub mod transfer;
