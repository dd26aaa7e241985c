//! Figures for docs/image-format.md: a compressed image rebuilt into the plain image on the
//! hardware models (MX25R6435F + nRF52840 QSPI, high-performance mode, 32 MHz), with the
//! received stream in the received-stream area and the output in the staging slot, as the
//! kernel would run it; and the payload decoder's read-backs for three window sizes.
//!
//!     cargo run --release -p ota-lzma --example figures -- kernel.lzma2armthumb.signed.bin
//!
//! (an image from `imgtool sign --compression lzma2armthumb`). Flash time only: the models
//! count QSPI transfers, erases and programs, not the CPU's decoding.
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use hw_models::SimBoard;
use ota_lzma::image::CompressedImage;
use ota_lzma::{Decoder, Filter, Op, Stats};
use ota_reconstruct::blocking::{run, Storage};
use ota_reconstruct::{Area, Limits, Rebuild};

const STREAM_AREA: u32 = 0x30_0000;
const STAGING: u32 = 0x10_0000;
const STAGING_LEN: u32 = 1020 * 1024;
const KERNEL_SLOT: u32 = 0x3_8000;

#[derive(Default, Debug)]
struct Count {
    stream_reads: u32,
    stream_bytes: u32,
    output_reads: u32,
    output_bytes: u32,
    pages: u32,
    erases: u32,
}

struct Board<'a> {
    b: &'a mut SimBoard,
    n: Count,
}

impl Storage for Board<'_> {
    type Error = String;
    fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), String> {
        let base = match area {
            Area::Stream => {
                self.n.stream_reads += 1;
                self.n.stream_bytes += buf.len() as u32;
                STREAM_AREA
            }
            Area::Output => {
                self.n.output_reads += 1;
                self.n.output_bytes += buf.len() as u32;
                STAGING
            }
            Area::Base => return Err("no base".into()),
        };
        self.b
            .qspi
            .read(base + offset, buf)
            .map_err(|e| format!("{e:?}"))
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), String> {
        if offset.is_multiple_of(4096) {
            self.n.erases += 1;
            let s = STAGING + offset;
            self.b
                .qspi
                .erase(s, s + 4096)
                .map_err(|e| format!("{e:?}"))?;
        }
        self.n.pages += 1;
        self.b
            .qspi
            .write(STAGING + offset, data)
            .map_err(|e| format!("{e:?}"))
    }
}

fn payload_reads<const W: usize, const B: usize>(payload: &[u8], filter: Filter, n: u32) -> Stats {
    let mut d = Decoder::<W, B>::new([payload[0], payload[1]], filter, n, n).unwrap();
    let mut out = Vec::new();
    let mut input = &payload[2..];
    loop {
        match d.poll().unwrap() {
            Op::NeedInput if input.is_empty() => d.finish_input(),
            Op::NeedInput => {
                let k = d.push_input(input);
                input = &input[k..];
            }
            Op::Write { data, .. } => {
                out.extend_from_slice(data);
                d.write_done().unwrap();
            }
            Op::Read { offset, len } => {
                let b = out[offset as usize..offset as usize + len].to_vec();
                d.read_done(&b).unwrap();
            }
            Op::Done { .. } => return d.stats(),
        }
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: figures IMAGE (imgtool --compression)");
    let img = std::fs::read(&path).unwrap();
    let mut board = SimBoard::new(1);
    // The received stream, as the transfer left it.
    let len = (img.len() as u32).div_ceil(4096) * 4096;
    board.qspi.erase(STREAM_AREA, STREAM_AREA + len).unwrap();
    board.qspi.write(STREAM_AREA, &img).unwrap();

    let t0 = board.clock.now_us();
    let mut s = Board {
        b: &mut board,
        n: Count::default(),
    };
    let limits = Limits {
        stream_len: img.len() as u32,
        base_max: 0,
        output_max: STAGING_LEN,
    };
    let mut r = Rebuild::new(CompressedImage::new(KERNEL_SLOT), limits);
    let outcome = run(&mut r, &mut s).unwrap();
    let n = s.n;
    board.qspi.wait().ok();
    let t = board.clock.now_us() - t0;
    println!(
        "image {} B -> plain image {} B",
        img.len(),
        outcome.output_len
    );
    println!("flash time {:.3} s (QSPI HP 32 MHz model)", t as f64 / 1e6);
    println!("{n:?}");
    println!(
        "RAM: Decoder<4096,256> {} B, CompressedImage {} B, Rebuild<&mut CompressedImage> {} B",
        size_of::<Decoder<4096, 256>>(),
        size_of::<CompressedImage>(),
        size_of::<Rebuild<&mut CompressedImage>>()
    );

    // The payload alone with three windows.
    let hs = usize::from(u16::from_le_bytes([img[8], img[9]]));
    let size = u32::from_le_bytes(img[12..16].try_into().unwrap()) as usize;
    let flags = u32::from_le_bytes(img[16..20].try_into().unwrap());
    let filter = if flags & 0x800 != 0 {
        Filter::ArmThumb
    } else {
        Filter::None
    };
    let payload = &img[hs..hs + size];
    let plain_len = outcome.output_len; // upper bound is enough for the capacity
    let decomp = {
        // DECOMP_SIZE: the plain payload = the plain image minus header and TLVs.
        let mut d = 0;
        let mut o = hs + size + 4;
        let end = hs + size + usize::from(u16::from_le_bytes([img[10], img[11]]));
        while o < end {
            let k = u16::from_le_bytes([img[o], img[o + 1]]);
            let l = usize::from(u16::from_le_bytes([img[o + 2], img[o + 3]]));
            if k == 0x70 {
                d = u32::from_le_bytes(img[o + 4..o + 8].try_into().unwrap());
            }
            o += 4 + l;
        }
        d
    };
    assert!(decomp <= plain_len);
    for (w, st) in [
        (1024, payload_reads::<1024, 512>(payload, filter, decomp)),
        (4096, payload_reads::<4096, 256>(payload, filter, decomp)),
        (16384, payload_reads::<16384, 256>(payload, filter, decomp)),
    ] {
        println!(
            "window {w:>5} B: {} read-backs, {} B read back",
            st.reads, st.bytes_read
        );
    }
}
