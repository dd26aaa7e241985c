//! Tock's deferred calls in a host test: the test thread's id for the kernel's deferred-call
//! state, and delivering what is pending.

use kernel::deferred_call::DeferredCall;

/// The test thread's id: the address of a thread-local.
pub struct TestThread;

// SAFETY: each thread gets its own thread-local, so the address is unique and stable for the
// running thread while it lives; a test binary binds the deferred-call state in one test.
unsafe impl kernel::platform::chip::ThreadIdProvider for TestThread {
    fn running_thread_id() -> usize {
        thread_local!(static ID: u8 = const { 0 });
        ID.with(|id| core::ptr::from_ref(id) as usize)
    }
}

/// Delivers pending deferred calls until none is left; returns how many ran.
pub fn service() -> usize {
    for ran in 0..32 {
        if DeferredCall::service_next_pending().is_none() {
            return ran;
        }
    }
    panic!("deferred calls still pending after 32 deliveries");
}
