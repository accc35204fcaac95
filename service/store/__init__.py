"""The job store: records (the `Store` protocol, `Job`; SQLite embedded, Redis shared by replicas)
and the files of each job's inputs and result under the data directory.

May import: `service.settings`, `service.errors`, `service.logs` and libraries; nothing of
`service.operations`, `service.jobs` or `service.http`.
"""
