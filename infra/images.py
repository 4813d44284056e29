"""Turn client bytes into a verified image (its real format, size and a PNG thumbnail) or defect mask.

Every upload is fully decoded so that non-images and truncated files never reach the training
set; the client's content type and filename are never trusted (the filename is display text only).
Shared by the API (uploads, masks) and the dataset import flow.
"""

from __future__ import annotations

import io
import unicodedata
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

# Only these Pillow decoders are ever tried on client bytes.
DECODERS = ("PNG", "JPEG", "BMP", "TIFF", "WEBP")
# Decoded format → MIME type. The JPEG decoder reports camera multi-picture files as MPO.
CONTENT_TYPES: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
}
MAX_FILENAME_CHARS = 255
_EXPECTED = "PNG, JPEG, BMP, TIFF or WEBP"
_DIRECT_MODES = {"L", "LA", "RGB", "RGBA"}


class ImageRejected(ValueError):
    """The bytes are not a decodable image of a supported format; the message says why."""


@dataclass(frozen=True)
class DecodedImage:
    content_type: str
    width: int
    height: int
    thumbnail_png: bytes


def decode_image(data: bytes, thumbnail_size: int) -> DecodedImage:
    """Decode every pixel (not just the header) and render the thumbnail, or raise ImageRejected."""
    with _decoded(data, DECODERS, _EXPECTED) as image:
        return DecodedImage(
            content_type=CONTENT_TYPES[image.format or ""],
            width=image.width,
            height=image.height,
            thumbnail_png=render_thumbnail(image, thumbnail_size),
        )


class MaskRejected(ImageRejected):
    """The bytes are not a usable defect mask for the image; the message says why."""


def normalise_mask(data: bytes, size: tuple[int, int]) -> bytes:
    """A defect mask in canonical form: 8-bit grey PNG, 0 = good, 255 = defect; or MaskRejected.

    Accepts a PNG of exactly ``size`` (width, height) in any mode; any non-zero pixel (in any colour
    channel, alpha ignored) is defect. The canonical bytes make equal masks one blob, also after an
    export and a re-import.
    """
    try:
        with _decoded(data, ("PNG",), "PNG") as image:
            if image.size != tuple(size):
                raise MaskRejected(f"mask is {image.width}x{image.height}, its image {size[0]}x{size[1]}: "
                                   "they must be the same size")
            defect = _nonzero(image)
    except MaskRejected:
        raise
    except ImageRejected as error:
        raise MaskRejected(f"mask: {error}") from error
    if not defect.any():
        raise MaskRejected("mask marks no defect pixel (non-zero = defect)")
    buffer = io.BytesIO()
    Image.fromarray(defect.astype(np.uint8) * 255, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _nonzero(image: Image.Image) -> np.ndarray:
    if image.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F"):
        return np.asarray(image) != 0
    return (np.asarray(image.convert("RGB")) != 0).any(axis=-1)


@contextmanager
def _decoded(data: bytes, formats: tuple[str, ...], expected: str) -> Iterator[Image.Image]:
    """The fully loaded image of one of ``formats``, or ImageRejected saying why."""
    if not data:
        raise ImageRejected("empty file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse those as well.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=formats) as image:
                image.load()
                yield image
    except ImageRejected:
        raise
    except Image.UnidentifiedImageError as error:
        raise ImageRejected(f"not a supported image (expected {expected})") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(f"image too large: {error}") from error
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... on bad data
        raise ImageRejected(f"image could not be decoded: {error}") from error


def render_thumbnail(image: Image.Image, size: int) -> bytes:
    """PNG whose longest side is at most `size`, upright (EXIF orientation applied), 8-bit."""
    thumb = _to_8bit(ImageOps.exif_transpose(image))
    thumb.thumbnail((size, size))
    buffer = io.BytesIO()
    thumb.save(buffer, format="PNG")
    return buffer.getvalue()


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode in _DIRECT_MODES:
        return image
    if image.mode == "F" or image.mode.startswith("I"):
        # 16-bit / float grey (common for industrial cameras): stretch the used range to 0..255,
        # a plain convert("L") would clip nearly everything to white.
        grey = image.convert("F")
        low, high = grey.getextrema()
        scale = 255.0 / (high - low) if high > low else 0.0
        return grey.point(lambda value: (value - low) * scale).convert("L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


def display_filename(raw: str | None) -> str:
    """The client's filename reduced to harmless display text: basename, no control chars, ≤255 chars."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    # Category C: control, format (e.g. right-to-left override), surrogate, private-use, unassigned.
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C").strip()
    if name in {"", ".", ".."}:
        return "unnamed"
    return name[:MAX_FILENAME_CHARS]
