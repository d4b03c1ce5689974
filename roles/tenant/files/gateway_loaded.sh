# Run inside a gateway container (bash -c "$(cat this)" _ CONFIG): prints "loaded" when
# HAProxy's newest worker started no earlier than CONFIG was last written, else "stale"
# (a config written but never loaded: a run interrupted before the reload, or a reload
# that was skipped). PID 1 is HAProxy's master; its children are the workers (an old
# one lingers while its connections finish).
#
# Both times to the hundredth of a second, never whole seconds: /proc/stat's btime is the
# boot time cut to a whole second, so a worker started 0.2 s after the write read as up
# to a second older than it, i.e. "stale" on a host whose boot fell late in its second
# (CI, 2026-12-06: a reload right after a write never read "loaded"). The boot time here
# is now minus /proc/uptime, and a worker's start is its start tick after that. Reading
# the two clocks costs a few milliseconds, so a worker that started up to 0.1 s before
# the write still counts as loaded; a real stale config is seconds older than its file.
# GATEWAY_LOADED_PROC points at another /proc, for tests/unit/test_gateway_loaded.py.
proc=${GATEWAY_LOADED_PROC:-/proc}
read -r up _ < "$proc/uptime"
now=$(date +%s.%N)
written=$(date -r "$1" +%s.%N)
ticks=""
for pid in $(cat "$proc/1/task/1/children"); do
  ticks="$ticks $(awk '{print $22}' "$proc/$pid/stat")"
done
awk -v now="$now" -v up="$up" -v hz="$(getconf CLK_TCK)" -v written="$written" -v ticks="$ticks" 'BEGIN {
  newest = -1
  n = split(ticks, started, " ")
  for (i = 1; i <= n; i++) if (started[i] / hz > newest) newest = started[i] / hz
  print (n > 0 && now - up + newest + 0.1 >= written) ? "loaded" : "stale"
}'
