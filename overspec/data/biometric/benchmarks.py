"""Which biometric benchmarks a study evaluates, and where their files are.

`biometric_plan(section, data_root, image_size)` turns the config's ``biometrics`` section into
one plain mapping that the rules and jobs read:

```
{"source": "toy" | "files" | "none", "tasks": [...], "world": <world.json or None>,
 "fr":  {"train": path, "pairs": {name: .bin}, "ijb": {name: {"root", "aligned_size", "template"}}},
 "mad": {"train": csv, "benchmark": name, "tests": {subset: csv}},
 "pad": {"train": csv, "dev": csv | None, "tests": {name: csv}}}
```

For the toy world the paths are the layout `overspec.data.toy.biometric_world` writes under
`TOY_WORLD_DIR`; for real data they are the configured paths, relative to ``data_root`` unless
absolute. Only path arithmetic happens here: nothing is read, so a plan can be made for data that
is not there yet (`missing_files` lists what is absent).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from overspec.data.toy.biometric_world import IJB_PREFIX, PAIR_SET_NAME
from overspec.data.toy.faces import MORPH_METHODS

TASKS = ("fr", "mad", "pad")
TOY_WORLD_DIR = "results/data/toy_biometrics"
TOY_WORLD_JSON = f"{TOY_WORLD_DIR}/world.json"
TOY_MAD_BENCHMARK = "toy_mad"
TOY_PAD_BENCHMARK = "toy_pad"
ARCFACE_TEMPLATE = "arcface"  # the standard 112x112 five-point template, scaled to aligned_size
WORLD_TEMPLATE = "world"  # the toy world's template (and size), read from world.json


def toy_plan(tasks: list[str], root: str = TOY_WORLD_DIR) -> dict[str, Any]:
    """The toy world's benchmarks (the layout `write_biometric_world` produces under `root`)."""
    return {
        "source": "toy",
        "tasks": list(tasks),
        "world": f"{root}/world.json",
        "fr": {
            "train": f"{root}/fr_train",
            "pairs": {PAIR_SET_NAME: f"{root}/pairs/{PAIR_SET_NAME}.bin"},
            "ijb": {IJB_PREFIX: {"root": f"{root}/ijb/TOYIJB", "aligned_size": None, "template": WORLD_TEMPLATE}},
        },
        "mad": {
            "train": f"{root}/mad/train.csv",
            "benchmark": TOY_MAD_BENCHMARK,
            "tests": {method: f"{root}/mad/test_{method}.csv" for method in MORPH_METHODS},
        },
        "pad": {
            "train": f"{root}/pad/train.csv",
            "dev": f"{root}/pad/dev.csv",
            "tests": {TOY_PAD_BENCHMARK: f"{root}/pad/test.csv"},
        },
    }


def under(data_root: str, path: str | None) -> str | None:
    """`path` relative to `data_root` (absolute paths unchanged), as a plain string."""
    if path is None:
        return None
    return path if os.path.isabs(path) else str(Path(data_root) / path)


def files_plan(section: Mapping[str, Any], data_root: str) -> dict[str, Any]:
    """Real benchmark files named in the config's fr / mad / pad sections."""
    fr, mad, pad = (dict(section.get(task) or {}) for task in TASKS)
    aligned = int(fr.get("ijb_aligned_size", 112))
    return {
        "source": "files",
        "tasks": list(section.get("tasks", TASKS)),
        "world": None,
        "fr": {
            "train": under(data_root, fr.get("train")),
            "pairs": {name: under(data_root, p) for name, p in (fr.get("pairs") or {}).items()},
            "ijb": {name: {"root": under(data_root, p), "aligned_size": aligned, "template": ARCFACE_TEMPLATE}
                    for name, p in (fr.get("ijb") or {}).items()},
        },
        "mad": {
            "train": under(data_root, mad.get("train")),
            "benchmark": mad.get("benchmark", "syn_mad22"),
            "tests": {name: under(data_root, p) for name, p in (mad.get("tests") or {}).items()},
        },
        "pad": {
            "train": under(data_root, pad.get("train")),
            "dev": under(data_root, pad.get("dev")),
            "tests": {name: under(data_root, p) for name, p in (pad.get("tests") or {}).items()},
        },
    }


def biometric_plan(section: Mapping[str, Any] | None, data_root: str = "data") -> dict[str, Any]:
    """The plan for a config's ``biometrics`` section (source none: no tasks, no paths)."""
    section = dict(section or {})
    source = section.get("source", "none")
    tasks = [t for t in TASKS if t in section.get("tasks", TASKS)]
    if source == "toy":
        return toy_plan(tasks)
    if source == "files":
        plan = files_plan(section, data_root)
        plan["tasks"] = tasks
        return plan
    return {"source": "none", "tasks": [], "world": None,
            "fr": {"train": None, "pairs": {}, "ijb": {}},
            "mad": {"train": None, "benchmark": None, "tests": {}},
            "pad": {"train": None, "dev": None, "tests": {}}}


def benchmarks_of(plan: Mapping[str, Any], task: str) -> list[str]:
    """Names of the result files a task writes per model: pair sets and IJB sets, the MAD suite, PAD targets."""
    if task not in plan["tasks"]:
        return []
    if task == "fr":
        return sorted(plan["fr"]["pairs"]) + sorted(plan["fr"]["ijb"])
    if task == "mad":
        return [plan["mad"]["benchmark"]] if plan["mad"]["tests"] else []
    return sorted(plan["pad"]["tests"])


def benchmark_files(plan: Mapping[str, Any], task: str, benchmark: str | None = None) -> list[str]:
    """The files one evaluation job reads (the world's world.json stands for all toy files).

    `benchmark` None: the task's training data. IJB folders are represented by their meta files.
    """
    if plan["source"] == "toy":
        return [plan["world"]]
    if benchmark is None:
        train = plan[task]["train"]
        return [train] if train else []
    if task == "fr" and benchmark in plan["fr"]["pairs"]:
        return [plan["fr"]["pairs"][benchmark]]
    if task == "fr":
        meta = Path(plan["fr"]["ijb"][benchmark]["root"]) / "meta"
        found = sorted(str(p) for p in meta.glob("*.txt")) if meta.is_dir() else []
        return found or [str(meta)]
    if task == "mad":
        return [plan["mad"]["train"], *(plan["mad"]["tests"][s] for s in sorted(plan["mad"]["tests"]))]
    return [p for p in (plan["pad"]["train"], plan["pad"]["dev"], plan["pad"]["tests"][benchmark]) if p]


def missing_files(plan: Mapping[str, Any]) -> list[str]:
    """One line per configured real benchmark or training file that does not exist (none for the toy world)."""
    if plan["source"] != "files":
        return []
    lines = []
    for task in plan["tasks"]:
        for benchmark in benchmarks_of(plan, task):
            lines += [f"{task}/{benchmark}: {p} is missing" for p in benchmark_files(plan, task, benchmark)
                      if not Path(p).exists()]
    return lines
