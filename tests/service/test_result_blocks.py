"""GET /v1/jobs/{id}/result?array=NAME&rows=a:b&cols=c:d: a block of one array, as JSON or a streamed
.npy read from the stored file, against numpy's own slicing of the whole array; each bad range a 422
naming rows or cols."""

import io

import numpy as np
import pytest

from service.client import Client
from service.http.results import Download, _npy

pytestmark = pytest.mark.anyio
ARCH = {"kind": "resnet", "depth": 2, "alpha": 0.5}


def points(n, seed):
    x = np.random.default_rng(seed).standard_normal((n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
async def job(api):
    body = {"x": points(60, 0).tolist(), "x2": points(25, 1).tolist(), "architecture": ARCH}
    response = await api.post("/v1/kernels", json=body)
    assert response.status_code == 200, response.text
    return response.headers["etag"].strip('"'), np.array(response.json()["ntk"])


@pytest.mark.parametrize(("query", "block"), [
    ("rows=10:20&cols=5:7", np.s_[10:20, 5:7]), ("rows=:5", np.s_[:5, :]), ("rows=59:", np.s_[59:, :]),
    ("cols=24:25", np.s_[:, 24:25]), ("rows=0:60&cols=0:25", np.s_[:, :])])
async def test_a_block_equals_the_slice_of_the_whole(api, job, query, block):
    job_id, whole = job
    npy = await api.get(f"/v1/jobs/{job_id}/result?array=ntk&{query}", headers={"Accept": "application/x-npy"})
    assert npy.status_code == 200 and npy.headers["content-type"] == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(npy.content)), whole[block])
    as_json = await api.get(f"/v1/jobs/{job_id}/result?array=ntk&{query}")
    np.testing.assert_array_equal(np.array(as_json.json()), whole[block])
    assert npy.headers["etag"] != as_json.headers["etag"]
    again = await api.get(f"/v1/jobs/{job_id}/result?array=ntk&{query}",
                          headers={"Accept": "application/x-npy", "If-None-Match": npy.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(("query", "field", "status"), [
    ("array=ntk&rows=5:5", "rows", 422), ("array=ntk&rows=0:61", "rows", 422), ("array=ntk&rows=a:b", "rows", 422),
    ("array=ntk&rows=7", "rows", 422), ("array=ntk&cols=-1:3", "cols", 422), ("array=ntk&cols=3:26", "cols", 422),
    ("rows=0:3", "rows", 422), ("array=nope&rows=0:3", "array", 404)])
async def test_bad_ranges_name_their_field(api, job, query, field, status):
    response = await api.get(f"/v1/jobs/{job[0]}/result?{query}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field] or response.json().get("field") == field


async def test_one_axis_arrays_have_no_cols_and_npz_is_refused(api, job):
    body = {"x_train": points(8, 2).tolist(), "y_train": list(range(8)), "x_test": points(5, 3).tolist(),
            "architecture": ARCH}
    regression = await api.post("/v1/regression", json=body)
    job_id = regression.headers["etag"].strip('"')
    mean = await api.get(f"/v1/jobs/{job_id}/result?array=mean&rows=1:3")
    np.testing.assert_array_equal(mean.json(), regression.json()["mean"][1:3])
    assert (await api.get(f"/v1/jobs/{job_id}/result?array=mean&cols=0:1")).status_code == 422
    npz = await api.get(f"/v1/jobs/{job[0]}/result?array=ntk&rows=0:2", headers={"Accept": "application/x-npz"})
    assert npz.status_code == 406


def test_the_npy_stream_holds_a_few_mib_at_a_time(tmp_path):
    """A 64 MB memory-mapped array's block comes out in pieces of at most Download.chunk_size bytes,
    which together are the block's .npy."""
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(4000, 2000))
    big[:] = np.arange(2000.0)[None, :] + 1e4 * np.arange(4000.0)[:, None]
    big.flush()
    view = np.load(path, mmap_mode="r")[100:3900, 10:1990]
    pieces = list(_npy(view))
    assert max(len(p) for p in pieces[1:]) <= Download.chunk_size and len(pieces) > 10
    np.testing.assert_array_equal(np.load(io.BytesIO(b"".join(pieces))), big[100:3900, 10:1990])


def test_the_client_reads_a_block(server):
    with Client(server) as rk:
        job_id = rk.submit("kernels", {"x": points(30, 4).tolist(), "architecture": ARCH})
        whole = rk.result(job_id, rk.wait(job_id))["nngp"]
        np.testing.assert_array_equal(rk.block(job_id, "nngp", rows=(3, 9), cols=(0, 2)), whole[3:9, :2])
        np.testing.assert_array_equal(rk.block(job_id, "nngp", rows=(29, 30)), whole[29:])
