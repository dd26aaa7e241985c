//! MCUboot's known bug classes against the whole boot flow (validate, install) on the simulated
//! board with real MCUboot images checked by `ota-image`. Each test names the class it covers.
use boot_core::{Reason, State, PAGE};
use boot_sim::*;
use ota_image::tlv;

/// A board holding `old` in the kernel slot, `staged` in the staging slot, and a boot request
/// for the image `img` (whose hash and length the request names).
fn board(old: &[u8], staged: &[u8], img: &[u8]) -> Board {
    let mut b = Board::new(SMALL, 7);
    b.format = ImageFormat::Mcuboot;
    b.provision(old);
    b.stage(staged);
    b.request(boot_request(1, mcuboot_hash(img), img.len() as u32));
    b
}

fn kernel_slot(b: &Board) -> Vec<u8> {
    let s = b.layout.kernel_slot;
    b.sim.nvmc().raw()[s.start as usize..s.end() as usize].to_vec()
}

/// Appends TLV `kind` with `value` to the unprotected area of a `sign_mcuboot` image: the
/// unprotected area is outside the signed hash, so the signature stays valid.
fn with_unprotected(img: &[u8], kind: u16, value: &[u8]) -> Vec<u8> {
    let t = ota_image::parse_image(&mut &img[..]).unwrap().tlv_offset as usize;
    let mut out = img.to_vec();
    let area = u16::from_le_bytes([out[t + 2], out[t + 3]]) + 4 + value.len() as u16;
    out[t + 2..t + 4].copy_from_slice(&area.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// MCUboot class: unsigned bytes installed with the image. The staged slot holds the signed
/// image, its unprotected TLV area (unsigned) and junk after it, all within the page where the
/// payload ends. The kernel slot must end up with exactly the verified payload: the rest of its
/// last page erased, later pages untouched.
#[test]
fn only_the_verified_payload_is_installed_never_the_bytes_after_it() {
    let old = kernel_bytes(3 * PAGE as usize + 100, 1);
    let payload = kernel_bytes(PAGE as usize + 904, 2); // ends mid-page
    let img = sign_mcuboot(&payload, &SIM_SIGNING_KEY, &SimSign::default());
    let mut staged = img.clone();
    staged.extend(std::iter::repeat_n(0xA5, 2000));
    let mut b = board(&old, &staged, &img);
    let before = kernel_slot(&b);
    assert!(b.boot(false).unwrap().trial);
    let after = kernel_slot(&b);
    let n = payload.len();
    let end = 2 * PAGE as usize;
    assert_eq!(after[..n], payload[..]);
    assert!(
        after[n..end].iter().all(|&x| x == 0xFF),
        "bytes after the payload (TLVs, junk) reached the kernel slot"
    );
    assert_eq!(
        after[end..],
        before[end..],
        "pages past the payload changed"
    );
}

/// MCUboot class: header + image size summed without an overflow check (wave-2 research E; #2025:
/// a corrupt image size made hashing take hours). `hdr_size + img_size` = 2^32 wraps to 0 in
/// 32-bit arithmetic; the bootloader refuses it with its reason and installs nothing.
#[test]
fn an_image_size_that_wraps_past_u32_is_rejected_and_nothing_installed() {
    let old = kernel_bytes(9000, 1);
    let img = sign_mcuboot(
        &kernel_bytes(5000, 2),
        &SIM_SIGNING_KEY,
        &SimSign::default(),
    );
    for size in [u32::MAX - 0x1F, u32::MAX, u32::MAX - 0x1F - 12] {
        let mut forged = img.clone();
        forged[12..16].copy_from_slice(&size.to_le_bytes());
        let mut b = board(&old, &forged, &forged);
        assert!(!b.boot(false).unwrap().trial);
        let st = b.status().unwrap();
        assert_eq!(
            (st.state, st.reason),
            (State::Rejected, Reason::PayloadBeyondSlot),
            "img_size {size:#x}"
        );
        assert!(b.kernel_is(&old));
    }
}

/// MCUboot class: a TLV that must be protected taken from the unprotected area (fixed in MCUboot
/// 1.11; wave-2 research E). Appended after signing, a security counter of 1000 would raise the
/// floor on confirm and lock out every later update; a dependency or decompression TLV could
/// change how the image is treated. Each is refused, nothing installed.
#[test]
fn unprotected_tlvs_that_must_be_protected_are_refused_at_boot() {
    let old = kernel_bytes(9000, 1);
    let good = sign_mcuboot(
        &kernel_bytes(5000, 2),
        &SIM_SIGNING_KEY,
        &SimSign::default(),
    );
    let forged: [(u16, &[u8]); 4] = [
        (tlv::SEC_CNT, &1000u32.to_le_bytes()),
        (tlv::DEPENDENCY, &[0; 12]),
        (tlv::BOOT_RECORD, &[0xA0]),
        (tlv::DECOMP_SIZE, &5000u32.to_le_bytes()),
    ];
    for (kind, value) in forged {
        let img = with_unprotected(&good, kind, value);
        let mut b = board(&old, &img, &img);
        assert!(!b.boot(false).unwrap().trial, "TLV {kind:#x}");
        let st = b.status().unwrap();
        assert_eq!(
            (st.state, st.reason),
            (State::Rejected, Reason::TlvNotProtected),
            "TLV {kind:#x}"
        );
        assert!(b.kernel_is(&old));
    }
    // The helper is sound: an unknown TLV appended the same way still installs.
    let img = with_unprotected(&good, 0x7F00, &[1, 2, 3]);
    let mut b = board(&old, &img, &img);
    assert!(b.boot(false).unwrap().trial);
}
