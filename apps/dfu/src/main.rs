//! The DFU app binary: see the library crate (the binding) and `dfu-app` (the logic).
#![no_main]
#![no_std]

use libtock::console::Console;
use libtock::runtime::{set_main, stack_size, TockSyscalls};
use tock_ota_dfu::{run_with_bearers, TockKernel, BATCH_LEN, BITMAP_LEN, EXT_BATCH_LEN};

set_main! {main}
stack_size! {0xE000}

fn main() {
    let mut bitmap = [0u8; BITMAP_LEN];
    let mut batch = [0u8; BATCH_LEN];
    let mut ext_batch = [0u8; EXT_BATCH_LEN];
    let mut kernel = TockKernel::<TockSyscalls, _>::new(Console::writer(), &|| false);
    // Returns only without the drivers or once the kernel takes the reboot request.
    let _ = run_with_bearers(&mut kernel, &mut bitmap, &mut batch, &mut ext_batch);
}
