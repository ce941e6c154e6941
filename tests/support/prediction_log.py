"""Play the gateway in tests that exercise monitoring without HTTP: the champion's real predictions, logged
with the gateway's own writer and record format; or one hand-written request of the demo's ids, for the tests of
labels joined by business id."""

from datetime import datetime
from pathlib import Path

import mlflow

from mlops_assets import settings
from mlops_assets.core.contracts import CHAMPION
from mlops_assets.core.predictions import FEEDBACK, PREDICTIONS, JsonlLog


def serve(lay, tracking, spec, frame, *, with_labels: bool) -> None:
    """Play the gateway: predict with the champion and log requests (and labels) in its format."""
    champion = tracking.version_by_alias(CHAMPION)
    model = mlflow.sklearn.load_model(f"models:/{tracking.model_name}/{champion.version}")
    root = settings.prediction_log_url(lay)
    predictions, feedback = JsonlLog(root, PREDICTIONS), JsonlLog(root, FEEDBACK)
    for start in range(0, len(frame), 25):
        part = frame.iloc[start:start + 25]
        x = part[spec.feature_names]
        rid = f"req-{start}-{champion.version}"
        predictions.write({"request_id": rid, "model_name": tracking.model_name, "model_version": champion.version,
                           "slot": "champion", "columns": list(x.columns),
                           "data": x.astype(object).where(x.notna(), None).to_numpy().tolist(),
                           "outputs": model.predict(x).tolist(), "latency_ms": 1.0})
        if with_labels:
            feedback.write({"request_id": rid, "labels": part[spec.target].tolist()})
    predictions.close()
    feedback.close()


def log_request(
    root: Path,
    served: datetime,
    *,
    request_id: str,
    slot: str,
    rows: list[list[float]],
    outputs: list[int],
    latency_ms: float,
) -> None:
    """One prediction line of (``application_id``, ``age``) rows of model ``m`` v1, served at ``served``, written
    with the gateway's own writer (``slot`` ``batch`` as batch scoring logs it)."""
    log = JsonlLog(root, PREDICTIONS)
    log.write({"request_id": request_id, "ts": served.isoformat(), "model_name": "m", "model_version": "1",
               "slot": slot, "columns": ["application_id", "age"], "data": rows, "outputs": outputs,
               "latency_ms": latency_ms})
    log.close()
