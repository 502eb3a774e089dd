"""The audit library on a small hand-made study in the real artifact formats (JSON with a
`provenance` key, HDF5 attribute, safetensors model card, sidecars): the manifest, the chain check
and the comparisons used by --reproduce. The workflow-level checks are in test_recompute.py."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from safetensors.numpy import save_file

from overspec.audit.manifest import (
    CARD_KEY,
    MANIFEST_PATH,
    build_manifest,
    load_manifest,
    verify,
    write_manifest,
)
from overspec.audit.compare import compare_files
from overspec.audit.reproduce import jobs_of, sample_jobs
from overspec.errors import UserError
from overspec.provenance import (
    provenance,
    read_digest,
    sha256_file,
    sidecar_path,
    write_json,
    write_sidecar,
    write_text,
)

CORPUS = "results/data/toy_corpus/corpus.h5"
DATA = "results/data/toy_digits/manifest.json"
MODEL = "results/models/m/model.safetensors"
DIGEST = "results/models/m/model.sha256"
LOG = "results/models/m/pretrain_log.csv"
EMB = "results/embeddings/m/toy_digits.h5"
ZS = "results/zeroshot/m/toy_digits.json"
TABLE = "results/tables/metrics.csv"


def _h5(path: Path, block: dict, features: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("test/features", data=features)
        f.attrs["provenance"] = json.dumps(block, sort_keys=True)


def make_study(root: Path) -> Path:
    """corpus -> model (+ log, digest) -> embeddings (+ dataset manifest) -> zero-shot JSON -> table.

    Run with `root` as the current folder: provenance() records input paths as given, as in a job."""
    _h5(root / CORPUS, provenance("prepare_toy_corpus", {}, {"size": 8}, "c0", 0), np.zeros((2, 2), np.float32))
    write_json(root / DATA, {"dataset": "toy_digits", "provenance": provenance("prepare_dataset", {}, {}, "c1", 0)})
    record = provenance("pretrain_toy_clip", {"corpus": CORPUS}, {"recipe": {"steps": 4}}, "c2", 0)
    (root / MODEL).parent.mkdir(parents=True)
    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(root / MODEL),
              metadata={CARD_KEY: json.dumps({"provenance": record}, sort_keys=True)})
    write_text(root / LOG, "step,loss\n0,4.1\n")
    write_sidecar(root / LOG, record)
    write_text(root / DIGEST, sha256_file(root / MODEL) + "\n")
    write_sidecar(root / DIGEST, provenance("digest_model", {"model": MODEL}, {}, "c3", None,
                                            known_digests={"model": read_digest(root / DIGEST)}))
    _h5(root / EMB, provenance("embed_images", {"model": MODEL, "digest": DIGEST, "manifest": DATA}, {}, "c4", None,
                               known_digests={"model": read_digest(root / DIGEST)}), np.eye(3, dtype=np.float32))
    write_json(root / ZS, {"top1": 0.5, "n": 10, "provenance": provenance("eval_zeroshot", {"embeddings": EMB, "manifest": DATA},
                                                                          {}, "c5", 0)})
    write_text(root / TABLE, "model,value\nm,0.5\n")
    write_sidecar(root / TABLE, provenance("aggregate_tables", {ZS: ZS}, {}, "c6", None))
    # not artifacts: run times, toy images (covered by their dataset manifest), a temporary file
    write_text(root / "results/benchmarks/embed_images/m.tsv", "s\n1.0\n")
    write_text(root / "results/data/toy_digits/images/test/0/a.png", "png")
    write_text(root / "results/tables/.gelo.csv.tmp-12", "partial")
    return root


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return make_study(tmp_path)


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


ALL = {CORPUS, DATA, MODEL, DIGEST, LOG, EMB, ZS, TABLE}


def test_manifest_lists_every_artifact_with_its_rule_and_lineage(study):
    manifest = build_manifest(study)
    assert set(manifest["artifacts"]) == ALL
    assert manifest["unrecorded"] == [] and manifest["warnings"] == []
    entry = manifest["artifacts"][EMB]
    assert entry["rule"] == "embed_images" and entry["record"] == "hdf5" and entry["sha256"] == sha256_file(study / EMB)
    assert entry["inputs"] == {"digest": {"path": DIGEST, "sha256": sha256_file(study / DIGEST)},
                               "manifest": {"path": DATA, "sha256": sha256_file(study / DATA)},
                               "model": {"path": MODEL, "sha256": sha256_file(study / MODEL)}}
    records = {rel: e["record"] for rel, e in manifest["artifacts"].items()}
    assert records == {CORPUS: "hdf5", DATA: "json", MODEL: "safetensors", DIGEST: "sidecar", LOG: "sidecar",
                       EMB: "hdf5", ZS: "json", TABLE: "sidecar"}
    assert manifest["artifacts"][MODEL]["params"] == {"recipe": {"steps": 4}}
    assert manifest["rules"] == {"aggregate_tables": 1, "digest_model": 1, "embed_images": 1, "eval_zeroshot": 1,
                                 "prepare_dataset": 1, "prepare_toy_corpus": 1, "pretrain_toy_clip": 2}


def test_manifest_bytes_are_deterministic(study, tmp_path):
    write_manifest(study)
    first = (study / MANIFEST_PATH).read_bytes()
    write_manifest(study)
    assert (study / MANIFEST_PATH).read_bytes() == first
    assert str(tmp_path) not in first.decode()  # nothing path-dependent


def test_files_without_a_record_are_listed_as_unrecorded(study):
    write_text(study / "results/tables/notes.txt", "hand-written\n")
    manifest = build_manifest(study)
    assert manifest["unrecorded"] == ["results/tables/notes.txt"]
    assert manifest["artifacts"]["results/tables/notes.txt"]["rule"] is None


def test_an_unreadable_record_is_a_warning_not_a_crash(study):
    (study / ZS).write_text("{not json")
    manifest = build_manifest(study)
    assert ZS in manifest["unrecorded"]
    assert any(line.startswith(ZS + ": provenance unreadable") for line in manifest["warnings"])


def test_bytes_that_differ_from_their_sidecar_are_warned_about(study):
    (study / TABLE).write_text("model,value\nm,0.9\n")  # edited by hand after the job wrote it
    expected = f"{TABLE}: bytes differ from the digest its sidecar recorded (modified after it was written)"
    assert build_manifest(study)["warnings"] == [expected]


def test_verify_passes_on_an_untouched_study(study):
    write_manifest(study)
    result = verify(study)
    assert result.ok and result.checked == len(ALL) and result.unlisted == [] and result.notes == []


def test_a_modified_model_flags_everything_made_from_it(study):
    write_manifest(study)
    flip(study / MODEL)
    findings = verify(study).findings
    assert {rel: f.kind for rel, f in findings.items()} == {
        MODEL: "modified", DIGEST: "stale", EMB: "stale", ZS: "derived", TABLE: "derived"}
    assert findings[EMB].reasons[0] == f"its input model ({MODEL}) changed after it was made"
    assert "derived from " + EMB in findings[ZS].reasons


def test_each_flipped_artifact_flags_itself_and_its_descendants(study):
    write_manifest(study)
    descendants = {CORPUS: {MODEL, LOG, DIGEST, EMB, ZS, TABLE}, DATA: {EMB, ZS, TABLE}, MODEL: {DIGEST, EMB, ZS, TABLE},
                   DIGEST: {EMB, ZS, TABLE}, LOG: set(), EMB: {ZS, TABLE}, ZS: {TABLE}, TABLE: set()}
    for rel, below in descendants.items():
        original = (study / rel).read_bytes()
        flip(study / rel)
        findings = verify(study).findings
        (study / rel).write_bytes(original)
        assert set(findings) == {rel} | below, rel
        assert findings[rel].kind == "modified"
    assert verify(study).ok


def test_a_missing_input_flags_its_consumers(study):
    write_manifest(study)
    (study / EMB).unlink()
    findings = verify(study).findings
    assert findings[EMB].kind == "missing"
    assert findings[ZS].kind == "stale" and findings[ZS].reasons[0] == f"its input embeddings ({EMB}) is missing"
    assert set(findings) == {EMB, ZS, TABLE}


def test_an_artifact_blessed_by_a_later_manifest_still_leaves_its_consumers_stale(study):
    flip(study / EMB)
    write_manifest(study)  # the manifest now lists the modified bytes
    findings = verify(study).findings
    assert {rel: f.kind for rel, f in findings.items()} == {ZS: "stale", TABLE: "derived"}


def test_a_changed_sidecar_flags_only_its_artifact(study):
    write_manifest(study)
    flip(sidecar_path(study / DIGEST))
    findings = verify(study).findings
    assert {rel: f.kind for rel, f in findings.items()} == {DIGEST: "record"}


def test_new_files_and_absent_external_inputs_are_notes_not_failures(study):
    block = provenance("import_model", {}, {}, "c7", None)
    block["inputs"] = {"source": {"path": "/nonexistent/ViT-B-16.safetensors", "sha256": "0" * 64}}
    write_json(study / "results/zeroshot/m/extra.json", {"provenance": block})
    write_manifest(study)
    write_text(study / "results/tables/later.csv", "a\n1\n")
    result = verify(study)
    assert result.ok
    assert result.unlisted == ["results/tables/later.csv"]
    assert result.notes == ["cannot check /nonexistent/ViT-B-16.safetensors: an input recorded outside the study is not there"]


def test_the_command_writes_verifies_and_fails_on_a_change(study, capsys):
    from overspec.cli import main

    assert main(["audit", "--study", str(study)]) == 0
    assert f"audit: {len(ALL)} artifacts" in capsys.readouterr().out
    assert main(["audit", "--study", str(study), "--verify"]) == 0
    flip(study / ZS)
    assert main(["audit", "--study", str(study), "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"modified {ZS}" in out and f"stale    {TABLE}" in out and "2 flagged" in out


def test_user_errors_are_one_sentence(tmp_path, capsys):
    from overspec.cli import main

    assert main(["audit", "--study", str(tmp_path), "--verify"]) == 1
    assert "does not exist: write it first with `overspec audit`" in capsys.readouterr().err
    with pytest.raises(UserError, match="run the study first"):
        build_manifest(tmp_path / "nowhere")
    (tmp_path / MANIFEST_PATH).parent.mkdir(parents=True)
    (tmp_path / MANIFEST_PATH).write_text("[]")
    with pytest.raises(UserError, match="not an overspec audit manifest"):
        load_manifest(tmp_path)


def test_card_key_matches_the_model_files():
    from overspec.models.checkpoint import CARD_KEY as WRITTEN

    assert CARD_KEY == WRITTEN


# ---------------------------------------------------------------------------------------------
# Jobs to reproduce and comparisons


def test_artifacts_of_one_job_are_grouped_and_sampling_is_seeded(study):
    manifest = build_manifest(study)
    jobs = jobs_of(manifest)
    assert [job.outputs for job in jobs if job.rule == "pretrain_toy_clip"] == [[MODEL, LOG]]
    assert len(jobs) == len(ALL) - 1
    assert sample_jobs(manifest, 3, seed=1) == sample_jobs(manifest, 3, seed=1)
    picked = {job.rule: job for job in sample_jobs(manifest, 5, seed=0, rules=["eval_zeroshot", "aggregate_tables"])}
    assert sorted(picked) == ["aggregate_tables", "eval_zeroshot"]
    assert picked["eval_zeroshot"].inputs == sorted([DATA, EMB]) and picked["aggregate_tables"].inputs == [ZS]
    with pytest.raises(UserError, match="no job to reproduce of the rules fit_linear_probe"):
        sample_jobs(manifest, 1, rules=["fit_linear_probe"])


def _pair(tmp_path: Path, suffix: str, write, a, b) -> tuple[Path, Path]:
    first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    write(first, a)
    write(second, b)
    return first, second


def _write_h5(path: Path, features: np.ndarray) -> None:
    _h5(path, {"rule": "embed_images", "device": "cuda"}, features)


def test_identical_files_compare_identical(study):
    result = compare_files(study / EMB, study / EMB, exact=True)
    assert result.ok and result.status == "identical"


def test_features_compare_within_atol_plus_rtol(tmp_path):
    base = np.array([[0.1, -0.2], [0.3, 0.0]], np.float32)
    shifted = base + np.float32(5e-5)  # |diff| 5e-5 <= 1e-4 + 1e-3 |b|
    close = _pair(tmp_path, "1.h5", _write_h5, base, shifted)
    result = compare_files(*close, exact=False)
    worst = np.abs(base.astype(np.float64) - shifted.astype(np.float64)).max()
    assert result.ok and result.status == "within tolerance" and result.detail == f"max |diff| {worst:.3g}"
    assert not compare_files(*close, exact=True).ok  # a CPU step must give the same bytes
    far = _pair(tmp_path, "2.h5", _write_h5, base, base + np.float32(2e-3))  # 2e-3 > 1e-4 + 1e-3 * 0.3
    result = compare_files(*far, exact=False)
    assert result.status == "differs" and result.detail.startswith("test/features: max |diff| 0.002")


def test_model_tensors_compare_within_tolerance(tmp_path):
    def write(path, w):
        save_file({"w": w}, str(path), metadata={CARD_KEY: "{}"})

    w = np.linspace(-1, 1, 6, dtype=np.float32)
    assert compare_files(*_pair(tmp_path, ".safetensors", write, w, w + np.float32(1e-5)), exact=False).ok
    assert not compare_files(*_pair(tmp_path, "2.safetensors", write, w, w * 1.01), exact=False).ok


def test_metrics_compare_within_a_tenth_of_a_point(tmp_path):
    def write(path, top1):
        write_json(path, {"top1": top1, "n": 300, "curve": [0.5, top1], "provenance": {"device": str(top1)}})

    assert compare_files(*_pair(tmp_path, ".json", write, 0.8, 0.8009), exact=False).ok
    result = compare_files(*_pair(tmp_path, "2.json", write, 0.8, 0.8021), exact=False)
    assert result.status == "differs" and result.detail == "/curve[1]: 0.8 vs 0.8021 (more than 0.001 apart)"

    def write_csv(path, value):
        path.write_text(f"model,metric,value\nm,top1,{value}\n")

    assert compare_files(*_pair(tmp_path, ".csv", write_csv, 0.8, 0.8005), exact=False).ok
    assert not compare_files(*_pair(tmp_path, "2.csv", write_csv, 0.8, 0.81), exact=False).ok

    def write_md(path, value):
        path.write_text(f"| model | top1 (%) |\n| m | {value} |\n")

    assert compare_files(*_pair(tmp_path, ".md", write_md, "80.00", "80.08"), exact=False).ok
    assert compare_files(*_pair(tmp_path, "2.md", write_md, "80.00", "80.20"), exact=False).detail == \
        "80.00 vs 80.20 (more than 0.1 apart)"


def test_other_files_must_match_exactly(tmp_path):
    def write(path, text):
        path.write_text(text)

    result = compare_files(*_pair(tmp_path, ".sha256", write, "ab\n", "ac\n"), exact=False)
    assert result.status == "differs" and result.detail == "bytes differ (compared exactly)"
    assert compare_files(tmp_path / "none.json", tmp_path / "a.sha256", exact=True).status == "missing"
