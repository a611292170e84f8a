#!/bin/bash
# Self-test of tests/ipsec/espref.py (run: bash tests/ipsec/selftest.sh).
#
# 1. Matrix: alg x outer v4/v6 x ESN off/on x NAT-T off/on (NAT-T only with an
#    IPv4 outer header) = 24 SA runs.  Each run carries both inner families
#    (Scapy-built ping, 1400-byte UDP and TCP segment, IPv4 and IPv6
#    interleaved), so every alg x outer x inner x ESN x NAT-T combination is
#    covered with 3 packets, plus family switching within an SA:
#    espref encrypt -> espref decrypt (inner frames must come back byte for
#    byte) -> espref tshark-check --expect-inner (tshark, an independent ESP
#    implementation, must decrypt Scapy's output to the same inner bytes and
#    report ICV good when ESN is off).  ESN runs start at 2^32-2 so the low 32
#    bits wrap to 0 inside the run; NAT-T uses ports 4500 or 4501 (decode-as).
# 2. Negative tests: each must make espref fail with the expected message.
# 3. ESN ICVs recomputed independently (stdlib hmac / raw AES-GCM with the
#    RFC 4303/4106 AAD built by hand), since tshark 4.0 cannot check ESN.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
E="$HERE/espref.py"
PY=/usr/bin/python3
T=$(mktemp -d /tmp/espref-selftest.XXXXXX)
MATRIX_PID=
trap '[ -n "$MATRIX_PID" ] && kill "$MATRIX_PID" 2>/dev/null; rm -rf "$T"' EXIT
START=$SECONDS
export E PY T

# ---------------------------------------------------------------- inner frames
"$PY" - "$T" <<'EOF' || { echo "selftest: cannot build inner frames"; exit 1; }
import sys, logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, IPv6, ICMP, UDP, TCP, Raw, ICMPv6EchoRequest, wrpcap, \
    IPOption_RR, IPv6ExtHdrHopByHop, IPv6ExtHdrFragment
d = sys.argv[1]
e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
blob = (bytes(range(256)) * 6)
v4 = [e/IP(src="10.0.0.1", dst="10.0.1.1", id=7)/ICMP(id=1, seq=1)/Raw(b"p" * 56),
      e/IP(src="10.0.0.1", dst="10.0.1.1", flags="DF")/UDP(sport=1234, dport=5678)/Raw(blob[:1400 - 28]),
      e/IP(src="10.0.0.1", dst="10.0.1.1")/TCP(sport=40000, dport=80, flags="PA", seq=1000, ack=5)/Raw(b"GET / HTTP/1.0\r\n\r\n")]
v6 = [e/IPv6(src="2001:db8:1::1", dst="2001:db8:2::1")/ICMPv6EchoRequest(id=1, seq=1, data=b"p" * 56),
      e/IPv6(src="2001:db8:1::1", dst="2001:db8:2::1", fl=12345)/UDP(sport=1234, dport=5678)/Raw(blob[:1400 - 48]),
      e/IPv6(src="2001:db8:1::1", dst="2001:db8:2::1")/TCP(sport=40000, dport=80, flags="PA")/Raw(b"GET / HTTP/1.0\r\n\r\n")]
assert len(v4[1][IP]) == 1400 and len(v6[1][IPv6]) == 1400
wrpcap(d + "/in4.pcap", [Ether(bytes(p)) for p in v4])
wrpcap(d + "/in6.pcap", [Ether(bytes(p)) for p in v6])
# matrix input: IPv4 and IPv6 inner packets interleaved (ping4, ping6, udp4, ...)
wrpcap(d + "/in46.pcap", [Ether(bytes(p)) for pair in zip(v4, v6) for p in pair])
# unusual inner packets: short frame with Ethernet padding, IPv4 options and a
# payload the DNS dissector calls malformed, IPv6 extension headers, IPv4 fragment
odd = [bytes(e/IP(src="10.0.0.1", dst="10.0.1.1")/TCP(flags="S")) + b"\0" * 6,
       bytes(e/IP(src="10.0.0.1", dst="10.0.1.1", options=[IPOption_RR()])/UDP(sport=53, dport=53)/Raw(b"a")),
       bytes(e/IPv6(src="2001:db8::1", dst="2001:db8::2")/IPv6ExtHdrHopByHop()/IPv6ExtHdrFragment(m=1, id=5)/UDP()/Raw(b"b" * 100)),
       bytes(e/IP(src="10.0.0.1", dst="10.0.1.1", flags="MF")/Raw(b"c" * 64))]
wrpcap(d + "/odd.pcap", [Ether(f) for f in odd])
EOF

key_for() {  # alg -> "key" and "auth_key" JSON members
    case $1 in
    aes-gcm-128) echo '"key": "feffe9928665731c6d6a8f9467308308cafebabe"' ;;
    aes-gcm-256) echo '"key": "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308deadbeef"' ;;
    aes-cbc-128-sha256) echo '"key": "00112233445566778899aabbccddeeff", "auth_key": "'$(printf '%064x' 0x5a)'"' ;;
    aes-cbc-256-sha256) echo '"key": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "auth_key": "'$(printf 'a5%.0s' $(seq 32))'"' ;;
    esac
}
export -f key_for

write_sa() {  # file alg outer esn natt [seq] [spi]
    local f=$1 alg=$2 outer=$3 esn=$4 natt=$5 seq=${6:-} spi=${7:-4096} src dst ports
    if [ "$outer" = 4 ]; then src=198.51.100.1; dst=198.51.100.2; else src=2001:db8:ffff::1; dst=2001:db8:ffff::2; fi
    [ -n "$seq" ] || { [ "$esn" = true ] && seq=4294967294 || seq=7; }
    case $alg in aes-gcm-256|aes-cbc-256-sha256) ports='"natt_sport": 4501, "natt_dport": 4501' ;;
                 *) ports='"natt_sport": 4500, "natt_dport": 4500' ;; esac
    cat >"$f" <<EOF
{"spi": $spi, "alg": "$alg", $(key_for "$alg"), "esn": $esn, "seq": $seq,
 "outer_src": "$src", "outer_dst": "$dst", "natt": $natt, $ports, "ttl": 61,
 "eth_src": "02:00:00:00:00:01", "eth_dst": "02:00:00:00:00:02"}
EOF
}
export -f write_sa

run_combo() {  # alg outer esn natt  (inner: IPv4 and IPv6 in the same run)
    local alg=$1 outer=$2 inner=46 esn=$3 natt=$4
    local n="$alg outer=v$outer inner=v4+v6 esn=$esn natt=$natt" d out
    d="$T/m/$alg-o$outer-esn$esn-natt$natt"
    mkdir -p "$d"
    write_sa "$d/sa.json" "$alg" "$outer" "$esn" "$natt"
    if ! out=$("$E" encrypt --sa "$d/sa.json" --in "$T/in$inner.pcap" --out "$d/esp.pcap" 2>&1); then
        echo "FAIL $n encrypt: $out"; return; fi
    if ! out=$("$E" decrypt --sa "$d/sa.json" --in "$d/esp.pcap" --out "$d/dec.pcap" --expect-count 6 2>&1) \
        || [ "$out" != "ok 6 packets" ]; then echo "FAIL $n decrypt: $out"; return; fi
    if ! out=$("$E" tshark-check --sa "$d/sa.json" --in "$d/esp.pcap" --expect-count 6 \
               --expect-inner "$T/in$inner.pcap" 2>/dev/null); then
        echo "FAIL $n tshark-check: $("$E" tshark-check --sa "$d/sa.json" --in "$d/esp.pcap" 2>&1)"; return; fi
    if [ "$esn" = false ] && [ "$out" != "ok 6 packets icv good" ]; then echo "FAIL $n tshark: $out"; return; fi
    echo "$T/in$inner.pcap $d/dec.pcap" >>"$T/m/compare.lst"   # byte compare below
    echo "PASS $n ($out)"
}
export -f run_combo

# ---------------------------------------------------------------- 1. matrix
mkdir -p "$T/m"; : >"$T/m/compare.lst"
for alg in aes-gcm-128 aes-gcm-256 aes-cbc-128-sha256 aes-cbc-256-sha256; do
  for outer in 4 6; do for esn in false true; do for natt in false true; do
    [ "$outer" = 6 ] && [ "$natt" = true ] && continue
    echo "$alg $outer $esn $natt"
  done; done; done
done | xargs -P 3 -L 1 bash -c 'run_combo "$@"' _ >"$T/matrix.log" &
MATRIX_PID=$!   # runs concurrently with the negative tests; waited for below

# ---------------------------------------------------------------- 2. negative tests
NEG_PASS=0; NEG_FAIL=0
expect_fail() {  # description, grep pattern, command...
    local desc=$1 pat=$2 out rc; shift 2
    out=$("$@" 2>&1); rc=$?
    if [ $rc -ne 0 ] && grep -Eq -- "$pat" <<<"$out"; then
        NEG_PASS=$((NEG_PASS+1)); echo "PASS (fails as expected) $desc: $(tail -1 <<<"$out")"
    else
        NEG_FAIL=$((NEG_FAIL+1)); echo "FAIL $desc: rc=$rc, wanted /$pat/, got: $out"
    fi
}
expect_ok() {  # description, grep pattern, command...
    local desc=$1 pat=$2 out rc; shift 2
    out=$("$@" 2>&1); rc=$?
    if [ $rc -eq 0 ] && grep -Eq -- "$pat" <<<"$out"; then
        NEG_PASS=$((NEG_PASS+1)); echo "PASS $desc: $(tail -1 <<<"$out")"
    else
        NEG_FAIL=$((NEG_FAIL+1)); echo "FAIL $desc: rc=$rc, wanted /$pat/, got: $out"
    fi
}

N="$T/n"; mkdir -p "$N"
negative_tests() {
{
# mutated SAs and captures
for alg in aes-gcm-128 aes-cbc-128-sha256; do
    write_sa "$N/$alg.json" "$alg" 4 false false 1
    "$E" encrypt --sa "$N/$alg.json" --in "$T/in4.pcap" --out "$N/$alg.pcap" 2>/dev/null
    write_sa "$N/$alg-spi.json" "$alg" 4 false false 1 4097
    sed 's/"key": "\(..\)/"key": "77/' "$N/$alg.json" >"$N/$alg-wkey.json"
    sed 's/"auth_key": "\(..\)/"auth_key": "77/' "$N/$alg.json" >"$N/$alg-wauth.json"
done
"$PY" - "$N" <<'EOF'
import sys
from scapy.utils import RawPcapReader, PcapWriter
from scapy.layers.l2 import Ether
d = sys.argv[1]
def rd(p): return [bytes(b) for b, _ in RawPcapReader(p)]
def wr(p, frames):
    w = PcapWriter(p, linktype=1)
    for f in frames: w.write(Ether(f))
    w.close()
for alg in ("aes-gcm-128", "aes-cbc-128-sha256"):
    f = rd("%s/%s.pcap" % (d, alg))
    g = list(f); b = bytearray(g[1]); b[14 + 20 + 8 + 20] ^= 0x01; g[1] = bytes(b)  # ciphertext byte
    wr("%s/%s-flip.pcap" % (d, alg), g)
    wr("%s/%s-gap.pcap" % (d, alg), [f[0], f[2]])                                 # seq 1, 3
    g = list(f); b = bytearray(g[0]); b[14 + 10] ^= 0xff; g[0] = bytes(b)          # outer IPv4 checksum
    wr("%s/%s-csum.pcap" % (d, alg), g)
    wr("%s/%s-trailer.pcap" % (d, alg), [x + b"\xde\xad\xbe\xef" for x in f])     # Ethernet trailer: fine
EOF
} 2>"$T/neg-setup.err"

for alg in aes-gcm-128 aes-cbc-128-sha256; do
    expect_ok   "$alg unmodified" '^ok 3 packets$' "$E" decrypt --sa "$N/$alg.json" --in "$N/$alg.pcap" --out "$N/o.pcap"
    expect_fail "$alg flipped ciphertext byte" 'packet 2: ICV check failed' "$E" decrypt --sa "$N/$alg.json" --in "$N/$alg-flip.pcap" --out "$N/o.pcap"
    expect_fail "$alg sequence gap" 'packet 2: sequence number 3 on the wire, expected 2' "$E" decrypt --sa "$N/$alg.json" --in "$N/$alg-gap.pcap" --out "$N/o.pcap"
    expect_fail "$alg wrong SPI" 'packet 1: SPI 0x00001000 .*expected 0x00001001' "$E" decrypt --sa "$N/$alg-spi.json" --in "$N/$alg.pcap" --out "$N/o.pcap"
    expect_fail "$alg bad outer IPv4 checksum" 'packet 1: outer IPv4 header checksum' "$E" decrypt --sa "$N/$alg.json" --in "$N/$alg-csum.pcap" --out "$N/o.pcap"
    expect_fail "$alg wrong first seq (--seq 2)" 'packet 1: sequence number 1 on the wire, expected 2' "$E" decrypt --sa "$N/$alg.json" --seq 2 --in "$N/$alg.pcap" --out "$N/o.pcap"
    expect_fail "$alg --expect-count 4" 'holds 3 frames, expected 4' "$E" decrypt --sa "$N/$alg.json" --expect-count 4 --in "$N/$alg.pcap" --out "$N/o.pcap"
    expect_ok   "$alg Ethernet trailer after outer IP ignored" '^ok 3 packets$' "$E" decrypt --sa "$N/$alg.json" --in "$N/$alg-trailer.pcap" --out "$N/o.pcap"
    expect_fail "$alg tshark-check flipped byte" 'packet 2 .*ICV bad' "$E" tshark-check --sa "$N/$alg.json" --in "$N/$alg-flip.pcap"
done
expect_fail "aes-gcm-128 wrong key" 'packet 1: ICV check failed' "$E" decrypt --sa "$N/aes-gcm-128-wkey.json" --in "$N/aes-gcm-128.pcap" --out "$N/o.pcap"
expect_fail "aes-gcm-128 tshark-check wrong key" 'packet 1 .*ICV bad' "$E" tshark-check --sa "$N/aes-gcm-128-wkey.json" --in "$N/aes-gcm-128.pcap"
expect_fail "aes-cbc wrong HMAC key" 'packet 1: ICV check failed' "$E" decrypt --sa "$N/aes-cbc-128-sha256-wauth.json" --in "$N/aes-cbc-128-sha256.pcap" --out "$N/o.pcap"
expect_fail "aes-cbc tshark-check wrong HMAC key" 'packet 1 .*ICV bad' "$E" tshark-check --sa "$N/aes-cbc-128-sha256-wauth.json" --in "$N/aes-cbc-128-sha256.pcap"
# CBC with a wrong *encryption* key passes the HMAC but decrypts to garbage
expect_fail "aes-cbc wrong AES key (HMAC ok, garbage plaintext)" 'packet 1: (padding|pad length|next header)' "$E" decrypt --sa "$N/aes-cbc-128-sha256-wkey.json" --in "$N/aes-cbc-128-sha256.pcap" --out "$N/o.pcap"

# outer address / NAT-T / family mismatches
sed 's/198.51.100.2/198.51.100.3/' "$N/aes-gcm-128.json" >"$N/dst.json"
expect_fail "wrong outer destination" 'packet 1: outer addresses 198.51.100.1 -> 198.51.100.2, expected 198.51.100.1 -> 198.51.100.3' "$E" decrypt --sa "$N/dst.json" --in "$N/aes-gcm-128.pcap" --out "$N/o.pcap"
write_sa "$N/natt.json" aes-gcm-128 4 false true 1
sed 's/"natt": true/"natt": false/' "$N/natt.json" >"$N/nonatt.json"
sed 's/"natt_dport": 4500/"natt_dport": 4999/' "$N/natt.json" >"$N/natt-port.json"
"$E" encrypt --sa "$N/natt.json" --in "$T/in4.pcap" --out "$N/natt.pcap" 2>/dev/null
expect_fail "NAT-T capture, SA without NAT-T" 'packet 1: outer next protocol 17, expected 50' "$E" decrypt --sa "$N/nonatt.json" --in "$N/natt.pcap" --out "$N/o.pcap"
expect_fail "NAT-T wrong UDP port" 'packet 1: NAT-T UDP ports 4500 -> 4500, expected 4500 -> 4999' "$E" decrypt --sa "$N/natt-port.json" --in "$N/natt.pcap" --out "$N/o.pcap"
write_sa "$N/o6.json" aes-gcm-128 6 false false 1
expect_fail "IPv4 capture, IPv6 SA" 'packet 1: ethertype 0x0800, expected IPv6' "$E" decrypt --sa "$N/o6.json" --in "$N/aes-gcm-128.pcap" --out "$N/o.pcap"
"$PY" -c 'import sys; from scapy.utils import PcapWriter; w = PcapWriter(sys.argv[1], linktype=1); w.write_header(None); w.close()' "$N/empty.pcap"
expect_fail "empty capture" 'holds no frames' "$E" decrypt --sa "$N/o6.json" --in "$N/empty.pcap" --out "$N/o.pcap"
expect_ok   "empty capture with --expect-count 0" '^ok 0 packets$' "$E" decrypt --sa "$N/o6.json" --expect-count 0 --in "$N/empty.pcap" --out "$N/o.pcap"

# crafted plaintexts: bad padding bytes, wrong next header, extra bytes before the padding
"$PY" -B - "$HERE" "$N" "$T/in4.pcap" 2>>"$T/neg-setup.err" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import espref
from scapy.compat import raw
from scapy.layers import ipsec
from scapy.utils import PcapWriter, RawPcapReader
from scapy.layers.l2 import Ether
d, inp = sys.argv[2], sys.argv[3]
sa = espref.load_sa(d + "/aes-gcm-128.json")
inner = [espref.inner_ip_from_frame(bytes(f), "x") for f, _ in RawPcapReader(inp)]
orig_pad = ipsec.CryptAlgo.pad
def make(name, pad):
    ipsec.CryptAlgo.pad = pad
    ssa = espref.scapy_sa(sa)
    w = PcapWriter("%s/craft-%s.pcap" % (d, name), linktype=1)
    for i, p in enumerate(inner):
        w.write(Ether(espref.encrypt_one(sa, ssa, p, 1 + i)))
    w.close()
    ipsec.CryptAlgo.pad = orig_pad
def zero_pad(self, esp):
    esp = orig_pad(self, esp); esp.padding = b"\0" * esp.padlen; return esp
def wrong_nh(self, esp):
    esp = orig_pad(self, esp); esp.nh = 41; return esp
def tfc(self, esp):
    esp.data = raw(esp.data) + b"\0\0\0\0"; return orig_pad(self, esp)
make("zeropad", zero_pad); make("nh", wrong_nh); make("tfc", tfc)
EOF
expect_fail "padding bytes not 1,2,3.." 'packet 1: padding bytes are 0000 \(pad length 2\), RFC 4303 2.4 requires 01 02' "$E" decrypt --sa "$N/aes-gcm-128.json" --in "$N/craft-zeropad.pcap" --out "$N/o.pcap"
expect_fail "next header 41 for an IPv4 inner packet" 'packet 1: next header 41 but inner packet is IP version 4' "$E" decrypt --sa "$N/aes-gcm-128.json" --in "$N/craft-nh.pcap" --out "$N/o.pcap"
expect_fail "inner total length != decrypted length" 'packet 1: inner IPv4 total length 84 but 88 bytes decrypted' "$E" decrypt --sa "$N/aes-gcm-128.json" --in "$N/craft-tfc.pcap" --out "$N/o.pcap"

# ESN: seq 2^32+5 with esn=true decrypts with the same SA only
for alg in aes-gcm-128 aes-cbc-128-sha256; do
    write_sa "$N/$alg-esn.json" "$alg" 4 true false 4294967301
    write_sa "$N/$alg-noesn.json" "$alg" 4 false false 5
    write_sa "$N/$alg-esnhi0.json" "$alg" 4 true false 5
    "$E" encrypt --sa "$N/$alg-esn.json" --in "$T/in4.pcap" --out "$N/$alg-esn.pcap" 2>/dev/null
    expect_ok   "$alg ESN seq 2^32+5, same SA" '^ok 3 packets$' "$E" decrypt --sa "$N/$alg-esn.json" --in "$N/$alg-esn.pcap" --out "$N/o.pcap"
    expect_fail "$alg ESN capture, decryptor esn=false seq=5" 'packet 1: ICV check failed \(seq 5\)' "$E" decrypt --sa "$N/$alg-noesn.json" --in "$N/$alg-esn.pcap" --out "$N/o.pcap"
    expect_fail "$alg ESN capture, decryptor esn=true seq=5 (high bits 0)" 'packet 1: ICV check failed \(seq 5, ESN high bits 0\)' "$E" decrypt --sa "$N/$alg-esnhi0.json" --in "$N/$alg-esn.pcap" --out "$N/o.pcap"
done
expect_fail "seq above 2^32-1 without esn" 'seq=4294967301 out of range' "$E" encrypt --sa "$N/aes-gcm-128-noesn.json" --seq 4294967301 --in "$T/in4.pcap" --out "$N/o.pcap"
write_sa "$N/wrap.json" aes-gcm-128 4 false false 4294967294
expect_fail "32-bit sequence number must not cycle" 'packet 3: sequence number 4294967296 exceeds' "$E" encrypt --sa "$N/wrap.json" --in "$T/in4.pcap" --out "$N/o.pcap"

# unusual inner packets (see odd.pcap above) through encrypt, decrypt and tshark
for alg in aes-gcm-256 aes-cbc-256-sha256; do
    write_sa "$N/odd-$alg.json" "$alg" 4 false true 100
    expect_ok "$alg odd inner packets encrypt" 'encrypted 4 packets' "$E" encrypt --sa "$N/odd-$alg.json" --in "$T/odd.pcap" --out "$N/odd-$alg.pcap"
    expect_ok "$alg odd inner packets decrypt" '^ok 4 packets$' "$E" decrypt --sa "$N/odd-$alg.json" --in "$N/odd-$alg.pcap" --out "$N/o.pcap"
    expect_ok "$alg odd inner packets tshark-check (malformed DNS inside)" '^ok 4 packets icv good$' "$E" tshark-check --sa "$N/odd-$alg.json" --in "$N/odd-$alg.pcap" --expect-inner "$T/odd.pcap"
done

# ---------------------------------------------------------------- 3. independent checks
# ESN ICV recomputed without Scapy and without espref: RFC 4303 2.2.1 (HMAC over
# SPI|seq_lo|IV|ct|seq_hi) and RFC 4106 5 (GCM AAD = SPI|seq_hi|seq_lo, nonce = salt|IV).
expect_ok "ESN ICVs recomputed independently (hmac / AESGCM)" '^independent ESN ICV ok 6$' \
"$PY" - "$N" <<'EOF'
import sys, json, hmac, hashlib, struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from scapy.utils import RawPcapReader
d = sys.argv[1]; n = 0
for alg in ("aes-gcm-128", "aes-cbc-128-sha256"):
    sa = json.load(open("%s/%s-esn.json" % (d, alg)))
    key = bytes.fromhex(sa["key"])
    for i, (f, _) in enumerate(RawPcapReader("%s/%s-esn.pcap" % (d, alg))):
        f = bytes(f); esp = f[14 + 20:]
        spi, lo = struct.unpack("!LL", esp[:8]); seq = sa["seq"] + i
        assert spi == sa["spi"] and lo == seq & 0xffffffff, (spi, lo)
        hi = struct.pack("!L", seq >> 32)
        if alg.startswith("aes-gcm"):
            iv, ct = esp[8:16], esp[16:]
            AESGCM(key[:-4]).decrypt(key[-4:] + iv, ct, esp[:4] + hi + esp[4:8])  # raises if wrong
            try:
                AESGCM(key[:-4]).decrypt(key[-4:] + iv, ct, esp[:8]); raise SystemExit("GCM tag also valid without ESN")
            except Exception as e:
                if isinstance(e, SystemExit): raise
        else:
            mac = hmac.new(bytes.fromhex(sa["auth_key"]), esp[:-16] + hi, hashlib.sha256).digest()[:16]
            assert mac == esp[-16:], "HMAC-ESN mismatch"
            assert hmac.new(bytes.fromhex(sa["auth_key"]), esp[:-16], hashlib.sha256).digest()[:16] != esp[-16:]
        n += 1
print("independent ESN ICV ok %d" % n)
EOF

# the tshark-uat lines work when passed straight to tshark with -o uat:esp_sa:...
UAT=$("$E" tshark-uat --sa "$N/aes-cbc-128-sha256.json")
expect_ok "tshark -o uat:esp_sa:\$(espref tshark-uat) on CBC capture" '^1 1 1 $' \
    bash -c 'tshark -n -r "$1" -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE -o "uat:esp_sa:$2" -T fields -e esp.icv_good 2>/dev/null | tr "\n" " "; echo' _ "$N/aes-cbc-128-sha256.pcap" "$UAT"
}
negative_tests >"$T/neg.log" 2>&1
wait "$MATRIX_PID"; MATRIX_PID=

# inner frames byte for byte (one Python run for all combos)
"$PY" - "$T/m/compare.lst" >>"$T/matrix.log" <<'EOF'
import sys
from scapy.utils import RawPcapReader
bad = 0
pairs = [l.split() for l in open(sys.argv[1]) if l.strip()]
for a, b in pairs:
    fa = [bytes(p) for p, _ in RawPcapReader(a)]
    fb = [bytes(p) for p, _ in RawPcapReader(b)]
    if fa != fb:
        bad += 1
        print("FAIL compare %s: decrypted inner frames differ from the originals" % b)
print("COMPARE %d/%d decrypt outputs identical to the inner frames" % (len(pairs) - bad, len(pairs)))
EOF

NEG_PASS=$(grep -c '^PASS' "$T/neg.log"); NEG_FAIL=$(grep -c '^FAIL' "$T/neg.log")

# ---------------------------------------------------------------- summary
cat "$T/matrix.log" "$T/neg.log"
if [ -s "$T/neg-setup.err" ]; then echo "--- setup stderr:"; cat "$T/neg-setup.err"; fi
M_PASS=$(grep -c '^PASS' "$T/matrix.log"); M_FAIL=$(grep -c '^FAIL' "$T/matrix.log")
echo "selftest: matrix $M_PASS passed, $M_FAIL failed (of 24 SA runs x 6 packets); checks $NEG_PASS passed, $NEG_FAIL failed; $((SECONDS - START))s"
[ "$M_FAIL" -eq 0 ] && [ "$M_PASS" -eq 24 ] && [ "$NEG_FAIL" -eq 0 ] && ! grep -q '^FAIL compare' "$T/matrix.log"
