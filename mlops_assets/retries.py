"""Dagster retries for the steps that talk to MLflow, the store or the gateway: transient faults only.

A plain ``RetryPolicy`` on an asset would retry every failure, a quarantined batch or a refused gate included.
So :func:`retry_transient` asks ``core.transient.is_transient`` about each failure and requests a retry only
for a transient one, waiting as the configured policy (exponential backoff with jitter) says; anything else
fails the step at once, exactly as it was raised. A step that has already written what a rerun would write again
raises :class:`FinalFailure` to say that its fault, transient or not, must not be retried.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any

from dagster import Backoff, Failure, Jitter, RetryPolicy, RetryRequested

from mlops_assets import settings
from mlops_assets.core.transient import is_transient


class FinalFailure(Failure):
    """A failure the step declares final: it is not retried even when a transient fault caused it."""


def _retried(exc: Exception) -> bool:
    return not isinstance(exc, FinalFailure) and is_transient(exc)


def transient_policy() -> RetryPolicy:
    """How transient faults are retried (``MLOPS_STEP_RETRIES``, ``MLOPS_STEP_RETRY_DELAY_SECONDS``)."""
    retries, delay = settings.step_retries()
    return RetryPolicy(max_retries=retries, delay=delay, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def retry_transient(fn: Callable) -> Callable:
    """Wrap an asset's body (its first parameter is the context): a transient failure requests a retry."""

    def retry(context: Any, exc: Exception) -> RetryRequested:
        policy = transient_policy()
        attempt = context.retry_number + 1
        wait = max(0.0, policy.calculate_delay(attempt))
        if attempt <= policy.max_retries:
            context.log.warning(
                f"transient fault, retry {attempt} of {policy.max_retries} in {wait:.1f}s: {type(exc).__name__}: {exc}"
            )
        return RetryRequested(max_retries=policy.max_retries, seconds_to_wait=wait)

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(context: Any, *args: Any, **kwargs: Any):
            try:
                yield from fn(context, *args, **kwargs)
            except Exception as exc:
                if not _retried(exc):
                    raise
                raise retry(context, exc) from exc

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(context: Any, *args: Any, **kwargs: Any):
        try:
            return fn(context, *args, **kwargs)
        except Exception as exc:
            if not _retried(exc):
                raise
            raise retry(context, exc) from exc

    return wrapper
