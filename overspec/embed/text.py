"""Zero-shot classifiers from class names and prompt templates, with the model's own text encoder."""

from __future__ import annotations

import numpy as np
import torch


@torch.inference_mode()
def zeroshot_classifier(model, tokenizer, classes: list[str], templates: list[str], device: str = "cpu",
                        batch_size: int = 256) -> np.ndarray:
    """[C, D] float32 class embeddings: each prompt embedding is L2-normalised, the template ensemble
    is averaged per class, and the mean is renormalised (the OpenAI/CLIP recipe)."""
    prompts = [template.format(c=name) for name in classes for template in templates]
    features = []
    for start in range(0, len(prompts), batch_size):
        tokens = tokenizer(prompts[start:start + batch_size]).to(device)
        features.append(torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1))
    per_prompt = torch.cat(features).view(len(classes), len(templates), -1)
    return torch.nn.functional.normalize(per_prompt.mean(dim=1), dim=-1).cpu().numpy().astype(np.float32)


def embed_classnames(model_path, manifest_path, out_path, device: str = "cpu", provenance: dict | None = None) -> None:
    """Write `text/{model}/{dataset}.h5`: the classifier [C, D] plus the class names and templates used."""
    import json

    import h5py

    from overspec.models.checkpoint import load_model
    from overspec.models.factory import get_tokenizer
    from overspec.provenance import atomic_path, read_json

    loaded = load_model(model_path, device=device)
    manifest = read_json(manifest_path)
    classes, templates = manifest["classes"], manifest["templates"]
    classifier = zeroshot_classifier(loaded.model, get_tokenizer(loaded.arch), classes, templates, device)
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as out:
            out.create_dataset("classifier", data=classifier, track_times=False)
            out.create_dataset("classes", data=classes, dtype=h5py.string_dtype(), track_times=False)
            out.create_dataset("templates", data=templates, dtype=h5py.string_dtype(), track_times=False)
            out.attrs["dataset"] = manifest["dataset"]
            out.attrs["provenance"] = json.dumps(provenance or {}, sort_keys=True)
