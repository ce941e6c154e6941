"""The shared deadline wait: true as soon as the condition holds, false once the deadline has passed."""

from __future__ import annotations

import time

from mlops_assets.core.waiting import wait_until


def test_returns_true_once_the_predicate_holds_and_stops_calling_it():
    calls = []

    def third_time() -> bool:
        calls.append(time.monotonic())
        return len(calls) == 3

    assert wait_until(third_time, timeout=5, interval=0.01) is True
    assert len(calls) == 3
    assert calls[2] - calls[0] >= 0.02  # it sleeps between calls rather than spinning


def test_returns_false_after_the_timeout_when_the_predicate_never_holds():
    calls = []
    started = time.monotonic()
    assert wait_until(lambda: calls.append(1) is not None, timeout=0.2, interval=0.05) is False
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 2
    assert 2 <= len(calls) <= 6


def test_true_at_once_does_not_wait():
    started = time.monotonic()
    assert wait_until(lambda: True, timeout=10, interval=5) is True
    assert time.monotonic() - started < 1
