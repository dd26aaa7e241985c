//! The ARM-Thumb BCJ filter (xz's `armthumb`, start offset 0), as imgtool's `lzma2armthumb`
//! applies it before compressing.
//!
//! The filter rewrites every Thumb `BL` pair — a halfword whose high byte is `0xF0..=0xF7`
//! followed by one whose high byte is `0xF8..=0xFF`, at an even stream position `s` with
//! `s + 4 <= len` — from a relative to an absolute target (encoder: `+ (s + 4)`, decoder: `-`).
//! Those two high-byte patterns are disjoint and the rewrite keeps them, so whether a position
//! starts a converted pair depends only on the 4 bytes there, read before or after filtering. That
//! makes the filter local: any stretch of the stream can be converted either way from its own
//! bytes plus up to 3 neighbours on each side, which lets the decoder turn plain output read back
//! from flash into the filtered bytes its dictionary holds.

/// Whether the 4 bytes at an even position form a `BL` pair the filter converts (the same on
/// filtered and plain bytes).
pub(crate) fn is_pair(b1: u8, b3: u8) -> bool {
    (b1 & 0xF8) == 0xF0 && (b3 & 0xF8) == 0xF8
}

/// Converts one pair at stream position `at`: `encode` filters (relative to absolute), else
/// unfilters.
pub(crate) fn convert(b: [u8; 4], at: u32, encode: bool) -> [u8; 4] {
    let src = ((u32::from(b[1]) & 7) << 19)
        | (u32::from(b[0]) << 11)
        | ((u32::from(b[3]) & 7) << 8)
        | u32::from(b[2]);
    let src = src << 1;
    let base = at.wrapping_add(4);
    let dest = if encode {
        src.wrapping_add(base)
    } else {
        src.wrapping_sub(base)
    } >> 1;
    [
        (dest >> 11) as u8,
        0xF0 | ((dest >> 19) & 7) as u8,
        dest as u8,
        0xF8 | ((dest >> 8) & 7) as u8,
    ]
}

/// Converts, in place, every pair that lies wholly inside `buf`, where `buf[0]` is stream
/// position `base` and the stream is `total` bytes long. Bytes within 3 of either end of `buf`
/// may belong to a pair that is not wholly inside and are left as they are.
pub(crate) fn convert_slice(buf: &mut [u8], base: u32, total: u32, encode: bool) {
    // The first even stream position at or after `base`.
    let mut i = (base & 1) as usize;
    while i + 4 <= buf.len() {
        let at = base + i as u32;
        if at + 4 <= total && is_pair(buf[i + 1], buf[i + 3]) {
            let out = convert([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]], at, encode);
            buf[i..i + 4].copy_from_slice(&out);
        }
        i += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convert_round_trips_and_keeps_the_pattern() {
        for at in [0u32, 2, 1000, 0x3_fffe, 0xffff_fffc] {
            for w in [
                [0x00, 0xF0, 0x00, 0xF8],
                [0x12, 0xF7, 0x34, 0xFF],
                [0xff, 0xF3, 0x80, 0xFA],
            ] {
                let e = convert(w, at, true);
                assert!(is_pair(e[1], e[3]));
                assert_eq!(convert(e, at, false), w);
            }
        }
    }

    #[test]
    fn a_bl_to_itself_plus_four_becomes_its_own_address() {
        // BL with offset 0 at position 0x100 targets 0x104: filtered, the field holds 0x104 / 2.
        let e = convert([0x00, 0xF0, 0x00, 0xF8], 0x100, true);
        let field = ((u32::from(e[1]) & 7) << 19)
            | (u32::from(e[0]) << 11)
            | ((u32::from(e[3]) & 7) << 8)
            | u32::from(e[2]);
        assert_eq!(field, 0x104 / 2);
    }

    #[test]
    fn pairs_reaching_past_the_end_are_not_converted() {
        let mut b = [0x00, 0xF0, 0x00, 0xF8];
        convert_slice(&mut b, 10, 13, true);
        assert_eq!(b, [0x00, 0xF0, 0x00, 0xF8]);
        convert_slice(&mut b, 10, 14, true);
        assert_ne!(b, [0x00, 0xF0, 0x00, 0xF8]);
    }
}
