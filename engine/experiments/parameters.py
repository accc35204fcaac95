"""Typed, bounded experiment parameters: each declares its type, range and list length,
checked before anything runs, with errors naming `experiment.parameter` and the bound.

A value is a JSON scalar or a flat list of scalars: nothing nested is ever walked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TYPES = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class Parameter:
    """type: "int" | "float" | "str" | "bool"; list: a list of those (min_items..max_items
    entries, `unique` if asked); minimum / maximum: inclusive bounds for numbers (`positive`:
    > 0); even: an even integer; choices: the allowed strings; nullable: null allowed."""

    type: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    even: bool = False
    choices: tuple[str, ...] | None = None
    list: bool = False
    min_items: int = 1
    max_items: int | None = None
    unique: bool = False
    nullable: bool = False

    def __post_init__(self) -> None:
        if self.type not in TYPES or (self.list and self.max_items is None):
            raise ValueError(f"bad parameter declaration {self!r}")

    def check(self, name: str, value: Any) -> Any:
        """value, converted (ints to floats for a float); ValueError naming `name` and the bound."""
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"{name} must not be null")
        if not self.list:
            return self._scalar(name, value)
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list of {self.type}s, got {type(value).__name__}")
        assert self.max_items is not None  # __post_init__: a list declares max_items
        if not self.min_items <= len(value) <= self.max_items:
            size = (f"{self.min_items}" if self.min_items == self.max_items
                    else f"{self.min_items} to {self.max_items}")
            raise ValueError(f"{name} must have {size} entries, got {len(value)}")
        items = [self._scalar(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if self.unique and len(set(items)) != len(items):
            raise ValueError(f"{name} entries must be unique, got {items!r}")
        return items

    def _scalar(self, name: str, value: Any) -> Any:
        kind = self.type
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {_short(value)}")
            return value
        if kind == "str":
            if not isinstance(value, str) or value not in (self.choices or ()):
                raise ValueError(f"{name} must be one of {list(self.choices or ())}, got {_short(value)}")
            return value
        if isinstance(value, bool) or not isinstance(value, int if kind == "int" else (int, float)):
            raise ValueError(f"{name} must be {'an integer' if kind == 'int' else 'a number'}, got {_short(value)}")
        if kind == "float":
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            value = float(value)
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{name} must be >= {self.minimum:g}, got {value!r}")
        if self.positive and value <= 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{name} must be <= {self.maximum:g}, got {value!r}")
        if self.even and value % 2:
            raise ValueError(f"{name} must be even, got {value!r}")
        return value

    def describe(self) -> dict[str, Any]:
        """The declaration as JSON (what GET /v1/experiments lists)."""
        out: dict[str, Any] = {"type": f"list[{self.type}]" if self.list else self.type,
                               "description": self.description}
        for key in ("minimum", "maximum"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.positive:
            out["exclusive_minimum"] = 0
        if self.even:
            out["even"] = True
        if self.list:
            out |= {"min_items": self.min_items, "max_items": self.max_items, "unique": self.unique}
        out["nullable"] = self.nullable
        return out


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, (int, float, str, bool)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


# Shared declarations (bounds sized for this service's limits; the service's own limits,
# e.g. RESKERNEL_MAX_DEPTH, still apply on top).
def depths(max_items: int = 8, maximum: int = 1000) -> Parameter:
    return Parameter("int", "Depths L (residual blocks / hidden layers).", minimum=1, maximum=maximum, list=True,
                     max_items=max_items, unique=True)


def alphas(max_items: int = 8) -> Parameter:
    return Parameter("float", "Residual-branch scales alpha of the compared ResNets.", minimum=0, maximum=100,
                     list=True, max_items=max_items, unique=True)


def n_trains(max_items: int = 4, maximum: int = 1000) -> Parameter:
    return Parameter("int", "Numbers m of equispaced training angles.", minimum=2, maximum=maximum, list=True,
                     max_items=max_items, unique=True)


DEPTH = Parameter("int", "Depth L.", minimum=1, maximum=100)
ALPHA = Parameter("float", "Residual-branch scale alpha.", minimum=0, maximum=100)
N_GRID = Parameter("int", "Points of the uniform angle grid on which mu is measured.", minimum=8, maximum=65536,
                   even=True)
N_ANGLES = Parameter("int", "Angles at which kernels are drawn.", minimum=3, maximum=65536)
RIDGE = Parameter("float", "Ridge, relative to the training Gram's mean diagonal.", minimum=0, maximum=1)
WIDTH = Parameter("int", "Hidden width n of the finite networks.", minimum=1, maximum=10000)
N_INIT = Parameter("int", "Independent initialisations per network.", minimum=1, maximum=64)
STEPS = Parameter("int", "Training steps.", minimum=1, maximum=100_000)
SEED = Parameter("int", "Random seed.", minimum=0, maximum=2**32 - 1)
LR = Parameter("float", "Step size.", positive=True, maximum=100)
KERNEL = Parameter("str", "Which kernel.", choices=("ntk", "nngp"))
PARAMETRIZATION = Parameter("str", "Initialisation of the finite networks (see engine.networks).",
                            choices=("xavier", "standard", "ntk", "pytorch"))
