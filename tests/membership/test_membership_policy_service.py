"""The node puts its truth's join policy on the chain, once per value, and only when the chain differs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from node import codec
from node.config import load_settings
from node.errors import ConfigError
from node.membership.plugin import MembershipService
from node.membership.state import POLICY_KEY, POLICY_PATH


class State(dict):
    def get(self, key: bytes, default: Any = None) -> Any:  # the chain state's Reader shape
        return super().get(key, default)


def _service(point: str | None) -> tuple[MembershipService, Any, list[dict[str, Any]]]:
    settings = load_settings(flags={"home": "/nonexistent-home", "join_approval_point": point}, env={}).settings
    service = MembershipService(SimpleNamespace(settings=settings, extras={}))  # type: ignore[arg-type]
    sent: list[dict[str, Any]] = []
    state = State()
    engine = SimpleNamespace(
        chain=SimpleNamespace(state=state),
        core=SimpleNamespace(is_member=lambda: True),
        submit_node_action=lambda path, args: sent.append({"path": path, **args}),
    )
    return service, engine, sent


async def test_truth_policy_is_submitted_once_and_not_again_once_on_chain(autojump_clock) -> None:
    service, engine, sent = _service("ops")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service._keep_policy_on_chain, engine)
        await trio.sleep(5)  # MockClock: five checks
        assert sent == [{"path": POLICY_PATH, "approval_point": "ops"}]
        engine.chain.state[POLICY_KEY] = codec.pack({"approval_point": "ops", "block": 3, "by": "x"})
        await trio.sleep(5)
        assert len(sent) == 1
        nursery.cancel_scope.cancel()


async def test_no_policy_in_truth_and_none_on_chain_submits_nothing(autojump_clock) -> None:
    service, engine, sent = _service(None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service._keep_policy_on_chain, engine)
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert sent == []


def test_the_setting_takes_point_names_only() -> None:
    with pytest.raises(ConfigError):
        load_settings(flags={"home": "/nonexistent-home"}, env={"NODE_JOIN_APPROVAL_POINT": "Bad Name"})


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)
