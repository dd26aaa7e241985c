//! The follower: where and when to listen next, and what the packets heard add up to.
//!
//! The caller asks [`Follower::op`] what to do and does it on the radio:
//!
//! - [`Op::ScanPrimary`]: scan a primary channel (37, 38, 39) as for legacy advertising, and
//!   report every packet heard ([`Follower::received`]); when the caller's scan window on that
//!   channel ends, [`Follower::missed`] moves the follower to the next channel;
//! - [`Op::Listen`]: receive one packet whose start (the first bit of its preamble) lies in
//!   `[start_us, start_us + window_us]` on the channel, PHY, access address and CRC init given,
//!   then report it ([`Follower::received`]) or report that the window closed with nothing or a
//!   CRC error ([`Follower::missed`]);
//! - [`Op::Idle`]: nothing ([`Follower::follow`] not called, or [`Follower::stop`]).
//!
//! Times are a free-running 1 MHz 32-bit timer that wraps; every computation wraps. The caller
//! gives the timer value captured at the RADIO's ADDRESS event (the end of the access address);
//! the follower takes the packet's start as that less the preamble and access address's air
//! time ([`address_air_us`]).
//!
//! Schedule (Bluetooth Core Specification 5.x, Vol 6 Part B):
//!
//! - an AuxPtr (§2.3.4.5) puts the next packet `offset × unit` after the start of the packet
//!   holding it, less than one unit later; the window is widened on both sides by
//!   [`window_widening_us`] over the offset, with the sender's accuracy from the CA bit (50 or
//!   500 ppm) and ours;
//! - a SyncInfo (§2.3.4.6) puts the AUX_SYNC_IND of event `event_counter` `offset × unit` (+
//!   2.4576 s with Offset Adjust) after the start of the AUX_ADV_IND; later events come every
//!   interval on the channel Channel Selection Algorithm #2 picks for their counter
//!   ([`crate::csa2`]); each window is widened by both sleep clock accuracies (the SyncInfo's
//!   SCA and ours) over the time since the last packet heard from the train (§4.4.5);
//! - the sync is lost after `max_missed_anchors` anchors in a row were missed, when the next
//!   anchor lies more than `sync_timeout_us` after the last one heard, or when its window would
//!   be as wide as the interval; the follower then scans the primary channels for the extended
//!   set and its SyncInfo again.
//!
//! Each event's AdvData is gathered into the caller's buffer (at most
//! [`CHAIN_ADV_DATA_MAX`] octets are used) and handed back as a [`Report`] when its chain ends:
//! whole, or cut short with the reason when a chain PDU was lost, not sent, or did not fit.
use crate::csa2;
use crate::pdu::{Adi, AuxPtr, ExtPdu, SyncInfo};
use crate::{address_air_us, is_after, window_widening_us, ADV_ACCESS_ADDRESS, ADV_CRC_INIT};
use crate::{Phy, PRIMARY_CHANNELS};
use adv_transfer::bearer::{CHAIN_ADV_DATA_MAX, SCA_PPM_DEFAULT};

/// What the radio should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Idle,
    ScanPrimary { channel: u8 },
    Listen(Listen),
}

/// Why an event's AdvData was cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// A chain PDU was not heard (window closed, CRC error, or another packet in its place).
    Lost,
    /// The sender said it would not send the next PDU (AuxPtr offset 0), or pointed where we
    /// cannot follow (LE Coded, or an offset inside the packet itself).
    NotFollowed,
    /// The chain carried more than the buffer (or 1,650 octets) holds.
    Overflow,
}

/// One advertising event's AdvData, as far as its chain was received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report<'a> {
    /// The advertiser (the AUX_ADV_IND's AdvA; for periodic events, the set synced through).
    pub adv_a: Option<[u8; 6]>,
    /// The set's ADI (extended events) or `None` (periodic events carry none).
    pub adi: Option<Adi>,
    /// The periodic event counter, for periodic events.
    pub periodic_counter: Option<u16>,
    pub adv_data: &'a [u8],
    /// `None`: the whole chain was received.
    pub cut: Option<Cut>,
}

/// Whose advertising to follow. `None` fields match anything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The advertiser's address (AdvA of its AUX_ADV_IND).
    pub adv_a: Option<[u8; 6]>,
    /// The advertising set id (ADI SID).
    pub sid: Option<u8>,
}

/// The follower's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Our sleep clock accuracy, ppm.
    pub sca_ppm: u32,
    /// Sync to a periodic train when the followed set's AUX_ADV_IND carries SyncInfo.
    pub periodic: bool,
    /// Anchors missed in a row that lose the sync.
    pub max_missed_anchors: u16,
    /// The sync is lost when the next anchor is further than this after the last one heard,
    /// µs (the sync's supervision timeout, Vol 4 Part E §7.8.67); 0: only `max_missed_anchors`.
    pub sync_timeout_us: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sca_ppm: SCA_PPM_DEFAULT,
            periodic: true,
            max_missed_anchors: 6,
            sync_timeout_us: 0,
        }
    }
}

/// What the follower did, for tests and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events reported, and of those cut short.
    pub events: u32,
    pub events_cut: u32,
    /// AUX packets listened for and not heard (AUX_ADV_IND or chain PDUs).
    pub aux_missed: u32,
    /// Periodic anchors heard and missed.
    pub anchors_heard: u32,
    pub anchors_missed: u32,
    pub syncs: u32,
    pub sync_losses: u32,
    /// Packets heard that were not the followed sender's (other ADI, AdvA, or not extended).
    pub foreign: u32,
    /// Extended PDUs that failed to parse.
    pub malformed: u32,
}

/// One receive: a packet whose first preamble bit lies in `[start_us, start_us + window_us]`
/// (the 1 MHz timer, wrapping) on BLE channel index `channel` at `phy`, with `access_address`
/// and `crc_init`. What [`Op::Listen`] asks for, and what a timed receiver (the kernel's
/// `aux_radio`) takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    pub start_us: u32,
    pub window_us: u32,
    /// BLE channel index, 0–39.
    pub channel: u8,
    pub phy: Phy,
    pub access_address: u32,
    /// The CRC's initial value, 24 bits.
    pub crc_init: u32,
}

impl Listen {
    /// When the window closes: the latest start of a packet it takes.
    pub fn end_us(&self) -> u32 {
        self.start_us.wrapping_add(self.window_us)
    }

    /// Whether a packet starting at `start_us` starts inside the window.
    pub fn contains(&self, start_us: u32) -> bool {
        start_us.wrapping_sub(self.start_us) <= self.window_us
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// The AUX_ADV_IND an ADV_EXT_IND pointed to.
    AuxAdv { adi: Option<Adi> },
    /// The next AUX_CHAIN_IND of an extended event.
    ExtChain,
    /// The AUX_SYNC_IND of periodic event `counter`.
    Anchor { counter: u16 },
    /// The next AUX_CHAIN_IND of a periodic event.
    SyncChain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Scan { channel: u8 },
    Listen { window: Listen, wait: Wait },
}

/// A periodic train synced to (or about to be).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sync {
    access_address: u32,
    crc_init: u32,
    channel_map: u64,
    channel_id: u16,
    interval_us: u32,
    phy: Phy,
    sca_tx_ppm: u32,
    adv_a: Option<[u8; 6]>,
    /// The (expected or heard) start of event `anchor_counter`.
    anchor_us: u32,
    anchor_counter: u16,
    /// When the follower last heard the train (or the AUX_ADV_IND that gave its SyncInfo).
    heard_us: u32,
    /// Uncertainty beyond the widening: the SyncInfo offset unit until the first anchor.
    extra_us: u32,
    missed: u16,
    /// A channel map the train moves to at an event counter (ACAD, Channel Map Update
    /// Indication).
    map_update: Option<(u64, u16)>,
}

impl Sync {
    /// The channel map in force at event `counter`.
    fn map_at(&self, counter: u16) -> u64 {
        match self.map_update {
            Some((map, instant)) if counter.wrapping_sub(instant) < 1 << 15 => map,
            _ => self.channel_map,
        }
    }
}

/// The event being gathered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Gather {
    adv_a: Option<[u8; 6]>,
    adi: Option<Adi>,
    periodic_counter: Option<u16>,
    len: usize,
}

/// The extended and periodic advertising follower (see the module docs), gathering AdvData
/// into `B` (`&mut [u8]` on the device; any owned buffer in a model).
pub struct Follower<B> {
    config: Config,
    filter: Filter,
    /// The SID learnt from the filtered advertiser's AUX_ADV_IND.
    sid: Option<u8>,
    state: State,
    sync: Option<Sync>,
    gather: Gather,
    buf: B,
    /// Octets of `buf` used: at most [`CHAIN_ADV_DATA_MAX`].
    cap: usize,
    counters: Counters,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Follower<B> {
    /// A follower gathering AdvData into `buf` (at most [`CHAIN_ADV_DATA_MAX`] octets of it are
    /// used). Idle until [`Follower::follow`].
    pub fn new(config: Config, buf: B) -> Self {
        let cap = buf.as_ref().len().min(CHAIN_ADV_DATA_MAX);
        Follower {
            config,
            filter: Filter::default(),
            sid: None,
            state: State::Idle,
            sync: None,
            gather: Gather {
                adv_a: None,
                adi: None,
                periodic_counter: None,
                len: 0,
            },
            buf,
            cap,
            counters: Counters::default(),
        }
    }

    /// Start (or restart) following the advertiser `filter` names, from the primary channels.
    pub fn follow(&mut self, filter: Filter) {
        self.filter = filter;
        self.sid = filter.sid;
        self.sync = None;
        self.state = State::Scan {
            channel: PRIMARY_CHANNELS[0],
        };
    }

    /// Stop: [`Op::Idle`] until the next [`Follower::follow`].
    pub fn stop(&mut self) {
        self.state = State::Idle;
        self.sync = None;
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Whether the follower is synced to a periodic train (heard at least one anchor).
    pub fn synced(&self) -> bool {
        self.sync.is_some_and(|s| s.extra_us == 0)
    }

    /// What the radio should do now.
    pub fn op(&self) -> Op {
        match self.state {
            State::Idle => Op::Idle,
            State::Scan { channel } => Op::ScanPrimary { channel },
            State::Listen { window, .. } => Op::Listen(window),
        }
    }

    /// The radio heard `pdu` (header and payload, CRC good) on `channel` at `phy`, its ADDRESS
    /// event at `address_us`. Returns an event whose chain this packet ended.
    pub fn received(
        &mut self,
        address_us: u32,
        channel: u8,
        phy: Phy,
        pdu: &[u8],
    ) -> Option<Report<'_>> {
        let start = address_us.wrapping_sub(address_air_us(phy));
        let parsed = ExtPdu::parse(pdu);
        if let Err(crate::PduError::NotExtended { .. } | crate::PduError::NoHeader { .. }) = parsed
        {
            // A legacy PDU: the caller's legacy path takes it; nothing here.
            if let State::Listen { window, .. } = self.state {
                self.counters.foreign += 1;
                return self.foreign(window, start, phy, pdu);
            }
            return None;
        }
        let p = match parsed {
            Ok(p) => p,
            Err(_) => {
                self.counters.malformed += 1;
                return match self.state {
                    State::Listen { window, .. } => self.foreign(window, start, phy, pdu),
                    _ => None,
                };
            }
        };
        match self.state {
            State::Idle => None,
            State::Scan { .. } => {
                self.on_primary(start, channel, phy, usize::from(pdu[1]), &p);
                None
            }
            State::Listen { window, wait } => self.on_listen(window, wait, start, phy, pdu, &p),
        }
    }

    /// The window closed with nothing heard (or a CRC error), or the caller's scan window on
    /// a primary channel ended. Returns an event cut short by the loss.
    pub fn missed(&mut self) -> Option<Report<'_>> {
        match self.state {
            State::Idle => None,
            State::Scan { channel } => {
                let i = PRIMARY_CHANNELS.iter().position(|&c| c == channel);
                let next = i.map_or(0, |i| (i + 1) % PRIMARY_CHANNELS.len());
                self.state = State::Scan {
                    channel: PRIMARY_CHANNELS[next],
                };
                None
            }
            State::Listen { window, wait } => match wait {
                Wait::AuxAdv { .. } => {
                    self.counters.aux_missed += 1;
                    self.next_after(window.end_us());
                    None
                }
                Wait::ExtChain | Wait::SyncChain => {
                    self.counters.aux_missed += 1;
                    self.finish(Some(Cut::Lost), window.end_us())
                }
                Wait::Anchor { counter } => {
                    self.counters.anchors_missed += 1;
                    self.anchor_missed(counter, window.end_us());
                    None
                }
            },
        }
    }

    /// A packet that is not what the window waits for: listen on for the rest of the window if
    /// the packet ended before it closes, else the window is lost.
    fn foreign(&mut self, window: Listen, start: u32, phy: Phy, pdu: &[u8]) -> Option<Report<'_>> {
        let payload = pdu.get(1).map_or(0, |&l| usize::from(l));
        let end = start.wrapping_add(phy.air_us(payload));
        // (A packet the radio says started before the window leaves the window whole.)
        let from = if is_after(end, window.start_us) {
            end
        } else {
            window.start_us
        };
        if is_after(window.end_us(), from) {
            if let State::Listen { wait, .. } = self.state {
                self.state = State::Listen {
                    window: Listen {
                        start_us: from,
                        window_us: window.end_us().wrapping_sub(from),
                        ..window
                    },
                    wait,
                };
            }
            return None;
        }
        self.missed()
    }

    /// A packet on a primary channel: an ADV_EXT_IND of the followed set points to its
    /// AUX_ADV_IND.
    fn on_primary(&mut self, start: u32, channel: u8, phy: Phy, payload: usize, p: &ExtPdu<'_>) {
        let Some(aux) = p.aux_ptr else { return };
        if !PRIMARY_CHANNELS.contains(&channel) {
            return;
        }
        if let (Some(want), Some(adi)) = (self.sid, p.adi) {
            if adi.sid != want {
                self.counters.foreign += 1;
                return;
            }
        }
        if let Some(w) = self.aux_window(start, phy, payload, &aux, None) {
            self.state = State::Listen {
                window: w,
                wait: Wait::AuxAdv { adi: p.adi },
            };
        }
    }

    fn on_listen(
        &mut self,
        window: Listen,
        wait: Wait,
        start: u32,
        phy: Phy,
        pdu: &[u8],
        p: &ExtPdu<'_>,
    ) -> Option<Report<'_>> {
        match wait {
            Wait::AuxAdv { adi } => {
                let ours = p.adi == adi
                    && p.adv_a.is_some()
                    && self.filter.adv_a.is_none_or(|a| p.adv_a == Some(a));
                if !ours {
                    self.counters.foreign += 1;
                    return self.foreign(window, start, phy, pdu);
                }
                if self.filter.adv_a.is_some() && self.sid.is_none() {
                    self.sid = p.adi.map(|a| a.sid);
                }
                self.gather = Gather {
                    adv_a: p.adv_a,
                    adi: p.adi,
                    periodic_counter: None,
                    len: 0,
                };
                if self.config.periodic && self.sync.is_none() {
                    if let Some(si) = p.sync_info {
                        self.start_sync(start, phy, p.adv_a, &si);
                    }
                }
                self.chain_on(start, phy, pdu, p, window.access_address, window.crc_init)
            }
            Wait::ExtChain => {
                if p.adi != self.gather.adi {
                    self.counters.foreign += 1;
                    return self.foreign(window, start, phy, pdu);
                }
                self.chain_on(start, phy, pdu, p, window.access_address, window.crc_init)
            }
            Wait::Anchor { counter } => {
                self.counters.anchors_heard += 1;
                if let Some(s) = self.sync.as_mut() {
                    if s.extra_us != 0 {
                        self.counters.syncs += 1;
                    }
                    s.anchor_us = start;
                    s.anchor_counter = counter;
                    s.heard_us = start;
                    s.extra_us = 0;
                    s.missed = 0;
                    s.channel_map = s.map_at(counter);
                    if s.map_update
                        .is_some_and(|(_, instant)| counter.wrapping_sub(instant) < 1 << 15)
                    {
                        s.map_update = None;
                    }
                    if let Some(update) = channel_map_update(p.acad) {
                        s.map_update = Some(update);
                    }
                }
                self.gather = Gather {
                    adv_a: self.sync.and_then(|s| s.adv_a),
                    adi: None,
                    periodic_counter: Some(counter),
                    len: 0,
                };
                self.chain_on(start, phy, pdu, p, window.access_address, window.crc_init)
            }
            Wait::SyncChain => {
                if let Some(s) = self.sync.as_mut() {
                    s.heard_us = start;
                }
                self.chain_on(start, phy, pdu, p, window.access_address, window.crc_init)
            }
        }
    }

    /// Take a chain PDU's AdvData; follow its AuxPtr or end the event.
    fn chain_on(
        &mut self,
        start: u32,
        phy: Phy,
        pdu: &[u8],
        p: &ExtPdu<'_>,
        access_address: u32,
        crc_init: u32,
    ) -> Option<Report<'_>> {
        let end = start.wrapping_add(phy.air_us(usize::from(pdu[1])));
        let room = self.cap - self.gather.len;
        let take = p.adv_data.len().min(room);
        self.buf.as_mut()[self.gather.len..self.gather.len + take]
            .copy_from_slice(&p.adv_data[..take]);
        self.gather.len += take;
        if take < p.adv_data.len() {
            return self.finish(Some(Cut::Overflow), end);
        }
        let Some(aux) = p.aux_ptr else {
            return self.finish(None, end);
        };
        if self.gather.len == self.cap {
            return self.finish(Some(Cut::Overflow), end);
        }
        let sca = self.sync.filter(|_| self.gather.periodic_counter.is_some());
        match self.aux_window(start, phy, usize::from(pdu[1]), &aux, sca) {
            Some(w) => {
                let wait = if self.gather.periodic_counter.is_some() {
                    Wait::SyncChain
                } else {
                    Wait::ExtChain
                };
                self.state = State::Listen {
                    window: Listen {
                        access_address,
                        crc_init,
                        ..w
                    },
                    wait,
                };
                None
            }
            None => self.finish(Some(Cut::NotFollowed), end),
        }
    }

    /// The window of the packet an AuxPtr points to, from the start of the packet holding it
    /// (its payload `payload` octets at `phy`); `None` if it cannot be followed.
    fn aux_window(
        &self,
        start: u32,
        phy: Phy,
        payload: usize,
        aux: &AuxPtr,
        sync: Option<Sync>,
    ) -> Option<Listen> {
        let aux_phy = aux.phy.phy()?;
        let offset = aux.offset_us();
        // Offset 0: not sent. An offset inside the packet itself cannot be met.
        if aux.offset == 0 || offset < phy.air_us(payload) {
            return None;
        }
        let sca_tx = sync.map_or(aux.sca_ppm(), |s| s.sca_tx_ppm.max(aux.sca_ppm()));
        let w = window_widening_us(sca_tx, self.config.sca_ppm, offset);
        Some(Listen {
            start_us: start.wrapping_add(offset).wrapping_sub(w),
            window_us: aux.unit_us().saturating_add(w.saturating_mul(2)),
            channel: aux.channel,
            phy: aux_phy,
            access_address: ADV_ACCESS_ADDRESS,
            crc_init: ADV_CRC_INIT,
        })
    }

    fn start_sync(&mut self, aux_start: u32, phy: Phy, adv_a: Option<[u8; 6]>, si: &SyncInfo) {
        if si.offset == 0 {
            // Too far to say: the next AUX_ADV_IND will tell.
            return;
        }
        self.sync = Some(Sync {
            access_address: si.access_address,
            crc_init: si.crc_init,
            channel_map: si.channel_map,
            channel_id: csa2::channel_identifier(si.access_address),
            interval_us: si.interval_us(),
            phy,
            sca_tx_ppm: si.sca_ppm(),
            adv_a,
            anchor_us: aux_start.wrapping_add(si.offset_us()),
            anchor_counter: si.event_counter,
            heard_us: aux_start,
            extra_us: si.unit_us(),
            missed: 0,
            map_update: None,
        });
    }

    /// The event ends (whole or cut); report it and go on.
    fn finish(&mut self, cut: Option<Cut>, now: u32) -> Option<Report<'_>> {
        self.counters.events += 1;
        if cut.is_some() {
            self.counters.events_cut += 1;
        }
        let g = self.gather;
        self.next_after(now);
        Some(Report {
            adv_a: g.adv_a,
            adi: g.adi,
            periodic_counter: g.periodic_counter,
            adv_data: &self.buf.as_ref()[..g.len],
            cut,
        })
    }

    /// After an event (or a missed AUX_ADV_IND) ending at `now`: the next anchor of the train,
    /// or the primary channels.
    fn next_after(&mut self, now: u32) {
        match self.sync {
            // The first anchor of a new sync is the SyncInfo's counter itself.
            Some(s) if s.extra_us != 0 => self.listen_anchor(s, s.anchor_counter, now),
            Some(s) => self.listen_anchor(s, s.anchor_counter.wrapping_add(1), now),
            None => {
                self.state = State::Scan {
                    channel: PRIMARY_CHANNELS[0],
                }
            }
        }
    }

    fn anchor_missed(&mut self, counter: u16, now: u32) {
        let Some(mut s) = self.sync else {
            return self.next_after(now);
        };
        s.missed += 1;
        if s.missed >= self.config.max_missed_anchors {
            return self.lose_sync();
        }
        self.sync = Some(s);
        self.listen_anchor(s, counter.wrapping_add(1), now);
    }

    fn lose_sync(&mut self) {
        self.counters.sync_losses += 1;
        self.sync = None;
        self.state = State::Scan {
            channel: PRIMARY_CHANNELS[0],
        };
    }

    /// Listen for the first anchor from `counter` on whose window opens after `now`.
    fn listen_anchor(&mut self, s: Sync, mut counter: u16, now: u32) {
        // Events whose window has passed are skipped; a train slower than its own chains (or a
        // window wider than the interval) stops after a bound.
        for _ in 0..=self.config.max_missed_anchors {
            let since_anchor =
                u32::from(counter.wrapping_sub(s.anchor_counter)).wrapping_mul(s.interval_us);
            let expected = s.anchor_us.wrapping_add(since_anchor);
            let since_heard = expected.wrapping_sub(s.heard_us);
            if self.config.sync_timeout_us != 0 && since_heard > self.config.sync_timeout_us {
                return self.lose_sync();
            }
            let w = window_widening_us(s.sca_tx_ppm, self.config.sca_ppm, since_heard);
            let window_us = w.saturating_mul(2).saturating_add(s.extra_us);
            if window_us >= s.interval_us {
                // A window as wide as the interval cannot tell one event from the next.
                return self.lose_sync();
            }
            let start = expected.wrapping_sub(w);
            if !is_after(start, now) && start != now {
                counter = counter.wrapping_add(1);
                continue;
            }
            let Some(channel) = csa2::channel(counter, s.channel_id, s.map_at(counter)) else {
                return self.lose_sync();
            };
            self.state = State::Listen {
                window: Listen {
                    start_us: start,
                    window_us,
                    channel,
                    phy: s.phy,
                    access_address: s.access_address,
                    crc_init: s.crc_init,
                },
                wait: Wait::Anchor { counter },
            };
            return;
        }
        self.lose_sync();
    }
}

/// AD type of the Channel Map Update Indication a periodic train's ACAD may carry (Bluetooth
/// Assigned Numbers; Core Specification Supplement, Part A, "Channel Map Update Indication"):
/// the new 37-bit map (5 octets) and the event counter from which it applies (2 octets).
pub const AD_TYPE_CHANNEL_MAP_UPDATE: u8 = 0x28;

/// The channel map update an ACAD announces, if any (and if its map has at least 2 channels).
pub fn channel_map_update(acad: &[u8]) -> Option<(u64, u16)> {
    let mut rest = acad;
    // Each AD structure takes at least its length octet: the walk ends.
    while let Some((&len, after)) = rest.split_first() {
        let body = after.get(..usize::from(len))?;
        rest = &after[usize::from(len)..];
        if let [AD_TYPE_CHANNEL_MAP_UPDATE, m0, m1, m2, m3, m4, i0, i1] = *body {
            let map = u64::from_le_bytes([m0, m1, m2, m3, m4, 0, 0, 0]) & ((1 << 37) - 1);
            return (csa2::used_channels(map) >= 2).then_some((map, u16::from_le_bytes([i0, i1])));
        }
    }
    None
}
