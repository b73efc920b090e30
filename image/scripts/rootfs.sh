#!/bin/bash
# Build the BunkerOS root tree with mmdebstrap from Debian bookworm.
#
#   rootfs.sh TREE_DIR locked|refresh
#
# locked:  installs exactly the name=version pairs of image/packages.lock (variant "custom": no
#          package outside the lock, not even apt), so two builds install the same bytes.
# refresh: resolves image/packages.list against the archive today (variant "essential", no apt);
#          the caller then writes the new lock from the installed set.
#
# Downloaded .debs are kept in BUNKER_DEB_CACHE (build/debcache), so a warm build downloads nothing
# and keeps working when the archive has moved on. Apt sources come from the build host's own
# configuration (BUNKER_APT_SOURCES), so the image is built from the mirror this machine uses.
set -euo pipefail
tree=$(realpath -m "$1")
mode=$2
img=${BUNKER_IMAGE_DIR:?}
cache=${BUNKER_DEB_CACHE:?}
sources=${BUNKER_APT_SOURCES:?}
: "${SOURCE_DATE_EPOCH:?}"

case "$mode" in
locked)
    variant=custom
    include=$(grep -v -e '^#' -e '^$' "$img/packages.lock" | paste -sd,)
    ;;
refresh)
    variant=essential
    include=$(grep -v -e '^#' -e '^$' "$img/packages.list" | paste -sd,)
    ;;
*) echo "rootfs.sh: mode must be locked or refresh" >&2; exit 2 ;;
esac

rm -rf "$tree"
mkdir -p "$cache" "$(dirname "$tree")"
mmdebstrap --mode=root --variant="$variant" --include="$include" \
    --aptopt='Acquire::Languages "none"' --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/etc/dracut.conf.d" "$1/var/cache/apt/archives"' \
    --setup-hook="cp '$img/dracut.conf' \"\$1/etc/dracut.conf.d/90-bunkeros.conf\"" \
    --setup-hook="sync-in '$cache' /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives '$cache'" \
    --customize-hook="'$img/scripts/customize.sh' \"\$1\"" \
    bookworm "$tree" "$sources"
