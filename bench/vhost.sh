#!/usr/bin/env bash
# VM-to-VM over vhost-user: this switch vs Open vSwitch with DPDK vs dpdk-testpmd (io-forward, the
# no-lookup upper bound), same topology and cores, interleaved: vswitchd, OVS, testpmd in odd runs,
# reversed in even runs (each run prints its order).
#
# Topology: one "VM" = one dpdk-testpmd with two virtio-user ports in flowgen mode on core 0;
# packets it sends on port 0 go through the switch to port 1 and back. The switch's forwarding
# thread runs alone on core 1 (OVS: pmd-cpu-mask=0x2, its other threads on core 0). Each switch
# forwards port 1 <-> port 2 with no lookup beyond the input port (vswitchd l2fwd without MAC
# rewrite; OVS in_port rules; testpmd io). Metric: packets the VM receives per second, summed over
# its two ports (median of 1-s samples after the first SKIP); per switch the median and max over runs.
# (Two separate VM processes plus the switch would be three busy pollers on two cores.)
# The VM's core is the bottleneck in most runs (the switch's PMD then idles part of the time), so
# beside Mpps each switch's cost is reported: PMD busy cycles (polling rounds that received packets,
# the same definition in both) per received packet over the window from SKIP s after forwarding
# starts to MEAS s (vswitchd: `vswitchctl pmd-stats-clear`, then
# `--json pmd-stats-show` busy_cycles / rx_packets; OVS: `ovs-appctl dpif-netdev/pmd-stats-clear`,
# then pmd-stats-show "processing cycles" / "packets received" of the core-1 PMD; testpmd: none).
#
# usage: bench/vhost.sh [RUNS=3]   env: SIZES ("64 512 1518"), MEAS (s, 12), SKIP (s, 3), FLOWS (1),
#        VSWITCHD, VSWITCHCTL, KEEP=1
# Last line: RESULT vhost_vs_ovs=<ratio> vhost_vs_testpmd=<ratio> vhost_cycles_vs_ovs=<OVS cycles
#            per packet / vswitchd's>   (medians over runs, 64 B or the first of SIZES)
set -euo pipefail
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
RUNS=${1:-${RUNS:-3}}
SIZES=${SIZES:-"64 512 1518"}
MEAS=${MEAS:-12}
FLOWS=${FLOWS:-1}
SKIP=${SKIP:-3}
[ "$MEAS" -gt "$SKIP" ] || { echo "vhost.sh: MEAS ($MEAS) must exceed SKIP ($SKIP)" >&2; exit 1; }
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
VSWITCHCTL=${VSWITCHCTL:-$root/out/vswitchctl/vswitchctl}
work=$(mktemp -d /tmp/vsw-vhost.XXXXXX)
run=$work/run
mkdir -p "$run"
. "$here/lib.sh"
ovs_env "$work/ovs" vswbenchovs
VSCTL="ovs-vsctl --timeout=20"
OFCTL="ovs-ofctl"
APPCTL="timeout 20 taskset -c 0 ovs-appctl"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  ovs_stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

"$here/setup-peers.sh"
"$root/hugepages/setup.sh" >/dev/null
[ -x "$VSWITCHD" ] && [ -x "$VSWITCHCTL" ] || { echo "vhost.sh: $VSWITCHD or $VSWITCHCTL missing; run scripts/setup first" >&2; exit 1; }


# vm SIZE SERVER(0|1) LOG -> starts the VM testpmd in the background, pid in $vm_pid
vm_start() {
  local srv=""
  [ "$2" = 1 ] && srv=",server=1"
  timeout -s INT -k 5 $((MEAS + 60)) dpdk-testpmd --lcores 0@0,1@0 --no-pci --in-memory --file-prefix vswvhostvm --single-file-segments \
    -m 160 --log-level=error --vdev "net_virtio_user0,path=$run/p0.sock$srv" \
    --vdev "net_virtio_user1,path=$run/p1.sock$srv" -- --forward-mode=flowgen --flowgen-flows="$FLOWS" \
    --txpkts="$1" --total-num-mbufs=16384 --auto-start --stats-period 1 < <(sleep $((MEAS + 60))) > "$3" 2>&1 &
  vm_pid=$!
  pids+=("$vm_pid")
}

# VM rx Mpps from its log: per-sample sum of Rx-pps over both ports, warm-up samples dropped
vm_mpps() {
  awk '/Rx-pps:/ {s += $2; if (++k % 2 == 0) {print s / 1e6; s = 0}}' "$1" | tail -n +$((SKIP + 1)) | head -n -1 | median
}

# ---- the switch's PMD cycles: CLEAR starts the window, CYCLES ends it -> busy cycles per packet ----
vsw_clear() { timeout 10 taskset -c 0 "$VSWITCHCTL" --socket "$run/vsw.sock" pmd-stats-clear >/dev/null; }
vsw_cycles() { # summed over PMDs (one, on core 1)
  timeout 10 taskset -c 0 "$VSWITCHCTL" --socket "$run/vsw.sock" --json pmd-stats-show | python3 -c '
import json, sys
try:
    pmds = json.load(sys.stdin)["pmds"]
    busy = sum(p["busy_cycles"] for p in pmds); rx = sum(p["rx_packets"] for p in pmds)
    print("%.0f" % (busy / rx) if rx > 0 else "NA")
except Exception:
    print("NA")
'
}
ovs_clear() { $APPCTL dpif-netdev/pmd-stats-clear >/dev/null; }
ovs_cycles() { # the PMD on core 1: processing cycles / packets received
  $APPCTL dpif-netdev/pmd-stats-show | ovs_pmd_fields | python3 -c '
import sys
sec = {k: float(v) for k, v in (l.rstrip("\n").split("\t") for l in sys.stdin)}
rx, proc = sec.get("packets received", 0), sec.get("processing cycles")
if rx > 0 and proc is not None:
    print("%.0f" % (proc / rx))
elif "avg processing cycles per packet" in sec:
    print("%.0f" % sec["avg processing cycles per packet"])
else:
    print("NA")
'
}
no_clear() { :; }
no_cycles() { echo NA; }

# measure LOG CLEAR CYCLES: wait until forwarding, warm up SKIP s, CLEAR, on to MEAS s, CYCLES, stop
# the VM -> "Mpps cycles/pkt"
measure() {
  local cyc
  for _ in $(seq 1 120); do grep -q 'Port statistics' "$1" 2>/dev/null && break; sleep 0.5; done
  sleep "$SKIP"
  "$2" || echo "$2 failed" >&2
  sleep $((MEAS - SKIP))
  cyc=$("$3") || true
  kill -INT "$vm_pid" 2>/dev/null || true
  wait "$vm_pid" 2>/dev/null || true
  echo "$(vm_mpps "$1") ${cyc:-NA}"
}

# serve_and_measure SIZE CLEAR CYCLES CMD...: start a switch that serves the vhost-user sockets,
# attach the VM (virtio-user as client), measure, stop both -> "Mpps cycles/pkt"
serve_and_measure() {
  local size=$1 clear=$2 cycles=$3
  shift 3
  rm -f "$run"/*.sock
  timeout -s INT -k 5 $((MEAS + 60)) "$@" < <(sleep $((MEAS + 60))) > "$work/sw.log" 2>&1 &
  local sw=$!
  pids+=("$sw")
  for _ in $(seq 1 100); do [ -S "$run/p0.sock" ] && [ -S "$run/p1.sock" ] && break; sleep 0.2; done
  vm_start "$size" 0 "$work/vm.log"
  measure "$work/vm.log" "$clear" "$cycles"
  kill -INT "$sw" 2>/dev/null || true
  wait "$sw" 2>/dev/null || true
}

run_vswitchd() { # SIZE -> "Mpps cycles/pkt"
  serve_and_measure "$1" vsw_clear vsw_cycles "$VSWITCHD" --pmd-cores 1 --no-mac-rewrite --stats-interval 0 \
    --control "$run/vsw.sock" --eal "--in-memory --file-prefix vswvhostvsw" --port "p0=net_vhost0,iface=$run/p0.sock" --port "p1=net_vhost1,iface=$run/p1.sock"
}

run_testpmd() { # SIZE -> "Mpps NA"
  serve_and_measure "$1" no_clear no_cycles dpdk-testpmd --lcores 0@0,1@1 --no-pci --in-memory \
    --file-prefix vswvhosttp -m 256 --log-level=error \
    --vdev "net_vhost0,iface=$run/p0.sock,queues=1" --vdev "net_vhost1,iface=$run/p1.sock,queues=1" -- \
    --forward-mode=io --total-num-mbufs=16384 --auto-start --stats-period 1
}

run_ovs() { # SIZE -> "Mpps cycles/pkt". OVS is the vhost-user client (dpdkvhostuserclient); the VM owns the sockets.
  rm -f "$run"/*.sock
  ovs_start
  vm_start "$1" 1 "$work/vm.log" # waits in accept() for OVS to connect
  for i in 0 1; do
    $VSCTL add-port br0 "vhu$i" -- set Interface "vhu$i" type=dpdkvhostuserclient \
      options:vhost-server-path="$run/p$i.sock" ofport_request=$((i + 1))
  done
  $OFCTL add-flow br0 in_port=1,actions=output:2
  $OFCTL add-flow br0 in_port=2,actions=output:1
  measure "$work/vm.log" ovs_clear ovs_cycles
  ovs_stop
}

echo "# vhost benchmark $(date -u +%FT%TZ) runs=$RUNS meas=${MEAS}s skip=${SKIP}s flows=$FLOWS; $(ovs-vswitchd --version | head -1); $(nproc) cpus"
declare -A res cyc_
for size in $SIZES; do
  for r in $(seq 1 "$RUNS"); do
    order=$(run_order $((r - 1)) vswitchd ovs testpmd)
    echo "$size B run $r order: $order"
    for sw in $order; do
      line=$("run_$sw" "$size" 2>>"$work/errors.log" | tail -1)
      read -r v cyc <<<"$line"
      res[$size.$sw]="${res[$size.$sw]:-} ${v:-NA}"
      cyc_[$size.$sw]="${cyc_[$size.$sw]:-} ${cyc:-NA}"
      printf '%5s B run %d %-9s %8s Mpps  %6s PMD busy cycles/pkt\n' "$size" "$r" "$sw" "${v:-NA}" "${cyc:-NA}"
    done
  done
done

echo
echo "| size | vswitchd Mpps (median / max) | OVS-DPDK Mpps (median / max) | testpmd io Mpps (median / max) | vswitchd/OVS | vswitchd/testpmd | vswitchd cyc/pkt | OVS cyc/pkt | OVS/vswitchd cycles |"
echo "|---|---|---|---|---|---|---|---|---|"
declare -A med
for size in $SIZES; do
  row="| $size B "
  for sw in vswitchd ovs testpmd; do
    vals=$(tr ' ' '\n' <<<"${res[$size.$sw]}" | grep -v '^$' | grep -v NA || true)
    m=$(grep . <<<"$vals" | median || true); x=$(sort -g <<<"$vals" | tail -1)
    med[$size.$sw]=$m
    row+="| $m / ${x:-NA} "
  done
  ro=$(awk -v a="${med[$size.vswitchd]}" -v b="${med[$size.ovs]}" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')
  rt=$(awk -v a="${med[$size.vswitchd]}" -v b="${med[$size.testpmd]}" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')
  med[$size.ro]=$ro; med[$size.rt]=$rt
  for sw in vswitchd ovs; do
    med[$size.$sw.cyc]=$(tr ' ' '\n' <<<"${cyc_[$size.$sw]:-}" | grep -v '^$' | grep -v NA | median || true)
  done
  rc=$(awk -v a="${med[$size.ovs.cyc]}" -v b="${med[$size.vswitchd.cyc]}" 'BEGIN{if (a == "NA" || b == "NA" || b <= 0) print "NA"; else printf "%.3f", a/b}')
  med[$size.rc]=$rc
  echo "$row| $ro | $rt | ${med[$size.vswitchd.cyc]} | ${med[$size.ovs.cyc]} | $rc |"
done
echo "(cyc/pkt: the PMD's busy cycles per received packet in the window, median over runs)"
if [ -s "$work/errors.log" ]; then echo "# notes/errors (first lines):"; head -5 "$work/errors.log" | sed 's/^/#   /'; fi
first=${SIZES%% *}
echo "RESULT vhost_vs_ovs=${med[$first.ro]} vhost_vs_testpmd=${med[$first.rt]} vhost_cycles_vs_ovs=${med[$first.rc]}"
