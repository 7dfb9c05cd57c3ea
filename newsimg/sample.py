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
    html/<article_id>.html            saved article pages (one missing, one paywalled)
    newsimages/<image_id>.jpg         each article's original image
    n24news/news/nytimes_{split}.json N24News items, every section in every split
    n24news/imgs/<image_id>.jpg
    yfcc/manifest.txt                 photo_id<TAB>hash, one line per pool image
    yfcc/bucket/h[0:3]/h[3:6]/h.jpg   the images, S3 key layout; ~1% deliberate faults
    sample.json                       seed, arguments and counts
"""

from __future__ import annotations

import functools
import html
import io
import json
import logging
import math
import random
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from newsimg.sources import N24NEWS_SECTIONS, N24NEWS_SPLITS, write_newsimages_csv

log = logging.getLogger(__name__)

RGB = tuple[int, int, int]

# --- the visual vocabulary ------------------------------------------------------------------------

# Object colours: saturated and far apart in RGB, and far from every scene and motif colour
# (tests check the distances), so the colour a text names is the image's dominant non-background
# colour.
COLOURS: dict[str, RGB] = {
    "red": (215, 30, 35),
    "orange": (245, 130, 20),
    "yellow": (250, 215, 30),
    "green": (40, 170, 60),
    "blue": (30, 80, 220),
    "purple": (130, 50, 170),
    "pink": (245, 120, 185),
    "white": (252, 252, 252),
    "black": (15, 15, 15),
    "brown": (125, 70, 30),
}


@dataclass(frozen=True)
class Layer:
    """One background layer: ``colour`` from ``top`` (fraction of the height) down to the bottom.

    ``edge`` shapes the top edge: flat, wave (rolling), jagged (peaks, tree tops) or skyline
    (buildings with lit windows in the palette's ``windows`` colour).
    """

    colour: str
    top: float
    edge: str = "flat"


@dataclass(frozen=True)
class Scene:
    palette: dict[str, RGB]
    layers: tuple[Layer, ...]
    phrases: tuple[str, ...]  # prepositional phrases used in texts ("on a sandy beach")
    description: str  # what surrounds the objects, without any object-colour word
    keywords: tuple[str, ...]  # words that identify the scene in a text


SCENES: dict[str, Scene] = {
    "beach": Scene(
        {"sky": (150, 200, 235), "sea": (40, 120, 165), "sand": (225, 205, 150)},
        (Layer("sky", 0.0), Layer("sea", 0.38, "wave"), Layer("sand", 0.6, "wave")),
        ("on a sandy beach", "on the beach"),
        "the pale sand, the rolling surf and a hazy sky",
        ("beach", "sandy", "sea", "shore", "surf"),
    ),
    "snow": Scene(
        {"sky": (150, 160, 178), "snow": (205, 215, 230)},
        (Layer("sky", 0.0), Layer("snow", 0.36, "wave")),
        ("in the snow", "on fresh snow"),
        "fresh snow under a grey winter sky",
        ("snow", "snowy", "winter"),
    ),
    "forest": Scene(
        {"sky": (175, 195, 180), "canopy": (25, 80, 45), "ground": (55, 72, 40)},
        (Layer("sky", 0.0), Layer("canopy", 0.16, "jagged"), Layer("ground", 0.78, "wave")),
        ("in a pine forest", "in the forest"),
        "dense pines and a mossy forest floor",
        ("forest", "pine", "pines", "woods"),
    ),
    "city": Scene(
        {"sky": (40, 35, 95), "buildings": (75, 75, 90), "windows": (240, 222, 150)},
        (Layer("sky", 0.0), Layer("buildings", 0.25, "skyline")),
        ("in the city at night", "on a city street at night"),
        "dark buildings and lit windows under a night sky",
        ("city", "night", "street", "lights"),
    ),
    "desert": Scene(
        {"sky": (240, 226, 192), "dune": (190, 140, 85), "sand": (215, 165, 105)},
        (Layer("sky", 0.0), Layer("dune", 0.36, "wave"), Layer("sand", 0.58, "wave")),
        ("in the desert", "on desert dunes"),
        "sun-baked dunes stretching under a hazy sky",
        ("desert", "dunes", "dune"),
    ),
    "meadow": Scene(
        {"sky": (120, 175, 232), "hill": (100, 150, 70), "grass": (150, 195, 90)},
        (Layer("sky", 0.0), Layer("hill", 0.38, "wave"), Layer("grass", 0.55, "wave")),
        ("in a grassy meadow", "in a meadow"),
        "long meadow grass and gentle hills under a clear sky",
        ("meadow", "grass", "grassy", "hills"),
    ),
    "mountains": Scene(
        {"sky": (178, 188, 205), "peaks": (105, 105, 122), "lake": (70, 120, 130)},
        (Layer("sky", 0.0), Layer("peaks", 0.14, "jagged"), Layer("lake", 0.64)),
        ("by a mountain lake", "in the mountains"),
        "grey peaks above a still mountain lake",
        ("mountain", "mountains", "lake", "peaks"),
    ),
    "sunset": Scene(
        {"high": (222, 142, 122), "low": (245, 192, 135), "ground": (180, 110, 92)},
        (Layer("high", 0.0), Layer("low", 0.3, "wave"), Layer("ground", 0.66, "wave")),
        ("at sunset", "under the sunset sky"),
        "a glowing sunset sky over dusky fields",
        ("sunset", "dusk", "dusky"),
    ),
}


@dataclass(frozen=True)
class Thing:
    """An object noun: how it is drawn (a shape in :data:`SHAPES`) and how texts speak of it."""

    plural: str
    shape: str
    aspect: float  # width / height of its bounding box
    verbs: tuple[str, str]  # singular, plural ("floats", "float")


OBJECTS: dict[str, Thing] = {
    # general objects any section may show
    "balloon": Thing("balloons", "balloon", 0.8, ("floats", "float")),
    "kite": Thing("kites", "kite", 0.8, ("flies", "fly")),
    "boat": Thing("boats", "boat", 1.2, ("drifts", "drift")),
    "tent": Thing("tents", "tent", 1.3, ("stands", "stand")),
    "umbrella": Thing("umbrellas", "umbrella", 1.2, ("stands", "stand")),
    "car": Thing("cars", "car", 1.9, ("is parked", "are parked")),
    # section objects
    "truck": Thing("trucks", "car", 2.2, ("is parked", "are parked")),
    "van": Thing("vans", "car", 1.6, ("is parked", "are parked")),
    "vase": Thing("vases", "bottle", 0.6, ("stands", "stand")),
    "sculpture": Thing("sculptures", "star", 1.0, ("stands", "stand")),
    "canvas": Thing("canvases", "canvas", 1.1, ("rests", "rest")),
    "book": Thing("books", "book", 0.75, ("lies", "lie")),
    "lamp": Thing("lamps", "lamp", 0.75, ("glows", "glow")),
    "mug": Thing("mugs", "mug", 1.0, ("sits", "sit")),
    "dress": Thing("dresses", "dress", 0.8, ("hangs", "hang")),
    "fan": Thing("fans", "fan", 1.8, ("opens", "open")),
    "drum": Thing("drums", "drum", 1.0, ("sits", "sit")),
    "coin": Thing("coins", "coin", 1.0, ("lies", "lie")),
    "crate": Thing("crates", "crate", 1.0, ("sits", "sit")),
    "flag": Thing("flags", "flag", 1.3, ("flies", "fly")),
    "globe": Thing("globes", "globe", 1.0, ("sits", "sit")),
    "backpack": Thing("backpacks", "backpack", 0.8, ("lies", "lie")),
    "hat": Thing("hats", "hat", 1.4, ("sits", "sit")),
    "handbag": Thing("handbags", "handbag", 1.2, ("sits", "sit")),
    "plate": Thing("plates", "plate", 1.3, ("sits", "sit")),
    "bowl": Thing("bowls", "bowl", 1.6, ("sits", "sit")),
    "cake": Thing("cakes", "cake", 1.1, ("sits", "sit")),
    "ship": Thing("ships", "boat", 1.6, ("sails", "sail")),
    "container": Thing("containers", "container", 2.0, ("sits", "sit")),
    "tower": Thing("towers", "tower", 0.45, ("rises", "rise")),
    "heart": Thing("hearts", "heart", 1.0, ("glows", "glow")),
    "bottle": Thing("bottles", "bottle", 0.45, ("stands", "stand")),
    "apple": Thing("apples", "apple", 1.0, ("lies", "lie")),
    "camera": Thing("cameras", "camera", 1.4, ("sits", "sit")),
    "microphone": Thing("microphones", "microphone", 0.6, ("stands", "stand")),
    "screen": Thing("screens", "tv", 1.5, ("glows", "glow")),
    "ticket": Thing("tickets", "ticket", 1.8, ("lies", "lie")),
    "spotlight": Thing("spotlights", "lamp", 0.8, ("shines", "shine")),
    "guitar": Thing("guitars", "guitar", 0.5, ("rests", "rest")),
    "megaphone": Thing("megaphones", "megaphone", 1.5, ("sits", "sit")),
    "house": Thing("houses", "house", 1.0, ("stands", "stand")),
    "door": Thing("doors", "door", 0.55, ("stands", "stand")),
    "rocket": Thing("rockets", "rocket", 0.6, ("stands", "stand")),
    "planet": Thing("planets", "planet", 1.3, ("hangs", "hang")),
    "flask": Thing("flasks", "flask", 0.8, ("stands", "stand")),
    "ball": Thing("balls", "disc", 1.0, ("lies", "lie")),
    "trophy": Thing("trophies", "trophy", 0.8, ("stands", "stand")),
    "goal": Thing("goals", "goal", 1.5, ("stands", "stand")),
    "laptop": Thing("laptops", "laptop", 1.3, ("sits", "sit")),
    "phone": Thing("phones", "box", 0.5, ("lies", "lie")),
    "robot": Thing("robots", "robot", 0.8, ("stands", "stand")),
    "television": Thing("televisions", "tv", 1.4, ("sits", "sit")),
    "sofa": Thing("sofas", "sofa", 1.8, ("sits", "sit")),
    "mask": Thing("masks", "mask", 1.0, ("hangs", "hang")),
    "curtain": Thing("curtains", "box", 0.8, ("hangs", "hang")),
    "suitcase": Thing("suitcases", "suitcase", 1.3, ("sits", "sit")),
    "plane": Thing("planes", "plane", 1.6, ("flies", "fly")),
    "mat": Thing("mats", "box", 2.4, ("lies", "lie")),
    "wallet": Thing("wallets", "wallet", 1.4, ("lies", "lie")),
    "jar": Thing("jars", "jar", 0.8, ("sits", "sit")),
}
GENERAL_OBJECTS = ("balloon", "kite", "boat", "tent", "umbrella", "car")
SECTION_OBJECT_SHARE = 0.7  # otherwise a general object

# Shapes in unit coordinates of the object's bounding box, one line each: parts separated by
# ";", each "kind coords", kind one of rect/ellipse (x0 y0 x1 y1), pie (x0 y0 x1 y1 start end)
# or poly (x,y points); a "*" after the kind paints the part in the darker detail shade
# (wheels, sticks, seams). "star" is computed.
# fmt: off
SHAPE_SPECS: dict[str, str] = {
    "disc": "ellipse 0 0 1 1",
    "box": "rect 0 0 1 1; rect* 0 .9 1 1",
    "balloon": "ellipse 0 0 1 .82; poly .44,.86 .56,.86 .5,.8; rect* .49 .84 .52 1",
    "kite": "poly .5,0 1,.36 .5,.86 0,.36; poly* .48,.84 .52,.84 .6,1 .56,1",
    "boat": "poly 0,.66 1,.66 .82,1 .18,1; poly .46,0 .46,.62 .08,.62; "
            "poly .54,.08 .54,.62 .88,.62; rect* .46 0 .54 .66",
    "tent": "poly .5,0 1,1 0,1; poly* .5,.5 .6,1 .4,1",
    "umbrella": "pie 0 0 1 1.1 180 360; rect* .47 .54 .53 1",
    "car": "rect 0 .38 1 .82; poly .2,.4 .3,0 .72,0 .84,.4; ellipse* .12 .64 .32 1; "
           "ellipse* .68 .64 .88 1",
    "bottle": "rect .05 .32 .95 1; rect .33 .06 .67 .34; rect* .33 0 .67 .07",
    "star": "star",
    "canvas": "rect* .18 .7 .26 1; rect* .74 .7 .82 1; rect 0 0 1 .82",
    "book": "rect 0 0 1 1; rect* 0 0 .1 1",
    "lamp": "poly .2,0 .8,0 1,.5 0,.5; rect* .45 .5 .55 .9; rect .15 .88 .85 1",
    "mug": "ellipse* .6 .25 1 .75; rect 0 .05 .8 1",
    "dress": "poly .3,0 .7,0 .74,.35 1,1 0,1 .26,.35",
    "fan": "pie 0 0 1 2 180 360; rect* .46 .85 .54 1",
    "drum": "ellipse 0 .72 1 1; rect 0 .16 1 .86; ellipse* 0 0 1 .3",
    "coin": "ellipse 0 0 1 1; ellipse* .14 .14 .86 .86; ellipse .2 .2 .8 .8",
    "crate": "rect* 0 0 1 1; rect .08 .08 .92 .92",
    "flag": "rect* 0 0 .06 1; poly .06,0 1,.06 .97,.62 .06,.66",
    "globe": "ellipse 0 0 1 1; rect* .48 0 .52 1; rect* 0 .48 1 .52",
    "backpack": "rect* .3 0 .7 .16; rect 0 .1 1 1; rect* .15 .6 .85 .64",
    "hat": "ellipse 0 .72 1 1; rect .22 .08 .78 .86; rect* .22 .62 .78 .72",
    "handbag": "rect* .25 0 .75 .08; rect* .25 0 .31 .36; rect* .69 0 .75 .36; "
               "poly .1,.34 .9,.34 1,1 0,1",
    "plate": "ellipse 0 0 1 1; ellipse* .16 .16 .84 .84; ellipse .2 .2 .8 .8",
    "bowl": "pie 0 -.9 1 1 0 180; rect* 0 .02 1 .1",
    "cake": "rect 0 .4 1 1; rect .14 .05 .86 .42; rect* .14 .36 .86 .42",
    "container": "rect 0 0 1 1; rect* .2 .08 .23 .92; rect* .4 .08 .43 .92; rect* .6 .08 .63 .92; "
                 "rect* .8 .08 .83 .92",
    "tower": "rect 0 .08 1 1; poly 0,.08 .5,0 1,.08; rect* .4 .8 .6 1",
    "heart": "ellipse 0 0 .56 .56; ellipse .44 0 1 .56; poly .03,.38 .97,.38 .5,1",
    "apple": "ellipse 0 .12 1 1; rect* .47 0 .54 .2",
    "camera": "rect .3 .05 .6 .25; rect 0 .2 1 1; ellipse* .32 .36 .68 .86; ellipse .4 .46 .6 .76",
    "microphone": "ellipse .1 0 .9 .5; rect .38 .42 .62 1; rect* .1 .22 .9 .27",
    "tv": "rect 0 0 1 .86; rect* .42 .86 .58 .95; rect* .25 .94 .75 1",
    "ticket": "rect 0 0 1 1; rect* .7 0 .73 1",
    "guitar": "rect* .42 0 .58 .36; ellipse .12 .28 .88 .68; ellipse 0 .5 1 1; "
              "ellipse* .4 .62 .6 .76",
    "megaphone": "poly 0,.32 .3,.32 1,0 1,1 .3,.68 0,.68",
    "house": "rect .1 .45 .9 1; poly 0,.48 .5,0 1,.48; rect* .42 .7 .58 1",
    "door": "rect 0 0 1 1; ellipse* .74 .5 .86 .57",
    "rocket": "poly* .3,.6 0,1 .3,.86; poly* .7,.6 1,1 .7,.86; "
              "poly .5,0 .72,.25 .72,.9 .28,.9 .28,.25; ellipse* .4 .32 .6 .44",
    "planet": "ellipse* 0 .42 1 .58; ellipse .15 0 .85 1",
    "flask": "poly .36,0 .64,0 .64,.35 1,1 0,1 .36,.35",
    "trophy": "pie .05 -.25 .95 .6 0 180; rect .43 .35 .57 .82; rect* .2 .8 .8 1",
    "goal": "rect 0 0 1 1; rect* .25 0 .28 1; rect* .5 0 .53 1; rect* .75 0 .78 1; "
            "rect* 0 .5 1 .53",
    "laptop": "rect .1 0 .9 .78; poly* .08,.8 .92,.8 1,1 0,1",
    "robot": "rect .28 0 .72 .3; rect .08 .32 .92 .88; rect* .2 .88 .38 1; rect* .62 .88 .8 1; "
             "ellipse* .36 .1 .46 .18; ellipse* .54 .1 .64 .18",
    "sofa": "rect .08 .05 .92 .5; rect 0 .42 1 .88; rect* .06 .86 .14 1; rect* .86 .86 .94 1",
    "mask": "ellipse 0 0 1 1; ellipse* .2 .3 .4 .45; ellipse* .6 .3 .8 .45",
    "suitcase": "rect* .35 0 .65 .2; rect 0 .14 1 1",
    "plane": "ellipse 0 .38 1 .62; poly .36,.5 .6,.5 .46,0 .38,0; poly .36,.5 .6,.5 .46,1 .38,1; "
             "poly 0,.5 .12,.5 .08,.14 0,.14",
    "wallet": "rect 0 0 1 1; poly* .55,.3 1,.3 1,.7 .55,.7",
    "jar": "rect 0 .18 1 1; rect* .1 0 .9 .18",
}
# fmt: on


def _parse_shape(spec: str) -> tuple[tuple, ...]:
    """``"rect 0 0 1 1; ellipse* .1 .1 .3 .3"`` -> ``(("rect", 0, 0, 1, 1, 0), ...)``."""
    if spec == "star":
        points = tuple(
            (0.5 + r * math.sin(i * math.pi / 5), 0.53 - r * math.cos(i * math.pi / 5))
            for i, r in enumerate([0.5, 0.22] * 5)
        )
        return (("poly", points, 0),)
    parts = []
    for part in spec.split(";"):
        kind, *coords = part.split()
        detail = int(kind.endswith("*"))
        kind = kind.rstrip("*")
        if kind == "poly":
            points = tuple(tuple(float(c) for c in xy.split(",")) for xy in coords)
            parts.append((kind, points, detail))
        else:
            parts.append((kind, *(float(c) for c in coords), detail))
    return tuple(parts)


SHAPES: dict[str, tuple[tuple, ...]] = {name: _parse_shape(s) for name, s in SHAPE_SPECS.items()}

# Each section's look: its own objects and a motif (style x accent colour) in the picture.
MOTIF_STYLES = (
    "top_band",
    "bottom_band",
    "frame",
    "corner",
    "stripes_top",
    "checker_bottom",
    "twin_bands",
    "dots_top",
)
MOTIF_ACCENTS: dict[str, RGB] = {
    "teal": (0, 140, 140),
    "magenta": (200, 0, 120),
    "olive": (165, 158, 0),
}
COUNT_WORDS = {2: "two", 3: "three", 4: "four"}


@dataclass(frozen=True)
class SectionStyle:
    """What a section's pictures and texts share: objects, tags and its kind of prose.

    ``contexts`` end headlines ("at the season opener"), ``topics`` start them ("Cup final: ..."),
    ``tails`` close the lead paragraph and ``fillers`` make the later paragraphs. Tails and fillers
    never name a colour, an object, a count or a scene (a test checks), so only the lead ties the
    text to the picture, as in real news.
    """

    objects: tuple[str, ...]
    tags: tuple[str, ...]
    topics: tuple[str, ...]
    contexts: tuple[str, ...]
    tails: tuple[str, ...]
    fillers: tuple[str, ...]


# One block per section: "== Section", then "field: value" lines; list fields separate their
# items with " | ", and each "tail:" or "filler:" line adds one sentence. Lines starting with two
# spaces continue the line above. Placeholders in braces are filled by _Writer._fill.
SECTION_TEXT = """
== Art & Design
objects: vase | sculpture | canvas
tags: art | design | exhibitions | museums
topics: Gallery opening | Design week | Art fair
contexts: at a new gallery show | as design week opens | in an open-air art installation
tail: The work, by the artist {name}, goes on show at the {town} Museum of Art next week.
tail: Curators in {town} said the piece was made to be seen from every angle.
filler: The exhibition brings together {num} works made over the past decade.
filler: {name}, who curated the show, said the artists share an interest in everyday materials.
filler: Admission is free on the first Sunday of each month.
filler: Critics have praised the way the galleries lead visitors from room to room.
filler: The museum plans to tour the collection to {town} next year.
== Automobiles
objects: car | truck | van
tags: autos | motoring | electric-vehicles
topics: Auto show | Road test | New models
contexts: at the auto show | as electric models arrive | ahead of a new vehicle launch
tail: The vehicles were unveiled by a carmaker from {town} ahead of the motor show.
tail: Dealers in {town} expect the models to reach showrooms by autumn.
filler: The company said its new battery offers a range of about {big} miles on a charge.
filler: Prices start at just under ${num},000 before tax credits.
filler: {name}, an industry analyst, said demand for electric vehicles had cooled this year.
filler: The carmaker has invested heavily in a plant outside {town}.
filler: Reviewers praised the quiet cabin but questioned the charging times.
== Books
objects: book | lamp | mug
tags: literature | reading | authors
topics: Literary festival | New fiction | Reading list
contexts: at a literary festival | as a new novel is released | at a reading for young authors
tail: The display marked the launch of {name}'s new novel at the {town} literary festival.
tail: Publishers in {town} said the season's fiction list was the strongest in years.
filler: The novel follows a family over {num} years of upheaval.
filler: {name}'s debut sold more than {num},000 copies in its first month.
filler: The author will read from the new work at libraries across the region.
filler: Critics called the prose spare and unsentimental.
filler: Independent shops in {town} reported strong sales of the paperback.
== Dance
objects: dress | fan | drum
tags: dance | ballet | performance
topics: Dance festival | Ballet premiere | Choreography
contexts: at a dance festival | as the ballet season opens | during a new dance premiere
tail: The company, led by the choreographer {name}, performs in {town} this week.
tail: Dancers from {town} rehearsed the piece for months before the premiere.
filler: The choreography blends classical steps with hip-hop.
filler: The company's {num} dancers rehearse six days a week.
filler: {name} said the score was written especially for the production.
filler: Performances run through the end of the month at the {town} Opera Hall.
filler: Critics praised the duet in the second act.
== Economy
objects: coin | crate | flag
tags: economy | inflation | markets
topics: Economic outlook | Inflation report | Jobs data
contexts: as inflation cools | ahead of the jobs report | as the central bank meets
tail: The display outside the {town} exchange was part of a campaign on household costs.
tail: Economists in {town} said the picture captured the mood of the markets.
filler: Consumer prices rose {pct} percent over the past year.
filler: The central bank is expected to hold interest rates steady next month.
filler: {name}, chief economist at a bank in {town}, said growth remained uneven.
filler: Hiring slowed in manufacturing but picked up in services.
filler: Wages have grown faster than prices for the first time in {num} months.
== Education
objects: globe | backpack | book
tags: education | schools | students
topics: Back to school | Classroom | Campus life
contexts: as the school year begins | at a school open day | on the first day of term
tail: Teachers at a school in {town} set up the display for their new pupils.
tail: The school district in {town} said enrolment had risen this year.
filler: The district employs about {big} teachers across its schools.
filler: {name}, a principal in {town}, said class sizes were still too large.
filler: The state has promised new funding for reading programmes.
filler: Students will sit their exams in the spring.
filler: Parents raised concerns about the cost of supplies at a recent meeting.
== Fashion
objects: dress | hat | handbag
tags: fashion | runway | designers
topics: Fashion week | Runway report | Spring collections
contexts: at fashion week | on the runway this season | in a new spring collection
tail: The look opened the show by the designer {name} in {town}.
tail: Buyers in {town} said the collection would be in stores by autumn.
filler: The collection drew on archive pieces from the label's early years.
filler: {name} has designed for the label since {year}.
filler: Models walked to a live string quartet.
filler: Editors in the front row applauded the tailoring.
filler: The brand said it would cut its use of new fabrics by half.
== Food
objects: plate | bowl | cake
tags: food | cooking | restaurants
topics: Food festival | Recipe of the week | Restaurant review
contexts: at a harvest food festival | in a new restaurant | for a weekend cooking class
tail: The chef {name} prepared the dishes for a tasting menu in {town}.
tail: Cooks in {town} said the festival drew record crowds this year.
filler: The tasting menu changes with the seasons and costs ${num} a head.
filler: {name} trained in kitchens across Europe before opening the restaurant in {year}.
filler: Most of the produce comes from farms within an hour of {town}.
filler: Reservations open at the start of each month and fill quickly.
filler: The recipe calls for slow roasting and plenty of fresh herbs.
== Global Business
objects: ship | container | tower
tags: business | trade | companies
topics: Global trade | Business report | Supply chains
contexts: as global trade picks up | at a busy port | as new tariffs take effect
tail: The picture was taken at the port of {town}, where cargo volumes have climbed.
tail: Executives in {town} said freight costs were finally falling.
filler: Exports rose {pct} percent in the last quarter.
filler: {name}, who heads a logistics firm in {town}, said delays had eased.
filler: The company reported quarterly revenue above analysts' forecasts.
filler: Trade officials are due to meet in {town} next month.
filler: Shares of the group rose after the results were published.
== Health
objects: heart | bottle | apple
tags: health | medicine | hospitals
topics: Health campaign | Medical research | Public health
contexts: in a public health campaign | as a new clinic opens | for a hospital fundraiser
tail: The image was made for a campaign by the {town} health department.
tail: Doctors in {town} said the campaign had already changed habits.
filler: The study followed {big} patients over {num} years.
filler: {name}, a physician in {town}, said early screening saves lives.
filler: The hospital plans to add {num} beds by next year.
filler: Researchers cautioned that the findings need to be confirmed.
filler: Health officials urged residents to get vaccinated before the autumn.
== Media
objects: camera | microphone | screen
tags: media | journalism | newsrooms
topics: Media | Newsroom | Broadcasting
contexts: at a newsroom open day | as a new podcast launches | at the press awards
tail: The setup belongs to a radio station in {town} celebrating its anniversary.
tail: Journalists in {town} said the awards honoured local reporting.
filler: The network said its audience had grown {pct} percent this year.
filler: {name}, the station's editor, said trust in local news remained high.
filler: The newspaper will end its print edition next spring.
filler: Advertising revenue continued to fall across the industry.
filler: The podcast reaches about {num},000 listeners a week.
== Movies
objects: ticket | screen | spotlight
tags: movies | film | cinema
topics: Film festival | Box office | Premiere
contexts: at the film festival | ahead of a movie premiere | as the box office recovers
tail: The scene appears in the new film by the director {name}, opening in {town} soon.
tail: Cinemas in {town} reported their busiest weekend of the year.
filler: The film runs about {mins} minutes.
filler: {name} plays a retired detective drawn into a final case.
filler: The movie earned ${num} million in its opening weekend.
filler: Critics praised the score and the cinematography.
filler: The director shot most of the film on location near {town}.
== Music
objects: guitar | drum | microphone
tags: music | concerts | albums
topics: Concert review | New album | Music festival
contexts: at a music festival | before a sold-out concert | as the band's new album drops
tail: The band, fronted by {name}, plays {town} on the last date of its tour.
tail: Promoters in {town} said the festival sold out within hours.
filler: The album was recorded in {num} days in a studio outside {town}.
filler: {name} wrote most of the songs during the pandemic.
filler: The tour will visit {num} venues across the country.
filler: Critics called the record the band's most ambitious yet.
filler: The encore drew the loudest cheers of the show.
== Opinion
objects: flag | megaphone | umbrella
tags: opinion | politics | debate
topics: Opinion | Our view | Guest essay
contexts: at a rally for change | as the debate heats up | in a protest outside the council
tail: The protest outside {town} council was the largest in years, the writer {name} argues.
tail: Readers in {town} have written to us about the protest in large numbers.
filler: It is time for lawmakers to listen to the people they represent.
filler: {name} is a columnist and the author of a history of civic protest.
filler: The debate over the budget has exposed deep divisions.
filler: Compromise is not weakness; it is how democracies work.
filler: Voters will have their say at the ballot box next year.
== Real Estate
objects: house | door | tower
tags: real-estate | housing | property
topics: Real estate | Housing market | Home of the week
contexts: in a new housing development | as home prices climb | at a property viewing
tail: The property in {town} went on the market this month.
tail: Agents in {town} said buyers were returning after a slow spring.
filler: The median price in the area rose {pct} percent from a year earlier.
filler: {name}, a broker in {town}, said listings had been scarce.
filler: Mortgage rates edged lower this week.
filler: The development will include {big} apartments and a public park.
filler: Planning approval is expected by the end of the year.
== Science
objects: rocket | planet | flask
tags: science | space | research
topics: Science | Space | Research
contexts: at a science fair | as a space mission nears launch | in a university laboratory
tail: Researchers at the {town} institute built the model for a public science week.
tail: Scientists in {town} said the project had inspired a new generation of students.
filler: The mission is scheduled to launch next spring.
filler: {name}, an astrophysicist, said the data could reshape existing models.
filler: The experiment took {num} months to design.
filler: The findings were published in a peer-reviewed journal this week.
filler: Funding for the laboratory was renewed for another {small} years.
== Sports
objects: ball | trophy | goal
tags: sports | football | league
topics: Cup final | Season opener | League report
contexts: at the season opener | ahead of the cup final | as the league resumes
tail: Supporters gathered before the match between {town} and its local rivals.
tail: The club said the display was part of the build-up to the league final in {town}.
filler: The team has won {small} of its last 10 matches.
filler: {name}, the coach, said the squad was fit and ready.
filler: The striker scored twice in the first half.
filler: Kickoff is scheduled for 3 p.m. local time.
filler: The league title will be decided on the final day of the season.
== Style
objects: hat | handbag | umbrella
tags: style | trends | lifestyle
topics: Style | Trend report | What to wear
contexts: in this season's trend report | at a vintage market | on the style pages this week
tail: The stylist {name} picked the look for a shoot in {town}.
tail: Shoppers in {town} have been snapping up the trend all season.
filler: Vintage pieces are selling faster than ever online.
filler: {name} recommends pairing bold accessories with simple tailoring.
filler: The trend started on social media before reaching the shops.
filler: Prices range from ${num} to several hundred dollars.
filler: Stylists say the look works for almost any occasion.
== Technology
objects: laptop | phone | robot
tags: technology | gadgets | startups
topics: Tech | Gadget review | Startups
contexts: at a technology expo | as a new device goes on sale | at a startup demo day
tail: The startup, founded by {name}, showed the product at an expo in {town}.
tail: Engineers in {town} said the prototype took a year to build.
filler: The device runs on a new chip that uses {pct} percent less power.
filler: {name}, the company's chief executive, said sales would begin next quarter.
filler: Privacy advocates raised questions about how data would be stored.
filler: The software update adds support for {num} languages.
filler: Investors poured ${num} million into the company last year.
== Television
objects: television | sofa | camera
tags: television | tv | streaming
topics: TV review | Streaming | This week on TV
contexts: in a new streaming series | as the new TV season begins | on the set of a hit show
tail: The scene comes from the new series created by {name}, filmed near {town}.
tail: Viewers in {town} made the show the most watched of the week.
filler: The series returns for a second season in the autumn.
filler: {name} plays a detective with a complicated past.
filler: Each episode runs about {num} minutes.
filler: The streaming service said the premiere drew {big},000 viewers.
filler: Critics praised the writing and the ensemble cast.
== Theater
objects: mask | curtain | spotlight
tags: theater | stage | drama
topics: Theater review | On stage | Stage premiere
contexts: at a theater premiere | before the show begins | in a new stage production
tail: The production, directed by {name}, runs at the {town} Civic Theater until next month.
tail: Actors in {town} rehearsed for weeks before the premiere.
filler: The play runs about {mins} minutes with an intermission.
filler: {name} gives a commanding performance in the lead role.
filler: The set design turns the small stage into a crowded port.
filler: The run has been extended by {small} weeks due to demand.
filler: The playwright drew on family stories for the script.
== Travel
objects: suitcase | plane | balloon
tags: travel | tourism | holidays
topics: Travel | Weekend getaway | Destinations
contexts: as the holiday season begins | on a weekend getaway | as tourists return
tail: Travellers passing through {town} stopped to take pictures of the scene.
tail: Tourism officials in {town} said visitor numbers were up this year.
filler: Flights from the capital take about {small} hours.
filler: {name}, a travel writer, recommends visiting outside the peak months.
filler: Hotels in the region reported occupancy of {num} percent.
filler: Local guides offer walking tours in several languages.
filler: The region's rail link reopened after repairs this year.
== Well
objects: apple | mat | bottle
tags: wellness | fitness | wellbeing
topics: Well | Fitness | Healthy habits
contexts: at a morning yoga class | in a wellness retreat | as a fitness challenge begins
tail: The instructor {name} leads the class in {town} every weekend.
tail: Participants in {town} said the routine helped them sleep better.
filler: Experts recommend at least 150 minutes of moderate exercise a week.
filler: {name}, a fitness coach, says consistency matters more than intensity.
filler: Stretching before bed can improve sleep quality, studies suggest.
filler: Drinking enough water is easy to overlook in busy weeks.
filler: The class is free for residents of {town} over 65.
== Your Money
objects: coin | wallet | jar
tags: savings | budgeting | money
topics: Your money | Savings | Budgeting
contexts: in a savings campaign | as interest rates change | for a lesson in budgeting
tail: The picture illustrates advice from the financial planner {name} in {town}.
tail: Savers in {town} are moving money into higher-yield accounts.
filler: High-yield savings accounts now pay about {pct} percent.
filler: {name}, a financial planner, suggests keeping six months of expenses in reserve.
filler: Credit card balances have climbed to a record.
filler: Automating transfers on payday makes saving easier.
filler: Check fees carefully before switching banks.
"""


def _parse_sections(text: str) -> dict[str, SectionStyle]:
    lines: list[str] = []
    for line in text.strip().splitlines():
        if line.startswith("  "):
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    sections: dict[str, dict[str, list[str]]] = {}
    for line in lines:
        if line.startswith("== "):
            fields = sections.setdefault(line[3:], {})
            continue
        key, value = line.split(": ", 1)
        if key in ("tail", "filler"):
            fields.setdefault(key + "s", []).append(value)
        else:
            fields[key] = value.split(" | ")
    return {
        name: SectionStyle(**{k: tuple(v) for k, v in f.items()}) for name, f in sections.items()
    }


SECTIONS: dict[str, SectionStyle] = _parse_sections(SECTION_TEXT)
GENERIC_FILLERS = (
    "{name} said the plans had been months in the making.",
    "Officials in {town} are expected to publish more details later this month.",
    "The announcement drew a mixed response from local residents.",
    "A spokesperson for the organisers declined to comment on the cost.",
    "Similar events in {town} have drawn about {num},000 visitors in recent years.",
    '"We wanted to do something people would remember," {name} said.',
    "The project was funded in part by a regional grant awarded in {year}.",
    "Organisers said they would review the results before planning next year's edition.",
    "Local businesses reported a busy weekend as crowds arrived from across the region.",
    "Further events are planned for the autumn, according to a statement.",
    "{name}, who has followed the issue for years, called it an encouraging sign.",
    "Critics argue that the money could have been spent elsewhere.",
    "The council is due to discuss the matter at its next meeting.",
    "Residents of {town} were invited to share their views online.",
    "The organisers thanked volunteers who worked through the weekend.",
)
FIRST_NAMES = (
    "Jane", "Omar", "Lucia", "Kenji", "Amara", "Tom", "Priya", "Mateo", "Sofia", "Daniel",
    "Ines", "Yusuf", "Clara", "Noah", "Mei", "Elena", "Samuel", "Hana", "Victor", "Grace",
)  # fmt: skip
LAST_NAMES = (
    "Doe", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Brennan",
    "Kowalski", "Mendes", "Fischer", "Adeyemi", "Rossi", "Nakamura", "Duarte", "Whitfield",
    "Keller", "Osei", "Varga",
)  # fmt: skip
TOWNS = (
    "Halden", "Port Ellis", "Marrow Bay", "Stonebridge", "Ashford", "Kingsreach", "Elmwood",
    "Northvale", "Riverton", "Castlemoor", "Fairhaven", "Oakridge",
)  # fmt: skip
AGENCIES = ("Harbor Photo Agency", "Northlight Pictures", "Wire Images Collective", "Frame Press")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Site:
    domain: str  # www.<domain>.example
    name: str
    template: str  # a key of TEMPLATES


SITES = (
    Site("dailyharbor", "The Daily Harbor", "classic"),
    Site("metroledger", "Metro Ledger", "modern"),
    Site("northgazette", "North Gazette", "magazine"),
    Site("valleyherald", "Valley Herald", "wordpress"),
)
FAULT_KINDS = ("missing", "empty", "html", "truncated", "tiny")
VARIED = ("colour", "obj", "count", "scene")  # what a distractor changes, one at a time
DISTRACTORS_PER_ARTICLE = 5
JPEG_QUALITY = 85

# --- the plan: every decision, made from the seed before anything is written ---------------------


@dataclass(frozen=True)
class Attributes:
    """What a picture shows; texts name all of it but the motif, which the section implies."""

    section: str
    scene: str
    obj: str
    colour: str
    count: int

    def differences(self, other: Attributes) -> list[str]:
        """Names of the fields in which ``other`` differs from this."""
        return [f for f in ("section", *VARIED) if getattr(self, f) != getattr(other, f)]


@dataclass(frozen=True)
class Picture:
    attrs: Attributes
    width: int
    height: int
    seed: int  # drives placement, sizes and noise, so equal attributes still give new pixels


@dataclass(frozen=True)
class Article:
    """A NewsImages article, its saved page and its original picture."""

    article_id: str
    site: Site
    url: str
    title: str
    tags: str
    image_id: str
    image_url: str
    picture: Picture
    paragraphs: tuple[str, ...]  # the first is the lead
    description: str
    caption: str
    credit: str
    author: str
    published: str  # ISO 8601, UTC
    town: str  # the dateline
    page: str = "full"  # "full", "missing" (no html file) or "paywall" (no body paragraphs)
    related: tuple[tuple[str, str], ...] = ()  # (headline, url) of other articles

    @property
    def lead(self) -> str:
        return self.paragraphs[0]

    def csv_row(self) -> dict[str, str]:
        return {
            "article_id": self.article_id,
            "article_url": self.url,
            "article_title": self.title,
            "article_tags": self.tags,
            "image_id": self.image_id,
            "image_url": self.image_url,
        }


@dataclass(frozen=True)
class PoolImage:
    """One manifest row of the YFCC-style pool and what its bucket object is."""

    photo_id: int
    hash: str
    role: str  # "distractor", "random" or "fault"
    picture: Picture | None  # None for faults that hold no picture
    of_article: str | None = None  # distractors: the article they imitate
    changed: str | None = None  # distractors: the one attribute that differs
    fault: str | None = None  # faults: one of FAULT_KINDS

    @property
    def key(self) -> str:
        h = self.hash
        return f"{h[0:3]}/{h[3:6]}/{h}.jpg"


@dataclass(frozen=True)
class N24Item:
    split: str
    fields: dict[str, str]  # the N24News keys, in N24NEWS_FIELDS order
    picture: Picture


@dataclass(frozen=True)
class SamplePlan:
    seed: int
    articles: tuple[Article, ...]
    pool: tuple[PoolImage, ...]
    n24news: tuple[N24Item, ...]

    def counts(self) -> dict[str, int]:
        roles = [p.role for p in self.pool]
        faults = [p.fault for p in self.pool if p.fault]
        pages = [a.page for a in self.articles]
        counts = {
            "articles": len(self.articles),
            "html_pages": len(pages) - pages.count("missing"),
            "html_missing": pages.count("missing"),
            "html_paywalled": pages.count("paywall"),
            "newsimages": len(self.articles),
            "pool": len(self.pool),
            "pool_distractors": roles.count("distractor"),
            "pool_random": roles.count("random"),
            "bucket_objects": len(self.pool) - faults.count("missing"),
            "faults": len(faults),
        }
        counts.update({f"faults_{kind}": faults.count(kind) for kind in FAULT_KINDS})
        splits = [item.split for item in self.n24news]
        counts.update({f"n24news_{s}": splits.count(s) for s in N24NEWS_SPLITS})
        return counts


def plan_sample(
    seed: int = 0,
    n_articles: int = 100,
    pool_size: int = 2000,
    n24news_per_section: tuple[int, int, int] = (40, 10, 10),
) -> SamplePlan:
    """Every attribute, text, id and fault of a sample, decided from ``seed`` alone.

    Cheap (no pixels): tests call it with :func:`generate`'s arguments to learn what each file
    should show, without the generator writing any extra file into the data folder.
    """
    _check_arguments(n_articles, pool_size, n24news_per_section)
    rng = random.Random(seed)
    writer = _Writer(rng)
    articles = _plan_articles(rng, writer, n_articles)
    pool = _plan_pool(rng, articles, pool_size)
    n24news = _plan_n24news(rng, writer, n24news_per_section)
    return SamplePlan(seed, articles, pool, n24news)


def _check_arguments(n_articles: int, pool_size: int, per_section: Sequence[int]) -> None:
    if n_articles < 1:
        raise ValueError(f"n_articles must be at least 1, got {n_articles}")
    n_faults = len(FAULT_KINDS) * _faults_per_kind(pool_size)
    if pool_size < n_faults + n_articles:
        raise ValueError(
            f"pool_size {pool_size} is too small: it must hold {n_faults} faults and at least "
            f"one distractor for each of the {n_articles} articles"
        )
    if len(per_section) != len(N24NEWS_SPLITS) or min(per_section) < 1:
        raise ValueError(
            f"n24news_per_section must be {len(N24NEWS_SPLITS)} counts >= 1 "
            f"({', '.join(N24NEWS_SPLITS)}), got {tuple(per_section)}"
        )


def _faults_per_kind(pool_size: int) -> int:
    """0.2% of the pool per kind (1% in all), but at least one of each kind in any sample."""
    return max(1, pool_size // 500)


def _random_attributes(rng: random.Random, section: str | None = None) -> Attributes:
    section = section or rng.choice(N24NEWS_SECTIONS)
    return Attributes(
        section=section,
        scene=rng.choice(list(SCENES)),
        obj=_random_object(rng, section),
        colour=rng.choice(list(COLOURS)),
        count=rng.randint(1, 4),
    )


def _random_object(rng: random.Random, section: str) -> str:
    if rng.random() < SECTION_OBJECT_SHARE:
        return rng.choice(SECTIONS[section].objects)
    return rng.choice(GENERAL_OBJECTS)


def _vary(rng: random.Random, attrs: Attributes, field: str) -> Attributes:
    """``attrs`` with ``field`` changed to another value, everything else kept."""
    choices = {
        "colour": list(COLOURS),
        "scene": list(SCENES),
        "count": [1, 2, 3, 4],
        "obj": sorted(set(SECTIONS[attrs.section].objects) | set(GENERAL_OBJECTS)),
    }[field]
    current = getattr(attrs, field)
    return replace(attrs, **{field: rng.choice([c for c in choices if c != current])})


def _picture(rng: random.Random, attrs: Attributes) -> Picture:
    """A picture of ``attrs`` in a random format: landscape, portrait or square, 160-320 px."""
    shape = rng.choices(("landscape", "portrait", "square"), weights=(55, 30, 15))[0]
    if shape == "square":
        width = height = rng.randint(170, 280)
    else:
        long = rng.randint(200, 300)
        short = max(160, round(long / rng.choice((4 / 3, 3 / 2))))
        width, height = (long, short) if shape == "landscape" else (short, long)
    return Picture(attrs, width, height, rng.getrandbits(63))


def _plan_articles(rng: random.Random, writer: _Writer, n: int) -> tuple[Article, ...]:
    sites = [SITES[i % len(SITES)] for i in range(n)]
    rng.shuffle(sites)
    articles = [_plan_article(rng, writer, str(i + 1), site) for i, site in enumerate(sites)]
    if n >= 4:  # two deliberately hard pages: no html at all, and a paywall without paragraphs
        missing, paywall = rng.sample(range(n), 2)
        articles[missing] = replace(articles[missing], page="missing")
        articles[paywall] = replace(articles[paywall], page="paywall")
    for i, article in enumerate(articles):
        others = [a for a in articles if a is not article]
        picked = rng.sample(others, min(len(others), rng.randint(3, 4)))
        articles[i] = replace(article, related=tuple((a.title, a.url) for a in picked))
    return tuple(articles)


def _plan_article(rng: random.Random, writer: _Writer, article_id: str, site: Site) -> Article:
    attrs = _random_attributes(rng)
    title = writer.headline(attrs)
    image_id = f"{rng.getrandbits(128):032X}"
    fillers = writer.filler_paragraphs(attrs.section, rng.randint(2, 5))
    return Article(
        article_id=article_id,
        site=site,
        url=f"https://www.{site.domain}.example/2025/06/{_slug(title)}",
        title=title,
        tags=",".join(writer.tags(attrs.section)),
        image_id=image_id,
        image_url=f"https://www.{site.domain}.example/images/{image_id}.jpg",
        picture=_picture(rng, attrs),
        paragraphs=(writer.lead(attrs), *fillers),
        description=writer.sentence_a(attrs),
        caption=writer.caption(attrs),
        credit=f"Photo: {writer.person()} / {rng.choice(AGENCIES)}",
        author=writer.person(),
        published=f"2025-06-{rng.randint(1, 28):02d}T{rng.randint(5, 22):02d}:"
        f"{rng.choice((0, 15, 30, 45)):02d}:00Z",
        town=rng.choice(TOWNS),
    )


def _plan_pool(rng: random.Random, articles: Sequence[Article], size: int) -> tuple[PoolImage, ...]:
    """Distractors for every article, faults, and random pictures for the rest, shuffled."""
    n_faults = len(FAULT_KINDS) * _faults_per_kind(size)
    per_article = min(DISTRACTORS_PER_ARTICLE, (size - n_faults) // len(articles))
    taken = {a.picture.attrs for a in articles}
    entries: list[tuple[str, Picture | None, str | None, str | None, str | None]] = []
    for article in articles:
        fields = [*VARIED, rng.choice(VARIED)][:per_article]
        rng.shuffle(fields)
        for field in fields:
            attrs = _vary(rng, article.picture.attrs, field)
            entries.append(("distractor", _picture(rng, attrs), article.article_id, field, None))
    for kind in FAULT_KINDS:
        for _ in range(_faults_per_kind(size)):
            picture = _picture(rng, _random_attributes(rng)) if kind == "truncated" else None
            entries.append(("fault", picture, None, None, kind))
    while len(entries) < size:
        attrs = _random_attributes(rng)
        if attrs not in taken:  # a random picture never shows exactly what an article shows
            entries.append(("random", _picture(rng, attrs), None, None, None))
    rng.shuffle(entries)
    hashes = _unique(lambda: f"{rng.getrandbits(128):032x}", size)
    photo_ids = _unique(lambda: rng.randrange(10**8, 10**10), size)
    return tuple(
        PoolImage(pid, h, role, picture, of, changed, fault)
        for (role, picture, of, changed, fault), h, pid in zip(
            entries, hashes, photo_ids, strict=True
        )
    )


def _unique(draw: Callable[[], object], n: int) -> list:
    seen: dict[object, None] = {}
    while len(seen) < n:
        seen[draw()] = None
    return list(seen)


def _plan_n24news(
    rng: random.Random, writer: _Writer, per_section: Sequence[int]
) -> tuple[N24Item, ...]:
    items = []
    for split, k in zip(N24NEWS_SPLITS, per_section, strict=True):
        in_split = [
            _plan_n24_item(rng, writer, split, section)
            for section in N24NEWS_SECTIONS
            for _ in range(k)
        ]
        rng.shuffle(in_split)
        items += in_split
    return tuple(items)


def _plan_n24_item(rng: random.Random, writer: _Writer, split: str, section: str) -> N24Item:
    attrs = _random_attributes(rng, section)
    headline = writer.headline(attrs)
    image_id = f"{rng.getrandbits(128):032x}"
    date = f"{rng.randint(2018, 2020)}/{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}"
    folder = re.sub(r"[^a-z]+", "-", section.lower()).strip("-")
    fields = {
        "section": section,
        "headline": headline,
        "abstract": writer.sentence_a(attrs),
        "caption": writer.caption(attrs, credit=rng.random() < 0.5),
        "article": writer.body(attrs, words=rng.randint(120, 300)),
        "image_id": image_id,
        "image_url": f"https://static01.nyt.example/images/{date}/{folder}/{image_id}.jpg",
        "article_url": f"https://www.nytimes.example/{date}/{folder}/{_slug(headline)}.html",
    }
    return N24Item(split, fields, _picture(rng, attrs))


def _slug(text: str, words: int = 8) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower())[:words])


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class _Writer:
    """Texts for pictures: every headline, lead, abstract and caption names the colour, object,
    count and scene; filler paragraphs speak only of the section.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def person(self) -> str:
        return f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"

    def tags(self, section: str) -> list[str]:
        tags = SECTIONS[section].tags
        return self.rng.sample(tags, self.rng.randint(2, len(tags)))

    def _fill(self, template: str) -> str:
        r = self.rng
        return template.format(
            name=self.person(),
            town=r.choice(TOWNS),
            num=r.randint(5, 90),
            big=r.randint(120, 900),
            pct=f"{r.uniform(1.5, 9.5):.1f}",
            year=r.randint(2008, 2022),
            small=r.randint(5, 9),
            mins=r.randint(95, 170),
        )

    def _parts(self, a: Attributes) -> dict[str, str]:
        """The words that name a picture: quantity + colour, noun, verb, scene, section context."""
        r, thing, style = self.rng, OBJECTS[a.obj], SECTIONS[a.section]
        if a.count == 1:
            article = "an" if a.colour[0] in "aeiou" else "a"
            quantity = r.choices((article, "one", "a single"), weights=(6, 2, 2))[0]
        else:
            quantity = COUNT_WORDS[a.count]
        return {
            "q": f"{quantity} {a.colour}",
            "n": thing.plural if a.count > 1 else a.obj,
            "v": thing.verbs[a.count > 1],
            "scene": r.choice(SCENES[a.scene].phrases),
            "ctx": r.choice(style.contexts),
            "topic": r.choice(style.topics),
            "colour": a.colour,
            "desc": SCENES[a.scene].description,
            "s": "" if a.count > 1 else "s",
        }

    def headline(self, a: Attributes) -> str:
        p = self._parts(a)
        template = self.rng.choice(
            (
                "{q} {n} {v} {scene} {ctx}",
                "{topic}: {q} {n} {v} {scene}",
                "{q} {n} {scene} steal{s} the show {ctx}",
            )
        )
        return _cap(template.format(**p))

    def sentence_a(self, a: Attributes) -> str:
        """One sentence naming every attribute and the section's context."""
        p = self._parts(a)
        template = self.rng.choice(
            (
                "{q} {n} {v} {scene} {ctx} on {day}, drawing a crowd of onlookers.",
                "{scene}, {q} {n} {v} {ctx}.",
                "It was {q} {n} {scene} that drew the most attention {ctx}.",
            )
        )
        return _cap(template.format(day=self.rng.choice(WEEKDAYS), **p))

    def _sentence_b(self, a: Attributes) -> str:
        """A second sentence that repeats colour, count and object and describes the scene."""
        p = self._parts(a)
        if a.count == 1:
            there = "There was just one {n}, painted {colour}, set against {desc}."
        else:
            there = "There were " + COUNT_WORDS[a.count] + " {n}, each painted {colour}, set "
            there += "against {desc}."
        template = self.rng.choice(
            (
                there,
                "The {colour} {n} fill{s} much of the picture, framed by {desc}.",
                "Against {desc}, the {colour} of the {n} is impossible to miss.",
            )
        )
        return template.format(**p)

    def lead(self, a: Attributes) -> str:
        tail = self._fill(self.rng.choice(SECTIONS[a.section].tails))
        return f"{self.sentence_a(a)} {self._sentence_b(a)} {tail}"

    def filler_paragraphs(self, section: str, n: int) -> list[str]:
        """``n`` paragraphs of 2-4 section sentences, no sentence used twice in one article."""
        pool = self.rng.sample([*SECTIONS[section].fillers, *GENERIC_FILLERS], k=4 * n)
        sizes = [self.rng.randint(2, 4) for _ in range(n)]
        starts = [sum(sizes[:i]) for i in range(n)]
        return [
            " ".join(self._fill(t) for t in pool[start : start + size])
            for start, size in zip(starts, sizes, strict=True)
        ]

    def body(self, a: Attributes, words: int) -> str:
        """An N24News article: the lead, then section filler up to about ``words`` words."""
        sentences = [self.lead(a)]
        pool: list[str] = []
        while sum(len(s.split()) for s in sentences) < words:
            if not pool:
                pool = [*SECTIONS[a.section].fillers, *GENERIC_FILLERS]
                self.rng.shuffle(pool)
            sentences.append(self._fill(pool.pop()))
        if len(sentences) > 2 and sum(len(s.split()) for s in sentences) > 300:
            sentences.pop()
        return " ".join(sentences)

    def caption(self, a: Attributes, credit: bool = False) -> str:
        p = self._parts(a)
        text = _cap(self.rng.choice(("{q} {n} {scene} {ctx}.", "{q} {n} {v} {scene}.")).format(**p))
        return f"{text} Credit: {self.person()} for The Times" if credit else text


# --- pictures -------------------------------------------------------------------------------------


def render(picture: Picture) -> Image.Image:
    """Draw ``picture``: scene layers, the objects, the section motif, then mild noise.

    The same picture always gives the same pixels (its own seeded generator, no global state).
    """
    rng = np.random.default_rng(picture.seed)
    a, w, h = picture.attrs, picture.width, picture.height
    image = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(image)
    _paint_scene(draw, SCENES[a.scene], w, h, rng)
    _paint_objects(draw, a, w, h, rng)
    _paint_motif(draw, N24NEWS_SECTIONS.index(a.section), w, h, rng)
    return _add_noise(image, rng)


def _jitter(colour: RGB, rng: np.random.Generator, amount: int) -> RGB:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _paint_scene(
    draw: ImageDraw.ImageDraw, scene: Scene, w: int, h: int, rng: np.random.Generator
) -> None:
    """Background layers top to bottom; each covers everything below its (shaped) top edge."""
    for layer in scene.layers:
        colour = _jitter(scene.palette[layer.colour], rng, 6)
        top = layer.top * h + (rng.uniform(-0.03, 0.03) * h if layer.top else 0)
        if layer.edge == "skyline":
            _paint_skyline(draw, scene.palette, top, w, h, rng)
            continue
        xs = np.linspace(0, w, 41)
        if layer.edge == "wave":
            amp, freq, phase = rng.uniform(0.01, 0.04) * h, rng.uniform(0.5, 2), rng.uniform(0, 6.3)
            ys = top + amp * np.sin(2 * np.pi * freq * xs / w + phase)
        elif layer.edge == "jagged":
            n_teeth = int(rng.integers(3, 9))
            xs = np.linspace(0, w, 2 * n_teeth + 1)
            dips = rng.uniform(0.08, 0.22, xs.size) * h
            ys = top + np.where(np.arange(xs.size) % 2 == 0, dips, rng.uniform(-0.03, 0.03) * h)
        else:
            ys = np.full_like(xs, top)
        draw.polygon([*zip(xs.tolist(), ys.tolist(), strict=True), (w, h), (0, h)], fill=colour)


def _paint_skyline(
    draw: ImageDraw.ImageDraw,
    palette: dict[str, RGB],
    top: float,
    w: int,
    h: int,
    rng: np.random.Generator,
) -> None:
    """Buildings of random widths and heights with a sprinkling of lit windows."""
    x = 0
    while x < w:
        bw = int(rng.integers(w // 10, w // 5 + 1))
        by = top + rng.uniform(0, 0.3) * h
        draw.rectangle((x, by, x + bw, h), fill=_jitter(palette["buildings"], rng, 8))
        lit = _jitter(palette["windows"], rng, 6)
        for wy in range(int(by) + 6, h - 6, 9):
            for wx in range(x + 4, x + bw - 4, 8):
                if rng.random() < 0.3:
                    draw.rectangle((wx, wy, wx + 3, wy + 4), fill=lit)
        x += bw


def _placement_area(w: int, h: int) -> tuple[float, float, float, float]:
    """Where objects go: the centre, at most 1.15x as long as it is wide, because CLIP-style
    preprocessing keeps only the central square and the objects must survive the crop."""
    short = min(w, h)
    aw, ah = min(w, 1.15 * short), min(h, 1.15 * short)
    return (w - aw) / 2, (h - ah) / 2, aw, ah


def _cells(
    count: int, area: tuple[float, float, float, float], aspect: float, rng: np.random.Generator
) -> list[tuple[float, float, float, float]]:
    """One cell per object: the grid (a row, a column or 2x2) whose cells best fit the object's
    aspect, so that wide cars and tall bottles both get big; spare cells are dropped at random."""
    x, y, aw, ah = area
    grids = {(1, 1)} if count == 1 else {(count, 1), (1, count), (2, 2) if count > 2 else (2, 1)}
    cols, rows = min(sorted(grids), key=lambda g: abs(math.log(aw / g[0] / (ah / g[1]) / aspect)))
    cw, ch = aw / cols, ah / rows
    cells = [(x + i * cw, y + j * ch, cw, ch) for j in range(rows) for i in range(cols)]
    while len(cells) > count:
        del cells[int(rng.integers(len(cells)))]
    return cells


def _paint_objects(
    draw: ImageDraw.ImageDraw, a: Attributes, w: int, h: int, rng: np.random.Generator
) -> None:
    """``a.count`` objects whose colour covers ~15-40% of the picture, more with the count, so
    that colour, and a little the count, show in an encoder that sees mostly colour areas."""
    thing = OBJECTS[a.obj]
    area = _placement_area(w, h)
    share = rng.uniform(0.18, 0.23) + 0.057 * (a.count - 1)
    per_object = share * w * h / a.count
    colour = _jitter(COLOURS[a.colour], rng, 10)
    shade = _shade(colour)
    fill = _fill_fraction(thing.shape, thing.aspect)
    for cx, cy, cw, ch in _cells(a.count, area, thing.aspect, rng):
        aspect = thing.aspect * rng.uniform(0.9, 1.1)
        bw = math.sqrt(per_object / fill * aspect)
        bh = bw / aspect
        scale = min(1.0, 0.94 * cw / bw, 0.94 * ch / bh)
        bw, bh = bw * scale, bh * scale
        x0 = cx + rng.uniform(0, cw - bw)
        y0 = cy + rng.uniform(0, ch - bh)
        _draw_shape(draw, thing.shape, (x0, y0, bw, bh), colour, shade)


def _shade(colour: RGB) -> RGB:
    """Detail colour (wheels, sticks): darker, or lighter for very dark objects."""
    if sum(colour) < 150:
        return tuple(c + 60 for c in colour)
    return tuple(int(c * 0.62) for c in colour)


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    box: tuple[float, float, float, float],
    colour: RGB | int,
    shade: RGB | int,
) -> None:
    """Paint a shape from :data:`SHAPES` into ``box`` (x, y, width, height)."""
    x0, y0, bw, bh = box

    def pt(u: float, v: float) -> tuple[float, float]:
        return x0 + u * bw, y0 + v * bh

    for part in SHAPES[shape]:
        kind, fill = part[0], shade if part[-1] else colour
        if kind == "poly":
            draw.polygon([pt(u, v) for u, v in part[1]], fill=fill)
            continue
        (ax, ay), (bx, by) = pt(*part[1:3]), pt(*part[3:5])
        if kind == "rect":
            draw.rectangle((ax, ay, bx, by), fill=fill)
        elif kind == "ellipse":
            draw.ellipse((ax, ay, bx, by), fill=fill)
        elif kind == "pie":
            draw.pieslice((ax, ay, bx, by), part[5], part[6], fill=fill)


@functools.cache
def _fill_fraction(shape: str, aspect: float) -> float:
    """Share of its bounding box that a shape paints, details included (measured once)."""
    size = (round(200 * aspect), 200)
    mask = Image.new("L", size)
    _draw_shape(ImageDraw.Draw(mask), shape, (0, 0, *size), 255, 255)
    return float((np.asarray(mask) == 255).mean())


def _paint_motif(
    draw: ImageDraw.ImageDraw, index: int, w: int, h: int, rng: np.random.Generator
) -> None:
    """The section's motif (a style in one of three accent colours), inside the central square
    so that it survives a centre crop; it covers only a few percent of the picture."""
    style = MOTIF_STYLES[index % len(MOTIF_STYLES)]
    accent = _jitter(list(MOTIF_ACCENTS.values())[index // len(MOTIF_STYLES)], rng, 6)
    s = min(w, h)
    x0, y0 = (w - s) / 2, (h - s) / 2
    band = 0.07 * s
    if style == "top_band":
        draw.rectangle((0, y0, w, y0 + band), fill=accent)
    elif style == "bottom_band":
        draw.rectangle((0, y0 + s - band, w, y0 + s), fill=accent)
    elif style == "twin_bands":
        draw.rectangle((0, y0, w, y0 + band / 2), fill=accent)
        draw.rectangle((0, y0 + s - band / 2, w, y0 + s), fill=accent)
    elif style == "frame":
        t = 0.025 * s
        for box in (
            (x0, y0, x0 + s, y0 + t),
            (x0, y0 + s - t, x0 + s, y0 + s),
            (x0, y0, x0 + t, y0 + s),
            (x0 + s - t, y0, x0 + s, y0 + s),
        ):
            draw.rectangle(box, fill=accent)
    elif style == "corner":
        draw.polygon([(x0, y0), (x0 + 0.3 * s, y0), (x0, y0 + 0.3 * s)], fill=accent)
    elif style == "stripes_top":
        for k in range(-2, 13):
            sx = x0 + k * 0.09 * s
            quad = [(sx, y0), (sx + 0.045 * s, y0), (sx + 0.09 * s, y0 + 0.1 * s)]
            draw.polygon([*quad, (sx + 0.045 * s, y0 + 0.1 * s)], fill=accent)
    elif style == "checker_bottom":
        for k in range(0, 17, 2):
            sx = x0 + k * 0.06 * s
            draw.rectangle((sx, y0 + s - 0.06 * s, sx + 0.06 * s, y0 + s), fill=accent)
    elif style == "dots_top":
        for k in range(10):
            cx = x0 + (k + 0.5) * 0.1 * s
            draw.ellipse((cx - 0.03 * s, y0 + 0.01 * s, cx + 0.03 * s, y0 + 0.07 * s), fill=accent)


def _add_noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Soft uneven lighting and a little grain, so that no two pictures are the same."""
    w, h = image.size
    coarse = np.clip(rng.normal(0, 1, (3, 3)), -2, 2).astype(np.float32)
    light = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR))
    pixels = np.asarray(image, dtype=np.float32) * (1 + 0.025 * light[..., None])  # within 5%
    pixels += rng.normal(0, 1.0, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def jpeg_bytes(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality, optimize=True)  # ~10% smaller, deterministic
    return buf.getvalue()


# --- article pages --------------------------------------------------------------------------------

NAV = ("News", "Politics", "Business", "Culture", "Sport", "Opinion")
PAYWALL = "This article is for subscribers. Subscribe for unlimited access to our journalism."
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip

# The <head> every site shares (real sites all carry title, og: and article: metadata).
HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} | {site}</title>
<meta name="description" content="{description}">
<meta property="og:type" content="article">
<meta property="og:site_name" content="{site}">
<meta property="og:title" content="{title}">
<meta property="og:description" content="{description}">
<meta property="og:image" content="{image_url}">
<meta property="og:url" content="{url}">
<meta property="article:published_time" content="{published}">
<meta name="author" content="{author}">
<link rel="canonical" href="{url}">
<link rel="stylesheet" href="/static/site.css">{head_extra}
</head>
"""

# Four sites, four page structures, so that extraction cannot rely on one set of class names.
# Each body is filled with already escaped fields; {body} is the paragraphs or a paywall notice.
TEMPLATES = {
    "classic": """<body>
<header class="site-header"><a class="logo" href="/">{site}</a>{nav}</header>
<main>
<article class="story">
<h1 class="headline">{title}</h1>
<div class="byline">By <span class="author">{author}</span> &middot;
<time datetime="{published}">{date}</time></div>
<figure class="lead-image">{img}
<figcaption>{caption} <span class="credit">{credit}</span></figcaption></figure>
<div class="story-body">
{body}
</div>
</article>
<aside class="related"><h2>Related stories</h2><ul>{related}</ul></aside>
</main>
<footer class="site-footer">&copy; 2025 {site} &middot; <a href="/privacy">Privacy</a>
&middot; <a href="/terms">Terms</a></footer>
</body>
</html>
""",
    "modern": """<body class="page-article">
<div id="app">
<div class="top-bar"><a class="brand" href="/">{site}</a>{nav}
<button class="subscribe">Subscribe</button></div>
<main class="layout">
<article class="c-article" itemscope itemtype="https://schema.org/NewsArticle">
<header class="c-article__header">
<span class="c-kicker">{section}</span>
<h1 class="c-article__title" itemprop="headline">{title}</h1>
<h2 class="c-article__dek">{description}</h2>
<div class="c-byline">By <a rel="author" href="/authors/{author_slug}">{author}</a>
<time datetime="{published}">Updated {date}</time></div>
</header>
<figure class="c-media">{img}<figcaption class="c-media__caption">
<span class="c-media__text">{caption}</span> <span class="c-media__credit">{credit}</span>
</figcaption></figure>
<div class="c-article__body" itemprop="articleBody">
{body}
</div>
</article>
<aside class="c-rail"><h3>Most read</h3><ol>{related}</ol></aside>
</main>
<footer class="site-footer"><small>&copy; 2025 {site} Media Group</small></footer>
</div>
</body>
</html>
""",
    "magazine": """<body>
<div class="wrapper">
<div class="masthead"><div class="masthead__logo">{site}</div>{nav}</div>
<article id="story">
<figure class="hero">{img}<figcaption class="hero__caption">{caption}
<small class="photo-credit">{credit}</small></figcaption></figure>
<div class="title-block">
<h1>{title}</h1>
<div class="meta"><span class="meta__author">By {author}</span> |
<time datetime="{published}">{date}</time></div>
</div>
<div class="post">
{body}
</div>
<aside class="more-stories"><h4>Read more</h4><ul>{related}</ul></aside>
</article>
<footer><div class="footer-links"><a href="/about">About us</a> <a href="/contact">Contact</a>
</div></footer>
</div>
</body>
</html>
""",
    "wordpress": """<body class="post-template-default single single-post">
<div id="page" class="site">
<header id="masthead" class="site-header"><div class="site-branding">
<p class="site-title"><a href="/" rel="home">{site}</a></p></div>
<div id="site-navigation" class="main-navigation">{nav}</div></header>
<div id="content" class="site-content">
<article id="post-{post}" class="post-{post} post type-post status-publish">
<header class="entry-header"><h1 class="entry-title">{title}</h1>
<div class="entry-meta"><span class="byline">By <span class="author vcard">{author}</span></span>
<span class="posted-on"><time class="entry-date published" datetime="{published}">{date}</time>
</span></div></header>
<div class="entry-content">
<figure class="wp-block-image size-large">{img}
<figcaption class="wp-element-caption">{caption} &mdash; {credit}</figcaption></figure>
{body}
<div class="sharedaddy"><h3 class="sd-title">Share this:</h3>
<ul><li>Facebook</li><li>Email</li><li>Print</li></ul></div>
</div>
</article>
<aside id="secondary" class="widget-area"><section class="widget widget_recent_entries">
<h2 class="widget-title">Related</h2><ul>{related}</ul></section></aside>
</div>
<footer id="colophon" class="site-footer">
<div class="site-info">Proudly published by {site}</div></footer>
</div>
</body>
</html>
""",
}


def page_html(a: Article) -> str:
    """The saved page of ``a`` in its site's template (``a.page == "missing"`` has none)."""
    template = a.site.template
    year, month, day = a.published[:10].split("-")
    fields = {
        "title": a.title,
        "site": a.site.name,
        "description": a.description,
        "url": a.url,
        "image_url": a.image_url,
        "published": a.published,
        "date": f"{MONTHS[int(month) - 1]} {int(day)}, {year}",
        "author": a.author,
        "author_slug": _slug(a.author),
        "caption": a.caption,
        "credit": a.credit,
        "section": a.picture.attrs.section,
        "post": str(int(a.article_id) + 4100),
    }
    fields = {k: html.escape(v) for k, v in fields.items()}
    base = f"https://www.{a.site.domain}.example"
    fields["nav"] = (
        "<nav><ul>"
        + "".join(f'<li><a href="{base}/{n.lower()}">{n}</a></li>' for n in NAV)
        + "</ul></nav>"
    )
    fields["related"] = "".join(
        f'<li><a href="{html.escape(url)}">{html.escape(title)}</a></li>'
        for title, url in a.related
    )
    fields["img"] = (
        f'<img src="{fields["image_url"]}" alt="{fields["caption"]}" '
        f'width="{a.picture.width}" height="{a.picture.height}">'
    )
    fields["head_extra"] = _head_extra(a) if template == "modern" else ""
    fields["body"] = _paywall(template) if a.page == "paywall" else _body(a, template)
    return HEAD.format(**fields) + TEMPLATES[template].format(**fields)


def _head_extra(a: Article) -> str:
    """JSON-LD metadata, as many news sites embed it."""
    ld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "headline": a.title,
        "datePublished": a.published,
        "author": {"@type": "Person", "name": a.author},
        "image": [a.image_url],
    }
    return (
        f'\n<script type="application/ld+json">{html.escape(json.dumps(ld), quote=False)}</script>'
    )


def _body(a: Article, template: str) -> str:
    """The body paragraphs, with each site's clutter between them (ads, newsletter box)."""
    ps = [f"<p>{html.escape(p)}</p>" for p in a.paragraphs]
    if template == "magazine":  # an AP-style dateline opens the lead
        ps[0] = (
            f'<p><span class="dateline">{html.escape(a.town.upper())} &mdash;</span> {ps[0][3:]}'
        )
    if template == "modern":
        ps.insert(1, '<div class="ad-slot" aria-hidden="true">Advertisement</div>')
        if len(ps) > 3:
            ps.insert(3, '<div class="newsletter-box"><strong>Get the morning briefing</strong> '
                      '<a href="/newsletters">Sign up</a></div>')  # fmt: skip
    return "\n".join(ps)


def _paywall(template: str) -> str:
    """A notice instead of the body, and no <p> inside the article: extraction finds nothing."""
    if template == "magazine":
        return f'<section class="locked"><h3>Members only</h3><div>{PAYWALL}</div></section>'
    return (
        f'<div class="paywall-notice"><strong>{PAYWALL}</strong> '
        '<a href="/subscribe">Subscribe</a></div>'
    )


# --- writing --------------------------------------------------------------------------------------

# What generate() owns inside ``out``: removed before writing, so the folder holds one sample.
OUTPUTS = ("articles.csv", "html", "newsimages", "n24news", "yfcc", "sample.json")
ERROR_PAGES = (
    "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
    "<p>The requested URL was not found on this server.</p></body></html>\n",
    "<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head><body>"
    "<h1>Service Unavailable</h1><p>Please try again later.</p></body></html>\n",
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Access Denied</Message></Error>\n",
)


def generate(
    out: Path,
    *,
    seed: int = 0,
    n_articles: int = 100,
    pool_size: int = 2000,
    n24news_per_section: tuple[int, int, int] = (40, 10, 10),
) -> dict[str, int]:
    """Write the sample into ``out`` (created if missing) and return its counts.

    The same seed and arguments give byte-identical files. Entries of ``out`` that the sample
    owns (:data:`OUTPUTS`) are replaced; anything else there is left alone.
    """
    start = time.perf_counter()
    plan = plan_sample(seed, n_articles, pool_size, tuple(n24news_per_section))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    _write_articles(out, plan.articles)
    _write_n24news(out / "n24news", plan.n24news)
    _write_yfcc(out / "yfcc", plan.pool)
    counts = plan.counts()
    meta = {
        "seed": seed,
        "arguments": {
            "n_articles": n_articles,
            "pool_size": pool_size,
            "n24news_per_section": list(n24news_per_section),
        },
        "counts": counts,
    }
    (out / "sample.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log.info(
        "sample (seed %d) written to %s in %.1f s: %d articles, %d pool images (%d faults), "
        "%d N24News items",
        seed,
        out,
        time.perf_counter() - start,
        counts["articles"],
        counts["pool"],
        counts["faults"],
        len(plan.n24news),
    )
    return counts


def _write_articles(out: Path, articles: Sequence[Article]) -> None:
    write_newsimages_csv(out / "articles.csv", [a.csv_row() for a in articles])
    (out / "html").mkdir()
    (out / "newsimages").mkdir()
    for a in articles:
        if a.page != "missing":
            (out / "html" / f"{a.article_id}.html").write_text(page_html(a), encoding="utf-8")
        (out / "newsimages" / f"{a.image_id}.jpg").write_bytes(jpeg_bytes(render(a.picture)))


def _write_n24news(root: Path, items: Sequence[N24Item]) -> None:
    (root / "news").mkdir(parents=True)
    (root / "imgs").mkdir()
    for split in N24NEWS_SPLITS:
        records = [item.fields for item in items if item.split == split]
        text = json.dumps(records, indent=1, ensure_ascii=False) + "\n"
        (root / "news" / f"nytimes_{split}.json").write_text(text, encoding="utf-8")
    for item in items:
        jpeg = jpeg_bytes(render(item.picture))
        (root / "imgs" / f"{item.fields['image_id']}.jpg").write_bytes(jpeg)


def _write_yfcc(root: Path, pool: Sequence[PoolImage]) -> None:
    """The manifest, and the bucket with one object per row except the intended 404s."""
    root.mkdir()
    lines = "".join(f"{p.photo_id}\t{p.hash}\n" for p in pool)
    (root / "manifest.txt").write_text(lines, encoding="utf-8")
    for p in pool:
        data = _object_bytes(p)
        if data is None:
            continue
        path = root / "bucket" / p.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _object_bytes(p: PoolImage) -> bytes | None:
    """What the bucket holds for a manifest row: a JPEG, a faulty object, or nothing (404)."""
    if p.fault is None:
        return jpeg_bytes(render(p.picture))
    if p.fault == "missing":
        return None
    if p.fault == "empty":
        return b""
    if p.fault == "html":
        return ERROR_PAGES[int(p.hash[:4], 16) % len(ERROR_PAGES)].encode()
    if p.fault == "truncated":
        jpeg = jpeg_bytes(render(p.picture))
        return jpeg[: len(jpeg) * (40 + int(p.hash[:2], 16) % 30) // 100]
    if p.fault == "tiny":
        colour = tuple(bytes.fromhex(p.hash[:6]))
        return jpeg_bytes(Image.new("RGB", (8, 8), colour))
    raise ValueError(f"unknown fault kind {p.fault!r}")
