//! The whole boot flow (boot-core on the simulated board: hardware models of the QSPI chip and
//! the NVMC) with forged QSPI contents beside a correctly staged image and its boot request:
//! journal records with valid CRCs and arbitrary fields, boot requests and confirms, and raw
//! bytes, in the journal and in the request sector. This reaches the decoders as the bootloader
//! uses them (the journal scan, the request sector's backward scan) and the flow's arithmetic on
//! what they return. Every boot must end in a decision or a flash error, never a panic or a
//! hang, and always starts the kernel slot. (What such contents can make the device do is
//! documented and tested in boot-core.)
#![no_main]
use boot_core::journal::{JournalRecord, Reason, State, NO_COUNTER};
use boot_sim::{boot_request, confirm, image_hash, Scenario, SMALL};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, ops)) = data.split_first() else {
        return;
    };
    let sc = Scenario::new(SMALL, 9000, 12000);
    let hash = image_hash(&sc.image);
    let mut b = sc.start(u64::from(flags));
    let journal = SMALL.journal;
    let requests = SMALL.request_sector;
    for op in ops.chunks_exact(8).take(64) {
        let w = |a: usize| u32::from_le_bytes([op[a], op[a + 1], op[a + 2], op[a + 3]]);
        let h = |a: usize| u16::from_le_bytes([op[a], op[a + 1]]);
        match op[0] % 4 {
            0 => {
                let states = State::ALL;
                let rec = JournalRecord {
                    sequence: w(1),
                    state: states[usize::from(op[2]) % states.len()],
                    reason: Reason::from_code(op[3]),
                    attempts: op[4],
                    request_sequence: u32::from(op[5] % 4),
                    image_hash: if op[6] & 1 == 1 { hash } else { [op[6]; 32] },
                    payload_len: if op[7] & 1 == 1 { 12000 } else { w(4) },
                    payload_offset: if op[2] & 0x80 != 0 { 32 } else { h(6) },
                    installed: u16::from(op[5] % 8),
                    backed_up: if op[7] & 2 == 0 {
                        u16::from(op[7] % 8)
                    } else {
                        h(3)
                    },
                    security_counter: if op[3] & 1 == 0 { NO_COUNTER } else { w(3) },
                };
                let slot = u32::from(op[1]) % (journal.len / 64);
                b.sim.chip().load(journal.start + slot * 64, &rec.encode());
            }
            1 => {
                let seq = u32::from(op[3] % 8);
                let h = if op[2] & 2 == 0 { hash } else { [op[4]; 32] };
                let rec = if op[2] & 1 == 0 {
                    boot_request(
                        seq,
                        h,
                        if op[5] & 1 == 0 {
                            sc.image.len() as u32
                        } else {
                            w(4)
                        },
                    )
                } else {
                    confirm(seq, h)
                };
                let slot = u32::from(op[1]) % (requests.len / 64);
                b.sim.chip().load(requests.start + slot * 64, &rec.encode());
            }
            k => {
                let region = if k == 2 { journal } else { requests };
                let at = u32::from(h(1)) % (region.len - 5);
                b.sim.chip().load(region.start + at, &op[3..8]);
            }
        }
    }
    for i in 0..3 {
        if let Ok(d) = b.boot(flags >> i & 1 == 1) {
            assert_eq!(d.kernel_addr, SMALL.kernel_slot.start);
        }
    }
});
