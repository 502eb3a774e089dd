"""The fast embedding path (overspec.embed.*): same features as open_clip's per-sample transform,
exact Pillow resize on tensors, resume after a kill, out-of-memory fallback, progress lines.
Correctness only; speed lives in benchmarks/embed_throughput.py."""

from __future__ import annotations

import io
import json
import logging
import sys

import numpy as np
import pytest
import torch
from _model_fixtures import Killed, kill_encoder_after, tiny_vit
from PIL import Image

from overspec.data.readers import ArraySplit, FileListSplit, SubsetSplit
from overspec.embed import encoder as encoder_module
from overspec.embed import images as images_module
from overspec.embed.encoder import ImageEncoder, is_out_of_memory, resolve_precision
from overspec.embed.images import embed_splits
from overspec.embed.loader import (
    BatchKey,
    Preprocess,
    SplitBatches,
    decode_on,
    eval_transform,
    in_memory_array,
    normalize_batch,
    plan_batches,
)
from overspec.embed.partial import PartialStore, partial_dir
from overspec.embed.pil_resize import pil_resize
from overspec.embed.progress import progress_bar
from overspec.embed.store import read_embeddings
from overspec.errors import UserError
from overspec.models.factory import preprocessing_of
from overspec.provenance import sha256_file

ARCH = "test-embed-vit-40"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A one-layer ViT at 40 pixels: small images are upscaled and cropped, as CIFAR is to 224."""
    torch.set_num_threads(1)
    return tiny_vit(tmp_path_factory.mktemp("arch"), ARCH, image_size=40, layers=1, width=32, embed_dim=16)


def array_split(n: int, shape=(20, 28, 3), seed: int = 0, prefix: str = "s") -> ArraySplit:
    images = np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)
    return ArraySplit(images, [f"{prefix}/{i:04d}" for i in range(n)], [i % 3 for i in range(n)])


def reference_features(model, reader) -> np.ndarray:
    """open_clip's own per-sample transform and encode_image, one image at a time."""
    transform = eval_transform(preprocessing_of(model))
    with torch.inference_mode():
        return torch.cat([model.encode_image(transform(reader.load(i))[None]) for i in range(len(reader))]).numpy()


def embed(model, readers, out, **kwargs):
    return embed_splits(model, preprocessing_of(model), readers, out, digest=kwargs.pop("digest", "d"), **kwargs)


# ---------------------------------------------------------------------------------------------
# Same pixels, same features


def test_features_equal_open_clip_per_sample_path(model, tmp_path):
    colour, grey = array_split(9), ArraySplit(np.random.default_rng(1).integers(0, 256, (5, 30, 17), dtype=np.uint8),
                                              [f"g/{i}" for i in range(5)], [0] * 5)
    sizes = embed(model, {"train": colour, "test": grey}, tmp_path / "e.h5", batch_size=4)
    assert sizes == {"train": 9, "test": 5}
    for split, reader in (("train", colour), ("test", grey)):
        features, labels, ids = read_embeddings(tmp_path / "e.h5", split)
        np.testing.assert_allclose(features, reference_features(model, reader), rtol=0, atol=1e-5)
        assert labels.tolist() == reader.labels() and ids == reader.ids()
    assert not partial_dir(tmp_path / "e.h5").exists()


def test_normalize_batch_is_totensor_then_normalize_bit_for_bit():
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8))
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    from torchvision.transforms import Normalize, ToTensor

    expected = torch.stack([Normalize(mean, std)(ToTensor()(Image.fromarray(p.numpy()))) for p in pixels])
    assert torch.equal(normalize_batch(pixels.permute(0, 3, 1, 2), mean, std), expected)


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("shape,size", [((32, 32), (224, 224)), ((300, 200), (336, 224)), ((17, 40), (3, 90)),
                                        ((1000, 30), (64, 64)), ((64, 64), (32, 65)), ((500, 375), (298, 224))])
def test_pil_resize_on_tensors_equals_pillow(shape, size, interpolation):
    images = np.random.default_rng(sum(shape)).integers(0, 256, (2, *shape, 3), dtype=np.uint8)
    method = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[interpolation]
    expected = np.stack([np.asarray(Image.fromarray(x).resize(size[::-1], method)) for x in images])
    ours = pil_resize(torch.from_numpy(images).permute(0, 3, 1, 2), size, interpolation).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(ours, expected)


@pytest.mark.parametrize("mode,size", [("shortest", [40, 40]), ("squash", [24, 40]), ("longest", [40, 40])])
def test_batched_geometric_transform_matches_open_clip(model, mode, size):
    preprocess = Preprocess.from_preprocessing({**preprocessing_of(model), "resize_mode": mode, "size": size})
    if mode == "longest":  # open_clip's ResizeKeepRatio reads PIL sizes: this mode stays on the PIL path
        assert not preprocess.on_tensors
        return
    images = np.random.default_rng(0).integers(0, 256, (3, 21, 33, 3), dtype=np.uint8)
    expected = np.stack([np.asarray(preprocess.geometric(Image.fromarray(x))) for x in images])
    batch = preprocess.geometric_tensor(torch.from_numpy(images).permute(0, 3, 1, 2))
    assert preprocess.on_tensors and np.array_equal(batch.permute(0, 2, 3, 1).numpy(), expected)


def test_in_memory_batches_resized_on_device_give_open_clip_features(model):
    """The GPU path for CIFAR/MNIST-like data (slice the array, resize the batch on the device), run on CPU."""
    grey = ArraySplit(np.random.default_rng(3).integers(0, 256, (12, 17, 23), dtype=np.uint8),
                      [f"g/{i}" for i in range(12)], [0] * 12)
    for base in (array_split(12), grey):
        carved = SubsetSplit(base, [11, 3, 5, 0, 7])
        preprocess = Preprocess.from_preprocessing(preprocessing_of(model))
        batches = SplitBatches([carved], preprocess, resize_on_device=True, decode_on_device=False)
        item = batches[BatchKey(0, 1, 5)]
        assert item["kind"] == "raw"
        pixels = images_module._pixels_on_device(item, batches, preprocess, torch.device("cpu"))
        encoder = ImageEncoder(model, torch.device("cpu"), preprocess.mean, preprocess.std)
        with torch.inference_mode():
            features = encoder(pixels).numpy()
        np.testing.assert_allclose(features, reference_features(model, carved)[1:5], rtol=0, atol=1e-5)


def test_in_memory_array_follows_carved_subsets():
    base = array_split(6)
    inner = SubsetSplit(base, [5, 4, 3, 2])
    images, mapping = in_memory_array(SubsetSplit(inner, [1, 3]))
    assert images is base.images and mapping.tolist() == [4, 2]
    assert in_memory_array(FileListSplit(".", ["a.png"], [0])) is None


def test_jpeg_batches_decoded_on_the_device_path(model, tmp_path):
    """The nvjpeg path (bytes from workers, decode + resize on the device), exercised with torchvision's
    CPU decoder: JPEGs decode to the same pixels as Pillow's within JPEG decoder rounding, PNGs in the
    same batch go through Pillow, and a JPEG the decoder refuses falls back to Pillow's clear error."""
    rng = np.random.default_rng(0)
    ids = []
    for i, suffix in enumerate(["jpg", "png", "jpg"]):
        image = np.repeat(np.repeat(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8), 6, 0), 6, 1)
        Image.fromarray(image).save(tmp_path / f"{i}.{suffix}", quality=95)
        ids.append(f"{i}.{suffix}")
    reader = FileListSplit(tmp_path, ids, [0, 1, 2])
    preprocess = Preprocess.from_preprocessing(preprocessing_of(model))
    batches = SplitBatches([reader], preprocess, resize_on_device=False, decode_on_device=True)
    item = batches[BatchKey(0, 0, 3)]
    assert item["kind"] == "encoded" and [d.dim() for d in item["data"]] == [1, 3, 1]
    pixels = images_module._pixels_on_device(item, batches, preprocess, torch.device("cpu"))
    expected = torch.stack([torch.from_numpy(np.array(preprocess.geometric(reader.load(i)))).permute(2, 0, 1)
                            for i in range(3)])
    assert pixels.shape == expected.shape
    assert (pixels.int() - expected.int()).abs().max() <= 3 and torch.equal(pixels[1], expected[1])

    (tmp_path / "0.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)  # JPEG magic, broken body
    with pytest.raises(UserError, match="cannot be decoded"):
        decode_on(batches[BatchKey(0, 0, 1)]["data"], preprocess.geometric_tensor, torch.device("cpu"),
                  fallback=lambda i: batches.samples[0][i])


# ---------------------------------------------------------------------------------------------
# Bytes, resume, out of memory


def test_same_bytes_for_any_batch_size_and_with_workers(model, tmp_path):
    readers = {"train": array_split(70), "test": array_split(6, seed=1)}
    embed(model, readers, tmp_path / "a.h5", batch_size=3)
    embed(model, readers, tmp_path / "b.h5", batch_size=200)
    assert sha256_file(tmp_path / "a.h5") == sha256_file(tmp_path / "b.h5")

    folder = tmp_path / "files"
    folder.mkdir()
    for i, image in enumerate(readers["train"].images):
        Image.fromarray(image).save(folder / f"{i}.png")
    files = {"train": FileListSplit(folder, [f"{i}.png" for i in range(70)], readers["train"].labels()),
             "test": readers["test"]}
    embed(model, files, tmp_path / "c.h5", batch_size=4, num_workers=1)  # one worker process decodes the PNGs
    a, c = read_embeddings(tmp_path / "a.h5", "train")[0], read_embeddings(tmp_path / "c.h5", "train")[0]
    assert np.array_equal(a, c)


def test_killed_job_resumes_from_its_last_chunk_with_identical_bytes(model, tmp_path, monkeypatch):
    monkeypatch.setattr(encoder_module, "CPU_FORWARD_ROWS", 4)  # batches of 4 images, chunks of 8
    monkeypatch.setattr(images_module, "CHUNK_ROWS", 8)
    readers = {"train": array_split(23), "val": array_split(17, seed=1), "test": array_split(9, seed=2)}
    embed(model, readers, tmp_path / "whole.h5", batch_size=4)

    real_call = ImageEncoder.__call__
    seen = kill_encoder_after(monkeypatch, 23 + 12)  # the job is killed inside the val split
    out = tmp_path / "out.h5"
    with pytest.raises(Killed):
        embed(model, readers, out, batch_size=4)
    assert not out.exists()  # a partial job never looks finished
    store = PartialStore(out, "d", list(readers))
    assert store.done("train") == 23 and store.done("val") == 8 and store.done("test") == 0

    def counts(self, pixels):
        seen.append(len(pixels))
        return real_call(self, pixels)

    seen.clear()
    monkeypatch.setattr(ImageEncoder, "__call__", counts)
    embed(model, readers, out, batch_size=4)
    assert sum(seen) == 17 - 8 + 9  # only the images that had no finished chunk
    assert sha256_file(out) == sha256_file(tmp_path / "whole.h5")
    assert not partial_dir(out).exists()


def test_partial_work_from_another_source_is_discarded(model, tmp_path, caplog):
    readers = {"test": array_split(10)}
    out = tmp_path / "x.h5"
    stale = PartialStore(out, "another-model", ["test"])
    stale.write("test", 0, np.full((8, 16), 7.0, np.float32))
    with caplog.at_level(logging.INFO):
        embed(model, readers, out, digest="this-model", batch_size=4)
    assert "discarding" in caplog.text
    np.testing.assert_allclose(read_embeddings(out, "test")[0], reference_features(model, readers["test"]), atol=1e-5)


def test_out_of_memory_halves_the_batch_and_never_crashes(model, tmp_path, monkeypatch, caplog):
    readers = {"test": array_split(21)}
    embed(model, readers, tmp_path / "plain.h5", batch_size=16)
    real = model.encode_image

    def small_memory(images):
        if len(images) > 5:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")
        return real(images)

    monkeypatch.setattr(model, "encode_image", small_memory)
    with caplog.at_level(logging.WARNING):
        embed(model, readers, tmp_path / "small.h5", batch_size=16)
    halvings = [f"continuing with batches of {rows}" for rows in (32, 16, 8, 4)]  # from 64 per forward pass on CPU
    assert all(h in caplog.text for h in halvings)
    assert caplog.text.count("out of memory") == 4  # the smaller size is kept for the rest of the job
    assert sha256_file(tmp_path / "small.h5") == sha256_file(tmp_path / "plain.h5")

    monkeypatch.setattr(model, "encode_image", lambda images: (_ for _ in ()).throw(RuntimeError("CUDA out of memory")))
    with pytest.raises(UserError, match="single image does not fit"):
        embed(model, readers, tmp_path / "none.h5", batch_size=4)


def test_only_out_of_memory_errors_are_retried(model):
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_precision_choices():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(UserError, match="not one of"):
        resolve_precision("fp8", torch.device("cpu"))


def test_bf16_autocast_returns_float32_features_close_to_fp32(model):
    preprocess = Preprocess.from_preprocessing(preprocessing_of(model))
    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 3, 40, 40), dtype=np.uint8))
    with torch.inference_mode():
        full = ImageEncoder(model, torch.device("cpu"), preprocess.mean, preprocess.std)(pixels)
        half = ImageEncoder(model, torch.device("cpu"), preprocess.mean, preprocess.std, precision="bf16")(pixels)
    assert half.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(full, half)
    assert (cosine > 0.99).all() and not torch.equal(full, half)


# ---------------------------------------------------------------------------------------------
# Plan and progress


def test_batches_never_span_splits_and_start_where_work_stopped():
    keys = plan_batches([5, 7, 2], [2, 0, 2], 3)
    assert [(k.split, k.start, k.stop) for k in keys] == [(0, 2, 5), (1, 0, 3), (1, 3, 6), (1, 6, 7)]


def test_progress_in_a_log_is_one_line_per_update(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    bar = progress_bar(total=100, initial=40, description="embed cifar10", log_interval_s=0)
    for _ in range(3):
        bar.update(20)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) >= 3
    assert lines[0].startswith("embed cifar10:  40%") and "100/100" in lines[-1] and "img/s" in lines[-1]


@pytest.mark.slow
def test_benchmark_smoke_run(capsys):
    """benchmarks/embed_throughput.py end to end on a tiny model: both paths, memory children, JSON line."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "embed_throughput.py"
    spec = importlib.util.spec_from_file_location("embed_throughput", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--quick", "--memory-sizes", "100,300", "--gpu-ceiling"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == result and result["features_within_1e-4"] and result["max_abs_feature_diff"] <= 1e-4
    assert result["overspec_img_s"] > 0 and result["reference_img_s"] > 0 and result["ceiling_img_s"] > 0
    assert set(result["memory"]) == {"100", "300"} and result["peak_rss_growth"] >= 0
