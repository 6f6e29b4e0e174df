"""The wire protocol of docs/protocol.md as a pure codec: request frames
to bytes, bytes to answer frames. No sockets here (the client is
``client.py``), so it can be driven by any I/O, tested byte for byte, and
fed a stream cut anywhere.

A frame is a big-endian u32 body length, then the body: one MessagePack
array whose first element is the frame type.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Dict, FrozenSet, List, Optional, Tuple, Union

import msgpack

from .errors import NodeError, ProtocolError, node_error

MAGIC = "QUIRE"
VERSION = 1
PREFIX_BYTES = 4
#: The largest answer body this client reads (a node's AGENTS answer for
#: many agents can be large; anything over this is not a Quire node).
DEFAULT_MAX_ANSWER_BYTES = 64 << 20


class Code(IntEnum):
    """Frame types."""

    HELLO = 1
    WELCOME = 2
    SEND = 3
    CALL = 4
    REPLY = 5
    OK = 6
    DEPLOY = 7
    UNDEPLOY = 8
    LIST_AGENTS = 9
    AGENTS = 10
    STATS = 11
    STATS_REPLY = 12
    CLUSTER = 13
    MEMBERS = 14
    PING = 15
    PONG = 16
    ERROR = 17
    DEPLOY_MANY = 18
    DEPLOYED = 19
    WHERE = 20
    LOCATION = 21
    RELOAD = 22
    STOP = 23
    START = 24
    AGENT_INFO = 25
    LIST_PATTERNS = 26
    PATTERNS = 27


class Priority(IntEnum):
    """A message's priority class: a shard serves higher classes first."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


# ---- requests -------------------------------------------------------------


def frame(fields: List[Any]) -> bytes:
    """One frame: the length prefix and ``fields`` as a MessagePack array
    (``bytes`` travel as MessagePack bin, ``str`` as str)."""
    body = msgpack.packb(fields, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def hello(credential: Optional[str]) -> bytes:
    return frame([Code.HELLO, MAGIC, VERSION, "client", credential, None])


def send(
    req: int,
    to: str,
    payload: bytes,
    priority: int = Priority.NORMAL,
    ttl_ms: Optional[int] = None,
    durable_key: Optional[str] = None,
) -> bytes:
    fields = [Code.SEND, req, to, bytes(payload), int(priority), ttl_ms]
    if durable_key is not None:
        fields.append(durable_key)
    return frame(fields)


def call(req: int, to: str, payload: bytes, priority: int = Priority.NORMAL, timeout_ms: int = 0) -> bytes:
    return frame([Code.CALL, req, to, bytes(payload), int(priority), timeout_ms])


def _with_settings(fields: List[Any], settings: Optional[Dict[str, Any]]) -> bytes:
    """DEPLOY / RELOAD: the settings map (revision 1.3) only when there are
    settings, so a plain deploy is the frame older nodes know."""
    if settings:
        for key, value in settings.items():
            if not isinstance(value, (int, str, bool)) or (isinstance(value, int) and value < 0):
                raise ValueError(f"deploy setting {key}={value!r}: a number, a word or a flag")
        fields.append(dict(settings))
    return frame(fields)


def deploy(req: int, name: str, module: bytes, settings: Optional[Dict[str, Any]] = None) -> bytes:
    return _with_settings([Code.DEPLOY, req, name, bytes(module)], settings)


def deploy_many(req: int, names: List[str], module: bytes) -> bytes:
    return frame([Code.DEPLOY_MANY, req, list(names), bytes(module)])


def undeploy(req: int, name: str) -> bytes:
    return frame([Code.UNDEPLOY, req, name])


def reload(req: int, name: str, module: bytes, settings: Optional[Dict[str, Any]] = None) -> bytes:
    return _with_settings([Code.RELOAD, req, name, bytes(module)], settings)


def stop(req: int, name: str) -> bytes:
    return frame([Code.STOP, req, name])


def start(req: int, name: str) -> bytes:
    return frame([Code.START, req, name])


def agent_info(req: int, name: str) -> bytes:
    return frame([Code.AGENT_INFO, req, name])


def list_patterns(req: int) -> bytes:
    return frame([Code.LIST_PATTERNS, req])


def list_agents(req: int) -> bytes:
    return frame([Code.LIST_AGENTS, req])


def stats(req: int) -> bytes:
    return frame([Code.STATS, req])


def cluster(req: int) -> bytes:
    return frame([Code.CLUSTER, req])


def where(req: int, name: str) -> bytes:
    return frame([Code.WHERE, req, name])


def ping(req: int) -> bytes:
    return frame([Code.PING, req])


# ---- answers --------------------------------------------------------------


@dataclass
class Limits:
    """What a connection may send and leave unread (WELCOME's 6th and 7th
    fields; older nodes do not state them), and how many requests it may
    have unanswered (the 10th field, protocol 1.3; ``None`` when the node
    states no window)."""

    max_frame_bytes: int
    max_unsent_bytes: int
    max_requests_in_flight: Optional[int] = None


@dataclass
class Access:
    """The credential a node took for the connection (a token's name,
    ``admin`` or ``anonymous``) and the scopes it grants (``message``,
    ``read``, ``admin``): WELCOME's 8th and 9th fields, protocol 1.3."""

    credential: str
    scopes: FrozenSet[str]


@dataclass
class Welcome:
    version: int
    node: str
    shard: int
    shards: int
    limits: Optional[Limits] = None
    access: Optional[Access] = None


@dataclass
class AgentInfo:
    """One row of an AGENTS answer (the last three fields come from newer
    nodes only)."""

    name: str
    shard: int
    state: str
    version: Optional[str]
    queued: int
    failures: int
    restarts: int
    activations: int
    memory_bytes: int
    busy_ns: int = 0
    state_bytes: int = 0
    calls_waiting: int = 0
    last_error: Optional[str] = None


@dataclass
class Member:
    name: str
    addr: str
    state: str
    shards: int


@dataclass
class Location:
    """Where an agent name lives: the owning node and shard; ``deployed``
    is None when the answering node is not the owner (ask ``addr``)."""

    node: str
    addr: str
    state: str
    shard: int
    deployed: Optional[bool]


@dataclass
class Deployed:
    """A DEPLOY_MANY answer: the module's hash and the names refused, each
    with its reason (every other name is deployed)."""

    hash: str
    failed: List[Tuple[str, str]] = field(default_factory=list)


#: An answer's content, by frame: REPLY bytes, OK str or None, AGENTS a
#: list of AgentInfo, STATS_REPLY a list of dicts, MEMBERS a list of
#: Member, LOCATION a Location, DEPLOYED a Deployed, PONG None, ERROR the
#: NodeError.
Content = Union[bytes, str, None, List[AgentInfo], List[Dict[str, int]], List[Member], Location, Deployed, NodeError]


@dataclass
class Answer:
    """A node's answer to request ``req`` (0: an ERROR about the whole
    connection, which the node closes after it)."""

    code: Code
    req: int
    content: Content


def decode_body(body: bytes) -> Union[Welcome, Answer]:
    """One frame body; raises ProtocolError when it is none a node sends."""
    try:
        fields = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as e:  # msgpack raises several types for bad input
        raise ProtocolError(f"not MessagePack: {e}") from None
    if not isinstance(fields, list) or not fields or not isinstance(fields[0], int):
        raise ProtocolError("a frame body is an array starting with its type")
    try:
        code = Code(fields[0])
    except ValueError:
        raise ProtocolError(f"unknown frame type {fields[0]}") from None
    try:
        return _decode(code, fields)
    except (IndexError, TypeError, ValueError) as e:
        raise ProtocolError(f"malformed {code.name}: {e}") from None


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode()
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return v


def _uint(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise TypeError(f"expected an unsigned integer, got {v!r}")
    return v


def _decode(code: Code, f: List[Any]) -> Union[Welcome, Answer]:
    if code == Code.WELCOME:
        limits = Limits(_uint(f[5]), _uint(f[6])) if len(f) >= 7 else None
        access = None
        if limits is not None and len(f) >= 10:
            if not isinstance(f[8], list):
                raise TypeError(f"expected a list of scopes, got {f[8]!r}")
            access = Access(_text(f[7]), frozenset(_text(s) for s in f[8]))
            window = _uint(f[9])
            limits.max_requests_in_flight = window or None
        return Welcome(_uint(f[1]), _text(f[2]), _uint(f[3]), _uint(f[4]), limits, access)
    req = _uint(f[1])
    if code == Code.REPLY:
        payload = f[2]
        return Answer(code, req, payload if isinstance(payload, bytes) else _text(payload).encode())
    if code == Code.OK:
        return Answer(code, req, None if f[2] is None else _text(f[2]))
    if code == Code.AGENTS:
        rows = []
        for r in f[2]:
            if not isinstance(r, list) or len(r) < 9:
                raise ValueError("an agent row has at least 9 fields")
            version = None if r[3] is None else _text(r[3])
            nums = [_uint(x) for x in r[4:12]]
            last_error = None if len(r) < 13 or r[12] is None else _text(r[12])
            rows.append(AgentInfo(_text(r[0]), _uint(r[1]), _text(r[2]), version, *nums, last_error=last_error))
        return Answer(code, req, rows)
    if code == Code.PATTERNS:
        return Answer(code, req, [(_text(p[0]), _text(p[1])) for p in f[2]])
    if code == Code.STATS_REPLY:
        return Answer(code, req, [{_text(k): _uint(v) for k, v in m.items()} for m in f[2]])
    if code == Code.MEMBERS:
        return Answer(code, req, [Member(_text(m[0]), _text(m[1]), _text(m[2]), _uint(m[3])) for m in f[2]])
    if code == Code.LOCATION:
        deployed = f[6]
        if deployed is not None and not isinstance(deployed, bool):
            raise TypeError("deployed is a bool or nil")
        return Answer(code, req, Location(_text(f[2]), _text(f[3]), _text(f[4]), _uint(f[5]), deployed))
    if code == Code.DEPLOYED:
        failed = [(_text(n), _text(r)) for n, r in f[3]]
        return Answer(code, req, Deployed(_text(f[2]), failed))
    if code == Code.PONG:
        return Answer(code, req, None)
    if code == Code.ERROR:
        detail = f[4] if len(f) > 4 else None
        err = node_error(_uint(f[2]), _text(f[3]), None if detail is None else _text(detail), req)
        return Answer(code, req, err)
    raise ProtocolError(f"{code.name} is a request, not an answer")


class Decoder:
    """Frames out of a byte stream fed in pieces of any size.

    >>> d = Decoder()
    >>> d.feed(frame([Code.PONG, 7])[:3])
    []
    >>> d.feed(frame([Code.PONG, 7])[3:])
    [Answer(code=<Code.PONG: 16>, req=7, content=None)]
    """

    def __init__(self, max_body: int = DEFAULT_MAX_ANSWER_BYTES):
        self._buf = bytearray()
        self._max = max_body

    def feed(self, data: bytes) -> List[Union[Welcome, Answer]]:
        self._buf += data
        out = []
        while len(self._buf) >= PREFIX_BYTES:
            (length,) = struct.unpack_from(">I", self._buf)
            if length > self._max:
                raise ProtocolError(f"an answer of {length} bytes is over this client's maximum of {self._max}")
            if len(self._buf) < PREFIX_BYTES + length:
                break
            body = bytes(self._buf[PREFIX_BYTES : PREFIX_BYTES + length])
            del self._buf[: PREFIX_BYTES + length]
            out.append(decode_body(body))
        return out

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished frame held."""
        return len(self._buf)
