# Sourced by the .ci scripts: the project root, step headings, and where device builds land.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Cargo reads a relative CARGO_TARGET_DIR against its working directory, and .ci/tock-cargo runs
# inside each workspace: pin it to the root.
if [ -n "${CARGO_TARGET_DIR:-}" ] && [ "${CARGO_TARGET_DIR#/}" = "$CARGO_TARGET_DIR" ]; then
    export CARGO_TARGET_DIR="$root/$CARGO_TARGET_DIR"
fi

# The target directory of a workspace (root: ".").
target_dir() {
    if [ -n "${CARGO_TARGET_DIR:-}" ]; then echo "$CARGO_TARGET_DIR"
    elif [ "$1" = . ]; then echo "$root/target"
    else echo "$root/$1/target"; fi
}

# A heading in the log, with the time since the first one.
ci_start=${ci_start:-$(date +%s)}
export ci_start
step() {
    local t=$(($(date +%s) - ci_start))
    printf '\n==== [%02d:%02d] %s ====\n' $((t / 60)) $((t % 60)) "$*"
}

tock_cargo() { bash "$root/.ci/tock-cargo" "$@"; }

# An ELF's loaded bytes as a flat binary (what is flashed), with whichever objcopy is on PATH.
objcopy_bin() {
    local tool
    for tool in llvm-objcopy arm-none-eabi-objcopy rust-objcopy; do
        if command -v "$tool" >/dev/null; then "$tool" -O binary "$1" "$2"; return; fi
    done
    echo "no objcopy (llvm-objcopy, arm-none-eabi-objcopy or rust-objcopy) on PATH" >&2
    return 1
}
