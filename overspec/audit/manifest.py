"""The study's audit: which bytes exist under `results/`, which rule made each from which inputs, and
whether that chain still holds.

Every artifact records its own provenance (a JSON `provenance` key, an HDF5 `provenance`
attribute, the model card in a safetensors header, or a `<artifact>.prov.json` sidecar). The audit
reads those records, never Snakemake's internal metadata, so a copied `results/` folder can be
audited on its own. `build_manifest` folds them into one manifest; `verify` re-hashes everything and
checks that each recorded input digest still equals the current digest of that input, then marks
everything derived from a flagged artifact.
"""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overspec.errors import UserError
from overspec.provenance import (
    SIDECAR_SUFFIX,
    read_json,
    sha256_file,
    sha256_path,
    sidecar_path,
    write_json,
)

FORMAT = "overspec-audit/1"
RESULTS_DIR = "results"
MANIFEST_PATH = "results/audit/manifest.json"
# The audit's own output, and run times that no rerun reproduces.
SKIPPED_PREFIXES = ("results/audit/", "results/benchmarks/")
# Dataset contents (toy images, the toy biometric world's files) are written by the job that writes
# their dataset's manifest.json or world.json beside them, which record their digests and which every
# consumer records as its input; the audit tracks those files, not each image.
DATASET_CONTENT = re.compile(r"^results/data/[^/]+/.+/")
CARD_KEY = "overspec_card"  # = overspec.models.checkpoint.CARD_KEY (imported there with torch; tested equal)
RECORD_FIELDS = ("rule", "params", "code", "seed", "device", "versions")


# ---------------------------------------------------------------------------------------------
# Reading what each artifact says about itself


def artifact_paths(study: str | Path) -> list[str]:
    """Every artifact under `study/results`, as sorted POSIX paths relative to `study`."""
    study = Path(study)
    root = study / RESULTS_DIR
    if not root.is_dir():
        raise UserError(f"{root} does not exist: run the study first, or pass the folder that holds results/ with --study.")
    paths = []
    for path in root.rglob("*"):
        rel = path.relative_to(study).as_posix()
        if (not path.is_file() or path.name.startswith(".") or path.name.endswith(SIDECAR_SUFFIX)
                or rel.startswith(SKIPPED_PREFIXES) or DATASET_CONTENT.match(rel)):
            continue
        paths.append(rel)
    return sorted(paths)


def _embedded_block(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The provenance block stored inside the file, and where it was found."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text())
        block = data.get("provenance") if isinstance(data, dict) else None
        return block, "json"
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("provenance")
        raw = raw.decode() if isinstance(raw, bytes) else raw
        return (json.loads(raw) if raw else None), "hdf5"
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            card = json.loads((handle.metadata() or {}).get(CARD_KEY, "{}"))
        return card.get("provenance"), "safetensors"
    return None, None


def read_record(path: str | Path) -> dict[str, Any]:
    """What an artifact records about how it was made.

    Returns {"block": provenance block or None, "record": where it was found (sidecar, json, hdf5,
    safetensors) or None, "sidecar_sha256", "claimed_sha256" (the artifact digest a sidecar
    recorded), "error" (why the record could not be read)}.
    """
    path = Path(path)
    found: dict[str, Any] = {"block": None, "record": None, "sidecar_sha256": None, "claimed_sha256": None, "error": None}
    side = sidecar_path(path)
    try:
        if side.is_file():
            data = read_json(side)
            found.update(block=data.get("provenance"), record="sidecar", sidecar_sha256=sha256_file(side),
                         claimed_sha256=data.get("sha256"))
        else:
            found["block"], found["record"] = _embedded_block(path)
    except Exception as exc:  # noqa: BLE001 - a corrupt file must not stop the audit of everything else
        found.update(block=None, record=None, error=f"{type(exc).__name__}: {exc}")
    if not (isinstance(found["block"], dict) and found["block"].get("rule")):
        found.update(block=None, record=None)  # no record, or one that names no rule
    return found


def _input_path(raw: str, study: Path) -> str:
    """Recorded input paths are relative to the study folder; absolute ones inside it are made so."""
    path = Path(raw)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(study.resolve()).as_posix()
        except ValueError:
            return str(path)
    return path.as_posix()


# ---------------------------------------------------------------------------------------------
# The manifest


def artifact_entry(study: Path, rel: str) -> tuple[dict[str, Any], list[str]]:
    """One manifest entry (digest, rule, lineage, params, ...) and the warnings it raises."""
    path = study / rel
    found = read_record(path)
    digest = sha256_file(path)
    block = found["block"] or {}
    entry: dict[str, Any] = {
        "sha256": digest,
        "size": path.stat().st_size,
        "record": found["record"],
        "inputs": {name: {"path": _input_path(item["path"], study), "sha256": item["sha256"]}
                   for name, item in sorted((block.get("inputs") or {}).items())},
        **{key: block.get(key) for key in RECORD_FIELDS},
    }
    if found["sidecar_sha256"]:
        entry["sidecar_sha256"] = found["sidecar_sha256"]
    warnings = []
    if found["error"]:
        warnings.append(f"{rel}: provenance unreadable ({found['error']})")
    if found["claimed_sha256"] and found["claimed_sha256"] != digest:
        warnings.append(f"{rel}: bytes differ from the digest its sidecar recorded (modified after it was written)")
    return entry, warnings


def build_manifest(study: str | Path, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every artifact with its sha256, producing rule and lineage (input paths and digests)."""
    study = Path(study)
    artifacts, warnings = {}, []
    for rel in artifact_paths(study):
        artifacts[rel], problems = artifact_entry(study, rel)
        warnings += problems
    manifest = {
        "format": FORMAT,
        "artifacts": artifacts,
        "unrecorded": [rel for rel, entry in artifacts.items() if entry["rule"] is None],
        "rules": dict(sorted(Counter(e["rule"] for e in artifacts.values() if e["rule"]).items())),
        "warnings": warnings,
    }
    if provenance is not None:
        manifest["provenance"] = dict(provenance)
    return manifest


def write_manifest(study: str | Path, out: str | Path | None = None,
                   provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the manifest and write it (default `study/results/audit/manifest.json`)."""
    manifest = build_manifest(study, provenance)
    write_json(Path(study) / MANIFEST_PATH if out is None else out, manifest)
    return manifest


def load_manifest(study: str | Path, path: str | Path | None = None) -> dict[str, Any]:
    path = Path(study) / MANIFEST_PATH if path is None else Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist: write it first with `overspec audit` (or the audit_manifest rule).")
    try:
        manifest = read_json(path)
    except ValueError:
        raise UserError(f"{path} is not valid JSON: rewrite it with `overspec audit`.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path} is not an overspec audit manifest ({FORMAT}): rewrite it with `overspec audit`.")
    return manifest


# ---------------------------------------------------------------------------------------------
# Verification


# missing/modified: the artifact itself; stale: a recorded input digest no longer matches; derived:
# made (transitively) from a flagged artifact; record: only its provenance sidecar changed, so its
# bytes, which consumers recorded, are intact and nothing downstream is flagged for it.
KIND_ORDER = {"missing": 0, "modified": 1, "stale": 2, "derived": 3, "record": 4}


@dataclass
class Finding:
    path: str
    kind: str  # missing | modified | stale | derived | record
    reasons: list[str] = field(default_factory=list)
    propagates: bool = False  # whether what was made from it is flagged too


@dataclass
class Verification:
    checked: int
    findings: dict[str, Finding]
    unlisted: list[str]  # artifacts on disk that the manifest does not list (informational)
    notes: list[str]  # external inputs that could not be checked (informational)

    @property
    def ok(self) -> bool:
        return not self.findings

    def lines(self) -> list[str]:
        out = [f"{f.kind:9s}{f.path}  ({'; '.join(f.reasons)})"
               for f in sorted(self.findings.values(), key=lambda f: (KIND_ORDER[f.kind], f.path))]
        out += [f"note     {rel}  (not in the manifest)" for rel in self.unlisted]
        out += [f"note     {note}" for note in self.notes]
        return out


def _flag(findings: dict[str, Finding], path: str, kind: str, reason: str) -> None:
    finding = findings.setdefault(path, Finding(path, kind))
    if KIND_ORDER[kind] < KIND_ORDER[finding.kind]:
        finding.kind = kind
    finding.reasons.append(reason)
    finding.propagates |= kind != "record"


def verify(study: str | Path, manifest: Mapping[str, Any] | None = None) -> Verification:
    """Re-hash every artifact of the manifest and check the chain.

    Flags each artifact that is missing, whose bytes changed since the manifest was written, whose
    recorded input digests differ from those inputs' current digests (stale), and, transitively,
    everything derived from a flagged artifact; a changed provenance sidecar flags its artifact alone.
    """
    study = Path(study)
    manifest = load_manifest(study) if manifest is None else manifest
    artifacts: Mapping[str, Mapping[str, Any]] = manifest["artifacts"]
    findings: dict[str, Finding] = {}
    current: dict[str, str | None] = {}
    for rel, entry in artifacts.items():
        path = study / rel
        if not path.is_file():
            current[rel] = None
            _flag(findings, rel, "missing", "the file is gone")
            continue
        current[rel] = sha256_file(path)
        if current[rel] != entry["sha256"]:
            _flag(findings, rel, "modified", "its bytes changed since the manifest was written")
        side = sidecar_path(path)
        if entry.get("sidecar_sha256") and (not side.is_file() or sha256_file(side) != entry["sidecar_sha256"]):
            _flag(findings, rel, "record", f"its provenance sidecar {side.name} changed or is gone")

    external: dict[str, str | None] = {}
    notes: list[str] = []
    consumers: dict[str, list[str]] = {}
    for rel, entry in artifacts.items():
        for name, item in entry["inputs"].items():
            source = item["path"]
            if source in artifacts:
                consumers.setdefault(source, []).append(rel)
                now = current[source]
                if now is None:
                    _flag(findings, rel, "stale", f"its input {name} ({source}) is missing")
                elif now != item["sha256"]:
                    _flag(findings, rel, "stale", f"its input {name} ({source}) changed after it was made")
                continue
            if source not in external:
                candidate = Path(source) if Path(source).is_absolute() else study / source
                external[source] = sha256_path(candidate) if candidate.exists() else None
                if external[source] is None:
                    notes.append(f"cannot check {source}: an input recorded outside the study is not there")
            if external[source] is not None and external[source] != item["sha256"]:
                _flag(findings, rel, "stale", f"its input {name} ({source}) changed after it was made")

    queue = deque(sorted(rel for rel, finding in findings.items() if finding.propagates))
    while queue:
        source = queue.popleft()
        for rel in sorted(consumers.get(source, ())):
            queued = rel in findings and findings[rel].propagates
            _flag(findings, rel, "derived", f"derived from {source}")
            if not queued:
                queue.append(rel)

    listed = set(artifacts)
    unlisted = [rel for rel in artifact_paths(study) if rel not in listed]
    return Verification(checked=len(artifacts), findings=findings, unlisted=unlisted, notes=sorted(set(notes)))
