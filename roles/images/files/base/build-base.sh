#!/usr/bin/env bash
# Build the Debian base image with debootstrap and `docker import`, so no registry
# is needed. Usage: build-base.sh SUITE MIRROR IMAGE
set -euo pipefail
suite=$1
mirror=$2
image=$3
root=$(mktemp -d /var/tmp/tenancy-base.XXXXXX)
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase "$suite" "$root" "$mirror" >/dev/null
# Services must not start inside image builds.
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
  > "$root/etc/apt/apt.conf.d/90tenancy-no-recommends"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar --numeric-owner -C "$root" -c . \
  | docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "built $image"
