//! TAB reading: the TBF for the board's architecture, and every way a file can fail to be one
//! (not a tar, a cut tar, a wrong header checksum, no TBF for cortex-m4, only fixed-address
//! builds, a TBF the installer would refuse), each with a reason that names it.
use app_sim::tab::{app_from_tab, tar_files, TabError, CORTEX_M4};
use app_sim::tbf::{dev_app_key, tbf};

/// A ustar archive of `files`, as tar and elf2tab write one.
fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = b'0';
        h[257..265].copy_from_slice(b"ustar\x0000");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend(h);
        out.extend(*data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.extend([0; 1024]);
    out
}

#[test]
fn the_cortex_m4_tbf_is_taken_with_its_name_version_and_credential() {
    let signed = tbf("blink", 3, Some(&dev_app_key()), 1024);
    let other = tbf("blink", 3, None, 1024);
    let bytes = tar(&[
        ("metadata.toml", b"tab-version = 1\n"),
        ("rv32imc.tbf", &other),
        ("cortex-m4.tbf", &signed),
    ]);
    let app = app_from_tab(&bytes, CORTEX_M4).unwrap();
    assert_eq!((app.name.as_str(), app.version), ("blink", 3));
    assert_eq!(app.file, "cortex-m4.tbf");
    assert!(app.signed);
    assert_eq!(app.tbf, signed);
    let unsigned = app_from_tab(&tar(&[("cortex-m4.tbf", &other)]), CORTEX_M4).unwrap();
    assert!(!unsigned.signed);
    assert_eq!(tar_files(&bytes).unwrap().len(), 3);
}

#[test]
fn what_is_not_a_tab_with_a_cortex_m4_app_is_refused_with_a_reason() {
    let signed = tbf("blink", 3, Some(&dev_app_key()), 1024);
    let why = |bytes: &[u8]| app_from_tab(bytes, CORTEX_M4).unwrap_err();

    assert!(matches!(why(b"not a tar"), TabError::NotTar(_)));
    let mut bad_sum = tar(&[("cortex-m4.tbf", &signed)]);
    bad_sum[0] ^= 1;
    let e = why(&bad_sum);
    assert!(e.to_string().contains("checksum"), "{e}");
    let whole = tar(&[("cortex-m4.tbf", &signed)]);
    let e = why(&whole[..700]);
    assert!(e.to_string().contains("past the end"), "{e}");

    let e = why(&tar(&[("metadata.toml", b"x"), ("rv32imc.tbf", &signed)]));
    assert_eq!(
        e,
        TabError::NoTbf {
            arch: "cortex-m4".into(),
            has: vec!["rv32imc.tbf".into()]
        }
    );
    assert!(e.to_string().contains("it has: rv32imc.tbf"), "{e}");

    let fixed = "cortex-m4.0x00040000.0x20008000.tbf";
    let e = why(&tar(&[(fixed, &signed)]));
    assert_eq!(e, TabError::FixedAddressOnly(vec![fixed.into()]));
    assert!(e.to_string().contains("position-independent"), "{e}");

    let mut corrupt = signed.clone();
    corrupt[20] ^= 0xFF; // inside the header: its checksum no longer holds
    let e = why(&tar(&[("cortex-m4.tbf", &corrupt)]));
    assert!(matches!(e, TabError::BadTbf(_)), "{e}");
    let e = why(&tar(&[("cortex-m4.tbf", &signed[..100])]));
    assert!(matches!(e, TabError::BadTbf(_)), "{e}");
}
