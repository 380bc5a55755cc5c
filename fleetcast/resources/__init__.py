"""What the stages run on, each real implementation beside its local one: the DuckDB file (or an
in-memory database), AWS Auto Scaling (or a moto server; or the recorded backend for
forecast-only fleets), the landing folder, the run lock, the model registry, the training pool.

Imports only from :mod:`models` and :mod:`fleetcast.config`."""
