#!/usr/bin/env bash
# Power the test VM on again after the guest powered itself off, with the same disks:
# the side effect's "reboot" (crypttab and fstab must reopen the tenant's volume at boot).
# Usage: power-cycle.sh RUN_DIR      (the directory start-vm.sh booted the VM in)
#
# Why not an in-guest reboot: under TCG a warm reset of this VM boots about 2.5x slower
# than a fresh qemu with the same disks (measured 2026-12-06 on an idle 2-core machine:
# reboot 78-94 s to a new boot id, against poweroff 6 s + boot to SSH 26 s). The guest
# still shuts down cleanly (systemd stops its units, unmounts and closes the LUKS
# device), and the next boot is a real boot of the same disks.
set -euo pipefail
run=$1
# shellcheck source=/dev/null
. "$run/vm.env"
pid=$(cat "$run/qemu.pid")

# The guest's shutdown takes seconds idle and up to a minute or two on a busy machine
# under TCG; five minutes without qemu exiting means the shutdown hangs.
for _ in $(seq 1 300); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
if kill -0 "$pid" 2>/dev/null; then
  echo "the VM did not power off within 5 minutes; last console lines:" >&2
  tail -30 "$run/console.log" >&2
  kill "$pid"
  exit 1
fi
# qemu truncates its serial log on start: keep the first boot's (and its shutdown's).
mv "$run/console.log" "$run/console.before-power-cycle.log"
exec bash "$(dirname "$0")/start-vm.sh" "$image" "$run" "$port" --keep-disks
