"""reskernel's service: the engine served over HTTP as jobs. Its rooms, each importing only the
ones listed before it:

- `settings`, `errors` (domain errors), `logs`: small shared modules at the bottom;
- `store/`: job records (SQLite or Redis) and the files of inputs and results;
- `operations/`: per operation, its request and result schemas, cost estimate and worker function;
- `jobs/`: a request's life as a job: ids, admission, submission and waiting, leases, the Dask
  executor, the worker runtime and its watchdog;
- `http/`: the FastAPI app, routes, request bodies, problem+json, auth, metrics, event streams;
- `client`, `cli`: on top; `explorer/`: the web page's static files, a client of the public API.

The API process never imports JAX: the engine's JAX code is imported inside the operations'
worker functions, which run in Dask worker processes. `tests/test_layers.py` checks the layering.
"""
