#!/usr/bin/env bash
# The platform's own floor under any PMD gap: a tight C loop (bench/platformgap/gaploop.c: no DPDK,
# no .NET, no system calls) on the PMD core records the longest gap between two consecutive TSC
# reads per window, while the other core (the control core: vswitchd's control plane, the traffic
# peers) is
#   idle     doing nothing
#   busy     busy all the time (what a 200 000-rule load does for ~2 s, and what a busy-polling
#            traffic peer such as bench/pmdgap.sh's testpmd "VM" does for the whole run)
#   d50      busy 20 ms of every 40 ms
#   d80      busy 8 ms of every 10 ms
# Nothing runs on the PMD core but the loop, so any gap it sees is time the hypervisor or the kernel
# took the core away: a PMD on that core (in any language) cannot show a shorter gap than this in
# the same conditions. Conditions alternate within each run (order reversed in odd runs).
#
# usage: bench/platformgap.sh [RUNS=3]   env: WINDOW (seconds, default 2: the length of a 200 000-rule
#        load), WINDOWS (per condition and run, default 5), CONDITIONS ("idle busy d50 d80")
# Last line: RESULT platformgap_idle_us=<median window max> platformgap_busy_us=<...> ... and, per
#            condition, the share of windows whose longest gap exceeded 1 ms.
set -euo pipefail
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${1:-${RUNS:-3}}
WINDOW=${WINDOW:-2}
WINDOWS=${WINDOWS:-5}
CONDITIONS=${CONDITIONS:-idle busy d50 d80}
. "$here/lib.sh"
pin_to_core0 "$0" "$@"
pmd_core=$((ALL_CPUS - 1))
work=$(mktemp -d /tmp/vsw-platformgap.XXXXXX)
lp=
trap '[ -n "$lp" ] && kill "$lp" 2>/dev/null; rm -rf "$work"' EXIT
cc -O2 -o "$work/gaploop" "$here/platformgap/gaploop.c"
cc -O2 -o "$work/duty" "$here/platformgap/duty.c"
secs=$(python3 -c "print($WINDOW * $WINDOWS + 2)") # the load outlasts the loop; stopped when the loop ends

for i in $(seq 0 $((RUNS - 1))); do
  order=$(run_order "$i" $CONDITIONS)
  echo "run $((i + 1)) order: $order"
  for c in $order; do
    load=
    case $c in
      idle) ;;
      busy) load="0 $secs" ;;
      d50) load="20000 20000 $secs" ;;
      d80) load="8000 2000 $secs" ;;
      *) echo "platformgap.sh: unknown condition $c" >&2; exit 2 ;;
    esac
    lp=
    if [ -n "$load" ]; then
      set -- $load
      if [ $# = 2 ]; then taskset -c 0 "$work/duty" 1000000000 0 "$2" & else taskset -c 0 "$work/duty" "$1" "$2" "$3" & fi
      lp=$!
      sleep 0.3
    fi
    taskset -c "$pmd_core" "$work/gaploop" "$WINDOW" "$WINDOWS" > "$work/$c.$i"
    [ -n "$lp" ] && { kill "$lp" 2>/dev/null || true; wait "$lp" 2>/dev/null || true; lp=; }
    echo "run $((i + 1)): $c window max us: $(awk '{printf "%s ", $1}' "$work/$c.$i")"
    sleep 0.5
  done
done
res="RESULT"
for c in $CONDITIONS; do
  med=$(cat "$work/$c".* | awk '{print $1}' | median)
  over=$(cat "$work/$c".* | awk '$1 > 1000 {o++} END {printf "%d/%d", o, NR}')
  res="$res platformgap_${c}_us=$med platformgap_${c}_over_1ms=$over"
done
echo "# PMD core $pmd_core, windows of $WINDOW s"
echo "$res"
