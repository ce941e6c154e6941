"""Polling until a condition holds or a deadline passes: the one wait the gateway, its clients and tests share."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float) -> bool:
    """Call ``predicate`` every ``interval`` seconds until it is true (True) or ``timeout`` seconds pass (False).

    The deadline is on the monotonic clock, so a wall-clock jump neither cuts a wait short nor stretches it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
