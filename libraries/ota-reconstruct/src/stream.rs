//! Which decoder a received stream needs, and the limits it is checked against: one place for
//! every driver of [`Rebuild`](crate::Rebuild) (the simulator's kernel, the Tock capsule).
//!
//! A compressed image starts with MCUboot's image magic; anything else is taken for a delta
//! patch, whose decoder refuses a wrong magic ([`Error::BadMagic`]).
use crate::delta::DeltaDecoder;
use crate::{Decoder, Error, Limits, Progress};

/// The two kinds of received stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A delta patch against the running kernel ([`crate::delta`]).
    Delta,
    /// A compressed image (imgtool `--compression`), decoded by `ota-lzma`.
    Compressed,
}

impl Kind {
    /// The kind of the stream whose first four bytes are `magic`.
    pub fn detect(magic: [u8; 4]) -> Kind {
        if u32::from_le_bytes(magic) == ota_image::IMAGE_MAGIC {
            Kind::Compressed
        } else {
            Kind::Delta
        }
    }
}

/// Either decoder, as one [`Decoder`]. `C` is the compressed-image decoder (`ota-lzma`'s
/// `CompressedImage`, usually borrowed from static storage: it is about 34 KiB).
// The delta decoder (a few hundred bytes) is held inline: no allocator on a device, and the
// compressed one is a borrow there.
#[allow(clippy::large_enum_variant)]
pub enum AnyStream<C> {
    Delta(DeltaDecoder),
    Compressed(C),
}

impl<C: Decoder> Decoder for AnyStream<C> {
    fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Progress, Error> {
        match self {
            AnyStream::Delta(d) => d.decode(input, out),
            AnyStream::Compressed(c) => c.decode(input, out),
        }
    }

    fn provide(&mut self, data: &[u8]) -> Result<(), Error> {
        match self {
            AnyStream::Delta(d) => d.provide(data),
            AnyStream::Compressed(c) => c.provide(data),
        }
    }
}

/// The limits of a rebuild on a device: the `stream_len` bytes received, a base of at most the
/// kernel slot (`kernel_slot_len`), an output of at most the staging slot's image limit
/// (`update_region::Config::max_image_len`). A compressed image's decoded payload is bounded by
/// the kernel slot too (`ota_lzma`'s `CompressedImage::new(kernel_slot_len)`).
pub fn limits(stream_len: u32, kernel_slot_len: u32, staging_max_image: u32) -> Limits {
    Limits {
        stream_len,
        base_max: kernel_slot_len,
        output_max: staging_max_image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcuboot_magic_is_compressed_anything_else_a_patch() {
        let magic = ota_image::IMAGE_MAGIC.to_le_bytes();
        assert_eq!(Kind::detect(magic), Kind::Compressed);
        assert_eq!(Kind::detect(crate::delta::MAGIC), Kind::Delta);
        assert_eq!(Kind::detect([0xFF; 4]), Kind::Delta);
    }
}
