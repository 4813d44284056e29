"""The one thumbnail renderer: uploads, captures added to the dataset and collected frames all use it.

``INSPECT_THUMBNAIL_SIZE`` is the longest side. The image is made small first, in its own mode, and
only the small copy is converted: a 40-megapixel 16-bit image never becomes a full-size float image.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import ExifTags, Image

# Modes Pillow resizes with a proper filter and PNG stores as they are.
_DIRECT_MODES = {"L", "LA", "RGB", "RGBA"}
# EXIF orientation -> the transpose that makes the image upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Other modes are first sampled down (nearest) to this many times the thumbnail, then converted and filtered.
_SAMPLE_MARGIN = 2


def render_thumbnail(image: Image.Image, size: int) -> bytes:
    """PNG whose longest side is at most ``size``, upright (EXIF orientation applied), 8-bit."""
    orientation = image.getexif().get(ExifTags.Base.Orientation)
    small = _to_8bit(_shrunk(image, size))
    if small.size != _fit(small.size, size):
        small = small.resize(_fit(small.size, size), Image.Resampling.LANCZOS)
    if orientation in _UPRIGHT:
        small = small.transpose(_UPRIGHT[orientation])
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return buffer.getvalue()


def render_bgr_thumbnail(frame: np.ndarray, size: int) -> bytes:
    """The same thumbnail for an OpenCV frame (BGR, or grey when 2-D)."""
    pixels = frame if frame.ndim == 2 else np.ascontiguousarray(frame[..., 2::-1])
    return render_thumbnail(Image.fromarray(pixels), size)


def _fit(dimensions: tuple[int, int], size: int) -> tuple[int, int]:
    width, height = dimensions
    scale = min(1.0, size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrunk(image: Image.Image, size: int) -> Image.Image:
    """A small copy in the image's own mode (never a full-size conversion)."""
    if image.mode in _DIRECT_MODES:
        target = _fit(image.size, size)
        return image if target == image.size else image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    target = _fit(image.size, size * _SAMPLE_MARGIN)
    return image if target == image.size else image.resize(target, Image.Resampling.NEAREST)


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode in _DIRECT_MODES:
        return image
    if image.mode == "F" or image.mode.startswith("I"):
        # 16-bit / float grey (common for industrial cameras): stretch the used range to 0..255; a plain
        # convert("L") would clip nearly everything to white.
        grey = image.convert("F")
        low, high = grey.getextrema()
        scale = 255.0 / (high - low) if high > low else 0.0
        return grey.point(lambda value: (value - low) * scale).convert("L")
    return image.convert("RGBA" if image.has_transparency_data else "RGB")
