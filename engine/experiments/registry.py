"""The experiments by name: parameters at two scales, their declarations, a cost estimate.

Each experiment has two parameter sets sharing one code path: `quick` (the default; fits a
2-core CPU) and `paper` (the paper's settings; the finite-network ones are GPU work).
`run(name, scale, overrides)` returns {"tables": {name: [row dicts]}, "labels": {...},
**arrays}: JSON-able values and numpy arrays. Importing this does not import JAX.

Cost estimates (`Experiment.cost(params)`), for admission against budgets:
- kernel_entry_layers: analytic-kernel Gram entries x depth, summed over every kernel the
  experiment computes (about 10 ns each for ReLU on one core; quadrature activations ~1000x);
- training_weight_steps: networks x steps x samples per step x weights, the multiply-adds
  of the forward passes of training (backward about 2x more);
- output_bytes: float64 bytes of the arrays the experiment returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.experiments.common import Progress
from engine.experiments.parameters import Parameter

SCALES = ("quick", "paper")


class ParameterError(ValueError):
    """A bad experiment parameter; `parameter` names it (None: the parameter set as a whole)."""

    def __init__(self, message: str, parameter: str | None = None):
        super().__init__(message)
        self.parameter = parameter


COST_KEYS = ("kernel_entry_layers", "training_weight_steps", "output_bytes")


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    run: Callable[..., dict[str, Any]]
    declared: dict[str, Parameter]
    quick: dict[str, Any]
    cost_of: Callable[[dict[str, Any]], dict[str, int]]
    paper: dict[str, Any] = field(default_factory=dict)  # overrides of `quick` for the paper's scale
    rules: Callable[[dict[str, Any]], None] | None = None  # checks across parameters

    def __post_init__(self) -> None:
        if set(self.declared) != set(self.quick) or not set(self.paper) <= set(self.quick):
            raise ValueError(f"{self.name}: every parameter needs a declaration and a quick value")

    @property
    def description(self) -> str:
        first = " ".join((self.run.__doc__ or "").split("\n\n")[0].split())
        return first.split(" Arrays:")[0]

    def parameters(self, scale: str = "quick", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full parameter set at `scale`, with `overrides` checked against the declarations."""
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        if overrides is not None and not isinstance(overrides, dict):
            raise ParameterError(f"{self.name} parameters must be an object, got {type(overrides).__name__}")
        params = {**self.quick, **(self.paper if scale == "paper" else {})}
        for key, value in (overrides or {}).items():
            if key not in params:
                raise ParameterError(f"{self.name} has no parameter {key!r}; its parameters are {sorted(params)}", key)
            try:
                params[key] = self.declared[key].check(f"{self.name}.{key}", value)
            except ValueError as exc:
                raise ParameterError(str(exc), key) from None
        if self.rules is not None:
            self.rules(params)
        return params

    def cost(self, params: dict[str, Any]) -> dict[str, int]:
        """The cost estimate of a full parameter set (module docstring for the units)."""
        return {key: int(value) for key, value in self.cost_of(params).items()}

    def describe(self) -> dict[str, Any]:
        quick, paper = self.parameters("quick"), self.parameters("paper")
        return {"name": self.name, "title": self.title, "description": self.description, "quick": quick,
                "paper": paper, "parameters": {k: p.describe() | {"quick": quick[k], "paper": paper[k]}
                                               for k, p in self.declared.items()},
                "cost": {"quick": self.cost(quick), "paper": self.cost(paper)}}


def same_length(first: str, second: str) -> Callable[[dict[str, Any]], None]:
    """A rule: parameter `second` gives one entry per entry of `first`."""
    def rule(params: dict[str, Any]) -> None:
        if len(params[second]) != len(params[first]):
            raise ParameterError(f"{second} must give one entry per {first} entry; got {len(params[second])} "
                                 f"for {len(params[first])}", second)
    return rule


def run_experiment(experiments: dict[str, Experiment], name: str, scale: str = "quick",
                   overrides: dict[str, Any] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Run one experiment; the result carries its name, scale and parameters."""
    if name not in experiments:
        raise ValueError(f"no experiment {name!r}; the experiments are {sorted(experiments)}")
    experiment = experiments[name]
    params = experiment.parameters(scale, overrides)
    result = experiment.run(**params, progress=progress)
    result["labels"] = {**result.get("labels", {}), "experiment": name, "scale": scale, "parameters": params}
    return result
