"""OpenVINO inference on a real anomalib export (PaDiM trained once per session on synthetic parts)."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from infra.openvino_model import AnomalyModel, ModelLoadError, find_model_xml
from pipelines.inference import AsyncScorer
from tests.integration.pipeline_helpers import class_images, frames_from

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def model(model_dir: Path) -> AnomalyModel:
    return AnomalyModel(model_dir)


def test_scores_and_maps_are_normalised(model: AnomalyModel, part_images: Path) -> None:
    assert (model.input_height, model.input_width) == (256, 256)
    # Parts the model never saw: it trained on good parts 0-15 and validated on cracks 0-3.
    good = frames_from(class_images(part_images, "MT_Free", 6, start=20), (300, 200))
    cracked = frames_from(class_images(part_images, "MT_Crack", 6, start=4), (300, 200))
    predictions = [model.infer(frame) for frame in good + cracked]
    scores = [p.score for p in predictions]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores[:6]) < min(scores[6:]), scores  # every crack scores above every good part
    for prediction in predictions:
        assert prediction.anomaly_map.shape == (256, 256) and prediction.anomaly_map.dtype == np.float32
        assert 0.0 <= prediction.anomaly_map.min() <= prediction.anomaly_map.max() <= 1.0
        assert prediction.inference_ms > 0


def test_the_export_thresholds_at_half(model: AnomalyModel, part_images: Path) -> None:
    """What makes ``config.threshold`` applicable as is: the export's own label is score > 0.5."""
    compiled = model.compiled
    frames = frames_from(class_images(part_images, "MT_Free", 10) + class_images(part_images, "MT_Blowhole", 6))
    labels_match = []
    for frame in frames:
        outputs = compiled(model.preprocess(frame))
        score = float(outputs[compiled.output("pred_score")].reshape(-1)[0])
        label = bool(outputs[compiled.output("pred_label")].reshape(-1)[0])
        labels_match.append(label == (score > 0.5))
    assert all(labels_match)


def test_the_model_is_deterministic_for_the_same_frame(model: AnomalyModel, part_images: Path) -> None:
    frame = frames_from(class_images(part_images, "MT_Crack", 1))[0]
    assert model.infer(frame).score == model.infer(frame).score


def test_missing_or_ambiguous_model_dirs_are_clear_errors(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        AnomalyModel(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no OpenVINO IR"):
        AnomalyModel(tmp_path / "empty")
    twice = tmp_path / "twice"
    shutil.copytree(model_dir, twice / "a")
    shutil.copytree(model_dir, twice / "b")
    with pytest.raises(ModelLoadError, match="more than one"):
        find_model_xml(twice)
    assert find_model_xml(twice / "a").name == "model.xml"
    assert find_model_xml(find_model_xml(model_dir)) == find_model_xml(model_dir)


def test_a_fixed_batch_of_two_is_refused_with_advice(model_dir: Path, tmp_path: Path) -> None:
    core = ov.Core()
    fixed = core.read_model(find_model_xml(model_dir))
    fixed.reshape([2, 3, 256, 256])
    ov.save_model(fixed, tmp_path / "batch2" / "model.xml")
    with pytest.raises(ModelLoadError, match="fixed batch of 2; re-export it with batch 1"):
        AnomalyModel(tmp_path / "batch2")


def test_async_scorer_delivers_every_frame_and_is_freed(model_dir: Path, part_images: Path) -> None:
    """Hot swaps drop scorers; the C++ callback must not keep them (and their buffers) alive."""
    model = AnomalyModel(model_dir, performance_hint="THROUGHPUT")
    frames = frames_from(class_images(part_images, "MT_Free", 4))
    results: dict[int, float] = {}
    scorer = AsyncScorer(model, lambda index, prediction: results.__setitem__(index, prediction.score))
    assert scorer.requests >= 1
    for index, frame in enumerate(frames * 2):
        scorer.submit(frame, index)
    scorer.wait()
    assert sorted(results) == list(range(8))
    assert [results[i] for i in range(4)] == [results[i] for i in range(4, 8)]
    assert results[0] == model.infer(frames[0]).score
    assert scorer.take_errors() == []
    scorer_ref, model_ref = weakref.ref(scorer), weakref.ref(model)
    del scorer, model
    gc.collect()
    assert scorer_ref() is None and model_ref() is None
