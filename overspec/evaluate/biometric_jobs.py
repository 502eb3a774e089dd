"""The biometric evaluation jobs: one model file against one task's benchmarks.

Each function loads the model once, embeds the benchmark's images through the model card's own
preprocessing (`image_embedder`), scores them with the protocol modules
(`face_verification`, `ijb`, `attack_detection`) and writes each result JSON with its per-sample
scores beside it (`biometric_io`). Results name the model and the benchmark, so the report can
read them without knowing paths.

Cross-task scoring (MAD, PAD): a model adapted for the task (adaptation == task) whose file holds
a binary head scores with that head, softmax P(bona fide), as the published MADation / FoundPAD
code does. Every other model -- the baseline, the FR model, the other attack task's model, or a
task model imported without its head -- is scored by a logistic-regression probe on its frozen,
L2-normalised embeddings, fit on the task's training list. The result records which was used
and why. FR benchmarks use the cosine similarity of embeddings for every model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from overspec.data.biometric.alignment import ARCFACE_TEMPLATE_112, template_for_size
from overspec.data.biometric.attack_lists import read_mad_list, read_pad_list
from overspec.data.biometric.benchmarks import ARCFACE_TEMPLATE, WORLD_TEMPLATE
from overspec.data.biometric.ijb import read_ijb_meta
from overspec.data.biometric.pair_bin import read_pair_set
from overspec.embed.images import eval_transform
from overspec.embed.loader import Preprocess
from overspec.errors import UserError
from overspec.evaluate.attack_detection import embed_paths, evaluate_mad, evaluate_pad, probe_score_lists
from overspec.evaluate.biometric_io import write_biometric_result
from overspec.evaluate.face_verification import EmbedFn, evaluate_pair_set
from overspec.evaluate.ijb import evaluate_ijb
from overspec.models.checkpoint import LoadedModel, load_model
from overspec.models.heads import attack_scores, head_from_card
from overspec.provenance import read_json

log = logging.getLogger(__name__)

PROBE_DESCRIPTION = ("logistic regression (class-balanced, standardised L2-normalised frozen embeddings) "
                     "fit on the task's training list")


def image_embedder(model: torch.nn.Module, preprocessing: Mapping[str, Any], device: str = "cpu") -> EmbedFn:
    """uint8 RGB batch [B,H,W,3] -> raw image embeddings [B,D] (float32), through the card's preprocessing.

    The transform is open_clip's evaluation transform, as for the general datasets; a card that
    says the model was trained on BGR input (MADation's cv2 loading) gets its channels swapped.
    """
    size = getattr(getattr(model, "visual", None), "image_size", None)
    if size is not None and list(size if isinstance(size, (tuple, list)) else (size, size)) != list(preprocessing["size"]):
        raise UserError(f"The model card's preprocessing resizes to {list(preprocessing['size'])}, but the architecture "
                        f"takes {size} images: re-import the model with preprocessing that matches its architecture.")
    transform = eval_transform(dict(preprocessing))
    bgr = str(preprocessing.get("colour_order", "RGB")).upper() == "BGR"

    @torch.inference_mode()
    def embed(batch: np.ndarray) -> np.ndarray:
        images = batch[..., ::-1] if bgr else batch
        tensors = torch.stack([transform(Image.fromarray(np.ascontiguousarray(image))) for image in images])
        return model.encode_image(tensors.to(device)).float().cpu().numpy()

    return embed


def _open(model_path: str | Path, device: str) -> tuple[LoadedModel, EmbedFn]:
    loaded = load_model(model_path, device=device)
    return loaded, image_embedder(loaded.model, loaded.card["preprocessing"], device)


def _write(out_json: str | Path, result: dict[str, Any], scores: pd.DataFrame, model: str, benchmark: str,
           provenance: Mapping[str, Any] | None, compress: bool = False) -> dict[str, Any]:
    record = {**result, "model": model, "benchmark": benchmark}
    return write_biometric_result(out_json, record, scores, provenance, compress=compress)


# ---------------------------------------------------------------------------------------------
# Face recognition


def eval_pair_sets(model: str, model_path: str | Path, pair_sets: Mapping[str, str | Path],
                   out_jsons: Mapping[str, str | Path], *, device: str = "cpu", batch_size: int = 256,
                   provenance: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """10-fold verification accuracy (flip-sum fusion) of `model` on each insightface .bin pair set."""
    _, embed = _open(model_path, device)
    written = {}
    for name in sorted(pair_sets):
        pairs = read_pair_set(pair_sets[name], name=name)
        result, scores = evaluate_pair_set(pairs, embed, batch_size=batch_size)
        written[name] = _write(out_jsons[name], result, scores, model, name, provenance)
        log.info("%s on %s: accuracy %.4f over %d pairs", model, name, result["accuracy"], result["n_pairs"])
    return written


def ijb_template(template: str, aligned_size: int | None, world_json: str | Path | None) -> tuple[np.ndarray, int]:
    """(five-point template, crop side): ArcFace's scaled to `aligned_size`, or the toy world's own."""
    if template == ARCFACE_TEMPLATE:
        size = int(aligned_size or 112)
        return template_for_size(ARCFACE_TEMPLATE_112, 112, size), size
    if template == WORLD_TEMPLATE:
        if world_json is None:
            raise ValueError("the toy world's IJB template needs its world.json")
        world = read_json(world_json)["ijb"]
        return np.asarray(world["template"], dtype=np.float64), int(world["template_size"])
    raise ValueError(f"unknown IJB template {template!r}")


def eval_ijb_set(model: str, model_path: str | Path, benchmark: str, root: str | Path, out_json: str | Path, *,
                 template: str = ARCFACE_TEMPLATE, aligned_size: int | None = 112, world_json: str | Path | None = None,
                 device: str = "cpu", batch_size: int = 256,
                 provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """IJB 1:1 verification (TAR at FAR 1e-6..1e-1) of `model` on one IJB folder; scores gzipped."""
    meta = read_ijb_meta(root)
    points, size = ijb_template(template, aligned_size, world_json)
    _, embed = _open(model_path, device)
    result, scores = evaluate_ijb(meta, embed, batch_size=batch_size, output_size=size, template=points)
    tar = {p["far"]: p["tar"] for p in result["tar_at_far"]}
    log.info("%s on %s: TAR@FAR=1e-4 %.4f over %d pairs", model, benchmark, tar.get(1e-4, float("nan")), result["n_pairs"])
    return _write(out_json, result, scores, model, benchmark, provenance, compress=True)


# ---------------------------------------------------------------------------------------------
# Attack detection (MAD, PAD)


def scoring_method(loaded: LoadedModel, task: str, adaptation: str) -> dict[str, Any]:
    """How a model is scored on `task`: its own binary head, or the probe (with the reason)."""
    head = loaded.card.get("head") or {}
    if adaptation == task and head.get("type") == "binary" and "weight" in loaded.head:
        return {"method": "head", "head": head, "score": "softmax P(bona fide) of the model's binary head"}
    if adaptation == task:
        reason = f"the {task} model file has no binary head"
    elif adaptation == "none":
        reason = "baseline model (no task head)"
    else:
        reason = f"model adapted for {adaptation}, not {task}"
    return {"method": "probe", "probe": PROBE_DESCRIPTION, "reason": reason}


def _head_scores(loaded: LoadedModel, lists: Mapping[str, pd.DataFrame], embed: EmbedFn, batch_size: int,
                 fit: Callable, num_workers: int) -> dict[str, pd.DataFrame]:
    head = head_from_card(loaded.card["head"], loaded.head)
    features = embed_paths(list(lists.values()), embed, batch_size, fit, num_workers)
    with torch.inference_mode():
        def score(frame: pd.DataFrame) -> np.ndarray:
            batch = torch.from_numpy(np.stack([features[p] for p in frame["path"]]))
            return attack_scores(head, batch).double().numpy()

        return {name: frame.assign(score=score(frame)) for name, frame in lists.items()}


def eval_attack_detection(model: str, model_path: str | Path, task: str, adaptation: str, benchmark: str,
                          train_list: str | Path, tests: Mapping[str, str | Path], out_json: str | Path, *,
                          dev_list: str | Path | None = None, device: str = "cpu", batch_size: int = 256,
                          probe_c: float = 1.0, num_workers: int = 0,
                          provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """MAD (`tests`: one list per morphing method) or PAD (`tests`: {benchmark: test list}, plus dev) results.

    Images may have any size: each is resized and cropped by the model card's preprocessing as it is
    loaded (in `num_workers` loader workers), then batched.
    """
    if task not in ("mad", "pad"):
        raise ValueError(f"attack detection task must be mad or pad, not {task!r}")
    read = read_mad_list if task == "mad" else read_pad_list
    lists = {name: read(path) for name, path in sorted(tests.items())}
    if task == "pad":
        if list(lists) != [benchmark]:
            raise ValueError(f"a PAD job scores one test list, named {benchmark!r}")
        lists = {"test": lists[benchmark]}
        if dev_list is not None:
            lists["dev"] = read_pad_list(dev_list)
    loaded, embed = _open(model_path, device)
    fit = Preprocess.from_preprocessing(dict(loaded.card["preprocessing"])).geometric
    scoring = scoring_method(loaded, task, adaptation)
    if scoring["method"] == "head":
        scored = _head_scores(loaded, lists, embed, batch_size, fit, num_workers)
    else:
        train = read(train_list)
        scored = probe_score_lists(train, lists, embed, batch_size=batch_size, c=probe_c, fit=fit,
                                   num_workers=num_workers)
        scoring.update(c=probe_c, n_train=len(train), n_train_bona_fide=int(train["label"].sum()))
    if task == "mad":
        result, scores = evaluate_mad(scored, benchmark)
        summary = f"mean D-EER {result['mean_over_subsets']['d_eer']:.4f}"
    else:
        result, scores = evaluate_pad(scored["test"], scored.get("dev"), benchmark)
        summary = f"AUC {result['auc']:.4f}, HTER {result.get('hter', float('nan')):.4f}"
    if scoring["method"] == "probe" and not np.isfinite(scores["score"]).all():
        raise UserError(f"The {task} probe gave non-finite scores for {model}; check the training list.")
    result["scoring"] = scoring
    log.info("%s on %s (%s, %s): %s", model, benchmark, task, scoring["method"], summary)
    return _write(out_json, result, scores, model, benchmark, provenance)
