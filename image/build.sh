#!/bin/bash
# Build the BunkerOS disk image for one hardware profile.
#
#   image/build.sh --release-key KEY --tuf-root ROOT [--profile FILE] [--out DIR] [--force] [--refresh-lock]
#
# Needs root (mmdebstrap chroots), the release binaries in target/release (make image builds them),
# the host tools that `make deps` installs, the release signing key KEY (PKCS#8 PEM, P-256),
# which signs the image's PCR 11 prediction (only its public half goes into the image), and the
# signed TUF root.json ROOT that the image trusts for its updates. Writes the finished image and
# its companions into OUT (default build/image/<profile>) only when every step succeeded: a failed
# build leaves nothing under the final name. When OUT already holds an image built from the same
# inputs (image/, the profile, the binaries, the release key, the TUF root, SOURCE_DATE_EPOCH),
# nothing is rebuilt unless --force is given.
# See the README's "The image" for the layout.
set -euo pipefail
repo=$(cd "$(dirname "$(realpath "$0")")/.." && pwd)
profile_file=$repo/hardware/profiles/qemu-x86_64.toml
out=
mode=locked
force=0
release_key=
tuf_root=
while (($#)); do
    case "$1" in
    --profile) profile_file=$(realpath "$2"); shift 2 ;;
    --out) out=$(realpath -m "$2"); shift 2 ;;
    --release-key) release_key=$(realpath -m "$2"); shift 2 ;;
    --tuf-root) tuf_root=$(realpath -m "$2"); shift 2 ;;
    --refresh-lock) mode=refresh; force=1; shift ;;
    --force) force=1; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image/build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

# Every host tool the build runs, with the Debian package that provides it.
missing=()
need() { command -v "$1" >/dev/null 2>&1 || [[ -x "$1" ]] || missing+=("$1 (Debian package $2)"); }
need mmdebstrap mmdebstrap
need mksquashfs squashfs-tools
need veritysetup cryptsetup-bin
need mkfs.vfat dosfstools
need mcopy mtools
need mkfs.ext4 e2fsprogs
need objcopy binutils
need systemd-repart systemd
need /usr/lib/systemd/systemd-measure systemd
need /usr/lib/systemd/boot/efi/linuxx64.efi.stub systemd-boot-efi
need zstd zstd
need python3 python3
if ((${#missing[@]})); then
    printf 'error: image build tools are missing:\n' >&2
    printf '  %s\n' "${missing[@]}" >&2
    printf 'run `make deps` (as root or with sudo) to install them.\n' >&2
    exit 1
fi
if [[ $(id -u) != 0 ]]; then
    echo "error: the image build needs root (mmdebstrap --mode=root); run it through make, which uses sudo" >&2
    exit 1
fi
bunkerctl=$repo/target/release/bunkerctl
release_tool=$repo/target/release/bunkeros-release
for tool in "$bunkerctl" "$release_tool"; do
    [[ -x $tool ]] || { echo "error: $tool is missing: run cargo build --release (make image does)" >&2; exit 1; }
done
[[ -n $release_key ]] || { echo "error: no release key: pass --release-key KEY (make image passes RELEASE_KEY)" >&2; exit 2; }
[[ -r $release_key ]] || { echo "error: cannot read the release key $release_key" >&2; exit 1; }
[[ -n $tuf_root ]] || { echo "error: no TUF root: pass --tuf-root ROOT.json (make image passes TUF_ROOT)" >&2; exit 2; }
[[ -r $tuf_root ]] || { echo "error: cannot read the TUF root $tuf_root" >&2; exit 1; }

# The profile: validated by the same code the appliance uses, exported as BUNKER_* variables.
profile_env=$("$bunkerctl" profile env "$profile_file") || exit 78
eval "$profile_env"
export $(sed -n 's/^\(BUNKER_[A-Z0-9_]*\)=.*/\1/p' <<<"$profile_env")

# The time of the last commit that changed what goes into the image (not README-only commits).
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct -- image hardware services tools Cargo.toml Cargo.lock 2>/dev/null || true)}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export BUNKER_VERSION=${BUNKER_VERSION:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)}
export BUNKER_IMAGE_DIR=$repo/image
export BUNKER_PROFILE_FILE=$profile_file
export BUNKER_DEB_CACHE=${BUNKER_DEB_CACHE:-$repo/build/debcache}
if [[ -z ${BUNKER_APT_SOURCES:-} ]]; then
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [[ -s $f ]]; then BUNKER_APT_SOURCES=$f; break; fi
    done
fi
export BUNKER_APT_SOURCES=${BUNKER_APT_SOURCES:?no apt sources on this host: set BUNKER_APT_SOURCES}

out=${out:-$repo/build/image/$BUNKER_PROFILE_NAME}
work=$repo/build/work/$(basename "$out")
mkdir -p "$work"
# The release key's public half, as trustd reads it; a key that cannot be read stops the build here.
"$release_tool" public-key --key "$release_key" >"$work/release-key.pem" ||
    { echo "error: the release key $release_key is unusable (see above)" >&2; exit 1; }
export BUNKER_RELEASE_KEY=$release_key BUNKER_RELEASE_TOOL=$release_tool
export BUNKER_RELEASE_PUBKEY=$work/release-key.pem
# The TUF root the image trusts for updates: one that is not a valid, current, self-signed root
# would leave every appliance built with it unable to take any update, so it stops the build here.
"$release_tool" check-tuf-root --root "$tuf_root" >/dev/null ||
    { echo "error: the TUF root $tuf_root is unusable (see above)" >&2; exit 1; }
export BUNKER_TUF_ROOT=$tuf_root
inputs=$( (cd "$repo" && find image -type f -print0 | sort -z | xargs -0 sha256sum
    sha256sum "$profile_file" target/release/{trustd,bunkerctl,bunkeros-release}
    for b in hubd minerd sited updated; do
        if [[ -f image/units/$b.service ]]; then sha256sum "target/release/$b"; fi
    done
    if [[ ${BUNKER_SIMULATE_MINERS:-0} == 1 ]]; then sha256sum target/release/{minersim,poolsim}; fi
    if [[ ${BUNKER_SIMULATE_SITE:-0} == 1 ]]; then sha256sum target/release/sitesim; fi
    sha256sum <"$BUNKER_RELEASE_PUBKEY"
    sha256sum <"$BUNKER_TUF_ROOT"
    echo "$SOURCE_DATE_EPOCH $BUNKER_VERSION $mode") | sha256sum | cut -d' ' -f1)
if ((!force)) && [[ -f $out/bunkeros.img ]] && grep -qx "inputs=$inputs" "$out/build-info" 2>/dev/null; then
    echo "==> $out/bunkeros.img is up to date (same inputs); --force rebuilds"
    exit 0
fi
mkdir -p "$(dirname "$out")"
staging=$(mktemp -d "$(dirname "$out")/.$(basename "$out").partial.XXXXXX")
chmod 0755 "$staging"
trap 'rm -rf "$staging"' EXIT

# The binaries of the image: a service goes in together with its unit (image/units/), so a
# daemon that is still a library with a config checker (hubd today) stays out.
export BUNKER_BIN_DIR=$work/bin
rm -rf "$BUNKER_BIN_DIR"; mkdir -p "$BUNKER_BIN_DIR"
for b in trustd hubd minerd sited updated bunkerctl; do
    if [[ $b == bunkerctl || -f $repo/image/units/$b.service ]]; then
        cp "$repo/target/release/$b" "$BUNKER_BIN_DIR/"
    fi
done
# Simulated hardware only where the profile asks for it ([simulation]: QEMU), never otherwise.
if [[ ${BUNKER_SIMULATE_MINERS:-0} == 1 ]]; then
    cp "$repo"/target/release/{minersim,poolsim} "$BUNKER_BIN_DIR/"
fi
if [[ ${BUNKER_SIMULATE_SITE:-0} == 1 ]]; then
    cp "$repo"/target/release/sitesim "$BUNKER_BIN_DIR/"
fi
export BUNKER_MANIFEST=$staging/packages.installed

started=$(date +%s)
echo "==> BunkerOS $BUNKER_VERSION, profile $BUNKER_PROFILE_NAME ($profile_file), SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
echo "==> root tree (mmdebstrap, packages: $mode)"
"$repo/image/scripts/rootfs.sh" "$work/root" "$mode"
"$repo/image/scripts/seal.sh" "$work/root"
if [[ $mode == refresh ]]; then
    {
        echo "# BunkerOS root package lock: every package in the image, name=version (make image-lock)."
        echo "# Resolved from image/packages.list; builds install exactly this set."
        cat "$BUNKER_MANIFEST"
    } >"$repo/image/packages.lock"
    echo "==> wrote image/packages.lock ($(wc -l <"$BUNKER_MANIFEST") packages)"
elif ! diff -u <(grep -v -e '^#' -e '^$' "$repo/image/packages.lock") "$BUNKER_MANIFEST" >"$work/lock.diff"; then
    echo "error: the installed packages differ from image/packages.lock:" >&2
    cat "$work/lock.diff" >&2
    exit 1
fi

echo "==> disk image"
"$repo/image/scripts/assemble.sh" "$work/root" "$work/assemble" "$staging"
zstd -q -3 -T0 -f "$staging/bunkeros.img" -o "$staging/bunkeros.img.zst"
cp "$profile_file" "$staging/profile.toml"
cp "$BUNKER_RELEASE_PUBKEY" "$staging/release-key.pem"
cp "$BUNKER_TUF_ROOT" "$staging/tuf-root.json"
(cd "$staging" && sha256sum bunkeros.img bunkeros.img.zst bunkeros.uki.efi root.squashfs root.verity >SHA256SUMS)
cat >"$staging/build-info" <<INFO
inputs=$inputs
version=$BUNKER_VERSION
profile=$BUNKER_PROFILE_NAME
source_date_epoch=$SOURCE_DATE_EPOCH
roothash=$(cat "$staging/roothash")
pcr11=$(cat "$staging/pcr11.expected")
image_sha256=$(sha256sum "$staging/bunkeros.img" | cut -d' ' -f1)
image_bytes=$(stat -c %s "$staging/bunkeros.img")
image_allocated_bytes=$(($(stat -c %b "$staging/bunkeros.img") * $(stat -c %B "$staging/bunkeros.img")))
image_zstd_bytes=$(stat -c %s "$staging/bunkeros.img.zst")
INFO

chmod 0644 "$staging"/*
rm -rf "$out"
mv "$staging" "$out"
trap - EXIT
# The root tree and the assembly area are rebuilt from scratch by every build: once the image is
# out they are only disk (about 1 GB), so they go. After a failure they stay, to be looked at.
rm -rf "$work/root" "$work/assemble"
mib() { echo "$(( $1 / 1048576 )) MiB"; }
. "$out/build-info"
echo "==> done in $(( $(date +%s) - started )) s: $out/bunkeros.img"
echo "    sha256     $image_sha256"
echo "    size       $(mib "$image_bytes") raw, $(mib "$image_allocated_bytes") allocated, $(mib "$image_zstd_bytes") zstd"
echo "    roothash   $roothash"
echo "    PCR 11     $pcr11 (expected once booted)"
