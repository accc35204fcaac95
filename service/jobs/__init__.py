"""A request's life as a job: its content-addressed id (`ids`), admission by limits and cost
(`admission`), submission, waiting, cancellation, recovery and leases (`lifecycle.Jobs`), the
changes pushed to waiters (`changes`), Dask (`executor`), and what runs in a worker process
(`worker`, supervised by `watchdog`).

May import: `service.operations`, `service.store` and the bottom modules (`service.settings`,
`service.errors`, `service.logs`); nothing of `service.http`.
"""
