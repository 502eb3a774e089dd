"""The biometric plan: the toy layout is exactly what the toy world writes, real paths resolve under
data_root, and each job's input files are the ones it reads."""

from __future__ import annotations

import json
from pathlib import Path

from overspec.data.biometric.benchmarks import (
    TOY_WORLD_JSON,
    benchmark_files,
    benchmarks_of,
    biometric_plan,
    missing_files,
    toy_plan,
)
from overspec.data.toy.biometric_world import ToyBiometricSizes, write_biometric_world

TINY = ToyBiometricSizes(fr_identities=3, fr_images_per_identity=1, pair_folds=2, pairs_per_fold=2, identities_per_fold=2,
                         ijb_identities=3, ijb_impostor_pairs=4, mad_train_pairs=2, mad_test_pairs=2,
                         pad_train_videos=2, pad_dev_videos=2, pad_test_videos=2, pad_frames=1)


def test_toy_plan_names_the_files_the_toy_world_writes(tmp_path):
    root = tmp_path / "toy_biometrics"
    summary = write_biometric_world(root, seed=0, sizes=TINY)
    plan = toy_plan(["fr", "mad", "pad"], root=str(root))
    assert json.loads((root / "world.json").read_text()) == summary and plan["world"] == str(root / "world.json")
    paths = [plan["fr"]["train"], *plan["fr"]["pairs"].values(), *(s["root"] for s in plan["fr"]["ijb"].values()),
             plan["mad"]["train"], *plan["mad"]["tests"].values(), plan["pad"]["train"], plan["pad"]["dev"],
             *plan["pad"]["tests"].values()]
    assert [p for p in paths if not Path(p).exists()] == []
    assert sorted(plan["mad"]["tests"]) == sorted(summary["mad"]["test"])
    assert plan["fr"]["pairs"] == {summary["pair_set"]["name"]: str(root / summary["pair_set"]["path"])}
    # the world's default location is what the workflow writes
    assert biometric_plan({"source": "toy"})["world"] == TOY_WORLD_JSON


def test_toy_jobs_depend_on_world_json_only():
    plan = biometric_plan({"source": "toy", "tasks": ["mad", "fr"]})
    assert plan["tasks"] == ["fr", "mad"]
    assert benchmarks_of(plan, "fr") == ["toy_pairs", "toyijb"] and benchmarks_of(plan, "mad") == ["toy_mad"]
    assert benchmarks_of(plan, "pad") == []  # not an evaluated task
    assert benchmark_files(plan, "mad", "toy_mad") == [TOY_WORLD_JSON] and missing_files(plan) == []


def test_real_files_resolve_under_data_root(tmp_path):
    data = tmp_path / "data"
    (data / "faces").mkdir(parents=True)
    (data / "faces" / "lfw.bin").write_bytes(b"x")
    (data / "IJBC" / "meta").mkdir(parents=True)
    (data / "IJBC" / "meta" / "ijbc_face_tid_mid.txt").write_text("")
    section = {
        "source": "files",
        "fr": {"train": "faces/train.rec", "pairs": {"lfw": "faces/lfw.bin", "cplfw": "/abs/cplfw.bin"},
               "ijb": {"ijbc": "IJBC"}},
        "mad": {"train": "SMDD/train.csv", "tests": {"opencv": "MAD22/opencv.csv"}},
        "pad": {"train": "pad/train.csv", "dev": "pad/dev.csv", "tests": {"celeba_spoof": "pad/ca.csv"}},
    }
    plan = biometric_plan(section, str(data))
    assert plan["fr"]["pairs"] == {"lfw": str(data / "faces" / "lfw.bin"), "cplfw": "/abs/cplfw.bin"}
    assert plan["fr"]["ijb"]["ijbc"] == {"root": str(data / "IJBC"), "aligned_size": 112, "template": "arcface"}
    assert plan["mad"]["benchmark"] == "syn_mad22" and plan["world"] is None
    assert benchmarks_of(plan, "fr") == ["cplfw", "lfw", "ijbc"]
    assert benchmark_files(plan, "fr", "ijbc") == [str(data / "IJBC" / "meta" / "ijbc_face_tid_mid.txt")]
    assert benchmark_files(plan, "pad", "celeba_spoof") == [str(data / p) for p in ("pad/train.csv", "pad/dev.csv", "pad/ca.csv")]
    assert benchmark_files(plan, "mad", None) == [str(data / "SMDD/train.csv")]
    lines = missing_files(plan)
    assert any("fr/cplfw: /abs/cplfw.bin is missing" == line for line in lines)
    assert not any("lfw.bin" in line and "cplfw" not in line for line in lines)
    assert any("celeba_spoof" in line and "ca.csv" in line for line in lines)


def test_no_source_means_no_biometric_jobs():
    plan = biometric_plan(None)
    assert plan["source"] == "none" and all(benchmarks_of(plan, t) == [] for t in ("fr", "mad", "pad"))
