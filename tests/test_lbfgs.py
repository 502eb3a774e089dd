"""Preconditioned two-precision L-BFGS on quadratics with known minimisers."""

import numpy as np
import pytest
import torch

from overspec.evaluate.lbfgs import minimise


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny problems: extra threads only add contention on the shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def quadratic(n=40, cond=1e4, seed=0):
    """f(x) = x^T A x / 2 - b^T x, eigenvalues spread over ``cond``, minimiser of size ~1."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = torch.as_tensor(q @ np.diag(np.logspace(0, -np.log10(cond), n)) @ q.T)
    b = a @ torch.as_tensor(rng.standard_normal(n))

    def exact(x):
        ax = a @ x
        return float(0.5 * x @ ax - b @ x), ax - b

    return a, b, exact


def test_reaches_minimiser_to_tolerance():
    a, b, exact = quadratic()
    x0 = torch.zeros(40, dtype=torch.float64)
    res = minimise(exact, exact, lambda g: g.clone(), x0, max_iter=2000, tol=1e-7)
    assert res.converged and res.stop == "tol" and res.grad_max <= 1e-7
    # |x - x*| <= |g| / lambda_min, with |g| <= sqrt(n) max |g_i| and lambda_min = 1e-4
    np.testing.assert_allclose(res.x, torch.linalg.solve(a, b), atol=1e-7 * 1e4 * np.sqrt(40))


def test_exact_preconditioner_needs_one_step():
    a, _, exact = quadratic()
    a_inv = torch.linalg.inv(a)
    x0 = torch.zeros(40, dtype=torch.float64)
    res = minimise(exact, exact, lambda g: a_inv @ g, x0, max_iter=50, tol=1e-10)
    assert res.converged and res.n_iter == 1


def test_noisy_fast_evaluation_still_converges_in_exact_arithmetic():
    # The fast objective's loss carries deterministic noise of 1e-9, like float32 rounding.
    _, _, exact = quadratic(cond=1e3)

    def fast(x):
        f, g = exact(x)
        return f + 1e-9 * float(torch.sin(1e6 * x.sum())), g + 1e-7 * torch.cos(1e6 * x)

    res = minimise(fast, exact, lambda g: g.clone(), torch.zeros(40, dtype=torch.float64),
                   max_iter=2000, tol=1e-7, fast_min_decrease=1e-7)
    assert res.converged and res.grad_max <= 1e-7
    assert 0 < res.n_exact < res.n_eval  # most evaluations were fast, the last ones exact


def test_max_iter_is_reported():
    _, _, exact = quadratic(cond=1e6)
    res = minimise(exact, exact, lambda g: g.clone(), torch.zeros(40, dtype=torch.float64), max_iter=3, tol=1e-12)
    assert not res.converged and res.stop == "max_iter" and res.n_iter == 3
