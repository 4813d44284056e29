"""Reading an import safely: zip bombs and oversized archives refused whole, dangerous entries one by one."""

from __future__ import annotations

import io
import random
import stat
import zipfile
from pathlib import Path

import pytest

from infra.configs.confinement import Confinement
from infra.datasets.sources import (
    RATIO_APPLIES_ABOVE,
    FileRefused,
    FolderSource,
    ImportLimits,
    ImportRefused,
    ZipSource,
)

LIMITS = ImportLimits(max_total_bytes=200 * 1024 * 1024, max_files=100, max_file_bytes=100 * 1024 * 1024)


def archive(entries: list[tuple[zipfile.ZipInfo | str, bytes]], compression: int = zipfile.ZIP_STORED) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as bundle:
        for name, data in entries:
            bundle.writestr(name, data)
    buffer.seek(0)
    return buffer


def encrypted(data: bytes, name: str) -> bytes:
    """The archive with ``name`` flagged as encrypted in its central directory (zipfile cannot write that)."""
    header = data.rindex(b"PK\x01\x02", 0, data.rindex(name.encode()))
    flags = int.from_bytes(data[header + 8:header + 10], "little") | 0x1
    return data[:header + 8] + flags.to_bytes(2, "little") + data[header + 10:]


def test_not_a_zip_is_refused() -> None:
    with pytest.raises(ImportRefused, match="not a zip archive"):
        ZipSource(io.BytesIO(b"PK\x03\x04 but not really"), LIMITS)


def test_a_zip_bomb_is_refused_before_anything_is_unpacked() -> None:
    bomb = archive([("train/good/a.bmp", bytes(RATIO_APPLIES_ABOVE + 1))], zipfile.ZIP_DEFLATED)
    assert len(bomb.getvalue()) < RATIO_APPLIES_ABOVE // 500
    with pytest.raises(ImportRefused, match="zip bomb"):
        ZipSource(bomb, LIMITS)


def test_archives_over_the_size_and_file_limits_are_refused() -> None:
    small = ImportLimits(max_total_bytes=1000, max_files=3, max_file_bytes=1000)
    with pytest.raises(ImportRefused, match="INSPECT_MAX_IMPORT_BYTES"):
        ZipSource(archive([("a/b.png", bytes(600)), ("a/c.png", bytes(600))]), small)
    with pytest.raises(ImportRefused, match="INSPECT_MAX_IMPORT_FILES"):
        ZipSource(archive([(f"a/{index}.png", b"x") for index in range(4)]), small)


def test_dangerous_entries_are_refused_one_by_one() -> None:
    link = zipfile.ZipInfo("train/good/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = archive([
        ("train/good/ok.png", b"fine"), ("../outside.png", b"x"), ("/etc/passwd", b"x"), ("train//good/x.png", b"x"),
        ("C:/windows.png", b"x"), (link, b"/etc/passwd"), ("train/good/locked.png", b"x"),
        ("train\\good\\win.png", b"w"),
    ]).getvalue()
    source = ZipSource(io.BytesIO(encrypted(data, "train/good/locked.png")), LIMITS)
    assert source.names == ["train/good/ok.png", "train/good/win.png"]
    reasons = {refusal.file: refusal.reason for refusal in source.refused}
    assert set(reasons) == {"../outside.png", "/etc/passwd", "train//good/x.png", "C:/windows.png",
                            "train/good/link.png", "train/good/locked.png"}
    assert reasons["train/good/link.png"] == "a symbolic link" and reasons["train/good/locked.png"] == "encrypted"
    assert "escapes" in reasons["../outside.png"]
    assert source.read("train/good/ok.png") == b"fine"


def test_an_entry_larger_than_one_upload_is_refused() -> None:
    source = ZipSource(archive([("train/good/big.png", bytes(2000))]), ImportLimits(10_000, 10, 1000))
    assert source.names == [] and "larger than one upload" in source.refused[0].reason


def test_a_damaged_entry_is_refused_when_read() -> None:
    noise = random.Random(0).randbytes(5000)  # incompressible: the corrupted bytes land inside the entry
    data = bytearray(archive([("train/good/a.png", noise)], zipfile.ZIP_DEFLATED).getvalue())
    start = data.index(b"train/good/a.png") + len("train/good/a.png")
    data[start + 10:start + 40] = bytes(30)  # corrupt the deflated stream, not the directory
    source = ZipSource(io.BytesIO(bytes(data)), LIMITS)
    with pytest.raises(FileRefused, match="damaged"):
        source.read("train/good/a.png")


def test_folders_outside_the_allowed_paths_or_missing_are_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    confinement = Confinement((allowed,))
    with pytest.raises(ImportRefused, match="INSPECT_ALLOWED_PATHS"):
        FolderSource(str(tmp_path), LIMITS, confinement)
    with pytest.raises(ImportRefused, match="no folder"):
        FolderSource(str(allowed / "missing"), LIMITS, confinement)


def test_a_folder_source_lists_regular_files_and_refuses_links(tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    (root / "normal").mkdir(parents=True)
    (root / "normal" / "a.png").write_bytes(b"a")
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    (root / "normal" / "link.png").symlink_to(secret)
    (root / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    source = FolderSource(str(root), LIMITS, Confinement((tmp_path,)))
    assert source.names == ["normal/a.png"]
    assert {refusal.file: refusal.reason for refusal in source.refused} == {
        "normal/link.png": "a symbolic link", "elsewhere": "a symbolic link"}
    assert source.read("normal/a.png") == b"a"
    # Swapped for a link after it was listed: still never followed.
    (root / "normal" / "a.png").unlink()
    (root / "normal" / "a.png").symlink_to(secret)
    with pytest.raises(FileRefused):
        source.read("normal/a.png")
