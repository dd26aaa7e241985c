//! The nRF52840 PPI, register level: nRF52840 Product Specification v1.7, section 6.16 (PPI),
//! with its pre-programmed channels 20–31 (table "Pre-programmed channels").
//!
//! A channel connects an event register (EEP) to a task register (TEP), both absolute
//! addresses. While the channel is enabled (CHEN), each time the event comes the task is
//! triggered, in the same 16 MHz clock cycle as far as this model is concerned (the PS gives
//! one cycle of synchronisation). [`Ppi::tasks_of`] says which tasks an event triggers; whoever
//! holds the peripherals ([`crate::radio_bus`]) delivers them.
//!
//! - CHEN, CHENSET, CHENCLR; CH\[n\].EEP / CH\[n\].TEP for the programmable channels 0–19.
//! - Channels 20–31 are fixed in hardware ([`FIXED`]); their EEP/TEP are not registers.
//! - Only endpoints this emulation models may be connected: an enabled channel whose EEP or TEP
//!   is anything else (AAR, CCM, RTC0, an unset 0 ...) is refused with the channel named,
//!   at the CHEN/CHENSET write that enables it or the EEP/TEP write that changes an enabled
//!   one, since the hardware would then trigger or wait for something the emulation never
//!   does. [`Ppi::new`] takes the list of known endpoints.
//! - Channel groups (CHG, TASKS_CHG) and FORK are refused (not modelled).
//!
//! Any other offset is [`PpiError::Unknown`].

/// PPI base address on the nRF52840.
pub const PPI_BASE: u32 = 0x4001_F000;
/// TIMER0 base address.
pub const TIMER0_BASE: u32 = 0x4000_8000;
/// RADIO base address.
pub const RADIO_BASE: u32 = 0x4000_1000;
/// RTC0, AAR and CCM base addresses (endpoints of fixed channels this emulation does not
/// model).
pub const RTC0_BASE: u32 = 0x4000_B000;
pub const AAR_BASE: u32 = 0x4000_F000;
pub const CCM_BASE: u32 = 0x4000_F000;

/// Programmable channels.
pub const PROGRAMMABLE: usize = 20;

/// The pre-programmed channels 20–31: (EEP, TEP), PS v1.7 table "Pre-programmed channels".
pub const FIXED: [(u32, u32); 12] = [
    // 20: TIMER0 COMPARE[0] -> RADIO TXEN
    (TIMER0_BASE + 0x140, RADIO_BASE),
    // 21: TIMER0 COMPARE[0] -> RADIO RXEN
    (TIMER0_BASE + 0x140, RADIO_BASE + 0x004),
    // 22: TIMER0 COMPARE[1] -> RADIO DISABLE
    (TIMER0_BASE + 0x144, RADIO_BASE + 0x010),
    // 23: RADIO BCMATCH -> AAR START
    (RADIO_BASE + 0x128, AAR_BASE),
    // 24: RADIO READY -> CCM KSGEN
    (RADIO_BASE + 0x100, CCM_BASE),
    // 25: RADIO ADDRESS -> CCM CRYPT
    (RADIO_BASE + 0x104, CCM_BASE + 0x004),
    // 26: RADIO ADDRESS -> TIMER0 CAPTURE[1]
    (RADIO_BASE + 0x104, TIMER0_BASE + 0x044),
    // 27: RADIO END -> TIMER0 CAPTURE[2]
    (RADIO_BASE + 0x10C, TIMER0_BASE + 0x048),
    // 28: RTC0 COMPARE[0] -> RADIO TXEN
    (RTC0_BASE + 0x140, RADIO_BASE),
    // 29: RTC0 COMPARE[0] -> RADIO RXEN
    (RTC0_BASE + 0x140, RADIO_BASE + 0x004),
    // 30: RTC0 COMPARE[0] -> TIMER0 CLEAR
    (RTC0_BASE + 0x140, TIMER0_BASE + 0x00C),
    // 31: RTC0 COMPARE[0] -> TIMER0 START
    (RTC0_BASE + 0x140, TIMER0_BASE),
];

/// Why a PPI access is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PpiError {
    /// An offset the model does not know.
    Unknown,
    /// A value or feature the model does not support.
    Unsupported(&'static str, u32),
    /// Channel `channel` enabled with an endpoint the emulation does not model.
    Endpoint { channel: u8, eep: u32, tep: u32 },
}

/// The PPI.
#[derive(Clone, Debug)]
pub struct Ppi {
    chen: u32,
    eep: [u32; PROGRAMMABLE],
    tep: [u32; PROGRAMMABLE],
    events: fn(u32) -> bool,
    tasks: fn(u32) -> bool,
}

impl Ppi {
    /// Reset state (every channel off); `events` and `tasks` say which event and task
    /// registers the emulation models.
    pub fn new(events: fn(u32) -> bool, tasks: fn(u32) -> bool) -> Self {
        Ppi {
            chen: 0,
            eep: [0; PROGRAMMABLE],
            tep: [0; PROGRAMMABLE],
            events,
            tasks,
        }
    }

    /// Channel `n`'s (EEP, TEP).
    pub fn endpoints(&self, n: usize) -> (u32, u32) {
        if n < PROGRAMMABLE {
            (self.eep[n], self.tep[n])
        } else {
            FIXED[n - PROGRAMMABLE]
        }
    }

    /// The enabled channels (CHEN).
    pub fn enabled(&self) -> u32 {
        self.chen
    }

    /// The tasks the event register `eep` triggers now, in channel order.
    pub fn tasks_of(&self, eep: u32) -> impl Iterator<Item = u32> + '_ {
        (0..32)
            .filter(|&n| self.chen & (1 << n) != 0)
            .map(|n| self.endpoints(n))
            .filter(move |&(e, _)| e == eep)
            .map(|(_, t)| t)
    }

    /// Whether any enabled channel starts at event register `eep`.
    pub fn routes(&self, eep: u32) -> bool {
        self.tasks_of(eep).next().is_some()
    }

    fn set_chen(&mut self, chen: u32) -> Result<(), PpiError> {
        for n in 0..32 {
            if chen & (1 << n) != 0 {
                let (eep, tep) = self.endpoints(n);
                if !(self.events)(eep) || !(self.tasks)(tep) {
                    return Err(PpiError::Endpoint {
                        channel: n as u8,
                        eep,
                        tep,
                    });
                }
            }
        }
        self.chen = chen;
        Ok(())
    }

    pub fn read(&self, offset: u32) -> Result<u32, PpiError> {
        Ok(match offset {
            0x500 | 0x504 | 0x508 => self.chen,
            0x510..=0x5AC => {
                let n = ((offset - 0x510) / 8) as usize;
                if offset & 4 == 0 {
                    self.eep[n]
                } else {
                    self.tep[n]
                }
            }
            0x800..=0x814 | 0x910..=0x98C => 0,
            _ => return Err(PpiError::Unknown),
        })
    }

    pub fn write(&mut self, offset: u32, value: u32) -> Result<(), PpiError> {
        match offset {
            0x500 => self.set_chen(value)?,
            0x504 => self.set_chen(self.chen | value)?,
            0x508 => self.chen &= !value,
            0x510..=0x5AC => {
                let n = ((offset - 0x510) / 8) as usize;
                let (old_e, old_t) = (self.eep[n], self.tep[n]);
                if offset & 4 == 0 {
                    self.eep[n] = value;
                } else {
                    self.tep[n] = value;
                }
                if let Err(e) = self.set_chen(self.chen) {
                    (self.eep[n], self.tep[n]) = (old_e, old_t);
                    return Err(e);
                }
            }
            0x000..=0x02C if value & 1 != 0 => {
                return Err(PpiError::Unsupported(
                    "PPI TASKS_CHG (channel groups are not modelled)",
                    offset,
                ))
            }
            0x000..=0x02C => {}
            0x800..=0x814 | 0x910..=0x98C if value == 0 => {}
            0x800..=0x814 => {
                return Err(PpiError::Unsupported(
                    "PPI CHG (channel groups are not modelled)",
                    value,
                ))
            }
            0x910..=0x98C => {
                return Err(PpiError::Unsupported("PPI FORK TEP (not modelled)", value))
            }
            _ => return Err(PpiError::Unknown),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn radio_and_timer0(addr: u32) -> bool {
        addr & !0xFFF == RADIO_BASE || addr & !0xFFF == TIMER0_BASE
    }

    fn ppi() -> Ppi {
        Ppi::new(radio_and_timer0, radio_and_timer0)
    }

    #[test]
    fn the_fixed_channels_aux_radio_uses_route_as_the_ps_says() {
        let mut p = ppi();
        p.write(0x504, (1 << 21) | (1 << 22) | (1 << 26)).unwrap();
        assert_eq!(p.read(0x500), Ok((1 << 21) | (1 << 22) | (1 << 26)));
        let compare0: Vec<u32> = p.tasks_of(TIMER0_BASE + 0x140).collect();
        assert_eq!(compare0, vec![RADIO_BASE + 0x004], "RXEN only (20 is off)");
        let compare1: Vec<u32> = p.tasks_of(TIMER0_BASE + 0x144).collect();
        assert_eq!(compare1, vec![RADIO_BASE + 0x010]);
        let address: Vec<u32> = p.tasks_of(RADIO_BASE + 0x104).collect();
        assert_eq!(address, vec![TIMER0_BASE + 0x044]);
        assert!(!p.routes(RADIO_BASE + 0x10C), "27 is off");
        p.write(0x508, 1 << 22).unwrap();
        assert!(!p.routes(TIMER0_BASE + 0x144));
        assert_eq!(p.read(0x504), Ok((1 << 21) | (1 << 26)));
    }

    #[test]
    fn programmable_channels_route_what_they_name() {
        let mut p = ppi();
        p.write(0x510 + 8 * 3, RADIO_BASE + 0x10C).unwrap();
        p.write(0x514 + 8 * 3, TIMER0_BASE + 0x04C).unwrap();
        p.write(0x500, 1 << 3).unwrap();
        assert_eq!(
            p.tasks_of(RADIO_BASE + 0x10C).collect::<Vec<_>>(),
            vec![TIMER0_BASE + 0x04C]
        );
        assert_eq!(p.read(0x514 + 8 * 3), Ok(TIMER0_BASE + 0x04C));
    }

    #[test]
    fn endpoints_not_modelled_groups_and_forks_are_refused() {
        let mut p = ppi();
        // 23 (AAR), 24/25 (CCM) and 28-31 (RTC0) connect blocks the emulation lacks.
        for ch in [23, 24, 25, 28, 29, 30, 31] {
            assert!(
                matches!(p.write(0x504, 1 << ch), Err(PpiError::Endpoint { channel, .. }) if channel == ch),
                "{ch}"
            );
        }
        assert_eq!(p.read(0x500), Ok(0), "nothing enabled by a refused write");
        // A programmable channel with no endpoints.
        assert!(matches!(
            p.write(0x504, 1),
            Err(PpiError::Endpoint { channel: 0, .. })
        ));
        // Changing an enabled channel's endpoint to one not modelled.
        p.write(0x510, RADIO_BASE + 0x104).unwrap();
        p.write(0x514, TIMER0_BASE + 0x040).unwrap();
        p.write(0x504, 1).unwrap();
        assert!(p.write(0x514, RTC0_BASE).is_err());
        assert_eq!(p.read(0x514), Ok(TIMER0_BASE + 0x040), "kept");
        assert!(p.write(0x800, 1).is_err());
        assert!(p.write(0x910, RADIO_BASE).is_err());
        assert!(p.write(0x000, 1).is_err());
        assert_eq!(p.read(0x600), Err(PpiError::Unknown));
    }
}
