"""`node config show`: the effective settings and where each one came from."""

from __future__ import annotations

import json

import click

from node.runtime.cli_support import OneLineCommand, OneLineGroup, redis_options, settings_for


@click.group("config", cls=OneLineGroup)
def config_group() -> None:
    """Inspect the node's settings (flags > NODE_* env > config/node.toml > truth > defaults)."""


@config_group.command("show", cls=OneLineCommand)
@redis_options
@click.option("--json", "as_json", is_flag=True, help="one JSON object {name: {value, source}}")
def config_show(home: str | None, redis_url: str | None, namespace: str | None, as_json: bool) -> None:
    """Print every setting with its value and source."""
    loaded = settings_for({"home": home, "redis_url": redis_url, "namespace": namespace})
    values = {name: getattr(loaded.settings, name) for name in loaded.sources}
    if as_json:
        out = {
            name: {
                "value": str(v) if name == "home" else (list(v) if isinstance(v, tuple) else v),
                "source": loaded.sources[name],
            }
            for name, v in values.items()
        }
        click.echo(json.dumps(out, indent=2))
        return
    width = max(len(n) for n in values)
    for name, value in values.items():
        shown = "embedded" if name == "redis_url" and value is None else value
        if isinstance(shown, tuple):
            shown = ",".join(shown) or "-"
        click.echo(f"{name:<{width}}  {shown!s:<30}  ({loaded.sources[name]})")


COMMANDS = [config_group]
