"""The train/eval split rule: deterministic from the content hash, with an eval floor from 8 normals."""

from __future__ import annotations

import hashlib

import pytest

from infra.splits import EVAL, TRAIN, SplitAssigner, hash_fraction, hash_split


def digest(index: int) -> str:
    return hashlib.sha256(f"image-{index}".encode()).hexdigest()


def eval_hash(wanted: bool, start: int = 0):
    """Content hashes that the hash rule alone sends to eval (wanted) or to train."""
    index = start
    while True:
        if (hash_split(digest(index)) == EVAL) == wanted:
            yield digest(index)
        index += 1


def test_the_hash_sends_about_a_fifth_to_eval_and_always_the_same_way() -> None:
    hashes = [digest(i) for i in range(5000)]
    share = sum(hash_split(h) == EVAL for h in hashes) / len(hashes)
    assert 0.18 < share < 0.22
    assert [hash_split(h) for h in hashes[:50]] == [hash_split(h) for h in hashes[:50]]
    assert all(0 <= hash_fraction(h) < 1 for h in hashes)
    assert hash_fraction("0" * 64) == 0 and hash_split("f" * 64) == TRAIN


def test_anomalous_images_always_go_to_eval_and_do_not_count_as_normals() -> None:
    assigner = SplitAssigner()
    assert {assigner.assign("anomalous", h) for h in [digest(i) for i in range(20)]} == {EVAL}
    assert (assigner.normals, assigner.eval_normals) == (0, 0)


def test_unlabelled_images_follow_the_hash_only() -> None:
    assigner = SplitAssigner(normals=20, eval_normals=0)  # even a project short of eval normals
    train_hash, eval_hash_ = next(eval_hash(False)), next(eval_hash(True))
    assert (assigner.assign("unlabelled", train_hash), assigner.assign("unlabelled", eval_hash_)) == (TRAIN, EVAL)
    assert (assigner.normals, assigner.eval_normals) == (20, 0)


def test_the_first_two_normals_train_even_when_their_hash_says_eval() -> None:
    assigner = SplitAssigner()
    hashes = eval_hash(True)
    assert [assigner.assign("normal", next(hashes)) for _ in range(3)] == [TRAIN, TRAIN, EVAL]


def test_eight_normals_that_all_hash_to_train_still_leave_four_in_eval() -> None:
    assigner = SplitAssigner()
    splits = [assigner.assign("normal", h) for h, _ in zip(eval_hash(False), range(8), strict=False)]
    assert splits == [TRAIN] * 4 + [EVAL] * 4  # the catch-up takes the last ones: nothing already stored moves
    assert (assigner.normals, assigner.eval_normals) == (8, 4)


@pytest.mark.parametrize("start", range(0, 400, 40))
def test_from_the_eighth_normal_on_there_are_at_least_four_eval_normals(start: int) -> None:
    assigner = SplitAssigner()
    for index in range(start, start + 60):
        assigner.assign("normal", digest(index))
        if assigner.normals >= 8:
            assert assigner.eval_normals >= 4
    assert assigner.eval_normals <= 25  # beyond the floor only the hash: about 20 % (binomial spread)


def test_a_project_that_lost_eval_normals_refills_the_floor_with_new_ones() -> None:
    assigner = SplitAssigner(normals=30, eval_normals=2)  # say, two eval images were deleted
    hashes = eval_hash(False)
    assert [assigner.assign("normal", next(hashes)) for _ in range(3)] == [EVAL, EVAL, TRAIN]


def test_the_same_arrivals_give_the_same_splits() -> None:
    runs = []
    for _ in range(2):
        assigner = SplitAssigner()
        runs.append([assigner.assign("normal" if i % 5 else "anomalous", digest(i)) for i in range(40)])
    assert runs[0] == runs[1]


def test_counts_capped_as_assigner_for_reads_them_decide_exactly_as_full_counts() -> None:
    """assigner_for counts eval normals up to 4 and train normals up to 8 (a few rows, not the project):
    from every starting point, over batches of new images, the splits come out the same."""
    import random

    from infra.splits import EVAL_FLOOR_AT, MIN_EVAL_NORMALS

    rng = random.Random(7)
    for train in range(0, 14):
        for evals in range(0, 9):
            hashes = [f"{rng.getrandbits(256):064x}" for _ in range(12)]
            labels = [rng.choice(["normal", "normal", "normal", "anomalous", "unlabelled"]) for _ in hashes]
            full = SplitAssigner(normals=train + evals, eval_normals=evals)
            capped_eval, capped_train = min(evals, MIN_EVAL_NORMALS), min(train, EVAL_FLOOR_AT)
            capped = SplitAssigner(normals=capped_eval + capped_train, eval_normals=capped_eval)
            assert [full.assign(label, digest) for label, digest in zip(labels, hashes, strict=True)] == [
                capped.assign(label, digest) for label, digest in zip(labels, hashes, strict=True)], (train, evals)
