#!/usr/bin/env bash
# l2fwd macro benchmark: this switch's l2fwd vs dpdk-testpmd on the same devices and core.
#
# Scenarios (64 B): "null" = two net_null ports; "pcap" = a net_pcap infinite-rx replay paired with
# a net_null port. For each run, in turn: vswitchd l2fwd with MAC rewrite, testpmd mac, vswitchd
# without rewrite, testpmd io -- interleaved so machine drift hits all alike, in that order in odd
# runs (1, 3, ..) and reversed in even runs (each run prints its order). Forwarding runs on
# core 1 (PMD_CORE), everything else on core 0. Mpps = received packets per second summed over
# both ports, median of the 1-s samples after SKIP warm-up samples; per peer the median over runs.
#
# vswitchd runs as shipped: capture-capable (a shared runtime directory, rte_pdump started), with
# no capture running. CAPTURE=1 adds two peers to every run: "vsw_inmem" (vswitchd mac with
# --in-memory, where capture cannot exist: the cost of being capture-capable) and "vsw_cap"
# (vswitchd mac while dpdk-dumpcap captures port b, rx and tx, to /dev/null: the rate with a
# capture running). BASE_VSWITCHD=PATH adds "base_mac", another vswitchd build (e.g. the commit
# before a change) run the same way. Extras are reported as ratios to vsw_mac.
#
# usage: bench/l2fwd.sh [RUNS=3] ; env: DUR (s, default 10), SKIP (samples, 3), SCENARIOS ("null pcap"),
#        PMD_CORE (1), VSWITCHD, TESTPMD, CAPTURE (0), BASE_VSWITCHD
# Last line: RESULT l2fwd_vs_testpmd_mac=<ratio> l2fwd_vs_testpmd_io=<ratio>  (null scenario)
set -euo pipefail
case ${1:-} in -h | --help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
RUNS=${1:-${RUNS:-3}}
DUR=${DUR:-10}
SKIP=${SKIP:-3}
SCENARIOS=${SCENARIOS:-"null pcap"}
PMD_CORE=${PMD_CORE:-1}
VSWITCHD=${VSWITCHD:-$root/out/vswitchd/vswitchd}
TESTPMD=${TESTPMD:-dpdk-testpmd}
work=$(mktemp -d /tmp/vsw-l2fwd.XXXXXX)
trap 'rm -rf "$work"' EXIT

[ -x "$VSWITCHD" ] || { echo "l2fwd.sh: $VSWITCHD missing; run scripts/setup first" >&2; exit 1; }
command -v "$TESTPMD" >/dev/null || { echo "l2fwd.sh: dpdk-testpmd missing (apt-get install dpdk)" >&2; exit 1; }
"$root/hugepages/setup.sh" >/dev/null
python3 "$here/pcapgen.py" "$work/flows.pcap" --count 4096 --flows 256 --size 64

devs() { # scenario -> "devargsA devargsB"
  case "$1" in
    null) echo "net_null0,size=64 net_null1,size=64" ;;
    pcap) echo "net_pcap0,rx_pcap=$work/flows.pcap,infinite_rx=1 net_null0,size=64" ;;
  esac
}

# median of numbers on stdin
. "$here/lib.sh" # median

run_vsw() { # scenario mac|io|inmem|cap [binary] -> Mpps
  local a b extra="" eal="--file-prefix vswl2fwdvsw" bin=${3:-$VSWITCHD} cap=""
  read -r a b <<<"$(devs "$1")"
  [ "$2" = io ] && extra="--no-mac-rewrite"
  [ "$2" = inmem ] && eal="--in-memory --file-prefix vswl2fwdvsw"
  timeout -s INT -k 5 $((DUR + 30)) taskset -c 0,"$PMD_CORE" "$bin" --pmd-cores "$PMD_CORE" \
    --eal "$eal" --port "a=$a" --port "b=$b" $extra --duration "$DUR" --stats-interval 1 > "$work/vsw.log" 2>&1 &
  local pid=$!
  if [ "$2" = cap ]; then # attach once the switch forwards; dumpcap runs on core 0
    for _ in $(seq 100); do grep -q '^vswitchd: forwarding' "$work/vsw.log" && break; sleep 0.1; done
    timeout -s INT -k 5 $((DUR + 20)) taskset -c 0 dpdk-dumpcap -q --file-prefix=vswl2fwdvsw -i "${b%%,*}" -w /dev/null > "$work/cap.log" 2>&1 &
    cap=$!
  fi
  wait "$pid" || true
  [ -n "$cap" ] && { kill -INT "$cap" 2>/dev/null || true; wait "$cap" || true; }
  grep '^stats ' "$work/vsw.log" | tail -n +$((SKIP + 1)) | sed 's/.*rx_mpps=\([0-9.]*\).*/\1/' | median
}

run_testpmd() { # scenario mac|io -> Mpps
  local a b
  read -r a b <<<"$(devs "$1")"
  timeout -s INT -k 5 "$DUR" "$TESTPMD" --lcores "0@0,1@$PMD_CORE" --no-pci --in-memory --file-prefix vswl2fwdtp -m 512 \
    --log-level=error --vdev "$a" --vdev "$b" -- --forward-mode="$2" --txpkts=64 --auto-start \
    --stats-period 1 > "$work/tp.log" 2>&1 || true
  # sum Rx-pps over both ports per sample; drop the SKIP first and the last (partial) sample
  awk '/Rx-pps:/ {s += $2; if (++k % 2 == 0) {print s / 1e6; s = 0}}' "$work/tp.log" \
    | tail -n +$((SKIP + 1)) | head -n -1 | median
}

echo "# l2fwd benchmark $(date -u +%FT%TZ) runs=$RUNS dur=${DUR}s core=$PMD_CORE $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
declare -A res
for sc in $SCENARIOS; do
  for r in $(seq 1 "$RUNS"); do
    extras=""
    [ "${CAPTURE:-0}" = 1 ] && extras+=" vsw_inmem vsw_cap"
    [ -n "${BASE_VSWITCHD:-}" ] && extras+=" base_mac"
    # shellcheck disable=SC2086
    peers=$(run_order $((r - 1)) vsw_mac tpmd_mac vsw_io tpmd_io $extras)
    echo "$sc run $r order: $peers"
    for peer in $peers; do
      mode=${peer#*_}
      case "$peer" in
        vsw_*) v=$(run_vsw "$sc" "$mode") ;;
        base_*) v=$(run_vsw "$sc" "$mode" "$BASE_VSWITCHD") ;;
        tpmd_*) v=$(run_testpmd "$sc" "$mode") ;;
      esac
      res[$sc.$peer]="${res[$sc.$peer]:-} $v"
      printf '%-5s run %d %-9s %8s Mpps\n' "$sc" "$r" "$peer" "$v"
    done
  done
done

echo
printf '| %-8s | %-28s | %-28s | %-28s | %-28s | %-9s | %-9s |\n' scenario "vswitchd l2fwd mac (med/max)" "testpmd mac (med/max)" "vswitchd io (med/max)" "testpmd io (med/max)" "mac ratio" "io ratio"
declare -A med
for sc in $SCENARIOS; do
  row=""
  for peer in vsw_mac tpmd_mac vsw_io tpmd_io; do
    vals=$(tr ' ' '\n' <<<"${res[$sc.$peer]}" | grep -v '^$' | grep -v NA || true) # a peer may be all NA
    m=$(grep . <<<"$vals" | median || true); x=$(sort -g <<<"$vals" | tail -1)
    med[$sc.$peer]=$m
    row+=$(printf '| %-28s ' "$m / $x")
  done
  rm_=$(awk -v a="${med[$sc.vsw_mac]}" -v b="${med[$sc.tpmd_mac]}" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')
  ri=$(awk -v a="${med[$sc.vsw_io]}" -v b="${med[$sc.tpmd_io]}" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')
  med[$sc.rmac]=$rm_; med[$sc.rio]=$ri
  printf '| %-8s %s| %-9s | %-9s |\n' "$sc" "$row" "$rm_" "$ri"
done
if [ "${CAPTURE:-0}" = 1 ] || [ -n "${BASE_VSWITCHD:-}" ]; then
  echo
  printf '| %-8s | %-26s | %-22s | %-9s |\n' scenario "peer" "Mpps (med/max)" "vs vsw_mac"
  for sc in $SCENARIOS; do
    for peer in vsw_inmem vsw_cap base_mac; do
      [ -n "${res[$sc.$peer]:-}" ] || continue
      vals=$(tr ' ' '\n' <<<"${res[$sc.$peer]}" | grep -v '^$' | grep -v NA || true)
      m=$(grep . <<<"$vals" | median || true); x=$(sort -g <<<"$vals" | tail -1)
      rr=$(awk -v a="$m" -v b="${med[$sc.vsw_mac]}" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')
      printf '| %-8s | %-26s | %-22s | %-9s |\n' "$sc" "$peer" "$m / $x" "$rr"
    done
  done
fi
first=${SCENARIOS%% *}
echo "RESULT l2fwd_vs_testpmd_mac=${med[$first.rmac]} l2fwd_vs_testpmd_io=${med[$first.rio]}"
