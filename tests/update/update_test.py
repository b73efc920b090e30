#!/usr/bin/env python3
"""BunkerOS update test: signed A/B updates of one machine in QEMU + swtpm, judged from outside.

  update_test.py IMAGE_DIR WORK_DIR --release-key KEY --tuf-keys DIR --tuf-root ROOT.json [--profile FILE]

IMAGE_DIR is the image build `make image` made (A, the version in Cargo.toml). The test builds two
more images from the same inputs with image/build.sh (about 3 minutes each; skipped when WORK_DIR
already holds them from the same inputs): B, version A+1 (patch), and C, version A+2, whose PCR 11
policy is signed by ANOTHER release key, so that trustd's CA key (enrolled under the release key)
cannot be unsealed on it and C's health gate fails. It publishes them with `bunkeros-release
publish` into TUF repositories under WORK_DIR/repos:

  good               B
  bad                a copy of good, then C published into it (metadata version 2: newer than
                     what the appliance saw from good, as a real next release would be)
  tampered           a copy of good with one byte of B's root.squashfs target flipped
  tampered-metadata  a copy of good with one byte of the signed targets metadata changed
  expired            B published with --timestamp-days 0: its timestamp has expired before the
                     appliance reads it (a valid signature over a past expiry, not an edited one)
  downgrade          A itself (not newer than the running A: refused as a downgrade)

and writes them onto a FAT image labelled BUNKERUPD, the update medium (good at its top, for the
source `usb`; the others in directories; expired/ and downgrade/ carry only their metadata, as
both are refused before any target is read). One machine (a qcow2 overlay over A, its TPM state
and UEFI variables kept) boots five times with the stick attached; the bunkeros.selftest
credential names each step, which image/libexec/bunkeros-selftest-update carries out:

1. A: downgrade, expired, tampered metadata and a tampered artefact are each refused with their
   reason; then the good release is installed from `usb`, and the host kills QEMU (SIGKILL) once
   the write shows progress: power lost mid-write;
2. A again: slot a still boots, slot b has no boot entry; the install is done again, whole;
3. B: the boot loader starts slot b, its health gate passes, it is blessed; trustd's CA key still
   signs (a genuine update); the bad release C goes into slot a; reboot;
4. C: trustd cannot unseal its CA key (C's policy is not signed by the release key), the health
   gate fails, marks C's entry bad and reboots by itself;
5. B again: the boot loader fell back to slot b; updated records why (the gate's failed check);
   trustd signs again.

Each check prints PASS or FAIL; on any failure the serial logs of the boots that failed are
printed. The last line is "update test: N passed, M failed". Exit status 0 only when nothing
failed.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vmtest import END, REPO, Checks, boot, facts, first, json_fact  # noqa: E402  (tests/vmtest.py)

RELEASE_TOOL = REPO / "target" / "release" / "bunkeros-release"
MEDIUM_LABEL = "BUNKERUPD"
# A progress line of `bunkerctl update install` when its output is not a terminal.
WRITE_PROGRESS = re.compile(r"^cut-output: write-root: (\d+) of (\d+) MiB, (\d+)%", re.M)


def run(cmd, **kwargs):
    print("+ " + " ".join(str(c) for c in cmd))
    sys.stdout.flush()
    return subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def build_info(image_dir):
    """An image build's build-info (key=value lines) as a dict."""
    lines = (image_dir / "build-info").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def next_patch(version, n):
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + n}"


def build_image(args, version, release_key, out, source_date_epoch):
    """image/build.sh for `version` with `release_key` (as root: the build chroots); seconds."""
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    started = time.monotonic()
    run([*sudo, "env", f"SOURCE_DATE_EPOCH={source_date_epoch}", f"BUNKER_VERSION={version}",
         REPO / "image" / "build.sh", "--release-key", release_key, "--tuf-root", args.tuf_root,
         "--profile", args.profile, "--out", out])
    return time.monotonic() - started


def publish(image_dir, repo, args, *extra):
    run([RELEASE_TOOL, "publish", "--image-dir", image_dir, "--keys", args.tuf_keys, "--root", args.tuf_root,
         "--repo", repo, *extra])


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x01]))
    return byte


def make_repositories(args, work, image_a, image_b, image_c, version_b):
    """The six repositories of the docstring, fresh, under work/repos."""
    repos = work / "repos"
    shutil.rmtree(repos, ignore_errors=True)
    repos.mkdir(parents=True)
    publish(image_b, repos / "good", args)
    shutil.copytree(repos / "good", repos / "bad")
    publish(image_c, repos / "bad", args)
    publish(image_b, repos / "expired", args, "--timestamp-days", "0")
    publish(image_a, repos / "downgrade", args)

    shutil.copytree(repos / "good", repos / "tampered")
    squashfs = next((repos / "tampered" / "targets").glob("*root.squashfs"))
    offset = squashfs.stat().st_size // 2
    byte = flip_byte(squashfs, offset)
    print(f"--- tampered: flipped bit 0 of byte {offset} (was {byte:#04x}) of {squashfs.name}")

    shutil.copytree(repos / "good" / "metadata", repos / "tampered-metadata" / "metadata")
    shutil.copytree(repos / "good" / "targets", repos / "tampered-metadata" / "targets")
    # Consistent snapshots: the appliance reads targets metadata by version (N.targets.json).
    targets = max((repos / "tampered-metadata" / "metadata").glob("[0-9]*.targets.json"),
                  key=lambda p: int(p.name.split(".")[0]))
    text = targets.read_text()
    signed_version = f'"{version_b}"'
    # Same length, still JSON: the image version the signed targets claim, one digit changed.
    forged = '"9' + version_b[1:] + '"'
    if signed_version not in text:
        raise SystemExit(f"update test: {targets} does not name image version {version_b}")
    targets.write_text(text.replace(signed_version, forged, 1))
    print(f"--- tampered-metadata: {targets.name} now claims {forged} where it signed {signed_version}")
    return repos


def make_medium(repos, medium):
    """A FAT image labelled BUNKERUPD holding the repositories (mtools: no mount, no root)."""
    stage = medium.parent / "medium-metadata-only"
    shutil.rmtree(stage, ignore_errors=True)
    for name in ("expired", "downgrade"):
        shutil.copytree(repos / name / "metadata", stage / name / "metadata")
    full = [repos / "tampered", repos / "tampered-metadata", repos / "bad"]
    size = sum(f.stat().st_size for d in [repos / "good", *full, stage] for f in d.rglob("*") if f.is_file())
    kib = size // 1024 + 128 * 1024  # room for FAT32's tables and cluster slack
    medium.unlink(missing_ok=True)
    run(["mkfs.vfat", "-C", "-F", "32", "-n", MEDIUM_LABEL, medium, kib], stdout=subprocess.DEVNULL)
    run(["mcopy", "-s", "-i", medium, repos / "good" / "metadata", repos / "good" / "targets", "::/"])
    run(["mcopy", "-s", "-i", medium, *full, stage / "expired", stage / "downgrade", "::/"])
    shutil.rmtree(stage)


def status(f, key):
    """A status document the guest printed (`bunkerctl update status --json`), or {}."""
    return json_fact(f, f"{key}-status-json") or {}


def slot(doc, name):
    return next((s for s in doc.get("slots") or [] if s.get("slot") == name), {})


def last_result(doc):
    return doc.get("last_result") or {}


def outputs(f, key):
    return " | ".join(f.get(f"{key}-output", []))


def refused_check(c, f, key, what, words):
    """`bunkerctl update check` answered `refused: …` naming one of `words`."""
    answer = first(f, f"{key}-check")
    c.check(f"{what}: bunkerctl update check refuses it, saying why",
            answer.startswith("refused: ") and any(w in answer for w in words), answer[:300])


def refused_install(c, f, key, what, words, kinds=("refused",)):
    """`bunkerctl update install` failed with a reason naming one of `words`, recorded as the last
    result, and slot b got no boot entry."""
    said = outputs(f, key)
    c.check(f"{what}: bunkerctl update install fails with the reason",
            first(f, f"{key}-exit") not in ("", "0") and any(w in said for w in words), said[:300])
    doc = status(f, key)
    result = last_result(doc)
    c.check(f"...updated records it as the last result ({'/'.join(kinds)}, with the reason)",
            result.get("kind") in kinds and any(w in (result.get("reason") or "") for w in words),
            json.dumps(result)[:300])
    c.check("...and slot b has no boot entry", slot(doc, "b").get("entry") == "none",
            json.dumps(slot(doc, "b")))


def judge_booted(c, f, boot_name, slot_name, version):
    c.check(f"{boot_name}: the guest's update step ran", bool(f), "no facts between the markers" if not f else "")
    c.check(f"{boot_name}: booted slot {slot_name}, BunkerOS {version}",
            first(f, "boot-slot") == slot_name and first(f, "image-version") == version,
            f"slot {first(f, 'boot-slot')!r}, version {first(f, 'image-version')!r}")


def judge_refusals(c, b, version_a, version_b):
    f = facts(b.selftest)
    judge_booted(c, f, "boot 1 (A)", "a", version_a)
    mount = first(f, "medium-mount").split()
    c.check("the update medium (BUNKERUPD) is mounted read-only at /run/bunkeros/update-medium",
            len(mount) == 3 and mount[1] == "vfat" and "ro" in mount[2].split(","), first(f, "medium-mount"))
    refused_check(c, f, "downgrade", "downgrade (A's own release on A)", ["downgrade", "not newer"])
    refused_install(c, f, "downgrade", "downgrade", ["downgrade", "not newer"])
    refused_check(c, f, "expired", "expired timestamp", ["expired"])
    refused_install(c, f, "expired", "expired timestamp", ["expired"])
    refused_check(c, f, "tampered-metadata", "tampered targets metadata",
                  ["not signed by enough", "does not match the hash", "altered", "signature"])
    refused_install(c, f, "tampered", "tampered root.squashfs (one byte)",
                    ["does not match", "altered", "hash"], kinds=("refused", "failed"))
    progress = WRITE_PROGRESS.findall(b.selftest)
    last = progress[-1] if progress else None
    c.check("the good release's install showed write progress on the selftest port", bool(progress),
            f"last before the cut: write-root {last[0]} of {last[1]} MiB, {last[2]}%" if last else outputs(f, "cut")[:300])
    c.check("the power was cut mid-write (QEMU killed with SIGKILL before the write ended)",
            b.cut and last is not None and int(last[2]) < 100 and "cut-exit" not in f,
            f"QEMU exit {b.status}" + (f", {last[2]}% written" if last else ""))


def judge_retry(c, b, version_a, version_b):
    f = facts(b.selftest)
    judge_booted(c, f, "boot 2 (A after the power cut)", "a", version_a)
    before = status(f, "before")
    c.check("after the power cut: updated runs slot a, and the half-written slot b has no boot entry",
            (before.get("booted") or {}).get("slot") == "a" and slot(before, "b").get("entry") == "none",
            json.dumps({"booted": before.get("booted"), "b": slot(before, "b")})[:300])
    said = outputs(f, "retry")
    phases = {line.split(":")[0] for line in f.get("retry-output", []) if re.match(r"[a-z-]+: \d+ of \d+ MiB", line)}
    c.check("the retry shows its progress: write-root, write-verity, verify",
            {"write-root", "write-verity", "verify"} <= phases, f"phases seen: {sorted(phases)}")
    c.check(f"the retry installs BunkerOS {version_b} into slot b",
            first(f, "retry-exit") == "0" and f"installed BunkerOS {version_b} into slot b" in said, said[-300:])
    after = status(f, "retry")
    b_slot = slot(after, "b")
    c.check("...slot b: the new version, a boot entry trying with tries left; the next boot starts it",
            b_slot.get("version") == version_b and b_slot.get("entry") == "trying"
            and (b_slot.get("tries_left") or 0) >= 1 and (after.get("next") or {}).get("slot") == "b",
            json.dumps({"next": after.get("next"), "b": b_slot})[:300])
    entries = first(f, "boot-entries-after")
    c.check("...its UKI is on the ESP with a boot counter (bunkeros-b+N.efi)",
            re.search(r"bunkeros-b\+\d+\.efi", entries) is not None, entries)
    c.check("boot 2 powered off by itself", b.status == 0, f"QEMU exit {b.status} after {b.seconds:.0f} s")


def judge_blessed(c, b, version_b, version_c):
    f = facts(b.selftest)
    judge_booted(c, f, "boot 3 (B)", "b", version_b)
    doc = status(f, "blessed")
    result = last_result(doc)
    c.check("B's health gate passed: slot b is blessed, the last result says so",
            slot(doc, "b").get("entry") == "blessed" and result.get("kind") == "blessed"
            and result.get("version") == version_b, json.dumps({"b": slot(doc, "b"), "last": result})[:300])
    entries = first(f, "boot-entries")
    c.check("...systemd-bless-boot renamed its UKI to bunkeros-b.efi (no counter)",
            "bunkeros-b.efi" in entries.split("|"), entries)
    issued = first(f, "genuine-ca-issue")
    c.check("trustd's CA key still signs after a genuine update: a certificate is issued on B",
            issued.startswith("issued ") and first(f, "genuine-ca-verify").endswith(": OK"),
            f"{issued[:200]} / {first(f, 'genuine-ca-verify')}")
    config = first(f, "gate-timeout-config")
    c.check("the site's updated.toml (health gate timeout 90 s, for C's gate) checks out",
            config.startswith("config OK") and "/var/lib/bunkeros/config/updated.toml" in config, config[:300])
    said = outputs(f, "bad")
    c.check(f"the release C ({version_c}, signed by TUF but built with another release key) installs into slot a",
            first(f, "bad-exit") == "0" and f"installed BunkerOS {version_c} into slot a" in said, said[-300:])
    after = status(f, "bad")
    c.check("...the next boot starts slot a (C)", (after.get("next") or {}).get("slot") == "a"
            and slot(after, "a").get("entry") == "trying", json.dumps({"next": after.get("next"), "a": slot(after, "a")}))
    c.check("boot 3 rebooted by itself (QEMU exits on a guest reboot)", b.status == 0,
            f"QEMU exit {b.status} after {b.seconds:.0f} s")


def judge_bad_boot(c, b, version_c):
    f = facts(b.selftest)
    judge_booted(c, f, "boot 4 (C)", "a", version_c)
    issued = first(f, "foreign-ca-issue")
    ca = json_fact(f, "foreign-ca-status-json") or {}
    observed = f.get("observe", [])
    trustd_states = {m.group(1) for line in observed for m in [re.search(r"trustd=(\S+)", line)] if m}
    if "foreign-ca-issue" in f:
        c.check("on C, trustd's CA key is refused: no certificate, trustd not ready",
                not issued.startswith("issued ") and ca.get("state") != "ready",
                f"{issued[:200]}; trustd {ca.get('state')}: {ca.get('reason')}")
    else:
        c.check("on C, trustd's CA key is refused: trustd never became active",
                "active" not in trustd_states, f"trustd states seen: {sorted(trustd_states)}")
    c.check("C's health gate failed and the machine rebooted by itself (not the test's timeout)",
            b.status == 0 and END not in b.selftest,
            f"QEMU exit {b.status} after {b.seconds:.0f} s; last observation: {observed[-1] if observed else 'none'}")


def judge_fell_back(c, b, version_b, version_c):
    f = facts(b.selftest)
    judge_booted(c, f, "boot 5 (B after C failed)", "b", version_b)
    doc = status(f, "fell-back")
    result = last_result(doc)
    c.check("slot a (C) is marked bad: the boot loader skips it",
            slot(doc, "a").get("entry") == "bad", json.dumps(slot(doc, "a")))
    reason = result.get("reason") or ""
    c.check("updated records the fallback from C, with the gate's failed check (trustd) as the reason",
            result.get("kind") == "fell-back" and result.get("version") == version_c and "trustd" in reason,
            json.dumps(result)[:400])
    issued = first(f, "after-fallback-ca-issue")
    c.check("trustd signs again on B after the fallback", issued.startswith("issued "), issued[:200])
    c.check("boot 5 powered off by itself", b.status == 0, f"QEMU exit {b.status} after {b.seconds:.0f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image_dir", type=Path)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--release-key", type=Path, required=True)
    parser.add_argument("--tuf-keys", type=Path, required=True)
    parser.add_argument("--tuf-root", type=Path, required=True)
    parser.add_argument("--profile", type=Path, default=REPO / "hardware" / "profiles" / "qemu-x86_64.toml")
    args = parser.parse_args()
    image_a = args.image_dir.resolve()
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    timings = []

    info = build_info(image_a)
    version_a = info["version"]
    version_b, version_c = next_patch(version_a, 1), next_patch(version_a, 2)
    other_key = work / "keys" / "other-release-key.pem"
    if not other_key.exists():
        other_key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", other_key])
    image_b, image_c = work / "images" / "update-b", work / "images" / "update-c"
    epoch = info["source_date_epoch"]
    timings.append((f"build B ({version_b})", build_image(args, version_b, args.release_key, image_b, epoch)))
    timings.append((f"build C ({version_c}, other release key)", build_image(args, version_c, other_key, image_c, epoch)))

    started = time.monotonic()
    repos = make_repositories(args, work, image_a, image_b, image_c, version_b)
    medium = work / "medium.img"
    make_medium(repos, medium)
    timings.append(("repositories and the update medium", time.monotonic() - started))

    overlay, tpm = work / "machine.qcow2", work / "machine-tpm"
    overlay.unlink(missing_ok=True)
    shutil.rmtree(tpm, ignore_errors=True)
    machine = {"image": image_a / "bunkeros.img", "log_dir": logs, "tpm_state": tpm, "overlay": overlay,
               "usb": medium}
    c = Checks()
    boots = []

    def step(name, value, judge, *judge_args, cut_when=None):
        b = boot(name=name, selftest=value, cut_when=cut_when, **machine)
        timings.append((f"boot '{name}'", b.seconds))
        before = c.failed
        judge(c, b, *judge_args)
        boots.append((name, b, c.failed > before))
        return b

    def mid_write(text):
        return any(0 < int(done) for done, _, _ in WRITE_PROGRESS.findall(text))

    step("1-refusals", "update-refusals", judge_refusals, version_a, version_b, cut_when=mid_write)
    step("2-retry", "update-retry", judge_retry, version_a, version_b)
    step("3-blessed", "update-blessed", judge_blessed, version_b, version_c)
    step("4-bad-boot", "update-bad-boot", judge_bad_boot, version_c)
    step("5-fell-back", "update-fell-back", judge_fell_back, version_b, version_c)

    for name, b, failed in boots:
        if failed:
            print(f"\n===== serial console (boot {name}) =====\n{b.console}")
            print(f"===== self-test port (boot {name}) =====\n{b.selftest}")
    print("--- times (TCG unless KVM was usable):")
    for what, seconds in timings:
        print(f"     {what}: {seconds:.0f} s")
    print(f"update test: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
