#!/bin/bash
# Last touches to the root tree after mmdebstrap has finished with it (its own clean-up needs apt's
# and dpkg's files, so this cannot run as a customize hook).
#
#   seal.sh ROOT_TREE
set -euo pipefail
root=$1
printf '  [root] %s\n' "no package manager: the root changes only by signed image"
rm -f "$root"/usr/bin/dpkg* "$root"/usr/bin/apt* "$root"/usr/sbin/dpkg-*
rm -rf "$root/etc/apt" "$root/etc/dpkg" "$root/var/lib/dpkg" "$root/var/lib/apt" "$root/var/cache/apt"
printf '  [root] %s\n' "reproducibility: drop caches and logs written during the build"
rm -rf "$root"/var/log/* "$root"/var/cache/*
rm -f "$root/var/cache/ldconfig/aux-cache" "$root/etc/.pwd.lock"
