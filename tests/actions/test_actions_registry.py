"""The registry: decorator, descriptions, guard order, refusals of bad registrations."""

from __future__ import annotations

import pytest

from node.actions import BUILTIN, Registry, SignalOutput, register_builtins
from node.actions.errors import RegistryError
from node.actions.guards import MEMBER, role


def test_decorator_records_guards_description_and_executors() -> None:
    registry = Registry()

    @registry.action("/app/do_it", guards=[MEMBER, role("admin")], executors=True)
    def do_it(ctx, args):
        """Do the thing to a point.

        Longer text that the listing leaves out.
        """
        return None

    spec = registry.get("/app/do_it")
    assert spec is not None and spec.handler is do_it and spec.executors
    assert spec.description == "Do the thing to a point."
    assert spec.guard_names == ["signature", "origin", "expiry", "identity", "nonce", "member", "role(admin)"]
    assert "/app/do_it" in registry and "/app/other" not in registry


@pytest.mark.parametrize("path", ["no/slash", "/Upper", "/trailing/", "/a b", ""])
def test_bad_paths_refused(path: str) -> None:
    with pytest.raises(RegistryError):
        Registry().action(path)


def test_duplicate_path_refused() -> None:
    registry = register_builtins(Registry())
    with pytest.raises(RegistryError):
        registry.action("/users/create")
    with pytest.raises(ValueError):
        role("emperor")


def test_builtin_paths() -> None:
    builtin_only = register_builtins(Registry())  # BUILTIN adds other layers' record actions
    assert [s.path for s in builtin_only.specs()] == [
        "/executors/respond", "/points/attest", "/points/create", "/points/join", "/points/leave",
        "/points/set_role", "/signals/post", "/users/create", "/users/rotate_key",
    ]
    assert all(s.path in BUILTIN for s in builtin_only.specs())
    assert all(s.description for s in BUILTIN.specs())


def test_envelopes_hash_and_signal_json(make_actor) -> None:
    env = make_actor().env("/points/join", {"point": "p"})
    assert len({env, env}) == 1
    out = SignalOutput("p", 3, "abc", {"t": 1}, b"\x01" * 32, 9)
    assert out.to_dict() == {"point": "p", "seq": 3, "from": "abc", "body": {"t": 1}, "action_id": "01" * 32,
                             "block": 9}
