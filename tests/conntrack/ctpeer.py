#!/usr/bin/env python3
# ctpeer.py - the hosts' side of tests/VSwitch.Tests/ConntrackNetnsTests.cs, run inside the test's
# network namespaces with `ip netns exec`. Plain sockets only (no third-party modules), every wait
# bounded by a timeout, one result line per connection so the test can compare both ends.
#
#   serve --bind IP --port P [--hold N [--gate FILE]] [--udp]
#       TCP: prints "ready", then per accepted connection reads a header "ID UP DOWN\n", UP bytes
#       (md5 of them), sends DOWN random bytes (md5 of them), closes, and prints
#       "conn ID PEER_IP PEER_PORT MD5_UP MD5_DOWN". With --hold N every connection waits, after its
#       header, until N connections are open at once (all of them concurrent, so the peer ports the
#       server logs belong to live connections); it prints "open N" when they are. With --gate FILE
#       they then wait until FILE exists (the test reads the switch's connection table meanwhile). UDP: echoes each datagram, printing "udp PEER_IP PEER_PORT".
#   conn --dst IP --port P --count K --up BYTES --down BYTES --id PREFIX [--src IP] [--sport-base N] [--rate BYTES_PER_S]
#       Opens K connections at once (from source ports N..N+K-1 when given), one thread each, and
#       prints "conn ID LOCAL_PORT MD5_UP MD5_DOWN" for each; exit 1 if any failed. --rate paces each
#       connection's sending (SO_MAX_PACING_RATE: the kernel's TCP pacing), so a transfer lasts a known time.
#   tcp-probe --dst IP --port P [--timeout S]    prints connected | timeout | refused | error ...
#   udp-probe --dst IP --port P [--timeout S]    sends one datagram; prints reply | timeout | refused
#       (refused: an ICMP port unreachable came back and the kernel matched it to the socket)
import argparse, hashlib, os, socket, struct, sys, threading, time


def family(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def out(line, lock=threading.Lock()):
    with lock:
        print(line, flush=True)


def recv_exact(s, n, md5):
    while n > 0:
        d = s.recv(min(n, 1 << 16))
        if not d:
            raise EOFError("peer closed with %d bytes to go" % n)
        md5.update(d)
        n -= len(d)


def send_random(s, n, md5):
    while n > 0:
        d = os.urandom(min(n, 1 << 16))
        md5.update(d)
        s.sendall(d)
        n -= len(d)


def serve(a):
    if a.udp:
        s = socket.socket(family(a.bind), socket.SOCK_DGRAM)
        s.bind((a.bind, a.port))
        out("ready")
        while True:
            d, peer = s.recvfrom(2048)
            out("udp %s %d" % (peer[0], peer[1]))
            s.sendto(d, peer)
    s = socket.socket(family(a.bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.bind, a.port))
    s.listen(1024)
    barrier = threading.Barrier(a.hold) if a.hold > 1 else None
    out("ready")

    def handle(c, peer):
        try:
            c.settimeout(60)
            f = b""
            while not f.endswith(b"\n"):
                d = c.recv(1)
                if not d:
                    raise EOFError("no header")
                f += d
            cid, up, down = f.decode().split()
            if barrier:
                if barrier.wait(timeout=60) == 0:
                    out("open %d" % a.hold)
                t0 = time.monotonic()
                while a.gate and not os.path.exists(a.gate):
                    if time.monotonic() - t0 > 60:
                        raise TimeoutError("no gate file")
                    time.sleep(0.05)
            mu, md = hashlib.md5(), hashlib.md5()
            recv_exact(c, int(up), mu)
            send_random(c, int(down), md)
            c.shutdown(socket.SHUT_WR)
            c.recv(1)  # the client closes after reading everything
            out("conn %s %s %d %s %s" % (cid, peer[0], peer[1], mu.hexdigest(), md.hexdigest()))
        except Exception as e:  # noqa: BLE001 - report, never hang the server
            out("error %s %d %r" % (peer[0], peer[1], e))
        finally:
            c.close()

    while True:
        c, peer = s.accept()
        threading.Thread(target=handle, args=(c, peer), daemon=True).start()


def conn(a):
    socks, failed = [], []
    for i in range(a.count):
        s = socket.socket(family(a.dst), socket.SOCK_STREAM)
        s.settimeout(a.timeout)
        if a.rate:
            s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_MAX_PACING_RATE", 47), a.rate)
        if a.src:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a.src, a.sport_base + i if a.sport_base else 0))
        s.connect((a.dst, a.port))
        socks.append(s)

    def run(i, s):
        try:
            cid = "%s-%d" % (a.id, i)
            s.sendall(("%s %d %d\n" % (cid, a.up, a.down)).encode())
            mu, md = hashlib.md5(), hashlib.md5()
            send_random(s, a.up, mu)
            buf = 0
            while True:
                d = s.recv(1 << 16)
                if not d:
                    break
                md.update(d)
                buf += len(d)
            if buf != a.down:
                raise EOFError("got %d of %d bytes" % (buf, a.down))
            out("conn %s %d %s %s" % (cid, s.getsockname()[1], mu.hexdigest(), md.hexdigest()))
        except Exception as e:  # noqa: BLE001
            failed.append(i)
            out("error %d %r" % (i, e))
        finally:
            s.close()

    ts = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(socks)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    sys.exit(1 if failed else 0)


def tcp_probe(a):
    s = socket.socket(family(a.dst), socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    try:
        s.connect((a.dst, a.port))
        print("connected")
    except socket.timeout:
        print("timeout")
    except ConnectionRefusedError:
        print("refused")
    except OSError as e:
        print("error %r" % e)


def udp_probe(a):
    s = socket.socket(family(a.dst), socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    s.connect((a.dst, a.port))
    try:
        s.send(b"probe")
        s.recv(2048)
        print("reply")
    except socket.timeout:
        print("timeout")
    except ConnectionRefusedError:
        print("refused")


def csum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def synflood(a):
    """Sends COUNT spoofed TCP SYNs (sources 198.51.100.16-254 x ports 1024-65535) to DST:PORT as raw
    frames on eth0 (to the router MAC), with valid checksums (the next source port's TCP checksum is
    the last one's minus one, in ones' complement); with --until FILE it goes on, round after round of
    the same COUNT, until FILE exists. Prints "sent N" at the end."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(("eth0", 0))
    mac = lambda m: bytes(int(x, 16) for x in m.split(":"))
    dst = socket.inet_aton(a.dst)
    eth = mac(a.router) + mac(a.mac) + b"\x08\x00"
    sent = 0
    frame = None
    n = 0
    while n == 0 or (a.until and not os.path.exists(a.until)):
        sent += flood_round(s, a, eth, dst)
        n += 1
    out("sent %d" % sent)


def flood_round(s, a, eth, dst):
    sent = 0
    frame = None
    for i in range(a.count):
        sport = 1024 + i % 64512
        if i % 64512 == 0:
            src = bytes((198, 51, 100, 16 + (i // 64512) % 239))
            ip = bytearray(b"\x45\x00\x00\x28\x00\x01\x40\x00\x40\x06\x00\x00" + src + dst)
            ip[10:12] = struct.pack("!H", 0xFFFF - csum16(bytes(ip)))
            tcp = bytearray(struct.pack("!HHIIBBHHH", sport, a.port, 1, 0, 0x50, 0x02, 8192, 0, 0))
            pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
            sum0 = csum16(pseudo + bytes(tcp))  # the sum (not complemented) for this first port
            frame = bytearray(eth + ip + tcp)
        else:
            frame[34:36] = struct.pack("!H", sport)
        # the sum grows by one per port step (ones' complement arithmetic)
        k = sum0 + (i % 64512)
        while k >> 16:
            k = (k & 0xFFFF) + (k >> 16)
        frame[50:52] = struct.pack("!H", 0xFFFF - k)
        try:
            s.send(frame)
            sent += 1
        except OSError:  # the veth's queue is full: the flood is lossy by nature
            time.sleep(0.0001)
    return sent


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--bind", required=True)
    sv.add_argument("--port", type=int, required=True)
    sv.add_argument("--hold", type=int, default=0)
    sv.add_argument("--gate")
    sv.add_argument("--udp", action="store_true")
    c = sub.add_parser("conn")
    for k in ("--dst", "--id"):
        c.add_argument(k, required=True)
    for k in ("--port", "--count", "--up", "--down"):
        c.add_argument(k, type=int, required=True)
    c.add_argument("--src")
    c.add_argument("--sport-base", type=int, default=0)
    c.add_argument("--rate", type=int, default=0)
    c.add_argument("--timeout", type=float, default=60)
    for name in ("tcp-probe", "udp-probe"):
        q = sub.add_parser(name)
        q.add_argument("--dst", required=True)
        q.add_argument("--port", type=int, required=True)
        q.add_argument("--timeout", type=float, default=3)
    f = sub.add_parser("synflood")
    for k in ("--dst", "--mac", "--router"):
        f.add_argument(k, required=True)
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--until")
    a = p.parse_args()
    {"serve": serve, "conn": conn, "tcp-probe": tcp_probe, "udp-probe": udp_probe, "synflood": synflood}[a.cmd](a)


if __name__ == "__main__":
    main()
