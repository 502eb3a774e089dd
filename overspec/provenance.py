"""Digests, atomic writes and provenance records.

Everything here is deterministic: no clocks, no absolute paths in hashed content, so the same work
gives the same bytes and the same digests on any machine.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import platform
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

PACKAGE_ROOT = Path(__file__).resolve().parent
TRACKED_PACKAGES = ("torch", "open_clip_torch", "numpy", "scikit-learn", "h5py", "safetensors", "pandas")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder (a Hugging Face checkpoint, a PEFT adapter): over its files'
    relative names and digests, sorted, so the same files give the same digest wherever they lie."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{item.relative_to(path).as_posix()}\0{sha256_file(item)}\n".encode())
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only if the block succeeds.

    A killed job leaves at most a `.tmp` file that no reader or rule mistakes for the output.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(dumps_json(obj))


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------------------------------------
# Code digests: a rule reruns when its script or any overspec module it imports changes content.


def _overspec_imports(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.split(".")[0] == "overspec")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "overspec":
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.add("." * node.level + (node.module or ""))
            names.update("." * node.level + (f"{node.module}." if node.module else "") + a.name for a in node.names)
    return names


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=1024)
def _imports_of(path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """A module's overspec imports, parsed once per version of the file (every rule's code digest
    walks the same modules when Snakemake parses the workflow)."""
    del mtime_ns, size  # part of the cache key only
    return frozenset(_overspec_imports(path.read_text()))


def _module_file(name: str, importer: Path | None) -> Path | None:
    if name.startswith("."):
        if importer is None:
            return None
        level = len(name) - len(name.lstrip("."))
        base = importer.parent
        for _ in range(level - 1):
            base = base.parent
        parts = [p for p in name.lstrip(".").split(".") if p]
    else:
        base = PACKAGE_ROOT
        parts = name.split(".")[1:]
    target = base.joinpath(*parts)
    for candidate in (target.with_suffix(".py"), target / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_module_files(script: str | os.PathLike) -> list[Path]:
    """The script plus every overspec module it imports, transitively (package inits included)."""
    seen: dict[Path, None] = {}
    stack = [Path(script).resolve()]
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        seen[path] = None
        if path.is_relative_to(PACKAGE_ROOT):
            # importing overspec.a.b executes overspec/__init__.py and overspec/a/__init__.py too
            for parent in path.relative_to(PACKAGE_ROOT).parents:
                init = PACKAGE_ROOT / parent / "__init__.py"
                if init.is_file() and init not in seen:
                    stack.append(init)
        for name in _imports_of(path, *_stamp(path)):
            found = _module_file(name, path if path.is_relative_to(PACKAGE_ROOT) else None)
            if found is not None:
                stack.append(found.resolve())
    return sorted(seen)


def code_digest(script: str | os.PathLike) -> str:
    """sha256 over the script and the overspec modules it imports (names relative, bytes exact)."""
    script = Path(script).resolve()
    # Names, not absolute paths, and in name order: the digest must not depend on where the
    # workflow or the package lives (editable or regular install, a copied workflow).
    named = {f"{script.parent.name}/{script.name}": script}
    for path in imported_module_files(script):
        if path != script:
            named[str(path.relative_to(PACKAGE_ROOT.parent))] = path
    digest = hashlib.sha256()
    for name in sorted(named):
        digest.update(name.encode() + b"\0" + named[name].read_bytes() + b"\0")
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Provenance records


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _flat_inputs(inputs: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Named inputs with list values (a Snakemake input function's files) as `name[i]` entries."""
    flat = []
    for name, value in inputs.items():
        if isinstance(value, (list, tuple)):
            flat += [(f"{name}[{i}]", p) for i, p in enumerate(value)]
        else:
            flat.append((name, value))
    return flat


def provenance(
    rule: str,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    params: Mapping[str, Any] | None = None,
    code: str | None = None,
    seed: int | None = None,
    device: str = "cpu",
    known_digests: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A provenance block: what produced an artifact, with the sha256 of every input file.

    Input paths are recorded as given (relative to the workflow directory), never absolute; a list
    of paths under one name is recorded as `name[0]`, `name[1]`, ...
    `known_digests` maps input names to digests already computed (model files: their digest file),
    so multi-GB inputs are not hashed again by every consumer.
    """
    known = dict(known_digests or {})
    return {
        "rule": rule,
        "inputs": {
            name: {"path": str(p), "sha256": known.get(name) or sha256_path(p)}
            for name, p in sorted(_flat_inputs(inputs or {}))
        },
        "params": dict(params or {}),
        "code": code,
        "seed": seed,
        "device": device,
        "versions": package_versions(),
    }


def read_digest(path: str | os.PathLike) -> str:
    """The sha256 stored in a digest file (`model.sha256`)."""
    return Path(path).read_text().split()[0]


# ---------------------------------------------------------------------------------------------
# Sidecars: the provenance of artifacts that cannot carry attributes (CSV, Markdown, digest files)

SIDECAR_SUFFIX = ".prov.json"


def sidecar_path(artifact: str | os.PathLike) -> Path:
    """Where the provenance sidecar of `artifact` lives: `<artifact>.prov.json` beside it."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SIDECAR_SUFFIX)


def write_sidecar(artifact: str | os.PathLike, block: Mapping[str, Any]) -> Path:
    """Write `<artifact>.prov.json`: the provenance block plus the artifact's own sha256.

    Call it after the artifact is complete; the recorded digest lets an audit check the pair.
    """
    path = sidecar_path(artifact)
    write_json(path, {"sha256": sha256_file(artifact), "provenance": dict(block)})
    return path
