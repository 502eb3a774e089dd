"""A tqdm progress bar in images/s that reads well both live and in a job log.

On a terminal it is the usual redrawn bar. In a log file (a workflow job's stderr is its log) a
redrawn bar would be one endless line of carriage returns, so each update becomes its own line,
at most every `log_interval_s`; when the job's real stderr is a terminal (Snakemake run by hand),
those lines are shown there too.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


class _LineWriter:
    """A file for tqdm that turns each redraw into one plain line on every target."""

    def __init__(self, targets: list[TextIO]) -> None:
        self.targets = targets

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            for target in self.targets:
                target.write(line + "\n")

    def flush(self) -> None:
        for target in self.targets:
            target.flush()


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(total: int, initial: int, description: str, log_interval_s: float = 30.0) -> tqdm:
    """A bar over `total` images, starting at `initial` (the images a resumed job already has)."""
    if _is_terminal(sys.stderr):
        return tqdm(total=total, initial=initial, desc=description, unit="img", smoothing=0.1, dynamic_ncols=True)
    targets = [sys.stderr]
    if sys.__stderr__ is not sys.stderr and _is_terminal(sys.__stderr__):
        targets.append(sys.__stderr__)
    return tqdm(total=total, initial=initial, desc=description, unit="img", smoothing=0.1, ascii=True, ncols=100,
                mininterval=log_interval_s, maxinterval=max(log_interval_s, 60.0), file=_LineWriter(targets))
