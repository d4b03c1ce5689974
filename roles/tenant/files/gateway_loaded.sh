# Run inside a gateway container (bash -c "$(cat this)" _ CONFIG): prints "loaded" when
# HAProxy's newest worker started no earlier than CONFIG was last written, else "stale"
# (a config written but never loaded: a run interrupted before the reload, or a reload
# that was skipped). PID 1 is HAProxy's master; its children are the workers (an old
# one lingers while its connections finish).
boot=$(awk '/^btime/ {print $2}' /proc/stat)
tick=$(getconf CLK_TCK)
newest=0
for pid in $(cat /proc/1/task/1/children); do
  started=$((boot + $(awk '{print $22}' "/proc/$pid/stat") / tick))
  if [ "$started" -gt "$newest" ]; then newest=$started; fi
done
if [ "$newest" -ge "$(stat -c %Y "$1")" ]; then echo loaded; else echo stale; fi
