#!/usr/bin/env bash
# strongswan.sh [SECONDS] - userspace ESP as a user without kernel ESP would run it: strongSwan's
# charon with the kernel-libipsec plugin (ESP in charon, inner packets through a TUN device), one
# charon per network namespace (site A, site B), IKEv2 + PSK, ESP AES-GCM-128 (esp=aes128gcm16),
# tunnel mode. Outer: veth 198.51.100.1 (A) <-> 198.51.100.2 (B). Inner: site A 203.0.113.0/25
# (host 203.0.113.1 on lo), site B 203.0.113.128/25 (host 203.0.113.129 on lo). Both charon
# processes (every thread: the whole ESP data path of both ends) are pinned to core 1; iperf3
# client and server and this script run on core 0.
# strongSwan 5.9.8 (Debian 12) kernel-libipsec has no raw-ESP socket: it forces UDP encapsulation,
# so the outer packets are ESP-in-UDP on port 4500 (RFC 3948) - still ESP, one UDP header more.
# SECONDS: duration of each iperf3 run (default 10).
# Output:
#   strongswan tcp gbps=<inner TCP goodput, receiver>
#   strongswan size=<inner IP bytes> mpps=<Mpps received> gbps=<Gbps received, inner IP bytes> loss=<%>
#   strongswan verify esp_in_udp_seen=<N>/20 siteA_sa_bytes_out=<B> siteA_sa_bytes_in=<B>
#   strongswan info ...   (tun MTU, charon CPU time)
# UDP: iperf3 -u -b 0 (or UDP_PPS) -l L with L = size - 28 (20 IP + 8 UDP), so -l 36 -> 64 B, -l 1372 -> 1400 B
# inner IP packets; mpps = packets the server received / s, loss = iperf3's lost_percent.
# Env: UDP_PPS (offered rate of the UDP runs in packets/s, default 0 = iperf3 -b 0, as fast as
# the sender can; both charons share one core, so an unlimited flood starves the receiving charon
# and the received rate at -b 0 is below the tunnel's loss-free rate - compare UDP_PPS=30000),
# KEEP=1 keeps the work directory (charon logs) and says where.
set -euo pipefail
if [ -z "${SWB_PINNED:-}" ]; then SWB_PINNED=1 exec taskset -c 0 bash "$0" "$@"; fi
SECS=${1:-10}
CORE=${CORE:-1}
UDP_PPS=${UDP_PPS:-0}   # offered packets/s of the UDP runs (0 = iperf3 -b 0, unlimited)

. "$(dirname "$0")/need-pkgs.sh"
# charon: strongswan-charon; swanctl: strongswan-swanctl; kernel-libipsec (+ libipsec.so):
# libcharon-extra-plugins; openssl/aesni/gcm crypto plugins: libstrongswan-standard-plugins.
need_pkgs strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins \
  iperf3 tcpdump iproute2 python3 util-linux
CHARON=/usr/lib/ipsec/charon

work=$(mktemp -d /tmp/strongswan-bench.XXXXXX)
NSA=swbA$$ NSB=swbB$$
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done   # the `timeout`s we started
  for p in "${pids[@]}"; do timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || true; done
  ip netns del "$NSA" 2>/dev/null || true
  ip netns del "$NSB" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
MAXT=$((SECS * 4 + 300))   # hard bound for the daemons

# --- namespaces and addresses
ip netns add "$NSA"; ip netns add "$NSB"
ip link add swbA$$v netns "$NSA" type veth peer name swbB$$v netns "$NSB"
for s in A B; do
  ns=$NSA; [ $s = B ] && ns=$NSB
  ip -n "$ns" link set lo up
  ip -n "$ns" link set swb$s$$v name out0
  ip -n "$ns" link set out0 up
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
done
ip -n "$NSA" addr add 198.51.100.1/24 dev out0
ip -n "$NSB" addr add 198.51.100.2/24 dev out0
ip -n "$NSA" addr add 203.0.113.1/32 dev lo
ip -n "$NSB" addr add 203.0.113.129/32 dev lo

# --- per-site strongSwan configuration
conf_site() { # SITE LOCAL REMOTE LTS RTS
  local d=$work/$1
  mkdir -p "$d/run"
  cat > "$d/strongswan.conf" <<CONF
charon {
  # only what this test needs; kernel-libipsec before kernel-netlink so it is the IPsec backend
  load = random nonce openssl aesni gcm aes sha1 sha2 hmac kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  filelog {
    site { path = $d/charon.log
           time_format = %T
           default = 1
           ike = 1 }
  }
  plugins {
    vici { socket = unix://$d/charon.vici }
  }
}
swanctl {
  load = random nonce openssl pem pkcs1 x509 pubkey
}
CONF
  cat > "$d/swanctl.conf" <<CONF
connections {
  bench {
    version = 2
    local_addrs = $2
    remote_addrs = $3
    proposals = aes128gcm16-prfsha256-ecp256
    local { auth = psk
            id = site$1 }
    remote { auth = psk
             id = site$( [ "$1" = A ] && echo B || echo A ) }
    children {
      net {
        mode = tunnel
        local_ts = $4
        remote_ts = $5
        esp_proposals = aes128gcm16
        start_action = none
      }
    }
  }
}
secrets {
  ike-bench {
    id-a = siteA
    id-b = siteB
    secret = "bench-only-psk-0123456789abcdef"
  }
}
CONF
}
conf_site A 198.51.100.1 198.51.100.2 203.0.113.0/25 203.0.113.128/25
conf_site B 198.51.100.2 198.51.100.1 203.0.113.128/25 203.0.113.0/25

start_charon() { # SITE NS
  local d=$work/$1
  # charon's pid file is hard-wired to /var/run/charon.pid: each instance gets its own /run
  # (bind mount inside the private mount namespace `ip netns exec` creates).
  STRONGSWAN_CONF=$d/strongswan.conf timeout -k 5 "$MAXT" ip netns exec "$2" \
    sh -c 'mount --bind "$1" /run && exec taskset -c "$2" "$3"' _ "$d/run" "$CORE" "$CHARON" \
    > "$d/charon.stdout" 2>&1 &
  pids+=($!)
}
swanctl_site() { # SITE ARGS...
  local s=$1; shift
  STRONGSWAN_CONF=$work/$s/strongswan.conf timeout 30 swanctl "$@" --uri "unix://$work/$s/charon.vici"
}
start_charon A "$NSA"
start_charon B "$NSB"
for s in A B; do
  for _ in $(seq 100); do [ -S "$work/$s/charon.vici" ] && break; sleep 0.1; done
  [ -S "$work/$s/charon.vici" ] || { echo "strongswan error=charon_${s}_not_started"; tail -5 "$work/$s/charon.log" "$work/$s/charon.stdout" >&2; exit 1; }
  swanctl_site $s --load-conns --file "$work/$s/swanctl.conf" >/dev/null
  swanctl_site $s --load-creds --noprompt --file "$work/$s/swanctl.conf" >/dev/null 2>&1 || { echo "strongswan error=load_creds_$s"; exit 1; }
done
if ! swanctl_site A --initiate --child net --timeout 20 > "$work/initiate.out" 2>&1; then
  echo "strongswan error=initiate_failed"; tail -15 "$work/initiate.out" >&2; exit 1
fi
# wait for the TUN device and the route through it
for _ in $(seq 50); do
  ip -n "$NSA" route get 203.0.113.129 from 203.0.113.1 2>/dev/null | grep -q ipsec && break; sleep 0.1
done
tundev=$(ip -n "$NSA" route get 203.0.113.129 from 203.0.113.1 | grep -o 'dev [^ ]*' | cut -d' ' -f2)
echo "strongswan info tun=$tundev mtu=$(ip -n "$NSA" -o link show "$tundev" | grep -o 'mtu [0-9]*' | cut -d' ' -f2) outer=esp-in-udp/4500 charon_core=$CORE"

# --- traffic
ip netns exec "$NSB" timeout -k 5 "$MAXT" taskset -c 0 iperf3 -s -J -B 203.0.113.129 > "$work/iperf3-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do ip netns exec "$NSB" ss -ltn | grep -q '203.0.113.129:5201' && break; sleep 0.1; done
client() { # NAME ARGS...
  local n=$1; shift
  ip netns exec "$NSA" timeout -k 5 $((SECS + 30)) taskset -c 0 iperf3 -c 203.0.113.129 -B 203.0.113.1 \
    -t "$SECS" -J --connect-timeout 5000 "$@" > "$work/$n.json" 2> "$work/$n.err" || true
}
sa_bytes() { # SITE -> "bytes-out bytes-in" of the CHILD_SA
  swanctl_site "$1" --list-sas --child net 2>/dev/null | python3 -c '
import re, sys
t = sys.stdin.read()
i = re.search(r"in\s+\S+,\s+(\d+) bytes", t); o = re.search(r"out\s+\S+,\s+(\d+) bytes", t)
print((o.group(1) if o else "NA"), (i.group(1) if i else "NA"))'
}

# TCP, with a capture of the outer veth in parallel to prove the packets are ESP
ip netns exec "$NSA" timeout 20 tcpdump -ni out0 -c 20 -l 'udp port 4500 or esp' > "$work/tcpdump.txt" 2>/dev/null &
tdp=$!; pids+=($tdp)
client tcp
wait "$tdp" 2>/dev/null || true
python3 - "$work/tcp.json" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
    print("strongswan tcp gbps=%.3f" % (j["end"]["sum_received"]["bits_per_second"] / 1e9))
except Exception as e:
    print("strongswan tcp error=%s" % (type(e).__name__))
PY

for size in 64 1400; do
  client udp$size -u -b "$(( UDP_PPS * (size - 28) * 8 ))" -l $((size - 28)) --get-server-output
  python3 - "$work/udp$size.json" "$size" <<'PY'
import json, sys
size = int(sys.argv[2])
try:
    j = json.load(open(sys.argv[1]))
    c = j["end"]["sum"]                         # sender's view (packets sent, loss as reported)
    r = j["server_output_json"]["end"]["sum_received"]  # receiver's own count
    rx = r["bytes"] / (size - 28)               # datagrams the server received
    pps = rx / r["seconds"]
    print("strongswan size=%d mpps=%.4f gbps=%.3f loss=%.1f" % (size, pps / 1e6, pps * size * 8 / 1e9, r["lost_percent"]))
    print("strongswan info size=%d sent_mpps=%.4f sender_s=%.2f receiver_s=%.2f" % (size, c["packets"] / c["seconds"] / 1e6, c["seconds"], r["seconds"]))
    if j.get("error"): print("strongswan size=%d warning=%s" % (size, j["error"].replace(" ", "_")))
except Exception as e:
    print("strongswan size=%d error=%s:%s" % (size, type(e).__name__, str(e).replace(" ", "_")[:80]))
PY
done

read -r out_a in_a < <(sa_bytes A)
n_esp=$(grep -c -E 'UDP-encap: ESP|ESP\(spi' "$work/tcpdump.txt" || true)
echo "strongswan verify esp_in_udp_seen=${n_esp}/20 siteA_sa_bytes_out=$out_a siteA_sa_bytes_in=$in_a"
for s in A B; do
  pid=$(cat "$work/$s/run/charon.pid" 2>/dev/null || true)
  [ -n "$pid" ] && echo "strongswan info site=$s charon_cpu_s=$(awk '{printf "%.1f", ($14+$15)/100}' /proc/$pid/stat) affinity=$(taskset -pc "$pid" | awk '{print $NF}')"
done
