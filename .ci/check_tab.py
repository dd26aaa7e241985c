"""Checks the DFU app's TAB against the key the DK kernel trusts as the DFU signing key.

Usage: python check_tab.py TAB BOARD-CONFIG-RS IDENTITY-RS

Reads the keys where the kernel gets them: `VERIFYING_KEYS` in the board's board_config.rs (64-byte
x‖y P-256 points) and the DFU key's index, `DFU_KEY_INDEX`, in the capsules' identity.rs. With
tockloader's TAB API, every TBF in the TAB must carry an ECDSA P-256 credential that verifies
against the DFU key, must not verify against any other key in the list, and must stop verifying
when one byte of the program changes.
"""
import contextlib
import io
import re
import sys

from Crypto.PublicKey import ECC
from tockloader.tab import TAB
from tockloader.tbfh import TBFFooterTLVCredentials

ECDSA_P256 = TBFFooterTLVCredentials.CREDENTIALS_TYPE_ECDSAP256


def board_keys(board_config: str) -> list[bytes]:
    text = open(board_config).read()
    m = re.search(r"pub const VERIFYING_KEYS\s*:[^=]*=\s*\[(.*?)\];", text, re.S)
    if not m:
        sys.exit(f"{board_config}: no `pub const VERIFYING_KEYS: ... = [...];`")
    keys = [bytes(int(b, 16) for b in re.findall(r"0x([0-9a-fA-F]{2})", inner))
            for inner in re.findall(r"\[([^\[\]]*)\]", m.group(1))]
    if not keys or any(len(k) != 64 for k in keys):
        sys.exit(f"{board_config}: VERIFYING_KEYS must be 64-byte keys, found lengths {[len(k) for k in keys]}")
    return keys


def dfu_key_index(identity: str) -> int:
    m = re.search(r"pub const DFU_KEY_INDEX\s*:\s*usize\s*=\s*(\d+)\s*;", open(identity).read())
    if not m:
        sys.exit(f"{identity}: no `pub const DFU_KEY_INDEX: usize = N;`")
    return int(m.group(1))


def der(point: bytes) -> bytes:
    """SubjectPublicKeyInfo DER of an x‖y P-256 point (what tockloader's verifier imports)."""
    key = ECC.construct(curve="P-256", point_x=int.from_bytes(point[:32], "big"),
                        point_y=int.from_bytes(point[32:], "big"))
    return key.export_key(format="DER")


def ecdsa_verdicts(tab_path: str, tbf_name: str, key: bytes, flip_byte: bool = False) -> list[str]:
    """`verified` of each ECDSA P-256 credential of one TBF checked against one key ("yes", or
    "unknown" when the signature does not verify)."""
    app = TAB(tab_path).extract_tbf(tbf_name)
    if flip_byte:
        tbf = app.tbfs[0]
        tbf.binary = bytes([tbf.binary[0] ^ 0x01]) + tbf.binary[1:]
    # tockloader prints each failed verification; the verdicts say it all.
    with contextlib.redirect_stdout(io.StringIO()):
        app.verify_credentials([der(key)])
    return [tlv.verified for tbf in app.tbfs for tlv in tbf.tbff.tlvs
            if isinstance(tlv, TBFFooterTLVCredentials) and tlv.credentials_type == ECDSA_P256]


def main() -> None:
    tab_path, board_config, identity = sys.argv[1:4]
    keys = board_keys(board_config)
    for i, key in enumerate(keys):
        try:
            der(key)
        except ValueError as e:
            sys.exit(f"{board_config}: VERIFYING_KEYS[{i}] is not a P-256 public key ({e})")
    index = dfu_key_index(identity)
    if index >= len(keys):
        sys.exit(f"DFU_KEY_INDEX {index} but board_config.rs lists {len(keys)} keys")
    names = TAB(tab_path).get_tbf_names()
    if not names:
        sys.exit(f"{tab_path}: no TBF")
    errors = []
    for name in names:
        before = len(errors)
        verdicts = ecdsa_verdicts(tab_path, name, keys[index])
        if not verdicts:
            errors.append(f"{name}: no ECDSA P-256 credential")
        elif verdicts != ["yes"] * len(verdicts):
            errors.append(f"{name}: credential does not verify against key {index}: {verdicts}")
        for other, key in enumerate(keys):
            if other != index and "yes" in ecdsa_verdicts(tab_path, name, key):
                errors.append(f"{name}: credential also verifies against key {other}")
        if "yes" in ecdsa_verdicts(tab_path, name, keys[index], flip_byte=True):
            errors.append(f"{name}: credential still verifies with a program byte changed")
        if len(errors) == before:
            print(f"{name}: ECDSA P-256 credential verifies against the DFU key (board_config.rs "
                  f"VERIFYING_KEYS[{index}] = {keys[index][:8].hex()}…), not against the other "
                  f"{len(keys) - 1}, and not after a byte of the program changes")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
