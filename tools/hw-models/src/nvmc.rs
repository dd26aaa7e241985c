//! Model of the nRF52840 internal flash and its NVMC; [`NvmcPeripheral`] implements
//! [`nrf52840_flash::NvmcPort`].
//!
//! - 1 MiB, 4 KiB pages, erased state 0xFF.
//! - Writes: 32-bit, word aligned only; at most 2 writes per word between erases (nWRITE);
//!   a word other than all-ones that needs a 0→1 transition is reported as `NotErased`.
//! - tWRITE 41 µs, tERASEPAGE 85 ms (Product Specification maxima); the CPU stalls, so the
//!   shared clock advances by the full duration.
//! - ACL: up to 8 regions (page aligned); a write-protected region rejects write and erase, a
//!   read-protected one rejects reads; the configuration is lost on reset.
//! - Wear: erase count per page; write count per word since its last erase.
//! - Faults: torn write = random subset of the word's 1→0 bits; torn erase = page neither old
//!   nor erased; optional read bit flips.

use std::sync::{Arc, Mutex, MutexGuard};

use nrf52840_flash::nvmc::{CAPACITY, PAGE_SIZE};
use nrf52840_flash::{FlashError, Misalignment, NvmcPort};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clock::SimClock;
use crate::power::{tear_erase, tear_program, OpFate, OpKind, Power};

/// The NVMC's figures (tWRITE, tERASEPAGE, nWRITE) and their limit, from the driver crate the
/// firmware uses.
pub use nrf52840_flash::nvmc::{erase_and_write_s, N_WRITE, T_ERASEPAGE_US, T_WRITE_US};
/// ACL regions of the nRF52840.
pub const ACL_REGIONS: usize = 8;

/// One ACL region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclRegion {
    pub addr: u32,
    pub size: u32,
    pub deny_write: bool,
    pub deny_read: bool,
}

/// Operation counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NvmcStats {
    pub word_writes: u64,
    pub page_erases: u64,
}

/// Internal flash + NVMC.
#[derive(Debug)]
pub struct InternalFlash {
    mem: Vec<u8>,
    word_writes: Vec<u8>,
    page_erases: Vec<u32>,
    acl: Vec<AclRegion>,
    read_flip_probability: f64,
    rng: ChaCha8Rng,
    clock: SimClock,
    power: Power,
    stats: NvmcStats,
}

impl InternalFlash {
    /// Erased flash, no ACL.
    pub fn new(clock: SimClock, power: Power, seed: u64) -> Self {
        InternalFlash {
            mem: vec![0xFF; CAPACITY as usize],
            word_writes: vec![0; (CAPACITY / 4) as usize],
            page_erases: vec![0; (CAPACITY / PAGE_SIZE) as usize],
            acl: Vec::new(),
            read_flip_probability: 0.0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x4E56_4D43),
            clock,
            power,
            stats: NvmcStats::default(),
        }
    }

    /// The stored bytes.
    pub fn raw(&self) -> &[u8] {
        &self.mem
    }

    /// Overwrites stored bytes directly (test setup; no timing, no rules, write counts kept).
    pub fn load(&mut self, addr: u32, data: &[u8]) {
        let a = addr as usize;
        self.mem[a..a + data.len()].copy_from_slice(data);
    }

    /// Erase count of the page containing `addr`.
    pub fn page_erase_count(&self, addr: u32) -> u32 {
        self.page_erases[(addr / PAGE_SIZE) as usize]
    }

    /// Writes to the word at `addr` since its page was last erased.
    pub fn word_write_count(&self, addr: u32) -> u8 {
        self.word_writes[(addr / 4) as usize]
    }

    /// Operation counters.
    pub fn stats(&self) -> NvmcStats {
        self.stats
    }

    /// Probability that a read returns one flipped bit (stored data intact).
    pub fn set_read_flip_probability(&mut self, p: f64) {
        self.read_flip_probability = p;
    }

    /// Configures an ACL region (locked until reset, like the hardware).
    pub fn protect(&mut self, region: AclRegion) -> Result<(), FlashError> {
        for v in [region.addr, region.size] {
            if v % PAGE_SIZE != 0 {
                return Err(FlashError::Misaligned {
                    what: Misalignment::EraseUnit,
                    value: v,
                });
            }
        }
        if u64::from(region.addr) + u64::from(region.size) > u64::from(CAPACITY) {
            return Err(FlashError::OutOfBounds {
                addr: region.addr,
                len: region.size,
                capacity: CAPACITY,
            });
        }
        if self.acl.len() >= ACL_REGIONS {
            return Err(FlashError::BadLength {
                len: ACL_REGIONS as u32 + 1,
                max: ACL_REGIONS as u32,
            });
        }
        self.acl.push(region);
        Ok(())
    }

    /// The configured ACL regions.
    pub fn acl(&self) -> &[AclRegion] {
        &self.acl
    }

    /// Reset: the ACL configuration is cleared; contents persist.
    pub fn power_cycle(&mut self) {
        self.acl.clear();
    }

    fn acl_denies(&self, addr: u32, write: bool) -> bool {
        self.acl.iter().any(|r| {
            addr >= r.addr
                && addr - r.addr < r.size
                && if write { r.deny_write } else { r.deny_read }
        })
    }

    fn bounds(addr: u32, len: usize) -> Result<(), FlashError> {
        if u64::from(addr) + len as u64 > u64::from(CAPACITY) {
            return Err(FlashError::OutOfBounds {
                addr,
                len: len as u32,
                capacity: CAPACITY,
            });
        }
        Ok(())
    }

    /// Memory-mapped read.
    pub fn read(&mut self, addr: u32, out: &mut [u8]) -> Result<(), FlashError> {
        self.power.check_on()?;
        Self::bounds(addr, out.len())?;
        if let Some(i) = (0..out.len()).find(|&i| self.acl_denies(addr + i as u32, false)) {
            return Err(FlashError::AclProtected {
                addr: addr + i as u32,
            });
        }
        out.copy_from_slice(&self.mem[addr as usize..addr as usize + out.len()]);
        if self.read_flip_probability > 0.0
            && !out.is_empty()
            && self.rng.gen_bool(self.read_flip_probability.min(1.0))
        {
            let bit = self.rng.gen_range(0..out.len() * 8);
            out[bit / 8] ^= 1 << (bit % 8);
        }
        Ok(())
    }

    /// One 32-bit write (CONFIG = WEN).
    pub fn write_word(&mut self, addr: u32, word: u32) -> Result<(), FlashError> {
        self.power.check_on()?;
        if !addr.is_multiple_of(4) {
            return Err(FlashError::Misaligned {
                what: Misalignment::NvmcWord,
                value: addr,
            });
        }
        Self::bounds(addr, 4)?;
        if self.acl_denies(addr, true) {
            return Err(FlashError::AclProtected { addr });
        }
        let a = addr as usize;
        let old = u32::from_le_bytes(self.mem[a..a + 4].try_into().expect("4 bytes"));
        if word != u32::MAX && word & !old != 0 {
            return Err(FlashError::NotErased { addr });
        }
        if self.word_writes[a / 4] >= N_WRITE {
            return Err(FlashError::WriteLimitExceeded { addr });
        }
        let fate = self.power.begin_op(OpKind::NvmcWrite)?;
        self.word_writes[a / 4] += 1;
        self.stats.word_writes += 1;
        let mut new = (old & word).to_le_bytes();
        if fate == OpFate::Torn {
            tear_program(&self.power, &old.to_le_bytes(), &mut new);
            self.mem[a..a + 4].copy_from_slice(&new);
            self.clock.advance_us(self.power.random_u64() % T_WRITE_US);
            return Err(FlashError::PowerLost);
        }
        self.mem[a..a + 4].copy_from_slice(&new);
        self.clock.advance_us(T_WRITE_US);
        Ok(())
    }

    /// One page erase (CONFIG = EEN, ERASEPAGE).
    pub fn erase_page(&mut self, addr: u32) -> Result<(), FlashError> {
        self.power.check_on()?;
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(FlashError::Misaligned {
                what: Misalignment::EraseUnit,
                value: addr,
            });
        }
        Self::bounds(addr, PAGE_SIZE as usize)?;
        if self.acl_denies(addr, true) {
            return Err(FlashError::AclProtected { addr });
        }
        let fate = self.power.begin_op(OpKind::NvmcErase)?;
        let a = addr as usize;
        let p = PAGE_SIZE as usize;
        self.page_erases[a / p] += 1;
        self.stats.page_erases += 1;
        if fate == OpFate::Torn {
            let before = self.mem[a..a + p].to_vec();
            tear_erase(&self.power, &before, &mut self.mem[a..a + p]);
            // The erase pulse started: the write budget of every word restarts.
            self.word_writes[a / 4..(a + p) / 4].fill(0);
            self.clock
                .advance_us(self.power.random_u64() % T_ERASEPAGE_US);
            return Err(FlashError::PowerLost);
        }
        self.mem[a..a + p].fill(0xFF);
        self.word_writes[a / 4..(a + p) / 4].fill(0);
        self.clock.advance_us(T_ERASEPAGE_US);
        Ok(())
    }
}

/// The NVMC as seen by the driver (the host-side `NvmcPort`).
#[derive(Debug, Clone)]
pub struct NvmcPeripheral {
    flash: Arc<Mutex<InternalFlash>>,
}

impl NvmcPeripheral {
    /// A port over `flash`.
    pub fn new(flash: Arc<Mutex<InternalFlash>>) -> Self {
        NvmcPeripheral { flash }
    }

    /// The model behind the port.
    pub fn flash(&self) -> MutexGuard<'_, InternalFlash> {
        self.flash.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl NvmcPort for NvmcPeripheral {
    fn read(&mut self, addr: u32, dst: &mut [u8]) -> Result<(), FlashError> {
        self.flash().read(addr, dst)
    }

    fn write_word(&mut self, addr: u32, word: u32) -> Result<(), FlashError> {
        self.flash().write_word(addr, word)
    }

    fn erase_page(&mut self, addr: u32) -> Result<(), FlashError> {
        self.flash().erase_page(addr)
    }
}
