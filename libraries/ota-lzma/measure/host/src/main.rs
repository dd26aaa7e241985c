//! `ota-lzma-measure-host FLASH.bin RAM.bin ENTRY PLAIN.bin`: loads measure/fw's code and data,
//! calls `decode_all` at ENTRY (hex) on a Cortex-M4, counts the instructions it executes and
//! checks the output's hash against PLAIN.bin.
#![forbid(unsafe_code)]
use std::cell::Cell;
use std::rc::Rc;

use unicorn_engine::unicorn_const::{Arch, Mode, Prot};
use unicorn_engine::{ArmCpuModel, RegisterARM, Unicorn};

const RAM: u64 = 0x2000_0000;
const RAM_LEN: u64 = 0x10_0000;
/// A mapped, executable address to return to: reaching it ends the run.
const RETURN: u64 = 0x0800_0000;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let [_, flash, ram, entry, plain] = &a[..] else {
        panic!("usage: ota-lzma-measure-host FLASH.bin RAM.bin ENTRY PLAIN.bin");
    };
    let flash = std::fs::read(flash).unwrap();
    let ram = std::fs::read(ram).unwrap();
    let entry = u64::from_str_radix(entry.trim_start_matches("0x"), 16).unwrap();
    let plain = std::fs::read(plain).unwrap();
    let mut uc = Unicorn::new(Arch::ARM, Mode::THUMB | Mode::MCLASS).unwrap();
    uc.ctl_set_cpu_model(ArmCpuModel::CORTEX_M4 as i32).unwrap();
    uc.mem_map(0, 0x10_0000, Prot::ALL).unwrap();
    uc.mem_map(RAM, RAM_LEN, Prot::ALL).unwrap();
    uc.mem_map(RETURN, 0x1000, Prot::ALL).unwrap();
    uc.mem_write(0, &flash).unwrap();
    uc.mem_write(RAM, &ram).unwrap();
    uc.reg_write(RegisterARM::SP, RAM + RAM_LEN).unwrap();
    uc.reg_write(RegisterARM::LR, RETURN | 1).unwrap();
    let count = Rc::new(Cell::new(0u64));
    let c = count.clone();
    uc.add_code_hook(1, 0, move |_, _, _| c.set(c.get() + 1))
        .unwrap();
    if let Err(e) = uc.emu_start(entry | 1, RETURN, 0, 0) {
        let pc = uc.reg_read(RegisterARM::PC).unwrap();
        panic!("{e:?} at pc {pc:#x} after {} instructions", count.get());
    }
    let (r0, r1) = (
        uc.reg_read(RegisterARM::R0).unwrap() as u32,
        uc.reg_read(RegisterARM::R1).unwrap() as u32,
    );
    assert!(
        !(r0 == u32::MAX && r1 == u32::MAX),
        "the decoder refused the payload"
    );
    let mut h = 0x811c_9dc5u32;
    for &b in &plain {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    assert_eq!(r1, h, "decoded output differs from the plain payload");
    println!(
        "{} output bytes match; {r0} read-backs; {} Cortex-M4 instructions",
        plain.len(),
        count.get()
    );
}
