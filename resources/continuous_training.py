"""The continuous-training policy the sensors apply (thresholds and switches, overridable from the env)."""

from dagster import ConfigurableResource


class ContinuousTraining(ConfigurableResource):
    retrain_on_new_data: bool = True
    retrain_on_drift: bool = True
    retrain_on_decay: bool = True
    # The drift sensor asks for a fresh drift report each time this many new predictions were served today.
    drift_every_rows: int = 200
    # Drift and decay retrain at most once per this many seconds (new data is not rate-limited).
    retrain_cooldown_seconds: float = 600.0
    # Canary releases: evidence needed before a verdict, and what counts as worse than the champion.
    canary_min_requests: int = 200
    canary_min_labeled: int = 100
    canary_max_error_rate_increase: float = 0.01
    canary_max_latency_ratio: float = 3.0
    canary_max_accuracy_drop: float = 0.02
    # Approval before production: a version that passed the gate waits (`pending_approval`, not serving) until
    # `mlops registry approve N`; the approval sensor then releases it with the strategy its run was configured with.
    require_approval: bool = False
