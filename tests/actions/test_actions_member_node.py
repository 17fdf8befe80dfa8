"""Internal records signed by the origin's own nodes: the `identity(member node)` guard."""

from __future__ import annotations

from typing import Any

from node.actions import BlockContext, Envelope, Reason, Registry, execute_block
from node.actions.builtin import BUILTIN, CHAIN_ACTION_MODULES
from node.actions.context import ActionContext
from node.actions.guards import MEMBER_NODE
from node.crypto import PrivateKey

ORIGIN = "alpha.example"
T0 = 1_700_000_000 * 10**9
NODE = PrivateKey.from_seed(b"node-0")
STRANGER = PrivateKey.from_seed(b"stranger")


def _registry() -> Registry:
    registry = Registry()

    @registry.action("/test/record", identity=MEMBER_NODE)
    def record(ctx: ActionContext, args: dict[str, Any]) -> Any:
        """Store a note signed by a member node."""
        ctx.state.put_obj(b"test/note", args["note"])
        return {"by": ctx.actor}

    return registry


def _tx(key: PrivateKey, nonce: int) -> bytes:
    return Envelope.sign(
        key, origin=ORIGIN, path="/test/record", args={"note": "hi"}, nonce=nonce, expiry_ns=T0 + 10**12
    ).to_wire()


def test_member_node_accepted_stranger_refused_and_changes_nothing() -> None:
    registry = _registry()
    context = BlockContext(0, T0, ORIGIN, members=(NODE.public,))
    result = execute_block({}, [_tx(STRANGER, 1), _tx(NODE, 1)], context, registry)
    refused, accepted = result.receipts
    assert not refused.ok and refused.reason is Reason.NOT_MEMBER_NODE
    assert accepted.ok and accepted.result == {"by": NODE.fingerprint}
    assert sum(1 for k in result.writes if k == b"test/note") == 1


def test_member_node_refused_when_block_has_no_members() -> None:
    result = execute_block({}, [_tx(NODE, 1)], BlockContext(0, T0, ORIGIN), _registry())
    assert result.receipts[0].reason is Reason.NOT_MEMBER_NODE


def test_layer_action_modules_that_exist_are_registered() -> None:
    import importlib
    import importlib.util

    for name in CHAIN_ACTION_MODULES:
        if importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        probe = module.register(Registry())
        assert probe.specs(), f"{name} registers no action"
        for spec in probe.specs():
            assert BUILTIN.get(spec.path) is not None

