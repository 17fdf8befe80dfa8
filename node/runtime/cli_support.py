"""Helpers shared by the runtime's commands: one-line usage errors, settings, finding Redis."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from node.config import LoadedSettings, load_settings, resolve_home
from node.runtime.errors import HomeError
from node.runtime.home import Home
from node.runtime.truth import load_file

F = TypeVar("F", bound=Callable[..., Any])


class OneLineUsageError(click.ClickException):
    """Printed as one `Error: ...` line, exit status 2 (click's own usage errors print several lines)."""

    exit_code = 2


class OneLineCommand(click.Command):
    """A click command whose usage errors (unknown flag, missing value) print as one line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            name = " ".join(p for p in ((parent.command_path if parent else "node"), info_name or "") if p)
            raise OneLineUsageError(f"{exc.format_message()} (see `{name} --help`)") from None


class OneLineGroup(click.Group):
    command_class = OneLineCommand

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise OneLineUsageError(exc.format_message()) from None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise OneLineUsageError(f"{exc.format_message()} (see `{ctx.command_path} --help`)") from None


def home_option(f: F) -> F:
    return click.option("--home", type=click.Path(file_okay=False), help="node home (default $NODE_HOME or ~/.node)")(f)


def redis_options(f: F) -> F:
    f = click.option("--namespace", help="Redis key prefix shared-Redis setups use")(f)
    f = click.option("--redis-url", help="an external Redis (default: the running node's embedded one)")(f)
    return home_option(f)


def settings_for(flags: dict[str, Any]) -> LoadedSettings:
    """Effective settings, including the `settings` table of the home's stored truth."""
    home, _ = resolve_home(flags.get("home"), os.environ)
    truth_file = Home(home).truth_file
    truth_settings = load_file(truth_file).settings if truth_file.exists() else None
    return load_settings(flags=flags, truth_settings=truth_settings)


def redis_target(loaded: LoadedSettings) -> tuple[str, str] | None:
    """(URL, namespace) to talk to: the configured Redis, else the one of a node running on the home
    (with that node's namespace unless one was given)."""
    settings = loaded.settings
    if settings.redis_url is not None:
        return settings.redis_url, settings.namespace
    running = Home(settings.home).running_redis()
    if running is None:
        return None
    url, namespace = running
    return url, (settings.namespace if loaded.sources.get("namespace", "default") != "default" else namespace)


def require_redis_target(loaded: LoadedSettings) -> tuple[str, str]:
    target = redis_target(loaded)
    if target is None:
        raise HomeError(f"no Redis: no node is running on {loaded.settings.home}; give --redis-url or start the node")
    return target
