//! The extended advertising follower (`ble-ext`) on arbitrary input. The input is first parsed
//! as one PDU: parsing must never panic, whatever it yields must lie inside the PDU's own
//! length, and a parsed PDU written back by the builder must parse to the same fields. Then the
//! input drives a follower as a script of radio outcomes (a PDU heard at some time on some
//! channel and PHY, or a window missed): it must never panic, every operation it asks for must
//! be a valid one, and every event it reports must fit the chain limit.
#![no_main]
use ble_ext::pdu::Builder;
use ble_ext::{Config, ExtPdu, Filter, Follower, Listen, Op, Phy};
use libfuzzer_sys::fuzz_target;

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ExtPdu::parse(data) {
        let pdu = &data[..2 + usize::from(data[1])];
        assert!(within(pdu, p.adv_data) && within(pdu, p.acad));
        let b = Builder {
            tx_add: p.tx_add,
            adv_mode: p.adv_mode as u8,
            adv_a: p.adv_a,
            target_a: p.target_a,
            cte_info: p.cte_info,
            adi: p.adi,
            aux_ptr: p.aux_ptr,
            sync_info: p.sync_info,
            tx_power: p.tx_power,
            acad: p.acad,
            adv_data: p.adv_data,
        };
        let mut buf = [0u8; 2 + 255];
        let n = b.write(&mut buf).expect("a parsed PDU fits the builder");
        let q = ExtPdu::parse(&buf[..n]).expect("a built PDU parses");
        assert_eq!(
            (
                q.adv_a,
                q.target_a,
                q.adi,
                q.aux_ptr,
                q.sync_info,
                q.tx_power,
                q.acad,
                q.adv_data
            ),
            (
                p.adv_a,
                p.target_a,
                p.adi,
                p.aux_ptr,
                p.sync_info,
                p.tx_power,
                p.acad,
                p.adv_data
            )
        );
    }

    // The script: a flags byte (follow a filter, periodic on or off), then steps: an opcode
    // (bit 0: missed; else bit 1: PHY 2M), 4 bytes of ADDRESS time, a channel, a length, the
    // PDU.
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut buf = [0u8; 1650];
    let config = Config {
        periodic: flags & 1 != 0,
        sync_timeout_us: if flags & 2 != 0 { 50_000 } else { 0 },
        ..Config::default()
    };
    let mut f = Follower::new(config, &mut buf);
    f.follow(Filter {
        adv_a: (flags & 4 != 0).then_some([0xC0, 1, 2, 3, 4, 5]),
        sid: (flags & 8 != 0).then_some(flags >> 4),
    });
    while let Some((&opcode, after)) = rest.split_first() {
        rest = after;
        let len = if opcode & 1 != 0 {
            assert!(f.missed().is_none_or(|r| r.adv_data.len() <= 1650));
            None
        } else if rest.len() >= 6 {
            let address = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let channel = rest[4] % 40;
            let n = usize::from(rest[5]).min(rest.len() - 6);
            let pdu = &rest[6..6 + n];
            let phy = if opcode & 2 != 0 {
                Phy::Le2M
            } else {
                Phy::Le1M
            };
            if let Some(r) = f.received(address, channel, phy, pdu) {
                assert!(r.adv_data.len() <= 1650);
            }
            Some(6 + n)
        } else {
            break;
        };
        if let Some(n) = len {
            rest = &rest[n..];
        }
        match f.op() {
            Op::Idle => panic!("idle while following"),
            Op::ScanPrimary { channel } => assert!((37..=39).contains(&channel)),
            Op::Listen(Listen {
                channel, window_us, ..
            }) => {
                assert!(channel <= 36, "listen on channel {channel}");
                // Far from half the timer's range (where before and after blur); a periodic
                // window is also narrower than its interval (at most 82 s).
                assert!(window_us < 90_000_000, "a {window_us} µs window");
            }
        }
    }
});
