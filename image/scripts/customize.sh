#!/bin/bash
# Turn the freshly installed Debian tree into the BunkerOS root. Runs as mmdebstrap's customize hook:
#
#   customize.sh ROOT_TREE
#
# Environment: BUNKER_IMAGE_DIR (this repository's image/), BUNKER_BIN_DIR (release binaries),
# BUNKER_PROFILE_FILE, BUNKER_VERSION, BUNKER_MANIFEST (where to write the installed package list),
# BUNKER_RELEASE_PUBKEY (the release key's public half, PEM), BUNKER_TUF_ROOT (the signed TUF root.json),
# SOURCE_DATE_EPOCH, and the profile's BUNKER_* variables.
set -euo pipefail
root=$1
img=${BUNKER_IMAGE_DIR:?}
bin=${BUNKER_BIN_DIR:?}

step() { printf '  [root] %s\n' "$*"; }
# install MODE SRC DST: copy a file with a fixed mode, creating parents.
put() { install -D -m "$1" "$2" "$root$3"; }

step "record the installed packages"
chroot "$root" dpkg-query -W -f='${Package}=${Version}\n' | LC_ALL=C sort >"${BUNKER_MANIFEST:?}"

step "identity: os-release, hostname, empty machine-id (generated at boot)"
. "$root/usr/lib/os-release"
cat >"$root/usr/lib/os-release" <<OSREL
PRETTY_NAME="BunkerOS ${BUNKER_VERSION} (${BUNKER_PROFILE_NAME})"
NAME="BunkerOS"
ID=bunkeros
ID_LIKE=debian
VERSION="${BUNKER_VERSION}"
VERSION_ID="${BUNKER_VERSION}"
IMAGE_ID=bunkeros-${BUNKER_PROFILE_NAME}
IMAGE_VERSION=${BUNKER_VERSION}
DEBIAN_VERSION_ID="${VERSION_ID}"
HOME_URL="https://bunkeros.invalid/"
OSREL
echo bunkeros >"$root/etc/hostname"
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

step "BunkerOS binaries, units, sysusers, tmpfiles, profile, service defaults"
for b in "$bin"/*; do put 0755 "$b" "/usr/bin/$(basename "$b")"; done
for u in "$img"/units/*; do put 0644 "$u" "/usr/lib/systemd/system/$(basename "$u")"; done
put 0644 "$img/sysusers.d/bunkeros.conf" /usr/lib/sysusers.d/bunkeros.conf
put 0644 "$img/tmpfiles.d/bunkeros.conf" /usr/lib/tmpfiles.d/bunkeros.conf
put 0644 "${BUNKER_PROFILE_FILE:?}" /usr/share/bunkeros/profile.toml
for c in "$img"/config/*.toml; do put 0644 "$c" "/usr/share/bunkeros/$(basename "$c")"; done
for d in "$img"/dbus-1/*.conf; do put 0644 "$d" "/usr/share/dbus-1/system.d/$(basename "$d")"; done
for x in "$img"/libexec/*; do put 0755 "$x" "/usr/libexec/bunkeros/$(basename "$x")"; done
for r in "$img"/udev/*.rules; do put 0644 "$r" "/usr/lib/udev/rules.d/$(basename "$r")"; done
if [[ ${BUNKER_SIMULATE_MINERS:-0} == 1 ]]; then
    step "simulation ([simulation] miners): minersim, poolsim and minerd's site layer for them"
    for u in "$img"/sim/units/*; do put 0644 "$u" "/usr/lib/systemd/system/$(basename "$u")"; done
    put 0644 "$img/sim/minerd.toml" /usr/share/bunkeros/sim/minerd.toml
    put 0644 "$img/sim/tmpfiles.conf" /usr/lib/tmpfiles.d/bunkeros-sim.conf
fi
if [[ ${BUNKER_SIMULATE_SITE:-0} == 1 ]]; then
    step "simulation ([simulation] site): sitesim and sited's site layer for it"
    put 0644 "$img/sim/site/sitesim.service" /usr/lib/systemd/system/sitesim.service
    put 0644 "$img/sim/site/sited.toml" /usr/share/bunkeros/sim/sited.toml
    put 0644 "$img/sim/site/tmpfiles.conf" /usr/lib/tmpfiles.d/bunkeros-sim-site.conf
fi
# The release key's public half: trustd's `authorized` CA policy accepts the PCR policies it signed.
put 0644 "${BUNKER_RELEASE_PUBKEY:?}" /usr/share/bunkeros/release-key.pem
# The TUF root this image trusts: updated verifies every release against it (and its successors).
put 0644 "${BUNKER_TUF_ROOT:?}" /usr/share/bunkeros/update/root.json
put 0644 "$img/fstab" /etc/fstab
# /etc is read-only on the appliance: create the system users now, not at first boot.
systemd-sysusers --root="$root"
# /tmp is a tmpfs (Debian does not mount one by default); /efi is where the ESP is automounted.
put 0644 "$root/usr/share/systemd/tmp.mount" /etc/systemd/system/tmp.mount
mkdir -p "$root/efi"

step "enable units"
systemctl --root="$root" enable tmp.mount bunkeros-slot.service bunkeros-console.service \
    bunkeros-selftest.service >/dev/null
# Services are enabled as their binaries land in the image.
for service in trustd hubd minerd sited updated; do
    if [[ -x $root/usr/bin/$service ]]; then systemctl --root="$root" enable "$service.service" >/dev/null; fi
done
# The health gate of a newly installed slot: required by boot-complete.target, which only a
# boot-counted boot pulls in (systemd-bless-boot's generator).
if [[ -x $root/usr/bin/updated ]]; then
    systemctl --root="$root" enable updated-health-gate.service >/dev/null
fi
if [[ ${BUNKER_SIMULATE_MINERS:-0} == 1 ]]; then
    systemctl --root="$root" enable poolsim.service minersim-a.service minersim-b.service >/dev/null
fi
if [[ ${BUNKER_SIMULATE_SITE:-0} == 1 ]]; then
    systemctl --root="$root" enable sitesim.service >/dev/null
fi
systemctl --root="$root" set-default multi-user.target >/dev/null

step "hardening: no logins"
# No password works for any account; root is locked, and there is no SSH server in the image.
sed -i -E 's/^([^:]+):[^:]*:/\1:!*:/' "$root/etc/shadow"
rm -f "$root/etc/shadow-" "$root/etc/passwd-" "$root/etc/group-" "$root/etc/gshadow-"
# No getty anywhere: the console shows the status screen, not a login prompt.
for unit in getty@.service serial-getty@.service console-getty.service container-getty@.service \
    debug-shell.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
if [[ "${BUNKER_ROOT_CONSOLE:-0}" == 1 ]]; then
    step "DEVELOPMENT PROFILE: root shell on the console ${BUNKER_CONSOLE} (never in a production profile)"
    case "$BUNKER_CONSOLE" in
    ttyS* | hvc*) getty=serial-getty@ agetty_opts="--keep-baud 115200,57600,38400,9600" ;;
    *) getty=getty@ agetty_opts="--noclear" ;;
    esac
    rm -f "$root/etc/systemd/system/$getty.service"
    mkdir -p "$root/etc/systemd/system/$getty$BUNKER_CONSOLE.service.d" "$root/etc/systemd/system/getty.target.wants"
    printf '[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root %s - $TERM\n' "$agetty_opts" \
        >"$root/etc/systemd/system/$getty$BUNKER_CONSOLE.service.d/autologin.conf"
    ln -sf "/lib/systemd/system/$getty.service" "$root/etc/systemd/system/getty.target.wants/$getty$BUNKER_CONSOLE.service"
    # The status screen would draw over the shell; `bunkerctl status --watch 5` shows it on demand.
    systemctl --root="$root" disable bunkeros-console.service >/dev/null
fi
