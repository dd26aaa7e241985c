//! Continuous passive BLE scanning with batched delivery to one process.
//!
//! Tock's stock advertising driver (`ble_advertising_driver`) listens for one packet per channel
//! per scan interval (≥ 20 ms) and overwrites a single buffer per packet, so a receiver that wants
//! every advertisement of a fast sender loses most of them. This capsule keeps the radio
//! listening all the time: each received advertising PDU is appended to a kernel ring of reports,
//! and the radio is re-armed on the next advertising channel (37 → 38 → 39) at once. When nothing
//! arrives for [`HOP_AFTER_MS`] it hops on as well (an alarm), so a sender heard on only some
//! channels is not missed while the radio waits on a silent one. Reports are
//! handed to the scanning process in batches: whenever the process has released the previous
//! batch, everything queued so far is copied into its buffer and one upcall announces it. While
//! the process works, reports keep queueing; when the ring is full, new reports are counted as
//! dropped (and that count is reported), never overwriting queued ones. Reports leave the ring
//! only when the process has been told about them: if its upcall cannot be queued, they stay
//! for the next attempt (the next received report or release).
//!
//! If the scanning process ends (exits, faults, restarts), the next received report finds it
//! gone and scanning stops: the radio is not re-armed and the queued reports are discarded.
//!
//! One process scans at a time: the first to start owns the scanner until it stops (others get
//! `BUSY`). A board that receives updates through it reserves it for the DFU app with the syscall
//! filter ([`crate::identity::filter`]: other processes get `NODEVICE` past command 0), so no
//! other process can hold the radio and starve the update. The radio cannot be advertising for anyone else while this capsule owns it, so boards
//! give it the radio alone.
//!
//! Two parts: [`ScanRadio`] drives the radio and the ring and knows nothing of processes;
//! [`BulkScan`] is the syscall driver that owns a process's buffers ([`BatchSink`]).
//!
//! Syscall interface
//! -----------------
//!
//! The numbers below are defined once in `dfu_abi::scan`.
//!
//! Driver number `0xA0001` (out-of-tree category 0xAxxxx, next to the staged-update driver).
//!
//! - Command `0`: exists.
//! - Command `1`: start scanning (caller becomes the owner). `BUSY` if another process scans.
//! - Command `2`: stop scanning. Reports already queued are discarded.
//! - Command `3`: release the current batch (the process has consumed its buffer); the next
//!   batch is delivered immediately if reports are queued.
//! - Command `4`: advertise once: the AdvData in read-only allow `0` (at most 31 bytes) goes out
//!   as an ADV_NONCONN_IND on channels 37, 38 and 39, then listening resumes. A receive in
//!   progress is abandoned (the radio has one front end). `BUSY` while a previous one is still
//!   going out, `SIZE` if the AdvData is too long, `RESERVE` if the caller is not scanning.
//!   This is how a receiver reports its progress to the sender (e.g. missing chunks).
//! - Read-only allow `0`: the AdvData for command 4.
//! - Read-write allow `0`: the batch buffer. A batch is a sequence of reports, each
//!   `[len, channel, pdu[len]]`: `len` is the PDU length (2-byte header, 6-byte AdvA, AdvData;
//!   at most 39), `channel` the advertising channel (37, 38 or 39).
//! - Upcall `0`: `(reports, bytes, dropped)`: a batch of `reports` reports in the first `bytes`
//!   bytes of the buffer; `dropped` reports were lost to a full ring since the previous batch.

use core::cell::Cell;
use core::marker::PhantomData;

use kernel::grant::{
    AllowRoCount, AllowRoSize, AllowRwCount, AllowRwSize, Grant, UpcallCount, UpcallSize,
};
use kernel::hil::ble_advertising::{BleAdvertisementDriver, RadioChannel, RxClient, TxClient};
use kernel::hil::time::{Alarm, AlarmClient, ConvertTicks};
use kernel::processbuffer::{ReadableProcessBuffer, WriteableProcessBuffer};
use kernel::syscall::{CommandReturn, SyscallDriver};
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::{ErrorCode, ProcessId};

use dfu_abi::scan as abi;

use crate::adv_radio::RX_BUF_LEN;

/// Syscall driver number.
pub const DRIVER_NUM: usize = abi::DRIVER_NUM as usize;

/// Longest legacy advertising PDU: 2-byte header + 37-byte payload.
pub const MAX_PDU: usize = abi::MAX_PDU;
/// Bytes a report takes before its PDU.
pub const REPORT_HEADER: usize = abi::REPORT_HEADER;

pub mod upcall {
    use dfu_abi::scan::upcall as abi;
    pub const BATCH: usize = abi::BATCH as usize;
    pub const COUNT: u8 = abi::COUNT;
}

pub mod ro_allow {
    use dfu_abi::scan::ro_allow as abi;
    pub const ADV_DATA: usize = abi::ADV_DATA as usize;
    pub const COUNT: u8 = abi::COUNT;
}

pub mod rw_allow {
    use dfu_abi::scan::rw_allow as abi;
    pub const BATCH: usize = abi::BATCH as usize;
    pub const COUNT: u8 = abi::COUNT;
}

pub mod command {
    use dfu_abi::scan::command as abi;
    pub const EXISTS: usize = abi::EXISTS as usize;
    pub const START: usize = abi::START as usize;
    pub const STOP: usize = abi::STOP as usize;
    pub const RELEASE: usize = abi::RELEASE as usize;
    pub const ADVERTISE: usize = abi::ADVERTISE as usize;
}

/// How long the radio stays on a channel on which nothing arrives. Longer than one advertising
/// event period of the fastest legacy sender (20 ms advInterval + up to 10 ms advDelay), so such a
/// sender on this channel is heard within one dwell; short enough that a cycle of the three
/// channels takes a fraction of a second.
pub const HOP_AFTER_MS: u32 = 40;

/// Longest AdvData of a legacy advertisement.
pub const MAX_ADV_DATA: usize = abi::MAX_ADV_DATA;
/// PDU header byte 0: ADV_NONCONN_IND with TxAdd set (random device address).
const ADV_NONCONN_IND_RANDOM: u8 = 0x02 | 0x40;
/// Bytes the transmit buffer needs: header, AdvA, AdvData.
pub const TX_BUF_LEN: usize = 2 + 6 + MAX_ADV_DATA;

/// How a [`ReportRing`] finds the length of a stored report from its first bytes.
pub trait ReportFormat {
    /// The length of the report whose first byte is `storage[at]`; the ring wraps at
    /// `storage.len()`, so a report's bytes after the first are at `(at + i) % storage.len()`.
    fn report_len(storage: &[u8], at: usize) -> usize;
}

/// This driver's reports: `[len, channel, pdu[len]]`.
pub struct Legacy;

impl ReportFormat for Legacy {
    fn report_len(storage: &[u8], at: usize) -> usize {
        REPORT_HEADER + storage[at] as usize
    }
}

/// A ring of encoded reports, oldest first, each as the consumer reads it (`F` says how long
/// one is). Shared with [`crate::ext_scan`], whose reports are longer.
pub struct ReportRing<F: ReportFormat = Legacy> {
    storage: &'static mut [u8],
    head: usize,
    used: usize,
    reports: usize,
    format: PhantomData<F>,
}

impl ReportRing<Legacy> {
    /// Append one report; `false` (and nothing stored) if it does not fit or is malformed.
    pub fn push(&mut self, channel: u8, pdu: &[u8]) -> bool {
        if pdu.is_empty() || pdu.len() > MAX_PDU {
            return false;
        }
        self.push_parts([pdu.len() as u8, channel], pdu)
    }
}

impl<F: ReportFormat> ReportRing<F> {
    pub fn new(storage: &'static mut [u8]) -> ReportRing<F> {
        ReportRing {
            storage,
            head: 0,
            used: 0,
            reports: 0,
            format: PhantomData,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.reports == 0
    }

    pub fn clear(&mut self) {
        self.head = 0;
        self.used = 0;
        self.reports = 0;
    }

    /// Append one report, `header` then `body`, which must encode its length as `F` reads it;
    /// `false` (and nothing stored) if it does not fit.
    pub fn push_parts<const H: usize>(&mut self, header: [u8; H], body: &[u8]) -> bool {
        const { assert!(H > 0, "a report's header holds its length") };
        let need = H + body.len();
        if self.storage.len() - self.used < need {
            return false;
        }
        let cap = self.storage.len();
        let mut at = (self.head + self.used) % cap;
        for &b in header.iter().chain(body) {
            self.storage[at] = b;
            at = (at + 1) % cap;
        }
        self.used += need;
        self.reports += 1;
        true
    }

    /// Move whole reports, oldest first, into `dst` while they fit; returns (reports, bytes).
    pub fn drain_into(&mut self, dst: &mut dyn FnMut(usize, u8)) -> (usize, usize) {
        self.drain_up_to(usize::MAX, dst)
    }

    /// As [`ReportRing::drain_into`], at most `limit` bytes.
    pub fn drain_up_to(&mut self, limit: usize, dst: &mut dyn FnMut(usize, u8)) -> (usize, usize) {
        let (reports, bytes) = self.copy_up_to(limit, dst);
        self.discard(reports);
        (reports, bytes)
    }

    /// Copy whole reports, oldest first, into `dst` while they fit in `limit` bytes, leaving
    /// them queued; returns (reports, bytes).
    pub fn copy_up_to(&self, limit: usize, dst: &mut dyn FnMut(usize, u8)) -> (usize, usize) {
        let cap = self.storage.len();
        let (mut reports, mut bytes) = (0, 0);
        let mut at = self.head;
        while reports < self.reports {
            let len = F::report_len(self.storage, at);
            if bytes + len > limit {
                break;
            }
            for i in 0..len {
                dst(bytes + i, self.storage[(at + i) % cap]);
            }
            at = (at + len) % cap;
            reports += 1;
            bytes += len;
        }
        (reports, bytes)
    }

    /// Remove the `reports` oldest reports (all of them if fewer are queued).
    pub fn discard(&mut self, reports: usize) {
        let cap = self.storage.len();
        for _ in 0..reports.min(self.reports) {
            let len = F::report_len(self.storage, self.head);
            self.head = (self.head + len) % cap;
            self.used -= len;
            self.reports -= 1;
        }
    }
}

/// The receive side's controls the HIL lacks.
///
/// `RxClient::receive_event` hands the client the radio's receive buffer as `&'static mut`, and
/// the HIL has no call to return it; a radio that receives by DMA into one buffer it owns
/// ([`crate::adv_radio::AdvRadio`]) needs it back before its next receive. The scanner gives
/// back every buffer it is handed, once it has copied the PDU out. The type carries the length:
/// the radio can only be given a buffer that holds everything it may write. Nor can the HIL end a
/// receive: a scanner whose process is gone must not leave the radio listening.
pub trait RxControl {
    fn rx_buffer_back(&self, buf: &'static mut [u8; RX_BUF_LEN]);
    /// End a receive outstanding or pending; no `receive_event` follows for it.
    fn stop_receive(&self);
}

/// Transmit with the refusal returned, not called back.
///
/// The HIL's `transmit_advertisement` returns nothing, so a radio that refuses a transmit can
/// only hand the buffer back through `TxClient::transmit_event`, from inside the call. The
/// scanner starts each advertisement from its own `transmit_event` and must not be re-entered:
/// it uses this instead.
pub trait TryTransmit {
    /// Start sending `buf[..len]` on `channel`; `transmit_event` follows when it is out. A
    /// refused transmit (`SIZE`, `BUSY`) comes back here with its buffer, and no
    /// `transmit_event` follows.
    fn try_transmit(
        &self,
        buf: &'static mut [u8],
        len: usize,
        channel: RadioChannel,
    ) -> Result<(), (ErrorCode, &'static mut [u8])>;
}

/// What became of an attempt to hand queued reports to the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A batch went out and the consumer was told (its upcall is queued).
    Delivered,
    /// Nothing went out (no buffer, nothing fitted, or the consumer could not be told); the
    /// reports stay queued for the next attempt.
    NotNow,
    /// The consumer no longer exists: scanning stops.
    ConsumerGone,
}

/// Where batches go: the syscall driver copies them into the owner's buffer.
pub trait BatchSink<F: ReportFormat = Legacy> {
    /// Hand whole reports from `ring` (oldest first) to the consumer with `dropped`, taking from
    /// the ring only what the consumer was told about.
    fn deliver(&self, ring: &mut ReportRing<F>, dropped: usize) -> Delivery;

    /// Whether the consumer still exists (asked while it holds a batch).
    fn present(&self) -> bool;
}

/// Reports waiting for the consumer and the state of their hand-off: the ring, whether the
/// consumer holds a batch it has not released, and how many reports a full ring dropped since
/// the last batch. [`ScanRadio`]'s and [`crate::ext_scan`]'s queue.
pub struct BatchQueue<F: ReportFormat + 'static = Legacy> {
    ring: TakeCell<'static, ReportRing<F>>,
    /// The consumer holds a batch it has not released.
    batch_out: Cell<bool>,
    dropped: Cell<usize>,
}

impl<F: ReportFormat + 'static> BatchQueue<F> {
    pub fn new(ring: &'static mut ReportRing<F>) -> BatchQueue<F> {
        BatchQueue {
            ring: TakeCell::new(ring),
            batch_out: Cell::new(false),
            dropped: Cell::new(0),
        }
    }

    /// Queue a report with `push` (which says whether it fitted); one that did not is counted
    /// as dropped. Whether it was queued.
    pub fn push(&self, push: impl FnOnce(&mut ReportRing<F>) -> bool) -> bool {
        let stored = self.ring.map(push).unwrap_or(false);
        if !stored {
            self.dropped.set(self.dropped.get().saturating_add(1));
        }
        stored
    }

    /// Discard what is queued, with the drop count; no batch is out any more.
    pub fn clear(&self) {
        self.batch_out.set(false);
        self.dropped.set(0);
        self.ring.map(|r| r.clear());
    }

    /// No batch is out with the consumer (it released it, or scanning starts afresh).
    pub fn release(&self) {
        self.batch_out.set(false);
    }

    /// Hand queued reports to `sink` if it is ready for a batch. While it holds one, only check
    /// that it is still there. The caller stops on [`Delivery::ConsumerGone`].
    pub fn deliver<S: BatchSink<F> + ?Sized>(&self, sink: Option<&S>) -> Delivery {
        let outcome = if self.batch_out.get() {
            if sink.is_none_or(|sink| sink.present()) {
                Delivery::NotNow
            } else {
                Delivery::ConsumerGone
            }
        } else {
            self.ring
                .map(|ring| {
                    if ring.is_empty() {
                        return Delivery::NotNow;
                    }
                    sink.map_or(Delivery::NotNow, |sink| {
                        sink.deliver(ring, self.dropped.get())
                    })
                })
                .unwrap_or(Delivery::NotNow)
        };
        if outcome == Delivery::Delivered {
            self.dropped.set(0);
            self.batch_out.set(true);
        }
        outcome
    }
}

fn channel_number(channel: RadioChannel) -> u8 {
    match channel {
        RadioChannel::AdvertisingChannel37 => 37,
        RadioChannel::AdvertisingChannel38 => 38,
        _ => 39,
    }
}

fn next_channel(channel: RadioChannel) -> RadioChannel {
    match channel {
        RadioChannel::AdvertisingChannel37 => RadioChannel::AdvertisingChannel38,
        RadioChannel::AdvertisingChannel38 => RadioChannel::AdvertisingChannel39,
        _ => RadioChannel::AdvertisingChannel37,
    }
}

/// The radio side: continuous listening, the report ring, batch hand-off and one-shot
/// advertising. Knows nothing of processes.
pub struct ScanRadio<'a, B: BleAdvertisementDriver<'a> + RxControl + TryTransmit, A: Alarm<'a>> {
    radio: &'a B,
    /// Hops channel when nothing arrives.
    alarm: &'a A,
    sink: OptionalCell<&'a dyn BatchSink>,
    queue: BatchQueue,
    scanning: Cell<bool>,
    channel: Cell<RadioChannel>,
    /// A receive is outstanding.
    listening: Cell<bool>,
    /// PDU being advertised (header, AdvA, AdvData); out with the radio while transmitting.
    tx_buffer: TakeCell<'static, [u8]>,
    tx_len: Cell<usize>,
    /// Channel of the advertisement in flight, `None` when not advertising.
    transmitting: Cell<Option<RadioChannel>>,
    address: [u8; 6],
}

impl<'a, B: BleAdvertisementDriver<'a> + RxControl + TryTransmit, A: Alarm<'a>>
    ScanRadio<'a, B, A>
{
    pub fn new(
        radio: &'a B,
        alarm: &'a A,
        ring: &'static mut ReportRing,
        tx_buffer: &'static mut [u8; TX_BUF_LEN],
        address: [u8; 6],
    ) -> ScanRadio<'a, B, A> {
        ScanRadio {
            radio,
            alarm,
            sink: OptionalCell::empty(),
            queue: BatchQueue::new(ring),
            scanning: Cell::new(false),
            channel: Cell::new(RadioChannel::AdvertisingChannel37),
            listening: Cell::new(false),
            tx_buffer: TakeCell::new(tx_buffer),
            tx_len: Cell::new(0),
            transmitting: Cell::new(None),
            address,
        }
    }

    pub fn set_sink(&self, sink: &'a dyn BatchSink) {
        self.sink.set(sink);
    }

    pub fn is_scanning(&self) -> bool {
        self.scanning.get()
    }

    /// Start listening; the next batch goes out as soon as a report arrives.
    pub fn start(&self) {
        self.scanning.set(true);
        self.queue.release();
        self.listen();
    }

    /// Stop: queued reports are discarded. The radio has no receive cancel: an outstanding
    /// receive completes and is ignored.
    pub fn stop(&self) {
        self.scanning.set(false);
        self.listening.set(false);
        self.radio.stop_receive();
        let _ = self.alarm.disarm();
        self.queue.clear();
    }

    /// The consumer is done with its batch: deliver the next one if reports are queued.
    pub fn release(&self) {
        self.queue.release();
        self.deliver();
    }

    /// Advertise `adv_data` once on 37, 38 and 39 (ADV_NONCONN_IND), then listen again. A
    /// receive in progress is abandoned: re-initialising the radio for transmit ends it.
    pub fn advertise(&self, adv_data: &[u8]) -> Result<(), ErrorCode> {
        if adv_data.len() > MAX_ADV_DATA {
            return Err(ErrorCode::SIZE);
        }
        if self.transmitting.get().is_some() {
            return Err(ErrorCode::BUSY);
        }
        let buffer = self.tx_buffer.take().ok_or(ErrorCode::BUSY)?;
        if buffer.len() < TX_BUF_LEN {
            self.tx_buffer.replace(buffer);
            return Err(ErrorCode::SIZE);
        }
        buffer[0] = ADV_NONCONN_IND_RANDOM;
        buffer[1] = (6 + adv_data.len()) as u8;
        buffer[2..8].copy_from_slice(&self.address);
        buffer[8..8 + adv_data.len()].copy_from_slice(adv_data);
        let len = 8 + adv_data.len();
        self.tx_len.set(len);
        self.transmitting
            .set(Some(RadioChannel::AdvertisingChannel37));
        self.listening.set(false);
        self.radio
            .try_transmit(buffer, len, RadioChannel::AdvertisingChannel37)
            .map_err(|(e, buffer)| {
                self.advertised(buffer);
                e
            })
    }

    /// The advertisement is out (or refused): keep the buffer for the next one, listen again.
    fn advertised(&self, buffer: &'static mut [u8]) {
        self.transmitting.set(None);
        self.tx_buffer.replace(buffer);
        self.listen();
    }

    /// Receive on the current channel, and hop on if nothing arrives for [`HOP_AFTER_MS`].
    fn listen(&self) {
        if !self.listening.get() && self.transmitting.get().is_none() && self.scanning.get() {
            self.listening.set(true);
            self.radio.receive_advertisement(self.channel.get());
            self.alarm
                .set_alarm(self.alarm.now(), self.alarm.ticks_from_ms(HOP_AFTER_MS));
        }
    }

    /// Hand queued reports to the consumer if it is ready for a batch; stop if it is gone.
    fn deliver(&self) {
        if !self.scanning.get() {
            return;
        }
        // Nobody to listen for: the outstanding receive completes and is not re-armed.
        if self.queue.deliver(self.sink.get()) == Delivery::ConsumerGone {
            self.stop();
        }
    }
}

impl<'a, B: BleAdvertisementDriver<'a> + RxControl + TryTransmit, A: Alarm<'a>> RxClient
    for ScanRadio<'a, B, A>
{
    fn receive_event(&self, buf: &'static mut [u8], len: u8, result: Result<(), ErrorCode>) {
        self.listening.set(false);
        let channel = self.channel.get();
        self.channel.set(next_channel(channel));
        let len = len as usize;
        let wanted = self.scanning.get()
            && result.is_ok()
            && (REPORT_HEADER..=MAX_PDU).contains(&len)
            && len <= buf.len();
        if wanted {
            self.queue
                .push(|ring| ring.push(channel_number(channel), &buf[..len]));
        }
        // The PDU is copied out: the radio has its buffer back before it is re-armed. It hands
        // out a buffer of at least RX_BUF_LEN bytes; one shorter cannot be armed, and the
        // radio is deaf without it: scanning stops, so the owner sees it end (`is_scanning`).
        let armable = RX_BUF_LEN.min(buf.len());
        match <&'static mut [u8; RX_BUF_LEN]>::try_from(&mut buf[..armable]) {
            Ok(whole) => self.radio.rx_buffer_back(whole),
            Err(_) => self.stop(),
        }
        if !self.scanning.get() {
            return;
        }
        // Re-arm first: the copy into the process below must not cost air time.
        self.listen();
        self.deliver();
    }
}

impl<'a, B: BleAdvertisementDriver<'a> + RxControl + TryTransmit, A: Alarm<'a>> AlarmClient
    for ScanRadio<'a, B, A>
{
    /// Nothing arrived on this channel for a dwell: listen on the next one. The receive still
    /// outstanding is replaced (the radio re-targets it); while advertising, listening resumes
    /// when the advertisement is out.
    fn alarm(&self) {
        if !self.scanning.get() || self.transmitting.get().is_some() {
            return;
        }
        // A quiet room brings no packet to notice a dead consumer by: check at every dwell, so
        // the radio is not kept receiving for nobody.
        if !self.sink.map_or(true, |sink| sink.present()) {
            self.stop();
            return;
        }
        self.channel.set(next_channel(self.channel.get()));
        self.listening.set(false);
        self.listen();
    }
}

impl<'a, B: BleAdvertisementDriver<'a> + RxControl + TryTransmit, A: Alarm<'a>> TxClient
    for ScanRadio<'a, B, A>
{
    fn transmit_event(&self, buf: &'static mut [u8], _result: Result<(), ErrorCode>) {
        let next = match self.transmitting.get() {
            Some(RadioChannel::AdvertisingChannel37) => Some(RadioChannel::AdvertisingChannel38),
            Some(RadioChannel::AdvertisingChannel38) => Some(RadioChannel::AdvertisingChannel39),
            _ => None,
        };
        match next {
            Some(channel) if self.scanning.get() => {
                self.transmitting.set(Some(channel));
                // A refusal ends the advertisement here; the radio does not call back.
                if let Err((_, buf)) = self.radio.try_transmit(buf, self.tx_len.get(), channel) {
                    self.advertised(buf);
                }
            }
            _ => self.advertised(buf),
        }
    }
}

/// Per-process state.
#[derive(Default)]
pub struct App;

/// The grant type of [`BulkScan`].
pub type ScanGrant = Grant<
    App,
    UpcallCount<{ upcall::COUNT }>,
    AllowRoCount<{ ro_allow::COUNT }>,
    AllowRwCount<{ rw_allow::COUNT }>,
>;

/// The bulk-scan syscall driver over a [`ScanRadio`]. See the module docs.
pub struct BulkScan<'a, B: BleAdvertisementDriver<'a> + RxControl + TryTransmit, A: Alarm<'a>> {
    scan: &'a ScanRadio<'a, B, A>,
    apps: ScanGrant,
    owner: OptionalCell<ProcessId>,
}

impl<'a, B: BleAdvertisementDriver<'a> + RxControl + TryTransmit, A: Alarm<'a>> BulkScan<'a, B, A> {
    pub fn new(scan: &'a ScanRadio<'a, B, A>, apps: ScanGrant) -> BulkScan<'a, B, A> {
        BulkScan {
            scan,
            apps,
            owner: OptionalCell::empty(),
        }
    }

    fn stop(&self) {
        self.owner.clear();
        self.scan.stop();
    }
}

/// The process is gone for good (not merely busy).
fn gone(error: kernel::process::Error) -> bool {
    matches!(
        error,
        kernel::process::Error::NoSuchApp | kernel::process::Error::InactiveApp
    )
}

impl<'a, B: BleAdvertisementDriver<'a> + RxControl + TryTransmit, A: Alarm<'a>> BatchSink
    for BulkScan<'a, B, A>
{
    fn deliver(&self, ring: &mut ReportRing, dropped: usize) -> Delivery {
        deliver_batch(
            &self.apps,
            &self.owner,
            ring,
            dropped,
            (rw_allow::BATCH, upcall::BATCH),
        )
    }

    fn present(&self) -> bool {
        owner_present(&self.apps, &self.owner)
    }
}

/// Copy whole reports from `ring` (oldest first) into the `owner`'s read-write allow
/// `to.0` and announce them with upcall `to.1` as `(reports, bytes, dropped)`. The reports
/// leave the ring only once the process has been told: if the upcall cannot be queued (its task
/// queue is full) they stay for the next attempt. A process gone for good clears `owner`.
/// [`BulkScan`]'s and [`crate::ext_scan`]'s delivery.
pub fn deliver_batch<F: ReportFormat, T: Default, U: UpcallSize, R: AllowRoSize, W: AllowRwSize>(
    apps: &Grant<T, U, R, W>,
    owner: &OptionalCell<ProcessId>,
    ring: &mut ReportRing<F>,
    dropped: usize,
    to: (usize, usize),
) -> Delivery {
    let Some(process) = owner.get() else {
        return Delivery::NotNow;
    };
    let delivered = apps.enter(process, |_, kernel_data| {
        let Ok(buffer) = kernel_data.get_readwrite_processbuffer(to.0) else {
            return Delivery::NotNow;
        };
        let (reports, bytes) = buffer
            .mut_enter(|dst| {
                ring.copy_up_to(dst.len(), &mut |i, b| {
                    if let Some(cell) = dst.get(i) {
                        cell.set(b);
                    }
                })
            })
            .unwrap_or((0, 0));
        if reports == 0 {
            return Delivery::NotNow;
        }
        // Else no batch would ever be delivered again: the batch is not marked out.
        match kernel_data.schedule_upcall(to.1, (reports, bytes, dropped)) {
            Ok(()) => {
                ring.discard(reports);
                Delivery::Delivered
            }
            Err(_) => Delivery::NotNow,
        }
    });
    match delivered {
        Ok(delivery) => delivery,
        Err(e) if gone(e) => {
            owner.clear();
            Delivery::ConsumerGone
        }
        Err(_) => Delivery::NotNow,
    }
}

/// Whether the `owner` still exists; one gone for good clears it.
pub fn owner_present<T: Default, U: UpcallSize, R: AllowRoSize, W: AllowRwSize>(
    apps: &Grant<T, U, R, W>,
    owner: &OptionalCell<ProcessId>,
) -> bool {
    match owner.get() {
        Some(process) => match apps.enter(process, |_, _| ()) {
            Ok(()) => true,
            Err(e) if gone(e) => {
                owner.clear();
                false
            }
            Err(_) => true,
        },
        None => false,
    }
}

impl<'a, B: BleAdvertisementDriver<'a> + RxControl + TryTransmit, A: Alarm<'a>> SyscallDriver
    for BulkScan<'a, B, A>
{
    fn command(
        &self,
        command_num: usize,
        _: usize,
        _: usize,
        processid: ProcessId,
    ) -> CommandReturn {
        match command_num {
            command::EXISTS => CommandReturn::success(),
            command::START => {
                if let Some(owner) = self.owner.get() {
                    if owner == processid {
                        return CommandReturn::failure(ErrorCode::ALREADY);
                    }
                    // A previous owner that no longer exists gives the scanner up.
                    if self.apps.enter(owner, |_, _| ()).is_ok() {
                        return CommandReturn::failure(ErrorCode::BUSY);
                    }
                    self.stop();
                }
                self.owner.set(processid);
                self.scan.start();
                CommandReturn::success()
            }
            command::STOP => {
                if self.owner.get() != Some(processid) {
                    return CommandReturn::failure(ErrorCode::RESERVE);
                }
                self.stop();
                CommandReturn::success()
            }
            command::RELEASE => {
                if self.owner.get() != Some(processid) {
                    return CommandReturn::failure(ErrorCode::RESERVE);
                }
                self.scan.release();
                CommandReturn::success()
            }
            command::ADVERTISE => {
                if self.owner.get() != Some(processid) {
                    return CommandReturn::failure(ErrorCode::RESERVE);
                }
                let mut adv = [0u8; MAX_ADV_DATA];
                let copied = self
                    .apps
                    .enter(processid, |_, kernel_data| {
                        kernel_data
                            .get_readonly_processbuffer(ro_allow::ADV_DATA)
                            .and_then(|b| {
                                b.enter(|data| {
                                    if data.len() > MAX_ADV_DATA {
                                        return Err(ErrorCode::SIZE);
                                    }
                                    data.copy_to_slice(&mut adv[..data.len()]);
                                    Ok(data.len())
                                })
                            })
                            .unwrap_or(Err(ErrorCode::INVAL))
                    })
                    .unwrap_or(Err(ErrorCode::NOMEM));
                match copied {
                    Ok(len) => self.scan.advertise(&adv[..len]).into(),
                    Err(e) => CommandReturn::failure(e),
                }
            }
            _ => CommandReturn::failure(ErrorCode::NOSUPPORT),
        }
    }

    fn allocate_grant(&self, processid: ProcessId) -> Result<(), kernel::process::Error> {
        self.apps.enter(processid, |_, _| {})
    }
}
