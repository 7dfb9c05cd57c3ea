"""The newsimg command: tools around the pipeline (the stages themselves are in stages/)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from newsimg.errors import NewsimgError
from newsimg.logs import setup_logging

# `newsimg sample model` options: PretrainConfig fields (one not given keeps its default there)
PRETRAIN_OPTIONS = {
    "seed": "the corpus and the initialisation",
    "images": "pictures in the corpus, held-back ones included",
    "held_out": "pictures kept for the zero-shot R@10",
    "steps": "training steps of 128 pairs",
    "threads": "torch threads (the weights are bit-identical for the same count)",
    "processes": "rendering processes",
}


def _sample(args: argparse.Namespace) -> int:
    from newsimg import sample

    counts = sample.generate(args.out, seed=args.seed)
    print(json.dumps(counts, indent=2))
    return 0


def _sample_model(args: argparse.Namespace) -> int:
    from newsimg.sample import pretrain

    given = {k: getattr(args, k) for k in PRETRAIN_OPTIONS if getattr(args, k) is not None}
    config = pretrain.PretrainConfig(**given)
    report = pretrain.build(args.out, config)
    recall = report["zero_shot_r@10"]
    print(f"pretrained tiny CLIP written to {args.out} in {sum(report['seconds'].values()):.0f} s")
    print(
        f"zero-shot text->image R@10 on {config.held_out} held-back pictures (chance "
        f"{recall['chance']:.3f}): "
        + ", ".join(f"{k} {recall[k]:.3f}" for k in pretrain.KINDS)
        + f"; all kinds {recall['all']:.3f}"
    )
    return 0


def _convert_longclip(args: argparse.Namespace) -> int:
    from newsimg import clip, longclip

    state = longclip.load_state_dict(args.checkpoint)
    model = longclip.convert(state, original_rounding=args.original_rounding)
    clip.save_model(model, args.out, args.dtype)
    return 0


def _lead(args: argparse.Namespace) -> int:
    from newsimg import leads, pages
    from newsimg.errors import InputError
    from newsimg.params import load_section, parse_section

    settings = {
        "mode": args.mode,
        "max_words": args.max_words,
        "max_tokens": args.max_tokens,
        "extractor": args.extractor,
        "max_page_bytes": args.max_page_bytes,
    }
    base = load_section("leads", args.params).model_dump() if args.params else {}
    given = {k: v for k, v in settings.items() if v is not None}
    params = parse_section("leads", {**base, **given})
    try:
        raw = args.page.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {args.page}: {err}") from None
    html, status = pages.decode_page(raw, params.max_page_bytes)
    if status == "ok":
        lead = leads.page_lead(html, args.url, params, headline=args.headline)
        status = lead.status
        if lead.text:
            print(lead.text)
    print(f"status: {status}", file=sys.stderr)
    return 0 if status == "ok" else 1


def _search(args: argparse.Namespace) -> int:
    import logging
    import time

    from newsimg.params import RetrieveParams, load_section
    from newsimg.searcher import Searcher

    t0 = time.perf_counter()
    settings = load_section("search", args.params)
    if args.licences is None:
        licences = load_section("retrieve", args.params).licences  # type: ignore[attr-defined]
    else:
        licences = None if args.licences == "all" else args.licences.split(",")
        licences = RetrieveParams(licences=licences).licences  # validated: names a bad code
    searcher = Searcher(
        model=args.model,
        index=args.index,
        lam=args.lam,
        settings=settings,
        metadata=args.metadata,
        text_tower=args.text_tower,
    )
    allowed = searcher.allowed(licences)
    t1 = time.perf_counter()
    queries = searcher.encode_texts(args.text, lam=args.lam is not None)
    t2 = time.perf_counter()
    scores, rows = searcher.search(
        queries, args.k, nprobe=args.nprobe, rerank=args.rerank, allowed=allowed
    )
    t3 = time.perf_counter()
    logging.getLogger("newsimg.search").info(
        "loaded in %.0f ms; %d text(s) encoded in %.0f ms, searched in %.0f ms (%s index of %d)",
        1000 * (t1 - t0),
        len(args.text),
        1000 * (t2 - t1),
        1000 * (t3 - t2),
        searcher.index.plan.kind,
        searcher.ntotal,
    )
    for text, hits in zip(args.text, searcher.hits(scores, rows), strict=True):
        print(text)
        credits = searcher.credits(hits)
        for hit in hits:
            c = credits[hit.key]
            print(f"{hit.rank:>4}  {hit.score:.4f}  {hit.source:<10}  {hit.key}  {c.credit}")
            links = [f'"{c.title}"' if c.title else "", c.licence_link or "", c.page_url or ""]
            if any(links):
                print(f"{'':>24}{'  '.join(x for x in links if x)}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from newsimg import serve

    serve.run(args.root, args.params, host=args.host, port=args.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="newsimg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("sample", help="the offline sample: its data set, its base model")
    kinds = p.add_subparsers(dest="what", required=True)
    q = kinds.add_parser("data", help="write the seeded sample data set to OUT (default data)")
    q.add_argument("out", type=Path, nargs="?", default=Path("data"))
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(run=_sample)
    q = kinds.add_parser(
        "model", help="train the sample's base model (a tiny CLIP) into OUT (default pretrained)"
    )
    q.add_argument("out", type=Path, nargs="?", default=Path("pretrained"))
    for name, what in PRETRAIN_OPTIONS.items():
        q.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=what)
    q.set_defaults(run=_sample_model)

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

    # No defaults here: what is not given comes from the leads params' defaults (params.py)
    p = commands.add_parser(
        "lead", help="print the lead of one saved page (status on stderr), as the leads stage does"
    )
    p.add_argument("page", type=Path, help="a saved page, PAGE.html")
    p.add_argument("--url", default=None, help="the page's URL (helps the extractors)")
    p.add_argument("--mode", choices=["sentences", "first_words"], help="default: leads.mode")
    p.add_argument("--max-words", type=int, help="first_words mode; default: leads.max_words")
    p.add_argument(
        "--max-tokens", type=int, help="sentences mode, with headline; default: leads.max_tokens"
    )
    p.add_argument("--headline", default=None, help="default: the page's own title")
    p.add_argument(
        "--extractor",
        choices=["newspaper", "trafilatura", "newspaper+trafilatura"],
        help="default: leads.extractor",
    )
    p.add_argument("--max-page-bytes", type=int, help="default: leads.max_page_bytes")
    p.add_argument(
        "--params", type=Path, default=None, help="take the leads section of this params.yaml"
    )
    p.set_defaults(run=_lead)

    p = commands.add_parser("search", help="rank the indexed images for any text")
    p.add_argument("text", nargs="+", help="one or more texts (quote each)")
    p.add_argument("--model", type=Path, default=Path("artifacts/models/base"))
    p.add_argument("--index", type=Path, default=Path("artifacts/index"))
    p.add_argument("--lam", type=Path, default=None, help="a LAM folder (artifacts/models/lam)")
    p.add_argument("-k", type=int, default=10)
    p.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="its search section's defaults"
    )
    p.add_argument("--nprobe", type=int, default=None, help="default: search.nprobe")
    p.add_argument("--rerank", type=int, default=None, help="default: search.rerank")
    p.add_argument(
        "--metadata", type=Path, default=Path("artifacts/metadata"), help="licences and credits"
    )
    p.add_argument(
        "--text-tower",
        choices=["auto", "numpy", "torch"],
        default="auto",
        help="auto: NumPy on CPU (starts without importing torch), torch on a GPU",
    )
    p.add_argument(
        "--licences",
        default=None,
        help="codes that may be returned, comma-separated (by,by-sa), or all; "
        "default: retrieve.licences",
    )
    p.set_defaults(run=_search)

    p = commands.add_parser(
        "serve", help="the photo desk: search page and JSON API over the built pipeline"
    )
    p.add_argument("--root", type=Path, default=Path("."), help="the pipeline's folder (dvc.yaml)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--host", default=None, help="default: serve.host (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="default: serve.port")
    p.set_defaults(run=_serve)

    args = parser.parse_args(argv)
    setup_logging()
    try:
        return args.run(args)
    except NewsimgError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
