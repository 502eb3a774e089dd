"""Quick check of the remedies' strengths for configs/mitigation.yaml, outside the workflow.

Fine-tunes a toy backbone of a finished default study (`snakemake --cores 2`, its results/ folder)
with the toy FR recipe of config.yaml and each variant given, then measures, as the study does but
without its bootstrap: the FR gain (toy_pairs 10-fold accuracy, fine-tune minus baseline, in pp)
and the zero-shot GELO (mean top-1 over the five toy general datasets, fine-tune over baseline).
One seed, one pair set of 600 pairs: a point estimate for placing strengths along the trade-off,
not a result (the study's bootstrap intervals are about +-6 pp on the FR gain).

Run (from the repository root; writes only under --out):
    python benchmarks/mitigation_strengths.py --results /path/to/study/results --backbone s \\
        --variants '{"l2sp10": {"l2sp": {"weight": 10}}, "freeze3": {"freeze_blocks": 3}}'
Prints one line per variant, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from overspec.embed.images import embed_dataset
from overspec.embed.text import embed_classnames
from overspec.evaluate.biometric_jobs import eval_pair_sets
from overspec.evaluate.general import evaluate_zeroshot
from overspec.train.finetune import finetune
from overspec.train.recipe import FinetuneConfig

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("toy_colours", "toy_shapes", "toy_textures", "toy_counting", "toy_digits")


def zeroshot_mean(model: Path, results: Path, out: Path, tag: str) -> float:
    """Mean zero-shot top-1 over the toy general datasets (as eval_zeroshot computes it)."""
    accuracies = []
    for dataset in DATASETS:
        manifest = results / "data" / dataset / "manifest.json"
        images, text = out / f"{tag}-{dataset}.h5", out / f"{tag}-{dataset}-text.h5"
        embed_dataset(model, manifest, images)
        embed_classnames(model, manifest, text)
        metrics, _ = evaluate_zeroshot(images, text, "top1", bootstrap_resamples=1)
        accuracies.append(metrics["top1"])
    return float(np.mean(accuracies))


def pair_accuracy(model: Path, results: Path, out: Path, tag: str) -> float:
    pairs = {"toy_pairs": results / "data" / "toy_biometrics" / "pairs" / "toy_pairs.bin"}
    return eval_pair_sets(tag, model, pairs, {"toy_pairs": out / f"{tag}-pairs.json"})["toy_pairs"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a finished default study's results/ folder")
    parser.add_argument("--backbone", choices=("s", "m"), required=True)
    parser.add_argument("--variants", required=True, help="JSON: {name: recipe keys to change}")
    parser.add_argument("--out", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = args.results.resolve()
    out = (args.out or Path(tempfile.mkdtemp(prefix="mitigation_strengths_"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    recipe = yaml.safe_load((ROOT / "config.yaml").read_text())["recipes"]["toy-fr"]
    recipe = {**{k: v for k, v in recipe.items() if k != "resources"}, "task": "fr", "seed": 0}
    base = results / "models" / f"clip-toy-{args.backbone}" / "model.safetensors"
    os.chdir(results.parent)  # the manifests name their image folders relative to the study's folder
    started = time.monotonic()
    base_zs, base_acc = zeroshot_mean(base, results, out, "base"), pair_accuracy(base, results, out, "base")
    print(f"toy-{args.backbone.upper()} baseline: zero-shot mean top-1 {base_zs:.4f}, pair accuracy {base_acc:.4f}",
          flush=True)
    rows = []
    for name, change in json.loads(args.variants).items():
        path = out / f"{name}.safetensors"
        finetune(FinetuneConfig.from_dict({**recipe, **change}), base, results / "data" / "toy_biometrics" / "fr_train",
                 path, out / f"{name}.csv", progress=False)
        zs, acc = zeroshot_mean(path, results, out, name), pair_accuracy(path, results, out, name)
        row = {"variant": name, "change": change, "fr_gain_pp": round(100 * (acc - base_acc), 2),
               "zeroshot_gelo": round(zs / base_zs, 4)}
        rows.append(row)
        print(f"{name}: FR gain {row['fr_gain_pp']:+.2f} pp, zero-shot GELO {row['zeroshot_gelo']:.3f} "
              f"({time.monotonic() - started:.0f} s)", flush=True)
    print(json.dumps({"backbone": f"toy-{args.backbone}", "baseline": {"zeroshot_top1": base_zs, "pair_accuracy": base_acc},
                      "variants": rows}))


if __name__ == "__main__":
    main()
