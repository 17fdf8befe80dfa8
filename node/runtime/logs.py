"""Logging through structlog, with per-logger levels (`info,consensus=debug`).

Layers call `get_logger("consensus")`; the name is bound as `logger_name` and a processor drops events
below that logger's level (the longest matching dotted prefix wins).  Output is `plain`
(key=value), `json` (one object per line) or `auto` (coloured on a terminal, plain otherwise).
Events go to whatever `sys.stderr` is at write time, so a rich live status line can redirect it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from node.config import parse_log_levels

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_METHOD_LEVELS = {"debug": 10, "info": 20, "msg": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40}
_METHOD_LEVELS["critical"] = 50


class _StderrLogger:
    """Writes to the current `sys.stderr` (not the one at configuration time)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class LevelFilter:
    def __init__(self, spec: str) -> None:
        default, per = parse_log_levels(spec)
        self.default = _LEVELS[default]
        self.per = sorted(((name, _LEVELS[level]) for name, level in per.items()), key=lambda p: -len(p[0]))

    def level_for(self, logger: str) -> int:
        for name, level in self.per:
            if logger == name or logger.startswith(name + "."):
                return level
        return self.default

    @property
    def minimum(self) -> int:
        return min([self.default, *(level for _, level in self.per)])

    def __call__(self, _logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if _METHOD_LEVELS.get(method, 20) < self.level_for(str(event.get("logger_name", ""))):
            raise structlog.DropEvent
        return event


def configure_logging(log_format: str = "auto", log_level: str = "info") -> None:
    level_filter = LevelFilter(log_level)
    if log_format == "json":
        renderer: Any = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        colors = log_format == "auto" and sys.stderr.isatty()
        renderer = structlog.dev.ConsoleRenderer(colors=colors, pad_event_to=0)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            level_filter,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_filter.minimum),
        logger_factory=lambda *_: _StderrLogger(),
        cache_logger_on_first_use=False,
    )
    logging.getLogger("redis").setLevel(logging.WARNING)


def get_logger(name: str) -> Any:
    """A structlog bound logger named `name` (dotted; levels apply by prefix)."""
    return structlog.get_logger(logger_name=name)  # lazy: follows configure_logging() even when made at import
