#!/usr/bin/env python3
"""Faults of the image build that must be reported clearly and leave nothing half-made.

  build_faults_test.py

Runs image/build.sh (it needs root, target/release/bunkerctl and bunkeros-release, the release
key in $RELEASE_KEY or build/keys/release-key.pem and the TUF root in $TUF_ROOT or
build/keys/tuf/root.json, as `make image` does) with:
1. a host tool missing from PATH: the error names the tool and its Debian package, exit 1;
2. a bad hardware profile: the profile's file:line error, exit 78;
3. a release key that is not a P-256 private key: refused before anything is built;
4. a TUF root that is not a signed root (here: a root whose signature was altered): refused
   before anything is built;
5. a step that fails midway (mmdebstrap exits 1): the build fails, nothing exists under the final
   name and no partial directory is left behind.
The last line is "image build faults: N passed, M failed".
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "image" / "build.sh"
PROFILE = REPO / "hardware" / "profiles" / "qemu-x86_64.toml"
RELEASE_KEY = Path(os.environ.get("RELEASE_KEY") or REPO / "build" / "keys" / "release-key.pem").resolve()
TUF_ROOT = Path(os.environ.get("TUF_ROOT") or REPO / "build" / "keys" / "tuf" / "root.json").resolve()


def tool_dir(tmp, name, leave_out=(), replace=None):
    """A PATH directory `tmp/name` with links to every host tool the build needs except
    `leave_out`; `replace` maps a tool name to a script body that stands in for it."""
    bin_dir = Path(tmp) / name
    bin_dir.mkdir()
    for name in ["bash", "sh", "env", "cat", "cp", "mv", "rm", "mkdir", "mktemp", "chmod", "sed", "grep",
                 "find", "sort", "xargs", "sha256sum", "cut", "git", "id", "date", "dirname", "basename",
                 "realpath", "diff", "wc", "stat", "head", "tail", "printf", "ls", "mmdebstrap", "mksquashfs",
                 "veritysetup", "mkfs.vfat", "mcopy", "mmd", "mkfs.ext4", "objcopy", "systemd-repart", "zstd",
                 "python3", "truncate", "touch", "awk", "paste", "install", "tr", "sleep"]:
        if name in leave_out:
            continue
        found = shutil.which(name)
        if found:
            (bin_dir / name).symlink_to(found)
    for name, body in (replace or {}).items():
        script = bin_dir / name
        script.unlink(missing_ok=True)
        script.write_text("#!/bin/sh\n" + body + "\n")
        script.chmod(0o755)
    return bin_dir


def run_build(path_dir, out, profile=PROFILE, release_key=RELEASE_KEY, tuf_root=TUF_ROOT):
    env = dict(os.environ, PATH=str(path_dir))
    return subprocess.run(["bash", str(BUILD), "--release-key", str(release_key), "--tuf-root", str(tuf_root),
                           "--profile", str(profile), "--out", str(out), "--force"],
                          env=env, capture_output=True, text=True, cwd=REPO, timeout=600)


def leftovers(out):
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(out.name) or
                  p.name.startswith("." + out.name))


def main():
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
        print(("PASS " if ok else "FAIL ") + name + (f": {detail}" if detail else ""))

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "images" / "faulty"
        out.parent.mkdir()

        r = run_build(tool_dir(tmp, "no-squashfs", leave_out={"mksquashfs"}), out)
        check("missing tool: exit status 1", r.returncode == 1, f"exit {r.returncode}")
        check("missing tool: names the tool and its Debian package",
              "mksquashfs (Debian package squashfs-tools)" in r.stderr,
              next((line.strip() for line in r.stderr.splitlines() if "mksquashfs" in line), "not named"))
        check("missing tool: nothing under the final name", leftovers(out) == [], str(leftovers(out)))

        bad = Path(tmp) / "bad-profile.toml"
        bad.write_text(PROFILE.read_text().replace('console = "ttyS0"', 'console = "ttyS0"\nconsol = 1'))
        r = run_build(tool_dir(tmp, "all-tools"), out, profile=bad)
        check("bad profile: exit status 78", r.returncode == 78, f"exit {r.returncode}")
        check("bad profile: file:line and the problem", f"{bad}:" in r.stderr and "unknown key `consol`" in r.stderr,
              r.stderr.strip()[:200])

        not_a_key = Path(tmp) / "not-a-key.pem"
        not_a_key.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
        r = run_build(tool_dir(tmp, "bad-key"), out, release_key=not_a_key)
        check("bad release key: refused with the key's path", r.returncode != 0 and str(not_a_key) in r.stderr,
              f"exit {r.returncode}: {r.stderr.strip()[:200]}")
        check("bad release key: nothing under the final name", leftovers(out) == [], str(leftovers(out)))

        # A genuine root with one byte of its first signature changed: valid JSON, wrong signature.
        forged_root = Path(tmp) / "forged-root.json"
        root = json.loads(TUF_ROOT.read_text())
        sig = root["signatures"][0]["sig"]
        root["signatures"][0]["sig"] = ("1" if sig[0] != "1" else "2") + sig[1:]
        forged_root.write_text(json.dumps(root))
        r = run_build(tool_dir(tmp, "bad-tuf-root"), out, tuf_root=forged_root)
        check("bad TUF root: refused with the root's path", r.returncode != 0 and str(forged_root) in r.stderr,
              f"exit {r.returncode}: {r.stderr.strip()[:200]}")
        check("bad TUF root: nothing under the final name", leftovers(out) == [], str(leftovers(out)))

        failing = {"mmdebstrap": 'echo "E: simulated download failure" >&2; exit 1'}
        r = run_build(tool_dir(tmp, "failing-mmdebstrap", replace=failing), out)
        check("failed step: the build fails at that step", r.returncode != 0 and "simulated download failure" in r.stderr,
              f"exit {r.returncode}")
        check("failed step: nothing under the final name, no partial directory left",
              leftovers(out) == [], str(leftovers(out)))

    print(f"image build faults: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
