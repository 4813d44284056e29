"""Which media form a project's stable evaluation set: the train/eval split rule.

Every media item gets its split once, when it is added, so a champion and a candidate trained
months apart are compared on the same images. The rule, in order:

1. anomalous images always go to ``eval`` (training only ever fits on normal images);
2. an image whose bytes the project already holds with the same label takes that copy's split
   (a duplicate must never sit on both sides) - see :func:`split_for_new_media`;
3. unlabelled images (collected, waiting for a person) go by the hash alone;
4. a normal image goes to ``eval`` when its content hash falls in the lowest ``EVAL_SHARE``
   (about 20 %), except while the project has fewer than ``MIN_TRAIN_NORMALS`` train normals;
5. catch-up: while fewer than ``MIN_EVAL_NORMALS`` normals are in ``eval``, a normal goes to
   ``eval`` as soon as the normals still to come before the ``EVAL_FLOOR_AT``-th one would not be
   enough to reach that floor. So the project has at least 4 eval normals from its 8th normal on.

Rule 5 depends on the order in which images arrive, but it never moves an image that is already
stored: the decision is made once, from the counts at that moment, and kept. Later edits are
explicit (``PATCH /media/{id}``). Two uploads racing into the same small project may both read
the same counts; the only effect is one eval image more or less.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from infra.database.models import Media

Split = Literal["train", "eval"]
TRAIN: Split = "train"
EVAL: Split = "eval"
SPLITS: tuple[Split, ...] = (TRAIN, EVAL)

NORMAL, ANOMALOUS, UNLABELLED = "normal", "anomalous", "unlabelled"
LABELS = (NORMAL, ANOMALOUS, UNLABELLED)

EVAL_SHARE = 0.2
MIN_EVAL_NORMALS = 4
EVAL_FLOOR_AT = 8
MIN_TRAIN_NORMALS = 2


def hash_fraction(sha256: str) -> float:
    """The content hash as a number in [0, 1): uniform, and the same for the same bytes everywhere."""
    return int(sha256[:8], 16) / 0x1_0000_0000


def hash_split(sha256: str) -> Split:
    return EVAL if hash_fraction(sha256) < EVAL_SHARE else TRAIN


@dataclass
class SplitAssigner:
    """Assigns splits to new media of one project, keeping its running counts of normal images.

    ``normals`` and ``eval_normals`` are the project's counts before the first new item; one
    assigner serves a whole upload so that its images see each other.
    """

    normals: int = 0
    eval_normals: int = 0

    def assign(self, label: str, sha256: str) -> Split:
        if label == ANOMALOUS:
            return EVAL
        if label != NORMAL:
            return hash_split(sha256)
        split = hash_split(sha256) if self.normals - self.eval_normals >= MIN_TRAIN_NORMALS else TRAIN
        missing = MIN_EVAL_NORMALS - self.eval_normals
        if missing > 0 and missing >= EVAL_FLOOR_AT - self.normals:
            split = EVAL
        self.record(label, split)
        return split

    def record(self, label: str, split: str) -> None:
        """Count an item whose split was decided elsewhere (a duplicate that keeps its twin's split)."""
        if label == NORMAL:
            self.normals += 1
            self.eval_normals += split == EVAL


# The rules read the counts only against these thresholds (train normals >= MIN_TRAIN_NORMALS; eval normals
# exact below MIN_EVAL_NORMALS; normals exact below EVAL_FLOOR_AT, i.e. train normals below EVAL_FLOOR_AT -
# MIN_EVAL_NORMALS once eval is short), so counting up to these caps decides exactly as full counts would.
_EVAL_CAP = MIN_EVAL_NORMALS
_TRAIN_CAP = EVAL_FLOOR_AT


def capped_count_query(project_id: uuid.UUID, split: str, cap: int) -> Select[tuple[int]]:
    """How many normal images the project has in ``split``, counted up to ``cap`` (the
    ``(project_id, label, split)`` index answers it with at most ``cap`` entries)."""
    rows = select(Media.id).where(Media.project_id == project_id, Media.label == NORMAL, Media.split == split)
    return select(func.count()).select_from(rows.limit(cap).subquery())


def _capped_count(session: Session, project_id: uuid.UUID, split: str, cap: int) -> int:
    return session.scalar(capped_count_query(project_id, split, cap)) or 0


def assigner_for(session: Session, project_id: uuid.UUID) -> SplitAssigner:
    """An assigner that starts from the project's stored normal images.

    Counted up to the caps the rules need (a few rows), not over the whole project: every upload
    builds one, and a full count walked all of a 100,000-media project's normal images."""
    eval_normals = _capped_count(session, project_id, EVAL, _EVAL_CAP)
    train_normals = _capped_count(session, project_id, TRAIN, _TRAIN_CAP)
    return SplitAssigner(normals=eval_normals + train_normals, eval_normals=eval_normals)


def twin_query(project_id: uuid.UUID, label: str, sha256: str) -> Select[tuple[str]]:
    """The split of an item of the project with these bytes and label (rule 2), if any.

    Run for every uploaded image: the ``(project_id, sha256, label)`` index answers it with one seek
    (without it SQLite walked every image of the project with that label)."""
    return select(Media.split).where(Media.project_id == project_id, Media.sha256 == sha256,
                                     Media.label == label).limit(1)


def split_for_new_media(session: Session, assigner: SplitAssigner, project_id: uuid.UUID, label: str,
                        sha256: str) -> Split:
    """The split of a media item about to be added (rule 2 first, then the assigner)."""
    if label != ANOMALOUS:
        twin = session.scalar(twin_query(project_id, label, sha256))
        if twin in SPLITS:
            assigner.record(label, twin)
            return twin  # type: ignore[return-value]
    return assigner.assign(label, sha256)
