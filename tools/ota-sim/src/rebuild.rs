//! The kernel's reconstruction step on the simulated board: what the staged-update driver does
//! at finalize of a session staged in the received-stream area (a delta patch, or a compressed
//! image, told apart by their first 4 bytes: `ota_reconstruct::stream`, as the capsule does). `ota_reconstruct::Rebuild` reads
//! the stream from the stream area (QSPI), a patch's base from the kernel slot (internal flash)
//! and writes the rebuilt signed image into the staging slot through the update-region policy
//! (begin, erase, write: its bounds and erase rules hold as for an image the app writes); then
//! the staging slot's own finalize checks the image and appends the boot request. The same
//! `Rebuild` a capsule drives split-phase, driven here to the end at once, each flash operation
//! taking its simulated time.
use boot_nrf::NRF52840_DK;
use embedded_storage::nor_flash::ReadNorFlash;
use hw_models::SimBoard;
use ota_lzma::image::CompressedImage;
use ota_reconstruct::delta::DeltaDecoder;
use ota_reconstruct::stream::{self, AnyStream, Kind};
use ota_reconstruct::{Action, Area, Rebuild, CHUNK};
use update_region::blocking::{BlockingDriver, BlockingError};
use update_region::{CallerId, Completion, Config, Request, UpdateRegion, SECTOR_SIZE, TAG_LEN};

/// Why a rebuild did not end in a boot request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebuildError {
    /// The stream was refused (wrong base, corrupt, truncated, ...): sending it again cannot help.
    Refused(ota_reconstruct::Error),
    /// The staging slot's policy refused (e.g. the rebuilt image failed finalize's check).
    Staging(update_region::Error),
    /// A flash operation failed (a power cut): the next finalize starts the rebuild again.
    Flash,
}

fn staging_err<E>(e: BlockingError<E>) -> RebuildError {
    match e {
        BlockingError::Policy(e) => RebuildError::Staging(e),
        BlockingError::Flash(_) => RebuildError::Flash,
    }
}

/// Rebuilds the image from the `stream_len` bytes staged at `stream.staging_base` into the
/// staging slot (`staging`'s policy, a session tagged `tag`), then finalizes it there.
pub fn rebuild_and_finalize(
    board: &mut SimBoard,
    staging: &mut UpdateRegion,
    staging_config: Config,
    owner: CallerId,
    stream: Config,
    stream_len: u32,
    tag: [u8; TAG_LEN],
) -> Result<Completion, RebuildError> {
    let slot = NRF52840_DK.kernel_slot;
    let limits = stream::limits(stream_len, slot.len, staging_config.max_image_len());
    let mut magic = [0u8; 4];
    board
        .qspi
        .read(stream.staging_base, &mut magic)
        .map_err(|_| RebuildError::Flash)?;
    let mut image: Box<CompressedImage>;
    let kind = match Kind::detect(magic) {
        Kind::Compressed => {
            image = Box::new(CompressedImage::new(slot.len));
            AnyStream::Compressed(&mut *image)
        }
        Kind::Delta => AnyStream::Delta(DeltaDecoder::new()),
    };
    let mut rebuild = Rebuild::new(kind, limits);
    let mut buf = [0u8; CHUNK];
    let mut page = [0u8; CHUNK];
    let mut action = rebuild.start();
    loop {
        action = match action {
            Action::Read { area, offset, len } => {
                let read = match area {
                    Area::Stream => board
                        .qspi
                        .read(stream.staging_base + offset, &mut buf[..len])
                        .is_ok(),
                    Area::Output => board
                        .qspi
                        .read(staging_config.staging_base + offset, &mut buf[..len])
                        .is_ok(),
                    Area::Base => board
                        .internal
                        .read(slot.start + offset, &mut buf[..len])
                        .is_ok(),
                };
                if !read {
                    return Err(RebuildError::Flash);
                }
                rebuild.read_done(&buf[..len])
            }
            Action::Write { offset, data } => {
                let n = data.len();
                page[..n].copy_from_slice(data);
                let image_len = rebuild.plan().map_or(0, |p| p.output_len);
                let mut driver = BlockingDriver::new(staging, &mut board.qspi);
                if offset == 0 {
                    let begin = Request::Begin { tag, image_len };
                    driver
                        .run(owner, begin, &[], &mut [])
                        .map_err(staging_err)?;
                }
                if offset.is_multiple_of(SECTOR_SIZE) {
                    let erase = Request::Erase { offset };
                    driver
                        .run(owner, erase, &[], &mut [])
                        .map_err(staging_err)?;
                }
                driver
                    .write(owner, offset, &page[..n])
                    .map_err(staging_err)?;
                rebuild.write_done()
            }
            Action::Done(Err(e)) => return Err(RebuildError::Refused(e)),
            Action::Done(Ok(_)) => break,
        };
    }
    BlockingDriver::new(staging, &mut board.qspi)
        .run(owner, Request::Finalize, &[], &mut [])
        .map_err(staging_err)
}
