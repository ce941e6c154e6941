"""A client of the serving gateway: sends rows in MLflow's ``dataframe_split`` form and delivers labels.

Used by ``mlops demo`` and the tests to play the part of the applications that call the model.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd


@dataclass
class TrafficResult:
    requests: int
    rows: int
    failures: int
    spans: list[tuple[str, int, int]]  # (request id, first row, end row) of each successful request
    predictions: list


def _records(frame: pd.DataFrame) -> list[list]:
    """Rows as JSON-safe lists (NaN becomes null, as MLflow clients send it)."""
    values = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()
    return [[v.item() if isinstance(v, np.generic) else v for v in row] for row in values]


def send(url: str, frame: pd.DataFrame, *, batch_size: int = 20, timeout: float = 30.0) -> TrafficResult:
    spans, predictions, failures = [], [], 0
    with httpx.Client(base_url=url, timeout=timeout) as client:
        for start in range(0, len(frame), batch_size):
            part = frame.iloc[start:start + batch_size]
            rid = uuid.uuid4().hex
            resp = client.post("/invocations", headers={"X-Request-ID": rid},
                               json={"dataframe_split": {"columns": list(part.columns), "data": _records(part)}})
            if resp.status_code != 200:
                failures += 1
                continue
            spans.append((rid, start, start + len(part)))
            predictions.extend(resp.json()["predictions"])
    return TrafficResult(len(spans) + failures, len(predictions), failures, spans, predictions)


def deliver_labels(url: str, traffic: TrafficResult, labels: pd.Series) -> int:
    """Post the true labels of the rows ``send`` delivered (``labels`` aligned with the frame sent)."""
    values = [v.item() if isinstance(v, np.generic) else v for v in labels.tolist()]
    sent = 0
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for rid, start, end in traffic.spans:
            chunk = values[start:end]
            resp = client.post("/feedback", json={"request_id": rid, "labels": chunk})
            resp.raise_for_status()
            sent += len(chunk)
    return sent
