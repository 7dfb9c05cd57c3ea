"""Lead quality and speed of the leads extractors on hand-written news pages, against a naive
all-<p> baseline measured in the same run.

    python bench/leads.py [--eval bench/leads_eval] [--repeat 3] [--pages]

bench/leads_eval/pages/*.html are 42 article pages written in sixteen real-world site styles
with the noise that leaks into leads: bylines, datelines, captions and photo credits, ad slots,
share, newsletter and cookie boxes, related links, pull quotes, comments, scripts. The first 30
(ten styles: wire, BBC, Guardian, WordPress, tabloid, paywall teaser, CNN, Reuters, magazine,
legacy table layout) are the "tuned" split the cleaning was developed on; the last 12 (NYT, Fox,
Independent, ABC Australia, AMP, local TV) are a "heldout" split written afterwards and not
tuned on. bench/leads_eval/expected.json holds each page's URL, headline, split and hand-written
body (for the paywall teasers, the visible paragraphs).

Score: lead F1 as the anchors measure it: the first 100 whitespace words of the lead against the
first 100 of the expected body, as bags of lowercase words (punctuation stripped). A page that
gives no lead scores 0 and counts as failed. Settings: each extractor's raw text (the paper's
way), the same after newsimg.leads' cleaning (``first_words``), and the stage default
(``sentences``, 248 tokens). Prints a table with ratios to the baseline and ends with one JSON
line of the key figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import string
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from newsimg import leads

HERE = Path(__file__).parent


def words100(text: str) -> list[str]:
    out = [w.strip(string.punctuation + "“”‘’—–").lower() for w in text.split()[:100]]
    return [w for w in out if w]


def f1(got: str, want: str) -> float:
    g, w = Counter(words100(got)), Counter(words100(want))
    common = sum((g & w).values())
    if not common:
        return 0.0
    p, r = common / sum(g.values()), common / sum(w.values())
    return 2 * p * r / (p + r)


def all_p(html: str, url: str, headline: str) -> str:
    """The naive baseline: the text of every <p>, scripts and styles dropped."""
    import lxml.html

    doc = lxml.html.document_fromstring(html)
    return "\n".join(" ".join(p.text_content().split()) for p in doc.iter("p"))


def raw(extractor: str) -> Callable[[str, str, str], str]:
    """An extractor's text as it comes (the paper's way), the next one when it gives nothing."""

    def run(html: str, url: str, headline: str) -> str:
        for name in extractor.split("+"):
            try:
                text = leads.EXTRACTORS[name](html, url)
            except Exception:
                continue
            if len(text.split()) >= leads.MIN_WORDS:
                return text
        return ""

    return run


def cleaned(extractor: str, mode: str) -> Callable[[str, str, str], str]:
    def run(html: str, url: str, headline: str) -> str:
        return leads.extract_lead(html, url, mode=mode, headline=headline, extractor=extractor).text

    return run


SETTINGS: dict[str, Callable[[str, str, str], str]] = {
    "all-<p> baseline": all_p,
    "newspaper raw": raw("newspaper"),
    "trafilatura raw": raw("trafilatura"),
    "newspaper+trafilatura raw": raw("newspaper+trafilatura"),
    "newspaper": cleaned("newspaper", "first_words"),
    "trafilatura": cleaned("trafilatura", "first_words"),
    "newspaper+trafilatura": cleaned("newspaper+trafilatura", "first_words"),
    "newspaper+trafilatura sentences": cleaned("newspaper+trafilatura", "sentences"),
}
BASELINE = "all-<p> baseline"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", type=Path, default=HERE / "leads_eval")
    parser.add_argument("--repeat", type=int, default=3, help="timing: best of N passes")
    parser.add_argument("--pages", action="store_true", help="also print F1 per page")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    expected = json.loads((args.eval / "expected.json").read_text(encoding="utf-8"))
    pages = {pid: (args.eval / "pages" / f"{pid}.html").read_text("utf-8") for pid in expected}
    leads.extract_newspaper(next(iter(pages.values())), "")  # imports outside the timings

    results: dict[str, dict] = {}
    for name, fn in SETTINGS.items():
        best, got = float("inf"), {}
        for pid, e in expected.items():  # warm-up: lazy imports and caches outside the timing
            fn(pages[pid], e["url"], e["headline"])
        for _ in range(args.repeat):
            start = time.perf_counter()
            got = {pid: fn(pages[pid], e["url"], e["headline"]) for pid, e in expected.items()}
            best = min(best, time.perf_counter() - start)
        scores = {pid: f1(got[pid], e["body"]) for pid, e in expected.items()}
        heldout = [scores[pid] for pid, e in expected.items() if e["split"] == "heldout"]
        tuned = [scores[pid] for pid, e in expected.items() if e["split"] != "heldout"]
        results[name] = {
            "f1": sum(scores.values()) / len(scores),
            "f1_tuned": sum(tuned) / max(len(tuned), 1),
            "f1_heldout": sum(heldout) / max(len(heldout), 1),
            "min_f1": min(scores.values()),
            "below_0.9": sum(s < 0.9 for s in scores.values()),
            "failed": sum(not got[pid].strip() for pid in expected),
            "pages_per_s": len(expected) / best,
            "scores": scores,
        }

    base = results[BASELINE]
    print(f"lead F1 on {len(expected)} pages ({args.eval}); ratios against {BASELINE}\n")
    n_held = sum(e["split"] == "heldout" for e in expected.values())
    print(f"tuned: {len(expected) - n_held} pages the cleaning was developed on; heldout: {n_held}")
    print("pages written afterwards in six other site styles and scored once, untuned\n")
    head = f"{'setting':34} {'F1':>6} {'xbase':>6} {'tuned':>6} {'heldout':>7} {'min':>6}"
    print(f"{head} {'<0.9':>5} {'fail':>5} {'pages/s':>8} {'xbase':>7}")
    for name, r in results.items():
        print(
            f"{name:34} {r['f1']:6.3f} {r['f1'] / base['f1']:6.2f} {r['f1_tuned']:6.3f} "
            f"{r['f1_heldout']:7.3f} {r['min_f1']:6.3f} "
            f"{r['below_0.9']:5d} {r['failed']:5d} {r['pages_per_s']:8.1f} "
            f"{r['pages_per_s'] / base['pages_per_s']:7.3f}"
        )
    if args.pages:
        names = list(results)
        print("\nper page F1: " + " | ".join(f"{i}={n}" for i, n in enumerate(names)))
        for pid in expected:
            print(f"{pid:22} " + " ".join(f"{results[n]['scores'][pid]:.2f}" for n in names))
    key = {
        "pages": len(expected),
        **{f"f1[{name}]": round(r["f1"], 3) for name, r in results.items()},
        **{f"f1_heldout[{name}]": round(r["f1_heldout"], 3) for name, r in results.items()},
        **{f"failed[{name}]": r["failed"] for name, r in results.items() if r["failed"]},
        **{f"pages_per_s[{name}]": round(r["pages_per_s"], 1) for name, r in results.items()},
    }
    print(json.dumps(key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
