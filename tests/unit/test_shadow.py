"""ShadowLine: proposals recorded and never sent, the controller's status passed through to what wraps it."""

from __future__ import annotations

import numpy as np

from hardware import Command, LineStatus, Supervised
from hardware.guard import Guard, GuardConfig, GuardedLine
from hardware.shadow import ShadowLine
from tests.guard_fakes import SPEC, PlainLine, RecordingLine

PROPOSAL = np.array([0.9, 0.9, np.nan, np.nan])


def test_a_guard_over_a_shadow_decides_on_the_controllers_status_and_nothing_reaches_the_line():
    """`GuardedLine(ShadowLine(plc))` composes (DESIGN): with E-STOP on and REMOTE off its verdict was `pass`."""
    plc = RecordingLine()
    plc.next_status = LineStatus(remote=False, estop=True, active=np.array([1.0, 1.0, 2.0, 0.0]))
    guarded = GuardedLine(ShadowLine(plc), Guard(SPEC, GuardConfig()))
    assert isinstance(guarded, Supervised)
    assert guarded.status() == plc.next_status
    guarded.reset()
    guarded.write(Command(setpoints=PROPOSAL))
    assert guarded.last_verdict is not None
    assert guarded.last_verdict.reasons == ("gate:remote_off", "gate:estop")
    plc.next_status = LineStatus()
    guarded.write(Command(setpoints=PROPOSAL))
    assert guarded.last_verdict.kind == "pass"
    assert plc.calls == []  # neither a command nor a heartbeat


def test_a_shadow_records_proposals_beside_what_the_line_runs_and_sends_nothing():
    plc = RecordingLine()
    plc.next_status = LineStatus(active=np.array([1.0, 1.0, 2.0, 0.0]))
    shadow = ShadowLine(plc)
    shadow.reset()
    shadow.write(Command(setpoints=PROPOSAL))
    shadow.heartbeat()
    assert shadow.last_proposal is not None
    np.testing.assert_array_equal(shadow.last_proposal.proposed, PROPOSAL)
    np.testing.assert_array_equal(shadow.last_proposal.actual, [1.0, 1.0, 2.0, 0.0])
    assert shadow.proposals == 1
    assert plc.calls == []
    assert ShadowLine(PlainLine()).status() == LineStatus()  # a line without a controller: the defaults
