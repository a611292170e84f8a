#!/usr/bin/env bash
# Flow-pipeline throughput: this switch (--mode pipeline) vs Open vSwitch with DPDK, the same
# OpenFlow rule files loaded unchanged by both, the same cores, interleaved (SWITCHES in order in
# odd runs, reversed in even runs; each run prints its order).
#
# Rule sets (bench/pipegen.py, ovs-ofctl syntax): R rules per direction (in_port=1 -> output:2 and
# in_port=2 -> output:1) plus a priority-1 catch-all per input port. Shapes:
#   exact   ip,nw_dst=<flow i>/32                      one mask
#   prefix  nested /16, /24, /28 on nw_dst and udp,nw_dst=/32,tp_dst exact, LPM priorities
#   conj    an R x R ACL (R source addresses x R UDP destination ports, R <= 100) as a conjunctive
#           match: 2R clause rules + conj_id=1 -> output:2 (201 rules for R=100), and a drop
#   conjx   the same ACL expanded to R*R rules udp,nw_src=..,tp_dst=.. -> output:2, and a drop
#           (conj/conjx: pcap scenario only, its traffic laid out so that F=10000 flows are the
#           whole 100 x 100 cross product: pipegen.py pcap --layout conj; a row F:R is flows:R)
# Flow i (i < R) hits its own rule, so F flows hit F distinct rules when F == R; flows >= R hit the
# catch-all (exact) or flow 0's 10.253.0.0/16 rule (prefix). Verified on OVS with DUMP=1 (every
# per-flow rule counts packets, the catch-alls none) and on vswitchd with dump-flows.
# Scenarios (64 B):
#   vhost  one "VM" = dpdk-testpmd with two virtio-user ports, --forward-mode=flowgen
#          --flowgen-flows=F, on core 0. testpmd 22.11 flowgen varies the DESTINATION IPv4 address,
#          10.253.0.0 + i, from 10.254.0.0, UDP 1000 -> 1001, the same F flows on both ports (so the
#          switch sees 2F flows). Metric: packets the VM receives per second over both ports
#          (median of its 1-s samples in the window), as bench/vhost.sh.
#   pcap   net_pcap infinite_rx replay (pipegen.py pcap: destination IP 10.253.0.0 + i and the UDP
#          ports vary per flow) as port 1 -> net_null (no-rx) as port 2. Metric: packets the switch
#          sends on port 2 per second (vswitchd: tx_mpps of its 1-s stats lines; OVS: per-second
#          deltas of `ovs-ofctl dump-ports br0 2` tx pkts), median over the window.
# The switch's PMD runs alone on core 1 (vswitchd --pmd-cores 1, OVS pmd-cpu-mask=0x2); all other
# threads and the VM on core 0. OVS keeps its defaults (EMC insertion 1/100, SMC off, megaflows).
# Each run: start, forwarding starts, warm-up (at least WARM s, then until the upcalls per second
# drop below QUIET_UPCALLS, at most WARM_MAX s: megaflows and caches filled), then a MEAS-s window:
# OVS pmd-stats-clear / vswitchctl pmd-stats-show --json snapshot at its start, pmd-stats-show /
# second snapshot at its end -> EMC / SMC / megaflow hit shares of received packets, upcalls in the
# window, busy cycles per packet (OVS: "avg processing cycles per packet").
#
# usage: bench/pipeline.sh [RUNS=3]
# env: MEAS (s, 10), WARM (s, 3), WARM_MAX (s, 20), QUIET_UPCALLS (100/s),
#      SCENARIOS ("vhost pcap"), SHAPES ("exact prefix conj conjx"),
#      ROWS ("F:R ..."; default exact: "1:1 100:100 1000:1000 10000:10000 65536:10000",
#      prefix: the diagonal "1:1 100:100 1000:1000 10000:10000", conj and conjx: "10000:100";
#      ROWS_exact / ROWS_prefix / ROWS_conj / ROWS_conjx per shape),
#      SWITCHES ("vswitchd ovs"), VSWITCHD, VSWITCHCTL, KEEP=1 keeps the work directory,
#      DUMP=1 saves OVS's rule counters and datapath flows there after each OVS run.
# Last line: RESULT pipeline_min_vs_ovs=<lowest vswitchd/OVS median ratio over all rows>
#   conj_vs_ovs=<vswitchd/OVS on the conjunctive ACL> conj_expanded_vs_ovs=<the same, expanded>
#   (each NA when not run); a table before it puts the conj and conjx rows side by side.
# The conj row alone, short: SCENARIOS=pcap SHAPES="conj conjx" RUNS=1 bench/pipeline.sh
set -euo pipefail
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
RUNS=${1:-${RUNS:-3}}
MEAS=${MEAS:-10}
WARM=${WARM:-3}
WARM_MAX=${WARM_MAX:-20}
QUIET_UPCALLS=${QUIET_UPCALLS:-100}
SCENARIOS=${SCENARIOS:-"vhost pcap"}
SHAPES=${SHAPES:-"exact prefix conj conjx"}
ROWS_exact=${ROWS_exact:-${ROWS:-"1:1 100:100 1000:1000 10000:10000 65536:10000"}}
ROWS_prefix=${ROWS_prefix:-${ROWS:-"1:1 100:100 1000:1000 10000:10000"}}
ROWS_conj=${ROWS_conj:-${ROWS:-"10000:100"}}
ROWS_conjx=${ROWS_conjx:-${ROWS:-"10000:100"}}
SWITCHES=${SWITCHES:-"vswitchd ovs"}
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
VSWITCHCTL=${VSWITCHCTL:-$root/out/vswitchctl/vswitchctl}
LIMIT=$((WARM_MAX + MEAS + 90)) # hard bound on every process of one run
work=$(mktemp -d /tmp/vsw-pipeline.XXXXXX)
run=$work/run
mkdir -p "$run" "$work/gen"
echo '{}' > "$work/zero.json"
. "$here/lib.sh"
ovs_env "$work/ovs" vswpipeovs
# clients run on core 0 like every thread but the PMD
VSCTL="timeout 60 taskset -c 0 ovs-vsctl --timeout=20"
OFCTL="timeout 120 taskset -c 0 ovs-ofctl"
APPCTL="timeout 20 taskset -c 0 ovs-appctl"
trap bench_exit EXIT

"$here/setup-peers.sh"
"$root/hugepages/setup.sh" >/dev/null
if [[ " $SWITCHES " == *" vswitchd "* ]]; then
  [ -x "$VSWITCHD" ] && [ -x "$VSWITCHCTL" ] || { echo "pipeline.sh: $VSWITCHD or $VSWITCHCTL missing; run scripts/setup first" >&2; exit 1; }
  "$VSWITCHD" --help 2>&1 | grep -q -- '--flows' || { echo "pipeline.sh: $VSWITCHD has no --flows (pipeline mode); SWITCHES=ovs runs OVS alone" >&2; exit 1; }
fi

maxof() { sort -g | tail -1 | grep . || echo NA; }
now() { echo "$EPOCHREALTIME"; }

rulefile() { # SHAPE R TRAFFIC -> path (generated once)
  local f=$work/gen/rules-$1-$2-$3.txt
  [ -f "$f" ] || python3 "$here/pipegen.py" rules "$f" --shape "$1" --rules "$2" --traffic "$3"
  echo "$f"
}
pcapfile() { # F SHAPE -> path (generated once; the conjunctive ACL's shapes have their own layout)
  local layout=plain
  case "$2" in conj | conjx) layout=conj ;; esac
  local f=$work/gen/flows-$1-$layout.pcap
  [ -f "$f" ] || python3 "$here/pipegen.py" pcap "$f" --flows "$1" --layout "$layout" >/dev/null
  echo "$f"
}
pcap_count() { python3 -c 'import os,sys; print((os.path.getsize(sys.argv[1]) - 24) // (16 + 60))' "$1"; }

# ---- cache / cycle statistics -> "emc% smc% mf% upcalls cycles/pkt" (NA when unknown) ----
ovs_pmd_stats() { # pmd-stats-show text on stdin, PMD on core 1
  ovs_pmd_fields | python3 -c '
import sys
sec = {k: float(v) for k, v in (l.rstrip("\n").split("\t") for l in sys.stdin)}
rx = sec.get("packets received", 0)
pct = lambda k: ("%.1f" % (100 * sec[k] / rx)) if rx and k in sec else "NA"
up = sec.get("miss with success upcall")
up = "NA" if up is None else "%d" % (up + sec.get("miss with failed upcall", 0))
cyc = sec.get("avg processing cycles per packet")
print(pct("emc hits"), pct("smc hits"), pct("megaflow hits"), up, "NA" if cyc is None else "%.0f" % cyc)
'
}

vsw_pmd_stats() { # BEFORE.json AFTER.json: deltas, summed over PMDs; fields absent -> NA
  python3 - "$1" "$2" <<'EOF'
import json, sys
KEYS = ("emc_hits", "smc_hits", "megaflow_hits", "upcalls", "rx_packets", "busy_cycles")
def sums(path):
    out = {}
    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[k] = out.get(k, 0) + v
                else:
                    walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    try:
        with open(path) as f:
            walk(json.load(f))
    except Exception:
        pass
    return out
a, b = sums(sys.argv[1]), sums(sys.argv[2])
d = {k: b[k] - a[k] for k in KEYS if k in a and k in b}
rx = d.get("rx_packets", 0)
pct = lambda k: ("%.1f" % (100 * d[k] / rx)) if rx > 0 and k in d else "NA"
print(pct("emc_hits"), pct("smc_hits"), pct("megaflow_hits"),
      "%d" % d["upcalls"] if "upcalls" in d else "NA",
      "%.0f" % (d["busy_cycles"] / rx) if rx > 0 and "busy_cycles" in d else "NA")
EOF
}

# warm_up UPCALLS-CMD: sleep WARM, then on until the PMD's upcalls grow by less than QUIET_UPCALLS
# in a second (caches and megaflows filled), at most WARM_MAX s in all -> seconds waited.
# Without an upcall counter (NA) the warm-up is WARM.
warm_up() {
  sleep "$WARM"
  local t=$WARM prev cur
  prev=$("$1")
  while [ "$t" -lt "$WARM_MAX" ]; do
    [[ "$prev" =~ ^[0-9]+$ ]] || break
    sleep 1
    t=$((t + 1))
    cur=$("$1")
    [[ "$cur" =~ ^[0-9]+$ ]] || break
    [ $((cur - prev)) -lt "$QUIET_UPCALLS" ] && break
    prev=$cur
  done
  echo "$t"
}
ovs_upcalls() { $APPCTL dpif-netdev/pmd-stats-show 2>/dev/null | ovs_pmd_stats | awk '{print $4}'; }
vsw_upcalls() { vsw_snap "$work/u.json"; vsw_pmd_stats "$work/zero.json" "$work/u.json" | awk '{print $4}'; }

vsw_snap() { # OUT.json
  timeout 10 taskset -c 0 "$VSWITCHCTL" --socket "$run/vsw.sock" --json pmd-stats-show > "$1" 2>>"$work/errors.log" || echo '{}' > "$1"
}

# ---- the VM (vhost scenario) ----
vm_start() { # FLOWS SERVER(0|1) LOG -> $vm_pid
  local srv=""
  [ "$2" = 1 ] && srv=",server=1"
  timeout -s INT -k 5 "$LIMIT" dpdk-testpmd --lcores 0@0,1@0 --no-pci --in-memory --file-prefix vswpipevm \
    --single-file-segments -m 160 --log-level=error --vdev "net_virtio_user0,path=$run/p0.sock$srv" \
    --vdev "net_virtio_user1,path=$run/p1.sock$srv" -- --forward-mode=flowgen --flowgen-flows="$1" \
    --txpkts=64 --total-num-mbufs=16384 --auto-start --stats-period 1 < <(sleep "$LIMIT") > "$3" 2>&1 &
  vm_pid=$!
  track "$vm_pid"
}
vm_wait() { for _ in $(seq 1 120); do grep -q 'Port statistics' "$1" 2>/dev/null && return 0; sleep 0.5; done; return 1; }
vm_stop() { kill -INT "$vm_pid" 2>/dev/null || true; wait "$vm_pid" 2>/dev/null || true; }
# VM rx Mpps: per-sample sums of Rx-pps over both ports, samples FIRST+1.. of the log, last dropped
vm_mpps() {
  awk '/Rx-pps:/ {s += $2; if (++k % 2 == 0) {print s / 1e6; s = 0}}' "$1" | tail -n +$(($2 + 1)) | head -n -1 | median | fmt3
}
fmt3() { awk '{ if ($1 + 0 == $1) printf "%.3f\n", $1; else print $1 }'; }
vm_samples() { awk '/Rx-pps:/ {k++} END {print int(k / 2)}' "$1"; }

# ---- vswitchd ----
# run_vswitchd SCENARIO SHAPE F R -> "mpps emc% smc% mf% upcalls cyc warm-s"
run_vswitchd() {
  local sc=$1 shape=$2 F=$3 R=$4 rules ports=() extra=() s0 mpps st warm
  rm -f "$run"/*.sock
  if [ "$sc" = vhost ]; then
    rules=$(rulefile "$shape" "$R" flowgen)
    ports=(--port "p0=net_vhost0,iface=$run/p0.sock" --port "p1=net_vhost1,iface=$run/p1.sock")
  else
    rules=$(rulefile "$shape" "$R" pcap)
    local pc; pc=$(pcapfile "$F" "$shape")
    ports=(--port "p0=net_pcap0,rx_pcap=$pc,infinite_rx=1" --port "p1=net_null0,no-rx=1")
    extra=(--mbufs $(($(pcap_count "$pc") + 32768)))
  fi
  timeout -s INT -k 5 "$LIMIT" "$VSWITCHD" --pmd-cores 1 --stats-interval 1 --control "$run/vsw.sock" \
    --eal "--in-memory --file-prefix vswpipevsw" --mode pipeline --flows "$rules" "${extra[@]}" "${ports[@]}" \
    < <(sleep "$LIMIT") > "$work/sw.log" 2>&1 &
  local sw=$!
  track "$sw"
  for _ in $(seq 1 150); do
    [ -S "$run/vsw.sock" ] && { [ "$sc" != vhost ] || { [ -S "$run/p0.sock" ] && [ -S "$run/p1.sock" ]; }; } && break
    kill -0 "$sw" 2>/dev/null || break
    sleep 0.2
  done
  if [ "$sc" = vhost ]; then
    vm_start "$F" 0 "$work/vm.log"
    vm_wait "$work/vm.log" || true
    warm=$(warm_up vsw_upcalls)
    s0=$(vm_samples "$work/vm.log")
    vsw_snap "$work/a.json"
    sleep "$MEAS"
    vsw_snap "$work/b.json"
    vm_stop
    mpps=$(vm_mpps "$work/vm.log" "$s0")
  else
    for _ in $(seq 1 100); do grep -q '^stats ' "$work/sw.log" && break; sleep 0.2; done
    warm=$(warm_up vsw_upcalls)
    s0=$(grep -c '^stats ' "$work/sw.log" || true)
    vsw_snap "$work/a.json"
    sleep "$MEAS"
    vsw_snap "$work/b.json"
    # forwarded = sent on port 2: tx_mpps of the stats lines in the window (rx_mpps if no tx_mpps)
    mpps=$(grep '^stats ' "$work/sw.log" | tail -n +$((s0 + 1)) | head -n "$MEAS" \
      | sed -n 's/.* tx_mpps=\([0-9.]*\).*/\1/p; t; s/.* rx_mpps=\([0-9.]*\).*/\1/p' | median | fmt3)
  fi
  st=$(vsw_pmd_stats "$work/a.json" "$work/b.json")
  kill -INT "$sw" 2>/dev/null || true
  wait "$sw" 2>/dev/null || true
  grep 'vswitchd: error' "$work/sw.log" >> "$work/errors.log" || true
  echo "$mpps $st $warm"
}

# ---- Open vSwitch ----



ovs_tx() { # tx packets of OpenFlow port 2
  $OFCTL dump-ports br0 2 2>/dev/null | sed -n 's/.*tx pkts=\([0-9]*\).*/\1/p' | head -1
}

# run_ovs SCENARIO SHAPE F R -> "mpps emc% smc% mf% upcalls cyc warm-s"
run_ovs() {
  local sc=$1 shape=$2 F=$3 R=$4 rules s0 mpps st warm
  rm -f "$run"/*.sock
  ovs_start
  if [ "$sc" = vhost ]; then
    rules=$(rulefile "$shape" "$R" flowgen)
    $OFCTL add-flows br0 "$rules"
    vm_start "$F" 1 "$work/vm.log" # OVS is the vhost-user client; the VM waits in accept()
    for i in 0 1; do
      $VSCTL add-port br0 "vhu$i" -- set Interface "vhu$i" type=dpdkvhostuserclient \
        options:vhost-server-path="$run/p$i.sock" ofport_request=$((i + 1))
    done
    vm_wait "$work/vm.log" || true
    warm=$(warm_up ovs_upcalls)
    s0=$(vm_samples "$work/vm.log")
    $APPCTL dpif-netdev/pmd-stats-clear >/dev/null
    sleep "$MEAS"
    $APPCTL dpif-netdev/pmd-stats-show > "$work/ovs-pmd.txt" 2>&1 || true
    vm_stop
    mpps=$(vm_mpps "$work/vm.log" "$s0")
  else
    rules=$(rulefile "$shape" "$R" pcap)
    local pc; pc=$(pcapfile "$F" "$shape")
    $OFCTL add-flows br0 "$rules"
    $VSCTL add-port br0 p0 -- set Interface p0 type=dpdk \
      options:dpdk-devargs="net_pcap0,rx_pcap=$pc,infinite_rx=1" ofport_request=1
    $VSCTL add-port br0 p1 -- set Interface p1 type=dpdk options:dpdk-devargs="net_null0,no-rx=1" ofport_request=2
    warm=$(warm_up ovs_upcalls)
    $APPCTL dpif-netdev/pmd-stats-clear >/dev/null
    # per-second samples of port 2's tx counter -> rates, median
    local t0 c0 t1 c1 rates=()
    t0=$(now); c0=$(ovs_tx)
    for _ in $(seq 1 "$MEAS"); do
      sleep 1
      t1=$(now); c1=$(ovs_tx)
      [ -n "$c0" ] && [ -n "$c1" ] && rates+=("$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" 'BEGIN{printf "%.3f", (b-a)/(e-s)/1e6}')")
      t0=$t1; c0=$c1
    done
    $APPCTL dpif-netdev/pmd-stats-show > "$work/ovs-pmd.txt" 2>&1 || true
    mpps=$(printf '%s\n' "${rates[@]:-}" | grep . | median | fmt3)
  fi
  # DUMP=1: keep the rule counters and the datapath flows (with KEEP=1) to check what hit what
  if [ -n "${DUMP:-}" ]; then
    $OFCTL dump-flows br0 > "$work/dump-$sc-$shape-$F-$R.of" 2>&1 || true
    $APPCTL dpctl/dump-flows > "$work/dump-$sc-$shape-$F-$R.dp" 2>&1 || true
  fi
  st=$(ovs_pmd_stats < "$work/ovs-pmd.txt")
  grep -iE '\|(ERR|EMER)\|' "$OVS_LOGDIR/ovs-vswitchd.log" >> "$work/errors.log" 2>/dev/null || true
  ovs_stop
  echo "$mpps $st $warm"
}

echo "# pipeline benchmark $(date -u +%FT%TZ) runs=$RUNS warm=${WARM}-${WARM_MAX}s meas=${MEAS}s 64 B; $(ovs-vswitchd --version | head -1); $(nproc) cpus"
echo "# per run: Mpps  EMC% SMC% megaflow%  upcalls(in window)  cycles/pkt  warm-up seconds"
declare -A res
rowkeys=()
for sc in $SCENARIOS; do
  for shape in $SHAPES; do
    rv=ROWS_$shape
    for row in ${!rv}; do
      F=${row%%:*}; R=${row##*:}
      case "$sc.$shape" in vhost.conj | vhost.conjx) continue ;; esac # flowgen cannot vary the source address
      key=$sc.$shape.$F.$R
      rowkeys+=("$key")
      for r in $(seq 1 "$RUNS"); do
        order=$(run_order $((r - 1)) $SWITCHES)
        echo "$sc $shape F=$F R=$R run $r order: $order"
        for sw in $order; do
          line=$("run_$sw" "$sc" "$shape" "$F" "$R" 2>>"$work/errors.log" | tail -1)
          read -r mpps emc smc mf up cyc warm <<<"$line"
          res[$key.$sw.mpps]="${res[$key.$sw.mpps]:-} ${mpps:-NA}"
          res[$key.$sw.emc]="${res[$key.$sw.emc]:-} ${emc:-NA}"
          res[$key.$sw.smc]="${res[$key.$sw.smc]:-} ${smc:-NA}"
          res[$key.$sw.mf]="${res[$key.$sw.mf]:-} ${mf:-NA}"
          res[$key.$sw.up]="${res[$key.$sw.up]:-} ${up:-NA}"
          res[$key.$sw.cyc]="${res[$key.$sw.cyc]:-} ${cyc:-NA}"
          printf '%-5s %-6s F=%-6s R=%-6s run %d %-8s %8s Mpps  emc %5s%% smc %5s%% mf %5s%%  upcalls %8s  cyc/pkt %6s  warm %3ss\n' \
            "$sc" "$shape" "$F" "$R" "$r" "$sw" "${mpps:-NA}" "${emc:-NA}" "${smc:-NA}" "${mf:-NA}" "${up:-NA}" "${cyc:-NA}" "${warm:-NA}"
        done
      done
    done
  done
done

vals() { tr ' ' '\n' <<<"${res[$1]:-}" | grep -v '^$' | grep -v NA || true; }
med() { vals "$1" | median; }
minratio=""
for sc in $SCENARIOS; do
  echo
  case "$sc" in
    vhost) echo "### vhost: VM (testpmd flowgen, 2 virtio-user ports) <-> switch; Mpps received by the VM" ;;
    pcap) echo "### pcap: net_pcap infinite-rx replay -> switch -> net_null; Mpps forwarded to port 2" ;;
  esac
  echo
  echo "| shape | flows | rules/dir | vswitchd Mpps (median / max) | OVS-DPDK Mpps (median / max) | vswitchd/OVS | vswitchd EMC% / MF% / upcalls | vswitchd cyc/pkt | OVS EMC% / SMC% / MF% / upcalls | OVS cyc/pkt |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for key in "${rowkeys[@]}"; do
    [ "${key%%.*}" = "$sc" ] || continue
    IFS=. read -r _ shape F R <<<"$key"
    mv=$(med "$key.vswitchd.mpps"); xv=$(vals "$key.vswitchd.mpps" | maxof)
    mo=$(med "$key.ovs.mpps"); xo=$(vals "$key.ovs.mpps" | maxof)
    ratio=$(awk -v a="$mv" -v b="$mo" 'BEGIN{if (a == "NA" || b == "NA" || b <= 0) print "NA"; else printf "%.3f", a/b}')
    if [ "$ratio" != NA ]; then
      if [ -z "$minratio" ] || awk -v a="$ratio" -v b="$minratio" 'BEGIN{exit !(a < b)}'; then minratio=$ratio; fi
    fi
    echo "| $shape | $F | $R | $mv / $xv | $mo / $xo | $ratio | $(med "$key.vswitchd.emc") / $(med "$key.vswitchd.mf") / $(med "$key.vswitchd.up") | $(med "$key.vswitchd.cyc") | $(med "$key.ovs.emc") / $(med "$key.ovs.smc") / $(med "$key.ovs.mf") / $(med "$key.ovs.up") | $(med "$key.ovs.cyc") |"
  done
done
echo
echo "(hit shares are of the packets the PMD received in the window; upcalls counted in the window; medians over runs)"
# the conjunctive ACL beside its expansion: per switch, and each switch against the other
conjratio=NA; conjxratio=NA
for key in "${rowkeys[@]}"; do
  IFS=. read -r sc shape F R <<<"$key"
  [ "$shape" = conj ] || continue
  xkey=$sc.conjx.$F.$R
  cv=$(med "$key.vswitchd.mpps"); co=$(med "$key.ovs.mpps")
  xv=$(med "$xkey.vswitchd.mpps"); xo=$(med "$xkey.ovs.mpps")
  rt() { awk -v a="$1" -v b="$2" 'BEGIN{if (a == "NA" || b == "NA" || a == "" || b == "" || b <= 0) print "NA"; else printf "%.3f", a/b}'; }
  conjratio=$(rt "$cv" "$co"); conjxratio=$(rt "$xv" "$xo")
  echo
  echo "### conj: ${R} x ${R} ACL as a conjunctive match ($((2 * R + 1)) rules) vs expanded ($((R * R)) rules), $sc, $F flows; Mpps (medians)"
  echo
  echo "| | conjunctive ($((2 * R + 1)) rules) | expanded ($((R * R)) rules) | conjunctive/expanded |"
  echo "|---|---|---|---|"
  echo "| vswitchd | $cv | $xv | $(rt "$cv" "$xv") |"
  echo "| OVS-DPDK | $co | $xo | $(rt "$co" "$xo") |"
  echo "| vswitchd/OVS | $conjratio | $conjxratio | |"
done
if [ -s "$work/errors.log" ]; then echo "# notes/errors (first lines):"; head -5 "$work/errors.log" | sed 's/^/#   /'; fi
echo "RESULT pipeline_min_vs_ovs=${minratio:-NA} conj_vs_ovs=$conjratio conj_expanded_vs_ovs=$conjxratio"
