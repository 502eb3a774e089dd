"""Analyses beyond the paper's tables, run on artifacts the study already has (nothing re-encoded).

- ``overspec.analysis.cka``: linear CKA between two feature matrices of the same samples.
- ``overspec.analysis.drift``: representation drift, CKA of each fine-tuned model's test features
  with its baseline's per dataset, and its correlation with the per-dataset accuracy change.
- ``overspec.analysis.bootstrap``: paired bootstrap over test samples (resample weights, a
  dataset's primary metric under weights, percentile intervals and two-sided p-values).
- ``overspec.analysis.significance``: every (model vs baseline, dataset, protocol) difference and
  every GELO with its interval, p-value and significance flag.
- ``overspec.analysis.wiseft``: the WiSE-FT trade-off curve of each fine-tune.
- ``overspec.analysis.remedies``: which model is which remedy against forgetting (from the config).
- ``overspec.analysis.mitigation``: the remedies on the trade-off plane (table, Pareto fronts, the
  best remedy at a GELO floor and at the plain fine-tune's gain).
"""
