"""Linear probe: when a fit and the C search may stop early, and that ordinary data gives the same probe.

Three changes keep the probe from running long without changing what it reports: a fit stops once
its objective stops changing (``rel_decrease``), the search ends at the first coarse C with a
perfect validation score (later C could only tie, and ties go to the first), and a small fit runs on
one thread (an OpenMP team on tiny products made a 49-sample probe ~30x slower on busy cores).
"""

import numpy as np
import pytest
import torch

from overspec.errors import UserError
from overspec.evaluate import linear_probe as lp
from test_linear_probe import blobs, one_thread, probe_data  # noqa: F401 - one_thread is an autouse fixture


def near_duplicates(k=40, d=24, groups=8, eps=1e-2, seed=0):
    """k classes of one sample each, in `groups` clusters of near-duplicate features (eps apart):
    as in the miniature datasets (classes drawn alike) or real data with duplicate images. At weak
    regularisation the fit creeps down for hundreds of iterations separating the duplicates."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((groups, d))
    y = np.arange(k)
    x = centres[y % groups] + eps * rng.standard_normal((k, d))
    mean, std = lp._standardiser(x)
    return torch.as_tensor((x - mean) / std), torch.as_tensor(y)


def test_fit_stops_when_the_objective_stops_changing():
    x, y = near_duplicates()
    solver = lp._Solver(x, y, 40)
    w0, b0, full = solver.solve(1000.0, None, 1000, 1e-6, rel_decrease=0.0)
    w, b, early = solver.solve(1000.0, None, 1000, 1e-6)  # default rel_decrease
    assert full.stop == "max_iter" and full.n_iter == 1000  # the gradient test alone never ends it
    assert early.stop == "slow" and early.n_iter < 0.8 * full.n_iter
    # at most rel_decrease per window of 10 iterations was left: the objective agrees to ~1e-5
    assert abs(early.f - full.f) <= 2e-5 * full.f
    np.testing.assert_array_equal(lp._logits(x, w, b).argmax(1), lp._logits(x, w0, b0).argmax(1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ordinary_data_gives_the_same_probe_as_without_early_stopping(seed):
    """Overlapping classes (the usual case): the same validation curve, C and test predictions as with
    rel_decrease off; test logits within 1e-6 (the stated tolerance; here they are identical)."""
    xtr, ytr, xva, yva, xte, yte = probe_data(seed=seed)
    new = lp.fit_linear_probe(xtr, ytr, xva, yva, xte, yte)
    old = lp.fit_linear_probe(xtr, ytr, xva, yva, xte, yte, rel_decrease=0.0)
    assert len(new.val_curve) == 13 + 8  # no perfect validation score: the whole search ran
    assert new.val_curve == old.val_curve and new.best_c == old.best_c
    np.testing.assert_array_equal(new.test_pred, old.test_pred)
    np.testing.assert_allclose(new.test_logits, old.test_logits, rtol=0, atol=1e-6)


def test_search_ends_at_the_first_perfect_validation_score():
    (xtr, ytr), (xva, yva), (xte, _) = (blobs(n, k=3, sep=4.0, seed=s) for n, s in ((90, 0), (30, 1), (30, 2)))
    res = lp.fit_linear_probe(xtr, ytr, xva, yva, xte)
    scores = [s for _, s in res.val_curve]
    j = len(scores) - 1
    assert scores[j] == 1.0 and max(scores[:j]) < 1.0  # stopped at the first perfect score
    assert j < 12  # the rest of the coarse grid and the refinement were skipped
    np.testing.assert_allclose([c for c, _ in res.val_curve], lp.DEFAULT_C_GRID[: j + 1])
    assert res.best_c == lp.DEFAULT_C_GRID[j]
    # the same search with the skipped points allowed cannot choose differently: it is the same path
    capped = lp.fit_linear_probe(xtr, ytr, xva, yva, xte, c_grid=lp.DEFAULT_C_GRID[: j + 1], refine_steps=0)
    np.testing.assert_array_equal(capped.test_logits, res.test_logits)


def test_small_fit_runs_on_one_thread_and_restores_the_callers(monkeypatch):
    seen = []
    real = lp.minimise

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(lp, "minimise", recording)
    torch.set_num_threads(2)
    xtr, ytr, xva, yva, xte, _ = probe_data()
    lp.fit_linear_probe(xtr, ytr, xva, yva, xte, c_grid=[0.1, 1.0], refine_steps=0)
    lp.fit_logreg(xtr, ytr, 1.0, 5)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2
    # a product large enough to share keeps the caller's threads
    with lp._threads_for(100_000, 512, 100, torch.device("cpu")):
        assert torch.get_num_threads() == 2


@pytest.mark.parametrize("value", [-1e-6, 1.0, float("nan")])
def test_rel_decrease_out_of_range_is_one_sentence(value):
    xtr, ytr, xva, yva, xte, _ = probe_data()
    with pytest.raises(UserError, match=r"rel_decrease must be in \[0, 1\)"):
        lp.fit_linear_probe(xtr, ytr, xva, yva, xte, rel_decrease=value)
