"""Defect types: the kind of defect an anomalous item shows (MVTec's ``test/<defect>/`` folder names).

A defect type becomes a folder name again on export, so it is restricted to characters that are
safe in a path and an archive on every system. Two names are reserved by the MVTec layout itself:
``good`` (the normal images' folder) and ``anomalous`` (the folder of anomalous items that have no
defect type, so that they come back without one).
"""

from __future__ import annotations

import re

GOOD = "good"
UNTYPED = "anomalous"  # test/anomalous/: anomalous items without a defect type
RESERVED = frozenset({GOOD, UNTYPED})
MAX_CHARS = 64
PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_CHARS - 1}}}$"
_PATTERN = re.compile(PATTERN)


class DefectTypeError(ValueError):
    """Not a usable defect type; the message says why."""


def check_defect_type(value: str) -> str:
    """``value`` when it is a usable defect type, else DefectTypeError."""
    if not _PATTERN.fullmatch(value):
        raise DefectTypeError(f"defect type {value!r} must be 1-{MAX_CHARS} letters, digits, '_', '.' or '-', "
                              "starting with a letter or digit")
    if value.lower() in RESERVED:
        raise DefectTypeError(f"defect type {value!r} is reserved by the MVTec layout ({GOOD!r}: normal images, "
                              f"{UNTYPED!r}: anomalous images without a defect type)")
    return value
