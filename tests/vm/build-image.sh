#!/usr/bin/env bash
# Build (once) a small Debian 12 VM for tests that need a real kernel: Debian's own
# linux-image-amd64 (it carries dm-mod and dm-crypt), systemd, sshd, python3 and
# cryptsetup, on a debootstrapped ext4 root filesystem. No registry and no cloud image:
# only Debian's mirror is needed.
#
# Usage: build-image.sh [CACHE_DIR]     (default: $TENANCY_VM_CACHE or /var/cache/tenancy-vm)
# Prints the directory holding the image: root.img, vmlinuz, initrd.img, id_ed25519.
# The directory name is a hash of this script, so a changed recipe builds a new image
# and an unchanged one is reused (about 3 minutes saved per run).
set -euo pipefail

cache=${1:-${TENANCY_VM_CACHE:-/var/cache/tenancy-vm}}
mirror=${TENANCY_VM_MIRROR:-http://deb.debian.org/debian}
recipe=$(sha256sum "$0" | cut -c1-12)
out="$cache/bookworm-$recipe"

log() { printf 'build-vm-image: %s\n' "$*" >&2; }

if [ -s "$out/root.img" ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
  echo "$out"
  exit 0
fi

for tool in debootstrap mkfs.ext4 ssh-keygen; do
  command -v "$tool" >/dev/null || { log "missing $tool"; exit 1; }
done

mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
root="$work/root"
trap 'rm -rf "$work"' EXIT

log "debootstrap bookworm with linux-image-amd64 (about 2 minutes)"
debootstrap --variant=minbase \
  --include=systemd-sysv,udev,linux-image-amd64,initramfs-tools,kmod,openssh-server,python3,cryptsetup,e2fsprogs,iproute2 \
  bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}

echo tenancy-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 tenancy-vm\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 defaults 0 1\n' >"$root/etc/fstab"
# One virtio NIC behind qemu's user network: DHCP through systemd-networkd.
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=en*\n\n[Network]\nDHCP=yes\n' >"$root/etc/systemd/network/20-wired.network"
chroot "$root" systemctl enable systemd-networkd ssh >/dev/null 2>&1
# Nothing in the tests needs these, and under TCG every second of boot counts.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
  fstrim.timer systemd-timesyncd.service >/dev/null 2>&1 || true

# Root logs in over SSH with a key made for this image only.
ssh-keygen -q -t ed25519 -N '' -C tenancy-vm -f "$work/id_ed25519"
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$work/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
printf 'UseDNS no\n' >"$root/etc/ssh/sshd_config.d/tenancy.conf"

cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

log "writing the ext4 root image"
mkfs.ext4 -q -L root -d "$root" "$work/root.img" 3G

rm -rf "$out"
mkdir -p "$out"
mv "$work/root.img" "$work/vmlinuz" "$work/initrd.img" "$work/id_ed25519" "$work/id_ed25519.pub" "$out/"
log "image ready in $out"
echo "$out"
