"""Running the real workflow on a reduced toy config from tests (CLI, as a user runs it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def snakemake(workdir: Path, *args: str, config: Path | Sequence[Path] = TINY, check: bool = True,
              timeout: int = 1200) -> subprocess.CompletedProcess:
    """`config`: one config file, or several overlaid left to right (`--configfile a.yaml b.yaml`)."""
    configs = [config] if isinstance(config, (str, Path)) else list(config)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--configfile", *map(str, configs), "--cores", "2", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def planned_jobs(workdir: Path, *args: str, config: Path | Sequence[Path] = TINY) -> dict[str, int]:
    """Jobs a dry run plans, per rule ({} when there is nothing to do)."""
    out = snakemake(workdir, "-n", "--quiet", "rules", *args, config=config)
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def executed_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs a real run executed, per rule, from its log ("rule NAME:" / "localrule NAME:" lines)."""
    counts: dict[str, int] = {}
    for name in re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):$", result.stdout + result.stderr, re.M):
        counts[name] = counts.get(name, 0) + 1
    return counts


def config_error(config: dict, schema: Path = ROOT / "schemas" / "config.schema.yaml") -> str:
    """The one sentence `check_config` stops `config` with (asserted to be one sentence)."""
    import pytest

    from overspec.config import check_config
    from overspec.errors import UserError

    with pytest.raises(UserError) as info:
        check_config(config, schema)
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message
