"""IJB-B / IJB-C 1:1 verification meta files in insightface's ``IJB_release`` layout.

``<root>/meta/<prefix>_face_tid_mid.txt``: ``image_name template_id media_id``;
``<root>/meta/<prefix>_template_pair_label.txt``: ``template_id template_id label(1/0)``;
``<root>/meta/<prefix>_name_5pts_score.txt``: ``image_name x1 y1 ... x5 y5 faceness``;
images under ``<root>/loose_crop/``. All space-separated without header, parsed with typed
columns (pandas' C parser; not ``np.loadtxt``, whose silent mis-parsing of the IJB-C pair file
produced wrong published numbers, insightface PR #1349). The landmark file is matched to the
template file by image name. Counts are asserted for the real IJB-B and IJB-C (prefix ``ijbb``,
``ijbc``); other prefixes (the toy world's) only get the consistency checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from overspec.errors import UserError
from overspec.provenance import write_text


@dataclass(frozen=True)
class IJBCounts:
    images: int
    templates: int
    pairs: int
    genuine: int


# insightface IJB logs / PR #1349 and the IJB-C pair file itself (15,658,489 lines, 19,557 genuine).
KNOWN_IJB_COUNTS = {
    "ijbb": IJBCounts(images=227_630, templates=12_115, pairs=8_010_270, genuine=10_270),
    "ijbc": IJBCounts(images=469_375, templates=23_124, pairs=15_658_489, genuine=19_557),
}


@dataclass(frozen=True)
class IJBMeta:
    """One IJB 1:1 protocol: per image its template, media, landmarks and faceness; the template pairs."""

    name: str
    root: str
    image_names: np.ndarray  # [N] str
    templates: np.ndarray  # [N] int64
    medias: np.ndarray  # [N] int64
    landmarks: np.ndarray  # [N, 5, 2] float32, pixels of the loose crop
    faceness: np.ndarray  # [N] float32, detector score
    pair_templates: np.ndarray  # [P, 2] int64
    pair_labels: np.ndarray  # [P] int8, 1 = same subject

    def image_path(self, index: int) -> Path:
        return Path(self.root) / "loose_crop" / str(self.image_names[index])


def _read_table(path: Path, kinds: list[str], what: str) -> pd.DataFrame:
    """Parse a space-separated headerless file whose columns have kinds 'str', 'int' or 'float'."""
    dtypes = {i: {"str": str, "int": np.int64, "float": np.float64}[k] for i, k in enumerate(kinds)}
    try:
        table = pd.read_csv(path, sep=" ", header=None, dtype=dtypes, engine="c", na_filter=True)
    except FileNotFoundError:
        raise UserError(f"The IJB {what} file {path} does not exist; check the IJB root folder in the config.") from None
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{path} is not a valid IJB {what} file ({len(kinds)} space-separated columns expected: {message}); "
            "re-download the IJB meta files."
        ) from None
    if table.shape[1] != len(kinds):
        raise UserError(f"{path} has {table.shape[1]} columns, an IJB {what} file has {len(kinds)}; re-download it.")
    if table.isna().to_numpy().any():
        row = int(np.flatnonzero(table.isna().to_numpy().any(axis=1))[0])
        raise UserError(f"{path} line {row + 1} has a missing value; re-download the IJB meta files.")
    return table


def ijb_prefix(root: str | os.PathLike) -> str:
    """The file prefix of an IJB folder: ``ijbc`` for ``<root>/meta/ijbc_face_tid_mid.txt``."""
    found = sorted((Path(root) / "meta").glob("*_face_tid_mid.txt"))
    if len(found) != 1:
        raise UserError(
            f"{Path(root) / 'meta'} must hold exactly one *_face_tid_mid.txt file (found {len(found)}); "
            "point the config at an IJB folder such as IJB_release/IJBC."
        )
    return found[0].name[: -len("_face_tid_mid.txt")]


def read_ijb_meta(root: str | os.PathLike) -> IJBMeta:
    """Read and cross-check the three meta files of one IJB folder (e.g. ``IJB_release/IJBC``)."""
    root = Path(root)
    prefix = ijb_prefix(root)
    meta = root / "meta"
    faces = _read_table(meta / f"{prefix}_face_tid_mid.txt", ["str", "int", "int"], "template/media")
    points = _read_table(meta / f"{prefix}_name_5pts_score.txt", ["str"] + ["float"] * 11, "5-point landmark")
    pairs = _read_table(meta / f"{prefix}_template_pair_label.txt", ["int", "int", "int"], "template pair")

    names = faces[0].to_numpy(dtype=object)
    if len(set(names)) != len(names):
        raise UserError(f"{meta / f'{prefix}_face_tid_mid.txt'} lists an image twice; re-download the IJB meta files.")
    point_names = points[0].to_numpy(dtype=object)
    if not np.array_equal(point_names, names):  # insightface assumes the same order; accept any order of the same set
        if len(point_names) != len(names) or set(point_names) != set(names):
            raise UserError(
                f"{meta / f'{prefix}_name_5pts_score.txt'} and {prefix}_face_tid_mid.txt list different images; "
                "re-download the IJB meta files."
            )
        points = points.set_index(0).loc[names].reset_index()
    labels = pairs[2].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise UserError(f"{meta / f'{prefix}_template_pair_label.txt'} has labels other than 0/1; re-download it.")
    templates = faces[1].to_numpy(dtype=np.int64)
    pair_templates = pairs[[0, 1]].to_numpy(dtype=np.int64)
    missing = np.setdiff1d(np.unique(pair_templates), np.unique(templates))
    if missing.size:
        raise UserError(
            f"{meta / f'{prefix}_template_pair_label.txt'} uses {missing.size} templates (e.g. {missing[0]}) that "
            f"{prefix}_face_tid_mid.txt does not define; re-download the IJB meta files."
        )
    result = IJBMeta(
        name=prefix,
        root=str(root),
        image_names=names.astype(str),
        templates=templates,
        medias=faces[2].to_numpy(dtype=np.int64),
        landmarks=points[list(range(1, 11))].to_numpy(dtype=np.float32).reshape(-1, 5, 2),
        faceness=points[11].to_numpy(dtype=np.float32),
        pair_templates=pair_templates,
        pair_labels=labels.astype(np.int8),
    )
    _check_known_counts(result, meta)
    return result


def _check_known_counts(meta: IJBMeta, folder: Path) -> None:
    expected = KNOWN_IJB_COUNTS.get(meta.name.lower())
    if expected is None:
        return
    found = IJBCounts(
        images=int(meta.image_names.size),
        templates=int(np.unique(meta.templates).size),
        pairs=int(meta.pair_labels.size),
        genuine=int(meta.pair_labels.sum()),
    )
    if found != expected:
        raise UserError(
            f"The {meta.name} meta files in {folder} hold {found.images} images, {found.templates} templates, "
            f"{found.pairs} pairs ({found.genuine} genuine), but {meta.name} has {expected.images}, {expected.templates}, "
            f"{expected.pairs} ({expected.genuine}): they are incomplete or from another release; re-download them."
        )


def write_ijb_meta(
    root: str | os.PathLike,
    prefix: str,
    image_names: list[str],
    templates: np.ndarray,
    medias: np.ndarray,
    landmarks: np.ndarray,
    faceness: np.ndarray,
    pair_templates: np.ndarray,
    pair_labels: np.ndarray,
) -> None:
    """Write the three meta files in the real format (used by the toy world and tests)."""
    meta = Path(root) / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    write_text(meta / f"{prefix}_face_tid_mid.txt",
               "".join(f"{n} {int(t)} {int(m)}\n" for n, t, m in zip(image_names, templates, medias)))
    lines = []
    for name, points, score in zip(image_names, np.asarray(landmarks).reshape(-1, 10), faceness):
        lines.append(" ".join([name] + [f"{v:.3f}" for v in points] + [f"{float(score):.6f}"]) + "\n")
    write_text(meta / f"{prefix}_name_5pts_score.txt", "".join(lines))
    write_text(meta / f"{prefix}_template_pair_label.txt",
               "".join(f"{int(a)} {int(b)} {int(lab)}\n" for (a, b), lab in zip(pair_templates, pair_labels)))
