"""A Python client for Quire nodes (docs/protocol.md, version 1).

``Client`` talks to one node: calls, sends, deploys, reads agents, stats,
members and locations; requests pipeline through ``start_*`` methods.
``protocol`` is the codec alone; ``errors`` one class per error code.
"""

from .client import AnswerTimeout, Client, Pending
from .errors import (
    BadFrame,
    ConnectionLost,
    DeployFailed,
    ErrorCode,
    FrameTooLarge,
    HandshakeRequired,
    Internal,
    NodeError,
    NotFound,
    NotOwner,
    ProtocolError,
    QuireError,
    Rejected,
    SlowClient,
    Timeout,
    Unauthorized,
    UnknownFrame,
    UnsupportedVersion,
    WindowFull,
)
from .protocol import Access, AgentInfo, Deployed, Limits, Location, Member, Priority

__all__ = [
    "Access", "AgentInfo", "AnswerTimeout", "BadFrame", "Client", "ConnectionLost", "Deployed",
    "DeployFailed", "ErrorCode", "FrameTooLarge", "HandshakeRequired", "Internal",
    "Limits", "Location", "Member", "NodeError", "NotFound", "NotOwner", "Pending",
    "Priority", "ProtocolError", "QuireError", "Rejected", "SlowClient", "Timeout",
    "Unauthorized", "UnknownFrame", "UnsupportedVersion", "WindowFull",
]
