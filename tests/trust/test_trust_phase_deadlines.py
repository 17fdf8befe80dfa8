"""Phase deadlines: alert at the deadline, again with backoff, cleared when the phase is reached."""

import pytest

from node.config import load_settings
from node.errors import ConfigError
from node.runtime.phase_deadlines import DEFAULT_DEADLINES, PhaseDeadlines, deadlines_from, parse_deadlines
from node.runtime.phases import Phase


def test_alerts_at_the_deadline_then_with_growing_pauses_and_clears() -> None:
    deadlines = PhaseDeadlines(100.0, {Phase.SELF_SIGNED: 1.0, Phase.CA_ISSUED: 2.0, Phase.CONSENSUS: 5.0})
    assert deadlines.poll(100.9) is None
    deadlines.reached(Phase.SELF_SIGNED, 100.5)
    assert deadlines.waiting_for is Phase.CA_ISSUED
    assert deadlines.poll(102.4) is None and deadlines.next_poll(102.4) == pytest.approx(0.1)
    first = deadlines.poll(102.5)
    assert first is not None and first.phase is Phase.CA_ISSUED and first.alert == 1 and first.waited_s == 2.0
    assert deadlines.poll(103.0) is None  # next alert after a pause that doubles
    second = deadlines.poll(102.5 + 4.0)
    assert second is not None and second.alert == 2 and second.next_alert_s == 8.0
    assert deadlines.missed_total == 2 and deadlines.late == second
    cleared = deadlines.reached(Phase.CA_ISSUED, 107.0)
    assert cleared == second and deadlines.late is None and deadlines.waiting_for is Phase.CONSENSUS
    assert deadlines.poll(111.9) is None and deadlines.poll(112.0).phase is Phase.CONSENSUS
    deadlines.reached(Phase.CONSENSUS, 113.0)
    assert deadlines.waiting_for is None and deadlines.poll(10**6) is None
    assert deadlines.reached_after == {Phase.SELF_SIGNED: 0.5, Phase.CA_ISSUED: 7.0, Phase.CONSENSUS: 13.0}


def test_falling_back_restarts_the_clock() -> None:
    deadlines = PhaseDeadlines(0.0)
    deadlines.reached(Phase.SELF_SIGNED, 1.0)
    deadlines.reached(Phase.CA_ISSUED, 2.0)
    deadlines.reached(Phase.SELF_SIGNED, 50.0)  # revoked
    assert deadlines.poll(50.0 + DEFAULT_DEADLINES[Phase.CA_ISSUED] - 0.1) is None
    assert deadlines.poll(50.0 + DEFAULT_DEADLINES[Phase.CA_ISSUED]) is not None
    assert deadlines.reached_after[Phase.SELF_SIGNED] == 1.0  # first time kept


def test_parsing_and_sources() -> None:
    assert parse_deadlines("ca-issued=3, consensus=9")[Phase.CA_ISSUED] == 3.0
    assert parse_deadlines("")[Phase.SELF_SIGNED] == 10.0
    for bad in ("ca-issued", "federated=3", "consensus=0", "nope=1", "ca-issued=x"):
        with pytest.raises(ConfigError):
            parse_deadlines(bad)
    home = {"home": "/nonexistent-node-home"}
    settings = load_settings(flags=home, env={"NODE_PHASE_DEADLINES": "self-signed=2"}).settings
    assert deadlines_from(settings)[Phase.SELF_SIGNED] == 2.0
    assert deadlines_from(load_settings(flags=home, env={}).settings) == DEFAULT_DEADLINES
    with pytest.raises(ConfigError):
        load_settings(flags=home, env={"NODE_PHASE_DEADLINES": "consensus=0"})


def test_self_signed_deadline_from_start_repeats_with_backoff() -> None:
    deadlines = PhaseDeadlines(0.0, {**DEFAULT_DEADLINES, Phase.SELF_SIGNED: 1.0})
    first = deadlines.poll(1.0)
    assert first is not None and first.phase is Phase.SELF_SIGNED and first.next_alert_s == 2.0
    assert deadlines.poll(2.9) is None and deadlines.next_poll(2.9) == pytest.approx(0.1)
    assert deadlines.poll(3.0).alert == 2
