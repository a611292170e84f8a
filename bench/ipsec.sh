#!/usr/bin/env bash
# IPsec: this switch's ESP tunnel path (AES-GCM-128 on the crypto_aesni_mb PMD, one PMD core) beside
# the crypto-only bound of that core (dpdk-test-crypto-perf, the same PMD, algorithm, sizes and burst)
# and beside what a user without kernel ESP would run instead (strongSwan's userspace ESP: charon with
# kernel-libipsec, both ends on the same core, bench/ipsec/strongswan.sh). Interleaved: the three
# peers in order in odd runs, reversed in even runs (each run prints its order); medians over RUNS.
#
# Rows, inner IP packets of SIZES bytes (UDP, 64 flows):
#   out    encrypt: port 1 is a net_pcap infinite replay of the inner packets, the rule
#          ip -> ipsec(sa=1,table=1), table 1 -> output:2 (a net_null sink): every packet is
#          encapsulated (tunnel mode, IPv4 outer), enqueued to the crypto device, collected, and
#          re-enters the pipeline before it is sent.
#   in     decrypt: port 1 replays ESP packets Scapy encrypted for the inbound SA (tests/ipsec/espref.py),
#          esp -> ipsec(decrypt,table=2), table 2 ipsec_sa=2 -> output:2. The replay repeats the same
#          64 sequence numbers, so this row's inbound SA has no anti-replay window (replay-window=0;
#          the window's cost is a few bit operations per packet).
#   clear  the same path without the crypto device: ip -> output:2 (the switch's cleartext rate).
# Metric: Mpps of inner packets through the SA = the SA's completed-packet counter (dump-sa packets)
# over MEAS s after WARM s (clear: packets sent on port 2), Gbps = Mpps x SIZE x 8; the PMD's busy
# cycles per packet beside it. Crypto bound: crypto-perf's Mops on core 1 (throughput test, burst 32,
# buffer = SIZE). strongSwan: the best rate it delivered for the size (UDP at SIZE, or for the largest
# size its TCP goodput in SIZE-byte packets, whichever is higher).
#
# usage: bench/ipsec.sh [RUNS=3]
# env: SIZES ("64 1400"), MEAS (s, 5), WARM (s, 2), PEERS ("vswitchd crypto-perf strongswan"),
#      SW_SECS (strongSwan iperf3 seconds, 8), VSWITCHD, VSWITCHCTL, KEEP=1 keeps the work directory
# Last line: RESULT ipsec_vs_crypto_bound=<lowest of out/in Mpps / crypto Mops at the largest size>
#            ipsec_vs_strongswan=<lowest vswitchd/strongSwan Mpps over out/in rows>
set -euo pipefail
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
. "$here/lib.sh"
pin_to_core0 "$0" "$@"
RUNS=${1:-${RUNS:-3}}
SIZES=${SIZES:-"64 1400"}
MEAS=${MEAS:-5}
WARM=${WARM:-2}
PEERS=${PEERS:-"vswitchd crypto-perf strongswan"}
SW_SECS=${SW_SECS:-8}
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
VSWITCHCTL=${VSWITCHCTL:-$root/out/vswitchctl/vswitchctl}
PY=/usr/bin/python3
work=$(mktemp -d /tmp/vsw-ipsec.XXXXXX)
CTL="timeout 20 $VSWITCHCTL --socket $work/vsw.sock"
trap bench_exit EXIT
"$root/hugepages/setup.sh" >/dev/null
[ -x "$VSWITCHD" ] && [ -x "$VSWITCHCTL" ] || { echo "ipsec.sh: run scripts/setup first" >&2; exit 1; }
largest=$(echo "$SIZES" | tr ' ' '\n' | sort -n | tail -1)

# ---- traffic: inner packets (Scapy) and the same packets as ESP for the inbound SA ----
KEY_OUT=00112233445566778899aabbccddeeff01020304
KEY_IN=0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4
cat > "$work/in.json" <<EOF
{"spi": 8194, "alg": "aes-gcm-128", "key": "$KEY_IN", "outer_src": "198.51.100.2", "outer_dst": "198.51.100.1"}
EOF
for s in $SIZES; do
  "$PY" - "$work/inner-$s.pcap" "$s" <<'EOF'
import sys, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, UDP, Raw, wrpcap
size = int(sys.argv[2])
wrpcap(sys.argv[1], [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="203.0.113.%d" % (10 + i), dst="203.0.113.200")
                     / UDP(sport=1000 + i, dport=2000) / Raw(b"\x5a" * (size - 28)) for i in range(64)])
EOF
  "$PY" "$root/tests/ipsec/espref.py" encrypt --sa "$work/in.json" --in "$work/inner-$s.pcap" --out "$work/esp-$s.pcap" 2>/dev/null
done

# ---- vswitchd: one row ----
state_for() { # MODE -> state file
  local f=$work/state-$1.json flows sas
  case $1 in
    out) flows='"table=0,priority=10,in_port=1,ip,actions=ipsec(sa=1,table=1)","table=1,priority=10,actions=output:2"'
         sas="\"id=1 dir=out spi=4097 alg=aes-gcm-128 key=$KEY_OUT src=198.51.100.1 dst=198.51.100.2 inner=ipv4\"" ;;
    in)  flows='"table=0,priority=10,in_port=1,ip,nw_proto=50,actions=ipsec(decrypt,table=2)","table=2,priority=10,ipsec_sa=2,actions=output:2"'
         sas="\"id=2 dir=in spi=8194 alg=aes-gcm-128 key=$KEY_IN src=198.51.100.2 dst=198.51.100.1 inner=ipv4 replay-window=0\"" ;;
    clear) flows='"table=0,priority=10,in_port=1,ip,actions=output:2"'; sas="" ;;
  esac
  echo "{\"format\":1,\"ports\":[],\"flows\":[$flows],\"sas\":[$sas]}" > "$f"
  echo "$f"
}
count_of() { # MODE -> packets through (SA completions, or port 2's tx for clear)
  if [ "$1" = clear ]; then
    $CTL --json dump-ports | "$PY" -c 'import json,sys; print(next(p["tx_packets"] for p in json.load(sys.stdin)["ports"] if p["ofport"] == 2))'
  else
    $CTL --json dump-sa | "$PY" -c 'import json,sys,re; print(int(re.search(r"\bpackets=(\d+)", json.load(sys.stdin)["sas"][0]).group(1)))'
  fi
}
busy_of() { $CTL --json pmd-stats-show | "$PY" -c 'import json,sys; p=json.load(sys.stdin)["pmds"]; print(sum(x["busy_cycles"] for x in p), sum(x["rx_packets"] for x in p))'; }
vsw_row() { # MODE SIZE -> "mpps cycles_per_packet"
  local mode=$1 size=$2 rx st pid c0 c1 b0 b1 t0 t1
  rx=$work/inner-$size.pcap; [ "$mode" = in ] && rx=$work/esp-$size.pcap
  st=$(state_for "$mode"); cp "$st" "$work/live.json"
  timeout $((WARM + MEAS + 60)) "$VSWITCHD" --mode pipeline --stats-interval 0 --control "$work/vsw.sock" --state "$work/live.json" \
    --eal "--in-memory --file-prefix vsw-ipsec-bench" --port "a=net_pcap0,rx_pcap=$rx,infinite_rx=1" --port "b=net_null0,no-rx=1" \
    > "$work/vsw-$mode-$size.log" 2>&1 &
  pid=$!; track "$pid"
  for _ in $(seq 1 100); do [ -S "$work/vsw.sock" ] && $CTL show >/dev/null 2>&1 && break; sleep 0.1; done
  sleep "$WARM"
  t0=$EPOCHREALTIME; c0=$(count_of "$mode"); b0=$(busy_of)
  sleep "$MEAS"
  t1=$EPOCHREALTIME; c1=$(count_of "$mode"); b1=$(busy_of)
  kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  grep -q "leaked=0" "$work/vsw-$mode-$size.log" || echo "  note: vswitchd $mode $size: $(grep 'final: mbufs' "$work/vsw-$mode-$size.log")" >&2
  grep -q "alloc_bytes=0 " "$work/vsw-$mode-$size.log" || echo "  note: vswitchd $mode $size allocated on the PMD: $(grep -o 'alloc_bytes=[0-9]*' "$work/vsw-$mode-$size.log")" >&2
  awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v b="$b0 $b1" 'BEGIN {split(b, x, " ");
    cyc = (x[4] - x[2] > 0) ? (x[3] - x[1]) / (x[4] - x[2]) : 0
    printf "%.3f %.0f\n", (c1 - c0) / (t1 - t0) / 1e6, cyc}'
}

# ---- the peers ----
crypto_row() { # -> "size mops" lines
  PMDS=crypto_aesni_mb bash "$here/ipsec/crypto-bound.sh" "$(echo "$SIZES" | tr ' ' ',')" 2>"$work/crypto.err" \
    | awk '/^crypto_bound/ && /mops=/ {for (i = 1; i <= NF; i++) {split($i, kv, "="); v[kv[1]] = kv[2]} print v["size"], v["mops"]}'
}
strongswan_row() { # -> "size mpps" lines (the best it delivered per size)
  bash "$here/ipsec/strongswan.sh" "$SW_SECS" 2>"$work/strongswan.err" > "$work/strongswan.out" || true
  "$PY" - "$work/strongswan.out" "$largest" $SIZES <<'EOF'
import re, sys
text = open(sys.argv[1]).read(); largest = int(sys.argv[2])
tcp = re.search(r"strongswan tcp gbps=([\d.]+)", text)
for s in map(int, sys.argv[3:]):
    m = re.search(r"strongswan size=%d mpps=([\d.]+)" % s, text)
    best = float(m.group(1)) if m else 0.0
    if s == largest and tcp:
        best = max(best, float(tcp.group(1)) * 1e9 / 8 / s / 1e6)
    print(s, "%.4f" % best if best > 0 else "NA")
EOF
}

: > "$work/results"
for r in $(seq 0 $((RUNS - 1))); do
  order=$(run_order "$r" $PEERS)
  echo "run $((r + 1))/$RUNS: $order" >&2
  for peer in $order; do
    case $peer in
      vswitchd)
        for s in $SIZES; do for mode in out in clear; do
          read -r mpps cyc < <(vsw_row "$mode" "$s")
          echo "vswitchd $mode $s $mpps $cyc" >> "$work/results"
          echo "  vswitchd $mode ${s}B: $mpps Mpps, $cyc cycles/packet" >&2
        done; done ;;
      crypto-perf) crypto_row | while read -r s m; do echo "crypto $s $m" >> "$work/results"; echo "  crypto-perf ${s}B: $m Mops" >&2; done ;;
      strongswan) strongswan_row | while read -r s m; do echo "strongswan $s $m" >> "$work/results"; echo "  strongSwan ${s}B: $m Mpps" >&2; done ;;
    esac
  done
done

med() { awk -v a="$1" -v b="$2" -v c="${3:-}" '$1 == a && $2 == b && (c == "" || $3 == c) {print (c == "" ? $3 : $4)}' "$work/results" | grep -v NA | median; }
echo
echo "IPsec, AES-GCM-128 tunnel mode, one PMD core (medians of $RUNS interleaved runs; Gbps of inner IP bytes)"
printf "%-6s %-6s %10s %9s %9s %12s %12s %12s %14s\n" size row vswitchd Gbps cyc/pkt crypto_Mops vs_bound strongSwan vs_strongSwan
lowb=NA; lows=NA
for s in $SIZES; do
  cm=$(med crypto "$s"); sm=$(med strongswan "$s")
  for mode in out in clear; do
    v=$(med vswitchd "$mode" "$s")
    cyc=$(awk -v m="$mode" -v s="$s" '$1 == "vswitchd" && $2 == m && $3 == s {print $5}' "$work/results" | median)
    g=$(awk -v v="$v" -v s="$s" 'BEGIN {printf "%.2f", v * s * 8 / 1000}')
    rb=$(awk -v v="$v" -v c="$cm" 'BEGIN {if (c + 0 > 0 && v + 0 == v) printf "%.3f", v / c; else print "NA"}')
    rs=$(awk -v v="$v" -v c="$sm" 'BEGIN {if (c + 0 > 0 && v + 0 == v) printf "%.1f", v / c; else print "NA"}')
    [ "$mode" = clear ] && { rb=-; rs=-; }
    printf "%-6s %-6s %10s %9s %9s %12s %12s %12s %14s\n" "$s" "$mode" "$v" "$g" "$cyc" "$cm" "$rb" "$sm" "$rs"
    if [ "$mode" != clear ]; then
      [ "$s" = "$largest" ] && [ "$rb" != NA ] && lowb=$(awk -v a="$lowb" -v b="$rb" 'BEGIN {print (a == "NA" || b + 0 < a + 0) ? b : a}')
      [ "$rs" != NA ] && lows=$(awk -v a="$lows" -v b="$rs" 'BEGIN {print (a == "NA" || b + 0 < a + 0) ? b : a}')
    fi
  done
done
echo "RESULT ipsec_vs_crypto_bound=$lowb ipsec_vs_strongswan=$lows"
