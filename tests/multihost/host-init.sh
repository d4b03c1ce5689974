#!/bin/sh
# PID 1 of a multi-host test host (tests/multihost/up.yml starts it).
#
# 1. Remount the cgroup v1 hierarchies read-write. Docker mounts them read-only into an
#    unprivileged container, and the host's own dockerd (installed later by the docker
#    role) could not create its containers' cgroups there. With a private cgroup
#    namespace and CAP_SYS_ADMIN each hierarchy can be mounted again: the new mount shows
#    only this container's subtree. Same as tests/molecule/dind/dind-init.sh.
# 2. Give this host its own SSH host keys (generated here, never baked into the image),
#    and authorise the controller's key for root and for the sudo user named in
#    /etc/tenancy-test/users (written by up.yml through a read-only bind mount).
# 3. Run sshd in the foreground as the host's service.
set -eu

grep ' - cgroup ' /proc/self/mountinfo | while read -r line; do
  mount_point=$(printf '%s\n' "$line" | cut -d' ' -f5)
  options=$(printf '%s\n' "$line" | sed 's/.* - cgroup [^ ]* //')
  umount "$mount_point"
  mount -t cgroup -o "$options" cgroup "$mount_point"
done

# /run is a tmpfs: sshd's privilege separation directory is made at every start.
mkdir -p /run/sshd
ssh-keygen -A >/dev/null
key=/etc/tenancy-test/authorized_key
user=$(cat /etc/tenancy-test/user)
if [ "$user" = root ]; then
  home=/root
else
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
  home=$(getent passwd "$user" | cut -d: -f6)
  printf '%s ALL=(ALL) NOPASSWD: ALL\n' "$user" >/etc/sudoers.d/tenancy-test
  chmod 0440 /etc/sudoers.d/tenancy-test
  # Root logs in with no key on this host: the controller must become root through sudo.
fi
install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
install -m 0600 -o "$user" -g "$user" "$key" "$home/.ssh/authorized_keys"

exec /usr/sbin/sshd -D -e -o PasswordAuthentication=no -o PermitRootLogin=prohibit-password
