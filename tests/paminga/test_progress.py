"""Progress of long commands: a tqdm bar on a terminal, plain periodic lines elsewhere."""

import io

import pytest

from paminga import progress as progress_module
from paminga.progress import Progress


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    return clock


def test_plain_lines_every_interval_with_rate_and_time_left(clock):
    out = io.StringIO()
    with Progress(stream=out, description="Writing events", unit="event", total=1000, interval=10) as progress:
        clock.now += 5
        progress.update(100)  # before the interval: nothing written
        assert out.getvalue() == ""
        clock.now += 5
        progress.update(100)
        clock.now += 10
        progress.update(300)
        clock.now += 30
        progress.update(500)

    assert out.getvalue().splitlines() == [
        "Writing events: 200 of 1,000 events (20%), 20 events/s, about 40 s left",
        "Writing events: 500 of 1,000 events (50%), 25 events/s, about 20 s left",
        "Writing events: 1,000 of 1,000 events (100%), 20 events/s, done in 50 s",
    ]
    assert "\r" not in out.getvalue()


def test_a_growing_total_and_long_durations(clock):
    out = io.StringIO()
    progress = Progress(stream=out, description="Rolling up", unit="day", interval=60)
    progress.add_total(365)
    progress.add_total(365)
    clock.now += 600
    progress.update(73)

    assert progress.line() == "Rolling up: 73 of 730 days (10%), 0 days/s, about 1 h 30 min left"
    progress.close()
    assert out.getvalue().splitlines() == [progress.line()]


def test_nothing_written_when_nothing_was_done(clock):
    out = io.StringIO()
    Progress(stream=out, description="Rolling up", unit="day").close()
    assert out.getvalue() == ""


def test_a_terminal_gets_a_bar_with_rate_and_time_left(clock):
    out = io.StringIO()
    with Progress(stream=out, description="Writing events", unit="event", total=1000, tty=True) as progress:
        progress.update(250)
    with Progress(stream=out, description="Seeding", unit="event", total=5_000_000, tty=True) as progress:
        progress.update(1_200_000)

    text = out.getvalue()
    assert "\r" in text and "Writing events:  25%" in text and "250/1000" in text
    assert "Seeding:  24%" in text and "1.20M/5.00M" in text
    assert "event/s" in text and "<" in text  # tqdm's "elapsed<left, rate"
