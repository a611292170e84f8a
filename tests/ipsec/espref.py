#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""espref.py - independent ESP (RFC 4303, tunnel mode) reference tool.

Used by the VSwitch tests to check the switch's IPsec against implementations
that are not ours: Scapy's ESP (scapy.layers.ipsec.SecurityAssociation does the
encryption, decryption and ICV work) and Wireshark's ESP dissector (tshark).
This file only glues, parses arguments and performs the checks Scapy does not.

Needs Debian's Python with Scapy 2.5 + python3-cryptography (hence the shebang:
the pyenv "python3" on PATH has no Scapy) and, for tshark-*, tshark (tested
with 4.0.17).  Self-test: bash tests/ipsec/selftest.sh.

Commands (every failure: message on stderr naming the 1-based packet index,
exit status 1; usage errors exit 2):
  espref.py encrypt     --sa SA.json --in INNER.pcap --out ESP.pcap [--seq N]
  espref.py decrypt     --sa SA.json --in ESP.pcap --out INNER.pcap [--seq N]
                        [--expect-count K]
  espref.py tshark-uat  --sa SA.json
  espref.py tshark-check --sa SA.json --in ESP.pcap [--expect-count K]
                        [--expect-inner INNER.pcap]

stdout on success: decrypt "ok N packets"; tshark-check "ok N packets icv good"
(or, for an ESN SA, "ok N packets decrypted, icv unchecked (esn)": Wireshark
4.0 cannot authenticate ESN SAs, see ESN_NOTE).  An empty capture fails unless
--expect-count 0.  tshark-check --expect-inner additionally requires tshark's
decrypted inner packets to equal the given inner frames' IP bytes.

SA file: one JSON object, see SA_KEYS / load_sa() below.  Keys starting with
"_" are ignored, other unknown keys are an error.  Defaults: esn false, seq 1,
natt false, natt ports 4500, ttl 64, eth 02:00:00:00:00:01 -> :02.
NAT-T is only accepted with IPv4 outer addresses.

Outer headers written by "encrypt": IPv4 with DF CLEAR (flags 0, offset 0),
TOS 0, id = low 16 bits of the sequence number, the SA's TTL, no options and
a correct header checksum; IPv6 with traffic class 0, flow label 0, hop limit
= ttl and no extension headers.  With NAT-T a UDP header (natt_sport ->
natt_dport, checksum 0, RFC 3948) sits between the outer IPv4 header and ESP.
GCM IVs are the 64-bit sequence number (unique per SA, as RFC 4106 suggests);
CBC IVs are random (Scapy's default, RFC 3602 requires unpredictable IVs).

Known Scapy 2.5 problems worked around here (see the functions named):
  * ESN is only wired into the AEAD AAD; the HMAC ICV of ESP ignores it
    (AuthAlgo.sign/verify are called without esn for ESP).  For CBC+HMAC with
    ESN we still let Scapy's AuthAlgo compute/verify the HMAC, but over
    SPI|seq_lo|IV|ciphertext|seq_hi as RFC 4303 2.2.1/3.3.2.1 requires
    (_sign_esn_hmac / _verify_esn_hmac).
  * CryptAlgo.decrypt() computes the returned padding from the already
    truncated data, so the padding bytes it returns are wrong.  The padding is
    checked on the full plaintext recomputed with Scapy's own algorithm objects
    (_full_plaintext) and the payload Scapy returned must equal ours.
  * SecurityAssociation.encrypt(seq_num=0) silently falls back to sa.seq_num
    ("seq_num or self.seq_num"); with ESN the low 32 bits may be 0, so sa.seq_num
    and sa.esn are set before every call.
  * GCM salt: Scapy splits crypt_key into key + trailing salt_size (4) bytes,
    which is exactly RFC 4106 keying material (as Linux rfc4106(gcm(aes))), so
    the SA's "key" is passed through unchanged.
"""

import argparse
import ipaddress
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

import logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
logging.getLogger("scapy.loading").setLevel(logging.ERROR)

from scapy.compat import raw  # noqa: E402
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.ipsec import (ESP, SecurityAssociation,  # noqa: E402
                                IPSecIntegrityError, AUTH_ALGOS)
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.utils import PcapReader, PcapWriter  # noqa: E402

PROG = "espref"
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
IPPROTO_UDP, IPPROTO_ESP, IPPROTO_IPIP, IPPROTO_IPV6 = 17, 50, 4, 41
DLT_EN10MB = 1

# alg name -> (Scapy crypt algo, encryption key length incl. salt,
#              Scapy auth algo or None, Wireshark UAT encryption name,
#              Wireshark UAT authentication name)
ALGS = {
    "aes-gcm-128": ("AES-GCM", 16 + 4, None,
                    "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
    "aes-gcm-256": ("AES-GCM", 32 + 4, None,
                    "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
    "aes-cbc-128-sha256": ("AES-CBC", 16, "SHA2-256-128",
                           "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"),
    "aes-cbc-256-sha256": ("AES-CBC", 32, "SHA2-256-128",
                           "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"),
}
AUTH_KEY_LEN = 32
ICV_LEN = 16

SA_KEYS = {"spi", "alg", "key", "auth_key", "esn", "seq", "outer_src",
           "outer_dst", "natt", "natt_sport", "natt_dport", "ttl", "eth_src",
           "eth_dst"}


class Fail(Exception):
    """A check failed; message already names the packet."""


def die(msg, code=1):
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.exit(code)


# --------------------------------------------------------------------------
# SA description
# --------------------------------------------------------------------------

def _hex(v, what):
    if not isinstance(v, str):
        raise Fail("SA: %s must be a hex string" % what)
    s = re.sub(r"[\s:]", "", v)
    if s[:2].lower() == "0x":
        s = s[2:]
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise Fail("SA: %s is not valid hex" % what)


def _int(d, k, default, lo, hi):
    v = d.get(k, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise Fail("SA: %s must be an integer" % k)
    if not lo <= v <= hi:
        raise Fail("SA: %s=%d out of range [%d, %d]" % (k, v, lo, hi))
    return v


def _bool(d, k, default):
    v = d.get(k, default)
    if not isinstance(v, bool):
        raise Fail("SA: %s must be true or false" % k)
    return v


def _mac(d, k, default):
    v = d.get(k, default)
    if not isinstance(v, str) or not re.fullmatch(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", v):
        raise Fail("SA: %s must be a MAC address like 02:00:00:00:00:01" % k)
    return v.lower()


def load_sa(path, seq_override=None):
    """Read and validate the SA JSON; returns a plain dict with parsed values."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise Fail("cannot read SA file %s: %s" % (path, e))
    if not isinstance(d, dict):
        raise Fail("SA file %s: must hold one JSON object" % path)
    unknown = sorted(k for k in d if k not in SA_KEYS and not k.startswith("_"))
    if unknown:
        raise Fail("SA file %s: unknown key(s) %s (prefix a key with '_' to "
                   "have it ignored)" % (path, ", ".join(unknown)))
    for k in ("spi", "alg", "key", "outer_src", "outer_dst"):
        if k not in d:
            raise Fail("SA file %s: missing key %r" % (path, k))
    sa = {}
    sa["spi"] = _int(d, "spi", None, 1, 0xFFFFFFFF)
    alg = d["alg"]
    if alg not in ALGS:
        raise Fail("SA: alg %r unknown, expected one of %s" % (alg, ", ".join(ALGS)))
    sa["alg"] = alg
    crypt, klen, auth, _, _ = ALGS[alg]
    sa["is_gcm"] = crypt == "AES-GCM"
    sa["key"] = _hex(d["key"], "key")
    if len(sa["key"]) != klen:
        raise Fail("SA: key for %s must be %d bytes%s, got %d" % (
            alg, klen, " (AES key + 4-byte salt)" if sa["is_gcm"] else "",
            len(sa["key"])))
    if auth:
        if "auth_key" not in d:
            raise Fail("SA: alg %s needs auth_key" % alg)
        sa["auth_key"] = _hex(d["auth_key"], "auth_key")
        if len(sa["auth_key"]) != AUTH_KEY_LEN:
            raise Fail("SA: auth_key must be %d bytes, got %d" % (
                AUTH_KEY_LEN, len(sa["auth_key"])))
    else:
        if d.get("auth_key") not in (None, ""):
            raise Fail("SA: auth_key given for AEAD alg %s" % alg)
        sa["auth_key"] = None
    sa["esn"] = _bool(d, "esn", False)
    maxseq = (1 << 64) - 1 if sa["esn"] else 0xFFFFFFFF
    sa["maxseq"] = maxseq
    if seq_override is not None:
        d = dict(d, seq=seq_override)
    sa["seq"] = _int(d, "seq", 1, 1, maxseq)
    try:
        src = ipaddress.ip_address(d["outer_src"])
        dst = ipaddress.ip_address(d["outer_dst"])
    except (ValueError, TypeError) as e:
        raise Fail("SA: bad outer address: %s" % e)
    if src.version != dst.version:
        raise Fail("SA: outer_src and outer_dst must be the same IP family")
    sa["outer_src"], sa["outer_dst"], sa["outer_ver"] = src, dst, src.version
    sa["natt"] = _bool(d, "natt", False)
    sa["natt_sport"] = _int(d, "natt_sport", 4500, 1, 65535)
    sa["natt_dport"] = _int(d, "natt_dport", 4500, 1, 65535)
    if sa["natt"] and src.version != 4:
        raise Fail("SA: natt (RFC 3948, UDP checksum 0) is only supported "
                   "with an IPv4 outer header")
    sa["ttl"] = _int(d, "ttl", 64, 1, 255)
    sa["eth_src"] = _mac(d, "eth_src", "02:00:00:00:00:01")
    sa["eth_dst"] = _mac(d, "eth_dst", "02:00:00:00:00:02")
    return sa


def scapy_sa(sa, with_auth=True):
    """Build the Scapy SecurityAssociation (tunnel mode) for this SA."""
    crypt, _, auth, _, _ = ALGS[sa["alg"]]
    if sa["outer_ver"] == 4:
        tunnel = IP(src=str(sa["outer_src"]), dst=str(sa["outer_dst"]),
                    ttl=sa["ttl"], tos=0, flags=0, frag=0, id=0)
    else:
        tunnel = IPv6(src=str(sa["outer_src"]), dst=str(sa["outer_dst"]),
                      hlim=sa["ttl"], tc=0, fl=0)
    natt = UDP(sport=sa["natt_sport"], dport=sa["natt_dport"], chksum=0) \
        if sa["natt"] else None
    use_auth = auth if with_auth else None
    return SecurityAssociation(
        ESP, spi=sa["spi"], seq_num=1, crypt_algo=crypt, crypt_key=sa["key"],
        auth_algo=use_auth, auth_key=sa["auth_key"] if use_auth else None,
        tunnel_header=tunnel, nat_t_header=natt, esn_en=sa["esn"], esn=0)


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def csum16(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def read_frames(path):
    """Return [(timestamp or None, bytes)] of an Ethernet pcap/pcapng."""
    out = []
    try:
        reader = PcapReader(path)
    except Exception as e:  # Scapy raises Scapy_Exception / OSError
        raise Fail("cannot read %s: %s" % (path, e))
    with reader:
        lt = getattr(reader, "linktype", DLT_EN10MB)
        if lt != DLT_EN10MB:
            raise Fail("%s: link type %s is not Ethernet" % (path, lt))
        for p in reader:
            b = getattr(p, "original", None)
            if b is None:
                b = raw(p)
            out.append((getattr(p, "time", None), bytes(b)))
    return out


def write_frames(path, frames):
    try:
        w = PcapWriter(path, linktype=DLT_EN10MB, sync=False)
        for ts, b in frames:
            p = Ether(b)
            if ts is not None:
                p.time = ts
            w.write(p)
        w.close()
    except OSError as e:
        raise Fail("cannot write %s: %s" % (path, e))


def eth_header(sa, ethertype):
    mac = lambda s: bytes.fromhex(s.replace(":", ""))  # noqa: E731
    return mac(sa["eth_dst"]) + mac(sa["eth_src"]) + struct.pack("!H", ethertype)


def inner_ip_from_frame(frame, where):
    """Ethernet frame -> the IP packet it carries (Ethernet padding removed)."""
    if len(frame) < 14:
        raise Fail("%s: frame shorter than an Ethernet header" % where)
    et = struct.unpack("!H", frame[12:14])[0]
    b = frame[14:]
    if et == ETH_P_IP:
        if len(b) < 20 or b[0] >> 4 != 4:
            raise Fail("%s: ethertype IPv4 but not an IPv4 header" % where)
        tl = struct.unpack("!H", b[2:4])[0]
        if tl < (b[0] & 15) * 4 or tl > len(b):
            raise Fail("%s: IPv4 total length %d inconsistent with frame "
                       "(%d bytes of IP)" % (where, tl, len(b)))
        return b[:tl]
    if et == ETH_P_IPV6:
        if len(b) < 40 or b[0] >> 4 != 6:
            raise Fail("%s: ethertype IPv6 but not an IPv6 header" % where)
        pl = struct.unpack("!H", b[4:6])[0]
        if pl == 0 or 40 + pl > len(b):
            raise Fail("%s: IPv6 payload length %d inconsistent with frame "
                       "(%d bytes of IP; jumbograms unsupported)" % (where, pl, len(b)))
        return b[:40 + pl]
    raise Fail("%s: ethertype 0x%04x is neither IPv4 nor IPv6 (VLAN tags "
               "are not supported)" % (where, et))


def split_seq(seq64):
    return seq64 & 0xFFFFFFFF, seq64 >> 32


# --------------------------------------------------------------------------
# Scapy workarounds (see module docstring)
# --------------------------------------------------------------------------

def _sign_esn_hmac(sa, esp, seq_hi):
    """HMAC ICV over SPI|seq_lo|payload|seq_hi using Scapy's AuthAlgo.

    Scapy 2.5 ignores ESN for the ESP HMAC; appending the 4 high-order bytes to
    the data before AuthAlgo.sign() gives exactly RFC 4303's ICV input."""
    algo = AUTH_ALGOS[ALGS[sa["alg"]][2]]
    tmp = ESP(spi=esp.spi, seq=esp.seq, data=esp.data + struct.pack("!L", seq_hi))
    algo.sign(tmp, sa["auth_key"])
    return tmp.data[-algo.icv_size:]


def _verify_esn_hmac(sa, esp, seq_hi):
    """Counterpart of _sign_esn_hmac: raises IPSecIntegrityError on mismatch."""
    algo = AUTH_ALGOS[ALGS[sa["alg"]][2]]
    body, icv = esp.data[:-algo.icv_size], esp.data[-algo.icv_size:]
    tmp = ESP(spi=esp.spi, seq=esp.seq,
              data=body + struct.pack("!L", seq_hi) + icv)
    algo.verify(tmp, sa["auth_key"])


def _full_plaintext(ssa, esp, esn_en, seq_hi):
    """Decrypted ESP payload *including* padding, pad length and next header.

    Mirrors scapy CryptAlgo.decrypt() (same Scapy algorithm objects, key/salt
    split and AAD) because that function returns wrongly sliced padding."""
    algo = ssa.crypt_algo
    icv_size = algo.icv_size or ssa.auth_algo.icv_size
    iv = esp.data[:algo.iv_size]
    ct = esp.data[algo.iv_size:len(esp.data) - icv_size]
    icv = esp.data[len(esp.data) - icv_size:]
    mode_iv = algo._format_mode_iv(sa=ssa, iv=iv)
    if algo.is_aead:
        if esn_en:
            aad = struct.pack("!LLL", esp.spi, seq_hi, esp.seq)
        else:
            aad = struct.pack("!LL", esp.spi, esp.seq)
        return algo.cipher(ssa.crypt_key).decrypt(mode_iv, ct + icv, aad)
    dec = algo.new_cipher(ssa.crypt_key, mode_iv).decryptor()
    return dec.update(ct) + dec.finalize()


# --------------------------------------------------------------------------
# encrypt
# --------------------------------------------------------------------------

def encrypt_one(sa, ssa, inner, seq64):
    """inner IP bytes -> outer Ethernet frame bytes."""
    lo, hi = split_seq(seq64)
    cls = IP if inner[0] >> 4 == 4 else IPv6
    pkt = cls(inner)
    if raw(pkt) != inner:
        raise Fail("Scapy cannot re-serialise this inner packet byte-exactly")
    # seq_num=0 would fall back to ssa.seq_num; set both (Scapy quirk).
    ssa.seq_num, ssa.esn = lo, hi
    if sa["outer_ver"] == 4:
        ssa.tunnel_header.id = lo & 0xFFFF
    iv = struct.pack("!Q", seq64) if sa["is_gcm"] else None
    out = ssa.encrypt(pkt, seq_num=lo, iv=iv, esn_en=sa["esn"], esn=hi)
    esp = out[ESP]
    if esp.spi != sa["spi"] or esp.seq != lo:
        raise Fail("internal: Scapy produced spi/seq %#x/%d" % (esp.spi, esp.seq))
    if not sa["is_gcm"] and sa["esn"]:
        # ssa was built without auth: append the ESN-aware HMAC ourselves.
        esp.data = esp.data + _sign_esn_hmac(sa, esp, hi)
    # rebuild lengths/checksums (needed after the ICV append, harmless else)
    if sa["outer_ver"] == 4:
        del out.len
        del out.chksum
    else:
        del out.plen
    if out.haslayer(UDP):
        del out[UDP].len
        out[UDP].chksum = 0
    ethertype = ETH_P_IP if sa["outer_ver"] == 4 else ETH_P_IPV6
    return eth_header(sa, ethertype) + raw(out)


def cmd_encrypt(args):
    sa = load_sa(args.sa, args.seq)
    frames = read_frames(args.inp)
    if not frames:
        raise Fail("%s holds no frames" % args.inp)
    esn_cbc = sa["esn"] and not sa["is_gcm"]
    ssa = scapy_sa(sa, with_auth=not esn_cbc)
    dsa = scapy_sa(sa)
    out = []
    for i, (ts, frame) in enumerate(frames, 1):
        where = "packet %d" % i
        seq64 = sa["seq"] + i - 1
        if seq64 > sa["maxseq"]:
            raise Fail("%s: sequence number %d exceeds %s (no cycling, RFC 4303 "
                       "3.3.3)" % (where, seq64, "2^64-1" if sa["esn"] else
                                   "2^32-1 (set esn)"))
        inner = inner_ip_from_frame(frame, where)
        try:
            enc = encrypt_one(sa, ssa, inner, seq64)
        except Fail as e:
            raise Fail("%s: %s" % (where, e))
        # self-check: our own decrypt path must give the inner packet back
        try:
            back = decrypt_one(sa, dsa, enc, seq64)
        except Fail as e:
            raise Fail("%s: internal self-check failed: %s" % (where, e))
        if back[14:] != inner:
            raise Fail("%s: internal self-check: decrypt(encrypt(x)) != x" % where)
        out.append((ts, enc))
    write_frames(args.out, out)
    sys.stderr.write("%s: encrypted %d packets, seq %d..%d\n" % (
        PROG, len(out), sa["seq"], sa["seq"] + len(out) - 1))
    return 0


# --------------------------------------------------------------------------
# decrypt
# --------------------------------------------------------------------------

def parse_outer(sa, frame):
    """Check Ethernet/outer IP/(UDP) and return (outer IP header bytes, ESP bytes)."""
    if len(frame) < 14:
        raise Fail("frame shorter than an Ethernet header")
    et = struct.unpack("!H", frame[12:14])[0]
    b = frame[14:]
    want_proto = IPPROTO_UDP if sa["natt"] else IPPROTO_ESP
    if sa["outer_ver"] == 4:
        if et != ETH_P_IP:
            raise Fail("ethertype 0x%04x, expected IPv4 (0x0800) outer header" % et)
        if len(b) < 20 or b[0] >> 4 != 4:
            raise Fail("outer header is not IPv4")
        ihl = (b[0] & 15) * 4
        tl = struct.unpack("!H", b[2:4])[0]
        if ihl < 20 or len(b) < ihl or tl < ihl or tl > len(b):
            raise Fail("outer IPv4 IHL %d / total length %d inconsistent with "
                       "%d bytes after Ethernet" % (ihl, tl, len(b)))
        if csum16(b[:ihl]) != 0xFFFF:
            raise Fail("outer IPv4 header checksum 0x%04x is wrong (expected "
                       "0x%04x)" % (struct.unpack("!H", b[10:12])[0],
                                    (~csum16(b[:10] + b"\0\0" + b[12:ihl])) & 0xFFFF))
        fl = struct.unpack("!H", b[6:8])[0]
        if fl & 0x3FFF:
            raise Fail("outer IPv4 packet is a fragment (MF/offset 0x%04x)" % fl)
        src, dst = ipaddress.IPv4Address(b[12:16]), ipaddress.IPv4Address(b[16:20])
        proto = b[9]
        hdr, payload = b[:ihl], b[ihl:tl]
    else:
        if et != ETH_P_IPV6:
            raise Fail("ethertype 0x%04x, expected IPv6 (0x86dd) outer header" % et)
        if len(b) < 40 or b[0] >> 4 != 6:
            raise Fail("outer header is not IPv6")
        pl = struct.unpack("!H", b[4:6])[0]
        if 40 + pl > len(b):
            raise Fail("outer IPv6 payload length %d exceeds frame" % pl)
        src, dst = ipaddress.IPv6Address(b[8:24]), ipaddress.IPv6Address(b[24:40])
        proto = b[6]
        hdr, payload = b[:40], b[40:40 + pl]
    if src != sa["outer_src"] or dst != sa["outer_dst"]:
        raise Fail("outer addresses %s -> %s, expected %s -> %s" % (
            src, dst, sa["outer_src"], sa["outer_dst"]))
    if proto != want_proto:
        extra = " (outer IPv6 extension headers are not supported)" \
            if sa["outer_ver"] == 6 and proto in (0, 43, 44, 60) else ""
        raise Fail("outer next protocol %d, expected %d (%s)%s" % (
            proto, want_proto, "UDP/NAT-T" if sa["natt"] else "ESP", extra))
    if sa["natt"]:
        if len(payload) < 8:
            raise Fail("truncated NAT-T UDP header")
        sp, dp, ul, uc = struct.unpack("!HHHH", payload[:8])
        if (sp, dp) != (sa["natt_sport"], sa["natt_dport"]):
            raise Fail("NAT-T UDP ports %d -> %d, expected %d -> %d" % (
                sp, dp, sa["natt_sport"], sa["natt_dport"]))
        if ul != len(payload):
            raise Fail("NAT-T UDP length %d, IP says %d" % (ul, len(payload)))
        if uc != 0:
            pseudo = hdr[12:20] + struct.pack("!BBH", 0, IPPROTO_UDP, ul)
            if csum16(pseudo + payload) != 0xFFFF:
                raise Fail("NAT-T UDP checksum 0x%04x is neither 0 nor valid" % uc)
        payload = payload[8:]
        if len(payload) >= 4 and payload[:4] == b"\0\0\0\0":
            raise Fail("NAT-T packet carries the non-ESP marker (IKE), not ESP")
    return hdr, payload


def decrypt_one(sa, ssa, frame, seq64):
    """Check one outer frame; return the inner packet as an Ethernet frame."""
    hdr, espb = parse_outer(sa, frame)
    lo, hi = split_seq(seq64)
    iv_len = 8 if sa["is_gcm"] else 16
    if len(espb) < 8 + iv_len + ICV_LEN + 4:
        raise Fail("ESP too short (%d bytes)" % len(espb))
    spi, seq = struct.unpack("!LL", espb[:8])
    if spi != sa["spi"]:
        raise Fail("SPI 0x%08x (%d), expected 0x%08x (%d)" % (spi, spi, sa["spi"], sa["spi"]))
    if seq != lo:
        raise Fail("sequence number %d on the wire, expected %d%s" % (
            seq, lo, " (low 32 bits of ESN %d)" % seq64 if sa["esn"] else ""))
    ctlen = len(espb) - 8 - iv_len - ICV_LEN
    if sa["is_gcm"]:
        if ctlen % 4:
            raise Fail("ESP payload does not end on a 4-byte boundary "
                       "(ciphertext %d bytes, RFC 4303 2.4)" % ctlen)
    elif ctlen % 16:
        raise Fail("CBC ciphertext length %d is not a multiple of 16" % ctlen)
    esp = ESP(espb)
    outer = (IP if sa["outer_ver"] == 4 else IPv6)(hdr)
    if sa["natt"]:
        outer = outer / UDP(sport=sa["natt_sport"], dport=sa["natt_dport"], chksum=0)
    outer = outer / esp
    ssa.seq_num, ssa.esn = lo, hi
    esn_cbc = sa["esn"] and not sa["is_gcm"]
    icvmsg = "ICV check failed (seq %d%s): wrong key, corrupted packet or %s" % (
        seq64, ", ESN high bits %d" % hi if sa["esn"] else "",
        "wrong ESN high bits" if sa["esn"] else "ESN mismatch")
    try:
        if esn_cbc:
            _verify_esn_hmac(sa, esp, hi)
        inner_pkt = ssa.decrypt(outer, verify=not esn_cbc, esn_en=sa["esn"], esn=hi)
    except IPSecIntegrityError:
        raise Fail(icvmsg)
    except Exception as e:
        raise Fail("Scapy could not decrypt: %s: %s" % (type(e).__name__, e))
    try:
        pt = _full_plaintext(ssa, esp, sa["esn"], hi)
    except Exception as e:
        raise Fail("decryption failed: %s: %s" % (type(e).__name__, e))
    padlen, nh = pt[-2], pt[-1]
    if padlen + 2 > len(pt):
        raise Fail("pad length %d exceeds the %d-byte plaintext" % (padlen, len(pt)))
    data, pad = pt[:len(pt) - 2 - padlen], pt[len(pt) - 2 - padlen:-2]
    if pad != bytes(range(1, padlen + 1)):
        raise Fail("padding bytes are %s%s (pad length %d), RFC 4303 2.4 requires "
                   "01 02 03 .." % (pad[:16].hex(), ".." if padlen > 16 else "", padlen))
    scapy_bytes = getattr(inner_pkt, "original", None) or raw(inner_pkt)
    if scapy_bytes != data:
        raise Fail("internal: Scapy's decrypted payload differs from the "
                   "recomputed plaintext")
    if nh not in (IPPROTO_IPIP, IPPROTO_IPV6):
        raise Fail("next header %d is neither 4 (IPv4) nor 41 (IPv6)" % nh)
    if not data:
        raise Fail("empty inner packet (next header %d, pad length %d)" % (nh, padlen))
    ver = data[0] >> 4
    if (nh, ver) not in ((IPPROTO_IPIP, 4), (IPPROTO_IPV6, 6)):
        raise Fail("next header %d but inner packet is IP version %d" % (nh, ver))
    if ver == 4:
        if len(data) < 20:
            raise Fail("inner IPv4 packet shorter than 20 bytes")
        ihl = (data[0] & 15) * 4
        tl = struct.unpack("!H", data[2:4])[0]
        if tl != len(data):
            raise Fail("inner IPv4 total length %d but %d bytes decrypted before "
                       "the padding (pad length %d)" % (tl, len(data), padlen))
        if ihl < 20 or ihl > tl or csum16(data[:ihl]) != 0xFFFF:
            raise Fail("inner IPv4 header checksum/IHL invalid")
        et = ETH_P_IP
    else:
        if len(data) < 40:
            raise Fail("inner IPv6 packet shorter than 40 bytes")
        pl = struct.unpack("!H", data[4:6])[0]
        if 40 + pl != len(data):
            raise Fail("inner IPv6 payload length %d (+40) but %d bytes decrypted "
                       "before the padding (pad length %d)" % (pl, len(data), padlen))
        et = ETH_P_IPV6
    return eth_header(sa, et) + data


def cmd_decrypt(args):
    sa = load_sa(args.sa, args.seq)
    frames = read_frames(args.inp)
    if args.expect_count is not None and len(frames) != args.expect_count:
        raise Fail("%s holds %d frames, expected %d" % (
            args.inp, len(frames), args.expect_count))
    if not frames and args.expect_count is None:
        raise Fail("%s holds no frames (use --expect-count 0 if that is "
                   "intended)" % args.inp)
    ssa = scapy_sa(sa)
    out = []
    for i, (ts, frame) in enumerate(frames, 1):
        seq64 = sa["seq"] + i - 1
        if seq64 > sa["maxseq"]:
            raise Fail("packet %d: expected sequence number %d exceeds the SA's "
                       "maximum" % (i, seq64))
        try:
            out.append((ts, decrypt_one(sa, ssa, frame, seq64)))
        except Fail as e:
            raise Fail("packet %d: %s" % (i, e))
    write_frames(args.out, out)
    print("ok %d packets" % len(out))
    return 0


# --------------------------------------------------------------------------
# tshark
# --------------------------------------------------------------------------

TSHARK_PREFS = ["esp.enable_encryption_decode:TRUE",
                "esp.enable_authentication_check:TRUE",
                "esp.do_esp_sequence_analysis:TRUE"]


def uat_lines(sa):
    _, _, _, enc_name, auth_name = ALGS[sa["alg"]]
    fields = ["IPv4" if sa["outer_ver"] == 4 else "IPv6",
              str(sa["outer_src"]), str(sa["outer_dst"]),
              "0x%08x" % sa["spi"], enc_name, "0x" + sa["key"].hex(),
              auth_name, "0x" + sa["auth_key"].hex() if sa["auth_key"] else ""]
    return [",".join('"%s"' % f for f in fields)]


ESN_NOTE = ("tshark/Wireshark 4.0's ESP dissector has no ESN support (the "
            "esp_sa UAT has no ESN field; it authenticates only the 32-bit "
            "sequence number), so it cannot verify the ICV of an ESN SA")


def cmd_tshark_uat(args):
    sa = load_sa(args.sa)
    if sa["esn"]:
        sys.stderr.write("%s: warning: %s\n" % (PROG, ESN_NOTE))
    for line in uat_lines(sa):
        print(line)
    return 0


def _truthy(v):
    return v.strip().lower() in ("1", "true", "yes")


def run_tshark(tshark, sa, path, fields, disable_upper):
    """Run tshark with a private config dir holding the esp_sa UAT; return
    one list of field values per frame."""
    tmp = tempfile.mkdtemp(prefix="espref-ws-")
    try:
        cfg = os.path.join(tmp, "wireshark")
        os.makedirs(cfg)
        with open(os.path.join(cfg, "esp_sa"), "w") as f:
            f.write("# written by espref.py tshark-check\n")
            f.write("\n".join(uat_lines(sa)) + "\n")
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=cfg, XDG_CONFIG_HOME=tmp)
        if disable_upper:
            need = {"frame", "eth", "ethertype", "ip", "ipv6", "esp", "data"}
            if sa["natt"]:
                need |= {"udp", "udpencap"}
            try:
                g = subprocess.run([tshark, "-G", "protocols"], env=env, timeout=60,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise Fail("tshark -G protocols timed out")
            names = [l.split("\t")[2] for l in g.stdout.decode(errors="replace").splitlines()
                     if l.count("\t") >= 2]
            if g.returncode != 0 or "esp" not in names:
                raise Fail("tshark -G protocols failed (exit %d)" % g.returncode)
            with open(os.path.join(cfg, "disabled_protos"), "w") as f:
                for n in names:
                    if n not in need and not n.startswith("_ws."):
                        f.write(n + "\n")
        cmd = [tshark, "-n", "-r", path]
        for p in TSHARK_PREFS:
            cmd += ["-o", p]
        if sa["natt"]:
            for port in sorted({sa["natt_sport"], sa["natt_dport"]} - {4500}):
                cmd += ["-d", "udp.port==%d,udpencap" % port]
        cmd += ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
                "-E", "aggregator=|", "-E", "quote=n"]
        for fl in fields:
            cmd += ["-e", fl]
        try:
            r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
        except subprocess.TimeoutExpired:
            raise Fail("tshark timed out")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    err = "\n".join(l for l in r.stderr.decode(errors="replace").splitlines()
                    if "Running as user" not in l and l.strip())
    if r.returncode != 0:
        raise Fail("tshark failed (exit %d): %s" % (r.returncode, err))
    if err:
        sys.stderr.write("%s: tshark said: %s\n" % (PROG, err))
    rows = [l.split("\t") for l in r.stdout.decode(errors="replace").splitlines()
            if l.strip()]
    for row in rows:
        row += [""] * (len(fields) - len(row))
    return rows


def cmd_tshark_check(args):
    sa = load_sa(args.sa)
    tshark = shutil.which("tshark")
    if not tshark:
        raise Fail("tshark not found in PATH")
    expect_inner = None
    if args.expect_inner:
        expect_inner = [inner_ip_from_frame(f, "%s frame %d" % (args.expect_inner, i))
                        for i, (_, f) in enumerate(read_frames(args.expect_inner), 1)]
    fields = ["frame.number", "frame.protocols", "esp.spi", "esp.sequence",
              "esp.icv_good", "esp.icv_bad", "esp.protocol", "esp.pad_len",
              "esp.contained_data", "_ws.malformed"]
    rows = run_tshark(tshark, sa, args.inp, fields, disable_upper=False)
    if any(len(r) >= len(fields) and r[len(fields) - 1] for r in rows):
        # dissect_esp() adds esp.icv_good/bad only *after* dissecting the inner
        # packet, so an exception in e.g. the DNS dissector hides the ICV
        # verdict.  Redo the run with every protocol above IP disabled.
        rows = run_tshark(tshark, sa, args.inp, fields, disable_upper=True)
    n = len(rows)
    if args.expect_count is not None and n != args.expect_count:
        raise Fail("%s holds %d frames, expected %d" % (args.inp, n, args.expect_count))
    if n == 0 and args.expect_count is None:
        raise Fail("%s holds no frames (use --expect-count 0 if intended)" % args.inp)
    if expect_inner is not None and len(expect_inner) != n:
        raise Fail("--expect-inner holds %d frames, ESP capture %d" % (len(expect_inner), n))
    for i, row in enumerate(rows, 1):
        num, protos, spi, seq, good, bad, nh, padlen, contained, malformed = \
            row[:len(fields)]
        where = "packet %d (tshark frame %s)" % (i, num)
        if not spi:
            raise Fail("%s: tshark found no ESP layer (protocols %s)" % (where, protos))
        if malformed:
            raise Fail("%s: tshark flags the packet as malformed (protocols %s)%s" % (
                where, protos, "; the ICV verdict is lost when that happens"
                if not good else ""))
        if "|" in spi:
            raise Fail("%s: more than one ESP layer" % where)
        if int(spi, 0) != sa["spi"]:
            raise Fail("%s: SPI %s, expected 0x%08x" % (where, spi, sa["spi"]))
        if not sa["esn"]:
            if not good:
                raise Fail("%s: tshark did not check the ICV (SA not matched? "
                           "protocols %s)" % (where, protos))
            if not _truthy(good) or _truthy(bad):
                raise Fail("%s: tshark reports the ICV bad (esp.icv_good=%s "
                           "esp.icv_bad=%s)" % (where, good, bad))
        if not nh:
            raise Fail("%s: tshark did not decrypt/dissect the inner packet "
                       "(protocols %s)" % (where, protos))
        inner_proto = {"4": "ip", "41": "ipv6"}.get(str(int(nh, 0)))
        chain = protos.split(":")
        if inner_proto is None or "esp" not in chain or \
                chain.index("esp") + 1 >= len(chain) or \
                chain[chain.index("esp") + 1] != inner_proto:
            raise Fail("%s: decrypted inner packet not dissected as IP "
                       "(next header %s, protocols %s)" % (where, nh, protos))
        if expect_inner is not None:
            got = bytes.fromhex(contained.replace(":", ""))
            if got != expect_inner[i - 1]:
                raise Fail("%s: tshark's decrypted inner packet differs from "
                           "%s frame %d" % (where, args.expect_inner, i))
    if sa["esn"]:
        sys.stderr.write("%s: warning: %s; only decryption and dissection were "
                         "checked\n" % (PROG, ESN_NOTE))
        print("ok %d packets decrypted, icv unchecked (esn)" % n)
    else:
        print("ok %d packets icv good" % n)
    return 0


# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="espref.py",
        description="Independent ESP (RFC 4303 tunnel mode) reference: Scapy "
                    "encrypt/decrypt and tshark cross-checks.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def seqarg(p):
        p.add_argument("--seq", type=int, default=None,
                       help="sequence number of the first packet (overrides SA seq)")

    p = sub.add_parser("encrypt", help="inner Ethernet frames -> ESP frames")
    p.add_argument("--sa", required=True)
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    seqarg(p)
    p = sub.add_parser("decrypt", help="check+decrypt ESP frames -> inner frames")
    p.add_argument("--sa", required=True)
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--expect-count", type=int, default=None)
    seqarg(p)
    p = sub.add_parser("tshark-uat", help="print Wireshark esp_sa UAT lines")
    p.add_argument("--sa", required=True)
    p = sub.add_parser("tshark-check", help="check ESP frames with tshark")
    p.add_argument("--sa", required=True)
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--expect-count", type=int, default=None)
    p.add_argument("--expect-inner", default=None,
                   help="Ethernet pcap of the expected inner packets; tshark's "
                        "decrypted payloads must equal them byte for byte")
    args = ap.parse_args(argv)
    handler = {"encrypt": cmd_encrypt, "decrypt": cmd_decrypt,
               "tshark-uat": cmd_tshark_uat, "tshark-check": cmd_tshark_check}
    try:
        return handler[args.cmd](args)
    except Fail as e:
        die("%s: %s" % (args.cmd, e))


if __name__ == "__main__":
    sys.exit(main())
