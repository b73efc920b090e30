#!/bin/bash
# Assemble the BunkerOS disk image from a finished root tree, deterministically.
#
#   assemble.sh ROOT_TREE WORK_DIR OUT_DIR
#
# Reads the hardware profile from BUNKER_* variables (see `bunkerctl profile env`),
# SOURCE_DATE_EPOCH, and BUNKER_RELEASE_TOOL / BUNKER_RELEASE_KEY (bunkeros-release and the key
# that signs the PCR 11 prediction). Writes into OUT_DIR:
#   bunkeros.img          GPT disk: esp, root-a (squashfs), root-a-verity, root-b, root-b-verity, data
#   bunkeros.uki.efi      the unified kernel image of this build (kernel + initrd + cmdline + os-release)
#   root.squashfs         root file system, and root.verity its dm-verity hash tree (release artefacts)
#   roothash              the dm-verity root hash baked into the UKI's command line
#   pcr11.json            expected PCR 11 values for every boot phase (systemd-measure calculate)
#   pcr11.expected        the PCR 11 value once the system is up (phase enter-initrd:leave-initrd:sysinit:ready)
#   pcr11.policy.json     that value signed by the release key (trustd's `authorized` CA policy)
#   cmdline               the kernel command line baked into the UKI
#
# Why it looks the way it does (measured in shared/notes/image-pipeline-probe.md):
# - verity with a salt and UUID derived from SOURCE_DATE_EPOCH (systemd-repart v252 uses a random salt);
# - partition UUIDs of root/verity are the two halves of the root hash (the systemd convention), so the
#   UKI finds its own root in either slot;
# - the ESP is built with mtools (the host kernel may lack vfat), the data file system with fixed UUIDs
#   and time; systemd-repart only lays out the GPT from pre-made blocks (CopyBlocks=).
set -euo pipefail

root=$(realpath "$1")
work=$(realpath -m "$2")
out=$(realpath -m "$3")
here=$(dirname "$(realpath "$0")")
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set}"
: "${BUNKER_CONSOLE:?profile variables missing: eval \"\$(bunkerctl profile env PROFILE)\" first}"

rm -rf "$work"
mkdir -p "$work/esp/EFI/BOOT" "$work/esp/EFI/Linux" "$work/esp/loader" "$work/repart" "$out"

step() { printf '  [image] %s\n' "$*"; }

# A UUID in 8-4-4-4-12 form from 32 hex digits.
as_uuid() { sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12})$/\1-\2-\3-\4-\5/' <<<"$1"; }
# A stable UUID derived from a label, so every build gets the same one.
derived_uuid() { as_uuid "$(printf 'bunkeros-%s-%s' "$1" "$SOURCE_DATE_EPOCH" | sha256sum | cut -c1-32)"; }

step "root file system: squashfs (zstd), all timestamps clamped to SOURCE_DATE_EPOCH"
# /var is the data partition's mount point; the root image carries it empty.
mksquashfs "$root" "$work/root.squashfs" -noappend -comp zstd -quiet -no-progress \
    -wildcards -e 'boot/*' -e 'var/*' -e 'tmp/*' -e 'run/*' -e 'proc/*' -e 'sys/*' -e 'dev/*'

step "dm-verity hash tree (4 KiB blocks, fixed salt and UUID)"
salt=$(printf 'bunkeros-verity-salt-%s' "$SOURCE_DATE_EPOCH" | sha256sum | cut -d' ' -f1)
veritysetup format "$work/root.squashfs" "$work/root.verity" --salt="$salt" \
    --uuid="$(derived_uuid verity)" --data-block-size=4096 --hash-block-size=4096 >"$work/verity.txt"
roothash=$(awk '/^Root hash:/ {print $3}' "$work/verity.txt")
root_uuid=$(as_uuid "${roothash:0:32}")
verity_uuid=$(as_uuid "${roothash:32:32}")

squashfs_mib=$(( ($(stat -c %s "$work/root.squashfs") + 1048575) / 1048576 ))
if (( squashfs_mib > BUNKER_ROOT_MIB )); then
    echo "error: the root file system is ${squashfs_mib} MiB but the profile's disk.root_mib is ${BUNKER_ROOT_MIB}" >&2
    exit 1
fi

step "unified kernel image (systemd-stub): kernel + initrd + command line + os-release"
kver=$(ls "$root/lib/modules" | sort -V | tail -1)
cmdline="console=${BUNKER_CONSOLE},115200 roothash=${roothash} root=/dev/mapper/root ro"
cmdline+=" systemd.verity_root_data=PARTUUID=${root_uuid} systemd.verity_root_hash=PARTUUID=${verity_uuid}"
cmdline+=" systemd.verity_root_options=panic-on-corruption"
# A kernel that panics (dm-verity found corruption, say) reboots after 30 s instead of hanging:
# systemd-boot's tries counter then falls back to the other slot. A profile may set its own.
cmdline+=" panic=30"
if [[ -n "${BUNKER_EXTRA_CMDLINE:-}" ]]; then cmdline+=" ${BUNKER_EXTRA_CMDLINE}"; fi
printf '%s' "$cmdline" >"$work/cmdline"
cp "$root/usr/lib/os-release" "$work/os-release"
cp "$root/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/initrd"
uki="$work/esp/EFI/Linux/bunkeros-a.efi"
objcopy \
    --add-section .osrel="$work/os-release" --change-section-vma .osrel=0x20000 \
    --add-section .cmdline="$work/cmdline" --change-section-vma .cmdline=0x30000 \
    --add-section .linux="$work/vmlinuz" --change-section-vma .linux=0x2000000 \
    --add-section .initrd="$work/initrd" --change-section-vma .initrd=0x3000000 \
    /usr/lib/systemd/boot/efi/linuxx64.efi.stub "$uki"
python3 "$here/pe-pin-timestamp.py" "$uki" "$SOURCE_DATE_EPOCH"

step "expected PCR 11 (systemd-measure calculate)"
/usr/lib/systemd/systemd-measure calculate --linux="$work/vmlinuz" --initrd="$work/initrd" \
    --cmdline="$work/cmdline" --osrel="$work/os-release" --bank=sha256 --json=pretty >"$work/pcr11.json"
/usr/lib/systemd/systemd-measure calculate --linux="$work/vmlinuz" --initrd="$work/initrd" \
    --cmdline="$work/cmdline" --osrel="$work/os-release" --bank=sha256 \
    --phase=enter-initrd:leave-initrd:sysinit:ready |
    awk -F'=' '/^11:sha256=/ {print $2}' >"$work/pcr11.expected"
[[ -s "$work/pcr11.expected" ]] || { echo "error: systemd-measure printed no PCR 11 value" >&2; exit 1; }

step "PCR 11 policy signed by the release key (deterministic ECDSA: same inputs, same bytes)"
"${BUNKER_RELEASE_TOOL:?}" sign-pcr-policy --key "${BUNKER_RELEASE_KEY:?}" \
    --pcr "11=$(cat "$work/pcr11.expected")" --out "$work/pcr11.policy.json"

step "EFI system partition: systemd-boot + the slot A UKI, its version, root hash and signed PCR 11 policy"
cp /usr/lib/systemd/boot/efi/systemd-bootx64.efi "$work/esp/EFI/BOOT/BOOTX64.EFI"
# What the appliance needs to know of each slot travels with it on the ESP (/efi/bunkeros/<slot>/):
# it cannot live in the root, whose hash is part of what PCR 11 measures. bunkeros-slot.service
# finds the booted slot by its root hash and publishes these under /run/bunkeros/slot/.
mkdir -p "$work/esp/bunkeros/a"
printf '%s\n' "$roothash" >"$work/esp/bunkeros/a/roothash"
printf '%s\n' "${BUNKER_VERSION:?}" >"$work/esp/bunkeros/a/version"
cp "$work/pcr11.json" "$work/pcr11.expected" "$work/pcr11.policy.json" "$work/esp/bunkeros/a/"
# No menu, no editor: the kernel command line is the one measured into the UKI. `default` is a
# glob over both slots' UKIs: systemd-boot boots the newest version among the entries with tries
# left, so an installed slot B boots next and one marked bad (0 tries) falls back to A.
printf 'timeout 0\neditor no\ndefault bunkeros-*\n' >"$work/esp/loader/loader.conf"
find "$work/esp" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
truncate -s "${BUNKER_ESP_MIB}M" "$work/esp.img"
mkfs.vfat -F 32 -n ESP -i 0b0e5e5a --invariant "$work/esp.img" >/dev/null
(
    cd "$work/esp"
    find . -mindepth 1 -type d | sort | while read -r d; do mmd -i "$work/esp.img" "::${d#./}"; done
    find . -type f | sort | while read -r f; do mcopy -m -i "$work/esp.img" "$f" "::${f#./}"; done
)

step "data partition (/var): empty ext4 with fixed UUID, hash seed and time"
truncate -s "${BUNKER_DATA_MIB}M" "$work/data.ext4"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -L data -U "$(derived_uuid data-fs)" \
    -E "hash_seed=$(derived_uuid data-hash),root_owner=0:0" "$work/data.ext4"

step "GPT: esp, root-a, root-a-verity, root-b, root-b-verity, data"
part() { printf '[Partition]\n%s\n' "$2" >"$work/repart/$1.conf"; }
part 00-esp "Type=esp
Label=esp
UUID=$(derived_uuid esp)
CopyBlocks=$work/esp.img"
part 10-root-a "Type=root
Label=root-a
UUID=$root_uuid
CopyBlocks=$work/root.squashfs
ReadOnly=yes
SizeMinBytes=${BUNKER_ROOT_MIB}M
SizeMaxBytes=${BUNKER_ROOT_MIB}M"
part 11-root-a-verity "Type=root-verity
Label=root-a-verity
UUID=$verity_uuid
CopyBlocks=$work/root.verity
ReadOnly=yes
SizeMinBytes=${BUNKER_VERITY_MIB}M
SizeMaxBytes=${BUNKER_VERITY_MIB}M"
part 20-root-b "Type=root
Label=root-b
UUID=$(derived_uuid root-b)
SizeMinBytes=${BUNKER_ROOT_MIB}M
SizeMaxBytes=${BUNKER_ROOT_MIB}M"
part 21-root-b-verity "Type=root-verity
Label=root-b-verity
UUID=$(derived_uuid root-b-verity)
SizeMinBytes=${BUNKER_VERITY_MIB}M
SizeMaxBytes=${BUNKER_VERITY_MIB}M"
part 30-data "Type=linux-generic
Label=data
UUID=$(derived_uuid data)
CopyBlocks=$work/data.ext4"
systemd-repart --empty=create --size=auto --seed="$(derived_uuid disk)" \
    --definitions="$work/repart" --dry-run=no --json=short "$work/bunkeros.img" >"$work/repart.json"

mv "$work/bunkeros.img" "$out/bunkeros.img"
cp "$uki" "$out/bunkeros.uki.efi"
mv "$work/root.squashfs" "$out/root.squashfs"
mv "$work/root.verity" "$out/root.verity"
printf '%s\n' "$roothash" >"$out/roothash"
cp "$work/pcr11.json" "$work/pcr11.expected" "$work/pcr11.policy.json" "$work/cmdline" "$out/"
