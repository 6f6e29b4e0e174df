"""Starts a real ``quire node`` process for the tests: the binary named by
``QUIRE_BIN`` (the Rust test runtime/tests/python_client.rs sets it; by
hand, from clients/python: ``QUIRE_BIN=../../target/debug/quire
PYTHONPATH=. python3 -m unittest discover -s tests``), on fresh ports,
storage in a temporary folder."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import tempfile
import time

from quire_client import Client

TOKEN = "python-tests"
REPO = pathlib.Path(__file__).resolve().parents[3]
PREBUILT = REPO / "sdk" / "prebuilt"


def module(name: str) -> bytes:
    """One of the SDK's prebuilt example agents (echo, counter, ...)."""
    return (PREBUILT / f"{name}.wasm").read_bytes()


def _shards() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _free_port_block(n: int) -> int:
    """A port P with P..P+n free just now (TCP and UDP on 127.0.0.1)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65536:
            continue
        try:
            held = []
            for port in range(base, base + n):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    t = socket.socket(socket.AF_INET, kind)
                    held.append(t)
                    t.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for t in held:
                t.close()
    raise RuntimeError("no block of free ports")


class NodeProcess:
    """A running node; ``stop()`` sends SIGTERM, ``kill()`` SIGKILL,
    ``restart()`` starts it again on the same ports and storage."""

    def __init__(self, durability: str = "batched", env: dict | None = None, config: str | None = None,
                 tls_ca: str | None = None):
        binary = os.environ.get("QUIRE_BIN")
        if not binary:
            raise RuntimeError("QUIRE_BIN must name the quire binary (cargo build -p quire-runtime --bin quire)")
        self.binary = binary
        self.shards = _shards()
        self.durability = durability
        self.env = dict(env or {})
        self.tls_ca = tls_ca
        self.dir = tempfile.TemporaryDirectory(prefix="quire-py-")
        self.data = pathlib.Path(self.dir.name) / "data"
        self.stderr_path = pathlib.Path(self.dir.name) / "stderr.log"
        self.config = None
        if config is not None:
            self.config = pathlib.Path(self.dir.name) / "quire.toml"
            self.config.write_text(config)
        self.proc = None
        for _ in range(5):
            port = _free_port_block(self.shards + 2)
            self.addr = f"127.0.0.1:{port}"
            self.metrics = f"127.0.0.1:{port + self.shards + 1}"
            if self._start():
                return
        raise RuntimeError(f"the node did not start: {self.log()}")

    def _start(self) -> bool:
        env = {**os.environ, "QUIRE_LOG": "warn", **self.env}
        with open(self.stderr_path, "ab") as err:
            config = ["--config", str(self.config)] if self.config else []
            self.proc = subprocess.Popen(
                [self.binary, "node", *config, "--admin-token", TOKEN, "--listen", self.addr,
                 "--metrics", self.metrics, "--shards", str(self.shards),
                 "--durability", self.durability, "--data-dir", str(self.data)],
                stdout=subprocess.DEVNULL, stderr=err, env=env,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "Address already in use" in self.log():
                    return False
                raise RuntimeError(f"the node exited with {self.proc.returncode}: {self.log()}")
            try:
                Client(self.addr, reconnect_attempts=1, tls_ca=self.tls_ca).close()
                return True
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"the node never answered: {self.log()}")

    def client(self, token: str | None = TOKEN, **kw) -> Client:
        if self.tls_ca is not None:
            kw.setdefault("tls_ca", self.tls_ca)
        return Client(self.addr, token, **kw)

    def log(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _signal(self, sig: int) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def stop(self) -> int:
        return self._signal(signal.SIGTERM)

    def kill(self) -> int:
        return self._signal(signal.SIGKILL)

    def restart(self) -> None:
        for _ in range(50):
            if self._start():
                return
            time.sleep(0.1)
        raise RuntimeError(f"the node did not start again: {self.log()}")

    def close(self) -> None:
        self.kill()
        self.dir.cleanup()
