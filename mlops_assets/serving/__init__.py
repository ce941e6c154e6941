"""The serving gateway (``mlops serve``): MLflow's scoring protocol over the registry's champion."""
