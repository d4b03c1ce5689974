#!/bin/sh
# PID 1 of a Docker-in-Docker instance (Molecule's, and the multi-host test hosts').
#
# Docker mounts the cgroup v1 hierarchies read-only into an unprivileged container, and a
# dockerd inside cannot create its containers' cgroups there. With a private cgroup
# namespace and CAP_SYS_ADMIN, each hierarchy can be mounted again read-write: the new
# mount shows only this container's own subtree, so nothing outside it is exposed.
# On cgroup v2 (one unified mount) there is nothing to do.
#
# With arguments, it then execs them (tests/multihost: the host's sshd); without, it
# stays up until Molecule destroys the instance.
set -eu

grep ' - cgroup ' /proc/self/mountinfo | while read -r line; do
  mount_point=$(printf '%s\n' "$line" | cut -d' ' -f5)
  # The super options after " - cgroup cgroup ": e.g. "rw,cpu" or "rw,name=systemd".
  options=$(printf '%s\n' "$line" | sed 's/.* - cgroup [^ ]* //')
  umount "$mount_point"
  mount -t cgroup -o "$options" cgroup "$mount_point"
done

if [ "$#" -gt 0 ]; then
  exec "$@"
fi

# Exit at once on SIGTERM.
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
