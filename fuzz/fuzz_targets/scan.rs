//! The DFU app's scan-batch parsing (`dfu_app::adv_data_in`, reports `[len, channel, pdu]` as the
//! scan capsule delivers them) on arbitrary batches, and on batches encoded from arbitrary PDUs
//! against a plain reference; every AdvData it yields then goes into the transfer receiver. The
//! parser must never panic, must stop, must yield only bytes inside their report's PDU, and must
//! yield exactly the AdvData of the advertising PDU types that carry one.
#![no_main]
use adv_transfer::{Receiver, DEFAULT_COMPANY_ID};
use dfu_abi::scan::{MAX_PDU, REPORT_HEADER};
use libfuzzer_sys::fuzz_target;

/// The AdvData of one advertising PDU, by the Bluetooth Core's layout: a 2-byte header (type in
/// the low 4 bits, payload length in the second byte), AdvA (6 bytes), then AdvData, for
/// ADV_IND, ADV_NONCONN_IND and ADV_SCAN_IND; a length byte past the PDU is cut to the PDU.
fn reference(pdu: &[u8]) -> Option<&[u8]> {
    if pdu.len() < 8 || !matches!(pdu[0] & 0x0F, 0 | 2 | 6) {
        return None;
    }
    let end = (2 + usize::from(pdu[1])).min(pdu.len());
    (end >= 8).then(|| &pdu[8..end])
}

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

fuzz_target!(|data: &[u8]| {
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(DEFAULT_COMPANY_ID, 64 * 1024, &mut bitmap, None, false);

    // The input itself as a batch.
    let mut n = 0;
    for (addr, adv) in dfu_app::reports_in(data) {
        assert!(within(data, adv), "AdvData outside the batch");
        n += 1;
        assert!(
            n <= data.len() / REPORT_HEADER,
            "more reports than the batch can hold"
        );
        rx.on_adv(addr, adv);
    }

    // The input cut into PDUs (a length byte, then that many bytes), encoded as the capsule does.
    let mut pdus = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let len = usize::from(data[at]) % (MAX_PDU + 1);
        let pdu = &data[at + 1..(at + 1 + len).min(data.len())];
        at += 1 + len;
        if !pdu.is_empty() {
            pdus.push(pdu);
        }
    }
    let mut batch = Vec::new();
    for (i, pdu) in pdus.iter().enumerate() {
        batch.push(pdu.len() as u8);
        batch.push(37 + (i % 3) as u8);
        batch.extend_from_slice(pdu);
    }
    let got: Vec<&[u8]> = dfu_app::adv_data_in(&batch).collect();
    let want: Vec<&[u8]> = pdus.iter().filter_map(|p| reference(p)).collect();
    assert_eq!(got, want);
    for (addr, adv) in dfu_app::reports_in(&batch) {
        rx.on_adv(addr, adv);
    }
});
