"""How each object is drawn: shapes as parts in unit coordinates, parsed once into SHAPES."""

from __future__ import annotations

import math

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
