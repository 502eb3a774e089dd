"""The kept table of measured rates (`overspec/data/rates/rates.csv`) and the rate of any (architecture,
rule, device): measured where the table has it, else derived from another rule's rate by a stated
factor, else extrapolated from the nearest measured architecture by the ratio of forward FLOPs.
Every rate says which it is and where it comes from."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from overspec.errors import UserError

RATES_CSV = "data/rates/rates.csv"
ANY = "*"  # a row for every architecture (or for jobs that use none)
COLUMNS = ("arch", "rule", "device", "images_per_s", "startup_s", "basis", "from_rule", "factor", "source",
           "command", "date")
BASES = ("measured", "assumed", "derived")


@dataclass(frozen=True)
class Rate:
    images_per_s: float | None  # None: the job's time does not depend on a size (startup_s is all of it)
    startup_s: float
    basis: str  # measured | assumed | derived | extrapolated
    origin: str  # one line: what this rate is and where it comes from
    rows: tuple[tuple[str, str, str], ...] = ()  # the table rows (arch, rule, device) it rests on

    def seconds(self, images: int | None, gpus: int = 1) -> float:
        """A job's seconds; several GPUs (DDP) are assumed to scale linearly."""
        if images is None or self.images_per_s is None:
            return self.startup_s
        return self.startup_s + images / (self.images_per_s * max(gpus, 1))


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


@lru_cache(maxsize=4)
def load_rates(path: str | None = None) -> dict[tuple[str, str, str], dict[str, str]]:
    """(arch, rule, device) -> the table's row, checked."""
    source = resources.files("overspec") / RATES_CSV if path is None else path
    with open(source, newline="") if path is not None else source.open(newline="") as handle:
        reader = csv.DictReader(line for line in handle if not line.startswith("#"))
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise UserError(f"{source} must have the columns {','.join(COLUMNS)} (it has {reader.fieldnames}).")
        rows = {}
        for n, row in enumerate(reader, start=2):
            key = (row["arch"], row["rule"], row["device"])
            if row["basis"] not in BASES or key in rows:
                raise UserError(f"{source} row {n}: basis must be one of {', '.join(BASES)} and "
                                f"(arch, rule, device) {key} must appear once.")
            if row["basis"] == "derived" and not (row["from_rule"] and row["factor"]):
                raise UserError(f"{source} row {n}: a derived rate needs from_rule and factor.")
            rows[key] = row
    return rows


def forward_gflops(arch: str) -> float:
    """Forward GFLOPs of the image tower for one image (2 x multiply-adds): patch embedding, then per
    block the qkv/out projections (4 w^2), the MLP (2 r w^2) and attention (2 t w) per token."""
    from overspec.models.architectures import architecture_config

    try:
        vision = architecture_config(arch)["vision_cfg"]
    except KeyError:
        raise UserError(f"Architecture '{arch}' is not an open_clip or overspec architecture, so no rate can "
                        "be extrapolated to it.") from None
    width, layers, patch = vision["width"], vision["layers"], vision["patch_size"]
    tokens = (vision["image_size"] // patch) ** 2 + 1
    mlp = vision.get("mlp_ratio", 4.0)
    per_block = tokens * ((4 + 2 * mlp) * width**2 + 2 * tokens * width)
    return 2 * (layers * per_block + tokens * 3 * patch**2 * width) / 1e9


def _key(row: dict[str, str]) -> tuple[str, str, str]:
    return row["arch"], row["rule"], row["device"]


def _table_rate(row: dict[str, str]) -> Rate:
    return Rate(_number(row["images_per_s"]), _number(row["startup_s"]) or 0.0, row["basis"],
                f"{row['basis']}, table row {' '.join(_key(row))}", (_key(row),))


def rate_for(arch: str, rule: str, device: str, table: dict | None = None) -> Rate:
    """The rate of `rule` on `device` for architecture `arch` (ANY for jobs without a model)."""
    table = load_rates() if table is None else table
    row = table.get((arch, rule, device))
    if row is not None and row["basis"] != "derived":
        return _table_rate(row)
    row = row or table.get((ANY, rule, device))
    if row is not None and row["basis"] == "derived":
        base = rate_for(arch, row["from_rule"], device, table)
        factor = float(row["factor"])
        images_per_s = base.images_per_s * factor if base.images_per_s is not None else None
        startup = _number(row["startup_s"])
        return Rate(images_per_s, base.startup_s if startup is None else startup, "derived",
                    f"{row['from_rule']} x {factor:g}, where {row['from_rule']} is {base.origin}", (_key(row), *base.rows))
    if row is not None:
        return _table_rate(row)
    measured = [a for (a, r, d), found in table.items() if r == rule and d == device and a != ANY
                and found["basis"] != "derived"]
    if arch == ANY or not measured:
        raise UserError(f"overspec/{RATES_CSV} has no rate for rule {rule} on {device} (for any architecture): "
                        f"measure one (benchmarks/job_rates.py on that device) and add its row.")
    mine = forward_gflops(arch)
    nearest = min(measured, key=lambda a: (abs(math.log(forward_gflops(a) / mine)), a))
    base = _table_rate(table[(nearest, rule, device)])
    ratio = forward_gflops(nearest) / mine
    images_per_s = base.images_per_s * ratio if base.images_per_s is not None else None
    return Rate(images_per_s, base.startup_s, "extrapolated",
                f"extrapolated from {nearest} ({base.images_per_s:,.4g} images/s, {base.origin}) by the ratio of "
                f"forward FLOPs, {forward_gflops(nearest):.3g} / {mine:.3g} GFLOPs = {ratio:.3g}"
                if base.images_per_s is not None else
                f"extrapolated from {nearest} ({base.origin}): the same seconds per job", base.rows)
