//! Channel Selection Algorithm #2 (Bluetooth Core Specification 5.x, Vol 6 Part B §4.5.8.3):
//! the data channel of each event of a periodic advertising train (and of a connection using
//! it), from the train's access address, the event counter and the channel map.
//!
//! - channel identifier: the access address's upper 16 bits XOR its lower 16 bits;
//! - the event pseudo-random number `prn_e`: the counter XOR the identifier, then three rounds
//!   of PERM (reverse the bits of each octet) and MAM (`17·a + identifier` mod 2¹⁶), then XOR
//!   the identifier again;
//! - the unmapped channel `prn_e mod 37`; if the map does not use it, the remapping index
//!   `⌊N·prn_e / 2¹⁶⌋` into the N used channels in ascending order.
//!
//! Checked against the specification's sample data (Vol 6 Part C §3: all 37 channels, and
//! channels 9, 10, 21, 22, 23, 33, 34, 35, 36) in this module's tests.

/// The data channels a channel map can use (bits 0–36).
pub const DATA_CHANNELS: u8 = 37;
const MAP_MASK: u64 = (1 << DATA_CHANNELS) - 1;

/// The channel identifier of an access address.
pub const fn channel_identifier(access_address: u32) -> u16 {
    ((access_address >> 16) as u16) ^ (access_address as u16)
}

/// PERM: each octet's bits reversed.
const fn perm(v: u16) -> u16 {
    let [hi, lo] = v.to_be_bytes();
    u16::from_be_bytes([hi.reverse_bits(), lo.reverse_bits()])
}

/// MAM: multiply, add, modulo 2¹⁶.
const fn mam(a: u16, b: u16) -> u16 {
    a.wrapping_mul(17).wrapping_add(b)
}

/// The event's pseudo-random number `prn_e`.
pub const fn prn_e(counter: u16, channel_id: u16) -> u16 {
    let mut u = counter ^ channel_id;
    let mut round = 0;
    while round < 3 {
        u = mam(perm(u), channel_id);
        round += 1;
    }
    u ^ channel_id
}

/// Used channels of a 37-bit channel map.
pub const fn used_channels(channel_map: u64) -> u8 {
    (channel_map & MAP_MASK).count_ones() as u8
}

/// The channel of event `counter`, or `None` if the map uses no channel.
pub fn channel(counter: u16, channel_id: u16, channel_map: u64) -> Option<u8> {
    let map = channel_map & MAP_MASK;
    let n = used_channels(map);
    if n == 0 {
        return None;
    }
    let prn = prn_e(counter, channel_id);
    let unmapped = (prn % u16::from(DATA_CHANNELS)) as u8;
    if map & (1 << unmapped) != 0 {
        return Some(unmapped);
    }
    let index = ((u32::from(n) * u32::from(prn)) >> 16) as u8;
    // The index-th used channel, ascending: clear the lower used channels.
    let mut rest = map;
    for _ in 0..index {
        rest &= rest - 1;
    }
    Some(rest.trailing_zeros() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample data, Vol 6 Part C §3.1 and §3.2: access address 0x8E89BED6.
    const AA: u32 = 0x8E89_BED6;

    #[test]
    fn the_channel_identifier_of_the_sample_access_address() {
        assert_eq!(channel_identifier(AA), 0x305F);
    }

    #[test]
    fn all_channels_used_sample_data() {
        let id = channel_identifier(AA);
        let map = (1u64 << 37) - 1;
        // (counter, prn_e, channel): prn_e mod 37 is the channel, every channel being used.
        for (counter, prn, ch) in [(0, 56857, 25), (1, 1685, 20), (2, 38301, 6), (3, 27475, 21)] {
            assert_eq!(prn_e(counter, id), prn, "prn_e of counter {counter}");
            assert_eq!(channel(counter, id, map), Some(ch), "counter {counter}");
        }
    }

    #[test]
    fn nine_channels_used_sample_data() {
        let id = channel_identifier(AA);
        let map = [9u64, 10, 21, 22, 23, 33, 34, 35, 36]
            .iter()
            .fold(0, |m, c| m | 1 << c);
        assert_eq!(used_channels(map), 9);
        // Counter 6 hits a used channel unmapped; 7 and 8 are remapped (indices 0 and 6).
        for (counter, prn, ch) in [(6, 10975, 23), (7, 5490, 9), (8, 46970, 34)] {
            assert_eq!(prn_e(counter, id), prn, "prn_e of counter {counter}");
            assert_eq!(channel(counter, id, map), Some(ch), "counter {counter}");
        }
    }

    #[test]
    fn every_channel_picked_is_in_the_map() {
        let id = channel_identifier(0x1234_5678);
        let map = 0b1_0000_0000_0000_0000_0000_0000_0000_0001_0001u64;
        for counter in 0..=u16::MAX {
            let ch = channel(counter, id, map).expect("a used channel");
            assert!(map & (1 << ch) != 0, "counter {counter}: channel {ch}");
        }
        assert_eq!(channel(0, id, 0), None);
        assert_eq!(
            channel(0, id, 1 << 40),
            None,
            "bits past 36 are not channels"
        );
    }
}
