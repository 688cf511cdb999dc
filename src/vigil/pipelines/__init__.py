"""Dagster orchestration: daily ETL, batch scoring, monitoring marts, gated retraining.

- ``steps`` and ``retraining``: the work, as plain functions (no Dagster);
- ``resources``: the settings and database handed to assets;
- ``etl``, ``scoring``, ``monitoring``, ``retrain``: assets grouped by domain (thin adapters);
- ``sensors``: new raw partition -> daily run; dataset drift -> retrain;
- ``definitions``: jobs, schedule and the ``Definitions`` Dagster loads
  (``dagster dev -m vigil.pipelines.definitions``).

Nothing is imported here: Dagster and Evidently are heavy, and serving never needs them.
"""
