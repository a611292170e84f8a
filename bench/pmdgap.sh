#!/usr/bin/env bash
# PMD stalls while the control plane works: the longest gap between two polling rounds of
# vswitchd's PMD (pmd-stats-show gap_max_us / gap_p999_us) and the process's GC pauses, with traffic
# flowing, in four windows of the same run:
#   idle     traffic only (the platform's own floor: tasks woken on the PMD's core, the hypervisor)
#   add      `vswitchctl add-flows` of RULES rules (default 200 000) from a file, plus the state
#            file rewrite it triggers (--state)
#   replace  `vswitchctl replace-flows` of a different RULES-rule table (every rule changes)
#   delete   `vswitchctl del-flows` of the big table (the forwarding rules stay)
# Traffic: a "VM" dpdk-testpmd (flowgen, two virtio-user ports, core 0) through vswitchd's two
# vhost-user ports and back, forwarded by two in_port rules that the big tables never match; the
# VM's received Mpps per 1-s sample is logged, and the lowest sample inside each window is shown
# (a stalled PMD is a dip there). PMD on the last core; everything else on core 0, the script itself
# included (it re-runs itself under taskset: see pin_to_core0 in lib.sh).
#
# SETTLE (s, default 3) is how long each window goes on after its command returned: long enough
# for the aftermath of a change (the state file rewrite, the low-latency mode's 500 ms linger and
# the background gen2 requested after it, and the ephemeral collections that run beside that) to
# fall inside the window of the change that caused it. With 1 s (the default before 2026-12-06) a
# build whose state write got faster showed that tail in its replace window, where a slower one had
# shown it in the next (delete) window.
#
# VM_NICE=N runs the VM at nice N: on this 2-core machine the VM busy-polls the core that vswitchd's
# control plane (and so every collection's work) runs on, and the scheduler slices between them;
# in a deployment the guests' vCPUs are not on the switch's housekeeping core. Default 0.
#
# usage: bench/pmdgap.sh [RUNS=3]   env: RULES (200000), VSWITCHD, VSWITCHCTL, KEEP=1, EXTRA (vswitchd args), VM_NICE (0), SETTLE (3)
# Last line: RESULT pmdgap_load_max_us=<median over runs of the worst gap in the add/replace/delete
#            windows> pmdgap_idle_max_us=<median idle-window gap> gc_pause_max_ms=<median worst pause>
set -euo pipefail
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
RUNS=${1:-${RUNS:-3}}
RULES=${RULES:-200000}
SETTLE=${SETTLE:-3}
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
VSWITCHCTL=${VSWITCHCTL:-$root/out/vswitchctl/vswitchctl}
work=$(mktemp -d /tmp/vsw-pmdgap.XXXXXX)
run=$work/run
mkdir -p "$run"
. "$here/lib.sh"
pin_to_core0 "$0" "$@"
pmd_core=$((ALL_CPUS - 1))
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT
"$root/hugepages/setup.sh" >/dev/null
[ -x "$VSWITCHD" ] && [ -x "$VSWITCHCTL" ] || { echo "pmdgap.sh: $VSWITCHD or $VSWITCHCTL missing; run scripts/setup first" >&2; exit 1; }
CTL="timeout 300 taskset -c 0 $VSWITCHCTL --socket $run/vsw.sock"

# the big tables: RULES distinct /32 destinations in 10.0.0.0/8 (never in the VM's traffic)
python3 - "$RULES" "$work" <<'EOF'
import sys
n, d = int(sys.argv[1]), sys.argv[2]
for name, port in (("a", 1), ("b", 2)):
    with open(f"{d}/{name}.txt", "w") as f:
        for i in range(n):
            f.write(f"table=0,priority=100,ip,nw_dst=10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255},actions=output:{port}\n")
with open(f"{d}/base.txt", "w") as f:
    f.write("table=0,priority=10,in_port=1,actions=output:2\ntable=0,priority=10,in_port=2,actions=output:1\n")
EOF

# window NAME CMD...: clear, run CMD (timed), settle SETTLE s, read the PMD's gap and the GC figures
window() {
  local name=$1
  shift
  $CTL pmd-stats-clear >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  sleep "$SETTLE"
  $CTL --json pmd-stats-show | python3 -c '
import json, sys
name, secs = sys.argv[1], float(sys.argv[2])
s = json.load(sys.stdin)
p, gc = s["pmds"][0], s["gc"]
recent = " ".join("gen%d:%s:%.1fms" % (g["gen"], g["reason"], g["pause_ms"]) for g in gc["recent"])
print("%-8s cmd_s=%.2f gap_max_us=%.1f gap_p999_us=%.1f gc_collections=%d gc_pause_max_ms=%.2f gc_suspend_max_ms=%.2f heap_mb=%.1f %s" % (
    name, secs, p["gap_max_us"], p["gap_p999_us"], gc["collections"], gc["pause_max_ms"], gc["suspend_max_ms"], gc["heap_mb"], recent))
' "$name" "$(echo "$t1 - $t0" | bc)"
}

load_max=() idle_max=() pause_max=()
for i in $(seq 1 "$RUNS"); do
  rm -f "$run"/*.sock "$work/state.json"
  timeout -s INT -k 5 900 $PIN_PMD "$VSWITCHD" --mode pipeline --pmd-cores "$pmd_core" --stats-interval 0 --control "$run/vsw.sock" \
    --flows "$work/base.txt" --state "$work/state.json" --eal "--in-memory --file-prefix vswgapsw" ${EXTRA:-} \
    --port "p0=net_vhost0,iface=$run/p0.sock" --port "p1=net_vhost1,iface=$run/p1.sock" < <(sleep 900) > "$work/sw.log" 2>&1 &
  sw=$!
  pids+=("$sw")
  for _ in $(seq 1 100); do [ -S "$run/p0.sock" ] && [ -S "$run/p1.sock" ] && break; sleep 0.2; done
  timeout -s INT -k 5 900 nice -n "${VM_NICE:-0}" dpdk-testpmd --lcores 0@0,1@0 --no-pci --in-memory --file-prefix vswgapvm --single-file-segments \
    -m 160 --log-level=error --vdev "net_virtio_user0,path=$run/p0.sock" --vdev "net_virtio_user1,path=$run/p1.sock" \
    -- --forward-mode=flowgen --txpkts=64 --total-num-mbufs=16384 --auto-start --stats-period 1 < <(sleep 900) > "$work/vm.log" 2>&1 &
  vm=$!
  pids+=("$vm")
  for _ in $(seq 1 120); do grep -q 'Port statistics' "$work/vm.log" 2>/dev/null && break; sleep 0.5; done
  sleep 3
  {
    window idle sleep 5
    window add $CTL add-flows "$work/a.txt"
    cat "$work/base.txt" "$work/b.txt" > "$work/ab.txt"
    window replace $CTL replace-flows "$work/ab.txt"
    window delete $CTL del-flows "table=0,priority=100,ip"
  } | tee "$work/run$i.txt" | sed "s/^/run $i: /"
  kill -INT "$vm" "$sw" 2>/dev/null || true
  wait "$vm" "$sw" 2>/dev/null || true
  awk '/Rx-pps:/ {s += $2; if (++k % 2 == 0) {printf "%.2f ", s / 1e6; s = 0}} END {print ""}' "$work/vm.log" | sed "s/^/run $i: VM rx Mpps per second: /"
  load_max+=("$(awk '$1 != "idle" {for (f = 1; f <= NF; f++) if ($f ~ /^gap_max_us=/) {split($f, a, "="); if (a[2] > m) m = a[2]}} END {print m + 0}' "$work/run$i.txt")")
  idle_max+=("$(awk '$1 == "idle" {for (f = 1; f <= NF; f++) if ($f ~ /^gap_max_us=/) {split($f, a, "="); print a[2]}}' "$work/run$i.txt")")
  pause_max+=("$(awk '{for (f = 1; f <= NF; f++) if ($f ~ /^gc_pause_max_ms=/) {split($f, a, "="); if (a[2] > m) m = a[2]}} END {print m + 0}' "$work/run$i.txt")")
done
echo "# VM nice ${VM_NICE:-0}"
echo "RESULT pmdgap_load_max_us=$(printf '%s\n' "${load_max[@]}" | median) pmdgap_idle_max_us=$(printf '%s\n' "${idle_max[@]}" | median) gc_pause_max_ms=$(printf '%s\n' "${pause_max[@]}" | median) rules=$RULES"
