//! Bare-metal part: vector table, reset handler, peripherals, the jump.

use boot_core::{BackgroundNor, BootEnv, BootError, Region, ResetReason};
use boot_nrf::{reset_reason, BackgroundQspi, NRF52840_DK};
use core::arch::{asm, global_asm};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use nrf52840_flash::hw::{QspiPins, RegisterNvmcPort, RegisterQspiPort};
use nrf52840_flash::regs::{
    self, AclPerm, AclRegisters, GpioRegisters, ICacheCnf, NvmcRegisters, PinCnf, PowerRegisters,
    WdtRegisters,
};
use nrf52840_flash::{NvmcFlash, PowerMode, QspiFlash};
use tock_registers::interfaces::{Readable, Writeable};

// Vector table: initial stack pointer, reset, and the 14 other core exceptions (no device
// interrupts are enabled: everything polls). Reset zeroes .bss, copies .data, enables the FPU
// (the hard-float ABI may use its registers) and calls `start`.
global_asm!(
    r#"
    .section .vector_table, "a"
    .word _stack_top
    .word Reset
    .rept 14
    .word Fault
    .endr

    .section .text.Reset, "ax"
    .global Reset
    .type Reset, %function
    .thumb_func
Reset:
    ldr r0, =__sbss
    ldr r1, =__ebss
    movs r2, #0
1:  cmp r0, r1
    bhs 2f
    str r2, [r0], #4
    b 1b
2:  ldr r0, =__sdata
    ldr r1, =__edata
    ldr r2, =__sidata
3:  cmp r0, r1
    bhs 4f
    ldr r3, [r2], #4
    str r3, [r0], #4
    b 3b
4:  ldr r0, =0xE000ED88
    ldr r1, [r0]
    orr r1, r1, #0xF00000
    str r1, [r0]
    dsb
    isb
    bl start
    b .
    .ltorg

    .section .text.Fault, "ax"
    .global Fault
    .type Fault, %function
    .thumb_func
Fault:
    b system_reset
"#
);

/// System Control Block registers used here (Cortex-M4 core, not an nRF peripheral).
const SCB_VTOR: usize = 0xE000_ED08;
const SCB_AIRCR: usize = 0xE000_ED0C;

/// Requests a system reset (AIRCR.SYSRESETREQ): the journal resumes on the next boot.
#[no_mangle]
pub extern "C" fn system_reset() -> ! {
    // SAFETY: AIRCR is the architectural Cortex-M register; writing VECTKEY|SYSRESETREQ only
    // resets the chip.
    unsafe { core::ptr::write_volatile(SCB_AIRCR as *mut u32, 0x05FA_0004) };
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    system_reset()
}

fn power() -> &'static PowerRegisters {
    // SAFETY: POWER_BASE is the nRF52840 POWER block, valid for the whole program; only the
    // bootloader runs now.
    unsafe { &*(regs::POWER_BASE as *const PowerRegisters) }
}
fn nvmc() -> &'static NvmcRegisters {
    // SAFETY: as above, the NVMC block.
    unsafe { &*(regs::NVMC_BASE as *const NvmcRegisters) }
}
fn wdt() -> &'static WdtRegisters {
    // SAFETY: as above, the WDT block.
    unsafe { &*(regs::WDT_BASE as *const WdtRegisters) }
}
fn acl() -> &'static AclRegisters {
    // SAFETY: as above, the ACL block.
    unsafe { &*(regs::ACL_BASE as *const AclRegisters) }
}
fn gpio() -> &'static GpioRegisters {
    // SAFETY: as above, GPIO port 0.
    unsafe { &*(regs::GPIO_P0_BASE as *const GpioRegisters) }
}

/// The DK's LED1 (P0.13, lit when driven low).
const LED1: usize = 13;
/// Watchdog feeds between two tries of the external flash while waiting (about 0.1 s).
const WAIT_SPINS: u32 = 1 << 20;

/// Reloads every enabled watchdog reload register, if the watchdog runs (it survives soft
/// resets, so a kernel that started it keeps it running through a long install).
fn feed_watchdog() {
    let w = wdt();
    if w.runstatus.get() & 1 == 0 {
        return;
    }
    let enabled = w.rren.get();
    for (i, rr) in w.rr.iter().enumerate() {
        if enabled & (1 << i) != 0 {
            rr.set(regs::WDT_RELOAD_VALUE);
        }
    }
}

/// A flash that feeds the watchdog before each operation.
///
/// Its error is only the driver error's kind: all the boot flow keeps of it (`BootError`), and
/// a one-byte error keeps every `Result` moved through the generic boot code small.
struct Fed<F>(F);

/// A flash operation failed; the kind is what `NorFlashError::kind` said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fault(NorFlashErrorKind);

impl NorFlashError for Fault {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

fn fault<E: NorFlashError>(e: E) -> Fault {
    Fault(e.kind())
}

impl<F: ErrorType> ErrorType for Fed<F> {
    type Error = Fault;
}
impl<F: ReadNorFlash> ReadNorFlash for Fed<F> {
    const READ_SIZE: usize = F::READ_SIZE;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        feed_watchdog();
        self.0.read(offset, bytes).map_err(fault)
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}
impl<F: NorFlash> NorFlash for Fed<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        feed_watchdog();
        self.0.erase(from, to).map_err(fault)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        feed_watchdog();
        self.0.write(offset, bytes).map_err(fault)
    }
}
impl<F: BackgroundNor> BackgroundNor for Fed<F> {
    fn start_erase_sector(&mut self, addr: u32) -> Result<(), Self::Error> {
        feed_watchdog();
        self.0.start_erase_sector(addr).map_err(fault)
    }
    fn start_program_page(&mut self, addr: u32, data: &[u8]) -> Result<(), Self::Error> {
        feed_watchdog();
        self.0.start_program_page(addr, data).map_err(fault)
    }
    fn is_busy(&mut self) -> Result<bool, Self::Error> {
        feed_watchdog();
        self.0.is_busy().map_err(fault)
    }
    fn wait_idle(&mut self) -> Result<(), Self::Error> {
        feed_watchdog();
        self.0.wait_idle().map_err(fault)
    }
}

/// Locks `region` against NVMC write and erase until the next reset (ACL region 0).
#[no_mangle]
#[inline(never)]
pub extern "C" fn acl_lock(start: u32, len: u32) {
    let r = &acl().acl[0];
    r.addr.set(start);
    r.size.set(len);
    r.perm.write(AclPerm::WRITE::Disable);
}

/// Starts the kernel whose vector table is at `vector_table`: VTOR, MSP from word 0, branch to
/// the reset handler in word 1. The emulator watches for this symbol.
#[no_mangle]
#[inline(never)]
pub extern "C" fn boot_jump(vector_table: u32) -> ! {
    // SAFETY: `vector_table` is the kernel slot start; boot_core only returns it when the slot
    // holds a kernel (old or verified new). VTOR is the architectural register.
    unsafe {
        core::ptr::write_volatile(SCB_VTOR as *mut u32, vector_table);
        let sp = core::ptr::read_volatile(vector_table as *const u32);
        let pc = core::ptr::read_volatile((vector_table + 4) as *const u32);
        asm!(
            "dsb",
            "isb",
            "msr msp, {sp}",
            "bx {pc}",
            sp = in(reg) sp,
            pc = in(reg) pc,
            options(noreturn)
        );
    }
}

fn lock_and_jump(lock: Region, kernel: u32) -> ! {
    acl_lock(lock.start, lock.len);
    boot_jump(kernel)
}

/// Waits without executing the kernel slot, which may hold parts of two kernels: LED1 on, the
/// watchdog fed (if it runs), the external flash tried again now and then; once it answers, a
/// system reset lets the boot flow finish or restore the kernel. The emulator watches for this
/// symbol.
#[no_mangle]
#[inline(never)]
fn safe_wait(q: &mut QspiFlash<RegisterQspiPort>) -> ! {
    // Output with OUT at its reset value 0: the LED lights.
    gpio().pin_cnf[LED1].write(PinCnf::DIR::Output);
    loop {
        for _ in 0..WAIT_SPINS {
            feed_watchdog();
        }
        if q.init().is_ok() {
            system_reset()
        }
    }
}

/// Without the external flash (or a usable key): the kernel slot only if the state page says
/// it is whole, else wait.
fn offline(
    internal: &mut Fed<NvmcFlash<RegisterNvmcPort>>,
    q: &mut QspiFlash<RegisterQspiPort>,
) -> ! {
    if let Ok(Some(d)) = boot_core::boot_without_qspi(&NRF52840_DK, internal) {
        lock_and_jump(d.lock, d.kernel_addr)
    }
    safe_wait(q)
}

/// The QSPI peripheral, configured and activated once (activating an active peripheral raises
/// no READY event), driving the flash in high-performance mode.
fn qspi() -> QspiFlash<RegisterQspiPort> {
    // SAFETY: nRF52840 and nothing else uses the QSPI peripheral in the bootloader.
    let mut port = unsafe { RegisterQspiPort::new() };
    port.configure(QspiPins::NRF52840_DK);
    QspiFlash::new(port, PowerMode::HighPerformance)
}

/// Brings up the flash; a few tries since the chip may still be busy from before a reset.
fn qspi_up(q: &mut QspiFlash<RegisterQspiPort>) -> bool {
    (0..3).any(|_| q.init().is_ok())
}

/// One pass of the boot flow on the DK layout: the region to lock and the kernel to start,
/// `None` on a flash failure; a kernel slot nothing can make whole means waiting. Kept out of `start`, and given the layout as a constant (so its
/// checks and sums fold at compile time), it is smaller than `boot` inlined into `start`.
#[inline(never)]
fn run_boot(
    internal: &mut Fed<NvmcFlash<RegisterNvmcPort>>,
    qspi: &mut Fed<BackgroundQspi<QspiFlash<RegisterQspiPort>>>,
    checker: &Checker<'_>,
    reset_reason: ResetReason,
) -> Option<(Region, u32)> {
    let mut env = BootEnv {
        layout: &NRF52840_DK,
        internal,
        qspi,
        checker,
        reset_reason,
    };
    match boot_core::boot(&mut env) {
        Ok(d) => Some((d.lock, d.kernel_addr)),
        Err(BootError::Unbootable) => safe_wait(&mut env.qspi.0 .0),
        Err(_) => None,
    }
}

type Checker<'k> = boot_core::OtaChecker<'k, crate::checker::Verifier>;

#[no_mangle]
extern "C" fn start() -> ! {
    let p = power();
    let reas = p.resetreas.get();
    // Write-1-to-clear, so the kernel sees only resets after this one.
    p.resetreas.set(reas);
    nvmc().icachecnf.write(ICacheCnf::CACHEEN::SET);
    feed_watchdog();

    // SAFETY: nRF52840; the bootloader runs from flash pages it never writes.
    let mut internal = Fed(NvmcFlash::new(unsafe { RegisterNvmcPort::new() }));
    let mut q = qspi();
    if !qspi_up(&mut q) {
        // No external flash: an install or revert in progress cannot go on, and the state page
        // says whether it left the kernel slot half written.
        offline(&mut internal, &mut q)
    }
    let Ok(key) = ota_image::PublicKey::from_raw(&crate::PUBLIC_KEY) else {
        // A build with an unusable key can never accept an image: boot what is there.
        offline(&mut internal, &mut q)
    };
    let mut qspi = Fed(BackgroundQspi(q));
    let checker = boot_core::OtaChecker {
        key: &key,
        verifier: crate::checker::VERIFIER,
    };
    for _ in 0..3 {
        let reason = reset_reason(reas);
        if let Some((lock, kernel_addr)) = run_boot(&mut internal, &mut qspi, &checker, reason) {
            lock_and_jump(lock, kernel_addr)
        }
    }
    // Flash kept failing: start over from the journal.
    system_reset()
}
