#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, installing Debian's docker.io
# when none is present. Used by `make demo`, `make test` and .ci/run on hosts that
# have no engine yet (CI, a fresh laptop). On managed GPU hosts the `docker` role of
# site.yml owns the engine instead.
set -euo pipefail

log() { printf 'ensure-docker: %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "no Docker engine found; installing Debian's docker.io"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io >/dev/null
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  log "starting docker.service"
  $SUDO systemctl enable --now docker
else
  # No systemd (containers, CI sandboxes): run the daemon in the background.
  log "no systemd; starting dockerd in the background (log: /var/log/dockerd.log)"
  $SUDO sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "Docker $(docker version --format '{{.Server.Version}}') is up"
    exit 0
  fi
  sleep 1
done
log "Docker did not answer within 60 s; see /var/log/dockerd.log"
exit 1
