//! Which advertising bearer carries the AdvData, chosen from what the controller offers
//! (`docs/hci.md`, "Bearers"):
//!
//! - **legacy**: 31 bytes per advertising event on the primary channels (ADV_NONCONN_IND and
//!   friends, from an extended set with legacy PDUs or the legacy commands);
//! - **extended**: a non-connectable, non-scannable extended set (ADV_EXT_IND pointing to
//!   AUX_ADV_IND and its AUX_CHAIN_IND on a secondary channel, 1M or 2M PHY) carrying up to the
//!   controller's maximum AdvData per event;
//! - **periodic**: a periodic advertising train on top of such a set (the set's SyncInfo lets a
//!   scanner synchronise), its AdvData replaced while the train runs.
use adv_transfer::bearer::BearerSet;

use crate::hci::{Capabilities, Controller, LEGACY_ADV_DATA_MAX};
use crate::Error;

pub use adv_transfer::bearer::{Bearer, Phy};

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BearerChoice {
    #[default]
    Legacy,
    Extended,
    Periodic,
    /// The best the controller offers: periodic, else extended, else legacy; 2M PHY when the
    /// controller has it.
    Auto,
}

impl std::str::FromStr for BearerChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "legacy" => Ok(BearerChoice::Legacy),
            "extended" => Ok(BearerChoice::Extended),
            "periodic" => Ok(BearerChoice::Periodic),
            "auto" => Ok(BearerChoice::Auto),
            _ => Err(format!(
                "unknown bearer `{s}` (legacy, extended, periodic, auto)"
            )),
        }
    }
}

/// The most AdvData one LE Set Extended Advertising Data command carries (its
/// Advertising_Data_Length is at most 251; Core Vol 4, Part E, 7.8.54).
pub const EXT_FRAGMENT_MAX: usize = 251;
/// The most AdvData one LE Set Periodic Advertising Data command carries (at most 252; Core
/// Vol 4, Part E, 7.8.62). While the train runs only a whole ("complete") update is allowed,
/// so this is also the periodic bearer's AdvData limit: a longer one would need the train
/// stopped between updates, which drops every receiver's sync.
pub const PERIODIC_UPDATE_MAX: usize = 252;

/// The most AdvData one advertising event of `bearer` carries on a controller with `caps`
/// (the protocol's per-event figure, [`Bearer::adv_data_per_event`], within what the controller
/// takes and, for a running periodic train, one whole update).
pub fn max_adv_data(bearer: Bearer, caps: &Capabilities) -> usize {
    let controller = caps.max_adv_data_len as usize;
    match bearer {
        Bearer::Legacy => LEGACY_ADV_DATA_MAX as usize,
        Bearer::Extended(_) => controller.min(bearer.adv_data_per_event()),
        Bearer::Periodic(_) => controller
            .min(bearer.adv_data_per_event())
            .min(PERIODIC_UPDATE_MAX),
    }
}

/// The bearer's kind as `--bearer` spells it.
pub fn kind(bearer: Bearer) -> &'static str {
    match bearer {
        Bearer::Legacy => "legacy",
        Bearer::Extended(_) => "extended",
        Bearer::Periodic(_) => "periodic",
    }
}

/// A bearer the controller cannot carry: the feature it lacks, as the Core spec names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsupported {
    pub bearer: &'static str,
    pub missing: &'static str,
}

const NO_EXT: &str = "LE Extended Advertising (LE feature bit 12)";
const NO_PERIODIC: &str = "LE Periodic Advertising (LE feature bit 13)";
/// AdvData one transfer PDU of a chained bearer needs: the largest data PDU in its AD structure.
pub const PDU_ROOM: usize = adv_transfer::wire::AD_OVERHEAD + adv_transfer::bearer::DATA_PDU_MAX;
const NO_ROOM: &str = "room for one transfer PDU in its advertising data (LE Read Maximum \
                       Advertising Data Length under 234 bytes)";

/// The bearer for `choice` on a controller with `caps`; extended and periodic go on the 2M
/// PHY when the controller has it (`phy` forces one; 2M on a controller without it is refused).
pub fn choose(
    caps: &Capabilities,
    choice: BearerChoice,
    phy: Option<Phy>,
) -> Result<Bearer, Unsupported> {
    let pick_phy = |bearer: &'static str| match phy {
        Some(Phy::Le2M) if !caps.le_2m_phy => Err(Unsupported {
            bearer,
            missing: "LE 2M PHY (LE feature bit 8)",
        }),
        Some(p) => Ok(p),
        None if caps.le_2m_phy => Ok(Phy::Le2M),
        None => Ok(Phy::Le1M),
    };
    let room = caps.max_adv_data_len as usize >= PDU_ROOM;
    let kind_of = |c| match c {
        BearerChoice::Periodic => "periodic",
        _ => "extended",
    };
    match choice {
        BearerChoice::Legacy => Ok(Bearer::Legacy),
        BearerChoice::Extended | BearerChoice::Periodic if !caps.extended_advertising => {
            Err(Unsupported {
                bearer: kind_of(choice),
                missing: NO_EXT,
            })
        }
        BearerChoice::Periodic if !caps.periodic_advertising => Err(Unsupported {
            bearer: "periodic",
            missing: NO_PERIODIC,
        }),
        BearerChoice::Extended | BearerChoice::Periodic if !room => Err(Unsupported {
            bearer: kind_of(choice),
            missing: NO_ROOM,
        }),
        BearerChoice::Extended => Ok(Bearer::Extended(pick_phy("extended")?)),
        BearerChoice::Periodic => Ok(Bearer::Periodic(pick_phy("periodic")?)),
        BearerChoice::Auto if !room => Ok(Bearer::Legacy),
        BearerChoice::Auto if caps.periodic_advertising => {
            Ok(Bearer::Periodic(pick_phy("periodic")?))
        }
        BearerChoice::Auto if caps.extended_advertising => {
            Ok(Bearer::Extended(pick_phy("extended")?))
        }
        BearerChoice::Auto => Ok(Bearer::Legacy),
    }
}

/// The bearers a sender offers the receiver for `choice` on a controller with `caps` (legacy
/// is always among them): `auto` offers every bearer the controller has, so the receiver picks
/// the fastest both follow; a named bearer offers that one ([`choose`] checked it).
pub fn offers(caps: &Capabilities, choice: BearerChoice, chosen: Bearer) -> BearerSet {
    if choice != BearerChoice::Auto {
        return BearerSet::of(&[chosen]);
    }
    let mut set = BearerSet::LEGACY;
    for b in Bearer::ALL {
        let phy_ok = b.phy() == Phy::Le1M || caps.le_2m_phy;
        let ok = match b {
            Bearer::Legacy => true,
            Bearer::Extended(_) => caps.extended_advertising && phy_ok,
            Bearer::Periodic(_) => caps.periodic_advertising && phy_ok,
        };
        if ok {
            set = set.with(b);
        }
    }
    set
}

/// An event's AdvData cut at AD-structure boundaries into pieces of at most `max` bytes, each
/// carried by one advertising event (a controller that takes less than the protocol's event,
/// or a running periodic train, which takes one whole update of at most 252 bytes). `None`
/// if a structure is longer than `max` or runs past the end.
pub fn ad_groups(data: &[u8], max: usize) -> Option<Vec<&[u8]>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < data.len() {
        let end = at + 1 + data[at] as usize;
        if end > data.len() || end - at > max {
            return None;
        }
        if end - start > max {
            groups.push(&data[start..at]);
            start = at;
        }
        at = end;
    }
    if start < data.len() || groups.is_empty() {
        groups.push(&data[start..]);
    }
    Some(groups)
}

/// [`choose`] for the controller `hci`, its refusal as an [`Error`] naming the transport.
pub fn choose_for(
    hci: &Controller,
    choice: BearerChoice,
    phy: Option<Phy>,
) -> Result<Bearer, Error> {
    choose(&hci.capabilities(), choice, phy).map_err(|u| Error::BearerUnsupported {
        transport: hci.transport().to_string(),
        bearer: u.bearer,
        missing: u.missing,
    })
}

/// `data` cut into the LE Set Extended Advertising Data (or Periodic Advertising Data)
/// operations that carry it: one "complete" when it fits `fragment`, else first,
/// intermediate…, last. Empty data is one empty "complete".
pub fn fragments(data: &[u8], fragment: usize) -> Vec<(bt_hci::param::Operation, &[u8])> {
    use bt_hci::param::Operation as Op;
    let fragment = fragment.max(1);
    if data.len() <= fragment {
        return vec![(Op::Complete, data)];
    }
    let pieces: Vec<&[u8]> = data.chunks(fragment).collect();
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let op = match i {
                0 => Op::FirstFragment,
                i if i == last => Op::LastFragment,
                _ => Op::IntermediateFragment,
            };
            (op, p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bt_hci::param::Operation as Op;

    fn caps(ext: bool, periodic: bool, two_m: bool, max: u16) -> Capabilities {
        Capabilities {
            extended_advertising: ext,
            extended_scanning: ext,
            extended_commands_listed: ext,
            periodic_advertising: periodic,
            periodic_commands_listed: periodic,
            le_2m_phy: two_m,
            max_adv_data_len: max,
        }
    }

    #[test]
    fn auto_picks_the_best_bearer_and_phy_the_controller_offers() {
        let everything = caps(true, true, true, 1650);
        assert_eq!(
            choose(&everything, BearerChoice::Auto, None),
            Ok(Bearer::Periodic(Phy::Le2M))
        );
        assert_eq!(
            choose(&caps(true, false, false, 1650), BearerChoice::Auto, None),
            Ok(Bearer::Extended(Phy::Le1M))
        );
        assert_eq!(
            choose(&caps(false, false, true, 31), BearerChoice::Auto, None),
            Ok(Bearer::Legacy)
        );
        assert_eq!(
            choose(&everything, BearerChoice::Extended, Some(Phy::Le1M)),
            Ok(Bearer::Extended(Phy::Le1M))
        );
        assert_eq!(
            choose(&everything, BearerChoice::Legacy, None),
            Ok(Bearer::Legacy)
        );
    }

    #[test]
    fn a_bearer_the_controller_lacks_names_the_missing_feature() {
        let legacy_only = caps(false, false, false, 31);
        let e = choose(&legacy_only, BearerChoice::Extended, None).unwrap_err();
        assert_eq!(e.bearer, "extended");
        assert!(e.missing.contains("Extended Advertising"), "{e:?}");
        let e = choose(&legacy_only, BearerChoice::Periodic, None).unwrap_err();
        assert!(e.missing.contains("Extended Advertising"), "{e:?}");
        let e = choose(&caps(true, false, true, 1650), BearerChoice::Periodic, None).unwrap_err();
        assert_eq!(e.bearer, "periodic");
        assert!(e.missing.contains("Periodic Advertising"), "{e:?}");
        let e = choose(
            &caps(true, true, false, 1650),
            BearerChoice::Periodic,
            Some(Phy::Le2M),
        )
        .unwrap_err();
        assert!(e.missing.contains("2M PHY"), "{e:?}");
    }

    #[test]
    fn each_bearer_carries_what_the_controller_and_the_spec_allow() {
        let c = caps(true, true, true, 1650);
        assert_eq!(max_adv_data(Bearer::Legacy, &c), 31);
        assert_eq!(max_adv_data(Bearer::Extended(Phy::Le2M), &c), 1650);
        assert_eq!(max_adv_data(Bearer::Periodic(Phy::Le2M), &c), 252);
        let small = caps(true, true, true, 240);
        assert_eq!(max_adv_data(Bearer::Extended(Phy::Le1M), &small), 240);
        assert_eq!(max_adv_data(Bearer::Periodic(Phy::Le1M), &small), 240);
    }

    #[test]
    fn fragments_cover_the_data_in_order_with_the_right_operations() {
        let data: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let f = fragments(&data, 251);
        let ops: Vec<Op> = f.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            ops,
            [
                Op::FirstFragment,
                Op::IntermediateFragment,
                Op::LastFragment
            ]
        );
        assert_eq!(
            f.iter().map(|(_, p)| p.len()).collect::<Vec<_>>(),
            [251, 251, 98]
        );
        assert_eq!(f.concat_data(), data);
        let two = fragments(&data[..300], 251);
        assert_eq!(
            two.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            [Op::FirstFragment, Op::LastFragment]
        );
        assert_eq!(
            fragments(&data[..251], 251),
            vec![(Op::Complete, &data[..251])]
        );
        assert_eq!(fragments(&[], 251), vec![(Op::Complete, &[][..])]);
    }

    #[test]
    fn a_controller_without_room_for_a_pdu_gets_legacy() {
        assert!(
            NO_ROOM.contains(&format!("under {PDU_ROOM} bytes")),
            "{NO_ROOM}"
        );
        let small = caps(true, true, true, PDU_ROOM as u16 - 1);
        assert_eq!(choose(&small, BearerChoice::Auto, None), Ok(Bearer::Legacy));
        let e = choose(&small, BearerChoice::Periodic, None).unwrap_err();
        assert_eq!((e.bearer, e.missing), ("periodic", NO_ROOM));
        let enough = caps(true, false, false, PDU_ROOM as u16);
        assert_eq!(
            choose(&enough, BearerChoice::Auto, None),
            Ok(Bearer::Extended(Phy::Le1M))
        );
    }

    #[test]
    fn auto_offers_every_bearer_the_controller_has() {
        let all = offers(
            &caps(true, true, true, 1650),
            BearerChoice::Auto,
            Bearer::Periodic(Phy::Le2M),
        );
        assert_eq!(all, BearerSet::ALL);
        let ext_1m = offers(
            &caps(true, false, false, 1650),
            BearerChoice::Auto,
            Bearer::Extended(Phy::Le1M),
        );
        assert_eq!(ext_1m, BearerSet::of(&[Bearer::Extended(Phy::Le1M)]));
        let named = offers(
            &caps(true, true, true, 1650),
            BearerChoice::Extended,
            Bearer::Extended(Phy::Le2M),
        );
        assert_eq!(named, BearerSet::of(&[Bearer::Extended(Phy::Le2M)]));
    }

    #[test]
    fn ad_groups_keep_structures_whole() {
        // Structures of 3, 101, 201 and 51 bytes.
        let mut data = vec![2, 0xFF, 1];
        for (len, fill) in [(100u8, 7u8), (200, 8), (50, 9)] {
            data.push(len);
            data.extend(std::iter::repeat_n(fill, len as usize));
        }
        let g = ad_groups(&data, 252).unwrap();
        assert_eq!(g.iter().map(|p| p.len()).collect::<Vec<_>>(), [104, 252]);
        assert_eq!(g.concat(), data);
        let g = ad_groups(&data, 1650).unwrap();
        assert_eq!(g, vec![&data[..]]);
        // A structure longer than a piece, or cut short: refused.
        assert_eq!(ad_groups(&data, 200), None);
        assert_eq!(ad_groups(&data[..50], 252), None);
        assert_eq!(ad_groups(&[], 252), Some(vec![&[][..]]));
    }

    trait Concat {
        fn concat_data(&self) -> Vec<u8>;
    }
    impl Concat for Vec<(Op, &[u8])> {
        fn concat_data(&self) -> Vec<u8> {
            self.iter().flat_map(|(_, p)| p.iter().copied()).collect()
        }
    }
}
