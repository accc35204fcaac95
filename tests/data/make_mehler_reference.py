"""Reference values of T = E[phi(u) phi(v)] and Tdot = E[phi'(u) phi'(v)], (u, v) ~ N(0, S), for tanh,
softplus and sigmoid at variances of different size and correlations near +-1, in the Cholesky coordinates
u = a z1, v = b z1 + c z2: at rho = +-1 (c = 0) one integral, by mpmath (20 digits, tanh-sinh); otherwise two
nested adaptive quadratures of scipy (float64, tolerance 1e-14; mpmath's nested quadrature takes a minute
an entry, and agrees with it: `check`). Independent of the engine. Writes mehler_reference.json beside this
file (a few minutes):

    .venv/bin/python tests/data/make_mehler_reference.py
"""

import json
import math
import warnings
from pathlib import Path

import mpmath as mp
from scipy import integrate

mp.mp.dps = 20
PHI = {
    "tanh": (mp.tanh, lambda u: 1 - mp.tanh(u) ** 2),
    "softplus": (lambda u: mp.log1p(mp.exp(u)) if u < 0 else u + mp.log1p(mp.exp(-u)), lambda u: 1 / (1 + mp.exp(-u))),
    "sigmoid": (lambda u: 1 / (1 + mp.exp(-u)), lambda u: mp.exp(-u) / (1 + mp.exp(-u)) ** 2),
}
FLOAT = {
    "tanh": (math.tanh, lambda u: 1 - math.tanh(u) ** 2),
    "softplus": (lambda u: max(u, 0.0) + math.log1p(math.exp(-abs(u))), lambda u: 0.5 * (1 + math.tanh(u / 2))),
    "sigmoid": (lambda u: 0.5 * (1 + math.tanh(u / 2)), lambda u: 0.25 * (1 - math.tanh(u / 2) ** 2)),
}
# (s11, s22, rho): different norms near +-1 and exactly +-1, middling correlations, and identical points
CASES = [(0.3, 1.1, 0.2), (0.8, 0.25, -0.6), (0.5, 1.4, 1 - 1e-6), (1.2, 0.4, -1 + 1e-9), (0.6, 1.5, 1.0),
         (1.3, 0.2, -1.0), (0.9, 0.9, 1.0), (1.6, 1.6, 1 - 1e-12), (0.05, 1.0, 0.999)]


def gauss(z):
    return mp.exp(-z * z / 2) / mp.sqrt(2 * mp.pi)


def dual(f, s11, s22, rho):
    """mpmath, nested (a minute an entry when rho is not +-1)."""
    a = mp.sqrt(s11)
    b, c = rho * mp.sqrt(s22), mp.sqrt(s22 * (1 - rho * rho))
    if c == 0:
        return mp.quad(lambda z: f(a * z) * f(b * z) * gauss(z), [-mp.inf, 0, mp.inf])
    inner = lambda z1: mp.quad(lambda z2: f(b * z1 + c * z2) * gauss(z2), [-mp.inf, -b * z1 / c, mp.inf])  # noqa: E731
    return mp.quad(lambda z1: f(a * z1) * inner(z1) * gauss(z1), [-mp.inf, 0, mp.inf])


def scipy_dual(f, s11, s22, rho):
    """Two nested adaptive Gauss-Kronrod quadratures (float64), each split where its argument is 0."""
    a = math.sqrt(s11)
    b, c = rho * math.sqrt(s22), math.sqrt(s22 * (1 - rho * rho))
    g = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    tol = dict(epsabs=1e-15, epsrel=1e-14, limit=400)
    inner = lambda z1: integrate.quad(lambda z2: f(b * z1 + c * z2) * g(z2), -14, 14,  # noqa: E731
                                      points=[min(max(-b * z1 / c, -13), 13)], **tol)[0]
    return integrate.quad(lambda z1: f(a * z1) * inner(z1) * g(z1), -14, 14, points=[0.0], **tol)[0]


def check() -> None:
    """mpmath's nested quadrature against scipy's at one entry (about a minute)."""
    print(float(dual(mp.tanh, mp.mpf(0.3), mp.mpf(1.1), mp.mpf(0.2))) - scipy_dual(math.tanh, 0.3, 1.1, 0.2))


def main() -> None:
    warnings.simplefilter("ignore", integrate.IntegrationWarning)  # near rho = +-1 the tolerance is below rounding
    out = []
    for activation, (phi, dphi) in PHI.items():
        for s11, s22, rho in CASES:
            s11m, s22m, rhom = mp.mpf(s11), mp.mpf(s22), mp.mpf(rho)
            if abs(rho) == 1:
                t, tdot = dual(phi, s11m, s22m, rhom), dual(dphi, s11m, s22m, rhom)
            else:
                t, tdot = (scipy_dual(f, s11, s22, rho) for f in FLOAT[activation])
            out.append({"activation": activation, "s11": s11, "s22": s22, "rho": rho,
                        "t": float(t), "tdot": float(tdot)})
            print(out[-1], flush=True)
    path = Path(__file__).with_name("mehler_reference.json")
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
