//! UARTE (UART with EasyDMA), register level: nRF52840 Product Specification v1.7, section
//! 6.34. Tock's console runs on UARTE0 (`chips/nrf52/src/uart.rs`).
//!
//! - Transmit: TASKS_STARTTX with ENABLE = 8 reads TXD.MAXCNT bytes from TXD.PTR by EasyDMA
//!   (data RAM only, PS 6.34.2 and 3.5 "EasyDMA") and raises TXSTARTED at once and ENDTX when the
//!   last byte has left the shifter: 10 bit times per byte (8N1, CONFIG.PARITY and STOP are
//!   refused otherwise) at the rate BAUDRATE sets. TXD.AMOUNT is then MAXCNT. The bytes go to [`Uarte::tx_log`]
//!   (the run's console).
//! - TASKS_STOPTX raises TXSTOPPED (and ENDTX for a transfer cut short, with the bytes sent so
//!   far in TXD.AMOUNT).
//! - Receive: no byte ever arrives (the console input is not modelled): TASKS_STARTRX raises
//!   RXSTARTED, TASKS_STOPRX raises RXTO and ENDRX with RXD.AMOUNT = 0.
//! - Event n sits at 0x100 + 4n and its INTEN bit is n; the interrupt line is high while an
//!   event whose INTEN bit is set is raised.

/// Bit rate of a BAUDRATE value: the baud generator adds BAUDRATE to a 32-bit accumulator at
/// 16 MHz, so the rate is BAUDRATE × 16 MHz / 2^32 (the values the PS lists follow this, and
/// Tock writes the UART table's 0x01D7E000 for 115,200 baud: 115,203 baud).
fn bit_rate(baudrate: u32) -> f64 {
    f64::from(baudrate) * 16e6 / 4_294_967_296.0
}

const EV_RXSTARTED: u32 = 19;
const EV_TXSTARTED: u32 = 20;
const EV_TXSTOPPED: u32 = 22;
const EV_ENDTX: u32 = 8;
const EV_ENDRX: u32 = 4;
const EV_RXTO: u32 = 17;
const EVENT_MASK: u32 = (1 << 0)
    | (1 << 1)
    | (1 << 2)
    | (1 << 4)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 17)
    | (1 << 19)
    | (1 << 20)
    | (1 << 22);

/// Why a UARTE access is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UarteError {
    /// A register the model does not know.
    Unknown,
    /// An EasyDMA or configuration rule broken (what, value).
    Rule(&'static str, u32),
}

/// One UARTE instance.
#[derive(Clone, Debug, Default)]
pub struct Uarte {
    events: u32,
    inten: u32,
    shorts: u32,
    enable: u32,
    psel: [u32; 4],
    baudrate: u32,
    config: u32,
    rxd: [u32; 2],
    rxd_amount: u32,
    txd: [u32; 2],
    txd_amount: u32,
    errorsrc: u32,
    /// A transmission in progress: (start µs, byte count, µs per byte).
    tx: Option<(u64, u32, f64)>,
    /// Everything transmitted since reset.
    pub tx_log: Vec<u8>,
}

impl Uarte {
    /// Reset state.
    pub fn new() -> Self {
        Uarte {
            psel: [0xFFFF_FFFF; 4],
            baudrate: 0x0400_0000,
            ..Default::default()
        }
    }

    /// The transfer a STARTTX write would read: (RAM address, length), or `None` for any other
    /// write. The caller reads the bytes from emulator memory and passes them to [`Uarte::write`].
    pub fn dma_source(&self, offset: u32, value: u32) -> Option<(u32, u32)> {
        (offset == 0x008 && value & 1 != 0 && self.enable == 8)
            .then_some((self.txd[0], self.txd[1] & 0xFFFF))
    }

    fn finish_tx(&mut self, now_us: u64) {
        if let Some((start, n, per)) = self.tx {
            if now_us as f64 >= start as f64 + per * f64::from(n) {
                self.tx = None;
                self.txd_amount = n;
                self.events |= 1 << EV_ENDTX;
            }
        }
    }

    /// Reads the register at `offset`.
    pub fn read(&mut self, offset: u32, now_us: u64) -> Result<u32, UarteError> {
        self.finish_tx(now_us);
        Ok(match offset {
            0x100..=0x15C => {
                let n = (offset - 0x100) / 4;
                if EVENT_MASK & (1 << n) == 0 {
                    return Err(UarteError::Unknown);
                }
                (self.events >> n) & 1
            }
            0x200 => self.shorts,
            0x300 | 0x304 | 0x308 => self.inten,
            0x480 => self.errorsrc,
            0x500 => self.enable,
            0x508..=0x514 => self.psel[((offset - 0x508) / 4) as usize],
            0x524 => self.baudrate,
            0x534 | 0x538 => self.rxd[((offset - 0x534) / 4) as usize],
            0x53C => self.rxd_amount,
            0x544 | 0x548 => self.txd[((offset - 0x544) / 4) as usize],
            0x54C => self.txd_amount,
            0x56C => self.config,
            _ => return Err(UarteError::Unknown),
        })
    }

    /// Writes the register at `offset`; `tx_bytes` are the bytes [`Uarte::dma_source`] named,
    /// read by the caller, for a STARTTX.
    pub fn write(
        &mut self,
        offset: u32,
        value: u32,
        tx_bytes: Option<&[u8]>,
        now_us: u64,
    ) -> Result<(), UarteError> {
        self.finish_tx(now_us);
        match offset {
            0x000 if value & 1 != 0 => {
                self.need_enabled()?;
                self.events |= 1 << EV_RXSTARTED;
            }
            0x004 if value & 1 != 0 => {
                self.rxd_amount = 0;
                self.events |= (1 << EV_RXTO) | (1 << EV_ENDRX);
            }
            0x008 if value & 1 != 0 => self.start_tx(tx_bytes, now_us)?,
            0x00C if value & 1 != 0 => {
                if let Some((start, n, per)) = self.tx.take() {
                    let sent = ((now_us.saturating_sub(start)) as f64 / per) as u32;
                    self.txd_amount = sent.min(n);
                    self.events |= 1 << EV_ENDTX;
                }
                self.events |= 1 << EV_TXSTOPPED;
            }
            0x02C if value & 1 != 0 => {
                self.rxd_amount = 0;
                self.events |= 1 << EV_ENDRX;
            }
            0x000..=0x00C | 0x02C => {}
            0x100..=0x15C => {
                let n = (offset - 0x100) / 4;
                if EVENT_MASK & (1 << n) == 0 {
                    return Err(UarteError::Unknown);
                }
                if value & 1 == 0 {
                    self.events &= !(1 << n);
                } else {
                    self.events |= 1 << n;
                }
            }
            0x200 => self.shorts = value & ((1 << 5) | (1 << 6)),
            0x300 => self.inten = value & EVENT_MASK,
            0x304 => self.inten |= value & EVENT_MASK,
            0x308 => self.inten &= !(value & EVENT_MASK),
            0x480 => self.errorsrc &= !value,
            0x500 => {
                if value != 0 && value != 8 {
                    return Err(UarteError::Rule("ENABLE must be 0 or 8 (UARTE)", value));
                }
                self.enable = value;
            }
            0x508..=0x514 => self.psel[((offset - 0x508) / 4) as usize] = value,
            0x524 => {
                if bit_rate(value) < 1000.0 {
                    return Err(UarteError::Rule("BAUDRATE below 1,000 baud", value));
                }
                self.baudrate = value;
            }
            0x534 | 0x538 => self.rxd[((offset - 0x534) / 4) as usize] = value,
            0x544 | 0x548 => self.txd[((offset - 0x544) / 4) as usize] = value,
            0x56C => {
                if value & !0x1 != 0 {
                    return Err(UarteError::Rule(
                        "CONFIG other than 8N1 with or without HWFC",
                        value,
                    ));
                }
                self.config = value;
            }
            _ => return Err(UarteError::Unknown),
        }
        Ok(())
    }

    fn need_enabled(&self) -> Result<(), UarteError> {
        if self.enable != 8 {
            return Err(UarteError::Rule("task while ENABLE is not 8", self.enable));
        }
        Ok(())
    }

    fn start_tx(&mut self, bytes: Option<&[u8]>, now_us: u64) -> Result<(), UarteError> {
        self.need_enabled()?;
        if self.tx.is_some() {
            return Err(UarteError::Rule("STARTTX while a transmission runs", 0));
        }
        let (ptr, cnt) = (self.txd[0], self.txd[1] & 0xFFFF);
        if !(crate::periph::RAM_START..crate::periph::RAM_START + crate::periph::RAM_SIZE)
            .contains(&ptr)
        {
            return Err(UarteError::Rule("TXD.PTR outside data RAM (EasyDMA)", ptr));
        }
        let bytes = bytes.ok_or(UarteError::Rule("TXD buffer unreadable", ptr))?;
        self.tx_log.extend_from_slice(&bytes[..cnt as usize]);
        self.events |= 1 << EV_TXSTARTED;
        self.tx = Some((now_us, cnt, 10.0 * 1e6 / bit_rate(self.baudrate)));
        self.finish_tx(now_us);
        Ok(())
    }

    /// Whether the interrupt line is high at `now_us`.
    pub fn irq(&mut self, now_us: u64) -> bool {
        self.finish_tx(now_us);
        self.events & self.inten != 0
    }

    /// When the running transmission ends (its ENDTX), for WFI to skip to.
    pub fn next_event_us(&self) -> Option<u64> {
        self.tx
            .map(|(start, n, per)| (start as f64 + per * f64::from(n)).ceil() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> Uarte {
        let mut u = Uarte::new();
        u.write(0x500, 8, None, 0).unwrap();
        u.write(0x524, 0x01D7_E000, None, 0).unwrap();
        u
    }

    #[test]
    fn transmits_from_ram_and_ends_after_ten_bit_times_per_byte() {
        let mut u = enabled();
        u.write(0x544, 0x2000_0100, None, 0).unwrap();
        u.write(0x548, 12, None, 0).unwrap();
        u.write(0x304, 1 << 8, None, 0).unwrap();
        assert_eq!(u.dma_source(0x008, 1), Some((0x2000_0100, 12)));
        u.write(0x008, 1, Some(b"dfu: hello\r\n"), 0).unwrap();
        assert_eq!(u.tx_log, b"dfu: hello\r\n");
        // 12 bytes at 115,203 baud: 1041.6 us.
        assert_eq!(u.next_event_us(), Some(1042));
        assert!(!u.irq(1041));
        assert!(u.irq(1042));
        assert_eq!(u.read(0x54C, 1042), Ok(12));
        u.write(0x120, 0, None, 1042).unwrap();
        assert!(!u.irq(1043));
    }

    #[test]
    fn easydma_from_flash_is_refused() {
        let mut u = enabled();
        u.write(0x544, 0x0001_0000, None, 0).unwrap();
        u.write(0x548, 4, None, 0).unwrap();
        assert!(matches!(
            u.write(0x008, 1, Some(b"abcd"), 0),
            Err(UarteError::Rule(..))
        ));
    }

    #[test]
    fn tasks_need_enable_and_unknown_registers_fail() {
        let mut u = Uarte::new();
        assert!(u.write(0x008, 1, Some(b""), 0).is_err());
        assert_eq!(u.read(0x104 + 0x8, 0), Err(UarteError::Unknown));
        assert_eq!(u.write(0x700, 0, None, 0), Err(UarteError::Unknown));
    }
}
