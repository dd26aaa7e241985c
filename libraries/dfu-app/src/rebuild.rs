//! Finalize of a received stream (a compressed image or a delta patch, staged in the kernel's
//! received-stream area): the app decodes it into the plain signed image in the staging slot,
//! then asks the kernel to finalize that.
//!
//! The decoders parse what came over the air, so they run here, in the sandboxed app, and not in
//! the kernel: the kernel only moves bytes (`OUTPUT_BEGIN`, `OUTPUT_ERASE`, `OUTPUT_WRITE`,
//! `OUTPUT_READ` on the staging slot, `BASE_READ` of its own slot, `READ` of the stream,
//! `dfu_abi::update::command`); its finalize checks the rebuilt image (layout, SHA-256) as it
//! checks any image before it writes the boot request, and the bootloader checks its signature
//! before it installs anything, as for an image received whole. So nothing the app writes can
//! be booted unless it is a signed image.
//!
//! A compressed image is checked as received first, when the platform gives the update key
//! (`Kernel::update_key`): its outer image (layout, SHA-256, the ECDSA P-256 signature over the
//! compressed image, `ota_image::CheckedImage::verify_compressed_outer`) read back from the
//! stream area, before the staging slot is begun or erased; a stream that fails is refused and
//! nothing is written.
//!
//! The rebuild is `ota_reconstruct::Rebuild` over either decoder (`ota_reconstruct::stream`),
//! one flash operation at a time through the staged-update driver. A refused stream (wrong
//! base, corrupt, truncated, wrong output hash) is [`StageError::Rejected`]; anything else
//! (a flash failure, a power cut) is [`StageError::Failed`] and the next finalize starts over
//! from the stream's first byte: `OUTPUT_BEGIN` begins the staging slot's session again.
use adv_transfer::StageError;
use dfu_abi::{error, update};
use ota_lzma::image::CompressedImage;
use ota_reconstruct::delta::DeltaDecoder;
use ota_reconstruct::stream::{self, AnyStream, Kind};
use ota_reconstruct::{Action, Area, Rebuild, CHUNK};

use crate::{stage_error, Kernel, OpError, MAX_IMAGE_LEN, OP_TIMEOUT_MS};

/// Rebuilds the image from the stream session the kernel holds and finalizes it. Returns the
/// boot request's sequence number.
///
/// Stack: a compressed image's decoder (`CompressedImage`, about 34 KiB) lives in this call's
/// frame while it runs.
pub fn finalize_stream<K: Kernel>(k: &mut K) -> Result<u32, StageError> {
    let (_, stream_len, _) = k.update_status().map_err(|_| StageError::Failed)?;
    let mut magic = [0u8; 4];
    op(k, update::command::READ, 0, 4, &[], &mut magic)?;
    // Base and output are bounded by what the app takes (its receiver's image limit); the
    // kernel bounds them again (BASE_READ beyond its slot, OUTPUT_BEGIN beyond the staging
    // slot).
    let limits = stream::limits(stream_len, MAX_IMAGE_LEN, MAX_IMAGE_LEN);
    let result = match Kind::detect(magic) {
        Kind::Compressed => {
            if let Some(key) = k.update_key() {
                check_outer(k, &key, stream_len)?;
            }
            let mut image = CompressedImage::EMPTY;
            image.restart(MAX_IMAGE_LEN);
            drive(k, Rebuild::new(AnyStream::Compressed(&mut image), limits))
        }
        Kind::Delta => drive(
            k,
            Rebuild::new(
                AnyStream::<&mut CompressedImage>::Delta(DeltaDecoder::new()),
                limits,
            ),
        ),
    };
    match result {
        Err(Stop::Refused(e)) => k.log(format_args!("dfu: received stream refused: {e}")),
        Err(Stop::NoOutput) => k.log(format_args!(
            "dfu: received stream refused: the kernel takes no rebuilt image (a kernel from before the app decoded); send the full image"
        )),
        _ => {}
    }
    result.map_err(|stop| match stop {
        Stop::Refused(_) | Stop::NoOutput => StageError::Rejected,
        Stop::Stage(e) => e,
    })?;
    k.update_op(update::command::FINALIZE, 0, 0, &[], &mut [], OP_TIMEOUT_MS)
        .map_err(|e| stage_error(true, e))
}

/// Checks the compressed image of `stream_len` bytes in the stream area as received: read back
/// through `READ`, its outer image verified against `key`. A refusal is logged and
/// [`StageError::Rejected`].
fn check_outer<K: Kernel>(k: &mut K, key: &[u8; 64], stream_len: u32) -> Result<(), StageError> {
    let mut buf = [0u8; CHUNK];
    let mut checker = ota_image::StreamChecker::new(stream_len);
    while !checker.is_done() {
        let (at, len) = (checker.position(), (checker.wanted() as usize).min(CHUNK));
        op(
            k,
            update::command::READ,
            at,
            len as u32,
            &[],
            &mut buf[..len],
        )?;
        if let Err(e) = checker.feed(&buf[..len]) {
            return Err(refused(k, e));
        }
    }
    let verdict = ota_image::PublicKey::from_raw(key)
        .map_err(|_| ota_image::ImageError::KeyMismatch)
        .and_then(|key| {
            checker.finish()?.verify_compressed_outer(
                &key,
                &ota_image::RustCryptoVerifier,
                &ota_image::VerifyPolicy::default(),
            )
        });
    match verdict {
        Ok(_) => Ok(()),
        Err(e) => Err(refused(k, e)),
    }
}

/// A received image that failed its check: logged, and rejected.
fn refused<K: Kernel>(k: &mut K, e: ota_image::CheckError) -> StageError {
    k.log(format_args!("dfu: received image refused: {e}"));
    StageError::Rejected
}

/// Why [`drive`] stopped.
enum Stop {
    /// The stream was refused: sending it again cannot help.
    Refused(ota_reconstruct::Error),
    /// A staging operation failed.
    Stage(StageError),
    /// The kernel does not know the output commands (`NOSUPPORT`): a kernel from before the
    /// app decoded, which rebuilt streams itself. Retrying cannot help; a full image can.
    NoOutput,
}

/// Runs `rebuild` to its end through the staged-update driver.
fn drive<K: Kernel>(
    k: &mut K,
    mut rebuild: Rebuild<AnyStream<&mut CompressedImage>>,
) -> Result<(), Stop> {
    use update::command;
    let mut buf = [0u8; CHUNK];
    let mut action = rebuild.start();
    loop {
        action = match action {
            Action::Read { area, offset, len } => {
                let read = match area {
                    Area::Stream => command::READ,
                    Area::Output => command::OUTPUT_READ,
                    Area::Base => command::BASE_READ,
                };
                match k.update_op(
                    read,
                    offset,
                    len as u32,
                    &[],
                    &mut buf[..len],
                    OP_TIMEOUT_MS,
                ) {
                    Ok(_) => {}
                    // A base beyond the kernel's slot is not the running kernel.
                    Err(OpError::Refused(error::SIZE)) if area == Area::Base => {
                        return Err(Stop::Refused(ota_reconstruct::Error::WrongBase))
                    }
                    Err(e) => return Err(stop(e)),
                }
                rebuild.read_done(&buf[..len])
            }
            Action::Write { offset, data } => {
                let n = data.len();
                buf[..n].copy_from_slice(data);
                if offset == 0 {
                    let len = rebuild.plan().map_or(0, |p| p.output_len);
                    output(k, command::OUTPUT_BEGIN, len, 0, &[])?;
                }
                if offset.is_multiple_of(update::SECTOR_SIZE) {
                    output(k, command::OUTPUT_ERASE, offset, 0, &[])?;
                }
                output(k, command::OUTPUT_WRITE, offset, n as u32, &buf[..n])?;
                rebuild.write_done()
            }
            Action::Done(Err(e)) => return Err(Stop::Refused(e)),
            Action::Done(Ok(_)) => return Ok(()),
        };
    }
}

/// Why a staging command failed, for [`drive`]: `NOSUPPORT` is a kernel without the output
/// commands.
fn stop(e: OpError) -> Stop {
    match e {
        OpError::Refused(error::NOSUPPORT) => Stop::NoOutput,
        e => Stop::Stage(stage_error(false, e)),
    }
}

/// An output command (`OUTPUT_BEGIN`, `OUTPUT_ERASE`, `OUTPUT_WRITE`) with `data`.
fn output<K: Kernel>(
    k: &mut K,
    command: u32,
    arg1: u32,
    arg2: u32,
    data: &[u8],
) -> Result<(), Stop> {
    k.update_op(command, arg1, arg2, data, &mut [], OP_TIMEOUT_MS)
        .map(|_| ())
        .map_err(stop)
}

/// One staged-update command, its failure as the receiver sees a staging failure.
fn op<K: Kernel>(
    k: &mut K,
    command: u32,
    arg1: u32,
    arg2: u32,
    data: &[u8],
    out: &mut [u8],
) -> Result<(), StageError> {
    k.update_op(command, arg1, arg2, data, out, OP_TIMEOUT_MS)
        .map(|_| ())
        .map_err(|e| stage_error(false, e))
}
