//! The DFU app binary: see the library crate for what it does.
#![no_main]
#![no_std]

use libtock::alarm::{Alarm, Milliseconds};
use libtock::console::Console;
use libtock::runtime::{set_main, stack_size, TockSyscalls};
use tock_ota_dfu::{run, BATCH_LEN, BITMAP_LEN};

set_main! {main}
stack_size! {0x2000}

fn main() {
    let mut bitmap = [0u8; BITMAP_LEN];
    let mut batch = [0u8; BATCH_LEN];
    let now_ms = || Alarm::get_milliseconds().unwrap_or(0);
    let sleep_ms = |ms: u32| {
        let _ = Alarm::sleep_for(Milliseconds(ms));
    };
    let mut console = Console::writer();
    let _ = run::<TockSyscalls, _>(&mut console, &now_ms, &sleep_ms, &mut bitmap, &mut batch);
}
