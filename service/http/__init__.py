"""The HTTP layer: the FastAPI app (`app.create_app`), its routes (one module per resource in
`routes/`), request bodies, answers and results, errors as RFC 9457 problem+json, middleware
(body limit, trusted hosts, bearer auth, request ids and access log), Prometheus metrics.

May import everything below it: `service.jobs`, `service.operations`, `service.store` and the
bottom modules. Nothing below imports it.
"""
