"""Turn uploaded bytes into a verified image: its real format, size and a PNG thumbnail.

Every upload is fully decoded so that non-images and truncated files never reach the training
set; the client's content type and filename are never trusted (the filename is display text only).

Memory is bounded: an image over ``INSPECT_MAX_IMAGE_PIXELS`` is refused from its header, before any
pixel is decoded, and at most ``INSPECT_MAX_CONCURRENT_DECODES`` images are decoded at once
(:class:`ImageDecoder`), so concurrent uploads queue for decoding instead of each holding a full image.
"""

from __future__ import annotations

import hashlib
import io
import threading
import unicodedata
import warnings
from collections.abc import Callable

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

    Call it through :class:`ImageDecoder`, which bounds how many run at once."""
    if not data:
        raise ImageRejected("empty file")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse those as well.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=DECODERS) as image:
                pixels = image.width * image.height
                if pixels > max_pixels:  # from the header: nothing decoded yet
                    raise ImageRejected(f"image too large: {image.width}x{image.height} is {pixels:,} pixels, over "
                                        f"the limit of {max_pixels:,} (INSPECT_MAX_IMAGE_PIXELS)")
                image.load()
                return ImageFacts(
                    sha256=hashlib.sha256(data).hexdigest(),
                    content_type=CONTENT_TYPES[image.format or ""],
                    size_bytes=len(data),
                    width=image.width,
                    height=image.height,
                    thumbnail_png=render_thumbnail(image, thumbnail_size),
                )
    except ImageRejected:
        raise
    except Image.UnidentifiedImageError as error:
        raise ImageRejected(f"not a supported image (expected {_EXPECTED})") from error
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
            return decode_image(source() if callable(source) else source, self.thumbnail_size, self.max_pixels)


def display_filename(raw: str | None) -> str:
    """The client's filename reduced to harmless display text: basename, no control chars, ≤255 chars."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    # Category C: control, format (e.g. right-to-left override), surrogate, private-use, unassigned.
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C").strip()
    if name in {"", ".", ".."}:
        return "unnamed"
    return name[:MAX_FILENAME_CHARS]
