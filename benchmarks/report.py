"""Speed of the report: all tables, figures and the summary for the paper's study, and a TAR-FAR
figure from IJB-C-scale scores.

The paper study is the shipped published numbers (8 models, 14 + 13 general datasets, Table C).
The TAR-FAR figure draws two curves from 20,000 genuine and N impostor synthetic scores each
(IJB-C has 15,639,051 impostor pairs; the default is a tenth of that to stay quick on 2 cores).

Run: python benchmarks/report.py [--impostors N]
Prints readable lines, then one JSON object on the last line. Wall-clock timings, on whatever
else shares the CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from overspec.report import figures
from overspec.report.gelo import gelo_table
from overspec.report.paper import load_paper_tables, paper_as_metrics, paper_row_labels
from overspec.report.summary import write_summary
from overspec.report.tables import write_long_tables, write_paper_tables

TARGET_SECONDS = {"tables": 5.0, "figures": 20.0, "tar_far": 30.0}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impostors", type=int, default=1_563_905)
    args = parser.parse_args()

    paper = load_paper_tables()
    metrics = paper_as_metrics(paper)
    gelo = gelo_table(metrics)
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(20_000, np.int8), np.zeros(args.impostors, np.int8)]
    ijb = {
        name: pd.DataFrame(
            {"score": np.r_[rng.normal(mu, 0.1, 20_000), rng.normal(0.0, 0.07, args.impostors)], "label": labels}
        )
        for name, mu in (("fr", 0.45), ("clip", 0.25))
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        seconds = {
            "tables": timed(
                lambda: (
                    write_long_tables(metrics, out / "tables"),
                    write_paper_tables(metrics, out / "tables", row_labels=paper_row_labels(paper)),
                    write_summary(metrics, gelo, out / "summary.md"),
                )
            ),
            "figures": timed(
                lambda: (
                    figures.plot_gelo(gelo, out / "gelo"),
                    figures.plot_retention_heatmap(metrics, out / "retention"),
                    figures.plot_retention_scatter(gelo, out / "scatter"),
                    figures.plot_capacity(gelo, out / "capacity", ["ViT-B/16", "ViT-L/14"]),
                )
            ),
            "tar_far": timed(lambda: figures.plot_tar_far(ijb, out / "ijb")),
        }
    for name, value in seconds.items():
        verdict = "ok" if value <= TARGET_SECONDS[name] else "SLOW"
        print(f"{name:8s} {value:7.2f} s  (target <= {TARGET_SECONDS[name]:.0f} s)  {verdict}")
    print(f"tar_far used 2 x ({args.impostors:,} impostor + 20,000 genuine) scores")
    print(
        json.dumps(
            {
                "seconds": {k: round(v, 3) for k, v in seconds.items()},
                "targets": TARGET_SECONDS,
                "impostors": args.impostors,
            }
        )
    )


if __name__ == "__main__":
    main()
