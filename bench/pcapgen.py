#!/usr/bin/env python3
"""Write a pcap of synthetic Ethernet/IPv4/UDP (or TCP) packets for benchmarks and demos.

usage: pcapgen.py OUT.pcap [--count N] [--size BYTES] [--flows F] [--first S] [--mixed]
Addresses come from the documentation ranges (198.51.100.0/24 -> 203.0.113.0/24).
--mixed alternates UDP, TCP, VLAN-tagged and ARP frames of several sizes.
--first numbers the flows from S (flows S..S+F-1), so two files can hold disjoint sets of flows.
"""
import argparse
import struct


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def write_pcap(path: str, frames) -> int:
    """Writes a microsecond Ethernet pcap of the frames; returns how many."""
    n = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for pkt in frames:
            f.write(struct.pack("<IIII", n // 1000000, n % 1000000, len(pkt), len(pkt)))
            f.write(pkt)
            n += 1
    return n


def ipv4_udp(flow: int, size: int, proto: int = 17, vlan: int | None = None) -> bytes:
    dst_mac = bytes([0x02, 0, 0, 0, 0, 0x01])
    src_mac = bytes([0x02, 0, 0, 0, (flow >> 8) & 0xFF, flow & 0xFF])
    eth = dst_mac + src_mac
    if vlan is not None:
        eth += struct.pack("!HH", 0x8100, vlan)
    eth += struct.pack("!H", 0x0800)
    l4_len = 8 if proto == 17 else 20
    payload_len = max(0, size - len(eth) - 20 - l4_len)
    src = bytes([198, 51, 100, 1 + (flow % 250)])
    dst = bytes([203, 0, 113, 1 + ((flow // 250) % 250)])
    sport, dport = 1024 + (flow % 60000), 80 + (flow % 7)
    payload = bytes((i + flow) & 0xFF for i in range(payload_len))
    if proto == 17:
        l4 = struct.pack("!HHHH", sport, dport, 8 + payload_len, 0) + payload
    else:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, flow, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    pseudo = src + dst + struct.pack("!BBH", 0, proto, len(l4))
    c = csum(pseudo + l4) or 0xFFFF
    off = 6 if proto == 17 else 16
    l4 = l4[:off] + struct.pack("!H", c) + l4[off + 2:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), flow & 0xFFFF, 0, 64, proto, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return eth + ip + l4


def arp(flow: int) -> bytes:
    src_mac = bytes([0x02, 0, 0, 0, 0, flow & 0xFF])
    return (b"\xff" * 6 + src_mac + struct.pack("!H", 0x0806) +
            struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src_mac + bytes([198, 51, 100, 1]) +
            b"\0" * 6 + bytes([198, 51, 100, 2]) + b"\0" * 18)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=1024)
    ap.add_argument("--size", type=int, default=64, help="frame size without FCS + 4 (64 -> 60 B on the wire)")
    ap.add_argument("--flows", type=int, default=1)
    ap.add_argument("--first", type=int, default=0, help="number of the first flow")
    ap.add_argument("--mixed", action="store_true")
    a = ap.parse_args()

    def frames():
        for i in range(a.count):
            flow = a.first + i % a.flows
            if a.mixed:
                kind = i % 4
                size = [64, 128, 512, 1514][(i // 4) % 4]
                yield [ipv4_udp(flow, size - 4), ipv4_udp(flow, size - 4, proto=6),
                       ipv4_udp(flow, size - 4, vlan=100 + flow % 4), arp(flow)][kind]
            else:
                yield ipv4_udp(flow, a.size - 4)

    write_pcap(a.out, frames())


if __name__ == "__main__":
    main()
