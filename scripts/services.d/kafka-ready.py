#!/usr/bin/env python3
"""Readiness probe for the local Kafka broker: exit 0 once it serves a Metadata request
that lists the broker itself, exit 1 (with the reason on stderr) otherwise.

An open TCP port is not enough: in KRaft mode the socket server opens before the broker has
registered with the controller and been unfenced, and until then clients get no brokers back.
So this sends a real Metadata v1 request (the KIP-4 wire format, answered by every broker since
0.10) and looks for (node id, host, port) in the reply. Stdlib only, so it runs anywhere
python3 does; scripts/services calls it in a polling loop with its own deadline.

Usage: kafka-ready.py [--host 127.0.0.1] [--port 59092] [--node-id 1] [--timeout 2]
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys

API_KEY_METADATA = 3
API_VERSION = 1
CORRELATION_ID = 0x4847  # "HG"; any value, checked on the way back


def metadata_request(client_id: bytes) -> bytes:
    # Request header v1: api_key int16, api_version int16, correlation_id int32,
    # client_id nullable string (int16 length + bytes).
    header = struct.pack(">hhih", API_KEY_METADATA, API_VERSION, CORRELATION_ID, len(client_id))
    # Metadata request v1 body: topics array. Empty (0) = no topic metadata, brokers only.
    # (-1 would mean "all topics", which can be large.)
    body = struct.pack(">i", 0)
    payload = header + client_id + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def int16(self) -> int:
        return self._unpack(">h")

    def int32(self) -> int:
        return self._unpack(">i")

    def nullable_string(self):
        length = self.int16()
        if length < 0:
            return None
        value = self.data[self.pos : self.pos + length].decode("utf-8")
        self.pos += length
        return value


def probe(host: str, port: int, node_id: int, timeout: float) -> str | None:
    """Returns None when ready, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(metadata_request(b"hourglass-kafka-ready"))
            (size,) = struct.unpack(">i", recv_exact(sock, 4))
            reader = Reader(recv_exact(sock, size))
    except (OSError, ConnectionError) as err:
        return f"no answer from {host}:{port}: {err}"

    try:
        # Response header v0: correlation_id. Metadata response v1: brokers
        # [node_id int32, host string, port int32, rack nullable string], controller_id int32, ...
        if reader.int32() != CORRELATION_ID:
            return "reply carries the wrong correlation id"
        brokers = []
        for _ in range(reader.int32()):
            broker_id = reader.int32()
            broker_host = reader.nullable_string()
            broker_port = reader.int32()
            reader.nullable_string()  # rack
            brokers.append((broker_id, broker_host, broker_port))
        controller_id = reader.int32()
    except struct.error as err:
        return f"malformed Metadata reply: {err}"

    if (node_id, host, port) in brokers:
        return None
    return (
        f"broker answered but does not list node {node_id} at {host}:{port} yet "
        f"(brokers={brokers}, controller={controller_id})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=59092)
    parser.add_argument("--node-id", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=2.0, help="socket timeout, seconds")
    args = parser.parse_args()

    reason = probe(args.host, args.port, args.node_id, args.timeout)
    if reason is None:
        print(f"kafka ready: node {args.node_id} at {args.host}:{args.port}")
        return 0
    print(f"kafka not ready: {reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
