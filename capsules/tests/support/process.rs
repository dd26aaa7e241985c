//! A process double for syscall-layer tests against the real `kernel` crate.
//!
//! The kernel's `Grant` finds a process through `Kernel::get_process` (the process slots), asks it
//! for grant memory (`allocate_grant`, `enter_grant`, `leave_grant`) and schedules upcalls with
//! `enqueue_task`. [`FakeProcess`] implements exactly those from host memory and records the
//! tasks; with no upcall subscribed the kernel enqueues `Task::ReturnValue`, so every scheduled
//! upcall is recorded, subscribed or not. Allows are installed the way the kernel's allow syscall
//! would store them: a `(pointer, length)` pair in the grant's kernel-managed area
//! ([`FakeProcess::allow_ro`], [`FakeProcess::allow_rw`]). Everything the tests do not reach is
//! `unimplemented!()`.
//!
//! Creating capabilities and implementing `Process` (which has `unsafe fn`s) needs `unsafe`;
//! that is why this lives in the integration tests and not in the `forbid(unsafe_code)` crate.

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::fmt::Write;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::vec;
use std::vec::Vec;

use kernel::capabilities::{
    ExternalProcessCapability, MemoryAllocationCapability, ProcessManagementCapability,
};
use kernel::grant::{AllowRoSize, AllowRwSize, Grant, UpcallSize};
use kernel::platform::mpu;
use kernel::process::{
    BinaryVersion, Error, FunctionCall, Process, ProcessAddresses, ProcessArray,
    ProcessCustomGrantIdentifier, ProcessSizes, ShortId, State, Task,
};
use kernel::process_checker::AcceptedCredential;
use kernel::processbuffer::{ReadOnlyProcessBuffer, ReadWriteProcessBuffer};
use kernel::storage_permissions::StoragePermissions;
use kernel::syscall::{ContextSwitchReason, Syscall, SyscallReturn};
use kernel::upcall::UpcallId;
use kernel::utilities::capability_ptr::CapabilityPtr;
use kernel::utilities::machine_register::MachineRegister;
use kernel::{ErrorCode, Kernel, ProcessId};
use tock_tbf::types::CommandPermissions;

/// The capabilities a board's `main` would hold.
pub struct Cap;
// SAFETY: test code standing in for a board's start-up code, the only holder of these
// capabilities; it creates grants before any process touches them and installs processes.
unsafe impl MemoryAllocationCapability for Cap {}
// SAFETY: as above: this harness is the process implementation the kernel is told about.
unsafe impl ExternalProcessCapability for Cap {}
// SAFETY: a test stands in for a board's `main`, which holds this capability.
unsafe impl ProcessManagementCapability for Cap {}

/// A kernel with process slots and the capabilities to set it up.
pub struct Harness {
    pub kernel: &'static Kernel,
    slots: &'static ProcessArray<4>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        let slots: &'static ProcessArray<4> = Box::leak(Box::new(ProcessArray::new()));
        let kernel: &'static Kernel = Box::leak(Box::new(Kernel::new(slots.as_slice())));
        Harness { kernel, slots }
    }

    /// A grant for `driver_num` (before any process allocates grants, as on a board).
    pub fn grant<T: Default, U: UpcallSize, R: AllowRoSize, W: AllowRwSize>(
        &self,
        driver_num: usize,
    ) -> Grant<T, U, R, W> {
        self.kernel.create_grant(driver_num, &Cap)
    }

    /// Put a running process with `identifier` and `short_id` into slot `index` (replacing
    /// whatever was there: the old `ProcessId` no longer finds a process).
    pub fn add_process(
        &self,
        index: usize,
        identifier: usize,
        short_id: ShortId,
    ) -> &'static FakeProcess {
        let processid = ProcessId::new_external(self.kernel, identifier, index, &Cap);
        let process: &'static FakeProcess = Box::leak(Box::new(FakeProcess {
            processid,
            short_id,
            running: Cell::new(true),
            name: Cell::new("fake"),
            version: Cell::new(0),
            queue_full: Cell::new(false),
            restarts: Cell::new(0),
            grants: RefCell::new(Vec::new()),
            tasks: RefCell::new(Vec::new()),
        }));
        self.slots[index].set_external(process, &Cap);
        process
    }
}

/// One upcall the kernel queued: `(driver, subscribe number, arguments)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued {
    pub driver_num: usize,
    pub subscribe_num: usize,
    pub args: (usize, usize, usize),
}

/// Issues command `cmd` of `driver_num` as `process`, lets `settle` finish what it started (the
/// flash model's work), and checks the split-phase contract: a success is followed by exactly
/// one upcall `done` whose first argument is `cmd`, a failure by none. Returns that upcall's
/// `(status, value)`.
#[allow(clippy::too_many_arguments)]
pub fn command_once(
    driver: &dyn kernel::syscall::SyscallDriver,
    settle: impl Fn(),
    process: &FakeProcess,
    driver_num: usize,
    done: usize,
    cmd: usize,
    arg1: usize,
    arg2: usize,
) -> Result<(usize, usize), kernel::ErrorCode> {
    let ret = driver.command(cmd, arg1, arg2, process.id());
    settle();
    let upcalls = process.take_upcalls();
    if let Some(error) = ret.get_failure() {
        assert!(
            upcalls.is_empty(),
            "command {cmd} failed ({error:?}) but queued {upcalls:?}"
        );
        return Err(error);
    }
    assert!(ret.is_success(), "command {cmd}: unexpected return");
    match upcalls[..] {
        [Queued {
            driver_num: d,
            subscribe_num: s,
            args: (c, status, value),
        }] if d == driver_num && s == done && c == cmd => Ok((status, value)),
        _ => panic!("command {cmd} succeeded, queued {upcalls:?} instead of one upcall"),
    }
}

struct GrantMemory {
    driver_num: usize,
    /// Word-aligned host memory for the grant.
    words: Box<[usize]>,
    size: usize,
    entered: bool,
}

pub struct FakeProcess {
    processid: ProcessId,
    short_id: ShortId,
    running: Cell<bool>,
    /// Package name and TBF `binary_version` (0: none) of the binary it runs.
    name: Cell<&'static str>,
    version: Cell<u32>,
    /// `enqueue_task` answers `NOMEM` (the process's task queue is full).
    pub queue_full: Cell<bool>,
    /// What `get_restart_count` answers (the kernel's restarts of the process this boot).
    pub restarts: Cell<usize>,
    grants: RefCell<Vec<Option<GrantMemory>>>,
    tasks: RefCell<Vec<Task>>,
}

impl FakeProcess {
    /// Name the binary this process runs and its TBF `binary_version` (0: none).
    pub fn set_binary(&self, name: &'static str, version: u32) {
        self.name.set(name);
        self.version.set(version);
    }

    pub fn id(&self) -> ProcessId {
        self.processid
    }

    /// The process stops running (faulted or exited): its grants can no longer be entered and
    /// no task can be queued for it.
    pub fn kill(&self) {
        self.running.set(false);
    }

    /// Take the upcalls queued so far.
    pub fn take_upcalls(&self) -> Vec<Queued> {
        self.tasks
            .borrow_mut()
            .drain(..)
            .map(|task| match task {
                Task::ReturnValue(r) => Queued {
                    driver_num: r.upcall_id.driver_num,
                    subscribe_num: r.upcall_id.subscribe_num,
                    args: (r.argument0, r.argument1, r.argument2),
                },
                Task::FunctionCall(f) => match f.source {
                    kernel::process::FunctionCallSource::Driver(id) => Queued {
                        driver_num: id.driver_num,
                        subscribe_num: id.subscribe_num,
                        args: (f.argument0, f.argument1, f.argument2),
                    },
                    kernel::process::FunctionCallSource::Kernel => {
                        panic!("unexpected kernel function call")
                    }
                },
                Task::IPC(_) => panic!("unexpected IPC task"),
            })
            .collect()
    }

    /// Install read-only allow `allow_num` of the grant of `driver_num` (which must be
    /// allocated) as the kernel's allow syscall would.
    pub fn allow_ro(&self, driver_num: usize, allow_num: usize, buffer: &'static [u8]) {
        self.set_allow(driver_num, false, allow_num, buffer.as_ptr(), buffer.len());
    }

    /// Install read-write allow `allow_num` of the grant of `driver_num`. The process keeps
    /// reading the buffer through its `Cell`s while the kernel writes it.
    pub fn allow_rw(&self, driver_num: usize, allow_num: usize, buffer: &'static [Cell<u8>]) {
        self.set_allow(
            driver_num,
            true,
            allow_num,
            buffer.as_ptr() as *const u8,
            buffer.len(),
        );
    }

    /// The grant's kernel-managed area: one counts word, the saved upcalls, the read-only
    /// allows, the read-write allows (each allow a pointer and a length).
    fn set_allow(&self, driver_num: usize, rw: bool, allow_num: usize, ptr: *const u8, len: usize) {
        let mut grants = self.grants.borrow_mut();
        let grant = grants
            .iter_mut()
            .flatten()
            .find(|g| g.driver_num == driver_num)
            .expect("allow before the driver's grant was allocated");
        assert!(!grant.entered, "allow while the grant is entered");
        let counts = grant.words[0];
        let (upcalls, ros, rws) = (counts & 0xFF, (counts >> 8) & 0xFF, (counts >> 16) & 0xFF);
        let saved_upcall = size_of::<MachineRegister>() + size_of::<CapabilityPtr>();
        let saved_allow = 2 * size_of::<usize>();
        let kernel_area = size_of::<usize>() + upcalls * saved_upcall + (ros + rws) * saved_allow;
        assert!(
            kernel_area <= grant.size,
            "the grant layout is not what this double assumes"
        );
        let slot = if rw {
            assert!(allow_num < rws);
            ros + allow_num
        } else {
            assert!(allow_num < ros);
            allow_num
        };
        let at =
            (size_of::<usize>() + upcalls * saved_upcall + slot * saved_allow) / size_of::<usize>();
        grant.words[at] = ptr as usize;
        grant.words[at + 1] = len;
    }
}

impl Process for FakeProcess {
    fn processid(&self) -> ProcessId {
        self.processid
    }

    fn short_app_id(&self) -> ShortId {
        self.short_id
    }

    fn binary_version(&self) -> Option<BinaryVersion> {
        core::num::NonZeroU32::new(self.version.get()).map(BinaryVersion::new)
    }

    fn get_credential(&self) -> Option<AcceptedCredential> {
        None
    }

    fn get_restart_count(&self) -> usize {
        self.restarts.get()
    }

    fn get_process_name(&self) -> &'static str {
        self.name.get()
    }

    fn has_tasks(&self) -> bool {
        !self.tasks.borrow().is_empty()
    }

    fn pending_tasks(&self) -> usize {
        self.tasks.borrow().len()
    }

    fn enqueue_task(&self, task: Task) -> Result<(), ErrorCode> {
        if !self.running.get() {
            return Err(ErrorCode::NODEVICE);
        }
        if self.queue_full.get() {
            return Err(ErrorCode::NOMEM);
        }
        self.tasks.borrow_mut().push(task);
        Ok(())
    }

    fn dequeue_task(&self) -> Option<Task> {
        unimplemented!()
    }

    fn remove_upcall(&self, _upcall_id: UpcallId) -> Option<Task> {
        unimplemented!()
    }

    fn remove_pending_upcalls(&self, _upcall_id: UpcallId) -> usize {
        unimplemented!()
    }

    fn get_state(&self) -> State {
        unimplemented!()
    }

    fn ready(&self) -> bool {
        unimplemented!()
    }

    fn is_running(&self) -> bool {
        self.running.get()
    }

    fn set_yielded_state(&self) {
        unimplemented!()
    }

    fn set_yielded_for_state(&self, _upcall_id: UpcallId) {
        unimplemented!()
    }

    fn stop(&self) {
        unimplemented!()
    }

    fn resume(&self) {
        unimplemented!()
    }

    fn set_fault_state(&self) {
        unimplemented!()
    }

    fn start(&self, _cap: &dyn kernel::capabilities::ProcessStartCapability) {
        unimplemented!()
    }

    fn try_restart(&self, _completion_code: Option<u32>) {
        unimplemented!()
    }

    fn terminate(&self, _completion_code: Option<u32>) {
        unimplemented!()
    }

    fn get_completion_code(&self) -> Option<Option<u32>> {
        unimplemented!()
    }

    fn brk(&self, _new_break: *const u8) -> Result<CapabilityPtr, Error> {
        unimplemented!()
    }

    fn sbrk(&self, _increment: isize) -> Result<CapabilityPtr, Error> {
        unimplemented!()
    }

    fn number_writeable_flash_regions(&self) -> usize {
        unimplemented!()
    }

    fn get_writeable_flash_region(&self, _region_index: usize) -> (usize, usize) {
        unimplemented!()
    }

    fn update_stack_start_pointer(&self, _stack_pointer: *const u8) {
        unimplemented!()
    }

    fn update_heap_start_pointer(&self, _heap_pointer: *const u8) {
        unimplemented!()
    }

    fn build_readwrite_process_buffer(
        &self,
        _buf_start_addr: *mut u8,
        _size: usize,
    ) -> Result<ReadWriteProcessBuffer, ErrorCode> {
        unimplemented!()
    }

    fn build_readonly_process_buffer(
        &self,
        _buf_start_addr: *const u8,
        _size: usize,
    ) -> Result<ReadOnlyProcessBuffer, ErrorCode> {
        unimplemented!()
    }

    unsafe fn set_byte(&self, _addr: *mut u8, _value: u8) -> bool {
        unimplemented!()
    }

    fn get_command_permissions(&self, _driver_num: usize, _offset: usize) -> CommandPermissions {
        unimplemented!()
    }

    fn get_storage_permissions(&self) -> StoragePermissions {
        unimplemented!()
    }

    fn setup_mpu(&self) {
        unimplemented!()
    }

    fn add_mpu_region(
        &self,
        _unallocated_memory_start: *const u8,
        _unallocated_memory_size: usize,
        _min_region_size: usize,
    ) -> Option<mpu::Region> {
        unimplemented!()
    }

    fn remove_mpu_region(&self, _region: mpu::Region) -> Result<(), ErrorCode> {
        unimplemented!()
    }

    fn allocate_grant(
        &self,
        grant_num: usize,
        driver_num: usize,
        size: usize,
        align: usize,
    ) -> Result<(), ()> {
        if !self.running.get() || align > align_of::<usize>() {
            return Err(());
        }
        let mut grants = self.grants.borrow_mut();
        if grants.len() <= grant_num {
            grants.resize_with(grant_num + 1, || None);
        }
        if grants[grant_num].is_some() {
            return Err(());
        }
        grants[grant_num] = Some(GrantMemory {
            driver_num,
            words: vec![0usize; size.div_ceil(size_of::<usize>()).max(1)].into_boxed_slice(),
            size,
            entered: false,
        });
        Ok(())
    }

    fn grant_is_allocated(&self, grant_num: usize) -> Option<bool> {
        if !self.running.get() {
            return None;
        }
        Some(matches!(self.grants.borrow().get(grant_num), Some(Some(_))))
    }

    fn allocate_custom_grant(
        &self,
        _size: usize,
        _align: usize,
    ) -> Result<(ProcessCustomGrantIdentifier, NonNull<u8>), ()> {
        unimplemented!()
    }

    fn enter_grant(&self, grant_num: usize) -> Result<NonNull<u8>, Error> {
        if !self.running.get() {
            return Err(Error::InactiveApp);
        }
        let mut grants = self.grants.borrow_mut();
        let grant = grants
            .get_mut(grant_num)
            .and_then(Option::as_mut)
            .ok_or(Error::AddressOutOfBounds)?;
        if grant.entered {
            return Err(Error::AlreadyInUse);
        }
        grant.entered = true;
        Ok(NonNull::new(grant.words.as_mut_ptr().cast::<u8>()).expect("boxed memory"))
    }

    fn enter_custom_grant(
        &self,
        _identifier: ProcessCustomGrantIdentifier,
    ) -> Result<*mut u8, Error> {
        unimplemented!()
    }

    unsafe fn leave_grant(&self, grant_num: usize) {
        if let Some(Some(grant)) = self.grants.borrow_mut().get_mut(grant_num) {
            grant.entered = false;
        }
    }

    fn grant_allocated_count(&self) -> Option<usize> {
        unimplemented!()
    }

    fn lookup_grant_from_driver_num(&self, _driver_num: usize) -> Result<usize, Error> {
        unimplemented!()
    }

    fn is_valid_upcall_function_pointer(&self, _upcall_fn: *const ()) -> bool {
        unimplemented!()
    }

    fn set_syscall_return_value(&self, _return_value: SyscallReturn) {
        unimplemented!()
    }

    fn set_process_function(&self, _callback: FunctionCall) {
        unimplemented!()
    }

    fn switch_to(&self) -> Option<ContextSwitchReason> {
        unimplemented!()
    }

    fn get_addresses(&self) -> ProcessAddresses {
        unimplemented!()
    }

    fn get_sizes(&self) -> ProcessSizes {
        unimplemented!()
    }

    fn get_stored_state(&self, _out: &mut [u8]) -> Result<usize, ErrorCode> {
        unimplemented!()
    }

    fn print_full_process(&self, _writer: &mut dyn Write) {
        unimplemented!()
    }

    fn debug_syscall_count(&self) -> usize {
        unimplemented!()
    }

    fn debug_dropped_upcall_count(&self) -> usize {
        unimplemented!()
    }

    fn debug_timeslice_expiration_count(&self) -> usize {
        unimplemented!()
    }

    fn debug_timeslice_expired(&self) {
        unimplemented!()
    }

    fn debug_syscall_called(&self, _last_syscall: Syscall) {
        unimplemented!()
    }

    fn debug_syscall_last(&self) -> Option<Syscall> {
        unimplemented!()
    }
}
