//! `Request::from_command`: the one decoding of staged-update commands (the capsule and the
//! simulated kernel both use it).

use dfu_abi::update::command as c;
use update_region::{Request, TAG_LEN};

fn no_tag() -> Result<[u8; TAG_LEN], &'static str> {
    panic!("the tag is read for BEGIN alone")
}

#[test]
fn policy_commands_become_their_requests_with_the_arguments() {
    let cases = [
        (c::ERASE, Request::Erase { offset: 7 }),
        (c::WRITE, Request::Write { offset: 7, len: 9 }),
        (c::READ, Request::Read { offset: 7, len: 9 }),
        (c::FINALIZE, Request::Finalize),
        (c::ABORT, Request::Abort),
        (c::CONFIRM, Request::Confirm),
    ];
    for (command, want) in cases {
        assert_eq!(
            Request::from_command(command, 7, 9, no_tag),
            Some(Ok(want)),
            "command {command}"
        );
    }
}

#[test]
fn begin_takes_its_tag_from_the_caller_and_passes_its_error_on() {
    let tag = [0x5A; TAG_LEN];
    assert_eq!(
        Request::from_command(c::BEGIN, 4096, 0, || Ok::<_, ()>(tag)),
        Some(Ok(Request::Begin {
            tag,
            image_len: 4096
        }))
    );
    assert_eq!(
        Request::from_command(c::BEGIN, 4096, 0, || Err("no tag buffer")),
        Some(Err("no tag buffer"))
    );
}

#[test]
fn commands_the_driver_answers_itself_are_no_request() {
    for command in [
        c::EXISTS,
        c::STATUS,
        c::TAG,
        c::REBOOT,
        c::REBOOT + 1,
        u32::MAX,
    ] {
        assert_eq!(
            Request::from_command(command, 0, 0, no_tag),
            None,
            "command {command}"
        );
    }
}
