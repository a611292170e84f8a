#!/usr/bin/env python3
"""Rule files (ovs-ofctl add-flows syntax) and matching traffic for bench/pipeline.sh and bench/flowload.sh.

usage:
  pipegen.py rules OUT --shape exact|prefix|conj|conjx --rules R [--traffic flowgen|pcap]
  pipegen.py pcap OUT --flows F [--min-packets 1024] [--size 64] [--base 10.253.0.0] [--stride 1] [--layout plain|conj]
  pipegen.py flowload OUT --rules N [--probe-port P]

Traffic (the same address plan for both sources), flow i = 0..F-1:
  flowgen: what dpdk-testpmd 22.11 --forward-mode=flowgen --flowgen-flows=F sends on EVERY port
           (app/test-pmd/flowgen.c, confirmed on a net_pcap tx capture): Ethernet
           00:01:02:03:04:00 -> 00:01:02:03:04:01, IPv4 UDP 10.254.0.0 -> 10.253.0.0 + i (the
           DESTINATION address varies, as a 32-bit add: flow 256 is 10.253.1.0), UDP 1000 -> 1001,
           TTL 64, 60-byte frames for --txpkts=64.
  pcap:    the same MACs and addresses, and the UDP ports vary too: sport 1000 + i % 50000,
           dport 1001 + i % 16 (dport(i) below).

Rule sets, R rules per direction (in_port=1 -> output:2 and in_port=2 -> output:1, so 2R + 2 rules
in the file), flow i < R hits rule i (its own, highest-priority match), flows >= R hit the
priority-1 catch-all of their input port (exact shape) or a shorter prefix (prefix shape):
  exact:  priority=100, ip,nw_dst=<flow i>            (one mask: in_port + dl_type + nw_dst/32)
  prefix: longest-prefix-match layout over aligned blocks, priority 100 + prefix length:
            flow i with 16 | tz(i) (i % 65536 == 0) -> ip,nw_dst=<i>/16
            8 <= tz(i) < 16                         -> ip,nw_dst=<i>/24
            4 <= tz(i) < 8                          -> ip,nw_dst=<i>/28
            tz(i) < 4                               -> udp,nw_dst=<i>,tp_dst=dport(i)  (/32 + port)
          (tz = trailing zero bits). Aligned blocks are nested or disjoint, so flow i's own rule is
          its longest match. R=10000: 1 x /16, 39 x /24, 585 x /28, 9375 x /32+tp_dst.
Conjunctive ACL (pcap traffic with --layout conj: flow i comes from source 10.254.0.0 + i % 100 to
UDP port 2000 + (i // 100) % 100, destination 10.253.0.0 + i, source port 1000; so 10000 flows are
the whole 100 x 100 cross product):
  conj:   R x R ACL as a conjunctive match: R rules ip,nw_src=10.254.0.0+a -> conjunction(1,1/2),
          R rules udp,tp_dst=2000+p -> conjunction(1,2/2), conj_id=1 -> output:2 (2R + 1 rules),
          and priority=1 drop (a packet outside the ACL is not forwarded, so a broken ACL shows).
  conjx:  the same ACL expanded, R*R rules udp,nw_src=..,tp_dst=.. -> output:2, and the drop.
flowload: N distinct rules table=0,priority=100,ip,nw_dst=10.0.0.0+i,actions=output:2; with
          --probe-port P the last rule (i = N-1) outputs to port P instead, so a packet leaving P
          shows that rule in use (bench/flowload.sh).
The files have no comments or blank lines, so any ovs-ofctl-syntax parser takes them unchanged.
"""
import argparse
import struct
import sys

from pcapgen import csum, write_pcap  # same folder

FLOW_BASE = (10 << 24) | (253 << 16)   # 10.253.0.0: flowgen cfg_ip_dst
SRC_IP = (10 << 24) | (254 << 16)      # 10.254.0.0: flowgen cfg_ip_src
SRC_MAC = bytes([0x00, 0x01, 0x02, 0x03, 0x04, 0x00])
DST_MAC = bytes([0x00, 0x01, 0x02, 0x03, 0x04, 0x01])


def ip(a: int) -> str:
    return ".".join(str((a >> s) & 0xFF) for s in (24, 16, 8, 0))


def parse_ip(s: str) -> int:
    p = [int(x) for x in s.split(".")]
    return (p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]


def dport(i: int, traffic: str) -> int:
    return 1001 if traffic == "flowgen" else 1001 + i % 16


def sport(i: int, traffic: str) -> int:
    return 1000 if traffic == "flowgen" else 1000 + i % 50000


def tz(i: int) -> int:
    return 32 if i == 0 else (i & -i).bit_length() - 1


def match(shape: str, i: int, traffic: str) -> tuple[int, str]:
    a = FLOW_BASE + i
    if shape == "exact":
        return 100, f"ip,nw_dst={ip(a)}"
    t = tz(i)
    if t >= 16:
        return 116, f"ip,nw_dst={ip(a)}/16"
    if t >= 8:
        return 124, f"ip,nw_dst={ip(a)}/24"
    if t >= 4:
        return 128, f"ip,nw_dst={ip(a)}/28"
    return 132, f"udp,nw_dst={ip(a)},tp_dst={dport(i, traffic)}"


CONJ_PORT = 2000


def conj_rules(a) -> None:
    with open(a.out, "w") as f:
        if a.shape == "conj":
            for k in range(a.rules):
                f.write(f"table=0,priority=100,ip,nw_src={ip(SRC_IP + k)},actions=conjunction(1,1/2)\n")
            for k in range(a.rules):
                f.write(f"table=0,priority=100,udp,tp_dst={CONJ_PORT + k},actions=conjunction(1,2/2)\n")
            f.write("table=0,priority=100,conj_id=1,actions=output:2\n")
        else:
            for s in range(a.rules):
                for k in range(a.rules):
                    f.write(f"table=0,priority=100,udp,nw_src={ip(SRC_IP + s)},tp_dst={CONJ_PORT + k},actions=output:2\n")
        f.write("table=0,priority=1,actions=drop\n")


def rules(a) -> None:
    if a.shape in ("conj", "conjx"):
        conj_rules(a)
        return
    with open(a.out, "w") as f:
        for inp, outp in ((1, 2), (2, 1)):
            for i in range(a.rules):
                prio, m = match(a.shape, i, a.traffic)
                f.write(f"table=0,priority={prio},in_port={inp},{m},actions=output:{outp}\n")
            f.write(f"table=0,priority=1,in_port={inp},actions=output:{outp}\n")


def flowload(a) -> None:
    base = parse_ip("10.0.0.0")
    with open(a.out, "w") as f:
        for i in range(a.rules):
            out = a.probe_port if a.probe_port and i == a.rules - 1 else 2
            f.write(f"table=0,priority=100,ip,nw_dst={ip(base + i)},actions=output:{out}\n")


def packet(i: int, size: int, base: int, stride: int, layout: str = "plain") -> bytes:
    payload = max(0, size - 4 - 14 - 20 - 8)  # size includes the 4-byte FCS, like --txpkts
    if layout == "conj":
        src, sp, dp = SRC_IP + i % 100, 1000, CONJ_PORT + (i // 100) % 100
    else:
        src, sp, dp = SRC_IP, sport(i, "pcap"), dport(i, "pcap")
    udp = struct.pack("!HHHH", sp, dp, 8 + payload, 0) + bytes(payload)
    iph = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, base + i * stride)
    iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
    return DST_MAC + SRC_MAC + b"\x08\x00" + iph + udp


def pcap(a) -> None:
    # Round-robin over the flows, at least --min-packets packets (whole rounds): net_pcap's
    # infinite_rx replays a ring of these, and a ring shorter than a burst starves the reader.
    rounds = max(1, -(-a.min_packets // a.flows))
    base = parse_ip(a.base)
    pkts = [packet(i, a.size, base, a.stride, a.layout) for i in range(a.flows)]
    n = write_pcap(a.out, (p for _ in range(rounds) for p in pkts))
    print(n)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rules")
    r.add_argument("out")
    r.add_argument("--shape", choices=["exact", "prefix", "conj", "conjx"], required=True)
    r.add_argument("--rules", type=int, required=True)
    r.add_argument("--traffic", choices=["flowgen", "pcap"], default="flowgen")
    p = sub.add_parser("pcap")
    p.add_argument("out")
    p.add_argument("--flows", type=int, required=True)
    p.add_argument("--min-packets", type=int, default=1024)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--base", default=ip(FLOW_BASE))
    p.add_argument("--stride", type=int, default=1)
    p.add_argument("--layout", choices=["plain", "conj"], default="plain")
    fl = sub.add_parser("flowload")
    fl.add_argument("out")
    fl.add_argument("--rules", type=int, required=True)
    fl.add_argument("--probe-port", type=int, default=0)
    a = ap.parse_args()
    if a.cmd in ("rules", "flowload") and not 1 <= a.rules <= 1 << 24:
        sys.exit("pipegen.py: --rules out of range")
    if a.cmd == "rules" and a.shape in ("conj", "conjx") and a.rules > 100:
        sys.exit("pipegen.py: the conjunctive ACL has at most 100 x 100 (the pcap layout conj)")
    if a.cmd == "rules" and a.rules > 65536 and a.shape == "prefix":
        sys.exit("pipegen.py: the prefix shape stays inside 10.253.0.0/16 (R <= 65536)")
    {"rules": rules, "pcap": pcap, "flowload": flowload}[a.cmd](a)


if __name__ == "__main__":
    main()
