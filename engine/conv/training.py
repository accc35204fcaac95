"""What `engine.training.train` needs of a conv net besides its loop: the loss gradient and the
step bound. (`train` itself takes a ConvArchitecture: inputs (n, *S, C), GD / SGD / Adam alike.)

The step bound of lr "auto" is 2 / (lambda_min + lambda_max) of the empirical NTK of the
ensemble's first network at initialisation on x_train: the conv analytic NTK is its limit at
large width (tests/engine/test_conv_networks.py), and for a finite network it is the curvature
gradient descent actually meets.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from engine.conv.empirical import structured_ntk
from engine.conv.networks import ConvFamily, Params, Scales, forward


def loss_gradient(fam: ConvFamily, c: Scales, params: Params, x: Array, y: Array) -> tuple[dict[str, Array], Array]:
    """Gradient of 1/2 ||f(x) - y||^2 by autodiff, and its squared norm."""
    grads = jax.grad(lambda p: 0.5 * jnp.sum((forward(fam, p, x, c)[0] - y) ** 2))(params)
    norm2 = jnp.sum(jnp.stack([jnp.sum(g * g) for g in jax.tree.leaves(grads)]))
    return grads, norm2


def lr_bound(fam: ConvFamily, params: Params, x: np.ndarray, c: Scales) -> float:
    """2 / (lambda_min + lambda_max) of one network's empirical NTK on x (n, *S, C)."""
    with jax.enable_x64(True):
        ntk = np.asarray(structured_ntk(fam, params, jnp.asarray(x), None, c))
    eig = np.linalg.eigvalsh(ntk)
    return float(2.0 / (max(eig[0], 0.0) + eig[-1]))
