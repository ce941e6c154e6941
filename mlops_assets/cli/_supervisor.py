"""The child processes of `mlops up` and how they stop: each in its own process group (session), so a terminal's
Ctrl-C reaches only `mlops up`, which forwards the stop in order, waits, and kills a whole group that outlives
its grace period, grandchildren included (`dg dev`'s webserver, daemon and code server, `mlflow server`'s
workers). Runs in progress are ended first, through the Dagster instance, so none stays STARTED forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlops_assets.core.waiting import wait_until

STOP_SECONDS = 30.0  # every child is gone within this, whatever it does
RUNS_GRACE_SECONDS = 8.0  # of which runs in progress get this long to end themselves as CANCELED
KILLED_RUN_MESSAGE = "`mlops up` stopped while this run was in progress: the run's process was ended with it"


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    # Signal for a graceful stop and whether it goes to the whole group: `dg dev` (leader only) stops its
    # own children in order; `mlflow server` (whole group) does not forward a signal to its uvicorn workers.
    stop_signal: int = signal.SIGTERM
    whole_group: bool = True

    def group_alive(self) -> bool:
        self.proc.poll()  # reap the leader, so a finished leader does not count as a member
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def request_stop(self) -> None:
        if self.whole_group:
            self.signal_group(self.stop_signal)
        elif self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)


class Supervisor:
    """Starts children, waits for a stop signal (SIGTERM, SIGINT) or for one of them to exit, then stops all."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self.reason = ""

    def start(self, name: str, cmd: Sequence[str], *, stop_signal: int = signal.SIGTERM, whole_group: bool = True,
              **popen: Any) -> Child:
        child = Child(name, subprocess.Popen(list(cmd), start_new_session=True, **popen), stop_signal, whole_group)
        self.children.append(child)
        return child

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, _frame: object) -> None:
            self.reason = f"{signal.Signals(signum).name} received"
            self.stop_requested.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)

    def wait(self, poll: float = 0.5) -> Child | None:
        """Until a stop is requested (None) or a child exits by itself (that child)."""
        while not self.stop_requested.wait(poll):
            for child in self.children:
                if child.proc.poll() is not None:
                    self.reason = f"{child.name} exited with code {child.proc.returncode}"
                    return child
        return None

    def stop(self, grace: float) -> list[str]:
        """Graceful stop for each child, then SIGKILL to every group still alive after ``grace`` seconds; returns
        the names of the children that had to be killed."""
        for child in self.children:
            child.request_stop()
        wait_until(lambda: not any(c.group_alive() for c in self.children), grace, 0.2)
        killed = [c.name for c in self.children if c.group_alive()]
        for child in self.children:
            child.signal_group(signal.SIGKILL)
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(timeout=5)
        return killed


def runs_in_progress(instance: Any) -> list[Any]:
    from dagster import DagsterRunStatus, RunsFilter

    active = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
    return list(instance.get_runs(RunsFilter(statuses=active)))


def cancel_runs_in_progress(instance: Any, grace: float, log: Any = print) -> int:
    """Ask the run launcher to terminate each run in progress (while its code server still answers), so the run
    ends itself as CANCELED; returns how many were reached (only those are waited for)."""
    asked = 0
    for run in runs_in_progress(instance):
        log(f"terminating run {run.run_id} ({run.job_name}) before shutdown")
        try:
            if instance.run_launcher.terminate(run.run_id):
                asked += 1
            else:
                log(f"  run {run.run_id}: the launcher could not reach its process; it is marked canceled below")
        except Exception as exc:  # noqa: BLE001 - whatever the launcher says, the run is still marked below
            log(f"  run {run.run_id}: termination request failed ({exc}); it is marked canceled below")
    if asked:
        wait_until(lambda: not runs_in_progress(instance), grace, 0.5)
    return asked


def mark_orphaned_runs(instance: Any, log: Any = print) -> int:
    """After the processes are gone, a run still recorded as in progress never will finish: mark it CANCELED
    with the reason, instead of leaving it STARTED forever."""
    runs = runs_in_progress(instance)
    for run in runs:
        instance.report_run_canceled(run, message=KILLED_RUN_MESSAGE)
        log(f"run {run.run_id} ({run.job_name}) marked canceled: its process stopped with `mlops up`")
    return len(runs)


def shut_down(supervisor: Supervisor, instance: Any, log: Any = print) -> None:
    """Runs in progress first (their code server must still answer), then the children, all within
    STOP_SECONDS; a run left recorded as in progress is marked canceled at the end."""
    deadline = time.monotonic() + STOP_SECONDS
    cancel_runs_in_progress(instance, RUNS_GRACE_SECONDS, log)
    killed = supervisor.stop(grace=max(1.0, deadline - time.monotonic() - 5))  # 5 s left for SIGKILL and reaping
    if killed:
        log(f"killed after the grace period: {', '.join(killed)}")
    mark_orphaned_runs(instance, log)
