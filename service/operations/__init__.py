"""The operations, one module each, findable by name (`kernels`, `regression`, `smoothness`,
`bounds`, `spectrum`, `empirical_kernels`, `train`, `experiment`): the request schema (the JSON
contract), the result schema, the cost estimate (`cost`) and the worker function (`run`) that
calls the engine. `registry.OPERATIONS` lists them; `fields` and `cost` hold what they share.

May import: the engine's JAX-free modules at import time (`engine.architectures`, `engine.norms`,
`engine.experiments`), `service.store.files`, and the bottom modules (`service.settings`,
`service.errors`, `service.logs`). A worker function imports the engine's JAX code inside its body,
so the API process, which imports these modules for their schemas and costs, never loads JAX.
"""
