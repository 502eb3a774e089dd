"""Benchmark: overspec's linear probe against a scikit-learn L-BFGS sweep over the same C values.

Synthetic features shaped like CIFAR-100 CLIP features: 45,000 train / 5,000 val (carved from a
50,000 train split) / 10,000 test, 512 dims, 100 classes; Gaussian class means plus noise, mixed
by a random rotation with a power-law spectrum (real embeddings are anisotropic), at a difficulty
giving ~70% test accuracy.

Both sides get the same standardised features (train mean/std), the same tol and max_iter, and
the same list of C values (overspec's coarse grid + refinement, in its search order); each picks
its own best C on val, refits on train+val and scores test. scikit-learn runs in float64 (its
exact path, as in the CLIP paper's sklearn sweep), multinomial lbfgs, either cold-started for
every C (the CLIP paper's sweep; default) or warm-started from the nearest smaller C
(``--sklearn-warm``, the same path trick overspec uses). overspec is timed before and after
scikit-learn and the mean is used, since the CPU may be shared; both runs must give identical
output. ``--threads N`` pins torch and the BLAS under numpy/scikit-learn to the same thread count.

    python benchmarks/linear_probe.py            # full CIFAR-100 shape (~30-40 minutes on 2 cores)
    python benchmarks/linear_probe.py --quick    # small smoke run (~1 minute)
    python benchmarks/linear_probe.py --device cuda --skip-sklearn   # overspec alone on a GPU
    python benchmarks/linear_probe.py --before-after --threads 2     # the early stops on and off

``--before-after`` times overspec alone on two cases, with its three early stops switched off
("before": rel_decrease 0, no end of the C search at a perfect validation score, the caller's
torch threads for every fit) and on ("after", the defaults): the QUICK shape (overlapping classes,
where the result must not change) and a miniature-shaped one (GTSRB's miniature in the paper
test: 43 classes, 49 training images in 8 clusters of near-duplicates, 2 validation of one cluster,
6 test),
where the fits used to run to max_iter and the threads to spin.

Prints readable lines, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from overspec.evaluate import linear_probe
from overspec.evaluate.linear_probe import fit_linear_probe

FULL = {"n_train": 45_000, "n_val": 5_000, "n_test": 10_000, "dim": 512, "n_classes": 100, "separation": 0.16}
QUICK = {"n_train": 4_500, "n_val": 500, "n_test": 1_000, "dim": 128, "n_classes": 20, "separation": 0.25}


def synthetic_features(n_train, n_val, n_test, dim, n_classes, separation, seed=0):
    """Class-structured Gaussian features with an anisotropic spectrum; float32 like stored embeddings."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    mixing = rotation * np.arange(1, dim + 1) ** -0.5  # power-law spectrum
    means = rng.standard_normal((n_classes, dim)) * separation

    def draw(n):
        y = rng.integers(0, n_classes, n)
        x = (means[y] + rng.standard_normal((n, dim))) @ mixing.T + 0.05
        return x.astype(np.float32), y

    (x_all, y_all), (x_test, y_test) = draw(n_train + n_val), draw(n_test)
    return (x_all[:n_train], y_all[:n_train]), (x_all[n_train:], y_all[n_train:]), (x_test, y_test)


def miniature_features(n_classes=43, dim=96, clusters=8, eps=1e-2, seed=0):
    """The paper test's GTSRB miniature in shape: one training image per class (six classes twice),
    classes drawn alike so their features fall in `clusters` groups of near-duplicates; validation
    and test images are training images of one cluster seen again (as frames of one track are), so
    they are told apart only at weak regularisation."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    train_y = np.concatenate([np.arange(n_classes), np.arange(6)])
    train_x = centres[train_y % clusters] + eps * rng.standard_normal((len(train_y), dim))

    def again(rows):
        return (train_x[rows] + eps / 10 * rng.standard_normal((len(rows), dim))).astype(np.float32), train_y[rows]

    return (train_x.astype(np.float32), train_y), again(np.array([0, clusters])), again(np.arange(6))


@contextlib.contextmanager
def early_stops_off():
    """The probe as it was before its early stops: fits to tol or max_iter, the whole C search, and
    the caller's thread count for every fit."""
    saved = linear_probe._PERFECT, linear_probe._threads_for
    linear_probe._PERFECT = float("inf")
    linear_probe._threads_for = lambda *args: contextlib.nullcontext()
    try:
        yield {"rel_decrease": 0.0}
    finally:
        linear_probe._PERFECT, linear_probe._threads_for = saved


def before_after(args) -> None:
    """Each case with the early stops off, then on; prints both and one JSON object."""
    counter = IterationCounter()
    probe_log = logging.getLogger("overspec.evaluate.linear_probe")
    probe_log.addHandler(counter)
    probe_log.setLevel(logging.INFO)
    rows = {}
    cases = {"miniature": miniature_features, "quick": lambda: synthetic_features(**QUICK)}
    for case in args.cases:
        train, val, test = cases[case]()
        runs = {}
        for mode, switch in (("before", early_stops_off), ("after", lambda: contextlib.nullcontext({}))):
            counter.__init__()
            with switch() as options:
                t0 = time.perf_counter()
                res = fit_linear_probe(*train, *val, test[0], tol=args.tol, max_iter=args.max_iter, **options)
                seconds = time.perf_counter() - t0
            runs[mode] = {"seconds": round(seconds, 3), "fits": counter.fits, "iterations": counter.iterations,
                          "best_c": res.best_c, "test_top1": float(np.mean(res.test_pred == test[1])),
                          "n_c_values": len(res.val_curve), "logits": res.test_logits}
            print(f"{case:9s} {mode:6s}: {seconds:7.2f} s, {counter.fits} fits, {counter.iterations} L-BFGS iterations, "
                  f"best C {res.best_c:.4g}, test top-1 {runs[mode]['test_top1']:.4f}")
        same_pred = bool(np.array_equal(runs["before"]["logits"].argmax(1), runs["after"]["logits"].argmax(1)))
        diff = float(np.max(np.abs(runs["before"]["logits"] - runs["after"]["logits"]), initial=0.0))
        print(f"{case:9s} speed-up {runs['before']['seconds'] / runs['after']['seconds']:.1f}x; "
              f"test predictions {'identical' if same_pred else 'DIFFERENT'}, max |logit change| {diff:.2e}")
        for run in runs.values():
            run.pop("logits")
        rows[case] = {**runs, "same_test_predictions": same_pred, "max_logit_change": diff}
    print(json.dumps({"benchmark": "linear_probe_early_stops", "torch_threads": torch.get_num_threads(),
                      "tol": args.tol, "max_iter": args.max_iter, "quick_shape": QUICK, "cases": rows},
                     sort_keys=True))


class IterationCounter(logging.Handler):
    """Sums the L-BFGS iteration and evaluation counts the probe logs per fit."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.iterations = 0
        self.evaluations = 0
        self.exact = 0
        self.fits = 0

    def emit(self, record):
        if "L-BFGS iterations" in record.msg:
            self.iterations += int(record.args[-3])
            self.evaluations += int(record.args[-2])
            self.exact += int(record.args[-1])
            self.fits += 1


def sklearn_sweep(train, val, test, c_values, mean, std, tol, max_iter, warm):
    """Same protocol with scikit-learn: fit each C on train, pick on val, refit train+val, score test."""
    xtr, xva, xte = ((x.astype(np.float64) - mean) / std for x in (train[0], val[0], test[0]))
    fits, iterations, curve = {}, 0, []
    for c in c_values:
        model = LogisticRegression(C=c, tol=tol, max_iter=max_iter, warm_start=warm)
        below = [s for s in fits if s < c]
        if warm and below:
            model.coef_, model.intercept_ = (a.copy() for a in fits[max(below)])
        model.fit(xtr, train[1])
        fits[c] = (model.coef_, model.intercept_)
        iterations += int(model.n_iter_.max())
        curve.append((c, float(np.mean(model.predict(xva) == val[1]))))
    best_c = curve[int(np.argmax([s for _, s in curve]))][0]
    final = LogisticRegression(C=best_c, tol=tol, max_iter=max_iter, warm_start=warm)
    if warm:
        final.coef_, final.intercept_ = (a.copy() for a in fits[best_c])
    final.fit(np.concatenate([xtr, xva]), np.concatenate([train[1], val[1]]))
    iterations += int(final.n_iter_.max())
    acc = float(np.mean(final.predict(xte) == test[1]))
    return best_c, acc, curve, iterations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shape for a smoke run")
    parser.add_argument("--sklearn-warm", action="store_true", help="warm-start scikit-learn along the C path too")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-sklearn", action="store_true",
                        help="time overspec alone (twice: the second run is warm), e.g. on a GPU machine")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and for numpy/scikit-learn BLAS alike (default: library defaults)")
    parser.add_argument("--before-after", action="store_true",
                        help="overspec with its early stops off and on, on a miniature-shaped and the quick case")
    parser.add_argument("--cases", nargs="+", choices=("miniature", "quick"), default=["miniature", "quick"],
                        help="with --before-after: which cases (the miniature's before run with 2 threads on busy "
                             "cores takes tens of minutes)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    if args.before_after:
        before_after(args)
        return
    shape = QUICK if args.quick else FULL
    train, val, test = synthetic_features(**shape)
    print(f"shape: {shape}; torch threads {torch.get_num_threads()}; CPU shared with other jobs, timings may be noisy")

    counter = IterationCounter()
    probe_log = logging.getLogger("overspec.evaluate.linear_probe")
    probe_log.addHandler(counter)
    probe_log.setLevel(logging.INFO)

    def run_overspec():
        t0 = time.perf_counter()
        res = fit_linear_probe(*train, *val, test[0], tol=args.tol, max_iter=args.max_iter, device=args.device)
        return res, time.perf_counter() - t0

    result, t_before = run_overspec()
    acc_overspec = float(np.mean(result.test_pred == test[1]))
    c_values = [c for c, _ in result.val_curve]
    print(f"overspec: {t_before:.1f} s, {counter.fits} fits, {counter.iterations} L-BFGS iterations, "
          f"{counter.evaluations} evaluations ({counter.exact} in float64), "
          f"best C {result.best_c:.4g}, test top-1 {acc_overspec:.4f}")

    if args.skip_sklearn:
        again, t_after = run_overspec()
        identical = bool(np.array_equal(again.test_logits, result.test_logits))
        print(f"overspec again: {t_after:.1f} s ({'identical' if identical else 'DIFFERENT'} output)")
        print(json.dumps({"benchmark": "linear_probe", "shape": shape, "device": args.device,
                          "overspec_seconds_runs": [round(t_before, 2), round(t_after, 2)],
                          "overspec_repeat_identical": identical, "overspec_best_c": result.best_c,
                          "overspec_test_top1": acc_overspec, "overspec_iterations": counter.iterations // 2,
                          "val_curve": result.val_curve}, sort_keys=True))
        return
    mean = train[0].astype(np.float64).mean(0)
    std = train[0].astype(np.float64).std(0)
    std[np.ptp(train[0], axis=0) == 0] = 1.0  # the probe's rule for constant features
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        sk_c, acc_sk, sk_curve, sk_iters = sklearn_sweep(
            train, val, test, c_values, mean, std, args.tol, args.max_iter, args.sklearn_warm
        )
        t_sklearn = time.perf_counter() - t0
    not_converged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    # The CPU is shared: time overspec again after scikit-learn and use the mean of both runs.
    again, t_after = run_overspec()
    identical = bool(np.array_equal(again.test_logits, result.test_logits))
    t_overspec = (t_before + t_after) / 2
    same = "identical" if identical else "DIFFERENT"
    print(f"overspec again: {t_after:.1f} s ({same} output); mean {t_overspec:.1f} s")
    mode = "warm-started" if args.sklearn_warm else "cold-started"
    print(f"scikit-learn ({mode}, float64): {t_sklearn:.1f} s, {len(c_values) + 1} fits, {sk_iters} L-BFGS iterations "
          f"({not_converged} hit max_iter), best C {sk_c:.4g}, test top-1 {acc_sk:.4f}")
    speedup = t_sklearn / t_overspec
    gap = 100 * abs(acc_overspec - acc_sk)
    print(f"speed-up {speedup:.1f}x (target >= 5x); accuracy gap {gap:.2f} points (target <= 0.3)")
    print(json.dumps({
        "benchmark": "linear_probe",
        "shape": shape,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "tol": args.tol,
        "max_iter": args.max_iter,
        "n_c_values": len(c_values),
        "overspec_seconds": round(t_overspec, 2),
        "overspec_seconds_runs": [round(t_before, 2), round(t_after, 2)],
        "overspec_repeat_identical": identical,
        "overspec_best_c": result.best_c,
        "overspec_test_top1": acc_overspec,
        "overspec_iterations": counter.iterations // 2,
        "overspec_evaluations": counter.evaluations // 2,
        "overspec_float64_evaluations": counter.exact // 2,
        "sklearn_mode": mode,
        "sklearn_seconds": round(t_sklearn, 2),
        "sklearn_best_c": sk_c,
        "sklearn_test_top1": acc_sk,
        "sklearn_iterations": sk_iters,
        "speedup": round(speedup, 2),
        "accuracy_gap_points": round(gap, 3),
        "val_curve": result.val_curve,
        "sklearn_val_curve": sk_curve,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
