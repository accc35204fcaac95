"""Prometheus metrics (prometheus-client), one registry per app, served at /metrics.

- reskernel_http_requests_total{method,route,status} and reskernel_http_request_duration_seconds
  {method,route}: every answered request, by route template (`/v1/jobs/{job_id}`, never the raw
  path); requests that match no route are `route="unmatched"`. Counted by `RequestContext`.
- reskernel_cache_hits_total / reskernel_cache_misses_total{operation}: POSTed requests served from
  the store (X-Cache: hit) or not (a new job, or one already queued or running).
- reskernel_jobs{status} (all five statuses) and reskernel_queue_depth (queued + running): read
  from the store when scraped, so they count every replica's jobs; reskernel_store_up is 0 when
  the store did not answer (the job gauges are then absent).
- reskernel_job_duration_seconds{operation,status}: run time (finished_at - started_at, as the
  store records them; queueing excluded) of each job whose end this process sees, i.e. whose task
  it dispatched. A job canceled before it started has no run time and is not observed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.store.job import ACTIVE, Job
from service.store.protocol import Store

log = logging.getLogger("reskernel")
STATUSES = ("queued", "running", "succeeded", "failed", "canceled")
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # others: "other"


class StoreCollector(Collector):
    """Jobs by status and the queue depth, from `store.counts()` at scrape time."""

    def __init__(self, store: Callable[[], Store | None]):
        self.store = store

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily("reskernel_jobs", "Jobs in the store, by status", labels=["status"]),
                GaugeMetricFamily("reskernel_queue_depth", "Jobs queued or running"),
                GaugeMetricFamily("reskernel_store_up", "1 when the job store answered this scrape, else 0"))

    def collect(self) -> Iterator[Metric]:
        store = self.store()
        if store is None:  # the app has not started its jobs service yet
            return
        jobs, depth, up = self._families()
        try:
            counts = store.counts()
        except Exception as exc:
            log.warning("metrics: the job store did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        for status in STATUSES:
            jobs.add_metric([status], counts.get(status, 0))
        depth.add_metric([], sum(counts.get(status, 0) for status in ACTIVE))
        up.add_metric([], 1)
        yield from (jobs, depth, up)


class Metrics:
    """The app's metrics and their registry (not the process-wide default registry, so several
    apps in one process each count their own)."""

    def __init__(self, store: Callable[[], Store | None]):
        self.registry = CollectorRegistry()
        self.requests = Counter("reskernel_http_requests", "HTTP requests answered, by method, route template "
                                "and status", ["method", "route", "status"], registry=self.registry)
        self.request_seconds = Histogram("reskernel_http_request_duration_seconds", "Time to answer a request "
                                         "(an event stream: its whole length)", ["method", "route"],
                                         registry=self.registry)
        self.cache_hits = Counter("reskernel_cache_hits", "Requests answered from the job store",
                                  ["operation"], registry=self.registry)
        self.cache_misses = Counter("reskernel_cache_misses", "Requests that started a job or joined a running one",
                                    ["operation"], registry=self.registry)
        self.job_seconds = Histogram("reskernel_job_duration_seconds", "Run time of the jobs this process "
                                     "dispatched (finished_at - started_at)", ["operation", "status"],
                                     buckets=JOB_BUCKETS, registry=self.registry)
        self.registry.register(StoreCollector(store))

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def cache(self, operation: str, hit: bool) -> None:
        (self.cache_hits if hit else self.cache_misses).labels(operation).inc()

    def job_ended(self, job: Job) -> None:
        """Observe an ended job's run time (none for a job canceled before it started)."""
        if job.started_at is not None and job.finished_at is not None:
            self.job_seconds.labels(job.operation, job.status).observe(max(job.finished_at - job.started_at, 0.0))


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """The app's metrics in Prometheus' text format (in the thread pool: the store is read)."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
