"""Fine-tuning throughput per device: overspec's training loop against two references.

For each fine-tuned model of a study config (configs/paper.yaml: FR with LoRA r16 and the CosFace
head over MS1MV2's 85,742 identities, the binary-head MAD and PAD recipes, on ViT-B/16 and
ViT-L/14, random weights), with the recipe read from the config and one device's share of it
(global batch / the recipe's GPU count, DataLoader workers = `workers_per_process(threads, gpus)`):

  ceiling      the same student's forward + loss + backward + AdamW step on a batch already on the
               device, nothing else (no clipping, metrics, logging, host syncs);
  device loop  `overspec.train.finetune.finetune` with `DeviceBatches`: the real loop, its data
               path replaced by that batch kept on the device;
  loop         the real loop and data path: an insightface RecordIO `.rec`/`.idx` written here
               (112x112 JPEG faces, MS1MV2's format), decoded, resized and augmented (RandAugment
               as the recipe says) in the recipe's number of workers, pinned, copied as uint8 and
               normalised on the device.

It also times the ceiling's parts (forward, backward, optimizer step) and the data path's stages per
image in one process (read, decode, each transform), which say how many worker cores a device
needs. Images/s count one device's images, in wall time; each figure also has the main process's
CPU time per step (on a shared CPU the steadier measure; on a GPU the host's share of a step). The
first `--warmup` steps of each are not timed. A case that runs out of GPU memory is reported as such.

  python benchmarks/finetune_throughput.py --device cuda             # the measurement (gpu_check.sh)
  python benchmarks/finetune_throughput.py --quick                   # CPU smoke: toy-clip-s, 1,000 ids
Readable lines, then one JSON object on the last line; `--save FILE` also writes that object, with
the command, device and versions, to FILE.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from overspec.config import finetune_recipe, load_yaml, recipe_resources
from overspec.data.toy import faces
from overspec.data.train_sets import RecordIOSet, write_insightface_recordio
from overspec.models.checkpoint import load_model, save_model
from overspec.models.factory import create_model, preprocessing_of
from overspec.provenance import write_json
from overspec.train.batches import BatchPlan, DeviceBatches, LoaderBatches, build_transform, to_model_input
from overspec.train.ddp import DistContext
from overspec.train.finetune import autocast_for, build_student, finetune, make_optimizer
from overspec.train.launch import workers_per_process
from overspec.train.recipe import FinetuneConfig, plan_steps

MS1MV2_IDENTITIES = 85_742
QUICK = {"arch": "toy-clip-s", "identities": 1000, "batch_size": 32, "workers": 1, "warmup": 2, "steps": 8}


# ---------------------------------------------------------------------------------------------
# Inputs: the cases of a config, a base model file, a RecordIO training set


def cases_of(config: dict[str, Any], models: list[str] | None) -> list[dict[str, Any]]:
    """(model, arch, recipe mapping, GPUs, threads) of every fine-tuned model (or the named ones) of a config."""
    tuned = [name for name, m in config["models"].items() if m.get("recipe")]
    unknown = sorted(set(models or []) - set(tuned))
    if unknown:
        raise SystemExit(f"--models {unknown} are not fine-tuned models of the config; choose from {tuned}.")
    out = []
    for name in models or tuned:
        model = config["models"][name]
        resources = recipe_resources(config, name)
        out.append({"model": name, "arch": config["backbones"][model["backbone"]]["arch"],
                    "recipe_name": model["recipe"], "recipe": finetune_recipe(config, name),
                    "gpus": resources["gpu"], "threads": resources["threads"]})
    return out


def base_model_file(arch: str, folder: Path) -> Path:
    """A randomly initialised model of `arch` saved as overspec's model file (what `finetune` reads)."""
    path = folder / f"{arch}.safetensors"
    if not path.exists():
        model = create_model(arch, seed=0)
        save_model(path, model, {"architecture": {"open_clip_model": arch}, "preprocessing": preprocessing_of(model),
                                 "name": f"{arch}-random"})
    return path


def face_jpegs(count: int, size: int, seed: int = 0) -> list[bytes]:
    """`count` procedural face photos as JPEG (quality 95, as insightface's im2rec), `size` pixels square."""
    rng = np.random.default_rng(seed)
    pixels = faces.render_faces(faces.sample_identities(count, rng), rng, size)
    out = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=95)
        out.append(buffer.getvalue())
    return out


def recordio_set(path: Path, classes: int, images: int, distinct: int, size: int) -> RecordIOSet:
    """A `.rec`/`.idx` in insightface's layout with `classes` identities over max(images, classes)
    records (every identity has one); the payloads cycle through `distinct` encoded faces."""
    if not path.exists():
        jpegs = face_jpegs(distinct, size)
        n = max(images, classes)
        write_insightface_recordio(path, [(i % classes, jpegs[i % distinct]) for i in range(n)])
    return RecordIOSet(path)


# ---------------------------------------------------------------------------------------------
# Timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _now() -> np.ndarray:
    """(wall, this process's CPU) seconds. On a shared CPU the CPU time is the steadier measure of
    compute; on a GPU the wall time is the measure and the CPU time is the host's share of a step."""
    return np.array([time.perf_counter(), time.process_time()])


def _per_step(seconds: np.ndarray, steps: int, batch_size: int) -> dict[str, float]:
    wall, cpu = seconds / steps
    return {"images_per_s": batch_size / wall, "ms_per_step": 1e3 * wall, "host_cpu_ms_per_step": 1e3 * cpu}


class TimedBatches:
    """A batch source wrapper: when the loop asks for each batch, and how long it waited for it.

    The device is synchronised only where the timed window opens (after `warmup` steps) and closes
    (the request after the last step), so the loop runs as it would (it reads each step's figures
    one step late, which keeps the host at most a step ahead of the device)."""

    def __init__(self, source, device: torch.device, warmup: int) -> None:
        self.source, self.device, self.warmup = source, device, warmup
        self.asked: list[np.ndarray] = []
        self.waits: list[float] = []

    def __call__(self, plan: BatchPlan):
        self.asked, self.waits = [], []
        return self._batches(iter(self.source(plan)))

    def _batches(self, batches):
        while True:
            if len(self.asked) == self.warmup:
                _sync(self.device)
            self.asked.append(_now())
            try:
                batch = next(batches)
            except StopIteration:
                _sync(self.device)
                self.asked[-1] = _now()
                return
            self.waits.append(time.perf_counter() - self.asked[-1][0])
            yield batch

    def figures(self, batch_size: int) -> dict[str, float]:
        steps = len(self.asked) - 1 - self.warmup
        window = self.asked[-1] - self.asked[self.warmup]
        wait = sum(self.waits[self.warmup:])
        return {**_per_step(window, steps, batch_size),
                "data_wait_ms_per_step": 1e3 * wait / steps, "data_wait_share": wait / window[0]}


def ceiling(model: torch.nn.Module, config: FinetuneConfig, classes: int, images: torch.Tensor, labels: torch.Tensor,
            device: torch.device, warmup: int, steps: int) -> dict[str, float]:
    """Forward + loss + backward + AdamW step of the recipe's student of `model` on on-device tensors,
    then the same steps again with a device sync between the parts to split the time (wall and CPU)."""
    torch.manual_seed(config.seed)
    student, encoder_params = build_student(model, config, classes, device)
    optimizer = make_optimizer(config, encoder_params, student.head, device)

    def forward():
        with autocast_for(config, device):
            _, logits = student(images, labels)
        return student.head.loss(logits.float(), labels)

    def backward(loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()

    for _ in range(warmup):
        backward(forward())
        optimizer.step()
    _sync(device)
    started = _now()
    for _ in range(steps):
        backward(forward())
        optimizer.step()
    _sync(device)
    out = _per_step(_now() - started, steps, len(labels))
    parts = {"forward": np.zeros(2), "backward": np.zeros(2), "optimizer": np.zeros(2)}
    split_steps = max(2, steps // 2)
    for _ in range(split_steps):
        marks = [_now()]
        loss = forward()
        _sync(device)
        marks.append(_now())
        backward(loss)
        _sync(device)
        marks.append(_now())
        optimizer.step()
        _sync(device)
        marks.append(_now())
        for name, a, b in zip(parts, marks, marks[1:]):
            parts[name] += b - a
    for name, (wall, cpu) in parts.items():
        out[f"{name}_ms"], out[f"{name}_cpu_ms"] = 1e3 * wall / split_steps, 1e3 * cpu / split_steps
    return out


def data_path_per_image(train_set: RecordIOSet, transform, count: int) -> dict[str, float]:
    """CPU milliseconds per image of each stage of one worker's work (read, decode, every transform),
    in this process on one thread, as a DataLoader worker runs (CPU time: steady on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # DataLoader workers run with one torch thread
    stages: dict[str, float] = {}
    try:
        for index in range(count):
            t = time.process_time()
            payload = train_set.read_bytes(index)
            stages["read"] = stages.get("read", 0.0) + time.process_time() - t
            t = time.process_time()
            value = Image.open(io.BytesIO(payload)).convert("RGB")
            stages["decode"] = stages.get("decode", 0.0) + time.process_time() - t
            for stage in transform.transforms:
                name = getattr(stage, "__name__", type(stage).__name__)
                t = time.process_time()
                value = stage(value)
                stages[name] = stages.get(name, 0.0) + time.process_time() - t
    finally:
        torch.set_num_threads(threads)
    out = {name: 1e3 * seconds / count for name, seconds in stages.items()}
    out["total"] = sum(out.values())
    return out


# ---------------------------------------------------------------------------------------------
# One case


def run_case(case: dict[str, Any], args, folder: Path, device: torch.device) -> dict[str, Any]:
    recipe = dict(case["recipe"])
    binary = recipe.get("head", {}).get("type") == "binary"
    classes = 2 if binary else args.identities
    batch = args.batch_size or recipe.get("batch_size", FinetuneConfig.batch_size) // case["gpus"]
    workers = args.workers if args.workers is not None else workers_per_process(case["threads"], case["gpus"])
    steps = args.warmup + args.steps
    recipe.update(batch_size=batch, epochs=None, max_steps=steps)
    if args.precision:
        recipe["precision"] = args.precision
    config = FinetuneConfig.from_dict(recipe)
    arch = args.arch or case["arch"]
    base = base_model_file(arch, folder)
    train_set = recordio_set(folder / f"faces_{classes}.rec", classes, args.images, args.distinct, args.source_size)
    loaded = load_model(base)
    preprocessing = loaded.card["preprocessing"]
    transform = build_transform(preprocessing, config)
    plan = BatchPlan(train_set, transform, config, steps, plan_steps(len(train_set), config)[1],
                     DistContext(0, 1, 0, device, owns_group=False))
    images, labels = next(iter(DeviceBatches()(plan)))

    result = {"model": case["model"], "recipe": case["recipe_name"], "arch": arch, "task": config.task,
              "method": config.method, "lora_r": config.lora.r if config.method == "lora" else None,
              "head": config.head.type, "classes": classes, "batch_per_device": batch, "workers": workers,
              "precision": config.precision if device.type == "cuda" else "fp32",
              "image_size": preprocessing["size"], "source_size": args.source_size,
              "rand_augment": config.augment.rand_augment, "records": len(train_set),
              "warmup": args.warmup, "steps": args.steps}
    result["ceiling"] = ceiling(loaded.model, config, classes, to_model_input(images, preprocessing), labels, device,
                                args.warmup, args.steps)
    del images, labels, loaded
    for name, source in (("device_loop", DeviceBatches()), ("loop", LoaderBatches(workers))):
        timed = TimedBatches(source, device, args.warmup)
        finetune(config, base, train_set, folder / "out.safetensors", folder / "log.csv", device=str(device),
                 progress=False, batches=timed)
        result[name] = timed.figures(batch)
    result["data_path_ms_per_image"] = data_path_per_image(train_set, transform, args.data_images)
    top = result["ceiling"]["images_per_s"]
    result["device_loop_vs_ceiling"] = result["device_loop"]["images_per_s"] / top
    result["loop_vs_ceiling"] = result["loop"]["images_per_s"] / top
    result["data_path_share"] = 1 - result["loop"]["images_per_s"] / result["device_loop"]["images_per_s"]
    # images/s one worker core can prepare, and the workers that would keep up with the ceiling
    per_worker = 1e3 / result["data_path_ms_per_image"]["total"]
    result["images_per_s_per_worker"] = per_worker
    result["workers_for_ceiling"] = int(np.ceil(top / per_worker))
    return result


def describe(r: dict[str, Any]) -> list[str]:
    c, d, lp, dp = r["ceiling"], r["device_loop"], r["loop"], r["data_path_ms_per_image"]
    stages = ", ".join(f"{k} {v:.2f}" for k, v in dp.items() if k != "total")

    def rate(name: str, f: dict[str, float]) -> str:
        return (f"  {name:11s} {f['images_per_s']:9.1f} img/s  {f['ms_per_step']:8.1f} ms/step "
                f"(host CPU {f['host_cpu_ms_per_step']:.1f} ms)")
    return [
        f"{r['model']} ({r['recipe']}: {r['arch']}, {r['method']} r{r['lora_r']}, {r['head']} x {r['classes']}, "
        f"batch {r['batch_per_device']}/device, {r['workers']} workers, {r['precision']}, {r['image_size'][0]} px)",
        rate("ceiling", c) + f"  forward {c['forward_ms']:.1f}, backward {c['backward_ms']:.1f}, "
        f"optimizer {c['optimizer_ms']:.1f} ms (CPU {c['forward_cpu_ms']:.1f}, {c['backward_cpu_ms']:.1f}, "
        f"{c['optimizer_cpu_ms']:.1f})",
        rate("device loop", d) + f"  {r['device_loop_vs_ceiling']:.1%} of ceiling",
        rate("loop", lp) + f"  {r['loop_vs_ceiling']:.1%} of ceiling, waiting for data {lp['data_wait_share']:.1%} "
        f"of the time ({lp['data_wait_ms_per_step']:.1f} ms/step)",
        f"  data path   {dp['total']:.2f} CPU ms/image on one core ({stages}): {r['images_per_s_per_worker']:.0f} img/s "
        f"per worker, {r['workers_for_ceiling']} workers to feed the ceiling",
    ]


# ---------------------------------------------------------------------------------------------


def environment(device: torch.device, argv: list[str]) -> dict[str, Any]:
    import open_clip
    import PIL
    import torchvision

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"command": "python benchmarks/finetune_throughput.py " + shlex.join(argv),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": device.type, "device_name": name, "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "torchvision": torchvision.__version__, "open_clip": open_clip.__version__,
                         "Pillow": PIL.__version__, "cuda": torch.version.cuda}}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/paper.yaml", help="study config whose fine-tuned models are measured")
    parser.add_argument("--models", nargs="*", help="fine-tuned models of the config (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true",
                        help=f"CPU smoke size: {QUICK} unless given; the FR recipe's models only")
    parser.add_argument("--arch", help="architecture instead of each model's backbone (random weights)")
    parser.add_argument("--identities", type=int, default=MS1MV2_IDENTITIES, help="CosFace classes (MS1MV2's)")
    parser.add_argument("--batch-size", type=int, help="per device (default: the recipe's batch / its GPUs)")
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: the recipe's threads per GPU - 1)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="instead of the recipe's")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each of the three")
    parser.add_argument("--images", type=int, default=4096, help="records in the .rec (at least one per identity)")
    parser.add_argument("--distinct", type=int, default=256, help="distinct JPEG faces the records cycle through")
    parser.add_argument("--source-size", type=int, default=112, help="stored face size (MS1MV2: 112)")
    parser.add_argument("--data-images", type=int, default=64, help="images for the per-stage data-path timing")
    parser.add_argument("--threads", type=int, help="torch threads of the main process")
    parser.add_argument("--save", type=Path, help="also write the JSON result with command, device, versions here")
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            given = any(a == f"--{key.replace('_', '-')}" for a in argv)
            if not given:
                setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = cases_of(load_yaml(args.config), args.models)
    if args.quick and not args.models:
        cases = [c for c in cases if c["recipe"]["task"] == "fr"][:1]
    result = environment(device, argv)
    print(f"{result['device_name']} ({device.type}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    result["cases"] = []
    with tempfile.TemporaryDirectory(prefix="finetune-throughput-") as folder:
        for case in cases:
            try:
                outcome = run_case(case, args, Path(folder), device)
                lines = describe(outcome)
            except torch.OutOfMemoryError as exc:  # the other cases still run; the batch is the recipe's
                outcome = {"model": case["model"], "arch": args.arch or case["arch"], "error": f"out of memory: {exc}"}
                lines = [f"{case['model']}: out of memory at this batch size ({str(exc).splitlines()[0]})"]
            result["cases"].append(outcome)
            print("\n".join(lines), flush=True)
            if args.save:  # after every case, so a run stopped by a time limit keeps what it measured
                write_json(args.save, result)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
