#!/usr/bin/env bash
# Boot a throwaway VM from the cached image (build-image.sh) and wait until SSH answers.
# Usage: start-vm.sh IMAGE_DIR RUN_DIR SSH_PORT [--keep-disks]
# - The root disk is a copy-on-write overlay in RUN_DIR, so the cached image stays clean.
# - --keep-disks boots the disks a previous start left in RUN_DIR (power-cycle.sh: the
#   same machine powered on again).
# - A second, empty 256 MiB disk (/dev/vdb) stands for "a given block device".
# - Ansible reaches the VM as root through 127.0.0.1:SSH_PORT.
# - TCG by default: nested KVM on these machines fails ("failed to set MSR") or hangs.
#   TENANCY_VM_KVM=yes uses KVM where it works.
set -euo pipefail
image=$1
run=$2
port=$3
keep=${4:-}

mkdir -p "$run"
if [ "$keep" = --keep-disks ]; then
  [ -s "$run/root.qcow2" ] && [ -s "$run/vdb.img" ] || { echo "no disks to keep in $run" >&2; exit 1; }
else
  rm -f "$run/root.qcow2" "$run/vdb.img"
  qemu-img create -q -f qcow2 -F raw -b "$image/root.img" "$run/root.qcow2"
  truncate -s 256M "$run/vdb.img"
fi
# What power-cycle.sh needs to boot this machine again.
printf 'image=%q\nport=%q\n' "$image" "$port" >"$run/vm.env"

accel=tcg
cpu=${TENANCY_VM_CPU:-max}
if [ "${TENANCY_VM_KVM:-no}" = yes ]; then
  accel=kvm
  cpu=host
fi

qemu-system-x86_64 \
  -machine q35,accel="$accel" -cpu "$cpu" -smp 2 -m 1536 \
  -kernel "$image/vmlinuz" -initrd "$image/initrd.img" \
  -append "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=0" \
  -drive file="$run/root.qcow2",if=virtio,format=qcow2 \
  -drive file="$run/vdb.img",if=virtio,format=raw \
  -netdev user,id=net0,hostfwd=tcp:127.0.0.1:"$port"-:22 \
  -device virtio-net-pci,netdev=net0 \
  -display none -serial file:"$run/console.log" \
  -daemonize -pidfile "$run/qemu.pid"

start=$(date +%s)
for _ in $(seq 1 300); do
  if ssh -q -i "$image/id_ed25519" -p "$port" -o BatchMode=yes -o ConnectTimeout=5 \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@127.0.0.1 true 2>/dev/null; then
    echo "vm up ($accel) in $(($(date +%s) - start)) s; console: $run/console.log" >&2
    exit 0
  fi
  sleep 2
done
echo "VM did not answer on SSH within 10 minutes; last console lines:" >&2
tail -30 "$run/console.log" >&2
exit 1
