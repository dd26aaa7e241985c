"""Gives a patched build's Cargo.lock its pinned git sources back.

A build with .ci/tock-vendor's [patch] config records every crate of the vendored upstream trees as a
path dependency (no `source` line). This puts back the `source` line cargo writes for the pinned git
dependencies, for each crate whose manifest lies in a vendored tree, and drops `[[patch.unused]]`.
Usage: python3 relock.py PATCH-CONFIG CARGO-LOCK
"""
import pathlib
import re
import sys
import tomllib

PINNED = {
    "tock": "git+https://github.com/tock/tock?rev=65608d717a1da9945deffec37fb3afa6fda03d29"
    "#65608d717a1da9945deffec37fb3afa6fda03d29",
    "libtock-rs": "git+https://github.com/tock/libtock-rs?rev=0ff277ba7f33c69a2bf845bc407b4c11cdc9fb14"
    "#0ff277ba7f33c69a2bf845bc407b4c11cdc9fb14",
}


def vendored_crates(config: str) -> dict:
    """Crate name -> git source, for every package manifest under the vendored trees."""
    roots = {}
    for line in open(config):
        m = re.match(r'\S+ = \{ path = "(.*)" \}', line.strip())
        if m:
            path = pathlib.Path(m.group(1))
            for tree in PINNED:
                parts = path.parts
                if tree in parts:
                    roots[tree] = pathlib.Path(*parts[: parts.index(tree) + 1])
    crates = {}
    for tree, root in roots.items():
        for manifest in root.rglob("Cargo.toml"):
            try:
                name = tomllib.loads(manifest.read_text()).get("package", {}).get("name")
            except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                continue
            if isinstance(name, str):
                crates.setdefault(name, PINNED[tree])
    return crates


def main() -> None:
    config, lock = sys.argv[1], sys.argv[2]
    crates = vendored_crates(config)
    blocks = open(lock).read().split("\n\n")
    out = []
    for block in blocks:
        if block.startswith("[[patch.unused]]"):
            continue
        if block.startswith("[[package]]") and "\nsource = " not in block:
            m = re.search(r'^name = "([^"]+)"$', block, re.M)
            if m and m.group(1) in crates:
                block = re.sub(
                    r'^(version = "[^"]+")$',
                    lambda v: f'{v.group(1)}\nsource = "{crates[m.group(1)]}"',
                    block,
                    count=1,
                    flags=re.M,
                )
        out.append(block)
    text = "\n\n".join(out).rstrip("\n") + "\n"
    open(lock, "w").write(text)


if __name__ == "__main__":
    main()
