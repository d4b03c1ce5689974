#!/usr/bin/env bash
# Measure CI cold, as docs/benchmarks.md records it: make THIS machine as bare as a fresh
# CI machine, then run `bash .ci/run` on a fresh clone with /usr/bin/time.
#
# DESTRUCTIVE: removes every container, purges docker.io, containerd, runc, debootstrap
# and qemu, and deletes /var/lib/docker, /var/lib/containerd, /var/lib/tenancy,
# /etc/tenancy, /etc/docker, the VM image cache and the pip cache. Only for a throwaway test machine.
#
#   scripts/cold-ci.sh --wipe-this-machine [REPO (default: this checkout)] [COMMIT]
# The clone goes to /tmp/ci, the log to /tmp/ci.log; the stage times are at its end.
set -uo pipefail
if [ "${1:-}" != --wipe-this-machine ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
repo=${2:-$(cd "$(dirname "$0")/.." && pwd)}
commit=${3:-HEAD}

docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null
pkill -f containerd-shim; pkill dockerd; sleep 3; pkill -9 dockerd; pkill containerd; sleep 2
umount /var/lib/docker/overlay2/*/merged 2>/dev/null
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq docker.io debootstrap qemu-system-x86 qemu-utils \
  containerd runc >/dev/null 2>&1
apt-get autoremove -y -qq >/dev/null 2>&1
# /etc/docker too: daemon.json is no package's file, and a fresh CI machine has none.
rm -rf /var/lib/docker /var/lib/containerd /var/lib/tenancy /etc/tenancy /etc/docker /var/cache/tenancy-vm \
  /root/.cache/pip /root/.cache/tenancy /tmp/ci /var/run/docker.pid /var/run/docker.sock
ip link del docker0 2>/dev/null
# Docker's user-defined bridges outlive the purge too. A stale one that keeps a subnet the
# tests use again (the multi-host network, 10.203.0.0/24) keeps its route, link down, and
# traffic to the new hosts goes nowhere: the cold CI of dfd71fd "timed out" waiting for sshd.
for bridge in $(ip -o link show type bridge | awk -F': ' '{print $2}' | grep '^br-'); do
  ip link del "$bridge"
done

git clone -q "$repo" /tmp/ci && git -C /tmp/ci checkout -q "$commit" || exit 1
cd /tmp/ci && /usr/bin/time -v env CI=true bash .ci/run > /tmp/ci.log 2>&1
rc=$?
echo "rc=$rc" >> /tmp/ci.log
grep -A20 '^stage times' /tmp/ci.log
grep -E 'Elapsed \(wall clock\)' /tmp/ci.log
exit $rc
