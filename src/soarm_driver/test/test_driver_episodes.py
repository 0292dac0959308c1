"""Episode bookkeeping and rate schedules (ROS-free)."""

import pytest

from soarm_driver.episodes import EpisodeBook
from soarm_driver.schedule import RateSchedule


def test_episode_lifecycle_events():
    book = EpisodeBook("default task")
    assert book.outcome("success") is None  # nothing running
    ev = book.begin_reset("", seed=5)
    assert [(e.kind, e.episode_index, e.task, e.detail) for e in ev] == [("RESET", 0, "default task", "seed 5")]
    assert book.outcome("success") is None  # reset not finished yet
    assert ev[0].seed == 5
    assert book.start(5)[:3] == ("STARTED", 0, "default task")
    assert book.outcome(None) is None
    assert book.outcome("success")[:2] == ("SUCCESS", 0)
    assert book.seed == 5
    assert book.outcome("success") is None  # once per episode
    ev = book.begin_reset("stack it", seed=6)
    assert [(e.kind, e.episode_index, e.task) for e in ev] == [("ENDED", 0, "default task"), ("RESET", 1, "stack it")]
    assert [e.seed for e in ev] == [5, 6]  # ENDED carries the ended episode's seed
    assert book.start(6).seed == 6
    assert book.outcome("failure")[:3] == ("FAILURE", 1, "stack it")
    assert book.outcome("bogus") is None


def test_rate_schedule_keeps_phase_and_does_not_burst():
    s = RateSchedule(30.0, slack=1 / 60)
    ticks = [i / 60 for i in range(61)]  # 60 Hz control ticks for 1 s
    due = [t for t in ticks if s.due(t)]
    assert len(due) == 31 and due[1] == pytest.approx(1 / 30)
    # after a 0.5 s stall it fires once, then continues at its rate from there
    assert s.due(1.5) and not s.due(1.5 + 1 / 60) and s.due(1.5 + 2 / 60)
    with pytest.raises(ValueError):
        RateSchedule(0.0, slack=0.1)
