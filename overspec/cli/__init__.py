"""The `overspec` command: one entry point, a subcommand per module of this package (`audit`,
`datasets`, `estimate`)."""

from __future__ import annotations

import sys

from overspec.errors import UserError

COMMANDS = {
    "datasets": ("overspec.cli.datasets", "list the dataset registry and what is present under a data root"),
    "audit": ("overspec.cli.audit", "write, verify (--verify) or reproduce (--reproduce N) the study's audit manifest"),
    "estimate": ("overspec.cli.estimate", "GPU-hours and wall time of a study on N GPUs, per rule, before it runs"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print("usage: overspec <command> [options]\n\ncommands:")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:10s} {text}")
        return 0 if argv[:1] in ([], ["-h"], ["--help"]) else 2
    module_name, _ = COMMANDS[argv[0]]
    module = __import__(module_name, fromlist=["main"])
    try:
        return int(module.main(argv[1:]) or 0)
    except UserError as exc:
        print(f"overspec: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
