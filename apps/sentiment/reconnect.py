"""How a long-running worker waits out a broker outage.

A worker under a supervisor (systemd, Kubernetes) is expected to ride out a broker restart
or a network cut, not to exit and be restarted in a loop. :class:`Reconnect` says how long
to wait after each failed step (doubling from ``first_s`` to ``cap_s``, back to the start
once the broker answers) and keeps the log readable: the first failure is logged at once,
then at most one line per ``log_every_s`` seconds (with the count of failures since), and
one line when the broker answers again. ``clock`` is injectable for tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

FIRST_WAIT_S = 1.0
MAX_WAIT_S = 30.0  # the longest wait between two tries
LOG_EVERY_S = 30.0  # at most one "still unreachable" line this often

log = logging.getLogger(__name__)


class Reconnect:
    """Back-off and rate-limited log lines for one worker's broker outages."""

    def __init__(self, first_s: float = FIRST_WAIT_S, cap_s: float = MAX_WAIT_S,
                 log_every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic,
                 say: Callable[[str], None] = log.warning) -> None:
        self.first_s, self.cap_s, self.log_every_s = first_s, cap_s, log_every_s
        self.clock, self.say = clock, say
        self.failures = 0  # in the current outage
        self._since: float | None = None  # when the current outage was first seen
        self._logged_at = float("-inf")
        self._unlogged = 0

    @property
    def down(self) -> bool:
        return self.failures > 0

    def failed(self, error: Exception) -> float:
        """Note a failed step; the seconds to wait before the next one."""
        now = self.clock()
        if self._since is None:
            self._since = now
        self.failures += 1
        wait = min(self.first_s * 2 ** (self.failures - 1), self.cap_s)
        self._unlogged += 1
        if now - self._logged_at >= self.log_every_s:
            again = f", {self._unlogged} failures since the last line" if self._unlogged > 1 else ""
            self.say(f"{error} (down {now - self._since:.0f} s, next try in {wait:.0f} s{again})")
            self._logged_at, self._unlogged = now, 0
        return wait

    def succeeded(self) -> None:
        """Note a step that reached the broker (ends an outage, with one line)."""
        if self._since is not None:
            self.say(f"the broker answers again after {self.clock() - self._since:.0f} s "
                     f"({self.failures} failed tries)")
        self.failures, self._since, self._unlogged = 0, None, 0
        self._logged_at = float("-inf")
