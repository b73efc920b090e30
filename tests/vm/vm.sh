#!/bin/bash
# Boot a BunkerOS disk image in QEMU (q35, OVMF, virtio disk) with a software TPM 2.0 (swtpm).
#
#   vm.sh --image IMG [--interactive] [--overlay QCOW2] [--tpm-state DIR]
#         [--console-log FILE] [--selftest-log FILE] [--selftest | --selftest-value VALUE]
#         [--usb IMG] [--pidfile FILE] [--timeout SECONDS]
#
# --interactive   serial console on this terminal (make run); otherwise headless (tests)
# --overlay       keep the guest's writes in this qcow2 overlay (created if missing or older than
#                 the image); without it the image is booted as a throw-away snapshot
# --tpm-state     keep the TPM's state in this directory (a machine keeps its TPM across boots);
#                 without it a fresh TPM is made in a temporary directory
# --selftest      pass the SMBIOS credential that enables the image's boot self-test unit, whose
#                 results go to the second serial port (--selftest-log)
# --selftest-value  the same with this value: it names the test step (`1` is the boot test,
#                 `update-*` a step of the update test)
# --usb           attach this disk image as a read-only USB stick (qemu-xhci + usb-storage)
# --pidfile       QEMU writes its PID here (a test kills it to cut the power)
#
# Accelerator: KVM when it can run firmware here, else TCG (BUNKER_ACCEL=kvm|tcg overrides).
# swtpm and the temporary directory are cleaned up when QEMU exits, however it exits.
set -euo pipefail
image= interactive=0 overlay= tpm_state= console_log= selftest_log= selftest= timeout_s=0 usb= pidfile=
while (($#)); do
    case "$1" in
    --image) image=$(realpath "$2"); shift 2 ;;
    --interactive) interactive=1; shift ;;
    --overlay) overlay=$(realpath -m "$2"); shift 2 ;;
    --tpm-state) tpm_state=$(realpath -m "$2"); shift 2 ;;
    --console-log) console_log=$(realpath -m "$2"); shift 2 ;;
    --selftest-log) selftest_log=$(realpath -m "$2"); shift 2 ;;
    --selftest) selftest=1; shift ;;
    --selftest-value) selftest=$2; shift 2 ;;
    --usb) usb=$(realpath "$2"); shift 2 ;;
    --pidfile) pidfile=$(realpath -m "$2"); shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    *) echo "vm.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -f $image ]] || { echo "vm.sh: no image at '$image' (make image builds it)" >&2; exit 1; }
for tool in qemu-system-x86_64:qemu-system-x86 swtpm:swtpm qemu-img:qemu-utils; do
    command -v "${tool%%:*}" >/dev/null || { echo "vm.sh: ${tool%%:*} missing: install Debian package ${tool#*:} (make deps)" >&2; exit 1; }
done
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd
[[ -f $ovmf_code ]] || { echo "vm.sh: $ovmf_code missing: install Debian package ovmf (make deps)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bunkeros-vm.XXXXXX")
swtpm_pid=
cleanup() {
    if [[ -n $swtpm_pid ]] && kill -0 "$swtpm_pid" 2>/dev/null; then kill "$swtpm_pid" 2>/dev/null || true; wait "$swtpm_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The TPM: swtpm with its control socket; QEMU's tpm-tis device talks to it.
tpm_dir=${tpm_state:-$tmp/tpm}
mkdir -p "$tpm_dir"
swtpm socket --tpm2 --tpmstate dir="$tpm_dir" --ctrl type=unixio,path="$tmp/swtpm.sock" \
    --flags startup-clear --log file="$tmp/swtpm.log" &
swtpm_pid=$!
for _ in $(seq 100); do [[ -S $tmp/swtpm.sock ]] && break; sleep 0.05; done
[[ -S $tmp/swtpm.sock ]] || { echo "vm.sh: swtpm did not start:" >&2; cat "$tmp/swtpm.log" >&2; exit 1; }

# UEFI variables: per machine when the TPM state is kept, else fresh.
vars=$tmp/OVMF_VARS.fd
if [[ -n $tpm_state ]]; then vars=$tpm_state/OVMF_VARS.fd; fi
[[ -f $vars ]] || cp "$ovmf_vars" "$vars"

if [[ -n $overlay ]]; then
    if [[ ! -f $overlay || $image -nt $overlay ]]; then
        rm -f "$overlay"
        qemu-img create -q -f qcow2 -F raw -b "$image" "$overlay"
    fi
    disk=(-drive "file=$overlay,format=qcow2,if=virtio")
else
    disk=(-drive "file=$image,format=raw,if=virtio,snapshot=on")
fi

accel=${BUNKER_ACCEL:-auto}
if [[ $accel == auto ]]; then
    # kvm-pvm (paravirtual KVM on some cloud hosts) cannot run OVMF: use TCG there.
    if [[ -w /dev/kvm && ! -d /sys/module/kvm_pvm ]]; then accel=kvm; else accel=tcg; fi
fi

args=(-machine q35 -accel "$accel" -m 2048 -smp 2 -no-reboot
    -drive "if=pflash,format=raw,unit=0,file=$ovmf_code,readonly=on"
    -drive "if=pflash,format=raw,unit=1,file=$vars"
    "${disk[@]}"
    -chardev "socket,id=chrtpm,path=$tmp/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=chrtpm
    -device tpm-tis,tpmdev=tpm0
    -nic user,model=virtio-net-pci,restrict=on)
if ((interactive)); then
    args+=(-nographic -serial mon:stdio)
else
    args+=(-display none -monitor none -serial "file:${console_log:-/dev/null}")
fi
if [[ -n $selftest ]]; then
    [[ $selftest =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "vm.sh: --selftest-value takes letters, digits, '.', '_' and '-'" >&2; exit 2; }
    args+=(-serial "file:${selftest_log:-/dev/null}" -smbios "type=11,value=io.systemd.credential:bunkeros.selftest=$selftest")
fi
if [[ -n $usb ]]; then
    [[ -f $usb ]] || { echo "vm.sh: no USB stick image at '$usb'" >&2; exit 1; }
    args+=(-device qemu-xhci,id=xhci
        -drive "if=none,id=usbstick,format=raw,file=$usb,readonly=on"
        -device usb-storage,bus=xhci.0,drive=usbstick,removable=on)
fi
if [[ -n $pidfile ]]; then
    args+=(-pidfile "$pidfile")
fi

status=0
if ((timeout_s > 0)); then
    timeout --foreground "$timeout_s" qemu-system-x86_64 "${args[@]}" || status=$?
else
    qemu-system-x86_64 "${args[@]}" || status=$?
fi
exit "$status"
