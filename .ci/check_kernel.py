"""Checks that the DK kernel's image lies in its kernel slot and prints its figures.

Usage: python check_kernel.py KERNEL-ELF LAYOUT-LD

The slot is the `rom` region of the board's linker script (layout.ld): what the kernel is linked
against (the bootloader's slot in boot-core's layout must be the same; docs/layout.md). Prints
`.text`'s size, where the image ends (every flash-loaded section but the attribute block) and
where the attribute block lies, and fails unless every flash-loaded byte lies in the slot, the
image ends before the attribute block, and the attribute block ends at the slot's end (where
tockloader looks for it).
"""
import re
import sys

from elftools.elf.elffile import ELFFile


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(0x[0-9a-fA-F_]+|\d+)\s*([KM]?)", text.strip())
    if not m:
        raise ValueError(f"cannot read the size {text!r}")
    value = int(m.group(1).replace("_", ""), 0)
    return value * {"": 1, "K": 1024, "M": 1024 * 1024}[m.group(2)]


def kernel_slot(layout: str) -> tuple[int, int]:
    """(start, end) of the `rom` MEMORY region."""
    m = re.search(r"^\s*rom\s*\([^)]*\)\s*:\s*ORIGIN\s*=\s*([^,]+),\s*LENGTH\s*=\s*([^\s,}]+)",
                  open(layout).read(), re.M)
    if not m:
        sys.exit(f"{layout}: no `rom (...) : ORIGIN = ..., LENGTH = ...` line")
    start = parse_size(m.group(1))
    return start, start + parse_size(m.group(2))


def flash_sections(elf: ELFFile) -> dict[str, tuple[int, int]]:
    """Name -> (load address, size) of every section with bytes in a loaded segment."""
    out = {}
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_filesz"] > 0]
    for sec in elf.iter_sections():
        if sec["sh_type"] == "SHT_NOBITS" or not sec["sh_flags"] & 0x2 or sec["sh_size"] == 0:
            continue  # not allocated, or no bytes in the file
        for seg in loads:
            if seg.section_in_segment(sec):
                out[sec.name] = (seg["p_paddr"] + sec["sh_offset"] - seg["p_offset"], sec["sh_size"])
    return out


def main() -> None:
    elf_path, layout = sys.argv[1], sys.argv[2]
    start, end = kernel_slot(layout)
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        text = elf.get_section_by_name(".text")
        sections = flash_sections(elf)
    if text is None or ".attributes" not in sections:
        sys.exit(f"{elf_path}: no .text or no .attributes section")
    attr_at, attr_len = sections.pop(".attributes")
    image_end = max(addr + size for addr, size in sections.values())
    used = image_end - start
    print(f"kernel slot (rom in layout.ld):   0x{start:08X}..0x{end:08X} ({(end - start) // 1024} KiB)")
    print(f".text:                            {text['sh_size']:,} B")
    print(f"image (all but the attributes):   0x{start:08X}..0x{image_end:08X} "
          f"({used:,} B, {100 * used / (end - start):.1f} % of the slot)")
    print(f"attributes:                       0x{attr_at:08X}..0x{attr_at + attr_len:08X} ({attr_len} B)")
    print(f"free between image and attributes: {attr_at - image_end:,} B")
    errors = [f"{name} at 0x{addr:08X}..0x{addr + size:08X} lies outside the slot"
              for name, (addr, size) in sections.items() if addr < start or addr + size > end]
    if image_end > attr_at:
        errors.append(f"the image (ends 0x{image_end:08X}) runs into the attributes (0x{attr_at:08X})")
    if attr_at + attr_len != end:
        errors.append(f"the attributes end at 0x{attr_at + attr_len:08X}, not at the slot's end")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
