"""The seeded offline sample: NewsImages articles, N24News items and a YFCC-style image bucket.

The sample lets the whole pipeline run, and be tested, without a download. It is not random
noise: every picture is drawn from a few attributes (scene, object, object colour, count and the
section's motif) and every text names the attributes of its picture, so a model trained on the
N24News part can retrieve an article's original image from the pool by its headline or lead.
Colour and scene cover most pixels on purpose: a frozen, randomly initialised image encoder
perceives colour composition far better than shape.

:func:`plan_sample` decides everything (attributes, texts, ids, faults) from the seed without
touching the disk; :func:`generate` renders and writes that plan. Tests use the plan to check
the files against the attributes they were made from.

Layout written into ``out``::

    articles.csv                      NewsImages CSV (header row, article ids "1".."N")
    subsets.csv                       article_id,subset: descriptive or vague_headline (truth
                                      for the score stage only)
    html/<article_id>.html            saved article pages (one missing, one paywalled)
    newsimages/<image_id>.jpg         each article's original image
    n24news/news/nytimes_{split}.json N24News items, every section in every split
    n24news/imgs/<image_id>.jpg
    yfcc/manifest.txt                 photo_id<TAB>hash, one line per pool image
    yfcc/bucket/h[0:3]/h[3:6]/h.jpg   the images, S3 key layout; ~1% deliberate faults
    sample.json                       seed, arguments and counts

Modules, each with one purpose:

    vocabulary  colours, scenes, object nouns, section motifs, count words
    shapes      how each object shape is drawn
    prose       section prose, filler sentences, people, towns, agencies, news sites
    model       the plan's dataclasses (Attributes, Picture, Article, PoolImage, ...)
    texts       headlines, leads, captions and filler written for pictures
    plan        plan_sample: every decision, made from the seed
    draw        render and jpeg_bytes: pictures
    pages       page_html: the sites' HTML templates
    write       generate: the plan rendered and written into ``out``
    pretrain    the pretrained base model: a tiny CLIP trained on a corpus of this world
"""

from newsimg.sample.draw import JPEG_QUALITY, jpeg_bytes, render
from newsimg.sample.model import (
    FAULT_KINDS,
    VARIED,
    Article,
    Attributes,
    N24Item,
    Picture,
    PoolImage,
    SamplePlan,
)
from newsimg.sample.pages import HEAD, MONTHS, NAV, PAYWALL, TEMPLATES, page_html
from newsimg.sample.plan import DISTRACTORS_PER_ARTICLE, VAGUE_SHARE, plan_sample
from newsimg.sample.prose import (
    AGENCIES,
    FIRST_NAMES,
    GENERIC_FILLERS,
    LAST_NAMES,
    SECTION_TEXT,
    SECTIONS,
    SITES,
    TOWNS,
    WEEKDAYS,
    SectionStyle,
    Site,
)
from newsimg.sample.shapes import SHAPE_SPECS, SHAPES
from newsimg.sample.texts import VAGUE_HEADLINES
from newsimg.sample.vocabulary import (
    COLOURS,
    COUNT_WORDS,
    GENERAL_OBJECTS,
    MOTIF_ACCENTS,
    MOTIF_STYLES,
    OBJECTS,
    RGB,
    SCENES,
    SECTION_OBJECT_SHARE,
    Layer,
    Scene,
    Thing,
)
from newsimg.sample.write import ERROR_PAGES, OUTPUTS, SUBSETS, generate

__all__ = [
    "AGENCIES",
    "COLOURS",
    "COUNT_WORDS",
    "DISTRACTORS_PER_ARTICLE",
    "ERROR_PAGES",
    "FAULT_KINDS",
    "FIRST_NAMES",
    "GENERAL_OBJECTS",
    "GENERIC_FILLERS",
    "HEAD",
    "JPEG_QUALITY",
    "LAST_NAMES",
    "MONTHS",
    "MOTIF_ACCENTS",
    "MOTIF_STYLES",
    "NAV",
    "OBJECTS",
    "OUTPUTS",
    "PAYWALL",
    "RGB",
    "SCENES",
    "SECTIONS",
    "SECTION_OBJECT_SHARE",
    "SECTION_TEXT",
    "SHAPES",
    "SHAPE_SPECS",
    "SITES",
    "SUBSETS",
    "TEMPLATES",
    "TOWNS",
    "VAGUE_HEADLINES",
    "VAGUE_SHARE",
    "VARIED",
    "WEEKDAYS",
    "Article",
    "Attributes",
    "Layer",
    "N24Item",
    "Picture",
    "PoolImage",
    "SamplePlan",
    "Scene",
    "SectionStyle",
    "Site",
    "Thing",
    "generate",
    "jpeg_bytes",
    "page_html",
    "plan_sample",
    "render",
]
