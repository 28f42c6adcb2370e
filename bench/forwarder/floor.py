"""The latency floor: a bare client that copies MQTT payloads or the NTRIP stream to the pty with nothing else
(no framing, no checks, no reconnects). Not a product: it shows what the broker/caster path costs by itself."""

from __future__ import annotations

import argparse
import base64
import os
import socket
import ssl
import sys
import threading


def mqtt(args, fd: int) -> None:
    import paho.mqtt.client as paho  # noqa: PLC0415 - only this mode needs it

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=args.client_id)
    client.tls_set(ca_certs=args.ca, certfile=args.cert, keyfile=args.key)
    client.on_connect = lambda c, *a, **k: c.subscribe(args.topic, qos=0)
    client.on_message = lambda c, u, msg: os.write(fd, msg.payload)
    client.connect(args.host, args.port, keepalive=60)
    client.loop_forever()


def ntrip(args, fd: int) -> None:
    ctx = ssl.create_default_context(cafile=args.ca)
    raw = socket.create_connection((args.host, args.port), timeout=10)
    sock = ctx.wrap_socket(raw, server_hostname=args.host)
    auth = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
    sock.sendall(
        f"GET /{args.mountpoint} HTTP/1.1\r\nHost: {args.host}\r\nNtrip-Version: Ntrip/2.0\r\n"
        f"User-Agent: NTRIP bench-floor\r\nAuthorization: Basic {auth}\r\n\r\n".encode()
    )
    sock.settimeout(None)
    head = b""
    while not (head.startswith(b"ICY 200 OK\r\n") or b"\r\n\r\n" in head):
        chunk = sock.recv(4096)
        if not chunk:
            return
        head += chunk
    if head.startswith(b"ICY 200 OK\r\n"):  # str2str: a status line, maybe an empty line, then the stream
        body = head[len(b"ICY 200 OK\r\n") :]
        body = body.removeprefix(b"\r\n")
    else:
        body = head.split(b"\r\n\r\n", 1)[1]
    os.write(fd, body)
    while chunk := sock.recv(65536):
        os.write(fd, chunk)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("mqtt", "ntrip"))
    ap.add_argument("--device", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-id", default="bench-floor")
    ap.add_argument("--topic", default="/pp/ip/eu")
    ap.add_argument("--mountpoint")
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()
    fd = os.open(args.device, os.O_WRONLY | os.O_NOCTTY)
    threading.excepthook = lambda _: os._exit(1)
    (mqtt if args.mode == "mqtt" else ntrip)(args, fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
