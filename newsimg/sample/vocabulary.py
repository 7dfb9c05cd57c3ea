"""The visual vocabulary: object colours, scenes, object nouns, section motifs, count words.

Every picture is drawn from these attributes (:mod:`newsimg.sample.draw`) and every text names
them (:mod:`newsimg.sample.texts`).
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]

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
