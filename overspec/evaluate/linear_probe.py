"""Linear probe: L2-regularised multinomial logistic regression on frozen image features.

The CLIP paper protocol (Radford et al. 2021, appendix A.3): scikit-learn's L-BFGS logistic
regression, the inverse regularisation strength C searched on a validation split over
1e-6..1e6, then a refit on train+val with the chosen C, scored once on test.

The objective is scikit-learn's, divided by C * n (so the same C gives the same model):

    f(W, b) = mean_i CE(W x_i + b, y_i) + ||W||^2 / (2 C n)

The bias b is not regularised (as in scikit-learn's lbfgs solver), and ``tol`` bounds the largest
absolute gradient entry of f, which is scikit-learn's ``gtol`` for the same objective. One
difference: for two classes scikit-learn fits a single binomial vector; the two-row multinomial
fit here with C equals scikit-learn's binomial fit with 2C (the C search absorbs the factor).

Speed (CIFAR-100-shaped features: ~5x fewer loss evaluations than scikit-learn's sweep, each
cheaper): full-batch L-BFGS in torch (CPU or GPU) preconditioned with a Kronecker-factored Hessian
approximation (``_Solver``); warm starts along the C path from strong to weak regularisation;
products with X in float32 until the float32 rounding noise of the loss matters, then float64, so
convergence is judged in float64 like scikit-learn's (``overspec.evaluate.lbfgs``). Parameters,
gradients and the loss sum are always float64.

Early stops that leave the result as it was: the C search ends at the first coarse C whose
validation score is perfect (ties go to the first C in search order, so no later C could be
chosen); a fit stops once ``_WINDOW`` iterations lowered the objective by at most ``REL_DECREASE``
of itself (on near-duplicate features at weak regularisation the gradient test alone ran to
max_iter; on overlapping classes the gradient test ends every fit first and nothing changes, see
tests/test_linear_probe_stopping.py); and a fit whose products are small runs on one thread: with
more, OpenMP's spinning team made a 49-sample probe ~30x slower on busy cores
(``benchmarks/linear_probe.py --before-after``).

Features are standardised once with the mean and standard deviation of the *training* split
(constant features get std 1); the same transform is applied to val, test and to the train+val
refit, so every fit on the C path solves the same problem family. (This departs from the CLIP
paper, which fed raw features to scikit-learn; it changes which C is best, not the protocol.)

Memory: the training features are held in float64 and float32 (~3x their float32 size), plus the
same for train+val during the refit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from overspec.errors import UserError
from overspec.evaluate.lbfgs import LbfgsResult, minimise

log = logging.getLogger(__name__)

DEFAULT_C_GRID = np.logspace(-6, 6, 13)
SELECT_METRICS = ("top1", "mean_per_class_recall")
_HISTORY = 20  # L-BFGS memory (pairs)
# float32 products leave rounding noise of ~5e-7 / sqrt(n) in the mean cross-entropy (measured on
# CIFAR-100-shaped features, n = 4.5k and 45k); L-BFGS switches to float64 once a step predicts a
# decrease below ~15x that noise, where float32 Armijo tests stop being reliable.
_FAST_NOISE_SCALE = 7e-6
# A fit whose objective fell by less than this fraction over _WINDOW iterations has stopped changing
# meaningfully (see ``lbfgs.minimise``); on separable features at large C the gradient test alone
# would run to max_iter while the weights grow along a fixed direction.
REL_DECREASE = 1e-6
_WINDOW = 10
# The best a validation score can be (both metrics are fractions): the C search ends there.
_PERFECT = 1.0
# Products smaller than this (multiply-adds per thread) gain nothing from more threads and lose a
# great deal when the cores are shared: an idle-spinning OpenMP team made one 49-sample probe
# ~30x slower on 2 busy cores (benchmarks/linear_probe.py --before-after).
_MACS_PER_THREAD = 10_000_000


@dataclass
class ProbeResult:
    """What a linear probe reports; metrics on test are computed by the caller."""

    best_c: float
    val_curve: list[tuple[float, float]]  # (C, validation metric) for every C tried, in search order
    test_pred: np.ndarray  # [N_test] predicted class ids
    test_logits: np.ndarray  # [N_test, n_classes] float32
    n_train: int
    n_val: int
    n_test: int


class _Objective:
    """Full-batch loss and gradient of the scaled scikit-learn objective on one data set.

    ``x`` carries a trailing column of ones, so theta is one [k, d + 1] matrix (W | b) and one
    product gives both the W and the b gradient. Products and softmax run in ``x``'s dtype; the
    loss is summed in float64, and parameters and gradient are float64.
    """

    def __init__(self, x_ones: torch.Tensor, y: torch.Tensor, n_classes: int):
        self.x = x_ones  # [n, d + 1], on the device
        self.y = y  # [n] int64
        self.n, self.d = x_ones.shape[0], x_ones.shape[1] - 1
        self.k = n_classes
        self.n_params = self.k * (self.d + 1)
        self._rows = torch.arange(self.n, device=x_ones.device)

    def unpack(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wb = theta.view(self.k, self.d + 1)
        return wb[:, : self.d], wb[:, self.d]

    def loss_grad(self, theta: torch.Tensor, c: float) -> tuple[float, torch.Tensor]:
        w, _ = self.unpack(theta)
        log_p = torch.log_softmax(self.x @ theta.view(self.k, self.d + 1).to(self.x.dtype).T, dim=1)
        inv_cn = 1.0 / (c * self.n)
        ce_sum = -log_p[self._rows, self.y].sum(dtype=torch.float64)
        loss = ce_sum / self.n + 0.5 * inv_cn * torch.sum(w * w)
        # d sum(CE) / dz = softmax - onehot
        p = log_p.exp_()
        p[self._rows, self.y] -= 1.0
        grad = (p.T @ self.x).to(torch.float64).div_(self.n)
        grad[:, : self.d] += inv_cn * w
        return float(loss), grad.view(-1)


class _Solver:
    """Solves the objective on one training set at any C with preconditioned L-BFGS.

    Preconditioner: a Kronecker-factored approximation of the Hessian (as in K-FAC),
    ``Sbar (x) Sigma + I/(Cn)`` with ``Sigma`` the features' second moment and ``Sbar`` the mean
    softmax curvature ``diag(p) - p p^T`` at the warm start; its inverse costs two small
    eigendecompositions. It removes the ill-conditioning that anisotropic features cause and cuts
    L-BFGS iterations several-fold; the objective, and so the optimum, is unchanged.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, n_classes: int):
        self.present = torch.unique(y)
        if len(self.present) < 2:
            raise UserError(
                f"Linear probe: the training labels hold {len(self.present)} class(es); at least 2 are needed."
            )
        self.n_classes = n_classes
        remap = torch.full((n_classes,), -1, dtype=torch.int64, device=y.device)
        remap[self.present] = torch.arange(len(self.present), device=y.device)
        k = len(self.present)
        # Absent classes are left out: with an unpenalised bias their logit would run to -inf.
        # Centring (W x + b = W (x - mu) + (b + W mu)) leaves ||W|| and so the optimum unchanged,
        # and decouples W from b in the Hessian, which the preconditioner assumes.
        x64 = x.to(torch.float64)
        self.mu = x64.mean(dim=0)
        x64 = torch.cat([x64 - self.mu, torch.ones_like(x64[:, :1])], dim=1)
        self.exact = _Objective(x64, remap[y], k)
        self.fast = _Objective(x64.to(torch.float32), remap[y], k)
        self.feat_eig = torch.linalg.eigh(x64[:, :-1].T @ x64[:, :-1] / len(x64))

    def _preconditioner(self, theta: torch.Tensor, c: float):
        obj = self.fast
        k, d = obj.k, obj.d
        p = torch.softmax(obj.x @ theta.view(k, d + 1).to(obj.x.dtype).T, dim=1).to(torch.float64)
        s_bar = (torch.diag(p.sum(dim=0)) - p.T @ p) / obj.n
        # s_bar maps the all-ones class vector to 0; gradients never point there, so give that
        # direction the mean curvature instead of dividing by ~0.
        s_bar += torch.trace(s_bar) / (k - 1) / k
        s, u_s = torch.linalg.eigh(s_bar)
        s = s.clamp(min=1e-8 * float(s.max()))
        a, u_a = self.feat_eig
        denom_w = s[:, None] * a.clamp(min=0)[None, :] + 1.0 / (c * obj.n)

        def apply(v: torch.Tensor) -> torch.Tensor:
            vwb = v.view(k, d + 1)
            r = torch.empty_like(vwb)
            r[:, :d] = u_s @ ((u_s.T @ vwb[:, :d] @ u_a) / denom_w) @ u_a.T
            r[:, d] = u_s @ ((u_s.T @ vwb[:, d]) / s)
            return r.view(-1)

        return apply

    def solve(
        self, c: float, init: tuple[torch.Tensor, torch.Tensor] | None, max_iter: int, tol: float,
        rel_decrease: float = REL_DECREASE,
    ) -> tuple[torch.Tensor, torch.Tensor, LbfgsResult]:
        """Returns (W [n_classes, D], b [n_classes], L-BFGS report); absent classes get b = -inf."""
        obj = self.exact
        theta = torch.zeros(obj.n_params, dtype=torch.float64, device=obj.x.device)
        if init is not None:
            w0, b0 = obj.unpack(theta)
            w0.copy_(init[0][self.present])
            b_init = init[1][self.present]
            b_init = torch.where(torch.isfinite(b_init), b_init, torch.zeros_like(b_init))
            # The optimum has W rows and b summing to zero (the loss ignores a shared shift).
            w0.sub_(w0.mean(dim=0))
            b0.copy_(b_init + w0 @ self.mu)
            b0.sub_(b0.mean())
        res = minimise(
            lambda t: self.fast.loss_grad(t, c),
            lambda t: self.exact.loss_grad(t, c),
            self._preconditioner(theta, c),
            theta,
            max_iter=max_iter,
            tol=tol,
            history=_HISTORY,
            fast_min_decrease=_FAST_NOISE_SCALE / math.sqrt(obj.n),
            rel_decrease=rel_decrease,
            window=_WINDOW,
        )
        if not res.converged:
            # Like scikit-learn: warn when max_iter cut the fit short; a stop at the rounding
            # limit (no decrease left in float64) is as converged as the arithmetic allows.
            level = logging.WARNING if res.stop == "max_iter" else logging.INFO
            # "slow": the objective stopped changing (rel_decrease); "no_progress": rounding.
            log.log(
                level,
                "Linear probe: L-BFGS stopped (%s) after %d iterations at C=%g with max |gradient| %.2e > tol %.1e.",
                res.stop, res.n_iter, c, res.grad_max, tol,
            )
        w_sub, b_sub = obj.unpack(res.x)
        b_sub = b_sub - w_sub @ self.mu
        w = torch.zeros((self.n_classes, obj.d), dtype=torch.float64, device=theta.device)
        b = torch.full((self.n_classes,), -math.inf, dtype=torch.float64, device=theta.device)
        w[self.present] = w_sub
        b[self.present] = b_sub
        return w, b, res


def _as_labels(y, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise UserError(f"Linear probe: {name} must be a 1-D array of class ids; got shape {arr.shape}.")
    integral = np.issubdtype(arr.dtype, np.integer) or (
        np.issubdtype(arr.dtype, np.number) and np.all(np.mod(arr, 1) == 0)
    )
    if arr.size and not integral:
        raise UserError(f"Linear probe: {name} must hold integer class ids.")
    return arr.astype(np.int64)


def _as_features(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise UserError(f"Linear probe: {name} must be a 2-D [N, D] feature array; got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"Linear probe: {name} must hold numbers; got dtype {arr.dtype}.")
    if not np.all(np.isfinite(arr)):
        raise UserError(f"Linear probe: {name} contains NaN or infinite values; re-extract the features.")
    return arr


def _check_label_range(y: np.ndarray, n_classes: int, name: str) -> None:
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise UserError(
            f"Linear probe: {name} holds class ids outside [0, {n_classes}); pass n_classes or fix the labels."
        )


def _torch_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UserError(f"Linear probe: device {device!r} is not a torch device name; use 'cpu' or 'cuda'.") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"Linear probe: device {device!r} was requested but no CUDA GPU is visible; use device='cpu'.")
    return dev


@contextmanager
def _threads_for(n: int, d: int, k: int, dev: torch.device) -> Iterator[None]:
    """Caps torch's CPU threads at one per ``_MACS_PER_THREAD`` multiply-adds of the fit's largest
    product (n x (d + 1) x k) for the duration of a fit, then restores the caller's setting."""
    before = torch.get_num_threads()
    wanted = max(1, min(before, n * (d + 1) * k // _MACS_PER_THREAD))
    if dev.type != "cpu" or wanted == before:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_logreg(
    x,
    y,
    c: float,
    n_classes: int,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    max_iter: int = 1000,
    tol: float = 1e-6,
    rel_decrease: float = REL_DECREASE,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Fit one L2 multinomial logistic regression at inverse strength ``c`` on ``x`` as given.

    Same model as scikit-learn's ``LogisticRegression(C=c)`` (multinomial, lbfgs) for 3+ classes.
    Returns float64 (W [n_classes, D], b [n_classes]); a class absent from ``y`` gets W = 0 and
    b = -inf, so it is never predicted. ``init`` is a warm start (W, b). The fit stops at max
    |gradient| <= ``tol``, or once ``rel_decrease`` (0: off) says the objective stopped changing;
    pass 0 to reach the optimum to ``tol`` however slowly.
    """
    x = _as_features(x, "x")
    y = _as_labels(y, "y")
    if len(x) != len(y):
        raise UserError(f"Linear probe: x has {len(x)} rows but y has {len(y)} labels.")
    _check_label_range(y, n_classes, "y")
    _check_solver_args(c, max_iter, tol, rel_decrease)
    dev = _torch_device(device)
    with _threads_for(x.shape[0], x.shape[1], n_classes, dev):
        solver = _Solver(torch.as_tensor(x, device=dev), torch.as_tensor(y, device=dev), n_classes)
        init_t = None
        if init is not None:
            init_t = tuple(torch.as_tensor(np.asarray(a), dtype=torch.float64, device=dev) for a in init)
        w, b, _ = solver.solve(float(c), init_t, max_iter, tol, rel_decrease)
    return w.cpu().numpy(), b.cpu().numpy()


def _check_solver_args(c: float, max_iter: int, tol: float, rel_decrease: float = 0.0) -> None:
    if not (np.isfinite(c) and c > 0):
        raise UserError(f"Linear probe: C must be a positive finite number; got {c!r}.")
    if int(max_iter) < 1:
        raise UserError(f"Linear probe: max_iter must be at least 1; got {max_iter!r}.")
    if not (np.isfinite(tol) and tol > 0):
        raise UserError(f"Linear probe: tol must be a positive finite number; got {tol!r}.")
    if not (np.isfinite(rel_decrease) and 0 <= rel_decrease < 1):
        raise UserError(f"Linear probe: rel_decrease must be in [0, 1) (0 turns it off); got {rel_decrease!r}.")


def _standardiser(train_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per feature of the training split; a constant feature gets std 1 (it maps to 0)."""
    x = train_x.astype(np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[np.ptp(x, axis=0) == 0] = 1.0
    return mean, std


def _val_score(pred: np.ndarray, y: np.ndarray, metric: str) -> float:
    """Top-1 accuracy, or recall averaged over the classes present in y (sklearn's balanced accuracy)."""
    if metric == "top1":
        return float(np.mean(pred == y))
    classes, inverse = np.unique(y, return_inverse=True)
    hits = np.bincount(inverse, weights=(pred == y).astype(np.float64), minlength=len(classes))
    return float(np.mean(hits / np.bincount(inverse, minlength=len(classes))))


def _refinement(grid: np.ndarray, best: int, steps: int, tried: list[float]) -> np.ndarray:
    """``steps`` log-spaced C values strictly between the neighbours of grid[best], minus those tried."""
    if steps <= 0 or len(grid) < 2:
        return np.empty(0)
    lo = grid[max(best - 1, 0)]
    hi = grid[min(best + 1, len(grid) - 1)]
    fine = np.logspace(np.log10(lo), np.log10(hi), steps + 2)[1:-1]
    return np.array([c for c in fine if not np.any(np.isclose(c, tried, rtol=1e-9, atol=0.0))])


def _logits(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.addmm(b, x, w.T)


def fit_linear_probe(
    train_x,
    train_y,
    val_x,
    val_y,
    test_x,
    test_y=None,
    *,
    n_classes: int | None = None,
    c_grid=None,
    refine_steps: int = 8,
    max_iter: int = 1000,
    tol: float = 1e-6,
    rel_decrease: float = REL_DECREASE,
    device: str = "cpu",
    select_metric: str = "top1",
    seed: int = 0,
) -> ProbeResult:
    """CLIP-protocol linear probe: search C on val, refit on train+val, predict test.

    Search: every C of ``c_grid`` (default 1e-6..1e6, one per decade), from strong to weak
    regularisation, each fit warm-started from the previous one; then ``refine_steps`` log-spaced
    values strictly between the neighbours of the best coarse C. The best C maximises
    ``select_metric`` on val (ties: the first in search order), so the search ends at the first
    coarse C that scores 1 (every validation sample right): nothing after it could be chosen.
    Each fit stops at max |gradient| <= ``tol`` or when its objective stops changing
    (``rel_decrease``, see ``fit_logreg``). Features are standardised with the
    training split's mean and std. ``test_y`` is only checked for shape and range. The fit uses no
    randomness (zero start, full batch); ``seed`` is accepted so callers can pass the study seed
    uniformly, and results are identical for any seed.
    """
    del seed
    train_x, val_x, test_x = (
        _as_features(x, name) for x, name in ((train_x, "train_x"), (val_x, "val_x"), (test_x, "test_x"))
    )
    train_y, val_y = _as_labels(train_y, "train_y"), _as_labels(val_y, "val_y")
    test_y = None if test_y is None else _as_labels(test_y, "test_y")
    n_classes = _check_splits(train_x, train_y, val_x, val_y, test_x, test_y, n_classes)
    if select_metric not in SELECT_METRICS:
        raise UserError(f"Linear probe: select_metric must be one of {SELECT_METRICS}; got {select_metric!r}.")
    grid = np.unique(np.asarray(DEFAULT_C_GRID if c_grid is None else c_grid, dtype=np.float64).ravel())
    if grid.size == 0:
        raise UserError("Linear probe: c_grid is empty; give at least one C value.")
    for c in grid:
        _check_solver_args(c, max_iter, tol, rel_decrease)
    dev = _torch_device(device)
    with _threads_for(len(train_x) + len(val_x), train_x.shape[1], n_classes, dev):
        return _probe(train_x, train_y, val_x, val_y, test_x, n_classes, grid, refine_steps, select_metric,
                      max_iter, tol, rel_decrease, dev)


def _probe(train_x, train_y, val_x, val_y, test_x, n_classes, grid, refine_steps, select_metric, max_iter, tol,
           rel_decrease, dev) -> ProbeResult:
    """``fit_linear_probe`` on checked arguments."""
    mean, std = _standardiser(train_x)

    def prepared(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((x.astype(np.float64) - mean) / std, device=dev)

    xtr, xva, xte = prepared(train_x), prepared(val_x), prepared(test_x)
    ytr, yva = torch.as_tensor(train_y, device=dev), torch.as_tensor(val_y, device=dev)
    val_curve, solutions = _search_c(
        _Solver(xtr, ytr, n_classes), xva, val_y, grid, refine_steps, select_metric, max_iter, tol, rel_decrease
    )
    best_c = val_curve[int(np.argmax([s for _, s in val_curve]))][0]

    # Final model: train+val at the chosen C, warm-started from the train-only fit at that C.
    refit = _Solver(torch.cat([xtr, xva]), torch.cat([ytr, yva]), n_classes)
    w, b, fit = refit.solve(best_c, solutions[best_c], max_iter, tol, rel_decrease)
    log.info(
        "linear probe: refit on train+val at C=%.4g (%d L-BFGS iterations, %d evaluations, %d in float64)",
        best_c, fit.n_iter, fit.n_eval, fit.n_exact,
    )
    logits = _logits(xte, w, b)
    return ProbeResult(
        best_c=float(best_c),
        val_curve=[(float(c), float(s)) for c, s in val_curve],
        test_pred=logits.argmax(dim=1).cpu().numpy().astype(np.int64),
        test_logits=logits.to(torch.float32).cpu().numpy(),
        n_train=len(train_x),
        n_val=len(val_x),
        n_test=len(test_x),
    )


def _check_splits(train_x, train_y, val_x, val_y, test_x, test_y, n_classes: int | None) -> int:
    """Checks that the splits line up; returns n_classes (inferred from the labels when None)."""
    for name, x, y in (("train", train_x, train_y), ("val", val_x, val_y), ("test", test_x, test_y)):
        if y is not None and len(x) != len(y):
            raise UserError(f"Linear probe: {name}_x has {len(x)} rows but {name}_y has {len(y)} labels.")
    dims = {train_x.shape[1], val_x.shape[1], test_x.shape[1]}
    if len(dims) != 1:
        raise UserError(
            f"Linear probe: train, val and test features differ in width {sorted(dims)}; "
            "embed them with the same model."
        )
    if len(train_x) == 0 or len(val_x) == 0:
        raise UserError("Linear probe: the train and validation splits must both be non-empty to choose C.")
    labels = {"train_y": train_y, "val_y": val_y, "test_y": test_y}
    if n_classes is None:
        n_classes = int(max(y.max() for y in labels.values() if y is not None and y.size)) + 1
    for name, y in labels.items():
        if y is not None:
            _check_label_range(y, n_classes, name)
    return n_classes


def _search_c(
    solver: _Solver, xva: torch.Tensor, val_y: np.ndarray, grid: np.ndarray, refine_steps: int,
    select_metric: str, max_iter: int, tol: float, rel_decrease: float,
) -> tuple[list[tuple[float, float]], dict[float, tuple[torch.Tensor, torch.Tensor]]]:
    """Coarse grid then refinement, each fit warm-started from the nearest smaller C already solved;
    ends at the first coarse C with a perfect validation score (later ones could only tie)."""
    solutions: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
    val_curve: list[tuple[float, float]] = []

    def try_c(c: float) -> None:
        below = [s for s in solutions if s < c]
        w, b, fit = solver.solve(c, solutions[max(below)] if below else None, max_iter, tol, rel_decrease)
        solutions[c] = (w, b)
        score = _val_score(_logits(xva, w, b).argmax(dim=1).cpu().numpy(), val_y, select_metric)
        val_curve.append((c, score))
        log.info(
            "linear probe: C=%.4g val %s=%.4f (%d L-BFGS iterations, %d evaluations, %d in float64)",
            c, select_metric, score, fit.n_iter, fit.n_eval, fit.n_exact,
        )

    for c in grid:
        try_c(float(c))
        if val_curve[-1][1] >= _PERFECT:
            log.info("linear probe: validation %s is 1 at C=%.4g; larger and refined C could only tie", select_metric, c)
            return val_curve, solutions
    best_coarse = int(np.argmax([s for _, s in val_curve]))
    for c in _refinement(grid, best_coarse, refine_steps, [c for c, _ in val_curve]):
        try_c(float(c))
    return val_curve, solutions
