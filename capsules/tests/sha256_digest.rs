//! The `hil::digest` SHA-256 adapter at its HIL boundary: digests against the FIPS 180-4
//! example vectors and the `sha2` crate, completions only from the deferred call and in the
//! order the operations were started, `BUSY` while one is outstanding (buffer returned
//! unchanged), a client chaining its next operation from a completion, `verify` both ways,
//! `clear_data` cancelling, and an empty slice refused.
//!
//! Tock's deferred-call state belongs to one thread, so every case runs in one test, in turn.

#[path = "support/deferred.rs"]
mod deferred;

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::vec::Vec;

use deferred::{service, TestThread};
use kernel::deferred_call::DeferredCallClient;
use kernel::hil::digest::{
    ClientData, ClientHash, ClientVerify, Digest, DigestData, DigestHash, DigestVerify,
};
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::utilities::leasable_buffer::{SubSlice, SubSliceMut};
use kernel::ErrorCode;
use sha2::Digest as _;
use tock_ota_capsules::sha256_digest::{Sha256Digest, DIGEST_LEN};

type Hash = [u8; DIGEST_LEN];

#[derive(Debug, PartialEq)]
enum Event {
    Data(Result<(), ErrorCode>, Vec<u8>),
    MutData(Result<(), ErrorCode>, Vec<u8>),
    Hash(Result<(), ErrorCode>, Hash),
    Verify(Result<bool, ErrorCode>, Hash),
}

/// Records every completion; optionally starts `run` from inside `add_data_done`, as upstream's
/// credential checker does.
struct Recorder {
    events: RefCell<Vec<Event>>,
    engine: OptionalCell<&'static Sha256Digest<'static>>,
    chain_run: TakeCell<'static, Hash>,
    chain_result: Cell<Option<Result<(), ErrorCode>>>,
}

impl ClientData<DIGEST_LEN> for Recorder {
    fn add_data_done(&self, result: Result<(), ErrorCode>, data: SubSlice<'static, u8>) {
        self.events
            .borrow_mut()
            .push(Event::Data(result, data.as_slice().to_vec()));
        if let Some(buf) = self.chain_run.take() {
            let engine = self.engine.get().expect("engine set before chaining");
            self.chain_result
                .set(Some(engine.run(buf).map_err(|(e, _)| e)));
        }
    }

    fn add_mut_data_done(&self, result: Result<(), ErrorCode>, data: SubSliceMut<'static, u8>) {
        self.events
            .borrow_mut()
            .push(Event::MutData(result, data.as_slice().to_vec()));
    }
}

impl ClientHash<DIGEST_LEN> for Recorder {
    fn hash_done(&self, result: Result<(), ErrorCode>, digest: &'static mut Hash) {
        self.events.borrow_mut().push(Event::Hash(result, *digest));
    }
}

impl ClientVerify<DIGEST_LEN> for Recorder {
    fn verification_done(&self, result: Result<bool, ErrorCode>, compare: &'static mut Hash) {
        self.events
            .borrow_mut()
            .push(Event::Verify(result, *compare));
    }
}

impl Recorder {
    fn take(&self) -> Vec<Event> {
        core::mem::take(&mut *self.events.borrow_mut())
    }
}

fn leak(bytes: &[u8]) -> &'static [u8] {
    Box::leak(bytes.to_vec().into_boxed_slice())
}

fn leak_mut(bytes: &[u8]) -> &'static mut [u8] {
    Box::leak(bytes.to_vec().into_boxed_slice())
}

fn buf(value: Hash) -> &'static mut Hash {
    Box::leak(Box::new(value))
}

fn hex(s: &str) -> Hash {
    let mut out = [0; DIGEST_LEN];
    assert_eq!(s.len(), 2 * DIGEST_LEN, "a digest is 64 hex digits");
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex digits");
    }
    out
}

/// FIPS 180-4 examples (NIST's "SHA256.pdf", one and two blocks) and the empty message.
const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const TWO_BLOCK_MSG: &[u8] = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
const TWO_BLOCK: &str = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn sha256_digest_at_the_hil_boundary() {
    kernel::deferred_call::initialize_deferred_call_state::<TestThread>();
    let engine: &'static Sha256Digest<'static> = Box::leak(Box::new(Sha256Digest::new()));
    engine.register();
    let rec: &'static Recorder = Box::leak(Box::new(Recorder {
        events: RefCell::new(Vec::new()),
        engine: OptionalCell::new(engine),
        chain_run: TakeCell::empty(),
        chain_result: Cell::new(None),
    }));
    Digest::set_client(engine, rec);

    // One block: no completion inside the call, then exactly one per operation, in order.
    engine.add_data(SubSlice::new(leak(b"abc"))).unwrap();
    assert!(rec.take().is_empty(), "add_data completed inside the call");
    assert!(engine.busy());
    assert_eq!(service(), 1);
    assert_eq!(rec.take(), [Event::Data(Ok(()), b"abc".to_vec())]);
    assert!(!engine.busy());
    engine.run(buf([0; DIGEST_LEN])).unwrap();
    assert!(rec.take().is_empty(), "run completed inside the call");
    assert_eq!(service(), 1);
    assert_eq!(rec.take(), [Event::Hash(Ok(()), hex(ABC))]);

    // The hash starts over after `run`; two pieces, the second a sliced mutable buffer whose
    // inactive bytes must not be hashed.
    let (head, tail) = TWO_BLOCK_MSG.split_at(21);
    engine.add_data(SubSlice::new(leak(head))).unwrap();
    assert_eq!(service(), 1);
    let mut padded = Vec::from(&b"XXXX"[..]);
    padded.extend_from_slice(tail);
    padded.extend_from_slice(b"YY");
    let mut sliced = SubSliceMut::new(leak_mut(&padded));
    sliced.slice(4..4 + tail.len());
    engine.add_mut_data(sliced).unwrap();
    assert_eq!(service(), 1);
    engine.run(buf([0; DIGEST_LEN])).unwrap();
    assert_eq!(service(), 1);
    assert_eq!(
        rec.take(),
        [
            Event::Data(Ok(()), head.to_vec()),
            Event::MutData(Ok(()), tail.to_vec()),
            Event::Hash(Ok(()), hex(TWO_BLOCK)),
        ]
    );

    // Nothing added: the empty message's digest.
    engine.run(buf([0; DIGEST_LEN])).unwrap();
    assert_eq!(service(), 1);
    assert_eq!(rec.take(), [Event::Hash(Ok(()), hex(EMPTY))]);

    // One operation at a time: the second is refused with BUSY and its buffer comes back as
    // given; the first still completes, once.
    engine.add_data(SubSlice::new(leak(b"ab"))).unwrap();
    let (e, back) = engine
        .add_data(SubSlice::new(leak(b"zz")))
        .expect_err("second add_data while busy");
    assert_eq!((e, back.as_slice()), (ErrorCode::BUSY, &b"zz"[..]));
    let (e, back) = engine
        .add_mut_data(SubSliceMut::new(leak_mut(b"zz")))
        .expect_err("add_mut_data while busy");
    assert_eq!((e, back.as_slice()), (ErrorCode::BUSY, &b"zz"[..]));
    let (e, back) = engine
        .run(buf([7; DIGEST_LEN]))
        .expect_err("run while busy");
    assert_eq!((e, *back), (ErrorCode::BUSY, [7; DIGEST_LEN]));
    let (e, _) = engine
        .verify(buf([7; DIGEST_LEN]))
        .expect_err("verify while busy");
    assert_eq!(e, ErrorCode::BUSY);
    assert_eq!(service(), 1);
    assert_eq!(service(), 0);
    assert_eq!(rec.take(), [Event::Data(Ok(()), b"ab".to_vec())]);

    // A client that starts `run` from inside `add_data_done` (the credential checker's
    // pattern): accepted there, completed by the next deferred call, and the refused "zz"
    // pieces above were never hashed.
    rec.chain_run.replace(buf([0; DIGEST_LEN]));
    engine.add_data(SubSlice::new(leak(b"c"))).unwrap();
    assert_eq!(service(), 2);
    assert_eq!(rec.chain_result.take(), Some(Ok(())));
    assert_eq!(
        rec.take(),
        [
            Event::Data(Ok(()), b"c".to_vec()),
            Event::Hash(Ok(()), hex(ABC)),
        ]
    );

    // Verify, matching and not; the compared buffer comes back unchanged.
    engine.add_data(SubSlice::new(leak(b"abc"))).unwrap();
    assert_eq!(service(), 1);
    engine.verify(buf(hex(ABC))).unwrap();
    assert_eq!(service(), 1);
    engine.add_data(SubSlice::new(leak(b"abd"))).unwrap();
    assert_eq!(service(), 1);
    engine.verify(buf(hex(ABC))).unwrap();
    assert_eq!(service(), 1);
    assert_eq!(
        rec.take(),
        [
            Event::Data(Ok(()), b"abc".to_vec()),
            Event::Verify(Ok(true), hex(ABC)),
            Event::Data(Ok(()), b"abd".to_vec()),
            Event::Verify(Ok(false), hex(ABC)),
        ]
    );

    // clear_data cancels what is outstanding (buffer returned) and forgets what was added.
    engine.add_data(SubSlice::new(leak(b"junk"))).unwrap();
    engine.clear_data();
    assert_eq!(service(), 1);
    engine.add_data(SubSlice::new(leak(b"abc"))).unwrap();
    assert_eq!(service(), 1);
    engine.run(buf([0; DIGEST_LEN])).unwrap();
    engine.clear_data();
    assert_eq!(service(), 1);
    engine.add_data(SubSlice::new(leak(b"abc"))).unwrap();
    assert_eq!(service(), 1);
    engine.run(buf([0; DIGEST_LEN])).unwrap();
    assert_eq!(service(), 1);
    let events = rec.take();
    assert_eq!(
        events[0],
        Event::Data(Err(ErrorCode::CANCEL), b"junk".to_vec())
    );
    assert_eq!(events[1], Event::Data(Ok(()), b"abc".to_vec()));
    assert!(
        matches!(events[2], Event::Hash(Err(ErrorCode::CANCEL), _)),
        "run then clear_data: {:?}",
        events[2]
    );
    assert_eq!(events[3], Event::Data(Ok(()), b"abc".to_vec()));
    assert_eq!(events[4], Event::Hash(Ok(()), hex(ABC)));
    assert_eq!(events.len(), 5);

    // An empty slice is refused with SIZE and changes nothing.
    let (e, _) = engine
        .add_data(SubSlice::new(leak(b"")))
        .expect_err("empty add_data");
    assert_eq!(e, ErrorCode::SIZE);
    assert!(!engine.busy());
    assert_eq!(service(), 0);

    // A larger message in uneven pieces against the `sha2` crate (a process binary is hashed
    // in one piece; the pieces cross block boundaries at every offset mod 64).
    let message: Vec<u8> = (0u32..10_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut at = 0;
    for step in (1..).map(|n| n * 7 % 131 + 1) {
        if at >= message.len() {
            break;
        }
        let end = (at + step).min(message.len());
        engine
            .add_data(SubSlice::new(leak(&message[at..end])))
            .unwrap();
        assert_eq!(service(), 1);
        at = end;
    }
    engine.run(buf([0; DIGEST_LEN])).unwrap();
    assert_eq!(service(), 1);
    let expected: Hash = sha2::Sha256::digest(&message).into();
    let events = rec.take();
    assert_eq!(events.last(), Some(&Event::Hash(Ok(()), expected)));
    assert!(events[..events.len() - 1]
        .iter()
        .all(|e| matches!(e, Event::Data(Ok(()), _))));
}
