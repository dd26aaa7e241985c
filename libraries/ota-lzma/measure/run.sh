#!/usr/bin/env bash
# Figures for docs/image-format.md ("Decoding on the device"): code size of the decoder on
# thumbv7em-none-eabihf at opt-level z, s and 3 (every loaded section), and the instructions
# decoding IMAGE's payload takes on a Cortex-M4 (Unicorn emulator; the output is checked).
#   bash libraries/ota-lzma/measure/run.sh IMAGE PLAIN
# IMAGE: an imgtool `--compression lzma2|lzma2armthumb` image; PLAIN: the payload it was made
# from (DECOMP_SIZE bytes). Needs arm-none-eabi-ld/objcopy/size/nm and cmake (Unicorn).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
image="$(realpath "$1")"
plain="$(realpath "$2")"
out="${CARGO_TARGET_DIR:-$here/../../../target}/ota-lzma-measure"
mkdir -p "$out"
# The payload and its parameters, from the image's header and protected TLVs.
read -r len thumb < <(python3 - "$image" "$out/payload.bin" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
_, _, hs, prot, size, flags = struct.unpack('<IIHHII', d[:20])
open(sys.argv[2], 'wb').write(d[hs:hs + size])
o, end, n = hs + size + 4, hs + size + prot, None
while o < end:
    k, l = struct.unpack('<HH', d[o:o + 4])
    if k == 0x70:
        n = struct.unpack('<I', d[o + 4:o + 8])[0]
    o += 4 + l
print(n, 1 if flags & 0x800 else 0)
PY
)
export OTA_LZMA_PAYLOAD="$out/payload.bin" OTA_LZMA_LEN="$len" OTA_LZMA_THUMB="$thumb"
(cd "$here/host" && CARGO_TARGET_DIR="$out/host" cargo build --release -q)
for prof in release s o3; do
    (cd "$here/fw" && CARGO_TARGET_DIR="$out/fw" cargo build -q --profile "$prof" \
        --target thumbv7em-none-eabihf)
    lib="$out/fw/thumbv7em-none-eabihf/$prof/libota_lzma_measure_fw.a"
    for set in "lzma_start lzma_step" "lzma_start lzma_step image_restart image_step"; do
        args=()
        for s in $set; do args+=(-u "$s"); done
        arm-none-eabi-ld -T "$here/fw/link.ld" --gc-sections "${args[@]}" -e lzma_step "$lib" \
            -o "$out/size.elf"
        bytes=$(arm-none-eabi-size -A "$out/size.elf" |
            awk '/^\.(text|rodata|data|ARM\.exidx)/ {t += $2} END {print t}')
        echo "$prof [$set]: $bytes B loaded"
    done
    arm-none-eabi-ld -T "$here/fw/link.ld" --gc-sections -u decode_all -e decode_all "$lib" \
        -o "$out/decode.elf"
    arm-none-eabi-objcopy -O binary -j .text -j .rodata "$out/decode.elf" "$out/flash.bin"
    arm-none-eabi-objcopy -O binary -j .data "$out/decode.elf" "$out/ram.bin"
    entry=$(arm-none-eabi-nm "$out/decode.elf" | awk '/ T decode_all$/ {print $1}')
    echo -n "$prof decode_all: "
    "$out/host/release/ota-lzma-measure-host" "$out/flash.bin" "$out/ram.bin" "$entry" "$plain"
done
