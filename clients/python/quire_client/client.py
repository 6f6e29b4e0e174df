"""A blocking client for one Quire node: a socket, the handshake, and the
answers owed on it.

Requests can be pipelined: every ``start_*`` method writes its frame (in
a buffer, flushed when an answer is awaited or the buffer grows) and
returns a ``Pending``; answers come in the order they complete and are
matched by request number. The plain methods (``call``, ``send``, ...)
are ``start_*(...).result()``.

Nothing owed is dropped without a word: when the connection breaks, every
request still owed raises ``ConnectionLost`` (the node may or may not have
acted on it). The next request opens a new connection (a few tries, with
back-off); read-only requests (``agents``, ``stats``, ``members``,
``where``, ``ping``) are sent again once on it by themselves.
"""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import msgpack

from . import protocol as p
from .errors import ConnectionLost, ErrorCode, FrameTooLarge, ProtocolError, QuireError
from .protocol import Answer, Code, Priority, Welcome

#: Frames are written in one syscall once this many bytes wait.
FLUSH_BYTES = 64 * 1024


class AnswerTimeout(QuireError):
    """No answer within the client's wait; the request is still owed and
    ``Pending.result()`` may be called again."""


class Pending:
    """An answer the node owes. ``result()`` waits for it and returns its
    content, or raises the node's error (``Rejected``, ``Timeout``, ...) or
    ``ConnectionLost``."""

    def __init__(self, client: "Client", req: int, expect: Code, convert: Callable[[Any], Any]):
        self._client = client
        self.req = req
        self._expect = expect
        self._convert = convert
        self._outcome: Optional[Answer] = None
        self._lost: Optional[ConnectionLost] = None

    def done(self) -> bool:
        """Whether the answer (or the loss) is known, without waiting."""
        return self._outcome is not None or self._lost is not None

    def result(self, timeout: Optional[float] = None) -> Any:
        if not self.done():
            self._client._wait_for(self, timeout)
        if self._lost is not None:
            raise self._lost
        answer = self._outcome
        assert answer is not None
        if answer.code == Code.ERROR:
            raise answer.content
        if answer.code != self._expect:
            raise ProtocolError(f"request {self.req}: expected {self._expect.name}, got {answer.code.name}")
        return self._convert(answer.content)


def _parse_addr(addr: str):
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address {addr!r} is not host:port")
    return host.strip("[]"), int(port)


class Client:
    """A connection to one node.

    >>> with Client("127.0.0.1:7400", token="t") as c:      # doctest: +SKIP
    ...     c.deploy("echo", open("sdk/prebuilt/echo.wasm", "rb").read())
    ...     c.call("echo", b"hi")
    b'hi'
    """

    def __init__(
        self,
        addr: str = "127.0.0.1:7400",
        token: Optional[str] = None,
        *,
        connect_timeout: float = 5.0,
        timeout: float = 30.0,
        reconnect_attempts: int = 5,
        reconnect_backoff: float = 0.05,
        tls_ca: Optional[str] = None,
        tls_name: Optional[str] = None,
    ):
        self.addr = addr
        # TLS (a node with [network.tls]): trust the authority in the PEM
        # file tls_ca (``quire certs`` writes ca.pem) and check the node's
        # certificate for tls_name, by default the host of addr.
        self._tls: Optional[ssl.SSLContext] = None
        if tls_ca is not None:
            self._tls = ssl.create_default_context(cafile=tls_ca)
        self._tls_name = tls_name
        self._target = _parse_addr(addr)
        self._token = token
        self._connect_timeout = connect_timeout
        self.timeout = timeout
        self._attempts = max(1, reconnect_attempts)
        self._backoff = reconnect_backoff
        self._sock: Optional[socket.socket] = None
        self._decoder = p.Decoder()
        self._out = bytearray()
        self._owed: Dict[int, Pending] = {}
        self._next_req = 0
        self.welcome: Optional[Welcome] = None
        self.reconnects = 0
        self._connect()

    # ---- the connection ---------------------------------------------------

    def _connect(self) -> None:
        sock = socket.create_connection(self._target, timeout=self._connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_hostname=self._tls_name or self._target[0])
            except BaseException:
                sock.close()
                raise
        decoder = p.Decoder()
        try:
            sock.sendall(p.hello(self._token))
            while True:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionLost(f"{self.addr} closed the connection during the handshake")
                frames = decoder.feed(data)
                if frames:
                    break
        except BaseException:
            sock.close()
            raise
        first = frames[0]
        if isinstance(first, Answer) and first.code == Code.ERROR:
            sock.close()
            raise first.content
        if not isinstance(first, Welcome):
            sock.close()
            raise ProtocolError(f"expected WELCOME, got {first}")
        sock.settimeout(self.timeout)
        self._sock, self._decoder, self.welcome = sock, decoder, first
        for extra in frames[1:]:
            self._deliver(extra)

    def _ensure_connected(self) -> None:
        if self._sock is not None:
            return
        last: Optional[BaseException] = None
        for attempt in range(self._attempts):
            try:
                self._connect()
                self.reconnects += 1
                return
            except (OSError, ConnectionLost) as e:
                last = e
                time.sleep(self._backoff * (2**attempt))
        raise ConnectionLost(f"could not reconnect to {self.addr} in {self._attempts} tries: {last}", last)

    def _break(self, why: str, cause: Optional[BaseException] = None) -> None:
        """The connection is gone: every request owed on it learns so."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._out.clear()
        owed, self._owed = self._owed, {}
        for pending in owed.values():
            pending._lost = ConnectionLost(f"request {pending.req}: {why}", cause)

    def close(self) -> None:
        """Closes the connection; requests still owed raise
        ConnectionLost."""
        self._break("the client closed the connection")

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def node(self) -> str:
        """The node's name, from its WELCOME."""
        return self.welcome.node if self.welcome else ""

    @property
    def limits(self) -> Optional[p.Limits]:
        """The connection's limits, when the node states them."""
        return self.welcome.limits if self.welcome else None

    @property
    def access(self) -> Optional[p.Access]:
        """The credential the node took and the scopes it grants, when the
        node states them (protocol 1.3)."""
        return self.welcome.access if self.welcome else None

    @property
    def owed(self) -> int:
        """Requests sent whose answers have not come."""
        return len(self._owed)

    # ---- requests and answers ---------------------------------------------

    def _start(self, build: Callable[[int], bytes], expect: Code, convert: Callable[[Any], Any] = lambda c: c) -> Pending:
        self._make_room()
        self._ensure_connected()
        self._next_req += 1
        req = self._next_req
        data = build(req)
        limits = self.limits
        if limits is not None and len(data) - p.PREFIX_BYTES > limits.max_frame_bytes:
            # Caught here, with the connection kept: the node would close it.
            raise FrameTooLarge(
                ErrorCode.FRAME_TOO_LARGE,
                f"a frame of {len(data) - p.PREFIX_BYTES} bytes is over this connection's max_frame_bytes of {limits.max_frame_bytes}",
                None,
                req,
            )
        pending = Pending(self, req, expect, convert)
        self._owed[req] = pending
        self._out += data
        if len(self._out) >= FLUSH_BYTES:
            self.flush()
        return pending

    def _make_room(self) -> None:
        """Keeps within the node's window of requests in flight: at the
        window, waits for the oldest owed answer (it may raise for that
        request's caller later, not here: its outcome stays on its
        Pending)."""
        limits = self.limits
        window = limits.max_requests_in_flight if limits else None
        while window is not None and self._sock is not None and len(self._owed) >= window:
            self._wait_for(self._owed[min(self._owed)], None)

    def flush(self) -> None:
        """Writes the frames buffered so far."""
        if not self._out or self._sock is None:
            return
        try:
            self._sock.sendall(self._out)
            self._out.clear()
        except OSError as e:
            self._break(f"writing to {self.addr} failed: {e}", e)

    def _deliver(self, frame) -> None:
        if not isinstance(frame, Answer):
            raise ProtocolError(f"unexpected {type(frame).__name__} after the handshake")
        if frame.req == 0:
            # An ERROR about the connection; the node closes it.
            self._break(f"the node closed the connection: {frame.content}", frame.content)
            return
        pending = self._owed.pop(frame.req, None)
        if pending is not None:
            pending._outcome = frame

    def _wait_for(self, pending: Pending, timeout: Optional[float]) -> None:
        self.flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not pending.done():
            if self._sock is None:
                # Cannot happen: a broken connection marks every request
                # owed on it.
                raise ConnectionLost(f"request {pending.req}: not connected")
            wait = self.timeout if deadline is None else min(self.timeout, deadline - time.monotonic())
            if wait <= 0:
                raise AnswerTimeout(f"no answer to request {pending.req} within {timeout} s")
            self._sock.settimeout(wait)
            try:
                data = self._sock.recv(1 << 20)
            except socket.timeout:
                if deadline is None:
                    raise AnswerTimeout(f"no answer to request {pending.req} within {self.timeout} s") from None
                continue
            except OSError as e:
                self._break(f"reading from {self.addr} failed: {e}", e)
                continue
            if not data:
                self._break(f"{self.addr} closed the connection")
                continue
            for frame in self._decoder.feed(data):
                self._deliver(frame)

    def _read_only(self, start: Callable[[], Pending]) -> Any:
        """A request that changes nothing, sent again once when the
        connection broke before its answer."""
        try:
            return start().result()
        except ConnectionLost:
            return start().result()

    # ---- messages ---------------------------------------------------------

    def start_call(self, to: str, payload: bytes, *, priority: int = Priority.NORMAL, timeout_ms: int = 0) -> Pending:
        """CALL, pipelined: ``.result()`` is the reply's payload."""
        return self._start(lambda r: p.call(r, to, payload, priority, timeout_ms), Code.REPLY)

    def call(self, to: str, payload: bytes, *, priority: int = Priority.NORMAL, timeout_ms: int = 0) -> bytes:
        """Calls agent ``to`` and returns its reply (``timeout_ms`` 0: the
        node's 5 s)."""
        return self.start_call(to, payload, priority=priority, timeout_ms=timeout_ms).result()

    def call_msgpack(self, to: str, value: Any, **kw) -> Any:
        """A call whose payload and reply are MessagePack values."""
        reply = self.call(to, msgpack.packb(value, use_bin_type=True), **kw)
        return msgpack.unpackb(reply, raw=False)

    def start_send(
        self,
        to: str,
        payload: bytes,
        *,
        priority: int = Priority.NORMAL,
        ttl_ms: Optional[int] = None,
        durable_key: Optional[str] = None,
    ) -> Pending:
        """SEND, pipelined: ``.result()`` is the message id once it is
        queued at its agent (``"duplicate"`` for a durable key seen
        before)."""
        return self._start(lambda r: p.send(r, to, payload, priority, ttl_ms, durable_key), Code.OK)

    def send(self, to: str, payload: bytes, **kw) -> str:
        """Sends a one-way message; returns once it is queued at its agent
        (with ``durable_key``: committed on its shard)."""
        return self.start_send(to, payload, **kw).result()

    def send_unacknowledged(self, to: str, payload: bytes, *, priority: int = Priority.NORMAL) -> None:
        """SEND with request 0: the node answers nothing, not even a
        refusal. For fire-and-forget load only."""
        self._ensure_connected()
        self._out += p.send(0, to, payload, priority)
        if len(self._out) >= FLUSH_BYTES:
            self.flush()

    # ---- deployments ------------------------------------------------------

    def deploy(self, name: str, module: bytes, **settings) -> str:
        """Deploys a WebAssembly module under ``name`` (or a pattern
        ``prefix-*``); returns the module's BLAKE3 hash. Needs the admin
        scope. ``settings`` are this agent's limits and supervision by the
        names of the node's ``[wasm.limits]`` / ``[wasm.supervision]``
        (``fuel_per_message=50_000, policy="stop"``); the others keep the
        node's defaults, and one the node cannot take fails the deploy
        (``DeployFailed`` naming it)."""
        return self._start(lambda r: p.deploy(r, name, module, settings), Code.OK).result()

    def deploy_many(self, names: List[str], module: bytes) -> p.Deployed:
        """One module under many names; each name succeeds or fails on its
        own (``Deployed.failed``)."""
        return self._start(lambda r: p.deploy_many(r, names, module), Code.DEPLOYED).result()

    def undeploy(self, name: str) -> None:
        """Removes an agent or pattern (``NotFound`` when there is none)."""
        self._start(lambda r: p.undeploy(r, name), Code.OK, lambda _: None).result()

    def reload(self, name: str, module: bytes, **settings) -> str:
        """Replaces a deployed agent's module in place (its state and queue
        are kept); returns the new module's hash. Needs the admin scope.
        ``settings`` as for ``deploy``."""
        return self._start(lambda r: p.reload(r, name, module, settings), Code.OK).result()

    def stop(self, name: str) -> None:
        """Stops an agent: it keeps state and queue; messages to it are
        refused ``agent_stopped`` until ``start``. Needs the admin scope."""
        self._start(lambda r: p.stop(r, name), Code.OK, lambda _: None).result()

    def start(self, name: str) -> None:
        """Starts a stopped (or quarantined) agent again."""
        self._start(lambda r: p.start(r, name), Code.OK, lambda _: None).result()

    # ---- reading the node -------------------------------------------------

    def info(self, name: str) -> p.AgentInfo:
        """One agent's figures (``NotFound`` when there is none)."""
        rows = self._read_only(lambda: self._start(lambda r: p.agent_info(r, name), Code.AGENTS))
        if len(rows) != 1:
            raise ProtocolError(f"AGENT_INFO {name}: {len(rows)} rows")
        return rows[0]

    def agents(self) -> List[p.AgentInfo]:
        """Every agent of the node, with its figures."""
        return self._read_only(lambda: self._start(p.list_agents, Code.AGENTS))

    def patterns(self) -> List[Tuple[str, str]]:
        """The node's name patterns (``prefix-*``), each with its module's
        short hash."""
        return self._read_only(lambda: self._start(p.list_patterns, Code.PATTERNS))

    def stats(self) -> List[Dict[str, int]]:
        """Per-shard counters."""
        return self._read_only(lambda: self._start(p.stats, Code.STATS_REPLY))

    def members(self) -> List[p.Member]:
        """The cluster as this node sees it, this node first."""
        return self._read_only(lambda: self._start(p.cluster, Code.MEMBERS))

    def where(self, name: str) -> p.Location:
        """Where agent ``name`` lives, as this node sees the cluster."""
        return self._read_only(lambda: self._start(lambda r: p.where(r, name), Code.LOCATION))

    def ping(self) -> float:
        """A round trip to the node, in seconds."""

        def once() -> float:
            t = time.perf_counter()
            self._start(p.ping, Code.PONG).result()
            return time.perf_counter() - t

        try:
            return once()
        except ConnectionLost:
            return once()
