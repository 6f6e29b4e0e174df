"""Typed errors: one class per ERROR code of docs/protocol.md, plus the
client's own (a connection lost, a node speaking something else).

Every request a client makes ends in its answer or in one of these: a
request whose connection broke before its answer came raises
``ConnectionLost`` (the node may or may not have done it), never nothing.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Optional


class ErrorCode(IntEnum):
    """The ``code`` field of an ERROR frame."""

    BAD_FRAME = 1
    FRAME_TOO_LARGE = 2
    UNSUPPORTED_VERSION = 3
    UNAUTHORIZED = 4
    UNKNOWN_FRAME = 5
    REJECTED = 6
    TIMEOUT = 7
    DEPLOY_FAILED = 8
    NOT_OWNER = 9
    NOT_FOUND = 10
    SLOW_CLIENT = 11
    INTERNAL = 12
    HANDSHAKE_REQUIRED = 13
    WINDOW_FULL = 14


class QuireError(Exception):
    """Anything that went wrong talking to a node."""


class ConnectionLost(QuireError):
    """The connection closed or failed before this request's answer came:
    whether the node acted on it is not known. ``cause`` is the node's own
    connection-level ERROR when it sent one (e.g. ``SlowClient``)."""

    def __init__(self, message: str, cause: Optional[BaseException] = None):
        super().__init__(message)
        self.cause = cause


class ProtocolError(QuireError):
    """The node sent bytes that are not a valid answer (another program on
    that port, or a bug)."""


class NodeError(QuireError):
    """An ERROR frame from the node. ``code`` is its ErrorCode, ``message``
    the node's plain words, ``detail`` the machine-readable part (the
    rejection reason, the owner's address, ...)."""

    code = ErrorCode.INTERNAL

    def __init__(self, code: int, message: str, detail: Optional[str] = None, req: int = 0):
        text = f"{message} ({detail})" if detail else message
        super().__init__(text)
        try:
            self.code = ErrorCode(code)
        except ValueError:
            # A code from a newer node reads as INTERNAL (docs/protocol.md).
            self.code = ErrorCode.INTERNAL
        self.message = message
        self.detail = detail
        self.req = req

    @property
    def closes_connection(self) -> bool:
        """Whether the node closed the connection after it (req 0)."""
        return self.req == 0


class BadFrame(NodeError):
    """The node could not read a frame this client sent."""


class FrameTooLarge(NodeError):
    """A frame was over the connection's ``max_frame_bytes``."""


class UnsupportedVersion(NodeError):
    """The node does not speak this protocol version."""


class Unauthorized(NodeError):
    """A token the node does not know (at HELLO: the connection closes), or
    a request outside the scopes the connection's credential grants (the
    connection stays); ``scope`` names the scope it needed."""

    @property
    def scope(self) -> Optional[str]:
        return self.detail


class UnknownFrame(NodeError):
    """A frame type the node does not take from clients."""


class Rejected(NodeError):
    """The message was refused; ``reason`` says why (``no_such_agent``,
    ``queue_full``, ``agent_trapped``, ...)."""

    @property
    def reason(self) -> Optional[str]:
        return self.detail


class Timeout(NodeError):
    """No reply within the call's timeout."""


class DeployFailed(NodeError):
    """The module or the name was refused."""


class NotOwner(NodeError):
    """Another node owns that agent name; ``owner`` is its address."""

    @property
    def owner(self) -> Optional[str]:
        return self.detail


class NotFound(NodeError):
    """No such agent or pattern."""


class SlowClient(NodeError):
    """The node closed the connection: no HELLO in time, a frame left
    unfinished, or too many answers left unread."""


class Internal(NodeError):
    """The node failed (or sent a code this client does not know)."""


class HandshakeRequired(NodeError):
    """The first frame was not HELLO."""


class WindowFull(NodeError):
    """The connection had its window of requests unanswered (WELCOME's
    ``max_requests_in_flight``): this one was not acted on and may be sent
    again. ``Client`` keeps within the window by itself, so only a window
    the node shrank or another writer on the socket can cause it."""


_BY_CODE = {
    ErrorCode.BAD_FRAME: BadFrame,
    ErrorCode.FRAME_TOO_LARGE: FrameTooLarge,
    ErrorCode.UNSUPPORTED_VERSION: UnsupportedVersion,
    ErrorCode.UNAUTHORIZED: Unauthorized,
    ErrorCode.UNKNOWN_FRAME: UnknownFrame,
    ErrorCode.REJECTED: Rejected,
    ErrorCode.TIMEOUT: Timeout,
    ErrorCode.DEPLOY_FAILED: DeployFailed,
    ErrorCode.NOT_OWNER: NotOwner,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.SLOW_CLIENT: SlowClient,
    ErrorCode.INTERNAL: Internal,
    ErrorCode.HANDSHAKE_REQUIRED: HandshakeRequired,
    ErrorCode.WINDOW_FULL: WindowFull,
}


def node_error(code: int, message: str, detail: Optional[str] = None, req: int = 0) -> NodeError:
    """The typed error for an ERROR frame's fields."""
    try:
        cls = _BY_CODE[ErrorCode(code)]
    except ValueError:
        cls = Internal
    return cls(code, message, detail, req)
