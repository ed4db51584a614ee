"""A worker's broker outages (apps.sentiment.reconnect): back-off and log lines, on an
injected clock; tests/sentiment/test_stream.py cuts a real broker."""

from __future__ import annotations

from apps.sentiment.reconnect import Reconnect


def test_waits_double_to_the_cap_and_lines_are_rate_limited() -> None:
    now = [0.0]
    lines: list[str] = []
    reconnect = Reconnect(first_s=1, cap_s=30, log_every_s=30, clock=lambda: now[0],
                          say=lines.append)
    waits = []
    for _ in range(9):  # a long outage: each try fails after the wait it was given
        waits.append(reconnect.failed(OSError("Redis does not answer")))
        now[0] += waits[-1]
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30, 30]
    # failures at 0, 1, 3, 7, 15, 31, 61, 91, 121 s: a line at once, then one per 30 s
    assert len(lines) == 5 and lines[0] == "Redis does not answer (down 0 s, next try in 1 s)"
    assert lines[1] == ("Redis does not answer (down 31 s, next try in 30 s, "
                        "5 failures since the last line)")
    reconnect.succeeded()
    assert lines[-1] == "the broker answers again after 151 s (9 failed tries)"
    reconnect.succeeded()  # no outage, no line
    assert len(lines) == 6
    assert reconnect.failed(OSError("down again")) == 1  # a new outage starts over
    assert lines[-1] == "down again (down 0 s, next try in 1 s)"
