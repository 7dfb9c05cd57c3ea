"""The one entry-point pattern every stage script shares.

A stage script declares its params section, its input and output paths and its options, and
receives them typed::

    @stage("fetch", inputs=["manifest", "newsimages"], outputs=["out"])
    def main(params: FetchParams, manifest: Path, newsimages: Path, out: Path) -> None:
        fetch.run(params, manifest, newsimages, out)

``main(argv=None) -> int`` then parses ``--params FILE --manifest PATH ...``, validates the
section and checks every input exists before any work (exit code 2 with a message naming the key
or path, outputs untouched), sets up logging, runs, and turns a :class:`NewsimgError` into its
exit code with the message on stderr.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from newsimg.errors import InputError, NewsimgError
from newsimg.logs import setup_logging
from newsimg.params import load_section

log = logging.getLogger("newsimg")


def stage(
    section: str | None,
    *,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    options: Sequence[str] = (),
    sections: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Callable[[Sequence[str] | None], int]]:
    """Wrap ``fn(params, **paths, **options)`` into a ``main(argv) -> int`` stage entry point.

    ``inputs`` and ``outputs`` become required ``--name PATH`` arguments (``Path``); inputs must
    exist. ``options`` become required ``--name VALUE`` strings. ``section=None`` reads no params.
    ``sections``: further params sections the stage reads, passed as keyword arguments named
    after them (``search=SearchParams(...)``).
    """

    def wrap(fn: Callable[..., Any]) -> Callable[[Sequence[str] | None], int]:
        @functools.wraps(fn)
        def main(argv: Sequence[str] | None = None) -> int:
            parser = argparse.ArgumentParser(description=fn.__doc__)
            parser.add_argument("--params", type=Path, default=Path("params.yaml"))
            for name in [*inputs, *outputs]:
                parser.add_argument(f"--{name.replace('_', '-')}", type=Path, required=True)
            for name in options:
                parser.add_argument(f"--{name.replace('_', '-')}", required=True)
            args = vars(parser.parse_args(argv))
            setup_logging()
            params_file = args.pop("params")
            try:
                params = load_section(section, params_file) if section else None
                for name in sections:
                    args[name] = load_section(name, params_file)
                for name in inputs:
                    if not args[name].exists():
                        raise InputError(f"input --{name} {args[name]} does not exist")
                call_args = (params,) if section else ()
                fn(*call_args, **args)
            except NewsimgError as err:
                print(f"error: {err}", file=sys.stderr)
                return err.exit_code
            return 0

        return main

    return wrap
