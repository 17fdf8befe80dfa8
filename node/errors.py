"""The root of every error the node raises on purpose.

Two families matter to callers: a *peer* (or a user, or a file) broke a protocol or gave us bad
input (`ProtocolViolation`, `InvalidInput`), or *we* misused something (`UsageError`).  Each
layer has its own `errors.py` deriving from these.
"""


class NodeError(Exception):
    """Root of all node errors."""


class InvalidInput(NodeError):
    """Input from outside (a peer, a client, a file, a flag) is malformed or refused."""


class ProtocolViolation(InvalidInput):
    """A peer broke the protocol; the peer should be penalised."""


class UsageError(NodeError):
    """We misused an API (a bug in the caller, not bad input)."""


class ConfigError(InvalidInput):
    """A setting, a truth document or a home directory is not usable."""
