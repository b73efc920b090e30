#!/usr/bin/env python3
"""BunkerOS boot test: boots the production image in QEMU + swtpm and judges what it prints.

  boot_test.py IMAGE_DIR LOG_DIR

IMAGE_DIR is an image build's output (bunkeros.img, pcr11.expected, ...). Two boots:

1. the image as built, with the SMBIOS credential that enables its self-test unit: the guest prints
   facts on its second serial port and powers off; every check below compares them with the build;
2. the same image with one byte of the root squashfs flipped: it must not boot (dm-verity with
   panic-on-corruption), and the console must say why.

Each check prints PASS or FAIL; on any failure the serial logs are printed in full. The last line
is "boot test: N passed, M failed". Exit status 0 only when nothing failed.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VM = REPO / "tests" / "vm" / "vm.sh"
BOOT_TIMEOUT_S = int(os.environ.get("BUNKER_BOOT_TIMEOUT", "900"))
MAX_EXPOSURE = 2.0


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {name}" + (f": {detail}" if detail else ""))
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        sys.stdout.flush()
        return ok


def boot(image, log_dir, name, selftest=True):
    """Boot once, headless; return (seconds, console text, selftest text)."""
    console = log_dir / f"{name}.console.log"
    result = log_dir / f"{name}.selftest.log"
    for f in (console, result):
        f.unlink(missing_ok=True)
    cmd = [str(VM), "--image", str(image), "--console-log", str(console), "--timeout", str(BOOT_TIMEOUT_S)]
    if selftest:
        cmd += ["--selftest", "--selftest-log", str(result)]
    print(f"--- boot '{name}': {' '.join(cmd)}")
    sys.stdout.flush()
    started = time.monotonic()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    print(f"--- boot '{name}' ended after {seconds:.0f} s (exit {proc.returncode})")

    def read(p):
        return p.read_text(errors="replace") if p.exists() else ""

    return seconds, proc.returncode, read(console), read(result)


def facts(selftest_text):
    """'key: value' lines of the self-test, between its markers; repeated keys keep every value."""
    out = {}
    inside = False
    for line in selftest_text.splitlines():
        line = line.rstrip("\r")
        if "=== BUNKEROS SELFTEST BEGIN ===" in line:
            inside = True
            continue
        if "=== BUNKEROS SELFTEST END ===" in line:
            break
        if inside and ": " in line and not line.startswith(" "):
            key, _, value = line.partition(": ")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def first(f, key):
    values = f.get(key) or [""]
    return values[0]


def judge_normal_boot(c, image_dir, seconds, console, selftest):
    c.check("self-test ran to completion", "=== BUNKEROS SELFTEST END ===" in selftest,
            f"booted and reported in {seconds:.0f} s (TCG)")
    f = facts(selftest)
    c.check("system is running (no failed units)", first(f, "system-state") == "running",
            f"state={first(f, 'system-state')!r} failed={f.get('failed-unit', [])}")
    print(f"     {first(f, 'boot-time')}")

    root = first(f, "root-mount").split()
    c.check("root is the dm-verity device, squashfs, read-only",
            len(root) == 3 and root[0] == "/dev/mapper/root" and root[1] == "squashfs"
            and "ro" in root[2].split(","), " ".join(root))
    verity = " | ".join(" ".join(line.split()) for line in f.get("root-verity", []))
    c.check("dm-verity reports the root verified", "type: VERITY" in verity and "status: verified" in verity, verity)
    roothash = (image_dir / "roothash").read_text().strip()
    c.check("dm-verity root hash is the one built", f"root hash: {roothash}" in verity, roothash)
    c.check("root refuses writes", first(f, "root-write") == "refused", first(f, "root-write"))
    var = first(f, "var-mount").split()
    c.check("/var is the data partition (ext4)", len(var) == 3 and var[1] == "ext4", " ".join(var))

    c.check("/dev/tpmrm0 exists", "/dev/tpmrm0" in first(f, "tpm-device"), first(f, "tpm-device"))
    c.check("TPM answers (tpm2_getrandom)", re.fullmatch(r"[0-9a-f]{32}", first(f, "tpm-random")) is not None,
            first(f, "tpm-random"))
    expected = (image_dir / "pcr11.expected").read_text().strip().lower()
    c.check("PCR 11 equals the build's prediction", first(f, "pcr11").lower() == expected,
            f"guest {first(f, 'pcr11').lower()} / predicted {expected}")

    c.check("PCR 11 prediction is shipped on the ESP (/efi/bunkeros/a)",
            first(f, "pcr11-shipped").lower() == expected, first(f, "pcr11-shipped"))
    c.check("no package manager on the root", first(f, "package-manager") == "",
            first(f, "package-manager") or "apt, apt-get, dpkg: absent")
    c.check("no SSH server", first(f, "ssh-server") == "", first(f, "ssh-server") or "absent")
    c.check("no account has a usable password", first(f, "password-accounts") == "",
            first(f, "password-accounts") or "all locked")
    c.check("no getty runs on any console", first(f, "getty-units") == "", first(f, "getty-units") or "none")

    try:
        status = json.loads(first(f, "status-json"))
    except json.JSONDecodeError as e:
        c.check("bunkerctl status --json parses", False, f"{e}: {first(f, 'status-json')[:200]!r}")
        status = {"units": []}
    installed = [u for u in status.get("units", []) if u.get("load_state") == "loaded"]
    c.check("bunkerctl status lists the console unit",
            any(u.get("unit") == "bunkeros-console.service" for u in installed),
            ", ".join(u.get("unit", "?") for u in installed))
    for u in installed:
        c.check(f"{u['unit']} is active", u.get("active_state") == "active",
                f"{u.get('active_state')}/{u.get('sub_state')}")

    print_security_tables(selftest)
    scores = {}
    for line in f.get("security-score", []):
        unit, _, score = line.partition(" ")
        scores[unit] = score
    for u in installed:
        score = scores.get(u["unit"], "")
        try:
            ok = float(score) <= MAX_EXPOSURE
        except ValueError:
            ok = False
        c.check(f"{u['unit']} exposure <= {MAX_EXPOSURE}", ok, f"systemd-analyze security: {score or 'no score'}")

    c.check("no login prompt on the console", re.search(r"login:\s*$", console, re.M) is None)
    # The status screen's own words (bunkerctl status --watch), not systemd's boot messages.
    c.check("console shows the status screen",
            "This is the appliance console." in console and "installed units active" in console)


def print_security_tables(selftest_text):
    """Show `systemd-analyze security` and, for units that are not active, their journal, as the
    guest printed them (indented blocks after a `--- security UNIT` or `--- journal UNIT` line)."""
    in_block = False
    for line in selftest_text.splitlines():
        if line.startswith("--- security ") or line.startswith("--- journal "):
            in_block = True
        elif not line.startswith("  "):
            in_block = False
            continue
        if in_block:
            print("     " + line.rstrip())


def flip_root_byte(image, corrupted):
    """Copy the image (sparse) and flip one byte inside root-a's squashfs superblock."""
    subprocess.run(["cp", "--sparse=always", str(image), str(corrupted)], check=True)
    table = json.loads(subprocess.run(["sfdisk", "--json", str(corrupted)], check=True,
                                      capture_output=True, text=True).stdout)
    sector = table["partitiontable"].get("sectorsize", 512)
    root_a = next(p for p in table["partitiontable"]["partitions"] if p.get("name") == "root-a")
    offset = root_a["start"] * sector + 40  # inside the superblock: read on every mount
    with open(corrupted, "r+b") as disk:
        disk.seek(offset)
        byte = disk.read(1)[0]
        disk.seek(offset)
        disk.write(bytes([byte ^ 0x01]))
    return offset, byte


def judge_corrupted_boot(c, seconds, status, console, selftest):
    c.check("corrupted root: the self-test never ran", "=== BUNKEROS SELFTEST BEGIN ===" not in selftest)
    # The kernel's own words, not the command line's "panic-on-corruption".
    block = re.search(r"device-mapper: verity: \S+: data block \d+ is corrupted", console)
    c.check("corrupted root: dm-verity found the corrupted block", block is not None,
            block.group(0) if block else "no dm-verity corruption message on the console")
    c.check("corrupted root: the kernel panicked on it (panic-on-corruption)",
            "Kernel panic - not syncing: dm-verity device corrupted" in console)
    c.check("corrupted root: the machine stopped instead of booting on (panic, no reboot)",
            status != 124, f"QEMU exited after {seconds:.0f} s with status {status}")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    image_dir, log_dir = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    image = image_dir / "bunkeros.img"
    c = Checks()

    seconds, _, console, selftest = boot(image, log_dir, "normal")
    judge_normal_boot(c, image_dir, seconds, console, selftest)
    normal_failed = c.failed

    corrupted = log_dir / "corrupted.img"
    offset, byte = flip_root_byte(image, corrupted)
    print(f"--- flipped bit 0 of byte {offset} (was {byte:#04x}) in root-a")
    seconds, status, bad_console, bad_selftest = boot(corrupted, log_dir, "corrupted")
    corrupted.unlink(missing_ok=True)
    judge_corrupted_boot(c, seconds, status, bad_console, bad_selftest)

    if c.failed:
        if normal_failed:
            print("\n===== serial console (normal boot) =====\n" + console)
            print("===== self-test port (normal boot) =====\n" + selftest)
        if c.failed > normal_failed:
            print("\n===== serial console (corrupted root) =====\n" + bad_console)
    print(f"boot test: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
