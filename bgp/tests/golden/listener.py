#!/usr/bin/env python3
"""Minimal passive BGP speaker that records every message a real daemon sends.

It accepts one connection, answers the peer's OPEN with its own OPEN and a KEEPALIVE,
then writes every message it receives (and the ones it sends) to --out, one per line:

    rx UPDATE ffffffff...

Once the peer has sent End-of-RIB for every family in --families it optionally sends a
ROUTE-REFRESH (to make an Enhanced Route Refresh speaker answer with BoRR/EoRR), then
runs each --then command in turn (e.g. `birdc reload in` so the peer sends a
ROUTE-REFRESH, or `birdc disable` so it sends a NOTIFICATION) and stops when the peer
closes the session or --timeout passes. Only the Python standard library is used.
"""

import argparse
import select
import socket
import struct
import subprocess
import sys
import time

TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}
FAMILIES = {"ipv4": (1, 1), "ipv6": (2, 1)}


def message(kind, body):
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), kind) + body


def capability(code, value=b""):
    return struct.pack("!BB", code, len(value)) + value


def our_open(args):
    caps = b""
    for fam in args.families:
        afi, safi = FAMILIES[fam]
        caps += capability(1, struct.pack("!HBB", afi, 0, safi))
    caps += capability(2)  # route refresh
    caps += capability(70)  # enhanced route refresh
    if args.graceful_restart:
        value = struct.pack("!H", 120)
        for fam in args.families:
            afi, safi = FAMILIES[fam]
            value += struct.pack("!HBB", afi, safi, 0)
        caps += capability(64, value)
    if args.four_octet:
        caps += capability(65, struct.pack("!I", args.asn))
    if args.add_path:
        value = b""
        for fam in args.add_path:
            afi, safi = FAMILIES[fam]
            value += struct.pack("!HBB", afi, safi, 3)  # send and receive
        caps += capability(69, value)
    my_as = args.asn if args.asn < 65536 else 23456
    params = struct.pack("!BB", 2, len(caps)) + caps
    router_id = socket.inet_aton(args.router_id)
    body = struct.pack("!BHH", 4, my_as, args.hold) + router_id + struct.pack("!B", len(params)) + params
    return message(1, body)


def eor_message(fam):
    if fam == "ipv4":
        return message(2, b"\x00\x00\x00\x00")
    afi, safi = FAMILIES[fam]
    return message(2, b"\x00\x00\x00\x06" + struct.pack("!BBBHB", 0x80, 15, 3, afi, safi))


def end_of_rib(msg):
    """The family an End-of-RIB UPDATE is for, or None."""
    body = msg[19:]
    if body == b"\x00\x00\x00\x00":
        return "ipv4"
    if len(body) >= 4 and body[:2] == b"\x00\x00":
        (tal,) = struct.unpack("!H", body[2:4])
        attrs = body[4:]
        if tal == len(attrs) and len(attrs) in (6, 7):
            flags, code = attrs[0], attrs[1]
            value = attrs[4:] if flags & 0x10 else attrs[3:]
            if code == 15 and len(value) == 3:
                afi, safi = struct.unpack("!HB", value)
                for name, fam in FAMILIES.items():
                    if fam == (afi, safi):
                        return name
    return None


class Recorder:
    def __init__(self, path):
        self.out = open(path, "w")

    def log(self, direction, msg):
        kind = TYPES.get(msg[18], str(msg[18]))
        self.out.write(f"{direction} {kind} {msg.hex()}\n")
        self.out.flush()
        print(f"{direction} {kind} len={len(msg)}", file=sys.stderr)


def read_messages(conn, buf):
    data = conn.recv(65536)
    if not data:
        return buf, None
    buf += data
    msgs = []
    while len(buf) >= 19:
        (length,) = struct.unpack("!H", buf[16:18])
        if length < 19 or len(buf) < length:
            break
        msgs.append(buf[:length])
        buf = buf[length:]
    return buf, msgs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, default=179)
    p.add_argument("--out", required=True)
    p.add_argument("--asn", type=int, required=True)
    p.add_argument("--router-id", required=True)
    p.add_argument("--hold", type=int, default=90)
    p.add_argument("--families", default="ipv4,ipv6")
    p.add_argument("--four-octet", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--add-path", default="", help="families to offer ADD-PATH send/receive for")
    p.add_argument("--send-refresh", action="store_true")
    p.add_argument("--graceful-restart", action="store_true", help="offer graceful restart")
    p.add_argument("--then", action="append", default=[], help="shell command to run after End-of-RIB")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--settle", type=float, default=3,
                   help="seconds without UPDATE after which to go on although End-of-RIB is missing")
    args = p.parse_args()
    args.families = [f for f in args.families.split(",") if f]
    args.add_path = [f for f in args.add_path.split(",") if f]

    rec = Recorder(args.out)
    srv = socket.socket(socket.AF_INET6 if ":" in args.listen else socket.AF_INET)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.listen, args.port))
    srv.listen(1)
    srv.settimeout(args.timeout)
    conn, peer = srv.accept()
    print(f"connection from {peer}", file=sys.stderr)

    deadline = time.time() + args.timeout
    buf = b""
    pending_eor = set(args.families)
    commands = list(args.then)
    next_action = None
    refreshed = not args.send_refresh
    established = False
    last_update = time.time()
    while time.time() < deadline:
        ready, _, _ = select.select([conn], [], [], 0.2)
        if ready:
            try:
                buf, msgs = read_messages(conn, buf)
            except ConnectionResetError:
                break
            if msgs is None:
                break
            for m in msgs:
                rec.log("rx", m)
                if m[18] == 1:
                    for out in (our_open(args), message(4, b"")):
                        conn.sendall(out)
                        rec.log("tx", out)
                elif m[18] == 4 and not established:
                    established = True
                    last_update = time.time()
                    for fam in args.families:
                        conn.sendall(eor_message(fam))
                        rec.log("tx", eor_message(fam))
                elif m[18] == 2:
                    last_update = time.time()
                    fam = end_of_rib(m)
                    if fam in pending_eor:
                        pending_eor.discard(fam)
                        if not pending_eor:
                            next_action = time.time() + 1
                elif m[18] == 3:
                    deadline = time.time() + 1
        if (established and pending_eor and next_action is None
                and time.time() - last_update > args.settle):
            print("no End-of-RIB from the peer; going on", file=sys.stderr)
            pending_eor.clear()
            next_action = time.time()
        if next_action is not None and time.time() >= next_action:
            if not refreshed:
                afi, safi = FAMILIES[args.families[0]]
                rr = message(5, struct.pack("!HBB", afi, 0, safi))
                conn.sendall(rr)
                rec.log("tx", rr)
                refreshed = True
                next_action = time.time() + 3
            elif commands:
                cmd = commands.pop(0)
                print(f"running: {cmd}", file=sys.stderr)
                subprocess.run(cmd, shell=True, check=False)
                next_action = time.time() + 3
            else:
                next_action = None
    conn.close()
    srv.close()


if __name__ == "__main__":
    main()
