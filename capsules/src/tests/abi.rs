//! The capsules speak the numbers of `dfu-abi`, and those numbers agree with the kernel's.

use dfu_abi::error;
use dfu_abi::update::detail;
use kernel::ErrorCode;
use update_region::Error;

use crate::staged_update::{error_code, kernel_error_code, policy_error_code};

#[test]
fn abi_error_numbers_are_the_kernels_error_codes() {
    let pairs = [
        (error::FAIL, ErrorCode::FAIL),
        (error::BUSY, ErrorCode::BUSY),
        (error::ALREADY, ErrorCode::ALREADY),
        (error::OFF, ErrorCode::OFF),
        (error::RESERVE, ErrorCode::RESERVE),
        (error::INVAL, ErrorCode::INVAL),
        (error::SIZE, ErrorCode::SIZE),
        (error::CANCEL, ErrorCode::CANCEL),
        (error::NOMEM, ErrorCode::NOMEM),
        (error::NOSUPPORT, ErrorCode::NOSUPPORT),
        (error::NODEVICE, ErrorCode::NODEVICE),
        (error::UNINSTALLED, ErrorCode::UNINSTALLED),
        (error::NOACK, ErrorCode::NOACK),
    ];
    for (abi, kernel) in pairs {
        assert_eq!(abi, kernel as u32, "{kernel:?}");
        assert_eq!(abi as usize, usize::from(kernel), "{kernel:?}");
        assert_eq!(kernel_error_code(abi), kernel, "{kernel:?}");
    }
    assert_eq!(kernel_error_code(0), ErrorCode::FAIL, "not an error code");
    assert_eq!(kernel_error_code(u32::MAX), ErrorCode::FAIL);
}

/// One value of every policy error.
const ERRORS: [Error; 17] = [
    Error::BadConfig,
    Error::NotOwner,
    Error::Busy,
    Error::NotStarted,
    Error::NoSession,
    Error::AlreadyFinalized,
    Error::OutOfBounds { offset: 1, len: 2 },
    Error::Unaligned { offset: 3 },
    Error::BadLength { len: 4 },
    Error::NotErased { offset: 5 },
    Error::NotBlank { offset: 6 },
    Error::Flash,
    Error::ImageBadMagic,
    Error::ImageBadLayout,
    Error::ImageHashMissing,
    Error::ImageHashMismatch,
    Error::NothingToConfirm,
];

#[test]
fn every_policy_error_has_its_own_abi_detail_and_image_refusals_are_the_image_range() {
    let mut seen = std::vec::Vec::new();
    for e in ERRORS {
        let code = policy_error_code(e) as u32;
        assert_ne!(code, detail::NONE, "{e:?} reported as no detail");
        assert!(!seen.contains(&code), "{e:?} shares detail {code}");
        seen.push(code);
        let image = matches!(
            e,
            Error::ImageBadMagic
                | Error::ImageBadLayout
                | Error::ImageHashMissing
                | Error::ImageHashMismatch
        );
        assert_eq!(detail::IMAGE_REFUSED.contains(&code), image, "{e:?}");
        // A refused image is a failure, not a refused request.
        if image {
            assert_eq!(error_code(e) as u32, error::FAIL, "{e:?}");
        }
    }
    assert_eq!(policy_error_code(Error::Flash), detail::FLASH as usize);
    assert_eq!(
        policy_error_code(Error::NothingToConfirm),
        detail::NOTHING_TO_CONFIRM as usize
    );
}

#[test]
fn session_states_report_their_abi_numbers() {
    use dfu_abi::update::state;
    use update_region::SessionState;
    assert_eq!(SessionState::Idle.abi_state(), state::IDLE);
    assert_eq!(SessionState::Staging.abi_state(), state::STAGING);
    assert_eq!(SessionState::Finalized.abi_state(), state::FINALIZED);
}
