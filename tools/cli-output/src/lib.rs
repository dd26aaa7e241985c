//! Standard output for `tock-ota`'s subcommands, in whichever product crate they live.
//! `println!` panics when stdout is closed early (`tock-ota inspect image.bin | head -3`); these
//! end the program quietly instead, as a command killed by SIGPIPE would, and report any other
//! write error.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Write};

/// Writes `args` to stdout; on failure ends the program (see the module docs).
pub fn write(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        failed(e)
    }
}

/// [`write`] and a newline.
pub fn write_line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        failed(e)
    }
}

fn failed(e: io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: writing to stdout: {e}");
    std::process::exit(1);
}

/// `print!` through [`write`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write(format_args!($($arg)*))
    };
}

/// `println!` through [`write_line`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::write_line(format_args!($($arg)*))
    };
}
