//! Writes the seed corpora of the receiver, journal, control and policy targets under
//! `fuzz/seeds/<target>/` from the real encoders (the sender's advertisements, encoded journal
//! and control records). Run from the repository root:
//!   cargo +nightly-2026-07-21 run --manifest-path fuzz/Cargo.toml --example seeds
//!
//! The image seeds are real images signed by the repository's signer, with a key made for them
//! whose public half is `fuzz/fuzz_targets/image-key.pub.bin` (the private half was not kept):
//!   tock-ota keygen -o k.pem      # k.pub.bin -> fuzz/fuzz_targets/image-key.pub.bin
//!   tock-ota sign -k k.pem --version 1.2.3+4 --security-counter 3 --pad-header \
//!       --header-size 0x20 600-random-bytes fuzz/seeds/image/counter3.bin
//!   tock-ota sign -k k.pem --pad-header --header-size 0x200 150-random-bytes \
//!       fuzz/seeds/image/padded-header.bin
//!   tock-ota sign -k k.pem --security-counter auto --version 2.0.0 --pad-header \
//!       --header-size 0x20 --load-addr 0x8000 1000-random-bytes fuzz/seeds/image/load-addr.bin
use adv_transfer::wire::ADV_DATA_MAX;
use adv_transfer::{Receiver, Sender, DEFAULT_COMPANY_ID};
use boot_core::journal::{JournalRecord, Reason, State, NO_COUNTER};
use control_area::{Record, RecordKind};
use std::fs;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = format!("fuzz/seeds/{target}");
    fs::create_dir_all(&dir).unwrap();
    fs::write(format!("{dir}/{name}"), bytes).unwrap();
}

/// The receiver target's input: a flags byte, then each advertisement as its length and bytes.
fn adv_stream(image_len: usize, session: u32, max_advs: usize, with_status: bool) -> Vec<u8> {
    let image: Vec<u8> = (0..image_len).map(|i| (i * 7 + 1) as u8).collect();
    let mut tx = Sender::new(DEFAULT_COMPANY_ID, &image, session, 0).unwrap();
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(DEFAULT_COMPANY_ID, 64 * 1024, &mut bitmap, None, false);
    let mut out = vec![0u8];
    let mut adv = [0u8; ADV_DATA_MAX];
    for i in 0..max_advs {
        let n = tx.next_adv(&mut adv);
        out.push(n as u8);
        out.extend_from_slice(&adv[..n]);
        if with_status && i % 50 == 49 {
            // A status from a receiver that heard nothing: the sender's answer follows.
            let n = rx.status_adv(&mut adv);
            tx.on_adv(&adv[..n]);
        }
        if tx.first_pass_sent() >= tx.total_chunks() && i > 10 {
            break;
        }
    }
    out
}

fn journal_record(seq: u32, state: State) -> JournalRecord {
    JournalRecord {
        sequence: seq,
        state,
        reason: Reason::None,
        attempts: 1,
        request_sequence: seq,
        image_hash: [seq as u8; 32],
        payload_len: 5000,
        payload_offset: 0x20,
        installed: 2,
        backed_up: 2,
        security_counter: NO_COUNTER,
    }
}

fn main() {
    write(
        "receiver",
        "small-image",
        &adv_stream(3000, 0x1234_5678, 400, true),
    );
    write("receiver", "first-adverts", &adv_stream(9000, 7, 30, false));

    // Journal ops (5 bytes each; see the target): appends with and without reboots, a few cut
    // appends, enough to wrap a two-sector ring; and raw encoded records.
    let mut ops = vec![0u8];
    for i in 0..140u8 {
        let kind = match i % 23 {
            22 => 4,
            _ => i % 4,
        };
        ops.extend_from_slice(&[kind, i, i.wrapping_mul(3), i & 1, i]);
    }
    write("journal", "appends-and-cuts", &ops);
    let mut raw = Vec::new();
    for (i, s) in [
        State::Installing,
        State::Trial,
        State::Confirmed,
        State::Rejected,
    ]
    .into_iter()
    .enumerate()
    {
        raw.extend_from_slice(&journal_record(i as u32 + 1, s).encode());
    }
    write("journal", "encoded-records", &raw);

    let mut sector = Vec::new();
    for seq in 1..6u32 {
        let kind = if seq % 2 == 0 {
            RecordKind::Confirm
        } else {
            RecordKind::BootRequest
        };
        let rec = Record {
            kind,
            sequence: seq,
            image_len: 70_000,
            image_hash: [seq as u8; 32],
        };
        sector.extend_from_slice(&rec.encode());
    }
    sector.extend_from_slice(&[0xFF; 128]);
    write("control", "request-sector", &sector);

    // Policy ops (6 bytes each; see the target): begin, erase, writes, read, finalize, confirm,
    // reboot, and a stranger's write.
    let op = |kind: u8, off: u32, len: u16| {
        let o = off.to_le_bytes();
        let l = len.to_le_bytes();
        [kind, o[0], o[1], o[2], l[0], l[1]]
    };
    let mut p = vec![0u8];
    p.extend_from_slice(&op(0, 0x2000, 0));
    p.extend_from_slice(&op(1, 0, 0));
    p.extend_from_slice(&op(1, 0x1000, 0));
    for k in 0..8u32 {
        p.extend_from_slice(&op(2, k * 256, 256));
    }
    p.extend_from_slice(&op(4, 0, 200));
    p.extend_from_slice(&op(0x82, 0x800, 100));
    p.extend_from_slice(&op(5, 0, 0));
    p.extend_from_slice(&op(8, 0, 0));
    p.extend_from_slice(&op(7, 0, 0));
    write("policy", "stage-and-confirm", &p);

    // Boot ops (8 bytes each; see the target): nothing forged (the staged update installs), then
    // a forged Installing record with the staged image's hash, a confirm, raw bytes.
    write("boot", "clean-update", &[0]);
    let mut b = vec![0b010u8];
    b.extend_from_slice(&[0, 5, 0x80, 0, 0, 1, 1, 1]);
    b.extend_from_slice(&[1, 1, 1, 2, 0, 0, 0, 0]);
    b.extend_from_slice(&[2, 0x40, 0, 0xAA, 0x55, 0, 0xFF, 0x12]);
    write("boot", "forged-install-and-confirm", &b);

    // Scan batches as the capsule delivers them (`[len, channel, pdu]`): the sender's
    // advertisements as ADV_NONCONN_IND PDUs, then other PDU types around them.
    let stream = adv_stream(3000, 9, 12, false);
    let mut batch = Vec::new();
    let mut at = 1;
    let mut i = 0u8;
    while at < stream.len() {
        let n = usize::from(stream[at]);
        let adv_data = &stream[at + 1..at + 1 + n];
        at += 1 + n;
        let pdu_type = [2u8, 0, 6, 4][usize::from(i % 4)];
        let mut pdu = vec![pdu_type, (6 + n) as u8, 1, 2, 3, 4, 5, i];
        pdu.extend_from_slice(adv_data);
        batch.push(pdu.len() as u8);
        batch.push(37 + i % 3);
        batch.extend_from_slice(&pdu);
        i = i.wrapping_add(1);
    }
    write("scan", "sender-batch", &batch);
}
