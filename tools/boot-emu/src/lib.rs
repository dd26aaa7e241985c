//! Runs the bootloader firmware from its reset vector under the Unicorn CPU emulator
//! (Cortex-M4 model), against register-level models of the nRF52840 peripherals it touches.
//!
//! - [`Firmware`]: an ELF built for `thumbv7em-none-eabihf`: load segments, symbols, the RAM the
//!   image owns, and the addresses of its FPU instructions.
//! - [`run`]: one power-on: the internal flash is mirrored from the NVMC model, the CPU starts at
//!   the reset vector, every peripheral access goes through [`periph::Peripherals`] and from
//!   there to the `nrf52840-flash` port traits the `hw-models` flash models implement; the run
//!   ends at the jump into the kernel slot (or continues into the kernel), at a reset request,
//!   at a power cut, or with an [`EmuError`].
//! - [`build`]: builds the firmware ELF with cargo when it is missing or outdated.
//!
//! What Unicorn does not model is checked here instead: it has no exceptions (a fault is an
//! error), it counts instructions rather than cycles (time is `instructions × CPI / f`), it runs
//! FPU instructions without CPACR (each FPU instruction checks CPACR), and it rejects the
//! single-register `LDM.W`/`STM.W` that the Cortex-M4 executes like `LDR`/`STR` (emulated).
#![forbid(unsafe_code)]

pub mod bench;
pub mod build;
pub mod exceptions;
pub mod faults;
pub mod ficr;
pub mod images;
pub mod mpu;
pub mod nvic;
pub mod periph;
pub mod rig;
pub mod rtc;
pub mod systick;
pub mod uarte;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use hw_models::clock::SimClock;
use nrf52840_flash::{NvmcPort, QspiPort};
use object::elf;
use object::read::elf::{ElfFile32, ProgramHeader};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind};
use unicorn_engine::{Arch, ArmCpuModel, HookType, MemType, Mode, Prot, RegisterARM, Unicorn};

pub use periph::{AclRegion, HwCounters, HwError, HwStop};
use periph::{HwEvent, Peripherals};

/// The nRF52840 CPU clock.
pub const CPU_HZ: f64 = 64_000_000.0;
/// Cycles per instruction assumed when turning instruction counts into time. The block-level
/// Cortex-M4 timing model of the crypto probe gave 1.16 for SHA-256 and 1.3–1.6 for big-number
/// code with the NVMC instruction cache on; 1.25 sits in that range (reports also give 1.0–1.5).
pub const CPI_ASSUMED: f64 = 1.25;
/// Painted into the stack area before a run; the lowest overwritten word is the peak depth.
const STACK_PAINT: u32 = 0xA5A5_A5A5;

/// A firmware image loaded from an ELF file.
#[derive(Clone, Debug)]
pub struct Firmware {
    /// Bytes to place in internal flash (load addresses), from the `PT_LOAD` segments.
    pub flash_segments: Vec<(u32, Vec<u8>)>,
    /// Function and object symbols.
    pub symbols: BTreeMap<String, u32>,
    /// End of the RAM the image itself uses (`.data`, `.bss`, `.uninit`): the stack lies above.
    pub ram_image_end: u32,
    /// Addresses of FPU (coprocessor 10/11) instructions in executable sections.
    pub fpu_sites: Vec<u32>,
}

impl Firmware {
    /// Reads an ELF file.
    pub fn from_path(path: &std::path::Path) -> Result<Self, EmuError> {
        let bytes =
            std::fs::read(path).map_err(|e| EmuError::Elf(format!("{}: {e}", path.display())))?;
        Self::from_elf(&bytes)
    }

    /// Parses an ELF image.
    pub fn from_elf(data: &[u8]) -> Result<Self, EmuError> {
        let file = ElfFile32::<object::Endianness>::parse(data)
            .map_err(|e| EmuError::Elf(e.to_string()))?;
        let endian = file.endian();
        let mut flash_segments = Vec::new();
        for ph in file.elf_program_headers() {
            if ph.p_type(endian) != elf::PT_LOAD || ph.p_filesz(endian) == 0 {
                continue;
            }
            let paddr = ph.p_paddr(endian);
            let bytes = ph
                .data(endian, data)
                .map_err(|()| EmuError::Elf("segment data out of file".into()))?;
            if paddr >= periph::FLASH_SIZE {
                return Err(EmuError::Elf(format!(
                    "segment loads at {paddr:#x}, outside internal flash"
                )));
            }
            flash_segments.push((paddr, bytes.to_vec()));
        }
        let ram = periph::RAM_START..periph::RAM_START + periph::RAM_SIZE;
        let mut ram_image_end = periph::RAM_START;
        let mut fpu_sites = Vec::new();
        for section in file.sections() {
            let addr = section.address() as u32;
            if ram.contains(&addr) {
                ram_image_end = ram_image_end.max(addr + section.size() as u32);
            }
            let exec = section.kind() == SectionKind::Text;
            if exec && addr < periph::FLASH_SIZE {
                if let Ok(code) = section.data() {
                    fpu_sites.extend(scan_fpu_instructions(addr, code));
                }
            }
        }
        let symbols = file
            .symbols()
            .filter(|s| s.is_definition())
            .filter_map(|s| Some((s.name().ok()?.to_string(), (s.address() as u32) & !1)))
            .collect();
        if flash_segments.is_empty() {
            return Err(EmuError::Elf("no loadable segment".into()));
        }
        Ok(Firmware {
            flash_segments,
            symbols,
            ram_image_end,
            fpu_sites,
        })
    }

    /// Address of a symbol (Thumb bit cleared).
    pub fn symbol(&self, name: &str) -> Option<u32> {
        self.symbols.get(name).copied()
    }

    /// The (demangled) function symbol containing `pc`.
    pub fn function_at(&self, pc: u32) -> String {
        let counts = [(pc, 1)].into_iter().collect();
        self.attribute(&counts)
            .into_keys()
            .next()
            .unwrap_or_default()
    }

    /// Sums per-address counts into the function symbols that contain them.
    pub fn attribute(&self, counts: &std::collections::HashMap<u32, u64>) -> BTreeMap<String, u64> {
        let mut starts: Vec<(u32, &str)> = self
            .symbols
            .iter()
            .filter(|(name, &addr)| {
                addr < periph::FLASH_SIZE && !name.starts_with('$') && !name.is_empty()
            })
            .map(|(name, &addr)| (addr, name.as_str()))
            .collect();
        starts.sort();
        let mut out = BTreeMap::new();
        for (&pc, &n) in counts {
            let name = match starts.partition_point(|&(a, _)| a <= pc) {
                0 => format!("{pc:#x}"),
                i => format!("{:#}", rustc_demangle::demangle(starts[i - 1].1)),
            };
            *out.entry(name).or_default() += n;
        }
        out
    }

    /// Bytes the image occupies in internal flash.
    pub fn flash_bytes(&self) -> usize {
        self.flash_segments.iter().map(|(_, b)| b.len()).sum()
    }
}

/// Finds 32-bit Thumb coprocessor instructions for CP10/CP11 (VFP) by a linear decode.
/// Literal pools can hide an instruction from the decode; they never add a wrong site that runs.
fn scan_fpu_instructions(base: u32, code: &[u8]) -> Vec<u32> {
    let mut sites = Vec::new();
    let mut i = 0;
    while i + 2 <= code.len() {
        let hw1 = u16::from_le_bytes([code[i], code[i + 1]]);
        let wide = matches!(hw1 >> 11, 0b11101..=0b11111);
        if wide && i + 4 <= code.len() {
            let hw2 = u16::from_le_bytes([code[i + 2], code[i + 3]]);
            if hw1 & 0xEC00 == 0xEC00 && (hw2 >> 8) & 0xE == 0xA {
                sites.push(base + i as u32);
            }
            i += 4;
        } else {
            i += 2;
        }
    }
    sites
}

/// Settings of one power-on.
#[derive(Clone, Debug)]
pub struct BootConfig {
    /// POWER.RESETREAS at start (retained from the previous reset).
    pub resetreas: u32,
    /// POWER.GPREGRET at start (retained across soft resets).
    pub gpregret: u32,
    /// Where the kernel is linked: the first instruction fetched here is the kernel jump.
    pub kernel_slot: Range<u32>,
    /// Stop at the kernel jump (otherwise the kernel code keeps running until it halts).
    pub stop_at_kernel: bool,
    /// Give up after this many instructions.
    pub max_instructions: u64,
    /// Cycles per instruction for the simulated clock.
    pub cpi: f64,
    /// Addresses whose executions are counted and timed (for example function entries).
    pub watch: Vec<u32>,
    /// Count instructions per function symbol ([`RunReport::profile`]).
    pub profile: bool,
    /// The watchdog runs from power-on with (CRV, RREN), as after a soft reset.
    pub watchdog: Option<(u32, u32)>,
    /// UICR contents at power-on (non-volatile: carry [`RunReport::uicr`] to the next run).
    pub uicr: ficr::Uicr,
    /// Spending the instruction budget ends the run normally ([`Exit::Budget`]), not as
    /// [`EmuError::InstructionBudget`].
    pub budget_ends_run: bool,
    /// End the run ([`Exit::Console`]) once this power-on's console output contains all of
    /// these (none: never).
    pub stop_on_console: Vec<String>,
    /// Called once when the CPU first fetches from the kernel slot (for example to arm a power
    /// cut counted from the kernel's first flash operation).
    pub at_kernel_jump: Option<JumpHook>,
    /// Called at every SVC with its immediate and R0–R3 as the caller left them (for a Tock
    /// process: the syscall class, then the driver and command numbers and arguments).
    pub at_svc: Option<SvcHook>,
}

/// A callback run at every SVC ([`BootConfig::at_svc`]): (immediate, R0–R3).
#[derive(Clone)]
pub struct SvcHook(pub std::sync::Arc<dyn Fn(u8, [u32; 4]) + Send + Sync>);

impl fmt::Debug for SvcHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SvcHook")
    }
}

/// A callback run at the kernel jump ([`BootConfig::at_kernel_jump`]).
#[derive(Clone)]
pub struct JumpHook(pub std::sync::Arc<dyn Fn() + Send + Sync>);

impl fmt::Debug for JumpHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JumpHook")
    }
}

impl Default for BootConfig {
    fn default() -> Self {
        BootConfig {
            resetreas: 0x1, // RESETPIN
            gpregret: 0,
            kernel_slot: 0x8000..0x4_0000,
            stop_at_kernel: true,
            max_instructions: 2_000_000_000,
            cpi: CPI_ASSUMED,
            watch: Vec::new(),
            profile: false,
            watchdog: None,
            uicr: ficr::Uicr::erased(),
            budget_ends_run: false,
            stop_on_console: Vec::new(),
            at_kernel_jump: None,
            at_svc: None,
        }
    }
}

/// How a run ended normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The CPU fetched its first instruction in the kernel slot.
    KernelJump { pc: u32, sp: u32 },
    /// A branch to itself (the end of a test program, or a parked CPU).
    Halted { pc: u32 },
    /// A flash operation found the power cut.
    PowerLost,
    /// The firmware requested a system reset.
    SystemReset,
    /// The watchdog expired.
    WatchdogReset,
    /// The instruction budget was spent with [`BootConfig::budget_ends_run`] set.
    Budget { pc: u32 },
    /// The console holds every one of [`BootConfig::stop_on_console`].
    Console,
}

/// What one run measured.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub exit: Exit,
    /// Instructions executed in the whole run.
    pub instructions: u64,
    /// Instructions executed before the kernel jump.
    pub instructions_to_jump: Option<u64>,
    /// Deepest stack use below the initial stack pointer, from stack painting (bootloader only).
    pub peak_stack_bytes: u32,
    /// Simulated time of the run (CPU time at the CPI plus flash stalls), µs.
    pub simulated_us: u64,
    /// CPU time alone (instructions × CPI / 64 MHz), µs.
    pub cpu_us: f64,
    pub counters: HwCounters,
    /// The ACL as configured when the run ended.
    pub acl: [AclRegion; 8],
    pub icache_enabled: bool,
    pub fpu_enabled: bool,
    pub gpregret: u32,
    pub vtor: u32,
    /// UICR contents when the run ended.
    pub uicr: ficr::Uicr,
    /// Bytes the firmware sent through UARTE0 (the console).
    pub console: Vec<u8>,
    /// RADIO packets received whole, cut at MAXLEN, and missed (not listening on their
    /// channel at their start); packets the RADIO sent.
    pub radio_received: u64,
    pub radio_cut: u64,
    pub radio_missed: u64,
    pub radio_sent: u64,
    /// For each watched address: (instruction count, simulated µs) at every execution.
    pub watch_hits: BTreeMap<u32, Vec<(u64, u64)>>,
    /// With [`BootConfig::profile`]: instructions executed per function (symbol name of the
    /// firmware's ELF: add the kernel's symbols to see inside it), for the whole run.
    pub profile: BTreeMap<String, u64>,
    /// Faults the MPU (or an unprivileged access to the PPB) raised, in order, each as the
    /// exception it was taken as.
    pub faults: Vec<FaultRecord>,
    /// With [`BootConfig::profile`]: the call chain when the stack was deepest (innermost first,
    /// recovered heuristically from return addresses on the stack), and the depth below the
    /// initial stack pointer there.
    pub deepest_stack: Option<(String, u32)>,
}

/// A refused access and how the CPU took it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// The exception taken: MemManage (4), BusFault (5), or HardFault (3) when escalated.
    pub exception: u32,
    /// The faulting instruction (the stacked return address).
    pub pc: u32,
    /// The address accessed (the fetch address for an instruction fetch).
    pub addr: u32,
    pub access: mpu::Access,
    /// CFSR after the fault was recorded.
    pub cfsr: u32,
}

impl RunReport {
    /// Whether an ACL region denies writes over all of `range`.
    pub fn acl_protects(&self, range: Range<u32>) -> bool {
        self.acl
            .iter()
            .any(|r| r.denies_write() && r.addr <= range.start && range.end <= r.addr + r.size)
    }
}

/// A failed run: the firmware did something the hardware would fault on, or the models do not
/// know.
#[derive(Clone, Debug, PartialEq)]
pub enum EmuError {
    Elf(String),
    /// A peripheral or flash-window access the hardware would reject or the models do not know.
    Hw {
        err: HwError,
        pc: u32,
    },
    /// An access outside every mapped region (a bus fault on hardware).
    Unmapped {
        addr: u32,
        kind: &'static str,
        pc: u32,
    },
    /// An exception the emulator cannot vector (SVC, BKPT, UDF ...).
    Exception {
        intno: u32,
        pc: u32,
    },
    /// A fault of exception entry or return (a UsageFault, HardFault or lockup on hardware).
    Fault {
        what: String,
        pc: u32,
    },
    /// An undecodable instruction.
    InvalidInstruction {
        pc: u32,
        insn: u32,
    },
    /// An FPU instruction while CPACR leaves CP10/CP11 disabled (a UsageFault on hardware).
    FpuDisabled {
        pc: u32,
    },
    /// The run did not end within the instruction budget.
    InstructionBudget {
        limit: u64,
        pc: u32,
    },
    /// The emulator itself failed.
    Unicorn {
        err: String,
        pc: u32,
    },
}

impl fmt::Display for EmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmuError::Elf(e) => write!(f, "ELF: {e}"),
            EmuError::Hw { err, pc } => write!(f, "{err:?} at pc {pc:#x}"),
            EmuError::Unmapped { addr, kind, pc } => {
                write!(f, "{kind} of unmapped address {addr:#x} at pc {pc:#x}")
            }
            EmuError::Exception { intno, pc } => write!(f, "exception {intno} at pc {pc:#x}"),
            EmuError::Fault { what, pc } => write!(f, "{what} at pc {pc:#x}"),
            EmuError::InvalidInstruction { pc, insn } => {
                write!(f, "invalid instruction {insn:#010x} at pc {pc:#x}")
            }
            EmuError::FpuDisabled { pc } => {
                write!(
                    f,
                    "FPU instruction at pc {pc:#x} with CPACR disabling CP10/CP11"
                )
            }
            EmuError::InstructionBudget { limit, pc } => {
                write!(f, "no exit within {limit} instructions (pc {pc:#x})")
            }
            EmuError::Unicorn { err, pc } => write!(f, "emulator error {err} at pc {pc:#x}"),
        }
    }
}

impl std::error::Error for EmuError {}

struct State<'a, Q: QspiPort, N: NvmcPort> {
    hw: Peripherals<'a, Q, N>,
    clock: SimClock,
    start_us: u64,
    cpi: f64,
    instructions: u64,
    cpu_us_synced: u64,
    last_pc: u32,
    kernel_slot: Range<u32>,
    stop_at_kernel: bool,
    max_instructions: u64,
    budget_ends_run: bool,
    jump: Option<(u32, u32, u64)>,
    peak_stack: u32,
    stack_range: Range<u32>,
    outcome: Option<Result<Exit, EmuError>>,
    watch_hits: BTreeMap<u32, Vec<(u64, u64)>>,
    profile: Option<std::collections::HashMap<u32, u64>>,
    /// (lowest SP seen, pc there), while profiling.
    lowest_sp: (u32, u32),
    /// The stack from that SP up, at that moment.
    deepest_stack_words: Vec<u8>,
    /// Instruction count at which pending interrupts are next checked (0: at once).
    next_irq_poll: u64,
    stop_on_console: Vec<String>,
    at_kernel_jump: Option<JumpHook>,
    at_svc: Option<SvcHook>,
    /// The CPU runs unprivileged (thread mode with CONTROL.nPRIV set).
    unprivileged: bool,
    /// Data accesses need the MPU/PPB check: unprivileged code, or an MPU that can refuse
    /// privileged accesses.
    check_access: bool,
    /// An `MSR CONTROL` executes at this address: privilege is read again after it.
    msr_control_at: Option<u32>,
    /// The 32-byte granule of the last fetch the MPU allowed to unprivileged code.
    fetch_ok: Option<u32>,
    /// An access the instruction that just ran was refused, taken before the next one runs.
    access_fault: Option<AccessFault>,
    faults: faults::FaultStatus,
    fault_log: Vec<FaultRecord>,
    /// A memory hook ran inside an IT block: Unicorn's state restore before the hook left the
    /// IT state of that instruction in the CPU, to be cleared once the block is over.
    it_resync: bool,
    /// An exception was entered from a hook: the next instruction must be its handler's first
    /// (the vector), with the interrupted instruction's address. Anything else means Unicorn
    /// dropped the hook's PC write and the CPU runs on with the handler's SP, LR and IPSR.
    entered: Option<(u32, u32)>,
}

/// A refused access, with what is needed to undo the instruction that made it.
struct AccessFault {
    pc: u32,
    addr: u32,
    access: mpu::Access,
    denied: mpu::Denied,
    /// R0–R12, SP, LR as the memory hook saw them (before the instruction wrote any).
    regs: Option<[u32; 15]>,
    /// The bytes a refused store overwrote in emulator memory.
    undo: Option<(u32, Vec<u8>)>,
}

impl<Q: QspiPort, N: NvmcPort> State<'_, Q, N> {
    fn cpu_us(&self) -> f64 {
        self.instructions as f64 * self.cpi / CPU_HZ * 1e6
    }

    /// Advances the shared clock by the CPU time since the last sync.
    fn sync_clock(&mut self) {
        let cpu = self.cpu_us() as u64;
        if cpu > self.cpu_us_synced {
            self.clock.advance_us(cpu - self.cpu_us_synced);
            self.cpu_us_synced = cpu;
        }
        // The cycles into the current µs, for SysTick (which counts cycles).
        let cycles = (self.instructions as f64 * self.cpi * systick::CYCLES_PER_US as f64 * 1e6
            / CPU_HZ) as u64;
        let into = cycles.saturating_sub(self.cpu_us_synced * systick::CYCLES_PER_US);
        self.hw.cpu_cycle_in_us = (self.clock.now_us(), into);
    }

    fn finish(&mut self, outcome: Result<Exit, EmuError>) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
    }

    fn hw_event(&mut self, event: HwEvent, pc: u32) {
        let outcome = match event {
            HwEvent::Error(err) => Err(EmuError::Hw { err, pc }),
            HwEvent::Stop(HwStop::PowerLost) => Ok(Exit::PowerLost),
            HwEvent::Stop(HwStop::SystemReset) => Ok(Exit::SystemReset),
            HwEvent::Stop(HwStop::WatchdogReset) => Ok(Exit::WatchdogReset),
        };
        self.finish(outcome);
    }
}

type Emu<'u, 'a, Q, N> = Unicorn<'u, State<'a, Q, N>>;

fn pc_of<D>(uc: &Unicorn<'_, D>) -> u32 {
    uc.reg_read(RegisterARM::PC).unwrap_or(0) as u32
}

/// Applies what the peripherals changed in emulator memory: EasyDMA writes into RAM and the
/// flash contents behind flash-window stores and page erases.
fn apply_memory_effects<Q: QspiPort, N: NvmcPort>(uc: &mut Emu<'_, '_, Q, N>) {
    let st = uc.get_data_mut();
    let dma = std::mem::take(&mut st.hw.dma_writes);
    let fixups = std::mem::take(&mut st.hw.fixups);
    for (addr, bytes) in dma {
        let _ = uc.mem_write(u64::from(addr), &bytes);
    }
    for (addr, word) in fixups {
        let _ = uc.mem_write(u64::from(addr), &word.to_le_bytes());
    }
}

fn stack_peak<D>(uc: &Unicorn<'_, D>, range: &Range<u32>) -> u32 {
    let Ok(bytes) = uc.mem_read_as_vec(u64::from(range.start), (range.end - range.start) as usize)
    else {
        return 0;
    };
    let untouched = bytes
        .chunks_exact(4)
        .take_while(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) == STACK_PAINT)
        .count() as u32;
    range.end - range.start - 4 * untouched
}

const GPRS: [RegisterARM; 16] = [
    RegisterARM::R0,
    RegisterARM::R1,
    RegisterARM::R2,
    RegisterARM::R3,
    RegisterARM::R4,
    RegisterARM::R5,
    RegisterARM::R6,
    RegisterARM::R7,
    RegisterARM::R8,
    RegisterARM::R9,
    RegisterARM::R10,
    RegisterARM::R11,
    RegisterARM::R12,
    RegisterARM::SP,
    RegisterARM::LR,
    RegisterARM::PC,
];

/// Executes a 32-bit `LDMIA.W`/`STMIA.W` with exactly one register in the list as the
/// Cortex-M4 does (like `LDR`/`STR` with optional write-back). Returns false for anything else.
fn emulate_single_register_ldm_stm<D>(uc: &mut Unicorn<'_, D>, pc: u32) -> bool {
    let Ok(b) = uc.mem_read_as_vec(u64::from(pc), 4) else {
        return false;
    };
    let hw1 = u16::from_le_bytes([b[0], b[1]]);
    let hw2 = u16::from_le_bytes([b[2], b[3]]);
    let load = match hw1 & 0xFFD0 {
        0xE890 => true,
        0xE880 => false,
        _ => return false,
    };
    if hw2.count_ones() != 1 || hw2 & (1 << 13) != 0 || (!load && hw2 & (1 << 15) != 0) {
        return false;
    }
    let rn = usize::from(hw1 & 0xF);
    let rt = hw2.trailing_zeros() as usize;
    let writeback = hw1 & (1 << 5) != 0;
    let Ok(base) = uc.reg_read(GPRS[rn]) else {
        return false;
    };
    let mut next_pc = u64::from(pc + 4) | 1;
    if load {
        let Ok(v) = uc.mem_read_as_vec(base, 4) else {
            return false;
        };
        let value = u64::from(u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
        if rt == 15 {
            next_pc = value | 1;
        } else if uc.reg_write(GPRS[rt], value).is_err() {
            return false;
        }
    } else {
        let Ok(value) = uc.reg_read(GPRS[rt]) else {
            return false;
        };
        if uc.mem_write(base, &(value as u32).to_le_bytes()).is_err() {
            return false;
        }
    }
    if writeback && !(load && rt == rn) && uc.reg_write(GPRS[rn], base + 4).is_err() {
        return false;
    }
    uc.reg_write(RegisterARM::PC, next_pc).is_ok()
}

/// Halfword-aligned addresses in the kernel slot holding the WFI encoding (0xBF30). A site in
/// data or inside a 32-bit instruction is never executed, so its hook never fires.
fn wfi_sites(flash: &[u8], slot: &Range<u32>) -> Vec<u32> {
    let end = (slot.end as usize).min(flash.len());
    (slot.start as usize..end)
        .step_by(2)
        .filter(|&a| a + 1 < end && flash[a] == 0x30 && flash[a + 1] == 0xBF)
        .map(|a| a as u32)
        .collect()
}

/// QEMU's exception numbers as Unicorn's interrupt hook reports them (target/arm/cpu.h).
const EXCP_SWI: u32 = 2;
const EXCP_EXCEPTION_EXIT: u32 = 8;

/// Instructions between two checks for a pending interrupt (besides the checks after every
/// peripheral write, exception return and WFI): at most about 5 µs of interrupt latency.
const IRQ_POLL_INTERVAL: u64 = 256;

/// Takes `exception` now, stacking `return_address`.
fn take_exception<Q: QspiPort, N: NvmcPort>(
    uc: &mut Emu<'_, '_, Q, N>,
    exception: u32,
    return_address: u32,
) {
    let vtor = uc.get_data().hw.vtor;
    // Unprivileged code stacks with its own (unprivileged) rights: a frame the MPU refuses is a
    // MemManage fault in the stacking (MSTKERR, ARMv7-M ARM B1.5.6) with a derived exception,
    // which is not modelled. The run ends rather than write the frame into memory the process
    // may not touch (a neighbour's kernel-owned memory, as a process stacking below its own
    // memory would).
    let st = uc.get_data();
    if st.unprivileged {
        let sp = uc.reg_read(RegisterARM::SP).unwrap_or(0) as u32;
        let frame = sp.wrapping_sub(32) & !4;
        if let Some(word) = (0..8)
            .map(|i| frame.wrapping_add(4 * i))
            .find(|&a| !st.hw.mpu.allows(a, mpu::Access::Write, false))
        {
            uc.get_data_mut().finish(Err(EmuError::Fault {
                what: format!(
                    "entry of exception {exception}: the MPU refuses the unprivileged stacking \
                     at {word:#x} (frame {frame:#x}; MSTKERR and its derived exception are not \
                     modelled)"
                ),
                pc: return_address,
            }));
            let _ = uc.emu_stop();
            return;
        }
    }
    match exceptions::enter(uc, exception, return_address, vtor) {
        Ok(()) => {
            let vector = pc_of(uc);
            let st = uc.get_data_mut();
            st.entered = Some((vector, return_address));
            st.hw.nvic.acknowledge(exception);
            st.hw.ipsr = exception;
            refresh_privilege(uc);
        }
        Err(exceptions::ExceptionFault(what)) => {
            uc.get_data_mut().finish(Err(EmuError::Fault {
                what: format!("entry of exception {exception}: {what}"),
                pc: return_address,
            }));
            let _ = uc.emu_stop();
        }
    }
}

/// Returns from the current exception with EXC_RETURN `value`.
fn return_from_exception<Q: QspiPort, N: NvmcPort>(uc: &mut Emu<'_, '_, Q, N>, value: u32) {
    let st = uc.get_data_mut();
    let current = st.hw.ipsr;
    let result = if st.hw.nvic.complete(current) {
        let others = st.hw.nvic.others_active(current);
        exceptions::exit(uc, value, others)
    } else {
        Err(exceptions::ExceptionFault(format!(
            "exception {current} is not active"
        )))
    };
    match result {
        Ok(ipsr) => {
            let st = uc.get_data_mut();
            st.hw.ipsr = ipsr;
            st.next_irq_poll = 0;
            refresh_privilege(uc);
        }
        Err(exceptions::ExceptionFault(what)) => {
            uc.get_data_mut().finish(Err(EmuError::Fault {
                what: format!("return with {value:#x}: {what}"),
                pc: value,
            }));
            let _ = uc.emu_stop();
        }
    }
}

/// Reads the privilege level again (after exception entry or return, an `MSR CONTROL`, or an
/// MPU register write) and with it whether data accesses need checking.
fn refresh_privilege<Q: QspiPort, N: NvmcPort>(uc: &mut Emu<'_, '_, Q, N>) {
    let control = uc.reg_read(RegisterARM::CONTROL).unwrap_or(0) as u32;
    let ipsr = exceptions::ipsr(uc);
    let st = uc.get_data_mut();
    st.unprivileged = ipsr == 0 && control & 1 != 0;
    st.check_access = st.unprivileged || st.hw.mpu.restricts_privileged();
    st.fetch_ok = None;
}

/// The registers a refused access restores.
const SNAPSHOT: [RegisterARM; 15] = [
    RegisterARM::R0,
    RegisterARM::R1,
    RegisterARM::R2,
    RegisterARM::R3,
    RegisterARM::R4,
    RegisterARM::R5,
    RegisterARM::R6,
    RegisterARM::R7,
    RegisterARM::R8,
    RegisterARM::R9,
    RegisterARM::R10,
    RegisterARM::R11,
    RegisterARM::R12,
    RegisterARM::SP,
    RegisterARM::LR,
];

/// Notes a data access the MPU (or the PPB rule) refuses, from the memory hook that runs
/// before it. The access itself still happens in Unicorn; the fault taken before the next
/// instruction puts the registers and, for RAM and flash, the overwritten bytes back, and the
/// peripheral and flash models ignore the access.
fn refuse_access<Q: QspiPort, N: NvmcPort>(
    uc: &mut Emu<'_, '_, Q, N>,
    addr: u32,
    size: usize,
    access: mpu::Access,
    denied: mpu::Denied,
) {
    let pc = pc_of(uc);
    let mut regs = [0u32; 15];
    for (v, r) in regs.iter_mut().zip(SNAPSHOT) {
        *v = uc.reg_read(r).unwrap_or(0) as u32;
    }
    let in_memory = addr < periph::FLASH_SIZE
        || (periph::RAM_START..periph::RAM_START + periph::RAM_SIZE).contains(&addr);
    let undo = (access == mpu::Access::Write && in_memory)
        .then(|| uc.mem_read_as_vec(u64::from(addr), size).ok())
        .flatten()
        .map(|b| (addr, b));
    uc.get_data_mut().access_fault = Some(AccessFault {
        pc,
        addr,
        access,
        denied,
        regs: Some(regs),
        undo,
    });
}

/// Takes the fault of a refused access: undoes the access, sets the fault status registers
/// and enters MemManage, BusFault or (escalated) HardFault with the faulting instruction as the
/// return address; a fault nothing can take is a lockup and ends the run.
fn take_access_fault<Q: QspiPort, N: NvmcPort>(uc: &mut Emu<'_, '_, Q, N>) {
    let Some(f) = uc.get_data_mut().access_fault.take() else {
        return;
    };
    if let Some(regs) = f.regs {
        for (r, v) in SNAPSHOT.into_iter().zip(regs) {
            let _ = uc.reg_write(r, u64::from(v));
        }
    }
    if let Some((addr, bytes)) = &f.undo {
        let _ = uc.mem_write(u64::from(*addr), bytes);
    }
    let (primask, basepri) = exceptions::masks(uc);
    let st = uc.get_data_mut();
    let exception = st.faults.record(f.denied, f.access, f.addr);
    match st.faults.escalate(exception, &st.hw.nvic, primask, basepri) {
        faults::Taken::Exception(e) => {
            let cfsr = st.faults.cfsr;
            st.fault_log.push(FaultRecord {
                exception: e,
                pc: f.pc,
                addr: f.addr,
                access: f.access,
                cfsr,
            });
            take_exception(uc, e, f.pc);
        }
        faults::Taken::Lockup => {
            st.finish(Err(EmuError::Fault {
                what: format!(
                    "lockup: {:?} {:?} of {:#x} where no fault handler can run",
                    f.denied, f.access, f.addr
                ),
                pc: f.pc,
            }));
            let _ = uc.emu_stop();
        }
    }
}

/// Halfword-aligned addresses holding `MSR CONTROL, Rn` (0xF38n 0x8814).
fn msr_control_sites(flash: &[u8]) -> Vec<u32> {
    (0..flash.len().saturating_sub(3))
        .step_by(2)
        .filter(|&a| {
            flash[a + 1] == 0xF3 && flash[a] & 0xF0 == 0x80 && flash[a + 2..a + 4] == [0x14, 0x88]
        })
        .map(|a| a as u32)
        .collect()
}

/// Brings the interrupt sources up to date and takes the exception that may preempt, if any,
/// before the instruction at `pc`. Returns whether one was taken.
fn poll_interrupts<Q: QspiPort, N: NvmcPort>(uc: &mut Emu<'_, '_, Q, N>, pc: u32) -> bool {
    let st = uc.get_data_mut();
    st.sync_clock();
    let now = st.clock.now_us();
    st.hw.update_interrupts(now);
    st.next_irq_poll = st.instructions + IRQ_POLL_INTERVAL;
    if !st.hw.dma_writes.is_empty() {
        apply_memory_effects(uc);
    }
    let st = uc.get_data_mut();
    if st.hw.nvic.highest_pending().is_none() {
        return false;
    }
    if in_it_block(uc, pc) {
        // Unicorn runs an IT block as one unit: a PC written from a hook inside it takes effect
        // only after the block (its `helper_uc_tracecode`), so the exception would stack an
        // instruction that then executes anyway. Take it after the block instead.
        uc.get_data_mut().next_irq_poll = 0;
        return false;
    }
    let (primask, basepri) = exceptions::masks(uc);
    match uc.get_data().hw.nvic.to_take(primask, basepri) {
        Some(e) => {
            take_exception(uc, e, pc);
            true
        }
        None => false,
    }
}

/// The IT-state bits of xPSR (as Unicorn's CPSR view places them).
const IT_BITS: u32 = 0x0600_FC00;

/// The farthest an instruction of an IT block lies after its IT instruction: IT (2 bytes)
/// then three 32-bit instructions before the fourth.
const IT_BLOCK_REACH: u32 = 2 + 3 * 4;

/// Whether `pc` lies inside the block of an IT instruction: every halfword in reach before it
/// that encodes an IT (0xBFxy, mask y ≠ 0) has its block walked instruction by instruction
/// (2 or 4 bytes each). The true IT, if any, is among the candidates and walks on true
/// instruction boundaries, so a block is never missed; a halfword that only looks like an IT
/// (the second half of a 32-bit instruction) can at worst delay an interrupt by an instruction.
fn in_it_block<D>(uc: &Unicorn<'_, D>, pc: u32) -> bool {
    let start = pc.saturating_sub(IT_BLOCK_REACH) & !1;
    uc.mem_read_as_vec(u64::from(start), (pc - start) as usize)
        .is_ok_and(|before| ends_inside_it_block(&before))
}

/// Whether the instruction right after `code` (halfword-aligned Thumb code ending where it
/// starts) lies inside the block of an IT instruction in `code`.
fn ends_inside_it_block(code: &[u8]) -> bool {
    let end = code.len() & !1;
    let half = |at: usize| u16::from_le_bytes([code[at], code[at + 1]]);
    (0..end).step_by(2).any(|it| {
        let hw = half(it);
        let mask = hw & 0xF;
        if hw >> 8 != 0xBF || mask == 0 {
            return false;
        }
        let mut at = it + 2;
        for _ in 0..4 - mask.trailing_zeros() {
            if at == end {
                return true;
            }
            if at + 2 > end {
                return false;
            }
            at += if half(at) >> 11 >= 0b11101 { 4 } else { 2 };
        }
        false
    })
}

/// WFI at `pc`: sleeps (advances the simulated clock) until an enabled interrupt is pending,
/// then continues after the WFI; the interrupt is taken there if the masks allow.
fn wait_for_interrupt<Q: QspiPort, N: NvmcPort>(uc: &mut Emu<'_, '_, Q, N>, pc: u32) {
    let st = uc.get_data_mut();
    st.sync_clock();
    loop {
        let now = st.clock.now_us();
        st.hw.update_interrupts(now);
        if st.hw.nvic.highest_pending().is_some() {
            break;
        }
        match st.hw.next_interrupt_us(now) {
            Some(t) => st.clock.advance_us(t - now),
            None => {
                st.finish(Ok(Exit::Halted { pc }));
                let _ = uc.emu_stop();
                return;
            }
        }
    }
    st.next_irq_poll = 0;
    apply_memory_effects(uc);
    let _ = uc.reg_write(RegisterARM::PC, u64::from(pc + 2) | 1);
}

/// A read of the peripheral block at `base` (offset `off`): the fault registers or the models.
fn mmio_read<Q: QspiPort, N: NvmcPort>(
    uc: &mut Emu<'_, '_, Q, N>,
    base: u32,
    off: u64,
    size: usize,
) -> u64 {
    let pc = pc_of(uc);
    let st = uc.get_data_mut();
    if st.outcome.is_some() || st.access_fault.is_some() {
        // The run has ended, or the access is refused: it reaches no model.
        return 0;
    }
    if base == periph::SCS_BASE && faults::owns(off as u32) {
        return match st.faults.read(off as u32, size) {
            Some(v) => u64::from(v),
            None => {
                let addr = base + off as u32;
                st.hw_event(HwError::BadAccessSize { addr, size }.into(), pc);
                let _ = uc.emu_stop();
                0
            }
        };
    }
    st.sync_clock();
    let now = st.clock.now_us();
    match st.hw.read(base + off as u32, size, now) {
        Ok(v) => {
            apply_memory_effects(uc);
            u64::from(v)
        }
        Err(ev) => {
            st.hw_event(ev, pc);
            let _ = uc.emu_stop();
            0
        }
    }
}

/// A write to the peripheral block at `base` (offset `off`): the fault registers or the models,
/// with EasyDMA's source bytes handed over, the watchdog checked and the console watched.
fn mmio_write<Q: QspiPort, N: NvmcPort>(
    uc: &mut Emu<'_, '_, Q, N>,
    base: u32,
    off: u64,
    size: usize,
    value: u64,
) {
    if uc.get_data().outcome.is_some() || uc.get_data().access_fault.is_some() {
        return;
    }
    let pc = pc_of(uc);
    let addr = base + off as u32;
    let value = value as u32;
    if base == periph::SCS_BASE && faults::owns(off as u32) {
        let st = uc.get_data_mut();
        if st.faults.write(off as u32, size, value).is_none() {
            st.hw_event(HwError::BadAccessSize { addr, size }.into(), pc);
            let _ = uc.emu_stop();
        }
        return;
    }
    // A UARTE STARTTX or QSPI WRITESTART reads its buffer by EasyDMA: hand the
    // bytes over.
    let hw = &uc.get_data().hw;
    let dma_src = match addr & !0xFFF {
        periph::UARTE0_BASE => hw.uarte0.dma_source(addr & 0xFFF, value),
        periph::RADIO_BASE => hw.radio.dma_source(addr & 0xFFF, value),
        periph::QSPI_BASE => hw.qspi.dma_source(addr & 0xFFF, value),
        _ => None,
    }
    .and_then(|(src, cnt)| uc.mem_read_as_vec(u64::from(src), cnt as usize).ok());
    let st = uc.get_data_mut();
    st.next_irq_poll = 0;
    st.hw.dma_source_bytes = dma_src;
    st.sync_clock();
    let now = st.clock.now_us();
    let result = st.hw.write(addr, size, value, now);
    let result = result.and_then(|()| {
        st.sync_clock();
        if st.hw.wdt_expired(st.clock.now_us()) {
            Err(HwEvent::Stop(HwStop::WatchdogReset))
        } else {
            Ok(())
        }
    });
    let console_done = addr & !0xFFF == periph::UARTE0_BASE && !st.stop_on_console.is_empty() && {
        let log = String::from_utf8_lossy(&st.hw.uarte0.tx_log);
        st.stop_on_console.iter().all(|p| log.contains(p.as_str()))
    };
    if console_done {
        st.finish(Ok(Exit::Console));
        let _ = uc.emu_stop();
    }
    if base == periph::SCS_BASE && (0xD90..=0xDB8).contains(&off) {
        refresh_privilege(uc);
    }
    let st = uc.get_data_mut();
    match result {
        Ok(()) => apply_memory_effects(uc),
        Err(ev) => {
            st.hw_event(ev, pc);
            apply_memory_effects(uc);
            let _ = uc.emu_stop();
        }
    }
}

/// Before every instruction: pending memory effects, IT-state repair, a refused access's fault,
/// the MPU's fetch check, the instruction budget, `b .` halts, interrupts, the profile, the
/// kernel jump and watched addresses.
fn on_instruction<Q: QspiPort, N: NvmcPort>(uc: &mut Emu<'_, '_, Q, N>, addr: u64) {
    let pc = addr as u32;
    let st = uc.get_data_mut();
    if !st.hw.fixups.is_empty() {
        apply_memory_effects(uc);
    }
    let st = uc.get_data_mut();
    if st.outcome.is_some() {
        // The run has ended but the CPU still runs: a stop requested from a hook inside an IT
        // block is dropped with the block (Unicorn runs it as one unit). Ask again.
        let _ = uc.emu_stop();
        return;
    }
    if let Some((vector, interrupted)) = st.entered.take() {
        if pc & !1 != vector & !1 {
            st.finish(Err(EmuError::Fault {
                what: format!(
                    "emulator: the exception entered before {interrupted:#x} did not reach its \
                     handler at {vector:#x} (an entry inside an IT block?)"
                ),
                pc,
            }));
            let _ = uc.emu_stop();
            return;
        }
    }
    if st.it_resync && !in_it_block(uc, pc) {
        uc.get_data_mut().it_resync = false;
        let cpsr = uc.reg_read(RegisterARM::CPSR).unwrap_or(0) as u32;
        if cpsr & IT_BITS != 0 {
            // Clear the stale IT state and restart here, so this instruction is translated
            // and run unconditionally.
            let xpsr = uc.reg_read(RegisterARM::XPSR).unwrap_or(0);
            let _ = uc.reg_write(RegisterARM::XPSR, xpsr & !u64::from(IT_BITS));
            let _ = uc.reg_write(RegisterARM::PC, u64::from(pc | 1));
            return;
        }
    }
    let st = uc.get_data_mut();
    if st.access_fault.is_some() {
        // The previous instruction made a refused access: take its fault now (after an IT
        // block, which Unicorn runs as one unit).
        if !in_it_block(uc, pc) {
            take_access_fault(uc);
            return;
        }
    } else if let Some(site) = st.msr_control_at {
        if site != pc {
            st.msr_control_at = None;
            refresh_privilege(uc);
        }
    }
    let st = uc.get_data_mut();
    if st.unprivileged && st.fetch_ok != Some(pc >> 5) {
        match st.hw.mpu.check(pc, mpu::Access::Fetch, false) {
            Ok(()) => st.fetch_ok = Some(pc >> 5),
            Err(denied) => {
                st.access_fault = Some(AccessFault {
                    pc,
                    addr: pc,
                    access: mpu::Access::Fetch,
                    denied,
                    regs: None,
                    undo: None,
                });
                take_access_fault(uc);
                return;
            }
        }
    }
    let st = uc.get_data_mut();
    st.instructions += 1;
    if st.instructions > st.max_instructions {
        let limit = st.max_instructions;
        st.finish(if st.budget_ends_run {
            Ok(Exit::Budget { pc })
        } else {
            Err(EmuError::InstructionBudget { limit, pc })
        });
        let _ = uc.emu_stop();
        return;
    }
    // A branch to itself (`b .`). Unicorn may report an instruction twice in a row (around
    // IT blocks, which it runs as one unit), so the encoding is checked too.
    if pc == st.last_pc && uc.mem_read_as_vec(u64::from(pc), 2).as_deref() == Ok(&[0xFE, 0xE7][..])
    {
        let st = uc.get_data_mut();
        st.finish(Ok(Exit::Halted { pc }));
        let _ = uc.emu_stop();
        return;
    }
    let st = uc.get_data_mut();
    st.last_pc = pc;
    if st.instructions >= st.next_irq_poll && poll_interrupts(uc, pc) {
        return;
    }
    let st = uc.get_data_mut();
    if let Some(p) = st.profile.as_mut() {
        *p.entry(pc).or_default() += 1;
    }
    if st.jump.is_none() && st.profile.is_some() {
        let sp = uc.reg_read(RegisterARM::SP).unwrap_or(u64::MAX) as u32;
        if sp < uc.get_data().lowest_sp.0 {
            // Keep the stack contents at the deepest point for a heuristic backtrace.
            let top = uc.get_data().stack_range.end;
            let words = uc
                .mem_read_as_vec(u64::from(sp), top.saturating_sub(sp) as usize)
                .unwrap_or_default();
            let st = uc.get_data_mut();
            st.lowest_sp = (sp, pc);
            st.deepest_stack_words = words;
        }
    }
    let st = uc.get_data_mut();
    if st.jump.is_none() && st.kernel_slot.contains(&pc) {
        let insns = st.instructions - 1;
        let range = st.stack_range.clone();
        let sp = uc.reg_read(RegisterARM::SP).unwrap_or(0) as u32;
        let peak = stack_peak(uc, &range);
        let st = uc.get_data_mut();
        st.jump = Some((pc, sp, insns));
        st.peak_stack = peak;
        if let Some(hook) = &st.at_kernel_jump {
            (hook.0)();
        }
        if st.stop_at_kernel {
            st.finish(Ok(Exit::KernelJump { pc, sp }));
            let _ = uc.emu_stop();
        }
    }
    let st = uc.get_data_mut();
    if let Some(hits) = st.watch_hits.get_mut(&pc) {
        let insns = st.instructions - 1;
        let t = st.clock.now_us() - st.start_us;
        hits.push((insns, t));
    }
}

/// One power-on of the board: runs `fw`'s reset vector (the firmware must already be in the
/// internal flash behind `nvmc`) until an [`Exit`] or an [`EmuError`].
pub fn run<'a, Q: QspiPort, N: NvmcPort>(
    fw: &Firmware,
    qspi: &'a mut Q,
    nvmc: &'a mut N,
    clock: &SimClock,
    cfg: &BootConfig,
) -> Result<RunReport, EmuError> {
    run_with_air(fw, qspi, nvmc, clock, cfg, None)
}

/// [`run`] with `air` around the RADIO (packets to receive, a listener for what it sends).
pub fn run_with_air<'a, Q: QspiPort, N: NvmcPort>(
    fw: &Firmware,
    qspi: &'a mut Q,
    nvmc: &'a mut N,
    clock: &SimClock,
    cfg: &BootConfig,
    air: Option<&'a mut dyn hw_models::radio::Air>,
) -> Result<RunReport, EmuError> {
    let uc_err = |e: unicorn_engine::uc_error| EmuError::Unicorn {
        err: format!("{e:?}"),
        pc: 0,
    };
    let mut flash = vec![0u8; periph::FLASH_SIZE as usize];
    // A power cut or misuse here means the board cannot even start: report it as such.
    nvmc.read(0, &mut flash).map_err(|e| EmuError::Hw {
        err: HwError::Flash(e),
        pc: 0,
    })?;
    let initial_sp = u32::from_le_bytes([flash[0], flash[1], flash[2], flash[3]]);
    let reset = u32::from_le_bytes([flash[4], flash[5], flash[6], flash[7]]);
    let stack_range = fw.ram_image_end.next_multiple_of(4)
        ..initial_sp.clamp(periph::RAM_START, periph::RAM_START + periph::RAM_SIZE);

    let state = State {
        hw: Peripherals::new(qspi, nvmc, cfg.resetreas, cfg.gpregret),
        clock: clock.clone(),
        start_us: clock.now_us(),
        cpi: cfg.cpi,
        instructions: 0,
        cpu_us_synced: 0,
        last_pc: u32::MAX,
        kernel_slot: cfg.kernel_slot.clone(),
        stop_at_kernel: cfg.stop_at_kernel,
        max_instructions: cfg.max_instructions,
        budget_ends_run: cfg.budget_ends_run,
        jump: None,
        peak_stack: 0,
        stack_range: stack_range.clone(),
        outcome: None,
        watch_hits: cfg.watch.iter().map(|&a| (a & !1, Vec::new())).collect(),
        profile: cfg.profile.then(Default::default),
        lowest_sp: (u32::MAX, 0),
        deepest_stack_words: Vec::new(),
        next_irq_poll: 0,
        stop_on_console: cfg.stop_on_console.clone(),
        at_kernel_jump: cfg.at_kernel_jump.clone(),
        at_svc: cfg.at_svc.clone(),
        unprivileged: false,
        check_access: false,
        msr_control_at: None,
        fetch_ok: None,
        access_fault: None,
        faults: faults::FaultStatus::new(),
        fault_log: Vec::new(),
        it_resync: false,
        entered: None,
    };
    let mut state = state;
    state.hw.uicr = cfg.uicr.clone();
    state.hw.air = air;
    if let Some((crv, rren)) = cfg.watchdog {
        state.hw.start_watchdog(crv, rren, state.start_us);
    }
    let mut uc =
        Unicorn::new_with_data(Arch::ARM, Mode::THUMB | Mode::MCLASS, state).map_err(uc_err)?;
    uc.ctl_set_cpu_model(ArmCpuModel::CORTEX_M4 as i32)
        .map_err(uc_err)?;
    uc.mem_map(0, u64::from(periph::FLASH_SIZE), Prot::ALL)
        .map_err(uc_err)?;
    uc.mem_write(0, &flash).map_err(uc_err)?;
    uc.mem_map(
        u64::from(periph::RAM_START),
        u64::from(periph::RAM_SIZE),
        Prot::ALL,
    )
    .map_err(uc_err)?;
    if !stack_range.is_empty() {
        let paint: Vec<u8> = STACK_PAINT
            .to_le_bytes()
            .iter()
            .copied()
            .cycle()
            .take((stack_range.end - stack_range.start) as usize)
            .collect();
        uc.mem_write(u64::from(stack_range.start), &paint)
            .map_err(uc_err)?;
    }

    for base in [
        periph::POWER_CLOCK_BASE,
        periph::WDT_BASE,
        periph::NVMC_ACL_BASE,
        periph::QSPI_BASE,
        periph::GPIO_BASE,
        periph::SCS_BASE,
        periph::RTC1_BASE,
        periph::UARTE0_BASE,
        periph::RADIO_BASE,
        periph::TIMER0_BASE,
        periph::PPI_BASE,
        ficr::FICR_BASE,
        ficr::UICR_BASE,
    ]
    .into_iter()
    .chain(ficr::ERRATA_PAGES.iter().copied())
    {
        uc.mmio_map(
            u64::from(base),
            0x1000,
            Some(
                move |uc: &mut Emu<'_, 'a, Q, N>, off: u64, size: usize| -> u64 {
                    mmio_read(uc, base, off, size)
                },
            ),
            Some(
                move |uc: &mut Emu<'_, 'a, Q, N>, off: u64, size: usize, value: u64| {
                    mmio_write(uc, base, off, size, value)
                },
            ),
        )
        .map_err(uc_err)?;
    }

    // The MPU and the PPB rule, checked on every data access while they can refuse one. This
    // hook comes first, so the flash-window hook and the peripheral models see a refused
    // access as such.
    uc.add_mem_hook(
        HookType::MEM_READ | HookType::MEM_WRITE,
        1,
        0,
        |uc: &mut Emu<'_, 'a, Q, N>, kind: MemType, addr: u64, size: usize, _value: i64| {
            // Before a memory hook Unicorn restores the CPU state of the instruction, IT state
            // included; inside an IT block nothing clears that state again after the block
            // (the translated code tracks it itself), so the next translation block would run
            // as if still inside it. Noted here, repaired after the block.
            if uc.reg_read(RegisterARM::CPSR).unwrap_or(0) as u32 & IT_BITS != 0 {
                uc.get_data_mut().it_resync = true;
            }
            let st = uc.get_data();
            if !st.check_access || st.access_fault.is_some() || st.outcome.is_some() {
                return true;
            }
            let access = if kind == MemType::WRITE {
                mpu::Access::Write
            } else {
                mpu::Access::Read
            };
            if let Err(denied) = st.hw.mpu.check(addr as u32, access, !st.unprivileged) {
                refuse_access(uc, addr as u32, size, access, denied);
            }
            true
        },
    )
    .map_err(uc_err)?;

    // Stores into the flash window go through the NVMC model; the stored value is replaced by
    // what the flash holds before the next instruction runs.
    uc.add_mem_hook(
        HookType::MEM_WRITE,
        0,
        u64::from(periph::FLASH_SIZE - 1),
        |uc: &mut Emu<'_, 'a, Q, N>, _kind: MemType, addr: u64, size: usize, value: i64| {
            let pc = pc_of(uc);
            let st = uc.get_data_mut();
            if st.access_fault.is_some() {
                // Refused by the MPU: the fault puts the window's bytes back.
                return true;
            }
            if st.outcome.is_some() {
                // The run has ended: the store must not reach the flash model. Restore the
                // window from the model before the emulator stops.
                let mut word = [0u8; 4];
                if st.hw.nvmc_port.read(addr as u32 & !3, &mut word).is_ok() {
                    st.hw
                        .fixups
                        .push((addr as u32 & !3, u32::from_le_bytes(word)));
                }
                return true;
            }
            st.sync_clock();
            if let Err(ev) = st.hw.flash_store(addr as u32, size, value as u32) {
                st.hw_event(ev, pc);
                let _ = uc.emu_stop();
            }
            true
        },
    )
    .map_err(uc_err)?;

    uc.add_mem_hook(
        HookType::MEM_READ_UNMAPPED | HookType::MEM_WRITE_UNMAPPED | HookType::MEM_FETCH_UNMAPPED,
        1,
        0,
        |uc: &mut Emu<'_, 'a, Q, N>, kind: MemType, addr: u64, _size: usize, _value: i64| {
            let pc = pc_of(uc);
            let kind = match kind {
                MemType::WRITE_UNMAPPED => "write",
                MemType::FETCH_UNMAPPED => "fetch",
                _ => "read",
            };
            uc.get_data_mut().finish(Err(EmuError::Unmapped {
                addr: addr as u32,
                kind,
                pc,
            }));
            false
        },
    )
    .map_err(uc_err)?;

    uc.add_code_hook(1, 0, |uc: &mut Emu<'_, 'a, Q, N>, addr: u64, _size: u32| {
        on_instruction(uc, addr)
    })
    .map_err(uc_err)?;

    for &site in &fw.fpu_sites {
        uc.add_code_hook(
            u64::from(site),
            u64::from(site),
            |uc: &mut Emu<'_, 'a, Q, N>, addr: u64, _size: u32| {
                if !uc.get_data().hw.fpu_enabled() {
                    uc.get_data_mut()
                        .finish(Err(EmuError::FpuDisabled { pc: addr as u32 }));
                    let _ = uc.emu_stop();
                }
            },
        )
        .map_err(uc_err)?;
    }

    for site in msr_control_sites(&flash) {
        uc.add_code_hook(
            u64::from(site),
            u64::from(site),
            |uc: &mut Emu<'_, 'a, Q, N>, addr: u64, _size: u32| {
                uc.get_data_mut().msr_control_at = Some(addr as u32);
            },
        )
        .map_err(uc_err)?;
    }

    // EXC_RETURN values are fetched here when a handler returns with Unicorn's cached mode
    // flags saying thread mode (see `exceptions`).
    uc.mem_map(0xFFFF_F000, 0x1000, Prot::ALL).map_err(uc_err)?;
    uc.add_code_hook(
        0xFFFF_F000,
        0xFFFF_FFFF,
        |uc: &mut Emu<'_, 'a, Q, N>, addr: u64, _size: u32| {
            return_from_exception(uc, addr as u32 | 1);
        },
    )
    .map_err(uc_err)?;
    for site in wfi_sites(&flash, &cfg.kernel_slot) {
        uc.add_code_hook(
            u64::from(site),
            u64::from(site),
            |uc: &mut Emu<'_, 'a, Q, N>, addr: u64, _size: u32| {
                wait_for_interrupt(uc, addr as u32);
            },
        )
        .map_err(uc_err)?;
    }

    uc.add_intr_hook(|uc: &mut Emu<'_, 'a, Q, N>, intno: u32| {
        let pc = pc_of(uc);
        match intno {
            // SVC: PC is already past the instruction.
            EXCP_SWI => {
                if let Some(hook) = uc.get_data().at_svc.clone() {
                    let imm = uc
                        .mem_read_as_vec(u64::from(pc.wrapping_sub(2)), 1)
                        .map_or(0, |b| b[0]);
                    let r = [
                        RegisterARM::R0,
                        RegisterARM::R1,
                        RegisterARM::R2,
                        RegisterARM::R3,
                    ]
                    .map(|reg| uc.reg_read(reg).unwrap_or(0) as u32);
                    (hook.0)(imm, r);
                }
                take_exception(uc, nvic::SVCALL, pc)
            }
            // A branch to an EXC_RETURN value in handler mode.
            EXCP_EXCEPTION_EXIT => return_from_exception(uc, pc | 1),
            _ => {
                uc.get_data_mut()
                    .finish(Err(EmuError::Exception { intno, pc }));
                let _ = uc.emu_stop();
            }
        }
    })
    .map_err(uc_err)?;

    uc.add_insn_invalid_hook(|uc: &mut Emu<'_, 'a, Q, N>| {
        let pc = pc_of(uc);
        // QEMU ends the CPU loop on YIELD (the hint `core::hint::spin_loop` emits) and reports it
        // here with the PC already past it; on the Cortex-M4 it is a NOP.
        let before = uc.mem_read_as_vec(u64::from(pc.wrapping_sub(2)), 2);
        if matches!(before.as_deref(), Ok([0x10, 0xBF])) {
            return true;
        }
        if emulate_single_register_ldm_stm(uc, pc) {
            uc.get_data_mut().instructions += 1;
            return true;
        }
        let insn = uc
            .mem_read_as_vec(u64::from(pc), 4)
            .map(|b| u32::from_le_bytes([b[2], b[3], b[0], b[1]]))
            .unwrap_or(0);
        uc.get_data_mut()
            .finish(Err(EmuError::InvalidInstruction { pc, insn }));
        false
    })
    .map_err(uc_err)?;

    uc.reg_write(RegisterARM::SP, u64::from(initial_sp))
        .map_err(uc_err)?;
    let result = uc.emu_start(u64::from(reset | 1), 0xFFFF_FFF0, 0, 0);
    apply_memory_effects(&mut uc);
    let pc = pc_of(&uc);
    let st = uc.get_data_mut();
    st.sync_clock();
    let outcome = match (st.outcome.take(), result) {
        (Some(outcome), _) => outcome,
        (None, Err(e)) => Err(EmuError::Unicorn {
            err: format!("{e:?}"),
            pc,
        }),
        (None, Ok(())) => Err(EmuError::Unicorn {
            err: "emulation ended without an exit".into(),
            pc,
        }),
    };
    let exit = outcome?;
    let st = uc.get_data();
    let peak_stack_bytes = if st.jump.is_some() {
        st.peak_stack
    } else {
        stack_peak(&uc, &st.stack_range)
    };
    Ok(RunReport {
        exit,
        instructions: st.instructions,
        instructions_to_jump: st.jump.map(|(_, _, n)| n),
        peak_stack_bytes,
        simulated_us: st.clock.now_us() - st.start_us,
        cpu_us: st.cpu_us(),
        counters: st.hw.counters,
        acl: st.hw.acl,
        icache_enabled: st.hw.icachecnf & 1 != 0,
        fpu_enabled: st.hw.fpu_enabled(),
        gpregret: st.hw.gpregret,
        vtor: st.hw.vtor,
        uicr: st.hw.uicr.clone(),
        console: st.hw.uarte0.tx_log.clone(),
        radio_received: st.hw.radio.received,
        radio_cut: st.hw.radio.cut,
        radio_missed: st.hw.radio.missed,
        radio_sent: st.hw.radio.transmitted.len() as u64,
        faults: st.fault_log.clone(),
        watch_hits: st.watch_hits.clone(),
        profile: st
            .profile
            .as_ref()
            .map(|p| fw.attribute(p))
            .unwrap_or_default(),
        deepest_stack: (st.lowest_sp.0 != u32::MAX).then(|| {
            let (sp, pc) = st.lowest_sp;
            // The running function, then every stacked word that looks like a Thumb return
            // address into the image's code (a heuristic backtrace, innermost first).
            let code_end = fw
                .flash_segments
                .iter()
                .map(|(a, b)| a + b.len() as u32)
                .max()
                .unwrap_or(0);
            let mut chain = vec![fw.function_at(pc)];
            for w in st.deepest_stack_words.chunks_exact(4) {
                let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                if v & 1 == 1 && v > 0x100 && v < code_end {
                    let name = fw.function_at((v & !1) - 2);
                    if chain.last() != Some(&name) {
                        chain.push(name);
                    }
                }
            }
            (chain.join(" <- "), st.stack_range.end.saturating_sub(sp))
        }),
    })
}

/// A stand-in kernel for the kernel slot at `slot`: a vector table (`initial_sp`, reset handler)
/// and a reset handler that does what a compromised kernel would try first, enabling NVMC writes
/// and storing zero into the first bootloader word, then parks (`b .`). With the ACL locked the
/// store is a bus fault ([`HwError::AclViolation`]); without it the run ends
/// [`Exit::Halted`] with the bootloader damaged.
pub fn stub_kernel(slot: u32, initial_sp: u32) -> Vec<u8> {
    let mut image = Vec::new();
    image.extend_from_slice(&initial_sp.to_le_bytes());
    image.extend_from_slice(&(slot + 8 + 1).to_le_bytes());
    for insn in [
        0x4803u16, // ldr r0, [pc, #12]   (NVMC.CONFIG)
        0x2101,    // movs r1, #1        (WEN)
        0x6001,    // str r1, [r0]
        0x2200,    // movs r2, #0
        0x6012,    // str r2, [r2]       (flash word 0)
        0xE7FE,    // b .
        0xBF00,    // nop
        0xBF00,    // nop
    ] {
        image.extend_from_slice(&insn.to_le_bytes());
    }
    image.extend_from_slice(&(periph::NVMC_ACL_BASE + 0x504).to_le_bytes());
    image
}
