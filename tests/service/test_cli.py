"""`reskernel kernels` and `reskernel smoothness`: in-process and against a running service, the same
numbers as the engine, the service's error messages, examples in --help."""

import numpy as np
import pytest

from engine import Architecture, analytic_kernels, circle_interpolation
from service.cli import main

X = "[[1, 0], [0, 1], [0.6, 0.8]]"


def test_kernels_in_process_writes_the_engines_gram(tmp_path):
    out = tmp_path / "ntk.npy"
    main(["kernels", "--x", X, "--arch", "resnet,depth=2,alpha=0.1", "--kernel", "ntk", "--out", str(out)])
    expected = analytic_kernels([[1, 0], [0, 1], [0.6, 0.8]], arch=Architecture("resnet", depth=2, alpha=0.1))["ntk"]
    np.testing.assert_array_equal(np.load(out), expected)


def test_smoothness_against_the_service(server, tmp_path):
    out = tmp_path / "fit.npz"
    main(["smoothness", "--arch", "resnet,depth=2,alpha=0.1", "--n-grid", "256", "--url", server, "--out", str(out)])
    expected = circle_interpolation(Architecture("resnet", depth=2, alpha=0.1), 6, n_grid=256)
    with np.load(out) as saved:
        assert saved["mu"].tolist() == [expected["mu"]]
        np.testing.assert_array_equal(saved["interpolants"][0], expected["interpolant"])


@pytest.mark.parametrize("url", [False, True])
def test_bad_input_names_the_field(server, url):
    with pytest.raises(SystemExit, match=r"422 Invalid request: architecture\.depth: Input should be greater"):
        main(["kernels", "--x", X, "--arch", "mlp,depth=0", *(["--url", server] if url else [])])


def test_help_shows_an_example(capsys):
    for command in ("kernels", "smoothness"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert f"example:\n  reskernel {command} --" in capsys.readouterr().out
