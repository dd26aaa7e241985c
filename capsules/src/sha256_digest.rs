//! SHA-256 behind Tock's `hil::digest` traits, computed by `ota_image::Sha256`.
//!
//! The staged-update path already links `ota_image`'s SHA-256 (image and slot hashes); upstream's
//! app credential checker wants a `hil::digest` engine, which upstream boards give it as
//! `capsules_extra::sha256::Sha256Software`, a second SHA-256 in the kernel. This adapter lets the
//! checker use the first one (docs/delta-updates.md, "Kernel size").
//!
//! The hashing is done inside the call (`add_data`, `add_mut_data`, `run`, `verify`); the
//! completion is delivered later from a deferred call, never from within the call, as the HIL
//! requires. One operation is outstanding at a time: a second one is refused with `BUSY` until
//! the first one's completion has been delivered (a client may start the next operation from
//! inside a completion). `clear_data` resets the hash; an operation still outstanding then
//! completes with `CANCEL` (its buffer returned).
//!
//! The board must call `DeferredCallClient::register` once, before the first operation.

use core::cell::Cell;

use kernel::deferred_call::{DeferredCall, DeferredCallClient};
use kernel::hil::digest::{
    Client, ClientData, ClientDataHash, ClientDataVerify, ClientHash, ClientVerify, Digest,
    DigestData, DigestDataHash, DigestDataVerify, DigestHash, DigestVerify,
};
use kernel::utilities::cells::{MapCell, OptionalCell};
use kernel::utilities::leasable_buffer::{SubSlice, SubSliceMut};
use kernel::ErrorCode;
use ota_image::Sha256;

/// Bytes in a SHA-256 digest.
pub const DIGEST_LEN: usize = 32;

/// The operation whose completion the deferred call delivers, with the client's buffer.
enum Pending {
    Data(SubSlice<'static, u8>),
    MutData(SubSliceMut<'static, u8>),
    Hash(&'static mut [u8; DIGEST_LEN]),
    /// Whether the computed digest matched, and the compared buffer.
    Verify(bool, &'static mut [u8; DIGEST_LEN]),
}

/// A `hil::digest` SHA-256 engine over `ota_image::Sha256`.
pub struct Sha256Digest<'a> {
    /// The running hash; always present (a `MapCell` for in-place updates without a copy).
    hash: MapCell<Sha256>,
    pending: MapCell<Pending>,
    /// `clear_data` was called while `pending` was outstanding.
    cancelled: Cell<bool>,
    data_client: OptionalCell<&'a dyn ClientData<DIGEST_LEN>>,
    hash_client: OptionalCell<&'a dyn ClientHash<DIGEST_LEN>>,
    verify_client: OptionalCell<&'a dyn ClientVerify<DIGEST_LEN>>,
    deferred_call: DeferredCall,
}

impl Sha256Digest<'_> {
    /// A new engine (takes one of the kernel's deferred-call slots).
    pub fn new() -> Self {
        Self {
            hash: MapCell::new(Sha256::new()),
            pending: MapCell::empty(),
            cancelled: Cell::new(false),
            data_client: OptionalCell::empty(),
            hash_client: OptionalCell::empty(),
            verify_client: OptionalCell::empty(),
            deferred_call: DeferredCall::new(),
        }
    }

    /// An operation is outstanding (its completion not yet delivered).
    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    fn start(&self, op: Pending) {
        self.cancelled.set(false);
        self.pending.replace(op);
        self.deferred_call.set();
    }

    /// The digest of everything added since the last clear; the hash starts over.
    fn finish(&self) -> Option<[u8; DIGEST_LEN]> {
        self.hash.map(|h| core::mem::take(h).finalize())
    }
}

impl Default for Sha256Digest<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> DigestData<'a, DIGEST_LEN> for Sha256Digest<'a> {
    fn set_data_client(&'a self, client: &'a dyn ClientData<DIGEST_LEN>) {
        self.data_client.set(client);
    }

    fn add_data(
        &self,
        data: SubSlice<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSlice<'static, u8>)> {
        if self.busy() {
            return Err((ErrorCode::BUSY, data));
        }
        if data.len() == 0 {
            return Err((ErrorCode::SIZE, data));
        }
        self.hash.map(|h| h.update(data.as_slice()));
        self.start(Pending::Data(data));
        Ok(())
    }

    fn add_mut_data(
        &self,
        data: SubSliceMut<'static, u8>,
    ) -> Result<(), (ErrorCode, SubSliceMut<'static, u8>)> {
        if self.busy() {
            return Err((ErrorCode::BUSY, data));
        }
        if data.len() == 0 {
            return Err((ErrorCode::SIZE, data));
        }
        self.hash.map(|h| h.update(data.as_slice()));
        self.start(Pending::MutData(data));
        Ok(())
    }

    fn clear_data(&self) {
        self.hash.replace(Sha256::new());
        if self.busy() {
            self.cancelled.set(true);
        }
    }
}

impl<'a> DigestHash<'a, DIGEST_LEN> for Sha256Digest<'a> {
    fn set_hash_client(&'a self, client: &'a dyn ClientHash<DIGEST_LEN>) {
        self.hash_client.set(client);
    }

    fn run(
        &'a self,
        digest: &'static mut [u8; DIGEST_LEN],
    ) -> Result<(), (ErrorCode, &'static mut [u8; DIGEST_LEN])> {
        if self.busy() {
            return Err((ErrorCode::BUSY, digest));
        }
        let Some(value) = self.finish() else {
            return Err((ErrorCode::FAIL, digest));
        };
        *digest = value;
        self.start(Pending::Hash(digest));
        Ok(())
    }
}

impl<'a> DigestVerify<'a, DIGEST_LEN> for Sha256Digest<'a> {
    fn set_verify_client(&'a self, client: &'a dyn ClientVerify<DIGEST_LEN>) {
        self.verify_client.set(client);
    }

    fn verify(
        &'a self,
        compare: &'static mut [u8; DIGEST_LEN],
    ) -> Result<(), (ErrorCode, &'static mut [u8; DIGEST_LEN])> {
        if self.busy() {
            return Err((ErrorCode::BUSY, compare));
        }
        let Some(value) = self.finish() else {
            return Err((ErrorCode::FAIL, compare));
        };
        let matched = value == *compare;
        self.start(Pending::Verify(matched, compare));
        Ok(())
    }
}

impl<'a> Digest<'a, DIGEST_LEN> for Sha256Digest<'a> {
    fn set_client(&'a self, client: &'a dyn Client<DIGEST_LEN>) {
        self.data_client.set(client);
        self.hash_client.set(client);
        self.verify_client.set(client);
    }
}

impl<'a> DigestDataHash<'a, DIGEST_LEN> for Sha256Digest<'a> {
    fn set_client(&'a self, client: &'a dyn ClientDataHash<DIGEST_LEN>) {
        self.data_client.set(client);
        self.hash_client.set(client);
    }
}

impl<'a> DigestDataVerify<'a, DIGEST_LEN> for Sha256Digest<'a> {
    fn set_client(&'a self, client: &'a dyn ClientDataVerify<DIGEST_LEN>) {
        self.data_client.set(client);
        self.verify_client.set(client);
    }
}

impl kernel::hil::digest::Sha256 for Sha256Digest<'_> {
    fn set_mode_sha256(&self) -> Result<(), ErrorCode> {
        Ok(())
    }
}

impl DeferredCallClient for Sha256Digest<'_> {
    fn handle_deferred_call(&self) {
        // Taken first: the client may start its next operation from the completion.
        let Some(op) = self.pending.take() else {
            return;
        };
        let result = if self.cancelled.replace(false) {
            Err(ErrorCode::CANCEL)
        } else {
            Ok(())
        };
        match op {
            Pending::Data(data) => {
                self.data_client.map(|c| c.add_data_done(result, data));
            }
            Pending::MutData(data) => {
                self.data_client.map(|c| c.add_mut_data_done(result, data));
            }
            Pending::Hash(digest) => {
                self.hash_client.map(|c| c.hash_done(result, digest));
            }
            Pending::Verify(matched, compare) => {
                self.verify_client
                    .map(|c| c.verification_done(result.map(|()| matched), compare));
            }
        }
    }

    fn register(&'static self) {
        self.deferred_call.register(self);
    }
}
