"""What the QEMU tests share: PASS/FAIL bookkeeping, one boot through tests/vm/vm.sh, and the
facts a guest self-test prints between its markers (tests/boot/boot_test.py, tests/update/)."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VM = REPO / "tests" / "vm" / "vm.sh"
BOOT_TIMEOUT_S = int(os.environ.get("BUNKER_BOOT_TIMEOUT", "900"))
BEGIN = "=== BUNKEROS SELFTEST BEGIN ==="
END = "=== BUNKEROS SELFTEST END ==="

# One boot: how long it took, vm.sh's exit status (124: the timeout; 137: QEMU killed), the two
# serial logs, and whether the test cut the power (killed QEMU) on purpose.
Boot = namedtuple("Boot", "seconds status console selftest cut")


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


def boot(image, log_dir, name, selftest="1", tpm_state=None, overlay=None, usb=None, cut_when=None):
    """Boot once, headless, and return a Boot. `selftest` is the bunkeros.selftest credential's
    value (None: no credential); `overlay` and `tpm_state` make a machine that persists across
    boots; `usb` attaches a read-only USB stick image. `cut_when(selftest_text)` is asked while
    the guest runs: once it says yes, QEMU is killed with SIGKILL (power lost)."""
    console = log_dir / f"{name}.console.log"
    result = log_dir / f"{name}.selftest.log"
    pidfile = log_dir / f"{name}.qemu.pid"
    for f in (console, result, pidfile):
        f.unlink(missing_ok=True)
    cmd = [str(VM), "--image", str(image), "--console-log", str(console), "--timeout", str(BOOT_TIMEOUT_S),
           "--pidfile", str(pidfile)]
    if tpm_state:
        cmd += ["--tpm-state", str(tpm_state)]
    if overlay:
        cmd += ["--overlay", str(overlay)]
    if usb:
        cmd += ["--usb", str(usb)]
    if selftest is not None:
        cmd += ["--selftest-value", str(selftest), "--selftest-log", str(result)]
    print(f"--- boot '{name}': {' '.join(cmd)}")
    sys.stdout.flush()
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    cut = False
    while proc.poll() is None:
        if cut_when is not None and not cut and cut_when(read(result)):
            cut = kill_qemu(pidfile)
            print(f"--- boot '{name}': power cut (QEMU killed) after {time.monotonic() - started:.0f} s")
        time.sleep(0.2)
    seconds = time.monotonic() - started
    print(f"--- boot '{name}' ended after {seconds:.0f} s (exit {proc.returncode})")
    sys.stdout.flush()
    return Boot(seconds, proc.returncode, read(console), read(result), cut)


def kill_qemu(pidfile):
    """SIGKILL to the QEMU of one boot (by the PID it wrote): no shutdown, no flush."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        return True
    except (OSError, ValueError) as e:
        print(f"--- could not kill QEMU (pidfile {pidfile}): {e}")
        return False


def read(path):
    return path.read_text(errors="replace") if path.exists() else ""


def facts(selftest_text):
    """'key: value' lines of the self-test, between its markers; repeated keys keep every value."""
    out = {}
    inside = False
    for line in selftest_text.splitlines():
        line = line.rstrip("\r")
        if BEGIN in line:
            inside = True
            continue
        if END in line:
            break
        if inside and ": " in line and not line.startswith(" "):
            key, _, value = line.partition(": ")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def first(f, key):
    values = f.get(key) or [""]
    return values[0]


def json_fact(f, key):
    """A fact that is one JSON document; None when the guest printed something else."""
    try:
        return json.loads(first(f, key))
    except json.JSONDecodeError:
        return None
