"""The library steps behind the rules, on a tiny model and a tiny toy dataset: prepare -> embed ->
zero-shot / probe, byte-determinism, clean failure on bad input and on interruption."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from overspec.data.prepare import prepare_dataset
from overspec.embed import images as embed_images_module
from overspec.embed.images import embed_dataset
from overspec.embed.store import read_embeddings
from overspec.embed.text import embed_classnames
from overspec.errors import UserError
from overspec.evaluate.general import run_linear_probe, run_zeroshot
from overspec.models.checkpoint import save_model
from overspec.models.factory import create_model, preprocessing_of
from overspec.provenance import sha256_file


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("steps")
    manifest = root / "data" / "toy_colours" / "manifest.json"
    prepare_dataset("toy_colours", manifest, data_root=root / "none", seed=0, image_size=32)
    model = create_model("toy-clip-s", seed=0)
    model_path = root / "model.safetensors"
    save_model(model_path, model, {"architecture": {"open_clip_model": "toy-clip-s"},
                                   "preprocessing": preprocessing_of(model)})
    return root, manifest, model_path


def model_width(path) -> int:
    from overspec.models.checkpoint import load_model

    return int(load_model(path).model.visual.output_dim)


def test_manifest_records_balanced_splits(prepared):
    _, manifest, _ = prepared
    data = json.loads(manifest.read_text())
    assert data["splits"]["train"]["n"] == 8 * 50 and set(data["splits"]["train"]["class_counts"]) == {50}
    assert data["splits"]["test"]["n"] == 8 * 40 and len(data["templates"]) >= 3


def test_embed_zeroshot_probe_round_trip(prepared):
    root, manifest, model_path = prepared
    torch.set_num_threads(1)
    sizes = embed_dataset(model_path, manifest, root / "emb.h5", batch_size=64)
    assert sizes == {"train": 400, "val": 120, "test": 320}
    features, labels, ids = read_embeddings(root / "emb.h5", "test")
    assert features.shape == (320, model_width(model_path)) and features.dtype == np.float32
    assert labels.tolist() == sorted(labels.tolist()) and ids[0] == "test/red/00000.png"
    embed_classnames(model_path, manifest, root / "text.h5")
    with h5py.File(root / "text.h5") as f:
        classifier = f["classifier"][...]
    np.testing.assert_allclose(np.linalg.norm(classifier, axis=1), 1.0, rtol=1e-5)

    zs = run_zeroshot("m", root / "emb.h5", root / "text.h5", manifest, root / "zs.json",
                      bootstrap_resamples=50, seed=0, provenance={})
    assert zs["n"] == 320 and 0 <= zs["top1"] <= zs["top5"] <= 1
    lp = run_linear_probe("m", root / "emb.h5", manifest, root / "lp.json",
                          c_grid=[0.01, 1.0, 100.0], bootstrap_resamples=50, seed=0, provenance={})
    # Colour is linearly decodable even from random features: the probe must find it.
    assert lp["top1"] > 0.6 and lp["best_c"] > 0 and len(lp["val_curve"]) >= 3
    assert lp["primary_ci95"][0] <= lp["primary"] <= lp["primary_ci95"][1]
    for name, result in (("zs", zs), ("lp", lp)):  # per-sample predictions beside each JSON, named with their digest
        predictions = root / f"{name}.pred.csv"
        assert result["predictions_file"] == {"path": predictions.name, "sha256": sha256_file(predictions), "rows": 320}
        rows = np.loadtxt(predictions, delimiter=",", skiprows=1, usecols=(1, 2), dtype=np.int64)
        assert rows[:, 0].tolist() == labels.tolist() and np.mean(rows[:, 0] == rows[:, 1]) == result["top1"]

    embed_dataset(model_path, manifest, root / "again.h5", batch_size=32)
    assert sha256_file(root / "again.h5") == sha256_file(root / "emb.h5")  # batch size does not matter


def test_interrupted_embedding_leaves_no_file(prepared, monkeypatch):
    root, manifest, model_path = prepared
    out = root / "killed.h5"

    class Boom(RuntimeError):
        pass

    calls = {"n": 0}
    real = embed_images_module._TransformedSplit.__getitem__

    def flaky(self, index):
        calls["n"] += 1
        if calls["n"] > 450:  # past the train split, inside val
            raise Boom("killed mid-embedding")
        return real(self, index)

    monkeypatch.setattr(embed_images_module._TransformedSplit, "__getitem__", flaky)
    with pytest.raises(Boom):
        embed_dataset(model_path, manifest, out, batch_size=32)
    assert not out.exists() and not list(root.glob(".killed.h5*"))


def test_changed_dataset_files_are_reported(prepared, tmp_path):
    root, manifest, model_path = prepared
    data = json.loads(manifest.read_text())
    data["splits"]["test"]["listing_sha256"] = "0" * 64
    edited = tmp_path / "manifest.json"
    edited.write_text(json.dumps(data))
    with pytest.raises(UserError, match="changed since"):
        embed_dataset(model_path, edited, tmp_path / "x.h5")


def test_corrupt_image_is_one_clear_sentence(prepared, tmp_path):
    root, manifest, model_path = prepared
    data = json.loads(manifest.read_text())
    victim = root / "data" / "toy_colours" / "images" / "val" / "red" / "00000.png"
    original = victim.read_bytes()
    try:
        victim.write_bytes(b"not a png")
        with pytest.raises(UserError, match=r"cannot be decoded.*rerun prepare_dataset"):
            embed_dataset(model_path, manifest, tmp_path / "v.h5")
    finally:
        victim.write_bytes(original)
    assert data["dataset"] == "toy_colours"


def test_missing_data_root_names_the_folder(tmp_path):
    with pytest.raises(UserError, match=r"cifar10 was not found in .*cifar-10-batches-py"):
        prepare_dataset("cifar10", tmp_path / "m.json", data_root=tmp_path / "nowhere", seed=0, image_size=32)


def test_unknown_dataset_and_model_file_errors(tmp_path):
    with pytest.raises(UserError, match="Unknown dataset 'toy_colors'"):
        prepare_dataset("toy_colors", tmp_path / "m.json", data_root=tmp_path, seed=0, image_size=32)
    from overspec.models.checkpoint import load_model

    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "absent.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(UserError, match="not a readable safetensors"):
        load_model(tmp_path / "junk.safetensors")
