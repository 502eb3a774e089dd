"""Preconditioned L-BFGS on torch tensors, with a cheap and an exact evaluation of the objective.

Written by hand because neither torch.optim.LBFGS nor scipy's L-BFGS-B accepts a preconditioner
or a stopping test on another gradient than the one they step with. Meant for smooth convex
objectives (the line search only backtracks, which is enough when steps come from a well-scaled
quasi-Newton model; a pair with non-positive curvature is skipped).

Two evaluations: ``fast`` (e.g. float32 products) is used while the predicted decrease of a step
is far above its rounding noise; ``exact`` (float64) takes over for the last steps, when a fast
line search fails, and for the stopping test, so convergence is judged in exact arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

Eval = Callable[[torch.Tensor], tuple[float, torch.Tensor]]

_ARMIJO = 1e-4
_MAX_BACKTRACKS = 40
# scikit-learn's L-BFGS stops on a relative decrease below 64 * machine epsilon; so do we.
_FTOL = 64 * np.finfo(np.float64).eps


@dataclass
class LbfgsResult:
    x: torch.Tensor
    f: float
    grad_max: float  # max |gradient| at x, exact evaluation
    n_iter: int
    n_eval: int  # evaluations in total
    n_exact: int  # of which exact
    converged: bool  # grad_max <= tol
    stop: str  # "tol", "max_iter", or "no_progress" (rounding limits the decrease, as scipy's ftol)


def minimise(
    fast: Eval,
    exact: Eval,
    precondition: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    max_iter: int,
    tol: float,
    history: int = 20,
    fast_min_decrease: float = 0.0,
) -> LbfgsResult:
    """Minimise until max |exact gradient| <= tol, max_iter iterations, or no more progress.

    ``precondition(g)`` applies an approximate inverse Hessian; L-BFGS uses it, rescaled by the
    latest curvature pair, as its initial matrix. ``fast_min_decrease``: switch to ``exact`` once a
    step predicts a smaller decrease than this (set it well above the rounding noise of ``fast``).
    """
    n_exact = 0

    def exact_counted(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        nonlocal n_exact
        n_exact += 1
        return exact(x)

    x = x0.clone()
    evaluate, is_exact = fast, False
    f, g = evaluate(x)
    n_eval = 1
    s_mem: list[torch.Tensor] = []
    y_mem: list[torch.Tensor] = []
    rho_mem: list[float] = []
    n_iter = 0
    while True:
        if float(g.abs().max()) <= tol:
            if is_exact:
                return LbfgsResult(x, f, float(g.abs().max()), n_iter, n_eval, n_exact, True, "tol")
            evaluate, is_exact = exact_counted, True  # confirm in exact arithmetic
            f, g = evaluate(x)
            n_eval += 1
            continue
        if n_iter >= max_iter:
            break
        d = -_two_loop(g, s_mem, y_mem, rho_mem, precondition)
        gtd = float(torch.dot(g, d))
        if not gtd < 0:  # not a descent direction (rounding): restart from the preconditioned gradient
            s_mem.clear(), y_mem.clear(), rho_mem.clear()
            d = -precondition(g)
            gtd = float(torch.dot(g, d))
        if not is_exact and -gtd < fast_min_decrease:
            evaluate, is_exact = exact_counted, True
            f, g = evaluate(x)
            n_eval += 1
            continue
        step = _backtrack(evaluate, x, f, d, gtd)
        n_eval += step[3]
        if step[0] is None:
            if is_exact:
                break  # no decrease left in exact arithmetic
            evaluate, is_exact = exact_counted, True
            f, g = evaluate(x)
            n_eval += 1
            continue
        x_new, f_new, g_new = step[0], step[1], step[2]
        n_iter += 1
        s, y = x_new - x, g_new - g
        sy = float(torch.dot(s, y))
        if sy > 1e-12 * float(torch.linalg.vector_norm(s) * torch.linalg.vector_norm(y)):
            s_mem.append(s), y_mem.append(y), rho_mem.append(1.0 / sy)
            if len(s_mem) > history:
                s_mem.pop(0), y_mem.pop(0), rho_mem.pop(0)
        stalled = f - f_new <= _FTOL * max(abs(f), abs(f_new), 1.0)
        x, f, g = x_new, f_new, g_new
        if stalled:
            if is_exact:
                break
            evaluate, is_exact = exact_counted, True
            f, g = evaluate(x)
            n_eval += 1
    if not is_exact:
        f, g = exact_counted(x)
        n_eval += 1
    grad_max = float(g.abs().max())
    stop = "tol" if grad_max <= tol else ("max_iter" if n_iter >= max_iter else "no_progress")
    return LbfgsResult(x, f, grad_max, n_iter, n_eval, n_exact, grad_max <= tol, stop)


def _two_loop(g, s_mem, y_mem, rho_mem, precondition) -> torch.Tensor:
    """L-BFGS two-loop recursion: approximate inverse Hessian times g."""
    q = g.clone()
    alphas = []
    for s, y, rho in zip(reversed(s_mem), reversed(y_mem), reversed(rho_mem)):
        a = rho * float(torch.dot(s, q))
        q.add_(y, alpha=-a)
        alphas.append(a)
    r = precondition(q)
    if s_mem:
        # Scale the preconditioner so it matches the curvature of the latest pair along y.
        y = y_mem[-1]
        r.mul_(1.0 / (rho_mem[-1] * float(torch.dot(y, precondition(y)))))
    for s, y, rho, a in zip(s_mem, y_mem, rho_mem, reversed(alphas)):
        b = rho * float(torch.dot(y, r))
        r.add_(s, alpha=a - b)
    return r


def _backtrack(evaluate: Eval, x, f, d, gtd):
    """Armijo backtracking from step 1 with safeguarded quadratic interpolation.

    Returns (x_new, f_new, g_new, evaluations), x_new None when no step satisfied Armijo.
    """
    t = 1.0
    for n in range(1, _MAX_BACKTRACKS + 1):
        x_new = x + t * d
        f_new, g_new = evaluate(x_new)
        if np.isfinite(f_new) and f_new <= f + _ARMIJO * t * gtd:
            return x_new, f_new, g_new, n
        if np.isfinite(f_new):
            t_quad = -gtd * t * t / (2.0 * (f_new - f - gtd * t))
            t = min(max(t_quad, 0.1 * t), 0.5 * t)
        else:
            t *= 0.1
    return None, None, None, _MAX_BACKTRACKS
