"""The built-in demo data: synthetic loan applications, with a knob for drift.

``drift`` in [0, 1] moves the applicant population (lower incomes, higher utilisation, a different
regional mix) and the concept (utilisation matters more), so a model trained before the drift loses
accuracy on data after it and a retrained one wins it back: the loop the platform automates.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

REGIONS = ["north", "south", "east", "west"]
EMPLOYMENT = ["salaried", "self_employed", "unemployed", "retired"]


def make_batch(n_rows: int, *, seed: int, drift: float = 0.0, start_id: int = 0) -> pd.DataFrame:
    if not 0.0 <= drift <= 1.0:
        raise ValueError(f"drift must be within [0, 1], got {drift}")
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(42 + 6 * drift, 12, n_rows), 18, 100).round(0)
    income = np.round(rng.lognormal(10.8 - 0.5 * drift, 0.45, n_rows), 2)
    debt_ratio = np.clip(rng.gamma(2.0, 0.18 + 0.12 * drift, n_rows), 0, 5).round(4)
    credit_lines = rng.poisson(6 + 3 * drift, n_rows).clip(0, 100).astype(float)
    utilization = np.clip(rng.beta(2 + 3 * drift, 5 - 2 * drift, n_rows), 0, 1).round(4)
    utilization[rng.random(n_rows) < 0.03] = np.nan
    region_p = np.array([0.3, 0.3, 0.2, 0.2]) * (1 - drift) + np.array([0.1, 0.1, 0.2, 0.6]) * drift
    region = rng.choice(REGIONS, n_rows, p=region_p / region_p.sum())
    employment = rng.choice(EMPLOYMENT, n_rows, p=[0.6, 0.2, 0.08 + 0.07 * drift, 0.12 - 0.07 * drift])

    util = np.nan_to_num(utilization, nan=0.3)
    logit = (
        -1.8 - 1.5 * drift
        - 2.4 * (np.log(income) - 10.8)
        + (2.6 - 3.0 * drift) * debt_ratio
        + (3.0 - 7.0 * drift) * (util - 0.3)
        - 0.04 * (age - 42)
        + 1.8 * (employment == "unemployed")
        + 3.0 * drift * (region == "west")
    )
    default = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({
        "application_id": np.arange(start_id, start_id + n_rows, dtype=np.int64),
        "age": age,
        "income": income,
        "debt_ratio": debt_ratio,
        "credit_lines": credit_lines,
        "utilization": utilization,
        "region": region,
        "employment": employment,
        "default": default,
    })


def write_batches(
    landing: Path,
    *,
    batches: int,
    rows: int = 2000,
    drift: float = 0.0,
    seed: int = 0,
    start_day: date | None = None,
) -> list[Path]:
    """Write demo batches into the landing zone atomically (temp name, then rename), one per day.

    File names carry the batch day and a seed-derived suffix so repeated calls never overwrite a batch;
    ids continue from the seed so batches never share application ids.
    """
    landing.mkdir(parents=True, exist_ok=True)
    start_day = start_day or date.today() - timedelta(days=batches - 1)
    written = []
    for i in range(batches):
        batch_seed = seed * 1000 + i
        frame = make_batch(rows, seed=batch_seed, drift=drift, start_id=batch_seed * rows)
        day = start_day + timedelta(days=i)
        name = f"batch_{day.isoformat()}_s{batch_seed}{'_drift' if drift else ''}.csv"
        tmp = landing / f".{name}.tmp"
        frame.to_csv(tmp, index=False)
        target = landing / name
        tmp.replace(target)
        written.append(target)
    return written
