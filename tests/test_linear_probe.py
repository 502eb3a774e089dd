"""Linear probe: same model as scikit-learn at the same C, the CLIP search protocol, edge cases."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, log_loss

from overspec.errors import UserError
from overspec.evaluate.linear_probe import (
    DEFAULT_C_GRID,
    ProbeResult,
    _refinement,
    _val_score,
    fit_linear_probe,
    fit_logreg,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny problems: extra threads only add contention on the shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def blobs(n, k=5, d=12, sep=0.9, seed=0, shift=0.0):
    """Gaussian classes with anisotropic, offset features (so standardisation matters)."""
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(99).standard_normal((k, d)) * sep
    scales = np.linspace(0.3, 2.0, d)
    y = rng.integers(0, k, n)
    x = (means[y] + rng.standard_normal((n, d))) * scales + 1.5 + shift
    return x.astype(np.float32), y


def sklearn_objective(x, y, w, b, c, k):
    """scikit-learn's L2 logistic objective C * sum CE + ||W||^2 / 2, computed independently."""
    z = x.astype(np.float64) @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return c * log_loss(y, p, normalize=False, labels=np.arange(k)) + 0.5 * np.sum(w * w)


@pytest.mark.parametrize("c", [1e-3, 1e-1, 1.0, 100.0])
def test_fit_logreg_matches_sklearn(c):
    x, y = blobs(600)
    xt, yt = blobs(2000, seed=1)
    w, b = fit_logreg(x, y, c, 5, tol=1e-8, rel_decrease=0.0)  # the optimum to tol, as sklearn's
    ref = LogisticRegression(C=c, tol=1e-8, max_iter=10_000).fit(x.astype(np.float64), y)
    scale = np.abs(ref.coef_).max()
    np.testing.assert_allclose(w, ref.coef_, atol=1e-4 * scale)
    np.testing.assert_allclose(b - b.mean(), ref.intercept_ - ref.intercept_.mean(), atol=1e-3 * max(1.0, scale))
    pred = (xt @ w.T + b).argmax(1)
    assert abs(np.mean(pred == yt) - ref.score(xt, yt)) <= 0.003
    assert np.mean(pred == ref.predict(xt)) >= 0.997
    # Same objective: our optimum is at least as good as sklearn's on sklearn's own objective.
    ours = sklearn_objective(x, y, w, b, c, 5)
    theirs = sklearn_objective(x, y, ref.coef_, ref.intercept_, c, 5)
    assert ours <= theirs + 1e-9 * max(1.0, abs(theirs))


def test_two_classes_equal_sklearn_binomial_at_twice_c():
    # Multinomial rows w0, w1 with ||w0||^2 + ||w1||^2 penalised = binomial beta = w1 - w0 with C' = 2C.
    x, y = blobs(400, k=2, seed=3)
    w, b = fit_logreg(x, y, 0.05, 2, tol=1e-10)
    ref = LogisticRegression(C=0.1, tol=1e-10, max_iter=10_000).fit(x.astype(np.float64), y)
    np.testing.assert_allclose(w[1] - w[0], ref.coef_[0], atol=1e-5 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(b[1] - b[0], ref.intercept_[0], atol=1e-4)


def test_bias_is_not_regularised():
    # Classes far from the origin with almost no weight: only an unpenalised bias can fit the 80/20 prior.
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.2).astype(int) + 1  # classes 1 and 2 of 3... plus class 0 once
    y[0] = 0
    x = rng.standard_normal((5000, 3)).astype(np.float32)
    w, b = fit_logreg(x, y, 1e-6, 3, tol=1e-10)
    assert np.abs(w).max() < 1e-3
    p = np.exp(b - b.max())
    p /= p.sum()
    np.testing.assert_allclose(p, np.bincount(y, minlength=3) / len(y), atol=1e-3)


def test_warm_start_reaches_cold_optimum():
    x, y = blobs(800, seed=4)
    exact = {"tol": 1e-9, "rel_decrease": 0.0}  # both to the optimum, not to where progress slows
    cold = fit_logreg(x, y, 10.0, 5, **exact)
    start = fit_logreg(x, y, 0.01, 5, **exact)
    warm = fit_logreg(x, y, 10.0, 5, init=start, **exact)
    scale = np.abs(cold[0]).max()
    np.testing.assert_allclose(warm[0], cold[0], atol=1e-5 * scale)
    np.testing.assert_allclose(warm[1] - warm[1].mean(), cold[1] - cold[1].mean(), atol=1e-4 * scale)


def probe_data(seed=0, k=5):
    (xtr, ytr), (xva, yva) = blobs(700, k=k, seed=seed), blobs(300, k=k, seed=seed + 1)
    xte, yte = blobs(500, k=k, seed=seed + 2)
    return xtr, ytr, xva, yva, xte, yte


def test_probe_reports_search_and_chosen_c():
    xtr, ytr, xva, yva, xte, yte = probe_data()
    res = fit_linear_probe(xtr, ytr, xva, yva, xte, yte)
    assert isinstance(res, ProbeResult)
    assert (res.n_train, res.n_val, res.n_test) == (700, 300, 500)
    cs = [c for c, _ in res.val_curve]
    scores = [s for _, s in res.val_curve]
    np.testing.assert_allclose(cs[:13], DEFAULT_C_GRID)  # coarse grid first, strong to weak
    best_coarse = int(np.argmax(scores[:13]))
    refine = cs[13:]
    assert len(refine) == 8 and refine == sorted(refine)
    lo, hi = DEFAULT_C_GRID[max(best_coarse - 1, 0)], DEFAULT_C_GRID[min(best_coarse + 1, 12)]
    assert all(lo < c < hi for c in refine)
    assert res.best_c == cs[int(np.argmax(scores))]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] < max(scores)  # C = 1e-6 underfits: the search matters
    assert res.test_pred.shape == (500,) and res.test_logits.shape == (500, 5)
    assert res.test_logits.dtype == np.float32
    np.testing.assert_array_equal(res.test_pred, res.test_logits.argmax(1))
    assert np.mean(res.test_pred == yte) > 0.6


@pytest.mark.parametrize("metric", ["top1", "mean_per_class_recall"])
def test_validation_scores_are_recomputable(metric):
    # Each curve point is the val metric of the train-only fit at that C (train-standardised).
    xtr, ytr, xva, yva, xte, _ = probe_data(seed=5)
    keep = (yva != 1) | (np.arange(len(yva)) % 4 == 0)  # unbalanced val: the two metrics differ
    xva, yva = xva[keep], yva[keep]
    grid = [1e-3, 1e-1, 10.0]
    res = fit_linear_probe(xtr, ytr, xva, yva, xte, c_grid=grid, refine_steps=0, tol=1e-8, select_metric=metric)
    assert [c for c, _ in res.val_curve] == grid
    mean, std = xtr.astype(np.float64).mean(0), xtr.astype(np.float64).std(0)
    for c, score in res.val_curve:
        w, b = fit_logreg((xtr - mean) / std, ytr, c, 5, tol=1e-8)
        pred = (((xva - mean) / std) @ w.T + b).argmax(1)
        expected = np.mean(pred == yva) if metric == "top1" else balanced_accuracy_score(yva, pred)
        assert score == pytest.approx(expected)


def test_test_predictions_come_from_train_plus_val_refit():
    xtr, ytr, xva, yva, xte, yte = probe_data(seed=7)
    # Class 4 appears in val only: a train-only model can never predict it, the refit can.
    xtr, ytr = xtr[ytr != 4], ytr[ytr != 4]
    res = fit_linear_probe(xtr, ytr, xva, yva, xte, yte, n_classes=5, tol=1e-8)
    assert np.any(res.test_pred == 4)
    mean, std = xtr.astype(np.float64).mean(0), xtr.astype(np.float64).std(0)
    both_x = (np.concatenate([xtr, xva]) - mean) / std
    w, b = fit_logreg(both_x, np.concatenate([ytr, yva]), res.best_c, 5, tol=1e-8)
    expected = ((xte - mean) / std) @ w.T + b
    np.testing.assert_allclose(res.test_logits, expected, rtol=1e-4, atol=1e-3)


def test_deterministic_repeat():
    args = probe_data(seed=11)
    a = fit_linear_probe(*args, seed=3)
    b = fit_linear_probe(*args, seed=3)
    assert a.val_curve == b.val_curve and a.best_c == b.best_c
    np.testing.assert_array_equal(a.test_logits, b.test_logits)
    np.testing.assert_array_equal(a.test_pred, b.test_pred)


def test_class_absent_from_val_with_mean_per_class_recall():
    xtr, ytr, xva, yva, xte, _ = probe_data(seed=13)
    keep = yva != 2
    res = fit_linear_probe(xtr, ytr, xva[keep], yva[keep], xte, select_metric="mean_per_class_recall")
    scores = np.array([s for _, s in res.val_curve])
    assert np.all(np.isfinite(scores)) and np.all(np.isfinite(res.test_logits))
    assert np.any(res.test_pred == 2)  # still learned from train


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_val_score_matches_sklearn_balanced_accuracy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 200)
    y[y == 3] = 0  # class 3 absent from the truth, yet predicted below
    pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, 6, 200))
    assert _val_score(pred, y, "mean_per_class_recall") == pytest.approx(balanced_accuracy_score(y, pred))
    assert _val_score(pred, y, "top1") == pytest.approx(np.mean(pred == y))


def test_constant_feature_changes_nothing():
    xtr, ytr, xva, yva, xte, _ = probe_data(seed=17)
    def add(x):
        return np.concatenate([x, np.full((len(x), 1), 3.25, np.float32)], axis=1)

    with_const = fit_linear_probe(add(xtr), ytr, add(xva), yva, add(xte), c_grid=[0.01, 1.0], refine_steps=2)
    without = fit_linear_probe(xtr, ytr, xva, yva, xte, c_grid=[0.01, 1.0], refine_steps=2)
    assert np.all(np.isfinite(with_const.test_logits))
    assert with_const.val_curve == without.val_curve
    np.testing.assert_allclose(with_const.test_logits, without.test_logits, atol=1e-4)


def test_class_absent_from_training_is_never_predicted():
    xtr, ytr, xva, yva, xte, _ = probe_data(seed=19)
    res = fit_linear_probe(xtr, ytr, xva, yva, xte, n_classes=7, c_grid=[0.1, 10.0], refine_steps=1)
    assert res.test_logits.shape == (500, 7)
    assert not np.any(np.isnan(res.test_logits))
    assert np.all(res.test_logits[:, 5:] == -np.inf) and np.all(res.test_pred < 5)


def test_refinement_points():
    grid = np.logspace(-2, 2, 5)
    inner = _refinement(grid, 2, 3, list(grid))
    np.testing.assert_allclose(inner, np.logspace(-1, 1, 5)[1:-1][[0, 2]])  # 1.0 already tried
    np.testing.assert_allclose(_refinement(grid, 0, 2, list(grid)), [10 ** (-2 + 1 / 3), 10 ** (-2 + 2 / 3)])
    assert _refinement(grid, 4, 0, list(grid)).size == 0


@pytest.mark.parametrize(
    "change, match",
    [
        ({"train_x": np.full((4, 3), np.nan)}, "NaN"),
        ({"train_y": np.array([0, 1, 0])}, "rows but train_y"),
        ({"select_metric": "f1"}, "select_metric"),
        ({"val_y": np.array([0, 1, 9, 0]), "n_classes": 3}, "outside"),
        ({"train_y": np.array([0, 1, -1, 1])}, "outside"),
        ({"train_y": np.array([1, 1, 1, 1])}, "at least 2"),
        ({"c_grid": [0.0, 1.0]}, "C must be"),
        ({"val_x": np.zeros((4, 2))}, "width"),
        ({"device": "nonsense" if torch.cuda.is_available() else "cuda:0"}, "device"),
    ],
)
def test_user_errors(change, match):
    data = {
        "train_x": np.random.default_rng(0).standard_normal((4, 3)),
        "train_y": np.array([0, 1, 0, 1]),
        "val_x": np.zeros((4, 3)),
        "val_y": np.array([0, 1, 1, 0]),
        "test_x": np.zeros((2, 3)),
    }
    data.update(change)
    kw = {k: data.pop(k) for k in list(data) if k in ("select_metric", "c_grid", "device", "n_classes")}
    with pytest.raises(UserError, match=match):
        fit_linear_probe(data["train_x"], data["train_y"], data["val_x"], data["val_y"], data["test_x"], **kw)


def test_empty_test_split():
    xtr, ytr, xva, yva, xte, _ = probe_data(seed=23)
    res = fit_linear_probe(xtr, ytr, xva, yva, xte[:0], c_grid=[1.0], refine_steps=0)
    assert res.n_test == 0 and res.test_pred.shape == (0,) and res.test_logits.shape == (0, 5)
