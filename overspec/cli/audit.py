"""`overspec audit`: write the study's audit manifest, verify it, or reproduce a sample of its jobs.

    overspec audit                     write results/audit/manifest.json (digest + lineage of every artifact)
    overspec audit --verify            re-hash everything and check the chain; exit 1 on any finding
    overspec audit --reproduce 3       re-execute 3 sampled jobs in scratch folders and compare; exit 1 on a mismatch
"""

from __future__ import annotations

import argparse
from pathlib import Path

from overspec.audit.manifest import (
    MANIFEST_PATH,
    build_manifest,
    load_manifest,
    verify,
    write_manifest,
)
from overspec.audit.compare import FEATURE_ATOL, FEATURE_RTOL, METRIC_ATOL


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="overspec audit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default=".", help="folder holding the study's results/ (default: the current folder)")
    p.add_argument("--manifest", help=f"manifest to write or verify against (default: STUDY/{MANIFEST_PATH})")
    p.add_argument("--verify", action="store_true", help="check every artifact and its lineage against the manifest")
    p.add_argument("--reproduce", type=int, metavar="N", help="re-execute a sample of N jobs and compare their outputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the job sample (default 0)")
    p.add_argument("--rules", nargs="+", metavar="RULE", help="sample only jobs of these rules")
    p.add_argument("--snakefile", default="Snakefile", help="the study's Snakefile (default: ./Snakefile)")
    p.add_argument("--configfile", help="the study's config, if it was run with --configfile")
    p.add_argument("--cores", type=int, default=1, help="cores for each re-executed job (default 1)")
    p.add_argument("--scratch", help="folder for re-executed jobs (kept); default: a temporary folder, removed")
    p.add_argument("--keep-scratch", action="store_true", help="keep the temporary scratch folder")
    return p


def _print_manifest_summary(manifest: dict, where: str) -> None:
    rules = ", ".join(f"{rule} {n}" for rule, n in manifest["rules"].items())
    print(f"audit: {len(manifest['artifacts'])} artifacts ({rules}); wrote {where}")
    for rel in manifest["unrecorded"]:
        print(f"warning: {rel} carries no provenance record (no lineage can be checked for it)")
    for line in manifest["warnings"]:
        print(f"warning: {line}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    study = Path(args.study)
    status = 0
    if not args.verify and args.reproduce is None:
        out = Path(args.manifest) if args.manifest else study / MANIFEST_PATH
        _print_manifest_summary(write_manifest(study, out), str(out))
        return 0
    manifest = load_manifest(study, args.manifest) if args.verify or args.manifest else None
    if args.verify:
        result = verify(study, manifest)
        for line in result.lines():
            print(line)
        print(f"verify: {result.checked} artifacts checked, {len(result.findings)} flagged")
        status |= 0 if result.ok else 1
    if args.reproduce is not None:
        from overspec.audit.reproduce import reproduce

        print(f"reproduce: exact bytes for CPU steps; otherwise features within atol {FEATURE_ATOL:g} + rtol "
              f"{FEATURE_RTOL:g}, metrics within {METRIC_ATOL:g} (0.1 point)")
        runs = reproduce(study, manifest if manifest is not None else build_manifest(study), args.reproduce,
                         seed=args.seed, snakefile=args.snakefile, configfile=args.configfile, cores=args.cores,
                         rules=args.rules, scratch=args.scratch, keep=args.keep_scratch)
        for run in runs:
            print(f"job {run.job.rule} -> {', '.join(run.job.outputs)}")
            if run.error:
                print(f"FAIL could not re-execute: {run.error}")
            for comparison in run.comparisons:
                print(f"  {comparison.line()}")
        failed = sum(not run.ok for run in runs)
        print(f"reproduce: {len(runs)} jobs re-executed, {failed} failed")
        status |= 1 if failed else 0
    return status
