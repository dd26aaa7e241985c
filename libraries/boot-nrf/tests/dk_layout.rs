//! The DK layout's other copies agree with [`boot_nrf::NRF52840_DK`]: the Tock board's linker
//! script, the update-region's configuration and the DFU app's image limit. Changing the layout
//! in one place and not the others fails here.
use boot_core::{Region, PAGE};
use boot_nrf::{NRF52840_DK, NRF52840_DK_STREAM};

const BOARD_LAYOUT_LD: &str = include_str!("../../../boards/nrf52840dk-ota/layout.ld");

/// `(ORIGIN, LENGTH)` of the linker script's MEMORY region `name`; LENGTH in bytes or with a
/// `K`/`M` suffix.
fn memory_region(ld: &str, name: &str) -> Option<(u32, u32)> {
    let line = ld
        .lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().next() == Some(name))?;
    let field = |key: &str| -> Option<&str> {
        let at = line.find(key)? + key.len();
        let rest = line[at..].trim_start().strip_prefix('=')?.trim_start();
        Some(rest.split([',', ' ']).next()?.trim())
    };
    let number = |s: &str| -> Option<u32> {
        let (digits, scale) = match s.as_bytes().last()? {
            b'K' => (&s[..s.len() - 1], 1024),
            b'M' => (&s[..s.len() - 1], 1024 * 1024),
            _ => (s, 1),
        };
        let n = match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => digits.parse().ok()?,
        };
        n.checked_mul(scale)
    };
    Some((number(field("ORIGIN")?)?, number(field("LENGTH")?)?))
}

#[test]
fn the_region_parser_reads_hex_origins_and_suffixed_lengths() {
    let ld = "MEMORY {\n  rom (rx)  : ORIGIN = 0x00008000, LENGTH = 224K\n  big : ORIGIN = 16, LENGTH = 2M\n}";
    assert_eq!(memory_region(ld, "rom"), Some((0x8000, 224 * 1024)));
    assert_eq!(memory_region(ld, "big"), Some((16, 2 << 20)));
    assert_eq!(memory_region(ld, "prog"), None);
}

#[test]
fn the_board_linker_script_is_the_dk_layout() {
    let rom = memory_region(BOARD_LAYOUT_LD, "rom").expect("layout.ld has a rom region");
    let prog = memory_region(BOARD_LAYOUT_LD, "prog").expect("layout.ld has a prog region");
    let slot = NRF52840_DK.kernel_slot;
    let apps = NRF52840_DK.apps;
    assert_eq!(
        rom,
        (slot.start, slot.len),
        "layout.ld rom vs the kernel slot"
    );
    assert_eq!(
        prog,
        (apps.start, apps.len),
        "layout.ld prog vs the apps region"
    );
    assert!(BOARD_LAYOUT_LD.contains(&format!("PAGE_SIZE = {}K;", PAGE / 1024)));
}

#[test]
fn the_update_region_config_is_the_dk_layout() {
    let c = update_region::Config::nrf52840dk(1);
    assert_eq!(c.staging_base, NRF52840_DK.staging.start);
    assert_eq!(c.staging_len, NRF52840_DK.staging.len);
    assert_eq!(c.request_base, NRF52840_DK.request_sector.start);
}

#[test]
fn the_dfu_app_image_limit_is_the_kernel_slot_plus_header_room() {
    let limit = dfu_app::MAX_IMAGE_LEN;
    // The kernel slot plus two 4 KiB blocks for the image header and TLVs.
    assert_eq!(limit, NRF52840_DK.kernel_slot.len + 2 * PAGE);
    // And the staging slot can hold it.
    assert!(limit <= update_region::Config::nrf52840dk(1).max_image_len());
}

#[test]
fn the_stream_area_is_its_update_region_config_and_overlaps_nothing() {
    let c = update_region::Config::nrf52840dk_stream(1);
    let stream = NRF52840_DK_STREAM;
    assert_eq!((c.staging_base, c.staging_len), (stream.start, stream.len));
    assert_eq!(c.request_base, NRF52840_DK.request_sector.start);
    let l = NRF52840_DK;
    for (name, other) in [
        ("request sector", l.request_sector),
        ("journal", l.journal),
        ("staging slot", l.staging),
        ("revert slot", l.revert),
    ] {
        let apart = stream.end() <= other.start || other.end() <= stream.start;
        assert!(apart, "stream area overlaps the {name}");
    }
    // Inside the 8 MiB MX25R6435F, sector aligned.
    assert!(Region::new(0, 8 << 20).contains_abs(stream.start, stream.len));
    assert_eq!((stream.start % PAGE, stream.len % PAGE), (0, 0));
    // It holds the largest image the DFU app accepts, with room for a patch's header and
    // operation counts: a patch is at worst the image inserted whole.
    assert!(c.max_image_len() >= dfu_app::MAX_IMAGE_LEN + 4096);
}
