//! The ECDSA P-256 adapter at its HIL boundary (`hil::public_key_crypto`): a good signature, a
//! bad one, a wrong key, a key that is not a curve point, completions only from the deferred call
//! (never before `verify` or `set_key` returns), `BUSY` while one is outstanding (buffers
//! returned unchanged), a client chaining its next operation from a completion, and the key
//! change taking effect for verifications started after `set_key` returns.
//!
//! On the host the verifier is RustCrypto's `p256` (`p256-verify`; on the device it is
//! `p256-cm4`'s assembly). Tock's deferred-call state belongs to one thread, so every case runs
//! in one test, in turn.

#[path = "support/deferred.rs"]
mod deferred;

use std::boxed::Box;
use std::cell::RefCell;
use std::vec::Vec;

use deferred::{service, TestThread};
use kernel::deferred_call::{DeferredCall, DeferredCallClient};
use kernel::hil::public_key_crypto::keys::{SetKeyBySlice, SetKeyBySliceClient};
use kernel::hil::public_key_crypto::signature::{ClientVerify, SignatureVerify};
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::ErrorCode;
use p256_host::ecdsa::signature::hazmat::PrehashSigner;
use p256_host::ecdsa::{Signature, SigningKey};
use tock_ota_capsules::p256_verifier::{P256Verifier, HASH_LEN, KEY_LEN, SIGNATURE_LEN};

type Hash = [u8; HASH_LEN];
type Sig = [u8; SIGNATURE_LEN];
type Key = [u8; KEY_LEN];

#[derive(Debug, PartialEq)]
enum Event {
    Verified(Result<bool, ErrorCode>, Hash, Sig),
    KeySet(Result<(), ErrorCode>, Key),
}

/// Records every completion; optionally starts a verification from inside `set_key_done`, as
/// upstream's credential checker does after its key is selected.
struct Recorder {
    events: RefCell<Vec<Event>>,
    verifier: OptionalCell<&'static P256Verifier<'static>>,
    chain_verify: TakeCell<'static, Hash>,
    chain_signature: TakeCell<'static, Sig>,
}

impl ClientVerify<HASH_LEN, SIGNATURE_LEN> for Recorder {
    fn verification_done(
        &self,
        result: Result<bool, ErrorCode>,
        hash: &'static mut Hash,
        signature: &'static mut Sig,
    ) {
        self.events
            .borrow_mut()
            .push(Event::Verified(result, *hash, *signature));
    }
}

impl SetKeyBySliceClient<KEY_LEN> for Recorder {
    fn set_key_done(&self, key: &'static mut Key, result: Result<(), ErrorCode>) {
        self.events.borrow_mut().push(Event::KeySet(result, *key));
        if let (Some(hash), Some(signature)) =
            (self.chain_verify.take(), self.chain_signature.take())
        {
            let verifier = self.verifier.get().expect("verifier set before chaining");
            verifier
                .verify(hash, signature)
                .map_err(|(e, _, _)| e)
                .expect("verify from inside set_key_done");
        }
    }
}

impl Recorder {
    fn take(&self) -> Vec<Event> {
        core::mem::take(&mut *self.events.borrow_mut())
    }
}

fn leak<T>(value: T) -> &'static mut T {
    Box::leak(Box::new(value))
}

fn signing_key(byte: u8) -> SigningKey {
    SigningKey::from_slice(&[byte; 32]).expect("a valid scalar")
}

fn raw_key(key: &SigningKey) -> Key {
    let point = key.verifying_key().to_sec1_point(false);
    let mut raw = [0u8; KEY_LEN];
    raw.copy_from_slice(&point.as_bytes()[1..]);
    raw
}

fn sign(key: &SigningKey, hash: &Hash) -> Sig {
    let signature: Signature = key.sign_prehash(hash).expect("signs");
    signature.to_bytes().into()
}

#[test]
fn p256_verifier_at_the_hil_boundary() {
    kernel::deferred_call::initialize_deferred_call_state::<TestThread>();
    let verifier: &'static P256Verifier<'static> = leak(P256Verifier::new());
    verifier.register();
    let rec: &'static Recorder = leak(Recorder {
        events: RefCell::new(Vec::new()),
        verifier: OptionalCell::new(verifier),
        chain_verify: TakeCell::empty(),
        chain_signature: TakeCell::empty(),
    });
    verifier.set_verify_client(rec);
    SetKeyBySlice::set_client(verifier, rec);

    let signer = signing_key(0x5a);
    let other = signing_key(0x33);
    let hash: Hash = [0x42; HASH_LEN];
    let good = sign(&signer, &hash);

    // No key yet: nothing verifies (no panic, no error).
    verifier.verify(leak(hash), leak(good)).unwrap();
    assert!(rec.take().is_empty(), "verify completed inside the call");
    assert_eq!(service(), 1);
    assert_eq!(rec.take(), [Event::Verified(Ok(false), hash, good)]);

    // The key: its buffer comes back from the deferred call, unchanged.
    verifier.set_key(leak(raw_key(&signer))).unwrap();
    assert!(rec.take().is_empty(), "set_key completed inside the call");
    assert!(verifier.busy());
    assert_eq!(service(), 1);
    assert_eq!(rec.take(), [Event::KeySet(Ok(()), raw_key(&signer))]);
    assert!(!verifier.busy());

    // A good signature, then a bad one (one bit of s), then the good one over another hash.
    verifier.verify(leak(hash), leak(good)).unwrap();
    assert!(rec.take().is_empty(), "verify completed inside the call");
    assert_eq!(service(), 1);
    let mut bad = good;
    bad[SIGNATURE_LEN - 1] ^= 1;
    verifier.verify(leak(hash), leak(bad)).unwrap();
    assert_eq!(service(), 1);
    let mut other_hash = hash;
    other_hash[0] ^= 0x80;
    verifier.verify(leak(other_hash), leak(good)).unwrap();
    assert_eq!(service(), 1);
    assert_eq!(
        rec.take(),
        [
            Event::Verified(Ok(true), hash, good),
            Event::Verified(Ok(false), hash, bad),
            Event::Verified(Ok(false), other_hash, good),
        ]
    );

    // One verification at a time: the second is refused with BUSY, its buffers back as given;
    // the first still completes, once.
    verifier.verify(leak(hash), leak(good)).unwrap();
    let (e, h, s) = verifier
        .verify(leak([7; HASH_LEN]), leak([9; SIGNATURE_LEN]))
        .expect_err("second verify while busy");
    assert_eq!(
        (e, *h, *s),
        (ErrorCode::BUSY, [7; HASH_LEN], [9; SIGNATURE_LEN])
    );
    assert_eq!(service(), 1);
    assert_eq!(service(), 0);
    assert_eq!(rec.take(), [Event::Verified(Ok(true), hash, good)]);

    // A wrong key: the signature no longer verifies. The change applies to a verification
    // started after set_key returned, before set_key_done arrived; a second set_key meanwhile
    // is refused with BUSY and its buffer returned.
    verifier.set_key(leak(raw_key(&other))).unwrap();
    let (e, k) = verifier
        .set_key(leak([3; KEY_LEN]))
        .expect_err("second set_key while busy");
    assert_eq!((e, *k), (ErrorCode::BUSY, [3; KEY_LEN]));
    verifier.verify(leak(hash), leak(good)).unwrap();
    assert!(rec.take().is_empty());
    assert_eq!(service(), 1);
    assert_eq!(
        rec.take(),
        [
            Event::KeySet(Ok(()), raw_key(&other)),
            Event::Verified(Ok(false), hash, good),
        ]
    );
    // The other key's own signature verifies.
    let by_other = sign(&other, &hash);
    verifier.verify(leak(hash), leak(by_other)).unwrap();
    assert_eq!(service(), 1);
    assert_eq!(rec.take(), [Event::Verified(Ok(true), hash, by_other)]);

    // A key that is not a curve point accepts nothing, not even its "own" signature bytes.
    let mut off_curve = raw_key(&signer);
    off_curve[KEY_LEN - 1] ^= 1;
    verifier.set_key(leak(off_curve)).unwrap();
    assert_eq!(service(), 1);
    verifier.verify(leak(hash), leak(good)).unwrap();
    assert_eq!(service(), 1);
    assert_eq!(
        rec.take(),
        [
            Event::KeySet(Ok(()), off_curve),
            Event::Verified(Ok(false), hash, good),
        ]
    );

    // The credential checker's pattern: select the key, verify from inside set_key_done. The
    // verification completes in the next deferred call, not inside the key's completion.
    rec.chain_verify.replace(leak(hash));
    rec.chain_signature.replace(leak(good));
    verifier.set_key(leak(raw_key(&signer))).unwrap();
    assert!(DeferredCall::service_next_pending().is_some());
    assert_eq!(rec.take(), [Event::KeySet(Ok(()), raw_key(&signer))]);
    assert!(verifier.busy(), "the chained verification is outstanding");
    assert_eq!(service(), 1);
    assert_eq!(rec.take(), [Event::Verified(Ok(true), hash, good)]);
    assert!(!verifier.busy());
    assert_eq!(service(), 0);
}
