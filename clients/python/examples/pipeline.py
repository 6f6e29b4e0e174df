"""Pipelined calls on one connection: keeps WINDOW calls in flight to one
agent and reports calls per second and the median round trip (the Rust
client's `examples/pipeline.rs` does the same).

    quire deploy sdk/prebuilt/echo.wasm --name echo --token T
    PYTHONPATH=clients/python python3 clients/python/examples/pipeline.py 127.0.0.1:7400 echo 100000 64
"""

import sys
import time
from collections import deque

from quire_client import Client

args = sys.argv[1:] + [None] * 4
addr = args[0] or "127.0.0.1:7400"
agent = args[1] or "echo"
calls = int(args[2] or 100_000)
window = int(args[3] or 64)

with Client(addr) as node:
    in_flight, rtts = deque(), []
    start, sent = time.perf_counter(), 0
    while len(rtts) < calls:
        while sent < calls and len(in_flight) < window:
            in_flight.append((time.perf_counter(), node.start_call(agent, b"ping")))
            sent += 1
        at, oldest = in_flight.popleft()
        oldest.result()
        rtts.append(time.perf_counter() - at)
    elapsed = time.perf_counter() - start
    rtts.sort()
    print(f"{calls} calls, window {window}: {calls / elapsed:.0f} calls/s, "
          f"round trip p50 {rtts[len(rtts) // 2] * 1e6:.0f} µs p99 {rtts[len(rtts) * 99 // 100] * 1e6:.0f} µs")
