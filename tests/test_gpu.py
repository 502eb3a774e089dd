"""The GPU paths, run only where a CUDA device is visible (CI has none; `benchmarks/gpu_check.sh`
runs these on a lent GPU machine): Pillow-exact resizing on the device, embeddings equal to the
CPU's, nvjpeg decoding, a real CUDA out-of-memory fallback, the asynchronous copy-back surviving a
kill and resume, torch.compile, the linear probe and the fine-tuning loop on the GPU."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from _model_fixtures import Killed, kill_encoder_after, tiny_vit
from PIL import Image

from overspec.data.readers import ArraySplit, FileListSplit
from overspec.embed import images as images_module
from overspec.embed.encoder import ImageEncoder
from overspec.embed.images import embed_splits
from overspec.embed.loader import BatchKey, Preprocess, SplitBatches
from overspec.embed.partial import PartialStore
from overspec.embed.pil_resize import pil_resize
from overspec.embed.store import read_embeddings
from overspec.evaluate.linear_probe import fit_linear_probe
from overspec.models.factory import preprocessing_of

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

ARCH = "test-gpu-vit-48"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A two-layer ViT at 48 pixels (small images are upscaled, as CIFAR is to 224)."""
    return tiny_vit(tmp_path_factory.mktemp("arch"), ARCH, image_size=48, layers=2, width=64, embed_dim=32,
                    head_width=32)


def images(n: int, shape=(32, 32, 3), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def embed(model, readers, out, device, **kwargs):
    model = model.to(device)
    try:
        embed_splits(model, preprocessing_of(model), readers, out, digest=kwargs.pop("digest", "d"), device=device,
                     **kwargs)
    finally:
        model.to("cpu")
    return {name: read_embeddings(out, name)[0] for name in readers}


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("shape,size", [((32, 32), (224, 224)), ((17, 45), (48, 48)), ((300, 200), (224, 224))])
def test_pil_resize_on_the_gpu_equals_pillow(shape, size):
    batch = images(6, (*shape, 3), seed=1)
    on_gpu = pil_resize(torch.from_numpy(batch).permute(0, 3, 1, 2).cuda(), size).cpu()
    expected = np.stack([np.array(Image.fromarray(im).resize(size[::-1], Image.BICUBIC)) for im in batch])
    assert torch.equal(on_gpu, torch.from_numpy(expected).permute(0, 3, 1, 2))


def test_gpu_embeddings_equal_the_cpu_ones(model, tmp_path):
    """In-memory data (sliced and resized on the GPU) and PNG files (decoded in workers): fp32 on the
    GPU within TF32 rounding of the CPU's features (cuDNN convolutions), bf16 autocast within a few
    percent, rows in order (a misplaced row alone is a relative error above 10%)."""
    array = ArraySplit(images(300), [f"a/{i}" for i in range(300)], [i % 3 for i in range(300)])
    folder = tmp_path / "png"
    folder.mkdir()
    for i, image in enumerate(images(40, (30, 50, 3), seed=2)):
        Image.fromarray(image).save(folder / f"{i}.png")
    files = FileListSplit(folder, [f"{i}.png" for i in range(40)], [0] * 40)
    readers = {"train": array, "test": files}
    cpu = embed(model, readers, tmp_path / "cpu.h5", "cpu")
    fp32 = embed(model, readers, tmp_path / "fp32.h5", "cuda", batch_size=64, num_workers=2, precision="fp32")
    bf16 = embed(model, readers, tmp_path / "bf16.h5", "cuda", batch_size=64, num_workers=2, precision="bf16")
    for split in readers:
        assert relative_error(fp32[split], cpu[split]) < 5e-3
        assert relative_error(bf16[split], cpu[split]) < 3e-2
        assert bf16[split].dtype == np.float32


def test_jpeg_files_decoded_on_the_gpu(model, tmp_path):
    """With full-resolution chroma (4:4:4) nvjpeg and libjpeg (Pillow) differ by IDCT rounding only;
    PNGs in the same batch go through Pillow in the worker and come out identical. (4:2:0 JPEGs
    differ more at colour edges: nvjpeg upsamples their chroma by nearest neighbour, which is why
    GPU decoding is an opt-in setting, embed_decode_jpeg_on_gpu.)"""
    rng = np.random.default_rng(0)
    ids = []
    for i in range(12):
        image = np.repeat(np.repeat(rng.integers(0, 256, (8, 6, 3), dtype=np.uint8), 8, 0), 8, 1)
        suffix = "png" if i % 5 == 0 else "jpg"
        Image.fromarray(image).save(tmp_path / f"{i}.{suffix}", quality=95, subsampling=0)
        ids.append(f"{i}.{suffix}")
    reader = FileListSplit(tmp_path, ids, [0] * len(ids))
    preprocess = Preprocess.from_preprocessing(preprocessing_of(model))
    batches = SplitBatches([reader], preprocess, resize_on_device=False, decode_on_device=True)
    item = batches[BatchKey(0, 0, len(ids))]
    pixels = images_module._pixels_on_device(item, batches, preprocess, torch.device("cuda")).cpu().int()
    expected = torch.stack([torch.from_numpy(np.array(preprocess.geometric(reader.load(i)))).permute(2, 0, 1)
                            for i in range(len(ids))]).int()
    difference = (pixels - expected).abs()
    png = [i for i, name in enumerate(ids) if name.endswith("png")]
    stats = f"largest difference {int(difference.max())}, mean {float(difference.float().mean()):.3f} grey levels"
    assert difference.max() <= 6 and difference.float().mean() < 1.0, stats
    assert difference[png].max() == 0

    readers = {"test": reader}
    pil = embed(model, readers, tmp_path / "pil.h5", "cuda", batch_size=8, precision="fp32")
    nvjpeg = embed(model, readers, tmp_path / "nvjpeg.h5", "cuda", batch_size=8, precision="fp32",
                   decode_on_device=True)
    assert relative_error(nvjpeg["test"][png], pil["test"][png]) < 1e-5
    assert relative_error(nvjpeg["test"], pil["test"]) < 5e-2  # a misplaced row alone is well above 10%


def test_a_real_cuda_out_of_memory_halves_the_batch(model, tmp_path, caplog):
    readers = {"test": ArraySplit(images(4096, (48, 48, 3)), [f"t/{i}" for i in range(4096)], [0] * 4096)}
    plain = embed(model, readers, tmp_path / "plain.h5", "cuda", batch_size=256, precision="fp32")
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    budget = torch.cuda.memory_allocated() + 96 * 2**20  # the batch of 4096 needs far more
    torch.cuda.set_per_process_memory_fraction(budget / total)
    try:
        with caplog.at_level(logging.WARNING):
            small = embed(model, readers, tmp_path / "small.h5", "cuda", batch_size=4096, precision="fp32")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert "out of memory at 4096 images per forward pass" in caplog.text
    assert relative_error(small["test"], plain["test"]) < 1e-3


def test_killed_gpu_job_resumes_with_the_same_rows(model, tmp_path, monkeypatch):
    """The GPU loop copies features back asynchronously (one batch in flight): a kill must not lose
    or misplace rows of the batches whose copies were still pending."""
    monkeypatch.setattr(images_module, "CHUNK_ROWS", 16)
    readers = {"train": ArraySplit(images(100), [f"a/{i}" for i in range(100)], [0] * 100)}
    whole = embed(model, readers, tmp_path / "whole.h5", "cuda", batch_size=8, precision="fp32")
    real_call = ImageEncoder.__call__
    kill_encoder_after(monkeypatch, 7 * 8)  # killed at the eighth batch
    out = tmp_path / "out.h5"
    with pytest.raises(Killed):
        embed(model, readers, out, "cuda", batch_size=8, precision="fp32")
    assert not out.exists() and PartialStore(out, "d", ["train"]).done("train") == 48
    monkeypatch.setattr(ImageEncoder, "__call__", real_call)
    resumed = embed(model, readers, out, "cuda", batch_size=8, precision="fp32")
    np.testing.assert_allclose(resumed["train"], whole["train"], rtol=0, atol=1e-6)


def test_torch_compile_on_the_gpu(model, tmp_path):
    readers = {"test": ArraySplit(images(70), [f"a/{i}" for i in range(70)], [0] * 70)}
    eager = embed(model, readers, tmp_path / "eager.h5", "cuda", batch_size=32, precision="bf16")
    compiled = embed(model, readers, tmp_path / "compiled.h5", "cuda", batch_size=32, precision="bf16", compile=True)
    assert relative_error(compiled["test"], eager["test"]) < 2e-2


def test_linear_probe_on_the_gpu_picks_the_cpu_c(tmp_path):
    rng = np.random.default_rng(0)
    means = rng.normal(size=(10, 32))

    def split(n):
        y = rng.integers(0, 10, n)
        return (means[y] * 0.5 + rng.normal(size=(n, 32))).astype(np.float32), y

    (xtr, ytr), (xva, yva), (xte, yte) = split(2000), split(500), split(1000)
    cpu = fit_linear_probe(xtr, ytr, xva, yva, xte, yte, device="cpu")
    gpu = fit_linear_probe(xtr, ytr, xva, yva, xte, yte, device="cuda")
    assert gpu.best_c == pytest.approx(cpu.best_c, rel=1e-6)
    assert abs(float((gpu.test_pred == yte).mean()) - float((cpu.test_pred == yte).mean())) <= 0.003


def test_finetune_on_the_gpu_matches_the_cpu(tmp_path, monkeypatch):
    """The fine-tuning loop's GPU path (pinned batches copied ahead on a side stream, fused AdamW,
    figures read a step late) trains the same model as the CPU path, up to float rounding."""
    from _finetune_fixtures import make_base_model, make_identity_folders
    from safetensors.torch import load_file

    from overspec.data.train_sets import open_train_set
    from overspec.models.checkpoint import load_model
    from overspec.train.batches import BatchPlan, LoaderBatches, build_transform
    from overspec.train.ddp import DistContext
    from overspec.train.finetune import finetune
    from overspec.train.recipe import FinetuneConfig

    config = FinetuneConfig.from_dict({
        "task": "fr", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, "head": {"type": "cosface", "s": 16, "m": 0.2},
        "batch_size": 8, "epochs": None, "max_steps": 4, "lr_encoder": 1e-3, "lr_head": 1e-2,
        "augment": {"hflip": True, "rand_augment": True}})
    base = make_base_model(tmp_path / "base.safetensors")
    data = open_train_set(make_identity_folders(tmp_path / "ids", identities=4, per_identity=6))
    plans = [BatchPlan(data, build_transform(preprocessing_of(load_model(base).model), config), config, 4, 3,
                       DistContext(0, 1, 0, torch.device(device), owns_group=False)) for device in ("cpu", "cuda")]
    on_cpu, on_gpu = (list(LoaderBatches(2)(plan)) for plan in plans)
    assert len(on_gpu) == 4 and all(images.is_cuda and labels.is_cuda for images, labels in on_gpu)
    for (a, la), (b, lb) in zip(on_cpu, on_gpu):
        assert torch.equal(a, b.cpu()) and torch.equal(la, lb.cpu())
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # the patch embedding: fp32 as on the CPU
    for device in ("cpu", "cuda"):
        finetune(config, base, data, tmp_path / f"{device}.safetensors", tmp_path / f"{device}.csv", device=device,
                 num_workers=2, progress=False)
    losses = [[float(row.split(",")[2]) for row in (tmp_path / f"{device}.csv").read_text().splitlines()[1:]]
              for device in ("cpu", "cuda")]
    assert len(losses[1]) == 4 and losses[1] == pytest.approx(losses[0], rel=1e-4)
    cpu, gpu = load_file(str(tmp_path / "cpu.safetensors")), load_file(str(tmp_path / "cuda.safetensors"))
    assert cpu.keys() == gpu.keys()
    for key in cpu:  # Adam's first steps are nearly sign(gradient): rounding moves a weight by up to ~lr
        assert torch.allclose(cpu[key], gpu[key], atol=1e-3, rtol=1e-3), key
