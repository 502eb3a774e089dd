"""MAD and PAD file lists (CSV with a header row), and the PAD cross-dataset protocols as data.

* **MAD** (``path,label[,method]``; ``image_path`` is accepted for ``path``, as MADation's
  ``generate_csv.py`` writes it): an SMDD-style training list, and test lists either one per
  morphing method (each with *all* bona fides plus that method's morphs, MADation style) or one
  list with a ``method`` column that `mad_subsets` splits the same way.
* **PAD** (``path,label,attack_type,video_id``): one row per frame; frames of a video share its
  ``video_id``. Without a ``video_id`` column the id is the file name before its last ``_``
  (FoundPAD's rule).

Labels: ``bonafide`` (also ``bona_fide``, ``bona fide``, ``real``, ``live``, ``1``) or ``attack``
(also ``morph``, ``spoof``, ``fake``, ``print``, ``replay``, ``0``); stored as 1 = bona fide,
0 = attack. Relative paths are relative to the CSV's folder. The sample id is the path as written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from overspec.data.readers import open_image_rgb
from overspec.errors import UserError
from overspec.provenance import atomic_path

BONA_FIDE_LABELS = frozenset({"bonafide", "bona_fide", "bona-fide", "bona fide", "real", "live", "1"})
ATTACK_LABELS = frozenset({"attack", "morph", "spoof", "fake", "print", "replay", "0"})
_PATH_COLUMNS = ("path", "image_path")


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise UserError(f"The {what} list {path} does not exist; check the path in the config.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not a readable CSV {what} list ({err}); fix or regenerate it.") from None
    table.columns = [c.strip().lower() for c in table.columns]
    path_column = next((c for c in _PATH_COLUMNS if c in table.columns), None)
    if path_column is None or "label" not in table.columns:
        raise UserError(f"{path} needs a header with 'path' (or 'image_path') and 'label' columns; add it.")
    if table.empty:
        raise UserError(f"The {what} list {path} has no rows; regenerate it.")
    return table.rename(columns={path_column: "path"})


def _labels(values: pd.Series, path: Path) -> np.ndarray:
    text = values.str.strip().str.lower()
    bona_fide, attack = text.isin(BONA_FIDE_LABELS), text.isin(ATTACK_LABELS)
    unknown = ~(bona_fide | attack)
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise UserError(
            f"{path} row {row + 2} has label {values.iloc[row]!r}; use 'bonafide' or 'attack' (or 1 / 0)."
        )
    return bona_fide.to_numpy().astype(np.int8)


def _resolve(paths: pd.Series, base: Path) -> list[str]:
    return [p if os.path.isabs(p) else str(base / p) for p in paths.str.strip()]


def _rows(path: Path, n: int) -> list[str]:
    """Where each row of a list is, for errors: '<list> row N' (N counts the header as row 1)."""
    return [f"{path} row {i + 2}" for i in range(n)]


def _check_unique(ids: pd.Series, path: Path) -> None:
    duplicated = ids.duplicated()
    if duplicated.any():
        raise UserError(
            f"{path} lists {ids[duplicated].iloc[0]!r} more than once; each sample must be scored once (remove duplicates)."
        )


def read_mad_list(path: str | os.PathLike) -> pd.DataFrame:
    """A MAD list as columns id, path (resolved), label (1 bona fide / 0 morph), method ('' for bona fide),
    origin ('<list> row N')."""
    path = Path(path)
    table = _read_csv(path, "MAD")
    labels = _labels(table["label"], path)
    method = table["method"].str.strip() if "method" in table.columns else pd.Series([""] * len(table))
    frame = pd.DataFrame(
        {"id": table["path"].str.strip(), "path": _resolve(table["path"], path.parent), "label": labels,
         "method": np.where(labels == 1, "", method.to_numpy()), "origin": _rows(path, len(table))}
    )
    _check_unique(frame["id"], path)
    return frame


def mad_subsets(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One test subset per morphing method: all bona fides plus that method's morphs (needs a method column)."""
    morphs = frame[frame["label"] == 0]
    if (morphs["method"] == "").any():
        raise UserError("A MAD test list mixes methods without a 'method' column; add it or give one list per method.")
    bona_fide = frame[frame["label"] == 1]
    return {
        method: pd.concat([bona_fide, morphs[morphs["method"] == method]], ignore_index=True)
        for method in sorted(morphs["method"].unique())
    }


def check_same_bona_fide(subsets: Mapping[str, pd.DataFrame]) -> list[str]:
    """The bona fide ids shared by every subset (sorted); a UserError if any subset differs."""
    reference_name, reference = None, None
    for name, frame in subsets.items():
        ids = sorted(frame.loc[frame["label"] == 1, "id"])
        if reference is None:
            reference_name, reference = name, ids
        elif ids != reference:
            raise UserError(
                f"MAD test subsets '{reference_name}' and '{name}' have different bona fide sets "
                f"({len(reference)} vs {len(ids)} images); every method must be tested against the same bona fides."
            )
    if not reference:
        raise UserError("The MAD test subsets contain no bona fide images; each needs the shared bona fide set.")
    return reference


def video_id_from_path(path: str) -> str:
    """FoundPAD's rule: the file name (no extension) before its last '_'."""
    stem = Path(path).stem
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def read_pad_list(path: str | os.PathLike) -> pd.DataFrame:
    """A PAD list as columns id, path (resolved), label (1/0), attack_type ('' for bona fide), video_id,
    origin ('<list> row N')."""
    path = Path(path)
    table = _read_csv(path, "PAD")
    labels = _labels(table["label"], path)
    attack_type = table["attack_type"].str.strip() if "attack_type" in table.columns else pd.Series(["attack"] * len(table))
    attack_type = np.where(labels == 1, "", attack_type.replace("", "attack").to_numpy())
    if "video_id" in table.columns:
        videos = table["video_id"].str.strip()
    else:
        videos = table["path"].map(video_id_from_path)
    frame = pd.DataFrame(
        {"id": table["path"].str.strip(), "path": _resolve(table["path"], path.parent), "label": labels,
         "attack_type": attack_type, "video_id": videos.to_numpy(), "origin": _rows(path, len(table))}
    )
    _check_unique(frame["id"], path)
    mixed = frame.groupby("video_id")["label"].nunique()
    if (mixed > 1).any():
        raise UserError(f"{path}: video {mixed[mixed > 1].index[0]!r} has both bona fide and attack frames; fix its video ids.")
    return frame


def write_sample_list(path: str | os.PathLike, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    """Write a list CSV (labels as 'bonafide'/'attack'), atomically."""
    out = frame.copy()
    out["label"] = np.where(out["label"].astype(int) == 1, "bonafide", "attack")
    with atomic_path(path) as tmp:
        out[list(columns)].to_csv(tmp, index=False, lineterminator="\n")


class ListedImages:
    """The images that list rows name, decoded one at a time as RGB (a reader for the embedding loader,
    `overspec.embed.loader.fitted_batches`); a bad file is reported with its list and row."""

    def __init__(self, paths: Sequence[str], origins: Sequence[str]) -> None:
        if len(paths) != len(origins):
            raise ValueError(f"{len(paths)} paths for {len(origins)} origins")
        self.paths, self.origins = list(paths), list(origins)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> Image.Image:
        return open_image_rgb(Path(self.paths[index]), self.origins[index], "replace the file or remove its row")


def listed_images(frames: Sequence[pd.DataFrame]) -> ListedImages:
    """Each distinct path of the lists once, sorted (shared bona fides are embedded once), with the first
    row that names it; every file must exist."""
    first: dict[str, str] = {}
    for frame in frames:
        origins = frame["origin"] if "origin" in frame.columns else frame["path"]
        for path, origin in zip(frame["path"], origins):
            first.setdefault(path, origin)
    paths = sorted(first)
    missing = next((p for p in paths if not os.path.isfile(p)), None)  # found now, not hours into embedding
    if missing is not None:
        raise UserError(f"{first[missing]} names {missing}, which does not exist: fix the path (relative paths "
                        f"start at the list's folder) or remove the row.")
    return ListedImages(paths, [first[p] for p in paths])


# ---------------------------------------------------------------------------------------------
# PAD cross-dataset protocols (SSDG, CVPR 2020; FoundPAD, WACV-W 2025)

PAD_DATASETS = {"O": "oulu_npu", "C": "casia_fasd", "I": "replay_attack", "M": "msu_mfsd", "CA": "celeba_spoof"}
# Each dataset's development split (used for the source threshold); None where there is none.
PAD_DEV_SPLITS = {"oulu_npu": "dev", "replay_attack": "devel", "casia_fasd": None, "msu_mfsd": None, "celeba_spoof": None}


@dataclass(frozen=True)
class PadProtocol:
    """Train on `sources` (their train lists), threshold on their dev lists, test on `target`'s `target_splits`."""

    name: str
    sources: tuple[str, ...]
    target: str
    target_splits: tuple[str, ...]


def _leave_one_out(code: str, target: str) -> PadProtocol:
    sources = tuple(PAD_DATASETS[c] for c in "OCIM" if c != code)
    splits = ("train", "test")  # SSDG: the whole target except its dev split
    return PadProtocol(name=f"{''.join(c for c in 'OCIM' if c != code)}-{code}", sources=sources, target=target,
                       target_splits=splits)


PAD_PROTOCOLS = {
    p.name: p
    for p in (
        _leave_one_out("M", "msu_mfsd"),
        _leave_one_out("C", "casia_fasd"),
        _leave_one_out("I", "replay_attack"),
        _leave_one_out("O", "oulu_npu"),
        PadProtocol(name="OCM-CA", sources=("oulu_npu", "casia_fasd", "msu_mfsd"), target="celeba_spoof",
                    target_splits=("test",)),
    )
}
