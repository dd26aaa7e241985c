//! The staged-update core: access control, bounds, and the boot-request path.

use core::num::NonZeroU32;
use std::boxed::Box;
use std::cell::RefCell;
use std::vec;
use std::vec::Vec;

use kernel::process::ShortId;
use kernel::ErrorCode;
use update_region::{Completion, Config, Error, Request, SessionState, MAX_POLICY_READ, TAG_LEN};

use super::fake_nor::FakeNor;
use super::image::{image, image_hash};
use crate::nor::AsyncNor;
use crate::staged_update::{
    caller_id, command, error_code, policy_error_code, StagedUpdate, StagedUpdateClient, BUF_LEN,
};

const DFU: u32 = 0x0D0F_0001;
const CAPACITY: usize = 8 * 1024 * 1024;
const REQUEST_SECTOR: core::ops::Range<usize> = 0..4096;

fn dfu() -> ShortId {
    ShortId::Fixed(NonZeroU32::new(DFU).unwrap())
}

type Done = (usize, Result<Completion, Error>, Vec<u8>);

#[derive(Default)]
struct Recorder {
    done: RefCell<Vec<Done>>,
}

impl StagedUpdateClient for Recorder {
    fn request_done(&self, command: usize, result: Result<Completion, Error>, read: &[u8]) {
        self.done
            .borrow_mut()
            .push((command, result, read.to_vec()));
    }
}

struct Rig {
    flash: &'static FakeNor,
    core: &'static StagedUpdate<'static, FakeNor>,
    recorder: &'static Recorder,
}

impl Rig {
    fn new() -> Rig {
        let rig = Rig::booted(false);
        assert!(
            rig.core.status().is_some(),
            "the start-up scan did not finish"
        );
        rig
    }

    /// As on the board: the flash reports ready and the core scans the region; with
    /// `refuse_first_read` the scan's first flash operation fails to start.
    fn booted(refuse_first_read: bool) -> Rig {
        let flash = FakeNor::new(CAPACITY);
        flash.refuse_next.set(refuse_first_read);
        let data: &'static mut [u8] = Box::leak(vec![0u8; BUF_LEN].into_boxed_slice());
        let scratch: &'static mut [u8] = Box::leak(vec![0u8; MAX_POLICY_READ].into_boxed_slice());
        let core = Box::leak(Box::new(
            StagedUpdate::new(flash, Config::nrf52840dk(DFU), data, scratch).unwrap(),
        ));
        let recorder: &'static Recorder = Box::leak(Box::default());
        flash.set_nor_client(core);
        core.set_client(recorder);
        crate::nor::AsyncNorClient::ready(core);
        flash.run();
        assert!(
            recorder.done.borrow().is_empty(),
            "start-up is not reported as a request"
        );
        Rig {
            flash,
            core,
            recorder,
        }
    }

    /// Run `request` as `caller` to completion: `Err` is the synchronous refusal.
    fn request(
        &self,
        caller: ShortId,
        cmd: usize,
        request: Request,
        data: Option<&[u8]>,
    ) -> Result<(Result<Completion, Error>, Vec<u8>), ErrorCode> {
        let fill = |dst: &mut [u8]| -> Result<(), ErrorCode> {
            let src = data.unwrap_or(&[]);
            if src.len() < dst.len() {
                return Err(ErrorCode::INVAL);
            }
            dst.copy_from_slice(&src[..dst.len()]);
            Ok(())
        };
        let fill_ref: &dyn Fn(&mut [u8]) -> Result<(), ErrorCode> = &fill;
        self.core
            .request(caller, cmd, request, data.map(|_| fill_ref))?;
        self.flash.run();
        let (done_cmd, result, read) = self
            .recorder
            .done
            .borrow_mut()
            .pop()
            .expect("an accepted request ends with a completion");
        assert_eq!(done_cmd, cmd);
        Ok((result, read))
    }

    fn owner(
        &self,
        cmd: usize,
        request: Request,
        data: Option<&[u8]>,
    ) -> Result<Completion, Error> {
        self.request(dfu(), cmd, request, data)
            .expect("owner request accepted")
            .0
    }

    fn request_sector(&self) -> Vec<u8> {
        self.flash.memory.borrow()[REQUEST_SECTOR].to_vec()
    }
}

/// Begin, erase every sector, write `img` in `BUF_LEN` pieces (last piece first).
fn stage(rig: &Rig, img: &[u8]) {
    let tag = [0x5A; TAG_LEN];
    assert_eq!(
        rig.owner(
            command::BEGIN,
            Request::Begin {
                tag,
                image_len: img.len() as u32
            },
            None
        ),
        Ok(Completion::Begun)
    );
    for offset in (0..img.len() as u32).step_by(4096) {
        assert_eq!(
            rig.owner(command::ERASE, Request::Erase { offset }, None),
            Ok(Completion::Erased)
        );
    }
    let pieces: Vec<(usize, &[u8])> = img
        .chunks(BUF_LEN)
        .enumerate()
        .map(|(i, c)| (i * BUF_LEN, c))
        .collect();
    for (offset, piece) in pieces.into_iter().rev() {
        assert_eq!(
            rig.owner(
                command::WRITE,
                Request::Write {
                    offset: offset as u32,
                    len: piece.len() as u32
                },
                Some(piece)
            ),
            Ok(Completion::Written)
        );
    }
}

fn all_requests() -> Vec<(usize, Request)> {
    vec![
        (
            command::BEGIN,
            Request::Begin {
                tag: [0; TAG_LEN],
                image_len: 4096,
            },
        ),
        (command::ERASE, Request::Erase { offset: 0 }),
        (command::WRITE, Request::Write { offset: 0, len: 16 }),
        (command::READ, Request::Read { offset: 0, len: 16 }),
        (command::FINALIZE, Request::Finalize),
        (command::ABORT, Request::Abort),
        (command::CONFIRM, Request::Confirm),
    ]
}

#[test]
fn only_a_fixed_short_id_can_be_a_caller() {
    assert_eq!(caller_id(ShortId::LocallyUnique), None);
    assert_eq!(caller_id(dfu()), Some(DFU));
}

#[test]
fn every_request_from_a_non_dfu_process_gets_nodevice_and_touches_no_flash() {
    let rig = Rig::new();
    let other = ShortId::Fixed(NonZeroU32::new(DFU + 1).unwrap());
    let before = rig.flash.memory.borrow().clone();
    let ops = rig.flash.operations.get();
    for caller in [ShortId::LocallyUnique, other] {
        assert!(!rig.core.is_owner(caller));
        for (cmd, request) in all_requests() {
            let data = [0u8; 16];
            let owner_data = (cmd == command::WRITE).then_some(&data[..]);
            let result = rig.request(caller, cmd, request, owner_data);
            assert_eq!(
                result.unwrap_err(),
                ErrorCode::NODEVICE,
                "{request:?} from {:?}",
                caller_id(caller)
            );
        }
    }
    assert_eq!(
        rig.flash.operations.get(),
        ops,
        "a refused caller caused flash operations"
    );
    assert!(
        *rig.flash.memory.borrow() == before,
        "a refused caller changed flash"
    );
    assert!(rig.recorder.done.borrow().is_empty());
}

#[test]
fn the_dfu_process_stages_and_finalize_writes_the_boot_request_from_the_kernel() {
    let rig = Rig::new();
    let img = image(9000);
    stage(&rig, &img);
    assert!(
        rig.request_sector().iter().all(|&b| b == 0xFF),
        "nothing but finalize may write the request sector"
    );
    // Read back through the driver: the bytes are returned with the completion.
    let (result, read) = rig
        .request(
            dfu(),
            command::READ,
            Request::Read {
                offset: 1000,
                len: 300,
            },
            None,
        )
        .unwrap();
    assert_eq!(result, Ok(Completion::Read));
    assert_eq!(read, img[1000..1300]);

    let finalized = rig.owner(command::FINALIZE, Request::Finalize, None);
    let Ok(Completion::Finalized {
        sequence,
        image_len,
        image_hash: hash,
    }) = finalized
    else {
        panic!("finalize failed: {finalized:?}");
    };
    assert_eq!(image_len, img.len() as u32);
    assert_eq!(hash, image_hash(&img));
    let (newest, _) = control_area::scan(&rig.request_sector());
    let record = newest.expect("a boot request record in the request sector");
    assert_eq!(record.kind, control_area::RecordKind::BootRequest);
    assert_eq!(record.sequence, sequence);
    assert_eq!(record.image_len, img.len() as u32);
    assert_eq!(record.image_hash, image_hash(&img));
    assert_eq!(rig.core.status().unwrap().state, SessionState::Finalized);

    // After the trial boot: confirm appends a Confirm record for the same image.
    let confirmed = rig.owner(command::CONFIRM, Request::Confirm, None);
    assert!(
        matches!(confirmed, Ok(Completion::Confirmed { .. })),
        "{confirmed:?}"
    );
    let (newest, _) = control_area::scan(&rig.request_sector());
    let record = newest.unwrap();
    assert_eq!(record.kind, control_area::RecordKind::Confirm);
    assert_eq!(record.image_hash, image_hash(&img));
}

#[test]
fn a_corrupted_image_is_refused_and_no_boot_request_is_written() {
    let rig = Rig::new();
    let mut img = image(5000);
    img[100] ^= 0x01;
    stage(&rig, &img);
    let result = rig.owner(command::FINALIZE, Request::Finalize, None);
    assert_eq!(result, Err(Error::ImageHashMismatch));
    assert_eq!(error_code(Error::ImageHashMismatch), ErrorCode::FAIL);
    assert_eq!(
        policy_error_code(Error::ImageHashMismatch),
        dfu_abi::update::detail::IMAGE_HASH_MISMATCH as usize
    );
    assert_eq!(control_area::scan(&rig.request_sector()).0, None);
}

#[test]
fn out_of_bounds_oversized_and_unerased_requests_are_refused_before_touching_flash() {
    let rig = Rig::new();
    let img = image(6000);
    let tag = [1; TAG_LEN];
    rig.owner(
        command::BEGIN,
        Request::Begin {
            tag,
            image_len: img.len() as u32,
        },
        None,
    )
    .unwrap();
    let ops = rig.flash.operations.get();
    let big = vec![0u8; BUF_LEN + 1];
    let cases: Vec<(usize, Request, Option<&[u8]>, ErrorCode)> = vec![
        // Bigger than the kernel buffer.
        (
            command::WRITE,
            Request::Write {
                offset: 0,
                len: BUF_LEN as u32 + 1,
            },
            Some(&big[..]),
            ErrorCode::SIZE,
        ),
        (
            command::READ,
            Request::Read {
                offset: 0,
                len: BUF_LEN as u32 + 1,
            },
            None,
            ErrorCode::SIZE,
        ),
        // Past the declared image, and at an offset that would overflow.
        (
            command::WRITE,
            Request::Write {
                offset: img.len() as u32,
                len: 1,
            },
            Some(&big[..1]),
            ErrorCode::SIZE,
        ),
        (
            command::WRITE,
            Request::Write {
                offset: u32::MAX - 2,
                len: 8,
            },
            Some(&big[..8]),
            ErrorCode::SIZE,
        ),
        (
            command::ERASE,
            Request::Erase { offset: 0x10_0000 },
            None,
            ErrorCode::SIZE,
        ),
        // Unaligned erase.
        (
            command::ERASE,
            Request::Erase { offset: 100 },
            None,
            ErrorCode::INVAL,
        ),
        // Write into a sector not erased in this session.
        (
            command::WRITE,
            Request::Write { offset: 0, len: 4 },
            Some(&big[..4]),
            ErrorCode::NOACK,
        ),
        // Image too large for the slot.
        (
            command::BEGIN,
            Request::Begin {
                tag,
                image_len: 0x10_0000,
            },
            None,
            ErrorCode::SIZE,
        ),
    ];
    for (cmd, request, data, expected) in cases {
        assert_eq!(
            rig.request(dfu(), cmd, request, data).unwrap_err(),
            expected,
            "{request:?}"
        );
    }
    assert_eq!(rig.flash.operations.get(), ops);
    // Nothing was lost: the session still accepts the image.
    assert_eq!(rig.core.status().unwrap().state, SessionState::Staging);
}

#[test]
fn a_second_write_to_the_same_bytes_is_refused() {
    let rig = Rig::new();
    let img = image(3000);
    stage(&rig, &img);
    let again = rig.owner(
        command::WRITE,
        Request::Write { offset: 0, len: 16 },
        Some(&img[..16]),
    );
    assert_eq!(again, Err(Error::NotBlank { offset: 0 }));
    assert_eq!(error_code(Error::NotBlank { offset: 0 }), ErrorCode::NOACK);
}

#[test]
fn a_busy_core_refuses_a_second_request_and_a_flash_failure_is_reported() {
    let rig = Rig::new();
    rig.core
        .request(
            dfu(),
            command::BEGIN,
            Request::Begin {
                tag: [0; TAG_LEN],
                image_len: 4096,
            },
            None,
        )
        .unwrap();
    assert!(rig.flash.pending().is_some());
    assert_eq!(
        rig.core
            .request(dfu(), command::ABORT, Request::Abort, None)
            .unwrap_err(),
        ErrorCode::BUSY
    );
    rig.flash.run();
    rig.recorder.done.borrow_mut().clear();

    rig.flash.fail_next.set(true);
    let result = rig.owner(command::ERASE, Request::Erase { offset: 0 }, None);
    assert_eq!(result, Err(Error::Flash));
    assert_eq!(error_code(Error::Flash), ErrorCode::FAIL);
}

#[test]
fn finalize_without_a_session_and_confirm_without_a_request_are_refused() {
    let rig = Rig::new();
    assert_eq!(
        rig.request(dfu(), command::FINALIZE, Request::Finalize, None)
            .unwrap_err(),
        ErrorCode::RESERVE
    );
    let confirm = rig.request(dfu(), command::CONFIRM, Request::Confirm, None);
    match confirm {
        Err(code) => assert_eq!(code, ErrorCode::RESERVE),
        Ok((result, _)) => assert_eq!(result, Err(Error::NothingToConfirm)),
    }
    assert_eq!(control_area::scan(&rig.request_sector()).0, None);
}

#[test]
fn completions_that_arrive_before_the_flash_call_returns_are_handled() {
    let rig = Rig::new();
    rig.flash.immediate.set(true);
    let img = image(7000);
    stage(&rig, &img);
    let finalized = rig.owner(command::FINALIZE, Request::Finalize, None);
    assert!(
        matches!(finalized, Ok(Completion::Finalized { .. })),
        "{finalized:?}"
    );
    assert_eq!(
        control_area::scan(&rig.request_sector())
            .0
            .map(|r| r.image_hash),
        Some(image_hash(&img))
    );
}

#[test]
fn status_is_unknown_until_the_start_up_scan_has_read_the_region() {
    let flash = FakeNor::new(CAPACITY);
    let data: &'static mut [u8] = Box::leak(vec![0u8; BUF_LEN].into_boxed_slice());
    let scratch: &'static mut [u8] = Box::leak(vec![0u8; MAX_POLICY_READ].into_boxed_slice());
    let core: &'static StagedUpdate<'static, FakeNor> = Box::leak(Box::new(
        StagedUpdate::new(flash, Config::nrf52840dk(DFU), data, scratch).unwrap(),
    ));
    flash.set_nor_client(core);
    assert!(core.status().is_none());
    crate::nor::AsyncNorClient::ready(core);
    assert!(core.status().is_none(), "status before the scan finished");
    flash.run();
    assert_eq!(core.status().unwrap().state, SessionState::Idle);
}

#[test]
fn a_start_up_scan_that_failed_is_run_again_at_the_next_status_query() {
    let rig = Rig::booted(true);
    // The first scan failed. Asking for the status runs it again, instead of answering BUSY
    // (status unknown) until reset.
    let mut status = rig.core.status();
    for _ in 0..3 {
        if status.is_some() {
            break;
        }
        rig.flash.run();
        status = rig.core.status();
    }
    let status = status.expect("the start-up scan was never retried");
    assert_eq!(status.state, SessionState::Idle);
    // And the core takes requests again: a confirm on a fresh region has nothing to confirm
    // (not BUSY, which is what every request got while the scan had not finished).
    assert_eq!(
        rig.request(dfu(), command::CONFIRM, Request::Confirm, None)
            .err(),
        Some(error_code(Error::NothingToConfirm))
    );
}
