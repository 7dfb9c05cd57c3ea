"""The ``newsimg`` command: tools around the pipeline (the stages themselves are in stages/)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from newsimg.errors import NewsimgError
from newsimg.stage import setup_logging


def _sample(args: argparse.Namespace) -> int:
    from newsimg import sample

    counts = sample.generate(args.out, seed=args.seed)
    print(json.dumps(counts, indent=2))
    return 0


def _convert_longclip(args: argparse.Namespace) -> int:
    from newsimg import clip, longclip

    state = longclip.load_state_dict(args.checkpoint)
    model = longclip.convert(state, original_rounding=args.original_rounding)
    clip.save_model(model, args.out, args.dtype)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="newsimg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("sample", help="write the seeded offline sample data set to OUT")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_sample)

    p = commands.add_parser(
        "convert-longclip", help="convert a Long-CLIP .pt checkpoint into a CLIPModel folder"
    )
    p.add_argument("checkpoint", type=Path, help="longclip-B.pt, longclip-L.pt, ...")
    p.add_argument("out", type=Path, help="the folder to write (config, safetensors, tokenizer)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.add_argument(
        "--original-rounding",
        action="store_true",
        help="round weights to float16 where Long-CLIP's loader does, to match it bit for bit",
    )
    p.set_defaults(run=_convert_longclip)

    args = parser.parse_args(argv)
    setup_logging()
    try:
        return args.run(args)
    except NewsimgError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
