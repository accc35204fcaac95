"""Whether a point set has one norm (circle, sphere): then every layer's variances are two
numbers and the dual activations are 1-D functions of the correlation (`engine.chebyshev`).
Free of JAX, so the service's API process can ask it too (its admission limits)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

RTOL = 1e-13  # norms within this (relative) count as one


def one_norm(q: ArrayLike) -> bool:
    """True when the squared norms q (n,) agree to RTOL relative (so the points lie on one sphere)."""
    q = np.asarray(q, dtype=np.float64)
    return bool(np.ptp(q) <= RTOL * np.max(np.abs(q)))
