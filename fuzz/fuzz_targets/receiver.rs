//! Arbitrary advertisements into the receiver, its staging operations applied to a strict
//! in-memory store. The receiver must never panic, never ask for an operation outside the
//! announced image, and never write into bytes that are not erased.
#![no_main]
use adv_transfer::{Receiver, RxState, StageError, StageOp, DEFAULT_COMPANY_ID};
use libfuzzer_sys::fuzz_target;

const MAX: u32 = 64 * 1024;

struct Store {
    bytes: Vec<u8>,
    erased: Vec<bool>,
}

fuzz_target!(|data: &[u8]| {
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX)];
    // The first byte chooses a resume tag scenario.
    let resume = data.first().map(|&b| b & 1 == 1).unwrap_or(false);
    let tag = resume.then(|| {
        let mut t = [0xFFu8; 16];
        t[..data.len().min(17).saturating_sub(1)].copy_from_slice(&data[1..data.len().min(17)]);
        t
    });
    let mut rx = Receiver::new(DEFAULT_COMPANY_ID, MAX, &mut bitmap, tag, false);
    let mut store = Store {
        bytes: vec![0x00; MAX as usize],
        erased: vec![false; (MAX / 4096) as usize],
    };
    let mut at = 1;
    let mut now = 0u64;
    // Each advertisement: one length byte (0..=40, so oversized ones occur too), then its bytes.
    while at < data.len() {
        let len = (data[at] % 41) as usize;
        at += 1;
        let adv = &data[at..(at + len).min(data.len())];
        at += len;
        now += 25;
        rx.tick(now);
        rx.on_adv(sender_address(&rx, adv), adv);
        let image_len = rx.session().map(|s| s.image_len).unwrap_or(0);
        if rx.state() == RxState::Receiving {
            assert!(
                image_len <= MAX,
                "joined a session beyond the receiver's limit"
            );
        }
        for _ in 0..64 {
            let Some(op) = rx.poll_op() else { break };
            let mut read = Vec::new();
            let r = match op {
                StageOp::Begin { image_len: n, .. } => {
                    assert!(n <= MAX);
                    store.erased.iter_mut().for_each(|e| *e = false);
                    Ok(())
                }
                StageOp::Erase { offset } => {
                    assert!(offset.is_multiple_of(4096) && offset < image_len);
                    store.bytes[offset as usize..offset as usize + 4096].fill(0xFF);
                    store.erased[(offset / 4096) as usize] = true;
                    Ok(())
                }
                StageOp::Write { offset, data } => {
                    let (a, b) = (offset as usize, offset as usize + data.len());
                    assert!(
                        !data.is_empty() && b as u32 <= image_len,
                        "write outside the image"
                    );
                    if !store.erased[a / 4096] || !store.erased[(b - 1) / 4096] {
                        Err(StageError::NotErased)
                    } else if store.bytes[a..b].iter().any(|&x| x != 0xFF) {
                        Err(StageError::NotBlank)
                    } else {
                        store.bytes[a..b].copy_from_slice(data);
                        Ok(())
                    }
                }
                StageOp::Read { offset, len } => {
                    assert!(offset + len <= image_len);
                    read = store.bytes[offset as usize..(offset + len) as usize].to_vec();
                    Ok(())
                }
                StageOp::Finalize => Ok(()),
            };
            match r {
                Ok(()) => rx.op_done(Ok(&read)),
                Err(e) => rx.op_done(Err(e)),
            }
        }
        let mut status = [0u8; 31];
        let n = rx.status_adv(&mut status);
        assert!(n <= 31);
    }
});

/// The address a well-behaved sender of the PDU in `adv` advertises from: the joined session's
/// sender, else the session an announce (framed first in the AdvData) names; so fuzzed PDUs
/// reach the staging logic instead of stopping at the address check.
fn sender_address(rx: &Receiver<'_>, adv: &[u8]) -> [u8; 6] {
    let claimed = (adv.len() >= 10).then(|| u32::from_le_bytes([adv[6], adv[7], adv[8], adv[9]]));
    let session = rx.session().map(|s| s.session).or(claimed).unwrap_or(0);
    adv_transfer::session_address(session)
}
