//! `tock-ota receive` taking an app session: what the DFU app does with a completed one, up to
//! the kernel's `INSTALL` (`docs/app-updates.md`, "Over the air").
//!
//! The receiver (`adv_transfer`, through `ota_hci::receive`) joins an app session once its
//! target PDU names the app, stages the TBF like a kernel image and, when every block is staged
//! and checked, asks for the install instead of the kernel finalize. The DFU app then calls
//! the app-update driver's `INSTALL` (`dfu_app::Kernel::app_install`, its failure mapped by
//! `dfu_app::install_error`); here the simulated kernel's driver runs the kernel's own install
//! machine (`app_install::Installer`, as `capsules/src/app_update.rs` runs it) over the staged
//! bytes up to the point where a device would start changing: the TBF base and header, the
//! ECDSA P-256 credential (against `--app-key`, or any signature without one), anti-rollback
//! (against `--installed-version`). A refusal is the driver's refusal detail, so the sender
//! hears `Rejected` as it would from a board.
use app_install::{
    Action, Context, Credentials, Event, Failed, Installed, InstalledApps, Installer, Refusal,
    StagedApp, CHUNK, SIGNATURE_LEN,
};
use app_sim::tbf::Keys;
use embedded_storage::nor_flash::ReadNorFlash;

/// Process ids of the stand-in's installed apps: the DFU app and the app being updated.
const DFU: u8 = 0;
const APP: u8 = 1;

/// The app-update driver's checks as `tock-ota receive` runs them, and their last verdict.
pub struct AppCheck {
    /// The board's app keys (`--app-key`); `None`: any credential is taken (not checked).
    keys: Option<Keys>,
    /// The version of the app the device runs (`--installed-version`); `None`: none runs.
    installed_version: Option<u32>,
    /// The last install's verdict.
    pub verdict: Option<Result<(), Refusal>>,
}

/// Credentials when no app key was given: every signature passes (its presence is still
/// required: an unsigned TBF is refused before the credential check).
struct Unchecked;

impl Credentials for Unchecked {
    fn accepts(&self, _digest: &[u8; 32], _signature: &[u8; SIGNATURE_LEN]) -> bool {
        true
    }
}

/// The installed app, if `--installed-version` named one (whatever package name it asks for:
/// the device runs one version of the app the session names).
struct Runs(Option<u32>);

impl InstalledApps<u8> for Runs {
    fn installed(&self, _name: &str, staged_version: u32) -> Option<Installed<u8>> {
        self.0.map(|running| Installed {
            id: APP,
            staged_is_newer: staged_version > running,
        })
    }
}

impl AppCheck {
    pub fn new(keys: Option<Keys>, installed_version: Option<u32>) -> Self {
        AppCheck {
            keys,
            installed_version,
            verdict: None,
        }
    }

    /// Whether the credential is checked against app keys.
    pub fn checks_credential(&self) -> bool {
        self.keys.is_some()
    }

    /// The install machine on the TBF of `len` bytes at `base` of `flash`, until it would
    /// change the device (unload the old version, or write the trial record): `Ok` there, or
    /// its refusal. The verdict is kept in [`AppCheck::verdict`].
    pub fn check<F: ReadNorFlash>(
        &mut self,
        flash: &mut F,
        base: u32,
        len: u32,
    ) -> Result<(), Refusal> {
        let verdict = self.run(flash, base, len);
        self.verdict = Some(verdict);
        verdict
    }

    fn run<F: ReadNorFlash>(&self, flash: &mut F, base: u32, len: u32) -> Result<(), Refusal> {
        let apps = Runs(self.installed_version);
        let credentials: &dyn Credentials = match &self.keys {
            Some(keys) => keys,
            None => &Unchecked,
        };
        let cx = Context {
            apps: &apps,
            credentials,
            dfu: DFU,
        };
        let mut installer = Installer::<u8>::new();
        let mut buf = vec![0u8; CHUNK];
        let mut action = installer.on(Event::Install { len: len as usize }, &cx);
        // The checks read the base, the header, the footers and the integrity region chunk by
        // chunk: at most this many reads.
        for _ in 0..len.div_ceil(CHUNK as u32) + 4 {
            match action {
                Action::Read { offset, len } => {
                    let bytes = buf.get_mut(..len).ok_or(Refusal::StagingFlash)?;
                    let read = flash.read(base + offset, bytes).map_err(|_| Failed);
                    action = installer.on(Event::ReadDone(read.map(|()| &*bytes)), &cx);
                }
                Action::Done(verdict) => return verdict.map(|_| ()),
                // The checks passed: from here on an install changes the device.
                Action::Unload(_)
                | Action::RecordTrial(_)
                | Action::Setup { .. }
                | Action::Write { .. }
                | Action::Finalize
                | Action::Load => return Ok(()),
                // The machine asks for these only after the copy began, or on an event of
                // another phase: neither happens before the unload. Refused, not retried.
                Action::Abort | Action::None => return Err(Refusal::Store),
            }
        }
        // The machine asked for more reads than its checks take: refused, not retried.
        Err(Refusal::Store)
    }
}

/// The package name and version in the staged TBF's header (the installer's own parse), if it
/// has one.
pub fn staged_app(tbf: &[u8]) -> Option<StagedApp> {
    let base: &[u8; 8] = tbf.get(..8)?.try_into().ok()?;
    let (header_len, total_len) = app_install::tbf::check_lengths(base, tbf.len(), CHUNK).ok()?;
    app_install::tbf::check_header(tbf.get(..usize::from(header_len))?, total_len).ok()
}

/// A refusal in words, naming what is wrong and the flag it was checked against.
pub fn refusal_reason(refusal: Refusal, installed_version: Option<u32>) -> String {
    match refusal {
        Refusal::NotTbf => {
            "the staged bytes are not a TBF (version 2) of the announced length".to_string()
        }
        Refusal::BadHeader => {
            "its TBF header does not parse (checksum, TLVs or program header)".to_string()
        }
        Refusal::NotApp => "its TBF has no program header or no package name".to_string(),
        Refusal::Unsigned => "the TBF is unsigned (no ECDSA P-256 credential)".to_string(),
        Refusal::KeyRejected => {
            "its ECDSA P-256 credential does not verify against the app key(s) given with \
             --app-key"
                .to_string()
        }
        Refusal::NotNewer { staged } => format!(
            "v{staged} is not newer than the installed v{} (anti-rollback, --installed-version)",
            installed_version.unwrap_or(0)
        ),
        Refusal::SelfUpdate => "the TBF names the DFU app (no self-update)".to_string(),
        Refusal::StagingFlash => "reading the staged TBF failed".to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use app_sim::tbf::{dev_app_key, key, public, tbf};
    use embedded_storage::nor_flash::ErrorType;

    /// A flash of `bytes` at address `at`.
    struct Mem {
        at: u32,
        bytes: Vec<u8>,
    }

    impl ErrorType for Mem {
        type Error = core::convert::Infallible;
    }

    impl ReadNorFlash for Mem {
        const READ_SIZE: usize = 1;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            let from = (offset - self.at) as usize;
            bytes.copy_from_slice(&self.bytes[from..from + bytes.len()]);
            Ok(())
        }
        fn capacity(&self) -> usize {
            self.bytes.len()
        }
    }

    fn check(
        tbf: &[u8],
        keys: Option<Vec<p256::ecdsa::VerifyingKey>>,
        installed: Option<u32>,
    ) -> Result<(), Refusal> {
        let mut flash = Mem {
            at: 0x1000,
            bytes: tbf.to_vec(),
        };
        let mut c = AppCheck::new(keys.map(Keys), installed);
        let verdict = c.check(&mut flash, 0x1000, tbf.len() as u32);
        assert_eq!(c.verdict, Some(verdict));
        verdict
    }

    #[test]
    fn the_installers_checks_decide() {
        let dev = dev_app_key();
        let signed = tbf("sensor", 4, Some(&dev), 2048);
        let dev_keys = || Some(vec![public(&dev)]);
        assert_eq!(check(&signed, dev_keys(), None), Ok(()));
        assert_eq!(check(&signed, dev_keys(), Some(3)), Ok(()));
        assert_eq!(check(&signed, None, Some(3)), Ok(()));
        assert_eq!(
            check(&signed, dev_keys(), Some(4)),
            Err(Refusal::NotNewer { staged: 4 })
        );
        assert_eq!(
            check(&signed, Some(vec![public(&key(9))]), None),
            Err(Refusal::KeyRejected)
        );
        // Without a key the signature is not checked, but it must be there.
        let unsigned = tbf("sensor", 4, None, 2048);
        assert_eq!(check(&unsigned, None, None), Err(Refusal::Unsigned));
        // A byte changed after signing.
        let mut changed = signed.clone();
        changed[600] ^= 1;
        assert_eq!(check(&changed, dev_keys(), None), Err(Refusal::KeyRejected));
        // Not a TBF, and a header whose checksum is off.
        assert_eq!(check(&[0xAB; 64], None, None), Err(Refusal::NotTbf));
        let mut bad = signed.clone();
        bad[20] ^= 1;
        assert_eq!(check(&bad, None, None), Err(Refusal::BadHeader));
        let app = staged_app(&signed).unwrap();
        assert_eq!((app.name(), app.version), ("sensor", 4));
        assert!(staged_app(&bad).is_none());
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let r = refusal_reason(Refusal::NotNewer { staged: 3 }, Some(9));
        assert!(
            r.contains("v3") && r.contains("v9") && r.contains("--installed-version"),
            "{r}"
        );
        assert!(refusal_reason(Refusal::KeyRejected, None).contains("--app-key"));
        assert!(refusal_reason(Refusal::Unsigned, None).contains("unsigned"));
    }
}
