"""Running one workflow job: its output goes to the rule's log, and a user error ends it with one
sentence instead of a traceback. Used by every workflow script; knows nothing of Snakemake."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator

from overspec.errors import UserError


@contextlib.contextmanager
def job_log(log_path: str | Path) -> Iterator[None]:
    """Send stdout, stderr and logging to `log_path`; turn a UserError into one line and exit 1."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    terminal = sys.__stderr__
    with open(log_path, "w", buffering=1) as log:
        previous = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = log
        logging.basicConfig(stream=log, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
        try:
            yield
        except UserError as exc:
            message = f"overspec: {exc}"
            print(message, file=log)
            print(message, file=terminal)
            sys.stdout, sys.stderr = previous
            raise SystemExit(1) from None
        finally:
            sys.stdout, sys.stderr = previous
