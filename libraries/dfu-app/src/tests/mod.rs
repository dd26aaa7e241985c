//! Unit tests of the pieces; the whole app runs on libtock-rs's fake kernel in `apps/dfu` and on
//! the simulated board in `tools/ota-sim`.
extern crate std;

use std::vec;
use std::vec::Vec;

use adv_transfer::StageError;
use dfu_abi::error;
use dfu_abi::update::detail;

use crate::{adv_data_in, reports_in, stage_error, Backoff, OpError, RETRY_FIRST_MS, RETRY_MAX_MS};

#[test]
fn policy_refusals_map_to_the_receivers_errors() {
    let failed = |code, detail| OpError::Failed { code, detail };
    assert_eq!(
        stage_error(false, failed(error::NOACK, detail::NOT_ERASED)),
        StageError::NotErased
    );
    assert_eq!(
        stage_error(false, OpError::Refused(error::NOACK)),
        StageError::NotErased
    );
    assert_eq!(
        stage_error(false, failed(error::NOACK, detail::NOT_BLANK)),
        StageError::NotBlank
    );
    for d in detail::IMAGE_REFUSED.chain(detail::STREAM_REFUSED) {
        assert_eq!(
            stage_error(true, failed(error::FAIL, d)),
            StageError::Rejected
        );
        // Only finalize's check is a verdict on the image.
        assert_eq!(
            stage_error(false, failed(error::FAIL, d)),
            StageError::Failed
        );
    }
    // A flash failure during finalize is not a verdict on the image.
    assert_eq!(
        stage_error(true, failed(error::FAIL, detail::FLASH)),
        StageError::Failed
    );
    assert_eq!(
        stage_error(false, OpError::Refused(error::BUSY)),
        StageError::Failed
    );
    assert_eq!(stage_error(true, OpError::TimedOut), StageError::Failed);
}

#[test]
fn batches_yield_adv_data_of_advertising_pdus_only() {
    let mut batch = Vec::new();
    // ADV_NONCONN_IND with 3 bytes of AdvData.
    batch.extend([11, 37, 0x02, 9, 1, 2, 3, 4, 5, 6, 0xAA, 0xBB, 0xCC]);
    // SCAN_REQ (type 3): no AdvData.
    batch.extend([14, 38, 0x03, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // ADV_IND whose header length is shorter than the report: the header wins.
    batch.extend([10, 39, 0x00, 7, 1, 1, 1, 1, 1, 1, 0xDD, 0xEE]);
    // A report too short for AdvA is skipped.
    batch.extend([3, 37, 0x02, 1, 0]);
    // A truncated report ends the batch.
    batch.extend([30, 37, 0x02]);
    let advs: Vec<&[u8]> = adv_data_in(&batch).collect();
    assert_eq!(advs, vec![&[0xAA, 0xBB, 0xCC][..], &[0xDD][..]]);
    // A lone length byte is no report.
    assert_eq!(adv_data_in(&[5]).count(), 0);
    // The advertiser address comes with each AdvData, as sent.
    let addrs: Vec<[u8; 6]> = reports_in(&batch).map(|(a, _)| a).collect();
    assert_eq!(addrs, vec![[1, 2, 3, 4, 5, 6], [1; 6]]);
}

#[test]
fn backoff_doubles_up_to_its_ceiling_and_resets_on_success() {
    let mut b = Backoff::new();
    assert!(b.due(0));
    assert_eq!(b.failed(1_000), RETRY_FIRST_MS);
    assert!(!b.due(1_000 + RETRY_FIRST_MS as u64 - 1));
    assert!(b.due(1_000 + RETRY_FIRST_MS as u64));
    let mut last = 0;
    for _ in 0..20 {
        last = b.failed(0);
    }
    assert_eq!(last, RETRY_MAX_MS);
    assert_eq!(b.remaining(0), RETRY_MAX_MS);
    b.succeeded();
    assert!(b.due(0));
    assert_eq!(b.failed(0), RETRY_FIRST_MS);
}

#[test]
fn install_refusals_are_verdicts_and_busy_is_retried() {
    use crate::install_error;
    use dfu_abi::app::detail as app;
    let failed = |detail| OpError::Failed {
        code: error::FAIL,
        detail,
    };
    for d in [
        app::NOT_DFU,
        app::NOT_TBF,
        app::BAD_HEADER,
        app::NOT_APP,
        app::UNSIGNED,
        app::NOT_NEWER,
        app::SELF_UPDATE,
        app::STORE,
        app::UNLOAD,
        app::LOAD,
        app::KEY_REJECTED,
    ] {
        assert_eq!(install_error(failed(d)), StageError::Rejected, "detail {d}");
    }
    for d in [app::BUSY, app::STAGING_FLASH, app::NONE] {
        assert_eq!(install_error(failed(d)), StageError::Failed, "detail {d}");
    }
    assert_eq!(install_error(OpError::TimedOut), StageError::Failed);
    assert_eq!(
        install_error(OpError::Refused(error::BUSY)),
        StageError::Failed
    );
    assert_eq!(
        install_error(OpError::Refused(error::NODEVICE)),
        StageError::Rejected
    );
}

mod bearers;
