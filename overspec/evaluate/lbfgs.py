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
    stop: str  # "tol", "max_iter", "no_progress" (rounding limits the decrease, as scipy's ftol) or "slow"


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
    rel_decrease: float = 0.0,
    window: int = 10,
) -> LbfgsResult:
    """Minimise until max |exact gradient| <= tol, max_iter iterations, or no more progress.

    ``precondition(g)`` applies an approximate inverse Hessian; L-BFGS uses it, rescaled by the
    latest curvature pair, as its initial matrix. ``fast_min_decrease``: switch to ``exact`` once a
    step predicts a smaller decrease than this (set it well above the rounding noise of ``fast``).
    ``rel_decrease`` (0: off): stop ("slow") once ``window`` iterations together lowered f by at most
    this fraction of f, i.e. the objective has stopped changing meaningfully although the gradient
    test has not been met (a separable problem at weak regularisation, where f creeps down for
    hundreds of iterations as the weights grow). Seen in fast arithmetic, it switches to exact and
    must hold again over ``window`` exact iterations, so rounding noise cannot trigger it.
    """
    evals = {"fast": 0, "exact": 0}
    mode = "fast"
    slow = False

    def evaluate(x: torch.Tensor) -> tuple[float, torch.Tensor]:
        evals[mode] += 1
        return (fast if mode == "fast" else exact)(x)

    s_mem: list[torch.Tensor] = []
    y_mem: list[torch.Tensor] = []
    rho_mem: list[float] = []
    x = x0.clone()
    f, g = evaluate(x)
    n_iter = 0
    recent_f = [f]  # f after each iteration since the last switch (rel_decrease test)
    while True:
        switch = False  # to exact evaluation, re-evaluating at x
        if float(g.abs().max()) <= tol:
            if mode == "exact":
                break
            switch = True  # confirm in exact arithmetic
        elif n_iter >= max_iter:
            break
        else:
            d = -_two_loop(g, s_mem, y_mem, rho_mem, precondition)
            gtd = float(torch.dot(g, d))
            if not gtd < 0:  # rounding broke the quasi-Newton model: restart from the preconditioner
                s_mem.clear(), y_mem.clear(), rho_mem.clear()
                d = -precondition(g)
                gtd = float(torch.dot(g, d))
            step = None
            if mode == "exact" or -gtd >= fast_min_decrease:
                step = _backtrack(evaluate, x, f, d, gtd)
            if step is None:
                if mode == "exact":
                    break  # no decrease left in exact arithmetic
                switch = True
            else:
                x_new, f_new, g_new = step
                n_iter += 1
                s, y = x_new - x, g_new - g
                sy = float(torch.dot(s, y))
                if sy > 1e-12 * float(torch.linalg.vector_norm(s) * torch.linalg.vector_norm(y)):
                    s_mem.append(s), y_mem.append(y), rho_mem.append(1.0 / sy)
                    if len(s_mem) > history:
                        s_mem.pop(0), y_mem.pop(0), rho_mem.pop(0)
                stalled = f - f_new <= _FTOL * max(abs(f), abs(f_new), 1.0)
                x, f, g = x_new, f_new, g_new
                if rel_decrease > 0:
                    recent_f.append(f)
                    if len(recent_f) > window and recent_f[-window - 1] - f <= rel_decrease * abs(f):
                        if mode == "exact":
                            slow = True
                            break
                        switch = True  # too little progress in fast arithmetic: confirm it in exact
                if stalled:
                    if mode == "exact":
                        break
                    switch = True
        if switch:
            mode = "exact"
            f, g = evaluate(x)
            recent_f = [f]
    if mode == "fast":
        mode = "exact"
        f, g = evaluate(x)
    grad_max = float(g.abs().max())
    if grad_max <= tol:
        stop = "tol"
    else:
        stop = "slow" if slow else ("max_iter" if n_iter >= max_iter else "no_progress")
    return LbfgsResult(x, f, grad_max, n_iter, evals["fast"] + evals["exact"], evals["exact"], grad_max <= tol, stop)


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

    Returns (x_new, f_new, g_new), or None when no step satisfied Armijo.
    """
    t = 1.0
    for _ in range(_MAX_BACKTRACKS):
        x_new = x + t * d
        f_new, g_new = evaluate(x_new)
        if np.isfinite(f_new) and f_new <= f + _ARMIJO * t * gtd:
            return x_new, f_new, g_new
        if np.isfinite(f_new):
            t_quad = -gtd * t * t / (2.0 * (f_new - f - gtd * t))
            t = min(max(t_quad, 0.1 * t), 0.5 * t)
        else:
            t *= 0.1
    return None
