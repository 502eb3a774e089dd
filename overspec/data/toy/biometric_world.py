"""The toy world's biometric data, written in the real formats from a seed.

``write_biometric_world(root, seed)`` creates, from disjoint sets of procedural identities
(`overspec.data.toy.faces`):

* ``fr_train/<identity>/<n>.png``: face-recognition training images (CASIA-WebFace layout);
* ``pairs/toy_pairs.bin``: an insightface ``.bin`` pair set, 10 contiguous identity-disjoint folds,
  each genuine pairs first, then impostor pairs (the LFW order);
* ``ijb/TOYIJB/``: IJB-style loose crops (``loose_crop/<k>.jpg``) and the three meta files, with
  templates of 1-3 media of 1-3 frames, 5-point landmarks of the rendered faces (plus annotation
  noise) and detector scores (a few poor detections with low scores);
* ``mad/``: an SMDD-style training list (bona fides + morphs of one method, ``landmark``) and one
  test list per morphing method, each with the same bona fides (MADation style);
* ``pad/``: frame lists with video ids and attack types (print, replay, mask): ``train`` and
  ``dev`` from one capture domain, ``test`` from another (darker light, darker
  backgrounds, more sensor noise);
* ``world.json``: the seed, the sizes and the relative path of every part.

The whole tree is written to a temporary sibling and renamed into place, so a killed job never
leaves a half-written world. Same seed -> identical bytes.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from overspec.data.biometric.attack_lists import write_sample_list
from overspec.data.biometric.ijb import write_ijb_meta
from overspec.data.biometric.pair_bin import write_pair_set
from overspec.data.toy import faces
from overspec.provenance import dumps_json

PAIR_SET_NAME = "toy_pairs"
IJB_PREFIX = "toyijb"


@dataclass(frozen=True)
class ToyBiometricSizes:
    image_size: int = 32
    fr_identities: int = 100
    fr_images_per_identity: int = 10
    pair_folds: int = 10
    pairs_per_fold: int = 60  # half genuine, half impostor
    identities_per_fold: int = 20
    ijb_identities: int = 40
    ijb_impostor_pairs: int = 600
    ijb_loose_scale: float = 1.5  # loose crop side / image_size
    mad_train_pairs: int = 400  # bona fides and morphs each
    mad_test_pairs: int = 200  # bona fides, and morphs per method
    pad_train_videos: int = 400  # per class (bona fide, attack); with 100 the toy PAD fine-tunes memorised videos
    pad_dev_videos: int = 30
    # 400: a 5-point HTER gain is found with ~80% power (bootstrap interval about +-3 points; at 100, +-6)
    pad_test_videos: int = 400
    pad_frames: int = 4


def _save_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")


def _render_all(ids: list[faces.FaceIdentity], nzs: list[faces.Nuisance], size: int) -> np.ndarray:
    return faces.render_many(ids, nzs, size)


def _write_fr_train(root: Path, ids: list[faces.FaceIdentity], rng: np.random.Generator, z: ToyBiometricSizes) -> dict:
    per = z.fr_images_per_identity
    images = faces.render_faces([i for i in ids for _ in range(per)], rng, z.image_size)
    for k in range(len(ids)):
        for n in range(per):
            _save_png(root / f"{k:07d}" / f"{n:03d}.png", images[k * per + n])
    return {"identities": len(ids), "images": len(ids) * per}


def _write_pairs(path: Path, ids: list[faces.FaceIdentity], rng: np.random.Generator, z: ToyBiometricSizes) -> dict:
    half = z.pairs_per_fold // 2
    chosen: list[faces.FaceIdentity] = []
    issame: list[bool] = []
    for fold in range(z.pair_folds):
        pool = ids[fold * z.identities_per_fold : (fold + 1) * z.identities_per_fold]
        for k in range(half):  # genuine pairs first, as in LFW's pairs.txt folds
            chosen += [pool[k % len(pool)]] * 2
            issame.append(True)
        for _ in range(half):
            a, b = rng.choice(len(pool), size=2, replace=False)
            chosen += [pool[a], pool[b]]
            issame.append(False)
    images = faces.render_faces(chosen, rng, z.image_size)
    write_pair_set(path, list(images), issame)
    return {"pairs": len(issame), "genuine": int(sum(issame)), "folds": z.pair_folds}


def _write_ijb(root: Path, ids: list[faces.FaceIdentity], rng: np.random.Generator, z: ToyBiometricSizes) -> dict:
    loose = round(z.image_size * z.ijb_loose_scale)
    template_ids = rng.choice(np.arange(1, 100_000), size=4 * len(ids), replace=False)
    media_ids = iter(rng.choice(np.arange(1, 500_000), size=40 * len(ids), replace=False))
    rows, identities, nzs = [], [], []
    templates_of: list[list[int]] = []
    next_template = iter(template_ids)
    for k, ident in enumerate(ids):
        templates_of.append([])
        for _ in range(int(rng.integers(2, 4))):
            template = int(next(next_template))
            templates_of[k].append(template)
            for _ in range(int(rng.integers(1, 4))):
                media = int(next(media_ids))
                base = faces.sample_nuisance(rng, 1.0)
                # A loose crop: the face smaller than the canonical framing and off-centre.
                base = dataclasses.replace(base, scale=base.scale * float(rng.uniform(0.6, 0.8)),
                                           tx=base.tx + float(rng.uniform(-0.15, 0.15)),
                                           ty=base.ty + float(rng.uniform(-0.1, 0.1)))
                for _ in range(int(rng.integers(1, 4))):  # video frames of one media
                    nz = _frame_nuisance(base, rng)
                    poor = rng.random() < 0.08
                    if poor:
                        nz = dataclasses.replace(nz, noise_sigma=nz.noise_sigma * 5, contrast=nz.contrast * 0.5)
                    rows.append((template, media, float(rng.uniform(0.05, 0.3) if poor else rng.uniform(0.85, 1.0))))
                    identities.append(ident)
                    nzs.append(nz)
    images = faces.render_many(identities, nzs, loose)
    names = [f"{k + 1}.jpg" for k in range(len(rows))]
    for name, image in zip(names, images):
        path = root / "loose_crop" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, format="JPEG", quality=95)
    landmarks = np.stack([faces.face_landmarks(i, nz, loose) for i, nz in zip(identities, nzs)])
    landmarks = landmarks + rng.normal(0, 0.4, landmarks.shape)  # detector jitter
    pairs, labels = [], []
    for group in templates_of:
        for a in range(len(group)):
            for b in range(a + 1, len(group)):
                pairs.append((group[a], group[b]))
                labels.append(1)
    seen, wanted = set(pairs), len(pairs) + z.ijb_impostor_pairs
    while len(pairs) < wanted:
        i, j = rng.choice(len(ids), size=2, replace=False)
        pair = (int(rng.choice(templates_of[i])), int(rng.choice(templates_of[j])))
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
            labels.append(0)
    write_ijb_meta(root, IJB_PREFIX, names, np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                   landmarks, np.array([r[2] for r in rows]), np.array(pairs), np.array(labels))
    return {"images": len(rows), "templates": int(sum(len(t) for t in templates_of)), "pairs": len(labels),
            "genuine": int(sum(labels)), "loose_crop_size": loose}


def _frame_nuisance(base: faces.Nuisance, rng: np.random.Generator) -> faces.Nuisance:
    """A neighbouring video frame: a little head motion and expression, fresh sensor noise."""
    j = rng.normal(0, 1, 5)
    return dataclasses.replace(
        base,
        tx=base.tx + 0.015 * j[0],
        ty=base.ty + 0.015 * j[1],
        rotation=base.rotation + 0.02 * j[2],
        yaw=base.yaw + 0.05 * j[3],
        smile=base.smile + 0.01 * j[4],
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _write_mad(root: Path, ids: list[faces.FaceIdentity], rng: np.random.Generator, z: ToyBiometricSizes) -> dict:
    """SMDD-style training on one morphing method; tests for every method against one bona fide set."""
    train_ids, test_ids = ids[: 2 * z.mad_train_pairs], ids[2 * z.mad_train_pairs :]

    def bona_fides(pool, count, folder):
        images = faces.render_faces(pool[:count], rng, z.image_size)
        names = [f"{folder}/{k:05d}.png" for k in range(count)]
        for name, image in zip(names, images):
            _save_png(root / name, image)
        return pd.DataFrame({"path": names, "label": 1, "method": ""})

    def morphs(pool, count, method, folder):
        names = []
        for k in range(count):
            a, b = rng.choice(len(pool), size=2, replace=False)
            name = f"{folder}/{k:05d}.png"
            _save_png(root / name, faces.morph(pool[a], pool[b], rng, z.image_size, method))
            names.append(name)
        return pd.DataFrame({"path": names, "label": 0, "method": method})

    columns = ["path", "label", "method"]
    train = pd.concat([bona_fides(train_ids, z.mad_train_pairs, "train/bonafide"),
                       morphs(train_ids, z.mad_train_pairs, "landmark", "train/morph_landmark")])
    write_sample_list(root / "train.csv", train, columns)
    test_bona_fide = bona_fides(test_ids, z.mad_test_pairs, "test/bonafide")
    tests = {}
    for method in faces.MORPH_METHODS:
        frame = pd.concat([test_bona_fide, morphs(test_ids, z.mad_test_pairs, method, f"test/morph_{method}")])
        write_sample_list(root / f"test_{method}.csv", frame, columns)
        tests[method] = f"test_{method}.csv"
    return {"train": "train.csv", "test": tests, "train_rows": len(train), "test_bona_fide": z.mad_test_pairs,
            "test_morphs_per_method": z.mad_test_pairs, "train_methods": ["landmark"]}


TARGET_DOMAIN = {"darker": 0.06, "noise_gain": 1.5, "noise_floor": 0.005}


def _domain(nz: faces.Nuisance, domain: str) -> faces.Nuisance:
    """The test capture domain: darker light, darker backgrounds, noisier sensor.

    No colour cast: a warm cast equals the print attacks' ink tint (a cool one the replays'), so it
    would turn every bona fide into an attack look-alike rather than a capture the detector never saw."""
    if domain == "source":
        return nz
    return dataclasses.replace(
        nz,
        brightness=nz.brightness - TARGET_DOMAIN["darker"],
        background=tuple(0.45 * c for c in nz.background),
        noise_sigma=nz.noise_sigma * TARGET_DOMAIN["noise_gain"] + TARGET_DOMAIN["noise_floor"],
    )


def _write_pad_split(root: Path, split: str, ids: list[faces.FaceIdentity], videos: int, domain: str,
                     rng: np.random.Generator, z: ToyBiometricSizes) -> pd.DataFrame:
    rows = []
    for k in range(2 * videos):
        attack = k % 2 == 1
        kind = faces.ATTACK_KINDS[(k // 2) % len(faces.ATTACK_KINDS)] if attack else ""
        ident = ids[(k // 2) % len(ids)]
        video_id = f"{split}{k:04d}"
        base = faces.sample_nuisance(rng, 1.0)
        attack_seed = int(rng.integers(0, 2**31 - 1))
        nzs = [_domain(_frame_nuisance(base, rng), domain) for _ in range(z.pad_frames)]
        # the scene without sensor noise; an attack instrument shows it; the camera's noise comes last
        scenes = faces.render_many([ident] * z.pad_frames, [dataclasses.replace(nz, noise_sigma=0.0) for nz in nzs],
                                   z.image_size)
        if attack:  # one attack instrument per video: the same artefact parameters in every frame
            scenes = np.stack([faces.present_attack(image, np.random.default_rng(attack_seed), kind) for image in scenes])
        for f, image in enumerate(faces.capture(scenes, nzs)):
            name = f"{split}/{video_id}_{f:02d}.png"
            _save_png(root / name, image)
            rows.append({"path": name, "label": 0 if attack else 1, "attack_type": kind, "video_id": video_id})
    frame = pd.DataFrame(rows)
    write_sample_list(root / f"{split}.csv", frame, ["path", "label", "attack_type", "video_id"])
    return frame


def _write_pad(root: Path, ids: list[faces.FaceIdentity], rng: np.random.Generator, z: ToyBiometricSizes) -> dict:
    n_train, n_dev = z.pad_train_videos, z.pad_dev_videos
    splits = {
        "train": (ids[:n_train], n_train, "source"),
        "dev": (ids[n_train : n_train + n_dev], n_dev, "source"),
        "test": (ids[n_train + n_dev :], z.pad_test_videos, "target"),
    }
    counts = {}
    for split, (pool, videos, domain) in splits.items():
        frame = _write_pad_split(root, split, pool, videos, domain, rng, z)
        counts[split] = {"list": f"{split}.csv", "videos": 2 * videos, "frames": len(frame), "domain": domain}
    return counts


def _identity_budget(z: ToyBiometricSizes) -> dict[str, int]:
    return {
        "fr": z.fr_identities,
        "pairs": z.pair_folds * z.identities_per_fold,
        "ijb": z.ijb_identities,
        "mad": 2 * z.mad_train_pairs + 2 * z.mad_test_pairs,
        "pad": z.pad_train_videos + z.pad_dev_videos + z.pad_test_videos,
    }


def write_biometric_world(root: str | os.PathLike, seed: int, sizes: ToyBiometricSizes | None = None) -> dict[str, Any]:
    """Write the toy biometric data under `root` (replaced if present); return the summary also saved as world.json."""
    z = sizes or ToyBiometricSizes()
    root = Path(root)
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    budget = _identity_budget(z)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(budget) + 1)]
    everyone = faces.sample_identities(sum(budget.values()), streams[0])
    pools, start = {}, 0
    for part, count in budget.items():  # disjoint identities per part
        pools[part], start = everyone[start : start + count], start + count
    try:
        summary = {
            "seed": seed,
            "sizes": dataclasses.asdict(z),
            "fr_train": {"path": "fr_train", **_write_fr_train(tmp / "fr_train", pools["fr"], streams[1], z)},
            "pair_set": {"path": f"pairs/{PAIR_SET_NAME}.bin", "name": PAIR_SET_NAME,
                         **_write_pairs(tmp / "pairs" / f"{PAIR_SET_NAME}.bin", pools["pairs"], streams[2], z)},
            "ijb": {"path": "ijb/TOYIJB", "prefix": IJB_PREFIX, "template_size": z.image_size,
                    "template": faces.canonical_landmarks(z.image_size).round(4).tolist(),
                    **_write_ijb(tmp / "ijb" / "TOYIJB", pools["ijb"], streams[3], z)},
            "mad": {"path": "mad", **_write_mad(tmp / "mad", pools["mad"], streams[4], z)},
            "pad": {"path": "pad", **_write_pad(tmp / "pad", pools["pad"], streams[5], z)},
        }
        (tmp / "world.json").write_text(dumps_json(summary))
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return summary
