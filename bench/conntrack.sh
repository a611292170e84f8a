#!/usr/bin/env bash
# Connection tracking: this switch vs Open vSwitch with DPDK (its userspace conntrack), the same
# OpenFlow rule files loaded unchanged by both (bench/ct/*.flows), the same traffic and cores,
# interleaved (PEERS in order in odd runs, reversed in even runs; each run prints its order). 64 B.
#
# Rules (port 1 = inside, port 2 = outside; ARP passes, anything else untracked is dropped):
#   firewall  table 0: ip,ct_state=-trk -> ct(table=1,zone=1); table 1: in_port=1 +trk+new ->
#             ct(commit,zone=1),output:2; in_port=1 +trk+est -> output:2; in_port=2 +trk+est ->
#             output:1; the rest (new from outside) dropped
#   snat      the same with ct(table=1,zone=1,nat) in table 0 and, on new from the inside,
#             ct(commit,zone=1,nat(src=203.0.113.254:1024-65535))
# Rows:
#   fw N, snat N (N in CONNS): N established UDP connections, both directions. Port 1 is a net_pcap
#     infinite replay of N flows (bench/pcapgen.py: 198.51.100.x:sport -> 203.0.113.y:dport, one
#     packet per flow); port 2 is a vhost-user port whose "VM" (dpdk-testpmd, one virtio-user port,
#     --forward-mode=5tswap --port-topology=loop, core 0) sends every packet back with addresses
#     and ports swapped: the reply that makes the connection established (and, with SNAT, the
#     reply to whatever address and port the switch chose). Metric, after WARM s, 1-s samples over
#     MEAS s (median): Mpps through conntrack = packets the switch receives on ports 1 and 2 (the
#     replay never runs dry, so the PMD is saturated and this is its capacity for the row), and,
#     beside it, Mpps forwarded (sent on ports 1 and 2; what the VM on the busy core 0 cannot take
#     is dropped at the vhost-user port, so this one is bounded by the VM, not the switch).
#   setup: every packet a new connection, committed: a warm-up pass of SETUP_WARM other flows
#     (then that port is removed), and the measured pass: a net_pcap file of SETUP_CONNS flows
#     (distinct source address/port, one packet each) read once into port 1; port 2 a net_null
#     sink; firewall rules. Metric: connections per second of PMD time = the connections the
#     switch gained over the pass (should be SETUP_CONNS, less packets it lost: OVS drops a few
#     hundred on failed upcalls while its megaflows are installed) / (the PMD's busy cycles over
#     the pass / TSC_MHZ); the pass keeps the PMD busy from its first packet to its last, and the
#     ratio of two switches does not depend on TSC_MHZ. The rate port 1's rx counter showed in
#     0.1-s samples is printed among the notes as a wall-clock cross-check. Memory per tracked
#     connection: vswitchd's `vswitchctl --json ct-stats-show` fields connections and
#     bytes_per_connection if it has them, else (and for OVS) the switch process's RSS growth over
#     the pass / connections (OVS counts them with `ovs-appctl dpctl/ct-stats-show`; vswitchd
#     without ct-stats-show: the packets that hit the +new rule, each one committed).
# Cycles per packet: the PMD's busy cycles per received packet over the window (recirculation
# included): OVS pmd-stats-show processing cycles / packets received of the PMD on the last core,
# vswitchd `--json pmd-stats-show` busy_cycles / rx_packets.
# Established, checked on every run: the switch's tracked connections (OVS ct-stats-show) and its
# rule counters (dump-flows: packets that hit +new, +est from the inside, +est from the outside) are
# printed, counted over the measuring window; a row with no +est replies in it, or with +new packets
# in it beyond 1 % of the +est ones from the inside, is marked "NOT ESTABLISHED".
# The switch's PMD runs alone on the last core (OVS pmd-cpu-mask, vswitchd --pmd-cores), everything
# else on core 0 (the script re-runs itself there: pin_to_core0 in lib.sh). A switch that refuses
# the rules (vswitchd before ct() exists) gets "n/a (its reason)" for the row, and the ratios NA.
#
# usage: bench/conntrack.sh [RUNS=3]
# env: MEAS (s, 8), WARM (s, 4), CONNS ("1000 100000"), ROWS ("fw snat setup"),
#      SETUP_CONNS (1000000), SETUP_WARM (200000), PEERS ("vswitchd ovs"; PEERS=ovs runs Open vSwitch alone),
#      RULES_DIR (bench/ct: its firewall.flows and snat.flows), TSC_MHZ (/proc/cpuinfo's cpu MHz:
#      the TSC rate on a KVM guest; set it where the CPU frequency scales), VSWITCHD, VSWITCHCTL,
#      EXTRA (more vswitchd arguments, e.g. a connection table size: the setup row needs
#      SETUP_CONNS + SETUP_WARM connections),
#      KEEP=1 keeps the work directory (logs; per run the rule counters, PMD statistics and, for
#      OVS, the first 20 tracked connections)
# Last line: RESULT ct_min_vs_ovs=<lowest vswitchd/OVS Mpps-through-conntrack ratio, fw and snat rows>
#            ct_setup_vs_ovs=<vswitchd/OVS connections per second>   (medians over runs; NA if not run)
set -euo pipefail
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$here/lib.sh"
pin_to_core0 "$0" "$@"
RUNS=${1:-${RUNS:-3}}
MEAS=${MEAS:-8}
WARM=${WARM:-4}
CONNS=${CONNS:-"1000 100000"}
ROWS=${ROWS:-"fw snat setup"}
SETUP_CONNS=${SETUP_CONNS:-1000000}
SETUP_WARM=${SETUP_WARM:-200000}
PEERS=${PEERS:-"vswitchd ovs"}
RULES_DIR=${RULES_DIR:-$here/ct}
TSC_MHZ=${TSC_MHZ:-$(awk '/^cpu MHz/ {print $4; exit}' /proc/cpuinfo)}
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
VSWITCHCTL=${VSWITCHCTL:-$root/out/vswitchctl/vswitchctl}
LIMIT=$((WARM + MEAS + 120)) # hard bound on every process of one run
PMD_CORE=$((ALL_CPUS - 1))
work=$(mktemp -d /tmp/vsw-conntrack.XXXXXX)
run=$work/run
mkdir -p "$run" "$work/gen"
ovs_env "$work/ovs" vswctovs
VSCTL="timeout 60 ovs-vsctl --timeout=20"
OFCTL="timeout 60 ovs-ofctl -O OpenFlow13"
APPCTL="timeout 20 ovs-appctl"
CTL="timeout 20 $VSWITCHCTL --socket $run/vsw.sock"
trap bench_exit EXIT

"$here/setup-peers.sh"
"$root/hugepages/setup.sh" >/dev/null
if [[ " $PEERS " == *" vswitchd "* ]]; then
  [ -x "$VSWITCHD" ] && [ -x "$VSWITCHCTL" ] || { echo "conntrack.sh: $VSWITCHD or $VSWITCHCTL missing; run scripts/setup first (PEERS=ovs runs OVS alone)" >&2; exit 1; }
fi

now() { echo "$EPOCHREALTIME"; }
fmt3() { awk '{ if ($1 + 0 == $1) printf "%.3f\n", $1; else print $1 }'; }
fmt0() { awk '{ if ($1 + 0 == $1) printf "%.0f\n", $1; else print $1 }'; }
rules_of() { case $1 in snat) echo "$RULES_DIR/snat.flows" ;; *) echo "$RULES_DIR/firewall.flows" ;; esac; } # ROW -> rule file
pcap_of() { # N [FIRST] -> a pcap of N flows (numbered from FIRST, default 0), one packet each (generated once)
  local f=$work/gen/flows-$1-${2:-0}.pcap
  [ -f "$f" ] || timeout 300 python3 "$here/pcapgen.py" "$f" --count "$1" --flows "$1" --first "${2:-0}"
  echo "$f"
}

# ---- port counters: "ofport rx_packets tx_packets" lines ----
ovs_ports() {
  $OFCTL dump-ports br0 2>/dev/null | awk '
    /port +[0-9]+:/ {p = $2; sub(":", "", p); sub(/.*rx pkts=/, ""); sub(",.*", ""); rx = $0; next}
    p != "" && /tx pkts=/ {sub(/.*tx pkts=/, ""); sub(",.*", ""); print p, rx, $0; p = ""}'
}
vsw_ports() {
  $CTL --json dump-ports 2>/dev/null | python3 -c '
import json, sys
try:
    for p in json.load(sys.stdin)["ports"]:
        print(p["ofport"], p["rx_packets"], p["tx_packets"])
except Exception:
    pass
'
}
rx1() { "$1" | awk '$1 == 1 {print $2}'; }
# sums PORTS-FN: "rx tx", packets received and sent on ports 1 and 2
sums() { "$1" | awk '$1 == 1 || $1 == 2 {r += $2; t += $3; n++} END {if (n == 2) print r, t}'; }

# rates PORTS-FN: MEAS 1-s samples of the packets received (= run through conntrack) and sent on
# ports 1 and 2 -> "rx-Mpps tx-Mpps", the median of each
rates() {
  local t0 c0 t1 c1
  t0=$(now); c0=$(sums "$1")
  for _ in $(seq 1 "$MEAS"); do
    sleep 1
    t1=$(now); c1=$(sums "$1")
    [ -n "$c0" ] && [ -n "$c1" ] && echo "$c0 $c1" | awk -v s="$t0" -v e="$t1" '{printf "%.4f %.4f\n", ($3-$1)/(e-s)/1e6, ($4-$2)/(e-s)/1e6}'
    t0=$t1; c0=$c1
  done > "$work/rates"
  echo "$(awk '{print $1}' "$work/rates" | median | fmt3) $(awk '{print $2}' "$work/rates" | median | fmt3)"
}

# pass_wait PORTS-FN K: until port 1 has received K packets (or its count stalls 3 s); the rate
# its counter showed between the first and last 0.1-s samples strictly inside (0, K) goes to stderr,
# a wall-clock cross-check of the PMD-time rate (too few samples when the pass is short)
pass_wait() {
  local k=$2 c=0 t last=-1 still=0 lo_t="" lo_c="" hi_t="" hi_c=""
  for _ in $(seq 1 $((LIMIT * 10))); do
    t=$(now); c=$(rx1 "$1"); c=${c:-0}
    if [ "$c" -gt 0 ] && [ "$c" -lt "$k" ]; then
      [ -z "$lo_t" ] && { lo_t=$t; lo_c=$c; }
      hi_t=$t; hi_c=$c
    fi
    [ "$c" -ge "$k" ] && break
    if [ "$c" = "$last" ] && [ "$c" -gt 0 ]; then still=$((still + 1)); [ "$still" -ge 30 ] && break; else still=0; fi
    last=$c
    sleep 0.1
  done
  local wall=NA
  [ -n "$lo_t" ] && [ "$hi_c" -gt "$lo_c" ] && wall=$(awk -v a="$lo_c" -v b="$hi_c" -v s="$lo_t" -v e="$hi_t" 'BEGIN{printf "%.0f", (b-a)/(e-s)}')
  echo "setup: port 1 received $c of $k; wall-clock rate from its counter $wall/s" >&2
}

# ---- the PMD's busy cycles and received packets since CLEAR: "busy rx" ----
ovs_clear() { $APPCTL dpif-netdev/pmd-stats-clear >/dev/null; }
ovs_busy() { # the PMD on the last core: processing cycles, packets received
  $APPCTL dpif-netdev/pmd-stats-show | ovs_pmd_fields | awk -F'\t' '
    $1 == "processing cycles" {b = $2} $1 == "packets received" {r = $2}
    END {print (b == "" ? "NA" : b), (r == "" ? "NA" : r)}'
}
vsw_clear() { $CTL pmd-stats-clear >/dev/null; }
vsw_busy() { # summed over PMDs (one)
  $CTL --json pmd-stats-show | python3 -c '
import json, sys
try:
    pmds = json.load(sys.stdin)["pmds"]
    print(sum(p["busy_cycles"] for p in pmds), sum(p["rx_packets"] for p in pmds))
except Exception:
    print("NA NA")
'
}
per_pkt() { awk -v b="${1% *}" -v r="${1#* }" 'BEGIN{if (b == "NA" || r == "NA" || r <= 0) print "NA"; else printf "%.0f", b/r}'; }
# setup_cps "BUSY RX" CONNS: connections per second of PMD busy time (TSC_MHZ: the cycle counter's rate)
setup_cps() {
  awk -v b="${1% *}" -v c="$2" -v mhz="$TSC_MHZ" 'BEGIN{if (b == "NA" || b <= 0 || c == "NA" || c <= 0) print "NA"; else printf "%.0f", c/(b/(mhz*1e6))}'
}

# rule_hits: dump-flows text (ovs-ofctl style lines) on stdin -> "new=A est_in=B est_out=C": packets
# that hit table 1's +new rule, +est from port 1 (inside) and +est from port 2 (outside, the
# replies); ct_state as flags (+trk+new) or as VALUE/MASK numbers (new 0x01, est 0x02)
rule_hits() {
  python3 -c '
import re, sys
h = {"new": 0, "est1": 0, "est2": 0}
for line in sys.stdin:
    st = re.search(r"ct_state=([-+a-z]+|0x[0-9a-f]+(?:/0x[0-9a-f]+)?|\d+)", line)
    n = re.search(r"n_packets=(\d+)", line)
    port = re.search(r"in_port=(\d+)", line)
    if not (st and n and port) or not re.search(r"\btable=1\b", line):
        continue
    f = st.group(1)
    if f[0] in "+-":
        new, est = "+new" in f, "+est" in f
    else:
        v, _, m = f.partition("/")
        v, m = int(v, 0), int(m, 0) if m else 0xFFFFFFFF
        new, est = bool(v & m & 1), bool(v & m & 2)
    if new:
        h["new"] += int(n.group(1))
    elif est:
        k = "est" + port.group(1)
        h[k] = h.get(k, 0) + int(n.group(1))
print("new=%d est_in=%d est_out=%d" % (h["new"], h["est1"], h["est2"]))
'
}

# hits_delta BEFORE AFTER: two rule_hits lines -> their difference (the window's packets)
hits_delta() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) { split(x[i], p, "="); split(y[i], q, "="); printf "%s%s=%d", (i > 1 ? " " : ""), p[1], q[2] - p[2] }
    print "" }'
}
ovs_hits() { $OFCTL dump-flows br0 | rule_hits; }
vsw_hits() { $CTL --json dump-flows 2>/dev/null | python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["flows"]))' 2>/dev/null | rule_hits; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo NA; }

# ---- the VM: one virtio-user port, reflecting every packet with its 5-tuple swapped ----
vm_start() { # SOCKET SERVER(0|1) LOG -> $vm_pid
  local srv=""
  [ "$2" = 1 ] && srv=",server=1"
  timeout -s INT -k 5 "$LIMIT" dpdk-testpmd --lcores 0@0,1@0 --no-pci --in-memory --file-prefix vswctvm \
    --single-file-segments -m 160 --log-level=error --vdev "net_virtio_user0,path=$1$srv" -- \
    --forward-mode=5tswap --port-topology=loop --total-num-mbufs=16384 --auto-start --stats-period 1 \
    < <(sleep "$LIMIT") > "$3" 2>&1 &
  vm_pid=$!
  track "$vm_pid"
}
vm_stop() { [ -n "${vm_pid:-}" ] || return 0; kill -INT "$vm_pid" 2>/dev/null || true; wait "$vm_pid" 2>/dev/null || true; vm_pid=; }

# ---- the switches (peer ovs or vsw): <peer>_start_row ROW N starts it with ROW's rules, port 2 (the
# VM's vhost-user port, or for setup a net_null sink) and, for the rows with a VM, the VM; if the
# switch refuses, it writes the reason to $work/why and fails. <peer>_add_pcap DEVARGS adds port 1
# (<peer>_del_pcap removes it), <peer>_pid is the process whose RSS is read, <peer>_conns its
# tracked connections (NA if it cannot tell), <peer>_stop_row TAG stops it all (KEEP: saves its
# counters as TAG). ----
ovs_start_row() {
  local row=$1
  rm -f "$run"/*.sock
  ovs_start
  $OFCTL add-flows br0 "$(rules_of "$row")"
  if [ "$row" = setup ]; then
    $VSCTL add-port br0 p1 -- set Interface p1 type=dpdk options:dpdk-devargs="net_null0,no-rx=1" ofport_request=2
  else
    vm_start "$run/vm.sock" 1 "$work/vm.log" # OVS is the vhost-user client; the VM waits in accept()
    $VSCTL add-port br0 vhu0 -- set Interface vhu0 type=dpdkvhostuserclient \
      options:vhost-server-path="$run/vm.sock" ofport_request=2
  fi
}
ovs_add_pcap() { $VSCTL add-port br0 p0 -- set Interface p0 type=dpdk options:dpdk-devargs="$1" ofport_request=1; }
ovs_del_pcap() { $VSCTL del-port br0 p0; }
ovs_pid() { cat "$OVS_RUNDIR/ovs-vswitchd.pid"; }
ovs_conns() { $APPCTL dpctl/ct-stats-show 2>/dev/null | awk 'tolower($1) == "total:" || tolower($1) == "connections:" {print $2; f = 1; exit} END {if (!f) print "NA"}'; }
ovs_stop_row() {
  [ -n "${KEEP:-}" ] && { $OFCTL dump-flows br0 > "$work/ovs-$1.flows" 2>&1; $APPCTL dpif-netdev/pmd-stats-show > "$work/ovs-$1.pmd" 2>&1
    $APPCTL dpctl/dump-conntrack 2>&1 | head -20 > "$work/ovs-$1.ct"; } || true
  vm_stop
  grep -iE '\|(ERR|EMER)\|' "$OVS_LOGDIR/ovs-vswitchd.log" >> "$work/errors.log" 2>/dev/null || true
  ovs_stop
}

vsw_start_row() {
  local row=$1 n=$2 port2 mbufs=()
  rm -f "$run"/*.sock
  # the infinite replay holds its N packets in mbufs from the switch's pool for the whole run
  if [ "$row" = setup ]; then port2="p1=net_null0,no-rx=1"; else port2="p1=net_vhost0,iface=$run/vm.sock" mbufs=(--mbufs $((n + 65536))); fi
  timeout -s INT -k 5 "$LIMIT" $PIN_PMD "$VSWITCHD" --mode pipeline --pmd-cores "$PMD_CORE" --stats-interval 0 \
    --control "$run/vsw.sock" --eal "--in-memory --file-prefix vswctvsw" --flows "$(rules_of "$row")" \
    "${mbufs[@]}" --port "$port2" --ofport p1=2 ${EXTRA:-} < <(sleep "$LIMIT") > "$work/sw.log" 2>&1 &
  sw_pid=$!
  track "$sw_pid"
  for _ in $(seq 1 150); do
    [ -S "$run/vsw.sock" ] && { [ "$row" = setup ] || [ -S "$run/vm.sock" ]; } && break
    kill -0 "$sw_pid" 2>/dev/null || break
    sleep 0.2
  done
  if ! kill -0 "$sw_pid" 2>/dev/null || ! [ -S "$run/vsw.sock" ]; then
    wait "$sw_pid" 2>/dev/null || true
    { grep -m1 'vswitchd: error' "$work/sw.log" || tail -1 "$work/sw.log" | grep . || echo "vswitchd did not start"; } > "$work/why"
    kill -INT "$sw_pid" 2>/dev/null || true
    wait "$sw_pid" 2>/dev/null || true
    return 1
  fi
  if [ "$row" != setup ]; then
    vm_start "$run/vm.sock" 0 "$work/vm.log"
    for _ in $(seq 1 60); do grep -q 'Port statistics' "$work/vm.log" 2>/dev/null && break; sleep 0.5; done
  fi
}
vsw_add_pcap() { $CTL add-port p0 "$1" --ofport 1 >/dev/null; }
vsw_del_pcap() { $CTL del-port p0 >/dev/null; }
vsw_pid() { pgrep -P "$sw_pid" -n || echo "$sw_pid"; } # timeout's child (taskset execs vswitchd)
vsw_ct() { $CTL --json ct-stats-show 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], "NA"))' "$1" 2>/dev/null || echo NA; }
vsw_conns() { vsw_ct connections; }
vsw_stop_row() {
  [ -n "${KEEP:-}" ] && { $CTL dump-flows > "$work/vswitchd-$1.flows" 2>&1; $CTL pmd-stats-show > "$work/vswitchd-$1.pmd" 2>&1; } || true
  vm_stop
  kill -INT "$sw_pid" 2>/dev/null || true
  wait "$sw_pid" 2>/dev/null || true
  grep 'vswitchd: error' "$work/sw.log" >> "$work/errors.log" || true
}

# run_row P ROW N (P: ovs or vsw): one run -> "Mpps fwd-Mpps conns/s cycles/pkt bytes/conn check"
# (NA for what does not apply), or "n/a REASON" when the switch refuses the row
run_row() {
  local p=$1 row=$2 n=$3 mpps=NA fwd=NA cps=NA cyc mem=NA conns c0 hits h0 busy rss0 rss1
  if ! "${p}_start_row" "$row" "$n"; then
    echo "n/a $(cat "$work/why")"
    return
  fi
  if [ "$row" = setup ]; then
    # warm-up pass: SETUP_WARM other connections (flows n.., disjoint from the measured ones), so
    # the measured pass finds the code paths warm (a JIT's tiering, first-touched tables) as the
    # throughput rows' WARM does; then its port goes and the measured file comes on a new one
    "${p}_add_pcap" "net_pcap1,rx_pcap=$(pcap_of "$SETUP_WARM" "$n")"
    pass_wait "${p}_ports" "$SETUP_WARM" 2>/dev/null
    "${p}_del_pcap"
    sleep 1
    c0=$("${p}_conns") h0=$("${p}_hits")
    rss0=$(rss_kb "$("${p}_pid")")
    "${p}_clear"
    "${p}_add_pcap" "net_pcap0,rx_pcap=$(pcap_of "$n")"
    pass_wait "${p}_ports" "$n"
    sleep 0.5
    busy=$("${p}_busy")
    cyc=$(per_pkt "$busy")
    rss1=$(rss_kb "$("${p}_pid")")
    hits=$(hits_delta "$h0" "$("${p}_hits")")
    conns=$("${p}_conns")
    if [ "$conns" = NA ] || [ "$c0" = NA ]; then
      conns=$(sed -n 's/.*new=\([0-9]*\).*/\1/p' <<<"$hits") # committed: every +new
    else
      conns=$((conns - c0))
    fi
    cps=$(setup_cps "$busy" "$conns")
    [ "$p" = vsw ] && mem=$(vsw_ct bytes_per_connection | fmt0)
    [ "$mem" = NA ] && mem=$(awk -v a="$rss0" -v b="$rss1" -v c="$conns" 'BEGIN{if (c > 0 && a != "NA" && b != "NA") printf "%.0f", (b-a)*1024/c; else print "NA"}')
    echo "${p/vsw/vswitchd} setup: $conns connections of $n, RSS $rss0 -> $rss1 kB" >&2
  else
    "${p}_add_pcap" "net_pcap0,rx_pcap=$(pcap_of "$n"),infinite_rx=1"
    sleep "$WARM"
    "${p}_clear"
    h0=$("${p}_hits")
    read -r mpps fwd <<<"$(rates "${p}_ports")"
    cyc=$(per_pkt "$("${p}_busy")")
    hits=$(hits_delta "$h0" "$("${p}_hits")")
    conns=$("${p}_conns")
  fi
  "${p}_stop_row" "$row-$n"
  echo "$mpps $fwd $cps ${cyc:-NA} $mem conns=$conns,$(tr ' ' , <<<"$hits")"
}
run_ovs() { run_row ovs "$@"; }
run_vswitchd() { run_row vsw "$@"; }

echo "# conntrack benchmark $(date -u +%FT%TZ) runs=$RUNS warm=${WARM}s meas=${MEAS}s 64 B; conns: $CONNS; setup: $SETUP_CONNS; $(ovs-vswitchd --version | head -1); $ALL_CPUS cpus, PMD on core $PMD_CORE"
echo "# per run: Mpps through conntrack (forwarded)  conns/s (setup)  PMD cycles/pkt  bytes/conn (setup)  rule hits in the window"
declare -A res
rowkeys=()
for row in $ROWS; do
  if [ "$row" = setup ]; then ns=$SETUP_CONNS; else ns=$CONNS; fi
  for n in $ns; do
    key=$row.$n
    rowkeys+=("$key")
    for r in $(seq 1 "$RUNS"); do
      order=$(run_order $((r - 1)) $PEERS)
      echo "$row N=$n run $r order: $order"
      for sw in $order; do
        line=$("run_$sw" "$row" "$n" 2>>"$work/errors.log" | tail -1)
        if [[ "$line" == n/a* ]]; then
          why=${line#n/a }; why=${why#vswitchd: error: }; why=${why#"$RULES_DIR/"}
          res[$key.$sw.na]=$why
          printf '%-5s N=%-7s run %d %s: n/a (%s)\n' "$row" "$n" "$r" "$sw" "$why"
          continue
        fi
        read -r mpps fwd cps cyc mem check <<<"$line"
        for f in mpps fwd cps cyc mem; do res[$key.$sw.$f]="${res[$key.$sw.$f]:-} ${!f:-NA}"; done
        note=""
        if [ "$row" != setup ] && ! awk -v c="${check:-}" 'BEGIN {split(c, f, ","); for (i in f) {split(f[i], kv, "="); h[kv[1]] = kv[2]}
            exit !(h["est_out"] > 0 && h["new"] * 100 <= h["est_in"])}'; then note="  NOT ESTABLISHED"; fi
        printf '%-5s N=%-7s run %d %-8s %7s Mpps (%6s)  %8s conns/s  %5s cyc/pkt  %4s B/conn  %s%s\n' \
          "$row" "$n" "$r" "$sw" "${mpps:-NA}" "${fwd:-NA}" "${cps:-NA}" "${cyc:-NA}" "${mem:-NA}" "${check:-}" "$note"
      done
    done
  done
done

vals() { tr ' ' '\n' <<<"${res[$1]:-}" | grep -v '^$' | grep -v NA || true; }
med() { local m; m=$(vals "$1" | median); echo "${m:-NA}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{if (a == "NA" || b == "NA" || a == "" || b == "" || b <= 0) print "NA"; else printf "%.3f", a/b}'; }
cell() { # KEY PEER FIELD FORMAT -> the median, formatted, or "n/a" (the reasons follow the table)
  if [ -n "${res[$1.$2.na]:-}" ] && [ -z "${res[$1.$2.$3]:-}" ]; then echo "n/a"; else med "$1.$2.$3" | "$4"; fi
}
mpps_cell() { # KEY PEER -> "Mpps (forwarded Mpps)"
  local m; m=$(cell "$1" "$2" mpps fmt3)
  case $m in n/a | NA) echo "$m" ;; *) echo "$m ($(med "$1.$2.fwd" | fmt3))" ;; esac
}
echo
echo "| row | connections | vswitchd Mpps (fwd) | OVS Mpps (fwd) | vswitchd/OVS | vswitchd conns/s | OVS conns/s | vswitchd/OVS | vswitchd cyc/pkt | OVS cyc/pkt | OVS/vswitchd cycles | vswitchd B/conn | OVS B/conn |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
minratio="" setupratio=NA
for key in "${rowkeys[@]}"; do
  row=${key%%.*} n=${key#*.}
  ry=$(ratio "$(med "$key.ovs.cyc")" "$(med "$key.vswitchd.cyc")")
  tail="$(cell "$key" vswitchd cyc fmt0) | $(cell "$key" ovs cyc fmt0) | $ry | $(cell "$key" vswitchd mem fmt0) | $(cell "$key" ovs mem fmt0) |"
  if [ "$row" = setup ]; then
    setupratio=$(ratio "$(med "$key.vswitchd.cps")" "$(med "$key.ovs.cps")")
    echo "| $row | $n | - | - | - | $(cell "$key" vswitchd cps fmt0) | $(cell "$key" ovs cps fmt0) | $setupratio | $tail"
  else
    rm_=$(ratio "$(med "$key.vswitchd.mpps")" "$(med "$key.ovs.mpps")")
    if [ "$rm_" != NA ] && { [ -z "$minratio" ] || awk -v a="$rm_" -v b="$minratio" 'BEGIN{exit !(a < b)}'; }; then minratio=$rm_; fi
    echo "| $row | $n | $(mpps_cell "$key" vswitchd) | $(mpps_cell "$key" ovs) | $rm_ | - | - | - | $tail"
  fi
done
echo "(Mpps: packets through conntrack per second, both directions, (forwarded); conns/s: new connections committed per second of PMD time; cyc/pkt: PMD busy cycles per received packet; medians over runs)"
for sw in $PEERS; do # one line per reason a switch refused rows for
  declare -A why_rows=()
  for key in "${rowkeys[@]}"; do [ -n "${res[$key.$sw.na]:-}" ] && why_rows[${res[$key.$sw.na]}]+=" $key"; done
  for w in "${!why_rows[@]}"; do echo "$sw: n/a on${why_rows[$w]} ($w)"; done
  unset why_rows
done
if [ -s "$work/errors.log" ]; then echo "# notes/errors (first lines):"; head -12 "$work/errors.log" | sed 's/^/#   /'; fi
echo "RESULT ct_min_vs_ovs=${minratio:-NA} ct_setup_vs_ovs=$setupratio"
