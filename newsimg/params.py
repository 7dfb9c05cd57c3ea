"""Typed, validated sections of params.yaml.

Each stage reads exactly one section through :func:`load_section`. Validation happens before any
work: an unknown key, a wrong type or an impossible value raises :class:`ParamsError`, whose message
names the key and the value (``fetch.shard_size = -5: Input should be greater than 0``). Stage
runners turn it into exit code 2 without touching any output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from newsimg.errors import ParamsError

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Precision = Literal["float32", "float16", "bfloat16"]


class Section(BaseModel):
    # strict: a YAML string never silently becomes a number; forbid: a typo'd key is an error.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelParams(Section):
    """Which CLIP to use; the model stage turns it into one self-contained Hugging Face folder."""

    # "tiny" (random), a Hugging Face id, a CLIPModel folder or a Long-CLIP .pt file; the
    # sample's params.yaml names "pretrained", the tiny CLIP trained on the sample's world
    # (`newsimg sample model`, tracked by pretrained.dvc)
    source: str = "tiny"
    dtype: Precision = "float32"  # dtype of the saved weights
    seed: int = 0  # seeds the random `tiny` model
    # Long-CLIP's interpolation of a 77-position CLIP's text positions to this many (248)
    stretch_positions: Literal[248] | None = None
    # round what Long-CLIP's loader rounds to float16, to match its numbers bit for bit
    original_rounding: bool = False

    @field_validator("source")
    @classmethod
    def _source_exists(cls, source: str) -> str:
        if source.endswith((".pt", ".pth")) and not Path(source).is_file():
            raise ValueError(f"checkpoint file {source} does not exist")
        return source


class FetchParams(Section):
    """Images from a bucket (S3 or any fsspec URL) into Parquet shards."""

    source: str  # "s3://multimedia-commons/data/images" or a local folder in the same layout
    endpoint_url: str | None = None  # an S3-compatible server; None for AWS
    anon: bool = True  # unsigned requests, as the public YFCC bucket wants
    limit: PositiveInt | None = None  # fetch only the first N manifest rows (trial runs)
    shard_size: PositiveInt = 10_000
    processes: PositiveInt | None = None  # per rank, sharing its shards; None: one per core
    workers: PositiveInt = 32  # requests in flight per process
    timeout_s: Annotated[float, Field(gt=0)] = 30.0  # per request (signed S3: per socket wait)
    retries: Annotated[int, Field(ge=0)] = 5  # after throttling, 5xx, timeouts, dropped connections
    # the first retry waits up to backoff_s, doubling with each (full jitter, at most 20 s)
    backoff_s: Annotated[float, Field(ge=0)] = 0.5
    max_side: PositiveInt = 384  # longer side after resizing, as img2dataset does
    min_side: PositiveInt = 32  # smaller images are skipped
    quality: Annotated[int, Field(ge=1, le=100)] = 90  # JPEG quality of the stored bytes
    max_pixels: PositiveInt = 89_478_485  # decompression-bomb guard (Pillow's default)
    max_failure_rate: Fraction = 0.05  # above it the stage fails after writing what it has
    # the metadata stage's list of the manifest's videos (photo_id<TAB>hash), never fetched when
    # skip_videos; None: no list, every row is fetched
    videos: str | None = None
    skip_videos: bool = True


class MetadataParams(Section):
    """The metadata stage: licence, credit and description of each photo of fetch's shards."""

    batch_size: PositiveInt = 500  # SQLite: photo ids per ascending primary-key query
    bucket_rows: PositiveInt = 100_000  # TSV: manifest rows per spill bucket (memory per bucket)
    # photos of the manifest that a given metadata lacks: above this share the stage fails after
    # writing (the wrong file?); the sample lacks 1%
    max_missing_rate: Fraction = 0.05


class LeadsParams(Section):
    """The article's lead text, extracted from its saved page (downloaded first if asked)."""

    extractor: Literal["newspaper", "trafilatura", "newspaper+trafilatura"] = (
        "newspaper+trafilatura"
    )
    # "sentences": whole sentences while the approach text fits max_tokens; "first_words": the
    # paper's rule, the first max_words whitespace words of the cleaned body
    mode: Literal["sentences", "first_words"] = "sentences"
    max_words: PositiveInt = 100  # first_words mode
    max_tokens: PositiveInt = 248  # sentences mode: tokens of the whole template, SOT/EOT included
    template: str = "{headline}: {lead}"  # the headline_lead approach text; no lead -> headline
    # whose leads enter the approach text: "all", or ISO 639-1 codes of the lead's detected
    # language (["en"]: other leads are kept in articles.parquet, the approach text is the headline)
    languages: Literal["all"] | list[Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]] = "all"
    pages_dir: str = "data/html"  # page cache, one {article_id}.html per article
    download: bool = False  # fill the cache from article_url first (pages already there are kept)
    user_agent: str = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0 Safari/537.36 newsimg-leads/0.1"
    )
    workers: PositiveInt = 16  # downloads in flight in all
    per_host: PositiveInt = 2  # downloads in flight per host
    timeout_s: Annotated[float, Field(gt=0)] = 20.0  # connect and read timeout per request
    retries: Annotated[int, Field(ge=0)] = 3  # after timeouts, connection errors, 429 and 5xx
    backoff_s: Annotated[float, Field(ge=0)] = 1.0  # waits backoff_s * 2**attempt between tries
    max_page_bytes: PositiveInt = 5_000_000  # larger pages are not downloaded nor read
    # articles without a lead above it fail the stage; the generated samples always hold two (a
    # missing page, a paywall): 2 of 100 in data/, 2 of 16 in the pipeline test
    max_failure_rate: Fraction = 0.2

    @field_validator("template")
    @classmethod
    def _template_fields(cls, template: str) -> str:
        import string

        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
            template.format(headline="h", lead="l")
        except (ValueError, KeyError, IndexError) as err:
            raise ValueError(f"not a valid template: {err}") from None
        if sorted(fields) != ["headline", "lead"]:
            raise ValueError("must hold {headline} and {lead} once each, and no other field")
        return template


class EmbedParams(Section):
    """Image embedding with Lightning predict, units split across ranks (DDP, SLURM-aware)."""

    batch_size: PositiveInt = 256
    # compute: float32, or bfloat16/float16 autocast over float32 weights (Lightning's
    # "bf16-mixed"/"16-mixed"); outputs are always float16, L2-normalised
    precision: Precision = "float32"
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: PositiveInt | Literal["auto"] = "auto"  # per node; under SLURM, ntasks-per-node
    num_nodes: PositiveInt = 1
    num_workers: Annotated[int, Field(ge=0)] = 8  # image-decoding processes per device
    unit_size: PositiveInt = 10_000  # images per N24News output unit (a fetch shard is one unit)
    prefetch_batches: PositiveInt = 4  # batches each worker decodes ahead (with num_workers > 0)
    # unreadable images (missing, corrupt) are recorded per unit; above this share of the images
    # embedded in a run, the stage fails after writing every unit
    max_skipped_rate: Fraction = 0.05


class LossWeights(Section):
    contrastive: Annotated[float, Field(ge=0)] = 1.0
    kl: Annotated[float, Field(ge=0)] = 0.3
    ce: Annotated[float, Field(ge=0)] = 0.3


# The recipe-dependent keys of `train`. "das_ru" is the authors' code exactly (shared/REFERENCE.md);
# "improved" turns on each candidate fix. A key left out or null takes its recipe's value; a value
# given overrides it, so `dvc exp run -S train.symmetric=false` ablates one fix of "improved".
RECIPES: dict[str, dict[str, Any]] = {
    "das_ru": {
        "epochs": 6,
        "batch_size": 8,
        "lr": 1e-4,
        "schedule": "constant",
        "patience": 0,
        "learn_temperature": False,
        "teacher": "raw",
        "symmetric": False,
        "projection_init": "random",
        "class_init": "randn",
        "renormalize": False,
    },
    "improved": {
        "epochs": 30,
        "batch_size": 256,
        "lr": 1e-3,
        "schedule": "warmup_cosine",
        "patience": 5,
        "learn_temperature": True,
        "teacher": "normalized",
        "symmetric": True,
        "projection_init": "base",
        "class_init": "names",
        "renormalize": True,
    },
}


class TrainParams(Section):
    """The class-aware Learnable Alignment Module fine-tune: a recipe, then explicit overrides."""

    recipe: Literal["das_ru", "improved"] = "das_ru"
    seed: int = 0
    epochs: PositiveInt  # the most; early stopping may end sooner
    batch_size: PositiveInt
    lr: Annotated[float, Field(gt=0)]  # Adam's (peak) learning rate
    schedule: Literal["constant", "warmup_cosine"]  # warmup_cosine: per step, to 0 at the end
    warmup: Fraction = 0.1  # share of all steps spent warming up linearly (warmup_cosine)
    patience: Annotated[int, Field(ge=0)]  # stop after this many epochs without a better dev R@10
    # and keep the best epoch's weights; 0: no early stopping, keep the last epoch's
    loss_weights: LossWeights = LossWeights()
    temperature: Annotated[float, Field(gt=0)] = 0.07  # contrastive; the start value if learnt
    learn_temperature: bool  # CLIP's trainable logit scale (capped at 100)
    kl_temperature: Annotated[float, Field(gt=0)] = 0.5
    teacher: Literal["raw", "normalized"]  # the frozen text feature the KL term distils from
    symmetric: bool  # add the image->text contrastive direction
    projection_init: Literal["random", "base"]  # base: the frozen model's own text projection
    class_init: Literal["randn", "small", "names"]  # E: randn(24, d); norm-0.1 rows; the frozen
    # model's unit text features of the section names
    renormalize: bool  # L2-normalise h = a*t + (1-a)*c
    text: Literal["headline", "headline_article", "headline_abstract"] = "headline_article"
    article_words: PositiveInt = 100  # words of the body kept by the headline_article template
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _recipe_defaults(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        recipe = raw.get("recipe", "das_ru")
        # an unknown recipe is reported by the field check; das_ru's values keep that the only error
        preset = RECIPES.get(recipe, RECIPES["das_ru"]) if isinstance(recipe, str) else {}
        return {**raw, **{k: v for k, v in preset.items() if raw.get(k) is None}}

    @field_validator("loss_weights")
    @classmethod
    def _some_loss(cls, w: LossWeights) -> LossWeights:
        if w.contrastive + w.kl + w.ce == 0:
            raise ValueError("all loss weights are 0: nothing would be trained")
        return w

    def overrides(self) -> dict[str, Any]:
        """The recipe-dependent keys whose value differs from the recipe's."""
        preset = RECIPES[self.recipe]
        return {k: getattr(self, k) for k, v in preset.items() if getattr(self, k) != v}


class IndexParams(Section):
    """Building the image index (newsimg/index.py): exact, or IVF-PQ. Only build decisions live
    here; how it is searched is the ``search`` section."""

    kind: Literal["auto", "exact", "ivfpq"] = "auto"
    # RAM the index may hold: exact in memory needs the float32 flat index (N x dim x 4 bytes);
    # above it exact search streams from disk, and auto picks IVF-PQ when that fits
    memory_gb: Annotated[float, Field(gt=0)] = 64.0
    nlist: PositiveInt | None = None  # IVF lists; None: sqrt(N) as a power of two
    pq_subdim: PositiveInt = 4  # dimensions per 4-bit PQ code: dim / pq_subdim / 2 bytes/vector
    train_size: PositiveInt = 50_000  # vectors sampled to train the IVF centroids and the PQ
    seed: int = 0  # samples the training vectors


class SearchParams(Section):
    """Search-time settings (newsimg/searcher.py), read where searching happens: changing them
    re-runs retrieval and the recall measurement, never the index build."""

    nprobe: PositiveInt = 32  # IVF lists visited per query
    rerank: Annotated[int, Field(ge=0)] = 400  # IVF-PQ candidates re-scored exactly; 0: none
    block_rows: PositiveInt = 65_536  # rows per block of streamed exact search


class RecallParams(Section):
    """The recall stage: the index's recall@k against exact search, in metrics/index.json."""

    queries: PositiveInt = 1000  # sampled text and image queries
    text: Literal["headline", "headline_lead"] = "headline_lead"  # articles' text column
    k: PositiveInt = 10
    seed: int = 0  # samples the queries


LicenceCode = Literal["by", "by-sa", "by-nd", "by-nc", "by-nc-sa", "by-nc-nd", "unknown"]


class RetrieveParams(Section):
    k: PositiveInt = 100  # images kept per article
    batch_size: PositiveInt = 64  # texts encoded at once
    # the alignment protocol (web-scale summarisation seed): per article, the cosine similarity
    # of its original and of this many random pool images (never an original), seeded per article
    negatives: Annotated[int, Field(ge=0)] = 20
    seed: int = 0
    # the licence policy: the codes of the YFCC photos that may be returned (README, "Licences
    # and credits"); None: all, the paper's setting. The articles' own images always may.
    licences: Annotated[list[LicenceCode], Field(min_length=1)] | None = None

    @field_validator("licences")
    @classmethod
    def _distinct(cls, codes: list[str] | None) -> list[str] | None:
        if codes is not None and len(set(codes)) != len(codes):
            raise ValueError("lists a licence twice")
        return codes


class ScoreParams(Section):
    ks: Annotated[list[PositiveInt], Field(min_length=1)] = [1, 5, 10, 50, 100]
    mrr_at: PositiveInt = 100
    category_k: PositiveInt = 10  # the R@k reported per predicted category (with MRR)
    # human ratings: a CSV of article_id, approach, rater, rating (1-5); approach "original" is
    # the baseline column. None: no ratings.
    ratings: str | None = None
    # resamples of every 95% interval: the mean rating, the paired differences of approaches
    bootstrap: PositiveInt = 1000
    seed: int = 0  # seeds the bootstrap
    paired_k: PositiveInt = 10  # the R@k of the paired differences (beside MRR@mrr_at)


class ReportParams(Section):
    top: PositiveInt = 5  # images shown per article and approach
    max_articles: PositiveInt = 100
    # the MediaEval export: reports/submission/[group].zip
    group: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] = "NEWSIMG"
    # pipeline approach -> its name in the submission (letters, digits and hyphens)
    approaches: dict[str, Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")]] = {
        "lam": "LAM",
        "headline_lead": "HEADLINELEAD",
        "headline": "HEADLINE",
    }
    width: PositiveInt = 460  # exported PNG size (resize to cover, then centre crop)
    height: PositiveInt = 260


SECTIONS: dict[str, type[Section]] = {
    "model": ModelParams,
    "fetch": FetchParams,
    "metadata": MetadataParams,
    "leads": LeadsParams,
    "embed": EmbedParams,
    "train": TrainParams,
    "index": IndexParams,
    "search": SearchParams,
    "recall": RecallParams,
    "retrieve": RetrieveParams,
    "score": ScoreParams,
    "report": ReportParams,
}


def parse_section(name: str, raw: Any) -> Section:
    """Validate one section's raw mapping; errors name ``section.key`` and the offending value."""
    cls = SECTIONS[name]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{name}: expected a mapping of keys, got {raw!r}")
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join([name, *(str(p) for p in e["loc"])])
            value = e.get("input")
            lines.append(f"{key} = {value!r}: {e['msg']}")
        raise ParamsError("invalid params:\n  " + "\n  ".join(lines)) from None


def load_section(name: str, path: str | Path = "params.yaml") -> Section:
    """Read params.yaml and return its validated section ``name``."""
    if name not in SECTIONS:
        raise ParamsError(f"unknown params section {name!r}; known: {', '.join(SECTIONS)}")
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamsError(f"params file {str(path)!r} does not exist") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(doc, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    return parse_section(name, doc.get(name))


class ServeParams(Section):
    """The photo desk (newsimg/serve): what it binds, accepts and answers by default."""

    host: str = "127.0.0.1"  # loopback by default; 0.0.0.0 exposes it to the network
    port: Annotated[int, Field(ge=0, le=65535)] = 8000  # 0: any free port
    workers: PositiveInt | None = None  # search threads; None: one per core
    max_batch: PositiveInt = 32  # texts of concurrent requests encoded in one forward pass
    approach: Literal["headline", "headline_lead", "lam"] = "lam"  # the default approach
    k: PositiveInt = 20  # results per page by default
    max_k: PositiveInt = 1000  # the most results one request may ask for (k + offset)
    max_text_chars: PositiveInt = 10_000  # longer texts (headline, lead, query) are refused
    max_upload_bytes: PositiveInt = 10_000_000  # larger image uploads are refused
    max_pixels: PositiveInt = 89_478_485  # decompression-bomb guard for uploads (Pillow's)
    request_timeout_s: Annotated[float, Field(gt=0)] = 30.0  # a request taking longer gets 503
    dedup: bool = True  # fold near-duplicates by default
    dedup_threshold: Annotated[float, Field(gt=0, le=1)] = 0.95  # cosine above it: a duplicate
    min_score: Annotated[float, Field(ge=-1, le=1)] | None = None  # default score floor
    include_originals: bool = False  # whether the articles' own photos may appear by default
    thumb_px: PositiveInt = 256  # longer side of a thumbnail
    image_cache: Annotated[int, Field(ge=0)] = 2048  # thumbnails and crops kept in memory


SECTIONS["serve"] = ServeParams
