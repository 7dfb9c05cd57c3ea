"""Pictures: rendering a planned picture into pixels, and JPEG bytes."""

from __future__ import annotations

import functools
import io
import math

import numpy as np
from PIL import Image, ImageDraw

from newsimg.sample.model import Attributes, Picture
from newsimg.sample.shapes import SHAPES
from newsimg.sample.vocabulary import (
    COLOURS,
    MOTIF_ACCENTS,
    MOTIF_STYLES,
    OBJECTS,
    RGB,
    SCENES,
    Scene,
)
from newsimg.sources import N24NEWS_SECTIONS

JPEG_QUALITY = 85


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
