#!/usr/bin/env bash
# Run a command with the running containers that carry a label held still, then let them
# go again, whether the command passed or not; exit with the command's status.
#   tests/hold-containers.sh pause|stop LABEL COMMAND...
# pause freezes them (their memory stays); stop frees their memory too (docker start after).
# make test uses it: the multi-host hosts are paused while Locust measures, the demo's
# tenants are stopped while the multi-host checks, Molecule and the VM run.
set -uo pipefail
action=$1 label=$2
shift 2
case $action in
  pause) release=unpause ;;
  stop) release=start ;;
  *) echo "hold-containers.sh: action must be pause or stop, not '$action'" >&2; exit 2 ;;
esac
held=$(docker ps -q --filter "label=$label" --filter status=running)
if [ -n "$held" ]; then
  echo "$action: $(docker inspect -f '{{.Name}}' $held | tr -d / | tr '\n' ' ')"
  docker "$action" $held >/dev/null
fi
rc=0
"$@" || rc=$?
if [ -n "$held" ]; then
  docker "$release" $held >/dev/null
  echo "$release: done"
fi
exit $rc
