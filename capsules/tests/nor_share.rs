//! Two kernel users on one NOR device through `NorShare`: one operation at a time, a second
//! user's operation waits and runs next, completions reach the user that asked, a user cannot
//! queue two operations, a waiting operation the device refuses completes with the error, and
//! the device's `ready` reaches every user.

#[path = "support/fake_nor.rs"]
#[allow(dead_code)]
mod fake_nor;

use std::boxed::Box;
use std::cell::RefCell;
use std::vec::Vec;

use fake_nor::{FakeNor, Pending};
use kernel::utilities::cells::OptionalCell;
use kernel::ErrorCode;
use tock_ota_capsules::nor::{AsyncNor, AsyncNorClient};
use tock_ota_capsules::nor_share::{NorShare, NorUser};

#[derive(Debug, PartialEq, Eq)]
enum Done {
    Read(Vec<u8>, Result<(), ErrorCode>),
    Program(Result<(), ErrorCode>),
    Erase(Result<(), ErrorCode>),
    Ready,
}

/// Records completions; optionally starts a read from inside a completion.
struct Client {
    done: RefCell<Vec<Done>>,
    buffers: RefCell<Vec<&'static mut [u8]>>,
    again: OptionalCell<&'static NorUser<'static>>,
}

impl Client {
    fn new() -> &'static Client {
        Box::leak(Box::new(Client {
            done: RefCell::new(Vec::new()),
            buffers: RefCell::new(Vec::new()),
            again: OptionalCell::empty(),
        }))
    }

    fn take(&self) -> Vec<Done> {
        self.done.take()
    }
}

impl AsyncNorClient for Client {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        self.done
            .borrow_mut()
            .push(Done::Read(buffer[..4].to_vec(), result));
        if let Some(user) = self.again.take() {
            assert!(user.read(0x10, buffer, 4).is_ok());
        } else {
            self.buffers.borrow_mut().push(buffer);
        }
    }
    fn program_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        self.done.borrow_mut().push(Done::Program(result));
        self.buffers.borrow_mut().push(buffer);
    }
    fn erase_done(&self, result: Result<(), ErrorCode>) {
        self.done.borrow_mut().push(Done::Erase(result));
    }
    fn ready(&self) {
        self.done.borrow_mut().push(Done::Ready);
    }
}

struct Rig {
    nor: &'static FakeNor,
    a: &'static NorUser<'static>,
    b: &'static NorUser<'static>,
    ca: &'static Client,
    cb: &'static Client,
    share: &'static NorShare<'static>,
}

fn rig() -> Rig {
    let nor = FakeNor::new(0x10000);
    nor.memory.borrow_mut()[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    let share: &'static NorShare<'static> = Box::leak(Box::new(NorShare::new(nor)));
    nor.set_nor_client(share);
    let a: &'static NorUser<'static> = Box::leak(Box::new(NorUser::new(share)));
    let b: &'static NorUser<'static> = Box::leak(Box::new(NorUser::new(share)));
    share.add_user(a).unwrap();
    share.add_user(b).unwrap();
    // Room for MAX_USERS: one more fits, the next does not.
    let third: &'static NorUser<'static> = Box::leak(Box::new(NorUser::new(share)));
    assert_eq!(share.add_user(third), Ok(()));
    let fourth: &'static NorUser<'static> = Box::leak(Box::new(NorUser::new(share)));
    assert_eq!(share.add_user(fourth), Err(ErrorCode::NOMEM));
    let (ca, cb) = (Client::new(), Client::new());
    a.set_nor_client(ca);
    b.set_nor_client(cb);
    Rig {
        nor,
        a,
        b,
        ca,
        cb,
        share,
    }
}

fn buf(len: usize) -> &'static mut [u8] {
    Box::leak(vec_of(len).into_boxed_slice())
}

fn vec_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| 0xA0 | i as u8).collect()
}

#[test]
fn a_second_users_operation_waits_and_completions_reach_their_user() {
    let r = rig();
    assert!(r.a.read(0, buf(4), 4).is_ok());
    assert!(r.b.program(0x1000, buf(4), 4).is_ok());
    assert_eq!(r.nor.pending(), Some(Pending::Read { address: 0, len: 4 }));
    assert!(r.nor.complete());
    assert_eq!(r.ca.take(), [Done::Read(vec![1, 2, 3, 4], Ok(()))]);
    assert!(r.cb.take().is_empty());
    // B's program started when A's read ended.
    assert_eq!(
        r.nor.pending(),
        Some(Pending::Program {
            address: 0x1000,
            len: 4
        })
    );
    assert!(r.nor.complete());
    assert_eq!(r.cb.take(), [Done::Program(Ok(()))]);
    assert_eq!(
        r.nor.memory.borrow()[0x1000..0x1004],
        [0xA0, 0xA1, 0xA2, 0xA3]
    );
    assert!(!r.nor.complete());
}

#[test]
fn a_user_cannot_queue_two_operations_and_gets_its_buffer_back() {
    let r = rig();
    assert!(r.a.read(0, buf(4), 4).is_ok());
    let refused = r.a.read(4, buf(3), 3);
    assert!(matches!(refused, Err((ErrorCode::BUSY, b)) if b.len() == 3));
    assert!(r.b.erase_sector(0x1000).is_ok());
    assert_eq!(r.b.erase_sector(0x2000), Err(ErrorCode::BUSY));
}

#[test]
fn the_waiting_user_goes_first_when_the_other_asks_again_from_its_completion() {
    let r = rig();
    r.ca.again.set(r.a);
    assert!(r.a.read(0, buf(4), 4).is_ok());
    assert!(r.b.erase_sector(0x1000).is_ok());
    assert!(r.nor.complete());
    // A asked again inside its completion, but B's erase was waiting: it runs first.
    assert_eq!(r.nor.pending(), Some(Pending::Erase { address: 0x1000 }));
    assert!(r.nor.complete());
    assert_eq!(r.cb.take(), [Done::Erase(Ok(()))]);
    assert_eq!(
        r.nor.pending(),
        Some(Pending::Read {
            address: 0x10,
            len: 4
        })
    );
}

#[test]
fn a_waiting_operation_the_device_refuses_completes_with_the_error() {
    let r = rig();
    assert!(r.a.read(0, buf(4), 4).is_ok());
    assert!(r.b.program(0x1000, buf(4), 4).is_ok());
    r.nor.refuse_next.set(true);
    assert!(r.nor.complete());
    assert_eq!(r.cb.take(), [Done::Program(Err(ErrorCode::FAIL))]);
    assert_eq!(r.cb.buffers.borrow().len(), 1, "the buffer came back");
    // The device is free again.
    assert!(r.b.erase_sector(0x1000).is_ok());
    assert_eq!(r.nor.pending(), Some(Pending::Erase { address: 0x1000 }));
}

#[test]
fn ready_reaches_every_user() {
    let r = rig();
    r.share.ready();
    assert_eq!(r.ca.take(), [Done::Ready]);
    assert_eq!(r.cb.take(), [Done::Ready]);
}
