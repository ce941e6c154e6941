"""The whole machine-learning lifecycle as Dagster software-defined assets."""
