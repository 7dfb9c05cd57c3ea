"""Checking fetched images and normalising them to upright RGB JPEGs of a bounded size."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from newsimg.errors import Rejected
from newsimg.params import FetchParams

# Formats a photo can come in. Restricting them keeps Pillow from handing odd bodies to plugins
# that shell out (EPS -> Ghostscript) or guess (TGA); anything else is "not_an_image".
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")  # JPEG covers MPO
# Decode JPEGs at the smallest DCT scale (1/2, 1/4, 1/8) that keeps the longer side >= max_side,
# then resize. On 1024x768 photos to 384 px this halves the time per image (bench/fetch.py) and,
# with the box filter below, stays at 42 dB PSNR from a full decode + Lanczos: no visible
# difference. (Pillow's thumbnail() stops at 2x the target: DRAFT_GAP = 2.)
DRAFT_GAP = 1.0
# Box (area averaging, img2dataset's INTER_AREA), the cheapest antialiased filter: 1.4 ms per
# 640x480 photo against 3.4 for bicubic, and resizing was the largest cost per image. It stays
# at 42-46 dB PSNR from Lanczos; storing at q90 already costs more (35 dB), and the embed stage
# resizes again with CLIP's bicubic. A reducing gap of 3 first shrinks big images by whole
# factors, with no visible difference.
RESAMPLE = Image.Resampling.BOX
REDUCING_GAP = 3.0
# EXIF orientations that need a transposition (2-8), and those that swap width and height (5-8).
_TRANSPOSED = {2, 3, 4, 5, 6, 7, 8}
_SWAPS_SIDES = {5, 6, 7, 8}


def normalise(data: bytes, params: FetchParams) -> tuple[bytes, int, int]:
    """``(jpeg, width, height)``: ``data`` validated and re-encoded as an RGB JPEG.

    ``width``/``height`` are the original size, upright (after EXIF orientation), before
    resizing. Checks, in order: ``empty``, ``not_an_image`` (HTML, unknown formats),
    ``too_large`` (``width*height > max_pixels``, read from the header before decoding),
    ``too_small`` (shorter side ``< min_side``), ``truncated``/``corrupt`` (a full decode). The
    image is then turned upright, made RGB (transparency over white, 16-bit scaled), shrunk so its
    longer side is at most ``max_side`` (never enlarged) and saved at ``quality``.
    """
    if not data:
        raise Rejected("empty")
    try:
        im = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:  # Pillow's own guard, at 2x its MAX_IMAGE_PIXELS
        raise Rejected("too_large") from None
    except (UnidentifiedImageError, SyntaxError, ValueError, OSError, EOFError):
        raise Rejected("not_an_image") from None
    with im:
        w, h = im.size
        if w * h > params.max_pixels:
            raise Rejected("too_large")
        if min(w, h) < params.min_side:
            raise Rejected("too_small")
        orientation = _orientation(im)
        _draft(im, params.max_side)
        try:
            im.load()  # the full decode: a truncated file fails here, not in a later stage
        except Exception as exc:
            raise Rejected("truncated" if "truncat" in str(exc).lower() else "corrupt") from None
        if orientation in _TRANSPOSED:
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:  # unreadable EXIF: keep the photo as stored
                orientation = None
        width, height = (h, w) if orientation in _SWAPS_SIDES else (w, h)
        rgb = _downscale(to_rgb(im), params.max_side)
        buf = io.BytesIO()
        rgb.save(buf, "JPEG", quality=params.quality)
    return buf.getvalue(), width, height


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as RGB: transparent pixels over white, 16-bit grey scaled (not clipped) to 8 bits."""
    if im.mode == "RGB" and "transparency" not in im.info:
        return im
    if im.mode.startswith("I;16") or im.mode == "I":
        # Pillow's I;16 -> L conversion clips at 255, which turns most 16-bit photos white.
        high = im.getextrema()[1]
        scale = 255 / 65535 if im.mode.startswith("I;16") or high > 255 else 1.0
        im = im.convert("I").point(lambda v: v * scale).convert("L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        # Dropping alpha leaves whatever colour the encoder kept under it, often black: a logo on
        # a transparent background would reach CLIP as a black square. Browsers show white.
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")


def _downscale(im: Image.Image, max_side: int) -> Image.Image:
    w, h = im.size
    if max(w, h) <= max_side:
        return im
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return im.resize(size, RESAMPLE, reducing_gap=REDUCING_GAP)


def _draft(im: Image.Image, max_side: int) -> None:
    # JPEG can decode at 1/2, 1/4, 1/8 scale for a fraction of the work; other formats ignore it.
    w, h = im.size
    scale = max_side * DRAFT_GAP / max(w, h)
    if scale < 0.5:  # Pillow picks the largest reduction that keeps at least the requested size
        im.draft(None, (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale))))


def _orientation(im: Image.Image) -> int | None:
    try:
        return im.getexif().get(ExifTags.Base.Orientation)
    except Exception:  # a broken EXIF block is no reason to drop a photo: keep it as stored
        return None


@contextmanager
def quiet_bomb_warnings() -> Iterator[None]:
    """:func:`ignore_bomb_warnings` for the ``with`` block only."""
    with warnings.catch_warnings():
        ignore_bomb_warnings()
        yield


def ignore_bomb_warnings() -> None:
    """Silence Pillow's warning on every image above its own MAX_IMAGE_PIXELS: ours is
    ``params.max_pixels``, and a rejected image is already recorded as ``too_large``."""
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
