"""`mlops serve --workers 2`, as real processes: both workers answer, a swap reaches both, every prediction is
logged once, the metrics count both, and one SIGTERM to the parent stops them all."""

from __future__ import annotations

import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mlops_assets.core.predictions import PREDICTIONS, read_predictions
from mlops_assets.core.waiting import wait_until
from tests.support.tiny_models import GatewayProcess, Store, data, split, train


def test_two_workers_answer_follow_a_swap_log_every_prediction_once_and_stop_on_sigterm(tmp_path: Path):
    store = Store.create(tmp_path / "mlflow")
    store.alias(store.register(train(1)))
    home = tmp_path / "home"
    gateway = GatewayProcess(store, home, workers=2).start()
    try:
        workers = _serving(gateway, "1")
        frame = data(4, 11)[0]
        sent = _predict_until_both_log(gateway, home, frame, workers, "v1")
        assert {tuple(p) for p in sent.values()} == {tuple(train(1).predict(frame).tolist())}

        flipped = store.register(train(1, flip=True))
        store.alias(flipped)
        assert _serving(gateway, flipped) == workers  # each worker followed the alias itself
        after = _predict(gateway, frame, [f"v2-{i}" for i in range(8)])
        assert {tuple(p) for p in after.values()} == {tuple(train(1, flip=True).predict(frame).tolist())}

        counted = _ok_requests(gateway)  # any worker's /metrics tells both workers' counts
        assert counted == {"1": len(sent), flipped: len(after)}

        gateway._proc.send_signal(signal.SIGTERM)  # the parent only, as a supervisor would
        assert gateway._proc.wait(timeout=60) in (0, -signal.SIGTERM)
        assert wait_until(lambda: not any(_alive(pid) for pid in workers), 30, 0.1)
    finally:
        gateway.crash()

    logged = read_predictions(home, datetime.now(UTC).date())
    per_request = logged.groupby("request_id").size()
    assert set(per_request.index) == set(sent) | set(after)
    assert (per_request == len(frame)).all()  # one line per request: nothing twice, nothing lost
    assert {int(f.stem.rsplit("-", 1)[1]) for f in (home / PREDICTIONS).glob("date=*/*.jsonl")} == workers


def _serving(gateway: GatewayProcess, version: str, timeout: float = 60) -> set[int]:
    """The worker pids, once /health (asked over fresh connections, so both workers answer) shows two of them
    and each serves ``version``."""
    seen: dict[int, str] = {}

    def look() -> bool:
        with ThreadPoolExecutor(4) as pool:
            for health in pool.map(lambda _: httpx.get(f"{gateway.url}/health", timeout=10).json(), range(8)):
                seen[health["pid"]] = health["model_version"]
        return len(seen) == 2 and set(seen.values()) == {version}

    assert wait_until(look, timeout, 0.1), seen
    return set(seen)


def _predict(gateway: GatewayProcess, frame, request_ids: list[str]) -> dict[str, list]:
    body = json.dumps(split(frame))

    def post(rid: str) -> list:
        answer = httpx.post(f"{gateway.url}/invocations", content=body, timeout=30,
                            headers={"Content-Type": "application/json", "X-Request-ID": rid})
        assert answer.status_code == 200, answer.text
        return answer.json()["predictions"]

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(request_ids, pool.map(post, request_ids), strict=True))


def _predict_until_both_log(gateway: GatewayProcess, home: Path, frame, workers: set[int],
                            prefix: str) -> dict[str, list]:
    """Requests over fresh connections until both workers have written predictions to their own log file."""
    sent: dict[str, list] = {}

    def both_logged() -> bool:
        sent.update(_predict(gateway, frame, [f"{prefix}-{len(sent) + i}" for i in range(8)]))
        files = {int(f.stem.rsplit("-", 1)[1]) for f in (home / PREDICTIONS).glob("date=*/*.jsonl")}
        return files == workers

    assert wait_until(both_logged, 60, 0.3), sent.keys()
    return sent


def _ok_requests(gateway: GatewayProcess) -> dict[str, int]:
    text = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    return {s.labels["model_version"]: int(s.value) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "mlops_requests_total" and s.labels.get("status") == "ok"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
