"""Benchmark: overspec's image-embedding path against a CLIP_benchmark-style reference loop.

Both embed the same synthetic dataset (random uint8 images of the given shape, held in memory like
CIFAR, or written as PNG files like an image folder) with the same open_clip model (random
weights), in the same process, one after the other:

- reference: what CLIP_benchmark does (clip_benchmark.md section 5): a torch Dataset applying
  open_clip's evaluation transform per sample (PIL -> Resize(bicubic) -> CenterCrop -> ToTensor
  -> Normalize), DataLoader(batch 64, 4 workers, no pinned memory), fp16 autocast on GPU and fp32
  on CPU, features collected in RAM;
- overspec: `overspec.embed.images.embed_splits`, the code behind the embed_images rule, writing
  the real HDF5 file (partial chunks, final assembly) as a job does.

The dataset is cut into `--slices` parts and the paths take turns on each (ABBA order), so a
change in the load of a shared machine affects both alike; each path's images/s is its images
over its total time, one-time costs (worker start, torch.compile) included. It prints images/s
for both and their ratio, the largest feature difference, the peak memory
(RSS) of an overspec embedding job at each of `--memory-sizes` images (each in a fresh process,
from PNG files so the dataset itself is not in memory), and with `--gpu-ceiling` the model's
forward-only throughput on preloaded tensors (the end-to-end ceiling).

    python benchmarks/embed_throughput.py                       # ViT-B-16, 2,000 32x32 images, CPU
    python benchmarks/embed_throughput.py --quick               # tiny smoke run (seconds)
    python benchmarks/embed_throughput.py --device cuda --arch ViT-L-14 --n-images 20000 --gpu-ceiling

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from overspec.data.readers import ArraySplit, FileListSplit, SplitReader, SubsetSplit
from overspec.embed.images import embed_splits
from overspec.embed.loader import eval_transform, normalize_batch
from overspec.embed.store import read_embeddings
from overspec.models.factory import create_model, preprocessing_of

MEMORY_ARCH_CONFIG = {  # a 224-pixel ViT small enough that 20,000 images take a minute on 2 cores
    "embed_dim": 64,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 1, "layers": 1},
}
MEMORY_ARCH = "bench-vit-tiny-224"


# ---------------------------------------------------------------------------------------------
# Data


def synthetic_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, size, size, 3]: smooth random blobs plus noise (compresses like photos, not like noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(coarse, -(-size // 4), axis=1), -(-size // 4), axis=2)[:, :size, :size]
    noise = rng.integers(-20, 21, images.shape)
    return np.clip(images.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def make_reader(source: str, n: int, size: int, folder: Path) -> SplitReader:
    """The dataset as overspec's readers see it: an in-memory array or one PNG file per image."""
    labels = [i % 10 for i in range(n)]
    if source == "memory":
        return ArraySplit(synthetic_images(n, size), [f"test/{i:06d}" for i in range(n)], labels)
    ids = []
    for start in range(0, n, 1000):  # generated in blocks: the files, not the array, hold the dataset
        for offset, image in enumerate(synthetic_images(min(1000, n - start), size, seed=start)):
            sample_id = f"test/{(start + offset) % 10}/{start + offset:06d}.png"
            (folder / sample_id).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / sample_id)
            ids.append(sample_id)
    return FileListSplit(folder, ids, labels)


def make_model(arch: str) -> torch.nn.Module:
    if arch == MEMORY_ARCH:
        import open_clip

        config = Path(tempfile.mkdtemp()) / f"{MEMORY_ARCH}.json"
        config.write_text(json.dumps(MEMORY_ARCH_CONFIG))
        open_clip.add_model_config(config)
    return create_model(arch, seed=0).eval()


# ---------------------------------------------------------------------------------------------
# The two paths


class _PerSampleDataset(Dataset):
    def __init__(self, reader: SplitReader, transform) -> None:
        self.reader, self.transform, self.labels = reader, transform, reader.labels()

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int):
        return self.transform(self.reader.load(index)), self.labels[index]


def reference_features(model, reader: SplitReader, device: str, batch_size: int = 64, workers: int = 4) -> np.ndarray:
    """CLIP_benchmark's loop: per-sample transforms in 4 workers, batch 64, fp16 autocast on GPU."""
    transform = eval_transform(preprocessing_of(model))
    loader = DataLoader(_PerSampleDataset(reader, transform), batch_size=batch_size, shuffle=False,
                        num_workers=workers)
    amp = torch.autocast("cuda", dtype=torch.float16) if device.startswith("cuda") else contextlib.nullcontext()
    features = []
    with torch.no_grad(), amp:
        for images, _ in loader:
            features.append(model.encode_image(images.to(device)).float().cpu())
    return torch.cat(features).numpy()


def overspec_features(model, reader: SplitReader, device: str, out: Path, batch_size: int, workers: int,
                      precision: str, compile: bool) -> np.ndarray:
    embed_splits(model, preprocessing_of(model), {"test": reader}, out, digest="benchmark", device=device,
                 batch_size=batch_size, num_workers=workers, precision=precision, compile=compile,
                 description="overspec")
    return read_embeddings(out, "test")[0]


def timed(fn, *args, **kwargs):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def forward_ceiling(model, device: str, batch_size: int, precision: str, seconds: float = 20.0) -> float:
    """images/s of encode_image alone on normalised batches already on the device."""
    size = preprocessing_of(model)["size"]
    pixels = torch.randint(0, 256, (batch_size, 3, *size), dtype=torch.uint8, device=device)
    prep = preprocessing_of(model)
    images = normalize_batch(pixels, prep["mean"], prep["std"])
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    amp = torch.autocast(torch.device(device).type, dtype=dtype) if dtype else contextlib.nullcontext()
    with torch.inference_mode(), amp:
        model.encode_image(images)  # warm-up (cuDNN/cuBLAS autotuning, allocator)
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or done == 0:
            model.encode_image(images)
            done += batch_size
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    return done / elapsed


# ---------------------------------------------------------------------------------------------
# Memory: one fresh process per size


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Start the peak (VmHWM) afresh, so it measures the embedding and not the set-up before it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_child(args) -> None:
    """Runs in a subprocess: embed `--memory-child` images from PNG files, print peak RSS as JSON.

    The peak is taken from a reset made after the model is loaded and the files are written, so it
    is the embedding job's own (with the model resident), not the set-up's."""
    model = make_model(args.memory_arch)
    with tempfile.TemporaryDirectory() as tmp:
        reader = make_reader("files", args.memory_child, args.image_size, Path(tmp))
        baseline = rss_mb("VmRSS")
        reset = reset_peak_rss()
        embed_splits(model, preprocessing_of(model), {"test": reader}, Path(tmp) / "out.h5", digest="memory",
                     device=args.device, batch_size=args.batch_size, num_workers=args.workers,
                     precision=args.precision, description=f"memory {args.memory_child}")
    print(json.dumps({"n": args.memory_child, "baseline_rss_mb": round(baseline, 1),
                      "peak_rss_mb": round(rss_mb("VmHWM"), 1), "peak_reset": reset,
                      "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}))


def measure_memory(args, n: int) -> dict:
    command = [sys.executable, __file__, "--memory-child", str(n), "--memory-arch", args.memory_arch,
               "--image-size", str(args.image_size), "--device", args.device, "--batch-size", str(args.batch_size),
               "--workers", str(args.workers), "--precision", args.precision]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="ViT-B-16", help="open_clip architecture (random weights)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=32, help="side of the square dataset images")
    parser.add_argument("--source", choices=("memory", "files"), default="memory")
    parser.add_argument("--batch-size", type=int, default=256, help="overspec's batch (the config's embed_batch_size)")
    parser.add_argument("--workers", type=int, default=max(0, (os.cpu_count() or 1) - 1))
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--compile", action="store_true", help="overspec path through torch.compile")
    parser.add_argument("--also-uncompiled", action="store_true", help="with --compile, also time overspec without it")
    parser.add_argument("--slices", type=int, default=4,
                        help="run the paths in turns on this many parts of the dataset (fair under changing load)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--memory-sizes", default=None,
                        help="image counts for the peak-memory runs (default 2000,20000; '' skips them)")
    parser.add_argument("--memory-arch", default=MEMORY_ARCH)
    parser.add_argument("--gpu-ceiling", action="store_true", help="also time the forward pass alone")
    parser.add_argument("--ceiling-seconds", type=float, default=20.0, help="how long to time the forward pass")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny model, 64 images, no memory runs")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.arch, args.n_images, args.slices, args.ceiling_seconds = MEMORY_ARCH, 64, 2, 2.0
    if args.memory_sizes is None:
        args.memory_sizes = "" if args.quick else "2000,20000"
    return args


def time_paths(args, model) -> tuple[dict[str, float], dict[str, np.ndarray], list[float]]:
    """Seconds and features per path, the paths taking turns on each slice of the dataset."""
    paths = {"overspec": args.compile}
    if args.also_uncompiled and args.compile:
        paths["overspec_uncompiled"] = False
    if not args.skip_reference:
        paths["reference"] = False
    seconds = {name: 0.0 for name in paths}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in paths}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        reader = make_reader(args.source, args.n_images, args.image_size, Path(tmp))
        bounds = np.linspace(0, args.n_images, args.slices + 1).astype(int)
        for s, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:])):
            part = reader if args.slices == 1 else SubsetSplit(reader, list(range(start, stop)))
            order = list(paths) if s % 2 == 0 else list(reversed(paths))  # ABBA: load trends hit all alike
            for name in order:
                loads.append(round(os.getloadavg()[0], 2))
                if name == "reference":
                    out, took = timed(reference_features, model, part, args.device)
                else:
                    out, took = timed(overspec_features, model, part, args.device, Path(tmp) / f"{name}{s}.h5",
                                      args.batch_size, args.workers, args.precision, paths[name])
                seconds[name] += took
                parts[name].append(out)
                print(f"slice {s + 1}/{args.slices} {name:<20} {(stop - start) / took:8.3f} images/s", flush=True)
    return seconds, {name: np.concatenate(p) for name, p in parts.items()}, loads


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.memory_child is not None:
        memory_child(args)
        return {}
    model = make_model(args.arch).to(args.device)
    print(f"{args.arch} on {args.device} ({torch.get_num_threads()} threads), {args.n_images} {args.source} images "
          f"{args.image_size}x{args.image_size} -> {preprocessing_of(model)['size']}; load average "
          f"{os.getloadavg()[0]:.1f} (on a shared CPU absolute numbers vary; the paths take turns)", flush=True)
    result: dict = {"arch": args.arch, "device": args.device, "n_images": args.n_images, "image_size": args.image_size,
                    "source": args.source, "batch_size": args.batch_size, "compile": args.compile,
                    "slices": args.slices, "torch_threads": torch.get_num_threads()}
    seconds, features, result["load_averages"] = time_paths(args, model)
    for name, took in seconds.items():
        result[f"{name}_img_s"] = round(args.n_images / took, 3)
        print(f"{name:<20} {args.n_images / took:8.3f} images/s over {args.n_images} images ({took:.0f} s)")
    if "reference" in seconds:
        result["ratio"] = round(seconds["reference"] / seconds["overspec"], 3)
        if "overspec_uncompiled" in seconds:
            result["ratio_uncompiled"] = round(seconds["reference"] / seconds["overspec_uncompiled"], 3)
        diff = float(np.abs(features["overspec"] - features["reference"]).max())
        result["max_abs_feature_diff"] = diff
        result["feature_scale"] = float(np.abs(features["reference"]).max())
        result["features_within_1e-4"] = diff <= 1e-4
        print(f"ratio overspec/reference: {result['ratio']:.2f}x; largest feature difference {diff:.2e} "
              f"(features up to {result['feature_scale']:.2f})")
    if args.gpu_ceiling:
        from overspec.embed.encoder import resolve_precision

        precision = resolve_precision(args.precision, torch.device(args.device))
        ceiling = forward_ceiling(model, args.device, args.batch_size, precision, args.ceiling_seconds)
        result["ceiling_img_s"] = round(ceiling, 3)
        result["fraction_of_ceiling"] = round(result["overspec_img_s"] / ceiling, 3)
        print(f"forward-only ceiling ({precision}): {ceiling:.2f} images/s; overspec reaches "
              f"{result['fraction_of_ceiling']:.0%} of it")
    sizes = [int(s) for s in args.memory_sizes.split(",") if s.strip()]
    if sizes:
        memory = {str(n): measure_memory(args, n) for n in sizes}
        peaks = [m["peak_rss_mb"] for m in memory.values()]
        result["memory"] = memory
        result["memory_arch"] = args.memory_arch
        result["peak_rss_growth"] = round(max(peaks) / min(peaks) - 1, 3)
        for n, m in memory.items():
            print(f"peak RSS while embedding {n:>6} PNG files: {m['peak_rss_mb']:7.1f} MB (resident before: "
                  f"{m['baseline_rss_mb']:.1f} MB; largest worker {m['worker_peak_rss_mb']:.1f} MB)")
        print(f"peak RSS grows {result['peak_rss_growth']:.1%} from {sizes[0]} to {sizes[-1]} images")
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
