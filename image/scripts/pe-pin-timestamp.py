#!/usr/bin/env python3
"""Make a PE/COFF file (the UKI) reproducible.

objcopy (binutils 2.40) writes the build time into the COFF header's TimeDateStamp and ignores
SOURCE_DATE_EPOCH. This pins the stamp to a given epoch and recomputes the optional header's
CheckSum, which covers the stamp.

usage: pe-pin-timestamp.py FILE EPOCH
"""
import struct
import sys


def pe_checksum(data: bytes, checksum_offset: int) -> int:
    """The PE image checksum: 16-bit one's-complement style sum with the checksum field as zero,
    plus the file length."""
    total = 0
    padded = data + (b"\0" if len(data) % 2 else b"")
    for (word,) in struct.iter_unpack("<H", padded):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    del checksum_offset  # the field is already zero in `data`
    return (total + len(data)) & 0xFFFFFFFF


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, epoch = sys.argv[1], int(sys.argv[2])
    with open(path, "rb") as f:
        image = bytearray(f.read())
    if image[:2] != b"MZ":
        print(f"{path}: not a PE file (no MZ header)", file=sys.stderr)
        return 1
    pe_offset = struct.unpack_from("<I", image, 0x3C)[0]
    if image[pe_offset : pe_offset + 4] != b"PE\0\0":
        print(f"{path}: no PE signature at {pe_offset:#x}", file=sys.stderr)
        return 1
    # COFF header follows the 4-byte signature; TimeDateStamp is at +4 within it.
    struct.pack_into("<I", image, pe_offset + 8, epoch)
    # Optional header starts at +24; CheckSum is at +64 within it (same for PE32 and PE32+).
    checksum_offset = pe_offset + 24 + 64
    struct.pack_into("<I", image, checksum_offset, 0)
    struct.pack_into("<I", image, checksum_offset, pe_checksum(bytes(image), checksum_offset))
    with open(path, "wb") as f:
        f.write(image)
    return 0


if __name__ == "__main__":
    sys.exit(main())
