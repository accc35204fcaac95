"""The two tasks of `smoothness_generalization`, one seeded split at a time.

digits: scikit-learn's 8x8 handwritten digits (all 1797 images, ten classes; not MNIST), a stratified
split of n_train + n_test images (`sklearn.model_selection.train_test_split`), the training mean
subtracted and every image scaled to unit norm, so the inputs lie on S^63 (the paper's protocol,
`engine.experiments.digits`); targets one-hot (n, 10); the test error is the fraction of test images
whose largest output is not their class. The same vectors reshaped (N, 8, 8, 1) are the conv kernels'
images.

sphere: points uniform on S^(d-1), the target f* of `engine.experiments.learning_curves` (a unit-norm
degree-k harmonic of power p_k per chosen degree, random poles), labels f*(x) + N(0, noise^2); the test
error is E (f - f*)^2 / E f*^2 over the test points.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DIGITS = 1797  # images in scikit-learn's digits
CLASSES = 10


class Task(NamedTuple):
    """x_train (n, d), y_train (n, C) one-hot or (n,) noisy labels, labels_train (n,) classes or None;
    x_test (m, d), truth_test (m, C) one-hot or (m,) the clean target, labels_test (m,) or None."""

    x_train: np.ndarray
    y_train: np.ndarray
    labels_train: np.ndarray | None
    x_test: np.ndarray
    truth_test: np.ndarray
    labels_test: np.ndarray | None


def split_seed(seed: int, *parts: int) -> int:
    """A 31-bit seed drawn from (seed, *parts): independent streams per split, class, ..."""
    return int(np.random.default_rng([seed, *parts]).integers(2**31 - 1))


def digits_task(n_train: int, n_test: int, split: int, seed: int) -> Task:
    """Split `split` of the digits (module docstring); n_train + n_test <= 1797."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if n_train + n_test > DIGITS:
        raise ValueError(f"n_train + n_test must be <= {DIGITS} (the digits), got {n_train} + {n_test}")
    data = load_digits()
    images, labels = data.data.astype(np.float64), data.target.astype(np.int64)
    rest = DIGITS - n_train - n_test
    train, test = train_test_split(np.arange(DIGITS), train_size=n_train, test_size=n_test + rest,
                                   stratify=labels, random_state=split_seed(seed, split))
    if rest:  # the test images: a stratified part of the remainder
        test = train_test_split(test, train_size=n_test, stratify=labels[test],
                                random_state=split_seed(seed, split, 1))[0]
    x = images - images[train].mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    onehot = np.eye(CLASSES)[labels]
    return Task(x[train], onehot[train], labels[train], x[test], onehot[test], labels[test])


def sphere_task(d: int, n_train: int, n_test: int, degrees: list[int], powers: list[float], noise: float,
                split: int, seed: int) -> Task:
    """Split `split` of the sphere task (module docstring)."""
    from engine.experiments.learning_curves import sphere_sample, target

    rng = np.random.default_rng([seed, split, d])
    poles = sphere_sample(len(degrees), d, rng)
    x, x_test = sphere_sample(n_train, d, rng), sphere_sample(n_test, d, rng)
    y = target(x, degrees, powers, poles) + noise * rng.standard_normal(n_train)
    return Task(x, y, None, x_test, target(x_test, degrees, powers, poles), None)


def test_error(task: Task, predictions: np.ndarray) -> float:
    """The task's test error of predictions (m, C) or (m,) (module docstring)."""
    if task.labels_test is not None:
        return float(np.mean(np.argmax(predictions, axis=1) != task.labels_test))
    return float(np.mean((predictions - task.truth_test) ** 2) / np.mean(task.truth_test**2))


def train_error(task: Task, predictions: np.ndarray) -> float:
    """The same error on the training set (against the noisy labels on the sphere)."""
    if task.labels_train is not None:
        return float(np.mean(np.argmax(predictions, axis=1) != task.labels_train))
    return float(np.mean((predictions - task.y_train) ** 2) / np.mean(task.truth_test**2))
