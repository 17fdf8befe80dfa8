"""Errors of the runtime layer (daemon, home, truth, Redis bridge)."""

from node.errors import ConfigError, NodeError, UsageError


class HomeError(ConfigError):
    """The home directory is missing, not writable, or not initialised."""


class AlreadyRunning(ConfigError):
    """Another daemon holds the lock on this home."""


class TruthInvalid(ConfigError):
    """A truth document does not follow the schema."""


class PhaseError(UsageError):
    """A phase transition was asked for that the table does not allow."""


class StartupFailed(NodeError):
    """A blocking startup component did not report ready within the grace timeout."""


class RedisUnavailable(NodeError):
    """The Redis server cannot be reached right now (callers retry; the node keeps running)."""
