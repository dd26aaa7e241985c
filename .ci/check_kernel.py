"""Checks that the DK kernel's image lies in its kernel slot and its RAM below the app's.

Usage: python check_kernel.py KERNEL-ELF LAYOUT-LD [APP-ELF]

The slot is the `rom` region of the board's linker script (layout.ld): what the kernel is linked
against (the bootloader's slot in boot-core's layout must be the same; docs/layout.md). Prints
`.text`'s size, where the image ends (every flash-loaded section but the attribute block) and
where the attribute block lies, and fails unless every flash-loaded byte lies in the slot, the
image ends before the attribute block, and the attribute block ends at the slot's end (where
tockloader looks for it).

With APP-ELF (the DFU app as linked for the board), also fails unless the kernel's RAM (every
allocated, writable section in layout.ld's `ram` region: `.stack`, `.relocate`, `.sram`, ...)
ends at or below the address the app's RAM is linked at (its lowest such section): libtock-rs apps are linked
for a fixed RAM address, and a kernel whose RAM runs past it boots without loading the app.
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


def region(layout: str, name: str) -> tuple[int, int]:
    """(start, end) of the MEMORY region `name`."""
    m = re.search(rf"^\s*{name}\s*\([^)]*\)\s*:\s*ORIGIN\s*=\s*([^,]+),\s*LENGTH\s*=\s*([^\s,}}]+)",
                  open(layout).read(), re.M)
    if not m:
        sys.exit(f"{layout}: no `{name} (...) : ORIGIN = ..., LENGTH = ...` line")
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


def ram_sections(elf: ELFFile, ram: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Name -> (address, size) of every allocated, writable section with a size in `ram`."""
    return {sec.name: (sec["sh_addr"], sec["sh_size"]) for sec in elf.iter_sections()
            if sec["sh_flags"] & 0x3 == 0x3 and sec["sh_size"] > 0  # SHF_WRITE | SHF_ALLOC
            and ram[0] <= sec["sh_addr"] < ram[1]}


def check_ram(kernel_path: str, app_path: str, ram: tuple[int, int]) -> list[str]:
    """Prints where the kernel's RAM ends and the app's starts; the error if they overlap."""
    with open(kernel_path, "rb") as f:
        kernel = ram_sections(ELFFile(f), ram)
    with open(app_path, "rb") as f:
        app = ram_sections(ELFFile(f), ram)
    if not kernel or not app:
        return [f"{kernel_path if not kernel else app_path}: no allocated, writable section (RAM)"]
    names = ", ".join(f"{name} {size:,} B" for name, (_, size) in
                      sorted(kernel.items(), key=lambda kv: kv[1][0]))
    kernel_end = max(addr + size for addr, size in kernel.values())
    app_start = min(addr for addr, _ in app.values())
    print(f"kernel RAM:                       ends 0x{kernel_end:08X} ({names})")
    print(f"DFU app RAM (linked at):          0x{app_start:08X} ({app_path})")
    print(f"free between kernel and app RAM:  {app_start - kernel_end:,} B")
    if kernel_end > app_start:
        return [f"the kernel's RAM ends at 0x{kernel_end:08X}, above 0x{app_start:08X} where the "
                f"DFU app's RAM is linked ({kernel_end - app_start:,} B too many): the kernel "
                "would not load the app; link the app's RAM higher or give the kernel less RAM"]
    return []


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: check_kernel.py KERNEL-ELF LAYOUT-LD [APP-ELF]")
    elf_path, layout = sys.argv[1], sys.argv[2]
    start, end = region(layout, "rom")
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
    if len(sys.argv) == 4:
        errors += check_ram(elf_path, sys.argv[3], region(layout, "ram"))
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
