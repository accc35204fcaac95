"""A job never runs past its compute budget (issue 19, item 3): the worker stops it at
RESKERNEL_MAX_COMPUTE_SECONDS and records a failure naming the budget, also when the job does not
poll its stop flag (the worker process is restarted after the grace time); each task carries the
budget; a job estimated above the small-job threshold gets a task of its own; an experiment stops
at its next step once cancelled. No cluster; a second or two, and a subprocess."""

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from service.jobs import executor as executor_module
from service.jobs import worker
from service.jobs.executor import Executor
from service.jobs.worker import run_job
from service.settings import Limits, Settings
from service.store.job import Job
from service.store.sqlite import SQLiteStore


class Future:
    def __init__(self, key: str):
        self.key, self.status = key, "pending"

    def add_done_callback(self, callback) -> None:
        pass


class Client:
    """Records each task submitted: (function name, its arguments)."""

    def __init__(self):
        self.tasks: list[tuple[str, tuple]] = []

    def submit(self, function, *args, key: str, pure: bool) -> Future:
        self.tasks.append((function.__name__, args))
        return Future(key)


@pytest.fixture
def executor(tmp_path):
    executor = Executor(Settings(data_dir=tmp_path, limits=Limits(compute_seconds=77)))
    executor.client = Client()
    executor._slots, executor._slots_at = 2, time.monotonic() + 3600
    return executor


def test_a_job_estimated_over_the_small_job_threshold_gets_a_task_of_its_own(executor):
    """0.1 s of estimated compute is over BATCH_JOB_S (0.05 s) though under a batch's bound (0.5 s):
    it runs alone; 0.04 s shares a task. (A threshold set to the batch bound batches both.)"""
    executor.submit("small", "kernels", {}, lambda *_: None, seconds=0.04)
    executor.submit("medium", "kernels", {}, lambda *_: None, seconds=0.1)
    executor.submit("large", "kernels", {}, lambda *_: None, seconds=0.3)
    names = [(name, args[0] if name == "_run_job" else [job[0] for job in args[0]])
             for name, args in executor.client.tasks]
    assert names == [("_run_jobs", ["small"]), ("_run_job", "medium"), ("_run_job", "large")]
    assert executor_module.BATCH_JOB_S == 0.05


def test_every_task_carries_the_compute_budget(executor):
    executor.submit("alone", "kernels", {}, lambda *_: None, seconds=10.0)
    executor.submit("batched", "kernels", {}, lambda *_: None, seconds=0.001)
    (_, alone), (_, batched) = executor.client.tasks
    tiling = (Settings().distribute_entries, Settings().tile_edge, Limits().memory_bytes)
    assert alone[-2:] == (77.0, tiling) and alone[-3] == "" and alone[0] == "alone"  # ..., ticket, budget, tiling
    assert batched[-2:] == (77.0, tiling) and batched[0][0][0] == "batched"


def _claimable(tmp_path: Path, operation: str) -> SQLiteStore:
    store = SQLiteStore(tmp_path)
    store.create(Job(id="job", operation=operation, params={}, ticket="t", lease_until=time.time() + 60), {})
    return store


def test_a_job_past_its_budget_is_stopped_and_fails_naming_the_budget(tmp_path, monkeypatch):
    """The watchdog sets the stop flag once the job has run its budget; the run records a 422 naming
    RESKERNEL_MAX_COMPUTE_SECONDS, not a cancellation."""
    polls = []

    def slow(params, inputs, folder, report):
        from engine import Cancelled

        while not report.should_stop():
            polls.append(time.monotonic())
            time.sleep(0.01)
        raise Cancelled("stopped")

    monkeypatch.setitem(worker.RUNS, "slow", slow)
    store = _claimable(tmp_path, "slow")
    start = time.monotonic()
    assert run_job("job", "slow", {}, str(tmp_path), 3, 10.0, None, "reskernel", 30.0, "t", 0.6) == "failed"
    took = time.monotonic() - start
    assert 0.6 <= took < 2.0, took
    job = store.get("job")
    assert job.status == "failed" and job.error["status"] == 422, job
    assert job.error["title"] == "Compute budget exceeded"
    assert "over the compute budget of 0.6 s (RESKERNEL_MAX_COMPUTE_SECONDS)" in job.error["detail"]


def test_a_job_within_its_budget_is_untouched(tmp_path, monkeypatch):
    monkeypatch.setitem(worker.RUNS, "quick", lambda params, inputs, folder, report: ({"value": 1.0}, {}))
    store = _claimable(tmp_path, "quick")
    assert run_job("job", "quick", {}, str(tmp_path), 3, 10.0, None, "reskernel", 30.0, "t", 60.0) == "succeeded"
    assert store.get("job").status == "succeeded"


DEAF = textwrap.dedent("""
    import sys, time
    from service.jobs import worker
    from service.jobs.worker import run_job

    def deaf(params, inputs, folder, report):  # never polls its stop flag (a kernel stuck in one tile)
        time.sleep(60)
        return {}, {}

    worker.RUNS["deaf"] = deaf
    print(run_job("job", "deaf", {}, sys.argv[1], 3, 0.5, None, "reskernel", 30.0, "t", 0.5))
""")


def test_a_job_that_does_not_stop_at_its_budget_fails_and_its_worker_restarts(tmp_path):
    """Past the budget and the grace time the worker process exits (the nanny starts another), and the
    job is recorded as failed at its budget, not left running for its 60 s."""
    store = _claimable(tmp_path, "deaf")
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-c", DEAF, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 70, (run.returncode, run.stdout, run.stderr[-2000:])
    assert time.monotonic() - start < 30
    job = store.get("job")
    assert job.status == "failed" and job.error["status"] == 422, job
    assert "RESKERNEL_MAX_COMPUTE_SECONDS" in job.error["detail"]


class Report:
    """A reporter whose stop flag is raised by the first progress report."""

    def __init__(self):
        self.reports: list[str] = []

    def __call__(self, fraction: float, message: str) -> None:
        self.reports.append(message)

    def should_stop(self) -> bool:
        return bool(self.reports)


def test_a_cancelled_experiment_stops_at_its_next_step(tmp_path):
    """The experiment's progress checks the stop flag: cancelled after its first curve of four, it
    stops there (Cancelled) and writes no figure."""
    from engine import Cancelled
    from service.operations import experiment

    params = {"name": "kernel-shapes", "scale": "quick",
              "parameters": {"depths": [2], "alphas": [1.0], "n_angles": 9, "kernels": ["ntk", "nngp"]}}
    report = Report()
    with pytest.raises(Cancelled):
        experiment.run(params, {}, tmp_path, report)
    assert len(report.reports) == 1, report.reports
    assert not list(tmp_path.iterdir())


def test_the_budget_problem_reads_well():
    from service.jobs.watchdog import over_budget

    error = over_budget(3600, 3601.5)
    assert error["status"] == 422 and json.dumps(error)
    assert error["detail"].startswith("the job computed for 1 hour, over the compute budget of 1 hour "
                                      "(RESKERNEL_MAX_COMPUTE_SECONDS)")
