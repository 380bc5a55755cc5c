"""The pipeline's stages, shared by the CLI and the Prefect tasks: ingest, training, forecasts,
accuracy, allocation, backtest, fleets and status.

Imports from :mod:`fleetcast.resources` and :mod:`models`, never from :mod:`fleetcast.interface`."""
