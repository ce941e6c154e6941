"""Play the gateway in tests that exercise monitoring without HTTP: the champion's real predictions, logged
with the gateway's own writer and record format."""

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
