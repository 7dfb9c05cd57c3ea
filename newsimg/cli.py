"""The ``newsimg`` command: tools around the pipeline (the stages themselves are in stages/)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from newsimg.stage import setup_logging


def _sample(args: argparse.Namespace) -> int:
    from newsimg import sample

    counts = sample.generate(args.out, seed=args.seed)
    print(json.dumps(counts, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="newsimg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("sample", help="write the seeded offline sample data set to OUT")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_sample)

    args = parser.parse_args(argv)
    setup_logging()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
