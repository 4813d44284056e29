"""The pure parts behind the console's models pages: chart geometry, where models disagree, the training
form's values and the order of the architecture cards."""

from __future__ import annotations

import uuid

import pytest

from api.console.charts import MAX_POINTS, histogram_chart, roc_chart
from api.console.training import AUTO_CARD, ordered_cards, parse_field
from api.schemas.evaluation import RocPoint, ScoreHistogram
from api.schemas.trainable_models import ParameterSchema, TrainableModel
from api.services.evaluation import disagreements
from infra.evaluation import EvaluationRecord, ScoredItem


def test_roc_is_thinned_but_keeps_its_ends() -> None:
    points = [RocPoint(threshold=None, fpr=0.0, tpr=0.0)] + [
        RocPoint(threshold=1 - i / 5000, fpr=i / 5000, tpr=min(1.0, 2 * i / 5000)) for i in range(1, 5001)]
    chart = roc_chart(points)
    vertices = chart.points.split()
    assert len(vertices) <= MAX_POINTS + 2
    assert vertices[0] == "28.0,152.0"  # (0, 0) at the bottom left
    assert vertices[-1] == "232.0,8.0"  # (1, 1) at the top right


def test_histogram_bars_scale_to_the_peak_and_the_threshold_sits_between_the_edges() -> None:
    histogram = ScoreHistogram(edges=[0.0, 0.25, 0.5, 0.75, 1.0], normal=[10, 5, 0, 0], anomalous=[0, 0, 2, 4])
    chart = histogram_chart(histogram, 0.5)
    assert chart.peak == 10 and len(chart.normal) == len(chart.anomalous) == 4
    tallest = max(chart.normal, key=lambda bar: bar.height)
    assert tallest.count == 10 and tallest.y == 8.0
    assert [bar.height for bar in chart.normal][2:] == [0.0, 0.0]
    assert chart.normal[1].x < chart.threshold_x == chart.normal[2].x < chart.anomalous[2].x  # the 0.5 edge
    assert all(normal.x < anomalous.x for normal, anomalous in zip(chart.normal, chart.anomalous, strict=True))


def _record(threshold: float, scores: dict[uuid.UUID, float], labels: dict[uuid.UUID, str]) -> EvaluationRecord:
    return EvaluationRecord(uuid.uuid4(), threshold, [ScoredItem(index, media_id, f"{index}.png", labels[media_id],
                                                                 score)
                                                      for index, (media_id, score) in enumerate(scores.items())])


def test_disagreements_put_different_verdicts_first_then_the_widest_gap() -> None:
    same, gap, split, only_a = (uuid.uuid4() for _ in range(4))
    labels = {same: "normal", gap: "normal", split: "anomalous", only_a: "anomalous"}
    first = _record(0.5, {same: 0.1, gap: 0.05, split: 0.55, only_a: 0.9}, labels)
    second = _record(0.6, {same: 0.1, gap: 0.45, split: 0.58}, labels)  # 0.58 < its own threshold: normal
    a, b = uuid.uuid4(), uuid.uuid4()
    found = disagreements({a: first, b: second}, limit=10)
    assert [item.media_id for item in found] == [split, gap, same]  # only_a: not scored by both
    assert found[0].split_verdict and found[0].verdicts == {a: True, b: False}
    assert found[1].spread == pytest.approx(0.4)
    assert disagreements({a: first, b: second}, limit=1) == found[:1]
    assert disagreements({a: first}, limit=5) == []


@pytest.mark.parametrize(("spec", "text", "value"), [
    (ParameterSchema(type="integer", default=3), " 12 ", 12),
    (ParameterSchema(type="number", default=0.1), "0.25", 0.25),
    (ParameterSchema(type="boolean", default=False), "true", True),
    (ParameterSchema(type="array", default=["blocks.2"]), "blocks.2, blocks.4", ["blocks.2", "blocks.4"]),
    (ParameterSchema(type="array", default=[0.1, 1.0]), "0.2,2", [0.2, 2.0]),
    (ParameterSchema(type="integer", default=None, nullable=True), "", None),
    (ParameterSchema(type="string", default="add", options=["add", "multiply"]), "multiply", "multiply"),
])
def test_form_fields_become_the_parameters_json_values(spec: ParameterSchema, text: str, value: object) -> None:
    assert parse_field("p", spec, text) == value


@pytest.mark.parametrize(("spec", "text", "message"), [
    (ParameterSchema(type="integer", default=3), "3.5", "whole number"),
    (ParameterSchema(type="number", default=0.1), "abc", "must be a number"),
    (ParameterSchema(type="integer", default=3), "", "required"),
    (ParameterSchema(type="array", default=[0.1]), "a, b", "numbers separated by commas"),
])
def test_bad_form_values_say_what_is_expected(spec: ParameterSchema, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_field("p", spec, text)


def _entry(name: str, available: bool = True, recommended: bool = False, speed: str = "medium") -> TrainableModel:
    return TrainableModel(name=name, display_name=name, description="d", summary="s", speed=speed, accuracy="good",
                          recommended=recommended, available=available, parameters={})


def test_cards_offer_auto_then_recommended_then_available_fastest_first_then_unavailable() -> None:
    catalog = [_entry("slow"), _entry("gone", available=False, recommended=True), _entry("fast", speed="fast"),
               _entry("advised", recommended=True, speed="slow")]
    assert [card["name"] for card in ordered_cards(catalog)] == [AUTO_CARD["name"], "advised", "fast", "slow", "gone"]
