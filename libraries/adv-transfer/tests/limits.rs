//! The transfer protocol at its integer limits: announced lengths, manifest block numbers and
//! chunk indices at and past the edges, and the geometry helpers at `u32::MAX`. MCUboot's
//! counterpart is its serial recovery's unchecked offsets and lengths (wave-2 research E:
//! "serial-recovery index not bounds-checked"): every index a sender names must be checked
//! against the image before it reaches a table or the flash.
use adv_transfer::wire::*;
use adv_transfer::*;

const CO: u16 = DEFAULT_COMPANY_ID;
const SESSION: u32 = 0x5E55_1011;
/// The session's sender's advertiser address.
const ADDR: [u8; 6] = session_address(SESSION);

fn adv(pdu: &[u8]) -> Vec<u8> {
    let mut out = [0u8; ADV_DATA_MAX];
    let n = frame(CO, pdu, &mut out);
    out[..n].to_vec()
}

fn announce_adv(image_len: u32) -> Vec<u8> {
    let info = SessionInfo {
        session: SESSION,
        image_len,
        image_crc: 0x1234_5678,
        capabilities: 0,
    };
    let mut pdu = [0u8; PDU_MAX];
    let n = announce(&info, &mut pdu);
    adv(&pdu[..n])
}

fn manifest_adv(session: u32, first: u16, crcs: &[u32]) -> Vec<u8> {
    let mut pdu = vec![KIND_MANIFEST];
    pdu.extend_from_slice(&session.to_le_bytes());
    pdu.extend_from_slice(&first.to_le_bytes());
    for c in crcs {
        pdu.extend_from_slice(&c.to_le_bytes());
    }
    adv(&pdu)
}

fn chunk_adv(index: u16, len: usize) -> Vec<u8> {
    let mut pdu = index.to_be_bytes().to_vec();
    pdu.extend(std::iter::repeat_n(0x77, len));
    adv(&pdu)
}

/// A receiver that joined a session of `image_len` bytes and began staging it.
fn joined(bitmap: &mut [u8], image_len: u32) -> Receiver<'_> {
    let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, bitmap, None, false);
    assert_eq!(
        rx.on_adv(ADDR, &announce_adv(image_len)),
        RxOutcome::Announce
    );
    assert_eq!(rx.session().map(|s| s.image_len), Some(image_len));
    // Begin, then whatever it asks for first.
    while let Some(op) = rx.poll_op() {
        let begin = matches!(op, StageOp::Begin { .. });
        rx.op_done(Ok(&[]));
        if begin {
            break;
        }
    }
    rx
}

/// Announced lengths of 0, one past the protocol's limit, one past the receiver's own limit and
/// `u32::MAX` are refused in the status and never joined: no table is sized from them, and no
/// chunk is taken afterwards.
#[test]
fn announced_lengths_past_the_limits_are_refused_without_joining() {
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    for (max, len) in [
        (MAX_IMAGE_LEN, 0),
        (MAX_IMAGE_LEN, MAX_IMAGE_LEN + 1),
        (MAX_IMAGE_LEN, u32::MAX),
        (MAX_IMAGE_LEN, u32::MAX - (BLOCK_LEN as u32) + 1),
        (64 * 1024, 64 * 1024 + 1),
        (u32::MAX, MAX_IMAGE_LEN + 1),
    ] {
        let mut rx = Receiver::new(CO, max, &mut bitmap, None, false);
        assert_eq!(rx.on_adv(ADDR, &announce_adv(len)), RxOutcome::Announce);
        assert_eq!(
            rx.state(),
            RxState::TooLarge,
            "joined a session of {len:#x} bytes"
        );
        assert!(rx.poll_op().is_none());
        for index in [0u16, 1, 0x3FFF, CONTROL_FLOOR - 1] {
            assert_eq!(
                rx.on_adv(ADDR, &chunk_adv(index, CHUNK_LEN)),
                RxOutcome::Dropped
            );
        }
        assert!(rx.poll_op().is_none(), "a refused session staged something");
        let mut status = [0u8; ADV_DATA_MAX];
        assert!(rx.status_adv(&mut status) <= ADV_DATA_MAX);
    }
    // The largest image the protocol carries is taken.
    let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, &mut bitmap, None, false);
    rx.on_adv(ADDR, &announce_adv(MAX_IMAGE_LEN));
    assert_eq!(rx.state(), RxState::Receiving);
}

/// A receiver's limit is also capped by the bitmap it was given, however large the limit asked.
#[test]
fn the_receivers_limit_is_capped_by_its_bitmap() {
    let mut bitmap = vec![0u8; Receiver::bitmap_len(8 * BLOCK_LEN as u32)];
    let mut rx = Receiver::new(CO, u32::MAX, &mut bitmap, None, false);
    rx.on_adv(ADDR, &announce_adv(8 * BLOCK_LEN as u32 + 1));
    assert_eq!(rx.state(), RxState::TooLarge);
    let mut rx = Receiver::new(CO, u32::MAX, &mut bitmap, None, false);
    rx.on_adv(ADDR, &announce_adv(8 * BLOCK_LEN as u32));
    assert_eq!(rx.state(), RxState::Receiving);
}

/// A bitmap larger than any image needs (here 22 MB, where bits × block size no longer fits in
/// 32 bits) is fine: the receiver takes the protocol's largest image, no more, and never
/// overflows computing its limit.
#[test]
fn a_bitmap_larger_than_any_image_needs_does_not_overflow_the_limit() {
    let mut bitmap = vec![0u8; 22 * 1024 * 1024];
    let mut rx = Receiver::new(CO, u32::MAX, &mut bitmap, None, false);
    rx.on_adv(ADDR, &announce_adv(MAX_IMAGE_LEN + 1));
    assert_eq!(rx.state(), RxState::TooLarge);
    let mut rx = Receiver::new(CO, u32::MAX, &mut bitmap, None, false);
    rx.on_adv(ADDR, &announce_adv(MAX_IMAGE_LEN));
    assert_eq!(rx.state(), RxState::Receiving);
}

/// Manifest block numbers past the image (one past the last block, the u16 maximum, a run that
/// starts inside and ends outside) are refused whole; a run that ends exactly at the last block
/// is taken.
#[test]
fn manifest_blocks_past_the_image_are_refused() {
    let image_len = 3 * BLOCK_LEN as u32 + 100; // 4 blocks
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = joined(&mut bitmap, image_len);
    for (first, n) in [
        (4u16, 1usize),
        (u16::MAX, 1),
        (u16::MAX, 5),
        (3, 2),
        (0, 5),
        (1, 5),
    ] {
        assert_eq!(
            rx.on_adv(ADDR, &manifest_adv(SESSION, first, &vec![0xAB; n])),
            RxOutcome::OutOfRange,
            "first {first} count {n}"
        );
    }
    assert_eq!(
        rx.on_adv(ADDR, &manifest_adv(SESSION, 0, &[1, 2, 3, 4])),
        RxOutcome::Manifest
    );
    assert_eq!(
        rx.on_adv(ADDR, &manifest_adv(SESSION, 3, &[4])),
        RxOutcome::Manifest
    );
    // Another session's manifest never lands in this one's tables.
    assert_eq!(
        rx.on_adv(ADDR, &manifest_adv(SESSION ^ 1, 0, &[9])),
        RxOutcome::OtherSession
    );
}

/// Chunk indices at and past the image's end (one past the last chunk, the largest data index
/// below the control floor, the first index of the block after the last) are refused; the last
/// chunk must have exactly its short length.
#[test]
fn chunk_indices_past_the_image_are_refused() {
    let image_len = BLOCK_LEN as u32 + 30; // block 1 holds 30 bytes: chunks of 25 and 5
    let total = total_chunks(image_len);
    assert_eq!(total, CHUNKS_PER_BLOCK + 2);
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = joined(&mut bitmap, image_len);
    for index in [
        total,
        total + 1,
        2 * CHUNKS_PER_BLOCK,
        MAX_CHUNKS,
        u32::from(CONTROL_FLOOR) - 1,
    ] {
        assert_eq!(
            rx.on_adv(ADDR, &chunk_adv(index as u16, 5)),
            RxOutcome::OutOfRange,
            "chunk {index}"
        );
    }
    let last = (total - 1) as u16;
    assert_eq!(rx.on_adv(ADDR, &chunk_adv(last, 6)), RxOutcome::Malformed);
    assert_eq!(rx.on_adv(ADDR, &chunk_adv(last, 4)), RxOutcome::Malformed);
    assert_eq!(
        rx.on_adv(ADDR, &chunk_adv(last, CHUNK_LEN)),
        RxOutcome::Malformed
    );
    assert_eq!(rx.on_adv(ADDR, &chunk_adv(last, 5)), RxOutcome::Chunk);
    // What it stages stays inside the image.
    while let Some(op) = rx.poll_op() {
        match op {
            StageOp::Write { offset, data } => {
                assert!(offset as usize + data.len() <= image_len as usize)
            }
            StageOp::Erase { offset } => assert!(offset < image_len),
            StageOp::Read { offset, len } => assert!(offset + len <= image_len),
            _ => {}
        }
        rx.op_done(Ok(&[0xFF; 64]));
    }
}

/// The geometry helpers hold at `u32::MAX`: no overflow, and the chunks of a 4 GiB − 1 image
/// tile it to its last byte.
#[test]
fn chunk_geometry_holds_at_u32_max() {
    let total = total_chunks(u32::MAX);
    assert_eq!(total, (u32::MAX / BLOCK_LEN as u32 + 1) * CHUNKS_PER_BLOCK);
    let (offset, len) = chunk_range(total - 1, u32::MAX);
    assert_eq!(u64::from(offset) + len as u64, u64::from(u32::MAX));
    assert_eq!(chunk_of(offset), total - 1);
    assert_eq!(chunk_of(u32::MAX), total - 1);
    let (o, l) = chunk_range(total - 2, u32::MAX);
    assert_eq!(o as usize + l, offset as usize);
    // One byte past the protocol's limit needs one more chunk than it carries.
    assert_eq!(total_chunks(MAX_IMAGE_LEN), MAX_CHUNKS);
    assert_eq!(total_chunks(MAX_IMAGE_LEN + 1), MAX_CHUNKS + 1);
    assert!(
        MAX_CHUNKS < u32::from(CONTROL_FLOOR),
        "data indices never reach control kinds"
    );
}

/// The sender refuses an image the protocol cannot carry rather than truncating its length.
#[test]
fn the_sender_refuses_images_past_the_protocols_limit() {
    let big = vec![0u8; MAX_IMAGE_LEN as usize + 1];
    assert!(matches!(
        Sender::new(CO, &big, 1, 0),
        Err(SenderError::BadImageLength(n)) if n == big.len()
    ));
    assert!(Sender::new(CO, &big[..MAX_IMAGE_LEN as usize], 1, 0).is_ok());
    assert!(matches!(
        Sender::new(CO, &[], 1, 0),
        Err(SenderError::BadImageLength(0))
    ));
}
