"""Pure parts of the runtime: settings precedence, truth schema, phase table, heartbeat decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import load_settings, parse_log_levels, split_host_port
from node.errors import ConfigError
from node.runtime.errors import PhaseError, TruthInvalid
from node.runtime.health import HeartbeatMonitor, Watch
from node.runtime.logs import LevelFilter
from node.runtime.phases import TRANSITIONS, Phase, PhaseMachine, Trigger
from node.runtime.truth import default_truth, parse_text, validate


def test_settings_precedence_and_sources(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "node.toml").write_text(
        'origin = "alpha.example"\nlisten = "127.0.0.1:9001"\napi = "127.0.0.1:9002"\n'
    )
    env = {"NODE_HOME": str(tmp_path), "NODE_API": "127.0.0.1:9003", "NODE_LOG_LEVEL": "warning"}
    loaded = load_settings(
        flags={"log_level": "debug", "listen": None},
        env=env,
        truth_settings={"namespace": "n1", "api": "127.0.0.1:9004", "heartbeat_interval": 0.5},
    )
    s = loaded.settings
    assert s.home == tmp_path
    assert (s.origin, s.listen, s.api, s.log_level, s.namespace) == (
        "alpha.example",
        "127.0.0.1:9001",
        "127.0.0.1:9003",
        "debug",
        "n1",
    )
    assert s.heartbeat_interval == 0.5 and s.redis_url is None and s.peers == ()
    assert loaded.sources["home"] == "env NODE_HOME"
    assert loaded.sources["listen"].startswith("file ")
    assert loaded.sources["api"] == "env NODE_API"
    assert loaded.sources["log_level"] == "flag --log-level"
    assert loaded.sources["namespace"] == "truth"
    assert loaded.sources["log_format"] == "default"


def test_settings_peers_from_env_and_bad_values(tmp_path: Path) -> None:
    peer = "0123456789abcdef0123@127.0.0.1:7701"
    loaded = load_settings(flags={"home": tmp_path}, env={"NODE_PEERS": f"{peer},{peer}"})
    assert loaded.settings.peers == (peer, peer)
    for flags in (
        {"listen": "nope"},
        {"peers": ["xyz@1.2.3.4:5"]},
        {"log_format": "xml"},
        {"log_level": "loud"},
        {"redis_url": "http://x"},
        {"heartbeat_interval": "0"},
    ):
        with pytest.raises(ConfigError):
            load_settings(flags={"home": tmp_path, **flags}, env={})
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "node.toml").write_text("colour = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_settings(flags={"home": tmp_path}, env={})


def test_host_port_and_log_levels() -> None:
    assert split_host_port("[::1]:7700") == ("::1", 7700)
    assert parse_log_levels("info,consensus=debug,transport.quic=error") == (
        "info",
        {"consensus": "debug", "transport.quic": "error"},
    )
    f = LevelFilter("warning,consensus=debug")
    assert f.level_for("consensus.fame") == 10 and f.level_for("transport") == 30 and f.minimum == 10


def test_truth_validation() -> None:
    doc = parse_text(
        'version = 2\n[startup]\ncomponents = [{name = "redis", kind = "blocking"}]\n'
        '[heartbeat]\nchannels = [{svc = "node", interval_sec = 0.5, timeout_sec = 2}]\n'
    )
    truth = validate(doc)
    assert truth.version == 2 and truth.component("redis").kind == "blocking"
    assert truth.channels[0].timeout_sec == 2.0 and truth.grace_timeout_sec == 10.0
    bad = [
        {"version": 0},
        {"version": "1"},
        {"version": 1, "extra": 1},
        {"version": 1, "startup": {"components": [{"name": "a", "kind": "sometimes"}]}},
        {"version": 1, "startup": {"components": [{"name": "a"}, {"name": "a"}]}},
        {"version": 1, "heartbeat": {"channels": [{"svc": "a", "interval_sec": 2, "timeout_sec": 1}]}},
        {"version": 1, "settings": {"listen": "nope"}},
        {"version": 1, "startup": {"grace_timeout_sec": -1}},
    ]
    for doc in bad:
        with pytest.raises(TruthInvalid):
            validate(doc)
    with pytest.raises(TruthInvalid, match="neither valid JSON nor TOML"):
        parse_text("{not json")
    default = default_truth([("redis", "blocking"), ("node", "async"), ("healer", "async")], 1.0)
    assert default.version == 0 and [c.svc for c in default.channels] == ["redis", "node"]


def test_phase_machine_table_and_observers() -> None:
    machine = PhaseMachine()
    seen = []
    machine.observe(seen.append)
    assert machine.phase is Phase.SELF_SIGNED and not machine.can_fire(Trigger.CONSENSUS_JOINED)
    with pytest.raises(PhaseError):
        machine.fire(Trigger.CONSENSUS_JOINED)
    assert machine.phase is Phase.SELF_SIGNED and seen == []
    for trigger in (Trigger.CA_ISSUED, Trigger.CONSENSUS_JOINED, Trigger.FEDERATION_UP):
        machine.fire(trigger)
    assert machine.phase is Phase.FEDERATED and machine.at_least(Phase.CONSENSUS)
    assert [(c.old, c.new) for c in seen] == [
        (Phase.SELF_SIGNED, Phase.CA_ISSUED),
        (Phase.CA_ISSUED, Phase.CONSENSUS),
        (Phase.CONSENSUS, Phase.FEDERATED),
    ]
    machine.fire(Trigger.CERT_REVOKED)
    assert machine.phase is Phase.SELF_SIGNED
    assert all(new != old for (old, _), new in TRANSITIONS.items())


def test_monitor_warmup_miss_and_ok() -> None:
    watch = Watch("svc", interval=1.0, timeout=4.0)
    assert watch.warmup == 3.0  # min(4, max(2, 3))
    assert Watch("x", 1.0, 1.5).warmup == 1.5 and Watch("x", 0.1, 10).warmup == 7.5
    m = HeartbeatMonitor([watch], now=100.0)
    assert m.check(102.9) == [] and m.next_deadline() == 103.0
    [miss] = m.check(103.0)
    assert (miss.name, miss.status, miss.silent_for) == ("svc", "miss", None)
    assert m.check(200.0) == []  # reported once
    [ok] = m.observe("svc", 200.5)
    assert ok.status == "ok" and m.status("svc") == "ok"
    assert m.observe("svc", 201.0) == [] and m.check(204.9) == []
    [miss] = m.check(205.0)
    assert miss.silent_for == pytest.approx(4.0)
    assert m.observe("unknown", 205.0) == []


def test_monitor_reset_and_reconfigure() -> None:
    m = HeartbeatMonitor([Watch("a", 1, 4)], now=0.0)
    m.observe("a", 1.0)
    m.configure([Watch("a", 1, 10), Watch("b", 1, 2)], now=2.0)
    assert m.status("a") == "ok" and m.status("b") == "unknown"
    assert [e.name for e in m.check(4.0)] == ["b"]  # b's warm-up: min(2, max(2, 1.5)) = 2
    m.reset(now=50.0)
    assert m.status("a") == "unknown"
    assert [e.name for e in m.check(52.9)] == ["b"]  # a's warm-up (3 s) restarted at 50; b's (2 s) ran out
    [ok] = m.observe("a", 53.0)
    assert ok.status == "ok" and ok.silent_for is None


def test_status_follows_services_and_phases() -> None:
    from node.runtime.status import NodeStatus
    from node.runtime.statusline import render

    machine = PhaseMachine()
    status = NodeStatus("abc", machine)
    status.set_service("redis", "ready", "blocking")
    status.set_service("api", "starting", "async")
    status.set_service("fed", "waiting", "federated")
    assert status.overall == "starting"
    before = status.changed
    status.set_service("api", "ready")
    assert before.is_set() and status.overall == "ready"  # federated components do not gate readiness
    machine.fire(Trigger.CA_ISSUED)
    snap = status.snapshot()
    assert snap["phase"] == "ca-issued" and snap["transition"] == {
        "from": "self-signed",
        "to": "ca-issued",
        "trigger": "ca-issued",
    }
    status.set_service("api", "missed")
    assert status.overall == "degraded"
    status.set_stopping()
    assert status.snapshot()["status"] == "stopping"
    line = render(status).plain
    assert "phase ca-issued" in line and "redis:ready" in line


def test_plugin_selection() -> None:
    from node.runtime.service import ServiceRegistry, load_plugins

    registry = ServiceRegistry()
    assert load_plugins(registry, "none") == [] and load_plugins(registry, "no_such_layer") == []
    assert len(registry) == 0
    with pytest.raises(ConfigError):
        load_settings(flags={"home": Path("/tmp"), "plugins": "Bad Name"}, env={})
    with pytest.raises(PhaseError):
        registry.add("x", "sometimes", lambda ctx: None)  # type: ignore[arg-type,return-value]
