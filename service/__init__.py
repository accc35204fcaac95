"""reskernel's HTTP service: FastAPI in front, Dask workers behind, a content-addressed job store."""
