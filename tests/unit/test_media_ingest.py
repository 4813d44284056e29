"""Decoding uploads: real formats accepted, anything else refused with a reason; names sanitised; masks canonical."""

import io

import pytest
from PIL import Image

from infra.images import MAX_FILENAME_CHARS, ImageRejected, MaskRejected, decode_image, display_filename, normalise_mask


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def open_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


@pytest.mark.parametrize(("image", "fmt", "content_type"), [
    (Image.new("RGB", (300, 150), (10, 20, 30)), "PNG", "image/png"),
    (Image.new("L", (120, 400), 90), "JPEG", "image/jpeg"),
    (Image.new("RGB", (40, 30), (200, 0, 0)), "BMP", "image/bmp"),
    (Image.new("RGBA", (64, 64), (0, 0, 0, 0)), "TIFF", "image/tiff"),
    (Image.new("RGB", (50, 70), (1, 2, 3)), "WEBP", "image/webp"),
    (Image.new("P", (33, 22), 3), "PNG", "image/png"),
    (Image.new("1", (20, 20), 1), "BMP", "image/bmp"),
])
def test_supported_formats_decode_with_thumbnail(image, fmt, content_type):
    decoded = decode_image(encode(image, fmt), thumbnail_size=64)
    assert (decoded.content_type, decoded.width, decoded.height) == (content_type, *image.size)
    thumb = open_png(decoded.thumbnail_png)
    assert max(thumb.size) == min(64, max(image.size))
    assert thumb.size[0] / thumb.size[1] == pytest.approx(image.size[0] / image.size[1], rel=0.1)


def test_sixteen_bit_grey_is_stretched_not_clipped():
    image = Image.new("I;16", (32, 32), 1000)
    image.paste(3000, (0, 0, 16, 32))
    thumb = open_png(decode_image(encode(image, "PNG"), 32).thumbnail_png).convert("L")
    assert thumb.getpixel((0, 0)) == 255 and thumb.getpixel((31, 0)) == 0


def test_exif_orientation_is_applied_to_the_thumbnail():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°
    decoded = decode_image(encode(Image.new("RGB", (80, 40)), "JPEG", exif=exif), 80)
    assert (decoded.width, decoded.height) == (80, 40)  # stored pixels, as uploaded
    assert open_png(decoded.thumbnail_png).size == (40, 80)


def corrupt_png() -> bytes:
    data = bytearray(encode(Image.effect_noise((64, 64), 50).convert("L"), "PNG"))
    data[200:260] = b"\xff" * 60  # inside the pixel data: the header still parses
    return bytes(data)


def truncated_jpeg() -> bytes:
    data = encode(Image.effect_noise((256, 256), 50).convert("L"), "JPEG", quality=95)
    return data[: len(data) // 2]


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file"),
    (b"hello, I am text", "not a supported image"),
    (encode(Image.new("RGB", (8, 8)), "GIF"), "not a supported image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a supported image"),
    (corrupt_png(), "image could not be decoded"),
    (truncated_jpeg(), "image could not be decoded"),
])
def test_non_images_are_refused_with_a_reason(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        decode_image(data, 64)


def test_decompression_bombs_are_refused(monkeypatch):
    data = encode(Image.new("L", (200, 200)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200 * 200 - 1)  # warn zone: refused too
    with pytest.raises(ImageRejected, match="image too large"):
        decode_image(data, 64)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageRejected, match="image too large"):
        decode_image(data, 64)


@pytest.mark.parametrize(("raw", "expected"), [
    ("part_001.png", "part_001.png"),
    ("../../etc/passwd.png", "passwd.png"),
    ("C:\\Users\\me\\scan 7.jpg", "scan 7.jpg"),
    ("/abs/path/x.bmp", "x.bmp"),
    ("bad\x00na\x1bme\n.png", "badname.png"),
    ("evil\u202egnp.exe", "evilgnp.exe"),
    ("  spaced.png  ", "spaced.png"),
    ("dir/", "unnamed"),
    ("..", "unnamed"),
    ("", "unnamed"),
    (None, "unnamed"),
    ("ünïcödé 画像.png", "ünïcödé 画像.png"),
])
def test_display_filename(raw, expected):
    assert display_filename(raw) == expected


def test_display_filename_is_capped():
    assert len(display_filename("a" * 1000 + ".png")) == MAX_FILENAME_CHARS


@pytest.mark.parametrize(("mask", "defect"), [
    (Image.new("L", (40, 30), 0), 1), (Image.new("1", (40, 30), 0), 1), (Image.new("I;16", (40, 30), 0), 1),
    (Image.new("RGB", (40, 30), (0, 0, 0)), (0, 0, 1)), (Image.new("RGBA", (40, 30), (0, 0, 0, 255)), (0, 0, 1, 255)),
])
def test_any_png_mode_becomes_one_canonical_mask(mask, defect):
    mask.putpixel((3, 4), defect)
    canonical = normalise_mask(encode(mask, "PNG"), (40, 30))
    image = open_png(canonical)
    assert (image.mode, image.size) == ("L", (40, 30))
    assert image.getpixel((3, 4)) == 255 and sorted(set(image.getdata())) == [0, 255]
    assert normalise_mask(canonical, (40, 30)) == canonical  # an exported mask imports as the same blob


@pytest.mark.parametrize(("data", "message"), [
    (encode(Image.new("L", (41, 30), 255), "PNG"), "same size"),
    (encode(Image.new("L", (40, 30), 0), "PNG"), "no defect pixel"),
    (encode(Image.new("L", (40, 30), 255), "JPEG"), "expected PNG"),
    (b"not an image", "expected PNG"),
])
def test_unusable_masks_are_refused(data, message):
    with pytest.raises(MaskRejected, match=message):
        normalise_mask(data, (40, 30))
