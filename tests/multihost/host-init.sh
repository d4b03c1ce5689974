#!/bin/sh
# The service of a multi-host test host, started by dind-init (PID 1, which first
# remounts the cgroup hierarchies read-write for the host's own dockerd; see
# tests/molecule/dind/dind-init.sh).
#
# 1. Give this host its own SSH host key (generated here, never baked into the image),
#    and authorise the controller's key for root and for the sudo user named in
#    /etc/tenancy-test/user (written by up.yml through a read-only bind mount).
# 2. Run sshd in the foreground as the host's service.
set -eu

# /run is a tmpfs: sshd's privilege separation directory is made at every start.
mkdir -p /run/sshd
# Only the ed25519 key (the one up.yml reads and the controller trusts): RSA key
# generation took long enough on a loaded 2-core CI machine for up.yml's wait to time out.
hostkey=/etc/ssh/ssh_host_ed25519_key
[ -f "$hostkey" ] || ssh-keygen -q -t ed25519 -N '' -f "$hostkey"
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

exec /usr/sbin/sshd -D -e -o HostKey="$hostkey" -o PasswordAuthentication=no -o PermitRootLogin=prohibit-password
