//! ECDSA P-256 behind Tock's `hil::public_key_crypto` traits, computed by `p256-verify` (the
//! bootloader's verifier: `p256-cm4`'s Cortex-M4 assembly on the device, RustCrypto's `p256` in
//! host tests).
//!
//! Upstream boards give the app credential checker `ecdsa_sw::p256_verifier`, RustCrypto's
//! `p256` in the kernel: about 9.7 KB of code, and a second P-256 next to the app-update
//! credential check ([`crate::app_update::AppKeys`]). This adapter lets both use one verifier
//! (docs/delta-updates.md, "Kernel size").
//!
//! - [`SignatureVerify`]: the signature is checked inside `verify` against the key set last; the
//!   result is delivered later from a deferred call, never from within the call, as the HIL
//!   requires. One verification is outstanding at a time: a second one is refused with `BUSY`
//!   (its buffers returned) until the first one's completion has been delivered. A key that is
//!   not a point of the curve (or none set yet) verifies nothing: `Ok(false)`.
//! - [`SetKeyBySlice`], what upstream's `SignatureVerifyInMemoryKeys` selects keys with: the key
//!   is copied at once (a verification started after `set_key` returns uses it) and its buffer
//!   comes back in `set_key_done` from the deferred call. One key change is outstanding at a
//!   time (`BUSY`).
//!
//! A client may start its next operation from inside a completion; it completes in a later
//! deferred call. When both are outstanding, the key change's completion comes first. The board must call `DeferredCallClient::register` once, before the first
//! operation.

use core::cell::Cell;

use kernel::deferred_call::{DeferredCall, DeferredCallClient};
use kernel::hil::public_key_crypto::keys::{SetKeyBySlice, SetKeyBySliceClient};
use kernel::hil::public_key_crypto::signature::{ClientVerify, SignatureVerify};
use kernel::utilities::cells::{MapCell, OptionalCell, TakeCell};
use kernel::ErrorCode;

/// Bytes of a public key: `x ‖ y`, big-endian.
pub const KEY_LEN: usize = 64;
/// Bytes of a SHA-256 digest.
pub const HASH_LEN: usize = 32;
/// Bytes of a signature: `r ‖ s`, big-endian.
pub const SIGNATURE_LEN: usize = 64;

/// ECDSA P-256 verify for a SHA-256 digest under a public key.
#[inline(never)]
pub fn verify(key: &[u8; KEY_LEN], hash: &[u8; HASH_LEN], signature: &[u8; SIGNATURE_LEN]) -> bool {
    p256_verify::verify_prehash(key, hash, signature)
}

/// A verification whose completion the deferred call delivers.
struct Verified {
    valid: bool,
    hash: &'static mut [u8; HASH_LEN],
    signature: &'static mut [u8; SIGNATURE_LEN],
}

/// A `hil::public_key_crypto` ECDSA P-256 verifier over [`verify`].
pub struct P256Verifier<'a> {
    key: Cell<[u8; KEY_LEN]>,
    verified: MapCell<Verified>,
    /// The buffer of a `set_key` whose completion is not delivered yet.
    key_set: TakeCell<'static, [u8; KEY_LEN]>,
    client: OptionalCell<&'a dyn ClientVerify<HASH_LEN, SIGNATURE_LEN>>,
    key_client: OptionalCell<&'a dyn SetKeyBySliceClient<KEY_LEN>>,
    deferred_call: DeferredCall,
}

impl P256Verifier<'_> {
    /// A verifier without a key (takes one of the kernel's deferred-call slots).
    pub fn new() -> Self {
        Self {
            key: Cell::new([0; KEY_LEN]),
            verified: MapCell::empty(),
            key_set: TakeCell::empty(),
            client: OptionalCell::empty(),
            key_client: OptionalCell::empty(),
            deferred_call: DeferredCall::new(),
        }
    }

    /// A verification or a key change is outstanding (its completion not yet delivered).
    pub fn busy(&self) -> bool {
        self.verified.is_some() || self.key_set.is_some()
    }
}

impl Default for P256Verifier<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> SignatureVerify<'a, HASH_LEN, SIGNATURE_LEN> for P256Verifier<'a> {
    fn set_verify_client(&self, client: &'a dyn ClientVerify<HASH_LEN, SIGNATURE_LEN>) {
        self.client.set(client);
    }

    fn verify(
        &self,
        hash: &'static mut [u8; HASH_LEN],
        signature: &'static mut [u8; SIGNATURE_LEN],
    ) -> Result<
        (),
        (
            ErrorCode,
            &'static mut [u8; HASH_LEN],
            &'static mut [u8; SIGNATURE_LEN],
        ),
    > {
        if self.verified.is_some() {
            return Err((ErrorCode::BUSY, hash, signature));
        }
        let valid = verify(&self.key.get(), hash, signature);
        self.verified.replace(Verified {
            valid,
            hash,
            signature,
        });
        self.deferred_call.set();
        Ok(())
    }
}

impl<'a> SetKeyBySlice<'a, KEY_LEN> for P256Verifier<'a> {
    fn set_key(
        &self,
        key: &'static mut [u8; KEY_LEN],
    ) -> Result<(), (ErrorCode, &'static mut [u8; KEY_LEN])> {
        if self.key_set.is_some() {
            return Err((ErrorCode::BUSY, key));
        }
        self.key.set(*key);
        self.key_set.replace(key);
        self.deferred_call.set();
        Ok(())
    }

    fn set_client(&self, client: &'a dyn SetKeyBySliceClient<KEY_LEN>) {
        self.key_client.set(client);
    }
}

impl DeferredCallClient for P256Verifier<'_> {
    fn handle_deferred_call(&self) {
        // Both taken first: an operation a client starts from a completion below completes in
        // the next deferred call, not in this one.
        let key = self.key_set.take();
        let verified = self.verified.take();
        if let Some(key) = key {
            self.key_client
                .map(|client| client.set_key_done(key, Ok(())));
        }
        if let Some(Verified {
            valid,
            hash,
            signature,
        }) = verified
        {
            self.client
                .map(|client| client.verification_done(Ok(valid), hash, signature));
        }
    }

    fn register(&'static self) {
        self.deferred_call.register(self);
    }
}
