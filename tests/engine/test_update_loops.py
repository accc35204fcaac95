"""`train` against hand-written update loops on tiny networks: GD, SGD and Adam step by step,
the NTK drift recomputed at every record, and the ensemble (vmap) path against the
network-by-network one.

The references use only public functions (`init_params`, `apply`, `empirical_ntk`) and
jax.grad of 1/2 ||f(X) - y||^2. Minibatches are drawn inside `train`; the SGD/Adam replays
try every possible batch at each step and keep the one whose recorded full-set loss matches
(exactly one must), so they check the update rule without re-implementing the sampler.
"""

from itertools import combinations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine import Architecture, apply, circle_points, empirical_ntk, ensemble_member, init_params, train

ANGLES = np.array([-2.5, -1.0, 0.4, 1.9])
X, Y = circle_points(ANGLES), np.array([0.8, -0.5, 0.3, 1.1])
WIDTH = 8
B1, B2, EPS = 0.9, 0.999, 1e-8  # Adam's defaults (Kingma & Ba 2015), which the paper uses


def loss_fn(arch, parametrization):
    def loss(params, x, y):
        return 0.5 * jnp.sum((apply(arch, params, x, parametrization) - y) ** 2)

    return jax.jit(loss)


def start(arch, seed, parametrization, n_init=1, index=0):
    return ensemble_member(init_params(arch, WIDTH, 2, seed, parametrization, n_init=n_init), index)


def norm(tree):
    return float(jnp.sqrt(sum(jnp.sum(a * a) for a in jax.tree.leaves(tree))))


def sgd(params, state, grad, lr, step):
    return jax.tree.map(lambda p, g: p - lr * g, params, grad), state, lr * norm(grad)


def adam(params, state, grad, lr, step):
    """One Adam step (step = 1, 2, ...): bias-corrected moments."""
    m, v = state
    m = jax.tree.map(lambda a, g: B1 * a + (1 - B1) * g, m, grad)
    v = jax.tree.map(lambda a, g: B2 * a + (1 - B2) * g * g, v, grad)
    update = jax.tree.map(lambda a, b: (a / (1 - B1**step)) / (jnp.sqrt(b / (1 - B2**step)) + EPS), m, v)
    return jax.tree.map(lambda p, u: p - lr * u, params, update), (m, v), lr * norm(update)


def replay(arch, parametrization, rule, run, lr, batch_size, seed=0):
    """Replay `run` (recorded every step) with `rule`, finding each step's batch by its loss."""
    loss = loss_fn(arch, parametrization)
    grad = jax.jit(jax.grad(loss))
    params = start(arch, seed, parametrization)
    state = (jax.tree.map(jnp.zeros_like, params),) * 2
    batches = list(combinations(range(len(X)), batch_size))
    movement = 0.0
    assert float(loss(params, X, Y)) == pytest.approx(run["loss"][0, 0], rel=1e-12)
    for step, recorded in enumerate(run["loss"][0, 1:], start=1):
        outcomes = []
        for batch in batches:
            idx = np.array(batch)
            new = rule(params, state, grad(params, X[idx], Y[idx]), lr, step)
            if float(loss(new[0], X, Y)) == pytest.approx(recorded, rel=1e-9):
                outcomes.append(new)
        assert len(outcomes) == 1, f"step {step}: {len(outcomes)} batches reproduce the recorded loss {recorded}"
        params, state, moved = outcomes[0]
        movement += moved
    final = ensemble_member(run["params"], 0)
    for name in params:
        np.testing.assert_allclose(final[name], params[name], rtol=1e-9, atol=1e-12, err_msg=name)
    assert run["weight_movement"][0] == pytest.approx(movement, rel=1e-9)


OPTIMIZERS = [("sgd", sgd, 0.05, 1), ("adam", adam, 0.01, 1), ("adam", adam, 0.01, 4)]


@pytest.mark.parametrize(("optimizer", "rule", "lr", "batch_size"), OPTIMIZERS,
                         ids=[f"{o[0]}-batch{o[3]}" for o in OPTIMIZERS])
def test_optimizer_against_a_hand_written_loop(optimizer, rule, lr, batch_size):
    arch = Architecture("resnet", 2, alpha=0.5, sigma_b=0.2)
    run = train(arch, X, Y, width=WIDTH, seed=0, optimizer=optimizer, lr=lr, steps=5, batch_size=batch_size,
                parametrization="standard", record_every=1)
    replay(arch, "standard", rule, run, lr, batch_size)


def test_adam_first_step_is_lr_times_the_sign_of_the_gradient():
    # with bias correction, m_1 / sqrt(v_1) = g / |g|: every weight moves by lr against its gradient
    arch, lr = Architecture("mlp", 2), 1e-3
    before = start(arch, 2, "standard")
    g = jax.grad(loss_fn(arch, "standard"))(before, X, Y)
    after = ensemble_member(train(arch, X, Y, width=WIDTH, seed=2, optimizer="adam", lr=lr, steps=1,
                                  parametrization="standard")["params"], 0)
    for name in before:
        moved, gradient = np.asarray(after[name] - before[name]), np.asarray(g[name])
        clear = np.abs(gradient) > 1e-4
        assert clear.sum() > 0.5 * clear.size, name
        np.testing.assert_allclose(moved[clear], -lr * np.sign(gradient[clear]), rtol=1e-3, err_msg=name)


def test_ntk_drift_against_kernels_recomputed_along_a_gd_loop():
    """Each record's drift is ||Theta_t - Theta_0||_F / ||Theta_0||_F, Theta_t the autodiff
    empirical NTK of the network after t GD steps."""
    arch, lr, every = Architecture("resnet", 2, alpha=0.8), 0.4, 3
    run = train(arch, X, Y, width=WIDTH, seed=1, lr=lr, steps=3 * every, record_every=every, track_ntk=True)
    loss = loss_fn(arch, "ntk")
    grad = jax.jit(jax.grad(loss))
    params = start(arch, 1, "ntk")
    theta0 = empirical_ntk(arch, params, X, method="jacobian")
    thetas = [theta0]
    for _ in range(3):
        for _ in range(every):
            params = jax.tree.map(lambda p, g: p - lr * g, params, grad(params, X, Y))
        thetas.append(empirical_ntk(arch, params, X, method="jacobian"))
    expected = [np.linalg.norm(theta - theta0) / np.linalg.norm(theta0) for theta in thetas]
    # the kernel keeps moving, so the drift from Theta_0 is not the change since the last record
    assert np.linalg.norm(thetas[3] - thetas[2]) / np.linalg.norm(theta0) < 0.8 * expected[3]
    np.testing.assert_allclose(run["ntk_drift"][0], expected, rtol=1e-7, atol=1e-14)
    np.testing.assert_array_equal(run["steps"], [0, every, 2 * every, 3 * every])


@pytest.mark.parametrize(("optimizer", "lr", "batch_size"), [("gd", 0.3, None), ("adam", 0.01, 2)])
def test_ensemble_path_equals_network_by_network(monkeypatch, optimizer, lr, batch_size):
    """The vmapped ensemble path (used off the CPU) forced on the CPU, against the per-network path."""
    arch = Architecture("mlp", 2, sigma_b=0.3)
    kwargs = {"width": WIDTH, "seed": 5, "n_init": 3, "optimizer": optimizer, "lr": lr, "steps": 6,
              "batch_size": batch_size, "record_every": 2, "x_test": X[:2], "track_ntk": True}
    one_by_one = train(arch, X, Y, **kwargs)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    together = train(arch, X, Y, **kwargs)
    for name in ("loss", "predictions", "weight_movement", "ntk_drift"):
        np.testing.assert_allclose(together[name], one_by_one[name], rtol=1e-10, atol=1e-13, err_msg=name)
    for name in one_by_one["params"]:
        np.testing.assert_allclose(together["params"][name], one_by_one["params"][name], rtol=1e-10, atol=1e-13)
    assert not np.allclose(one_by_one["loss"][0], one_by_one["loss"][1])  # three different networks
