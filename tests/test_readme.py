"""The README's tour runs as written, and its printed claims hold."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).parents[1] / "README.md"


def test_readme_tour_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    printed = capsys.readouterr().out.split()
    assert round(float(printed[0]), 3) == 1.012
    assert round(float(printed[1]), 2) == 58.36
    run, fit = namespace["run"], namespace["fit"]
    error = np.max(np.abs(run["mean_prediction"][-1] - fit.mean)) / np.max(np.abs(fit.mean))
    assert error < 0.05 and np.all(run["ntk_drift"][:, -1] < 0.01)
