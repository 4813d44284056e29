"""Turn client bytes into a verified image (its real format, size and a PNG thumbnail) or defect mask.

Every upload is fully decoded so that non-images and truncated files never reach the training
set; the client's content type and filename are never trusted (the filename is display text only).
Shared by the API (uploads, masks) and the dataset import flow.

Memory is bounded: an image over ``INSPECT_MAX_IMAGE_PIXELS`` is refused from its header, before any
pixel is decoded, and the API decodes at most ``INSPECT_MAX_CONCURRENT_DECODES`` images at once
(:class:`ImageDecoder`), so concurrent uploads queue for decoding instead of each holding a full image.
Thumbnails come from the one renderer uploads and collected frames share (:mod:`infra.thumbnails`).
"""

from __future__ import annotations

import hashlib
import io
import threading
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

from infra.media_records import ImageFacts
from infra.thumbnails import render_thumbnail

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


class ImageRejected(ValueError):
    """The bytes are not a decodable image of a supported format; the message says why."""


def decode_image(data: bytes, thumbnail_size: int, max_pixels: int) -> ImageFacts:
    """Decode every pixel (not just the header) and render the thumbnail, or raise ImageRejected.

    The API calls it through :class:`ImageDecoder`, which bounds how many run at once."""
    with _decoded(data, DECODERS, _EXPECTED, max_pixels) as image:
        return ImageFacts(
            sha256=hashlib.sha256(data).hexdigest(),
            content_type=CONTENT_TYPES[image.format or ""],
            size_bytes=len(data),
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
        # A mask far larger than its image is refused from its header; a near miss hears the size rule below.
        with _decoded(data, ("PNG",), "PNG", 4 * size[0] * size[1]) as image:
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
def _decoded(data: bytes, formats: tuple[str, ...], expected: str, max_pixels: int) -> Iterator[Image.Image]:
    """The fully loaded image of one of ``formats``, or ImageRejected saying why (one over ``max_pixels``
    from its header, before any pixel is decoded)."""
    if not data:
        raise ImageRejected("empty file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse those as well.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=formats) as image:
                pixels = image.width * image.height
                if pixels > max_pixels:  # from the header: nothing decoded yet
                    raise ImageRejected(f"image too large: {image.width}x{image.height} is {pixels:,} pixels, over "
                                        f"the limit of {max_pixels:,} (INSPECT_MAX_IMAGE_PIXELS)")
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


class ImageDecoder:
    """Decodes client images within the memory limits: pixels per image and decodes at once.

    One per app (``app.state.image_decoder``): its semaphore is what makes concurrent uploads take turns.
    """

    def __init__(self, max_pixels: int, concurrency: int, thumbnail_size: int) -> None:
        self.max_pixels = max_pixels
        self.thumbnail_size = thumbnail_size
        self._slots = threading.BoundedSemaphore(concurrency)

    def decode(self, source: bytes | Callable[[], bytes]) -> ImageFacts:
        """:func:`decode_image` once a slot is free. Pass a reader (an upload's ``file.read``) to read the
        bytes only then: uploads waiting for their turn hold no file in memory."""
        with self._slots:
            return decode_image(_bytes(source), self.thumbnail_size, self.max_pixels)

    def normalise_mask(self, source: bytes | Callable[[], bytes], size: tuple[int, int]) -> bytes:
        """:func:`normalise_mask` once a slot is free (a mask is as large as its image)."""
        with self._slots:
            return normalise_mask(_bytes(source), size)


def _bytes(source: bytes | Callable[[], bytes]) -> bytes:
    return source() if callable(source) else source


def display_filename(raw: str | None) -> str:
    """The client's filename reduced to harmless display text: basename, no control chars, ≤255 chars."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    # Category C: control, format (e.g. right-to-left override), surrogate, private-use, unassigned.
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C").strip()
    if name in {"", ".", ".."}:
        return "unnamed"
    return name[:MAX_FILENAME_CHARS]
