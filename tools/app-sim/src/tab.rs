//! Tock Application Bundles (TABs) as elf2tab writes them: a tar archive of `metadata.toml` and
//! one TBF per architecture, named `<arch>.tbf` (elf2tab names each TBF after the architecture
//! given with its ELF; a fixed-address build gives names such as
//! `cortex-m4.0x00040000.0x20008000.tbf`). The sender and the simulator take the
//! position-independent TBF of the board's architecture and read its package name and version
//! with the installer's own header check (`app_install::tbf`), so what they announce is what
//! the kernel will check.

use std::fmt;

/// The nRF52840's architecture as TABs name it.
pub const CORTEX_M4: &str = "cortex-m4";

/// Tar block size.
const BLOCK: usize = 512;

/// Why a TAB was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TabError {
    /// Not a tar archive, or one cut short.
    NotTar(String),
    /// No TBF for the architecture; the TBF names the TAB has.
    NoTbf { arch: String, has: Vec<String> },
    /// Only fixed-address TBFs for the architecture (the board places an app where its
    /// allocator finds room, so it needs the position-independent one).
    FixedAddressOnly(Vec<String>),
    /// The TBF's header is not one the installer accepts.
    BadTbf(String),
}

impl fmt::Display for TabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TabError::NotTar(why) => write!(f, "not a TAB (tar archive): {why}"),
            TabError::NoTbf { arch, has } => write!(
                f,
                "the TAB has no TBF for {arch} ({arch}.tbf); it has: {}",
                if has.is_empty() {
                    "no TBF".to_string()
                } else {
                    has.join(", ")
                }
            ),
            TabError::FixedAddressOnly(names) => write!(
                f,
                "the TAB has only fixed-address TBFs ({}); app updates need the \
                 position-independent one, which the board places where it finds room",
                names.join(", ")
            ),
            TabError::BadTbf(why) => {
                write!(f, "the TAB's TBF is not an app the board takes: {why}")
            }
        }
    }
}

impl std::error::Error for TabError {}

/// The files of a tar archive, in order: (name, bytes). Regular files only.
pub fn tar_files(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, TabError> {
    let mut files = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = bytes.get(at..at + BLOCK) else {
            if at == bytes.len() && !files.is_empty() {
                // Some writers omit the two zero blocks at the end.
                return Ok(files);
            }
            return Err(TabError::NotTar(format!(
                "{} bytes end inside a header at {at}",
                bytes.len()
            )));
        };
        if header.iter().all(|b| *b == 0) {
            return Ok(files);
        }
        let stored: u32 = header[148..156]
            .iter()
            .filter(|b| b.is_ascii_digit())
            .fold(0, |a, b| a * 8 + u32::from(b - b'0'));
        let sum: u32 = header
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u32::from(*b)
                }
            })
            .sum();
        if stored != sum {
            return Err(TabError::NotTar(format!("header checksum wrong at {at}")));
        }
        let text = |range: std::ops::Range<usize>| {
            let field = &header[range];
            let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
            String::from_utf8_lossy(&field[..end]).into_owned()
        };
        let size_field = text(124..136);
        let size = usize::from_str_radix(size_field.trim(), 8)
            .map_err(|_| TabError::NotTar(format!("size field {size_field:?} at {at}")))?;
        let mut name = text(0..100);
        if &header[257..262] == b"ustar" {
            let prefix = text(345..500);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let data = at + BLOCK;
        let content = bytes
            .get(data..data.saturating_add(size))
            .ok_or_else(|| TabError::NotTar(format!("{name}: {size} bytes past the end")))?;
        if matches!(header[156], 0 | b'0') {
            files.push((name, content.to_vec()));
        }
        at = data + size.div_ceil(BLOCK) * BLOCK;
    }
}

/// An app taken from a TAB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TabApp {
    /// The TBF's file name in the TAB.
    pub file: String,
    /// The TBF's package name (what the board knows the app by).
    pub name: String,
    /// The TBF's `binary_version`.
    pub version: u32,
    /// The TBF, footers included, as elf2tab wrote it.
    pub tbf: Vec<u8>,
    /// Whether the TBF carries an ECDSA P-256 credential (the board refuses it otherwise).
    pub signed: bool,
}

/// The position-independent TBF for `arch` in the TAB `bytes`, with its package name and
/// version as the installer reads them.
pub fn app_from_tab(bytes: &[u8], arch: &str) -> Result<TabApp, TabError> {
    let files = tar_files(bytes)?;
    let wanted = format!("{arch}.tbf");
    let base = |name: &str| name.rsplit('/').next().unwrap_or(name).to_string();
    let Some((file, tbf)) = files.iter().find(|(n, _)| base(n) == wanted) else {
        let fixed: Vec<String> = files
            .iter()
            .map(|(n, _)| base(n))
            .filter(|n| n.starts_with(&format!("{arch}.")) && n.ends_with(".tbf"))
            .collect();
        if !fixed.is_empty() {
            return Err(TabError::FixedAddressOnly(fixed));
        }
        return Err(TabError::NoTbf {
            arch: arch.to_string(),
            has: files
                .iter()
                .map(|(n, _)| base(n))
                .filter(|n| n.ends_with(".tbf"))
                .collect(),
        });
    };
    let app = parse_tbf(tbf)?;
    Ok(TabApp {
        file: base(file),
        ..app
    })
}

/// Package name, version and credential of a TBF, by the installer's checks.
pub fn parse_tbf(tbf: &[u8]) -> Result<TabApp, TabError> {
    use app_install::tbf::{check_header, check_lengths, ecdsa_p256_credential};
    let base: [u8; 8] = tbf
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TabError::BadTbf(format!("{} bytes is no TBF", tbf.len())))?;
    let (header_len, total_len) = check_lengths(&base, tbf.len(), usize::from(u16::MAX))
        .map_err(|r| TabError::BadTbf(format!("lengths: {r:?}")))?;
    let app = check_header(&tbf[..usize::from(header_len)], total_len)
        .map_err(|r| TabError::BadTbf(format!("header: {r:?}")))?;
    Ok(TabApp {
        file: String::new(),
        name: app.name().to_string(),
        version: app.version,
        signed: ecdsa_p256_credential(&tbf[app.binary_end as usize..]).is_some(),
        tbf: tbf.to_vec(),
    })
}

/// An ELF32 ARM executable elf2tab takes (for tests that make TABs with elf2tab): one loadable, executable segment at 0x80000000 (the
/// address position-independent Tock apps are linked at) holding `.text`, and the section
/// names elf2tab looks sections up by.
pub fn arm_elf(code: &[u8]) -> Vec<u8> {
    const TEXT_AT: usize = 0x100;
    const ADDR: u32 = 0x8000_0000;
    let names = b"\0.text\0.shstrtab\0";
    let names_at = TEXT_AT + code.len();
    let sections_at = (names_at + names.len()).next_multiple_of(4);
    let mut out = Vec::new();
    let u16s = |out: &mut Vec<u8>, v: &[u16]| v.iter().for_each(|x| out.extend(x.to_le_bytes()));
    let u32s = |out: &mut Vec<u8>, v: &[u32]| v.iter().for_each(|x| out.extend(x.to_le_bytes()));
    // e_ident: ELF, 32-bit, little endian, version 1.
    out.extend([0x7F, b'E', b'L', b'F', 1, 1, 1]);
    out.resize(16, 0);
    u16s(&mut out, &[2, 40]); // ET_EXEC, EM_ARM
    u32s(&mut out, &[1, ADDR, 52, sections_at as u32, 0x0500_0000]); // EABI 5
    u16s(&mut out, &[52, 32, 1, 40, 3, 2]);
    // PT_LOAD, offset, vaddr, paddr, filesz, memsz, R|X, align.
    let len = code.len() as u32;
    u32s(&mut out, &[1, TEXT_AT as u32, ADDR, ADDR, len, len, 5, 4]);
    out.resize(TEXT_AT, 0);
    out.extend(code);
    out.extend(names);
    out.resize(sections_at, 0);
    u32s(&mut out, &[0; 10]);
    // .text: PROGBITS, ALLOC|EXECINSTR.
    u32s(&mut out, &[1, 1, 6, ADDR, TEXT_AT as u32, len, 0, 0, 4, 0]);
    // .shstrtab: STRTAB.
    u32s(
        &mut out,
        &[7, 3, 0, 0, names_at as u32, names.len() as u32, 0, 0, 1, 0],
    );
    out
}
