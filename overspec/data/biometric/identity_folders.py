"""Face-recognition training data in the CASIA-WebFace folder layout: ``root/<identity>/<image>``.

Identities are the sub-folder names in sorted order (label = position); images are the image
files inside each, sorted by name. Paths are returned relative to ``root`` so lists and digests
do not depend on where the data lives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from overspec.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class IdentityFolders:
    root: str
    identities: tuple[str, ...]  # label -> folder name
    paths: tuple[str, ...]  # relative to root
    labels: np.ndarray  # [N] int64

    def absolute(self, index: int) -> Path:
        return Path(self.root) / self.paths[index]


def read_identity_folders(root: str | os.PathLike, min_images: int = 1) -> IdentityFolders:
    """Index an identity-folder tree; identities with fewer than `min_images` images are an error."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"The face-recognition training folder {root} does not exist; check the path in the config.")
    identities, paths, labels = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(f.name for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if len(images) < min_images:
            raise UserError(
                f"Identity folder {folder} has {len(images)} images, fewer than {min_images}; remove it or add images."
            )
        label = len(identities)
        identities.append(folder.name)
        paths.extend(f"{folder.name}/{name}" for name in images)
        labels.extend([label] * len(images))
    if not identities:
        raise UserError(f"{root} has no identity sub-folders; expected the CASIA-WebFace layout root/<identity>/<image>.")
    return IdentityFolders(root=str(root), identities=tuple(identities), paths=tuple(paths), labels=np.asarray(labels, dtype=np.int64))
