"""Training core on synthetic parts, offline: fit, test, export every format, run the IR on one image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openvino as ov
import pytest
import torch
from huggingface_hub import constants

from flows.training import export as export_module
from flows.training.dataset import DatasetError, DatasetItem, materialise
from flows.training.export import (
    CONVERSION_KEY,
    ExportError,
    compress_ir,
    export,
    load_image,
    load_model,
    torch_score,
    traced_ir,
    verify_openvino,
)
from flows.training.trainer import (
    ArchitectureUnavailable,
    ProgressEvent,
    TrainingCancelled,
    TrainingResult,
    TrainingSteps,
    train,
)
from infra.anomaly import backbones
from infra.anomaly.backbones import WeightsUnavailableError

pytestmark = pytest.mark.timeout(900)
STAGES = ["preparing", "fitting", "testing", "exporting"]


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    """No Hugging Face hub, whatever this machine can reach; process-wide settings restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_HUB_CACHE", constants.HF_HUB_CACHE)
        patch.setattr(constants, "HF_HUB_CACHE", constants.HF_HUB_CACHE)
        patch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
        backbones.hub_reachable.cache_clear()
        yield
    backbones.hub_reachable.cache_clear()


def _slice(images_dir: Path, root: Path, normal: int, per_defect: int | None) -> Path:
    """First ``normal`` MT_Free images + ``per_defect`` (None: all) MT_Blowhole and MT_Crack images with their masks."""
    good = sorted((images_dir / "MT_Free" / "Imgs").glob("*.jpg"))[:normal]
    items = [DatasetItem(path.name, "normal", str(path)) for path in good]
    for defect in ("MT_Blowhole", "MT_Crack"):
        for path in sorted((images_dir / defect / "Imgs").glob("*.jpg"))[:per_defect]:
            items.append(DatasetItem(path.name, "anomalous", str(path), str(path.with_suffix(".png"))))
    layout = materialise(items, lambda ref: Path(ref).read_bytes(), root)
    assert layout.has_masks
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("platform-data")


@pytest.fixture(scope="module")
def padim(
    part_images: Path, tmp_path_factory: pytest.TempPathFactory, data_dir: Path, offline: None
) -> tuple[TrainingResult, list[ProgressEvent]]:
    # 44 good parts: 32 train + 12 held out; 12 defective parts with masks.
    root = _slice(part_images, tmp_path_factory.mktemp("parts") / "dataset", normal=44, per_defect=6)
    events: list[ProgressEvent] = []
    result = train(
        root,
        "padim",
        {"backbone": "mobilenetv2_100"},
        tmp_path_factory.mktemp("padim"),
        on_progress=events.append,
        data_dir=data_dir,
        holdout_ratio=12 / 44,
    )
    return result, events


def test_padim_learns_defects_offline(padim: tuple[TrainingResult, list[ProgressEvent]]) -> None:
    result, events = padim
    assert result.dataset["train_images"] == 32 and result.dataset["test_images"] == 24
    assert result.parameters["layers"] == ["blocks.2", "blocks.4"] and result.parameters["n_features"] == 128
    print("padim", result.metrics, result.timings)
    # The drawn defects are plain to see (measured: 1.0 and 0.997); what real tiles need of the weights,
    # the MTD test below checks.
    assert result.metrics["image_auroc"] > 0.9, result.metrics
    assert result.metrics["pixel_auroc"] > 0.9, result.metrics
    # Every defective test image has a mask: anomalib's AUPRO too (measured 0.994 here).
    assert result.metrics["pixel_metrics"] == "masks" and 0.5 < result.metrics["aupro"] <= 1.0, result.metrics
    assert set(result.timings) == {"fit_s", "test_s", "export_s"}
    assert result.history and result.history[0]["epoch"] == 1
    assert all("loss" not in entry for entry in result.history)  # nor in the per-epoch history (MLflow)
    assert result.checkpoint.is_file()

    progress = [event.progress for event in events]
    assert progress == sorted(progress) and progress[0] == 0.0 and progress[-1] == 1.0
    stages = list(dict.fromkeys(event.stage for event in events))
    assert stages == STAGES
    assert all(event.loss is None for event in events)  # PaDiM has no loss (only a constant placeholder)


def _run(path: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return {name: value for port, value in compiled(image).items() for name in port.get_names()}


def test_openvino_ir_scores_a_single_image(
    padim: tuple[TrainingResult, list[ProgressEvent]], part_images: Path
) -> None:
    result, _ = padim
    xml = result.openvino_dir / "model.xml"
    assert xml.with_suffix(".bin").is_file()
    shape = ov.Core().read_model(str(xml)).input(0).get_partial_shape()
    assert shape[0].get_length() == 1 and shape[1].get_length() == 3  # one image, any height and width
    crack = load_image(sorted((part_images / "MT_Crack" / "Imgs").glob("*.jpg"))[-1])
    outputs = _run(xml, crack)
    assert outputs["pred_score"].size == 1 and 0.0 <= float(outputs["pred_score"].item()) <= 1.0
    assert outputs["anomaly_map"].shape[-2:] == (256, 256)
    # The graph resizes by itself: a raw-sized tile goes in as it is.
    raw = load_image(sorted((part_images / "MT_Crack" / "Imgs").glob("*.jpg"))[-1], image_size=(180, 300))
    assert np.isfinite(_run(xml, raw)["pred_score"]).all()


def _model_outputs(model: torch.nn.Module, image: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        output = model(torch.from_numpy(image))
    return {"pred_score": output.pred_score.numpy(), "anomaly_map": output.anomaly_map.numpy()}


def _assert_scores_as_the_model(xml: Path, model: torch.nn.Module, crack: Path) -> None:
    """On a tile at the training size and at two raw sizes, the IR gives the model's own score and map."""
    for size in ((256, 256), (180, 300), (400, 220)):
        image = load_image(crack, image_size=size)
        got, expected = _run(xml, image), _model_outputs(model, image)
        assert abs(got["pred_score"].item() - expected["pred_score"].item()) < 1e-3, size
        assert np.allclose(got["anomaly_map"], expected["anomaly_map"], atol=1e-3), size


def test_the_ir_is_converted_from_a_trace_that_scores_as_the_model_at_any_size(
    padim: tuple[TrainingResult, list[ProgressEvent]], data_dir: Path, part_images: Path
) -> None:
    """The training's IR came the quick way (OpenVINO's conversion of a TorchScript trace), and it is the model."""
    result, _ = padim
    xml = result.openvino_dir / "model.xml"
    assert ov.Core().read_model(str(xml)).get_rt_info(list(CONVERSION_KEY)).astype(str) == "torchscript"
    model = load_model(result.checkpoint, "padim", result.parameters, data_dir=data_dir).eval()
    _assert_scores_as_the_model(xml, model, sorted((part_images / "MT_Crack" / "Imgs").glob("*.jpg"))[-1])


def test_a_trace_that_does_not_generalise_is_refused_and_the_ir_comes_through_onnx(
    padim: tuple[TrainingResult, list[ProgressEvent]], tmp_path: Path, data_dir: Path, part_images: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result, _ = padim
    model = load_model(result.checkpoint, "padim", result.parameters, data_dir=data_dir).eval()
    # Traced on the training size, the model's resize is recorded as doing nothing: the other check size fails.
    assert traced_ir(model, tmp_path / "same-size", (256, 256), trace_size=(256, 256)) is None
    assert not (tmp_path / "same-size").exists()
    # With no usable trace, the IR comes through torch.export and ONNX, and it is the model too.
    monkeypatch.setattr(export_module, "traced_ir", lambda *_args, **_kwargs: None)
    xml = export(model, "padim", result.parameters, "openvino", tmp_path / "onnx-route") / "model.xml"
    assert not ov.Core().read_model(str(xml)).has_rt_info(list(CONVERSION_KEY))
    _assert_scores_as_the_model(xml, model, sorted((part_images / "MT_Crack" / "Imgs").glob("*.jpg"))[-1])


def test_every_format_exports_from_the_checkpoint(
    padim: tuple[TrainingResult, list[ProgressEvent]], tmp_path: Path, data_dir: Path, part_images: Path
) -> None:
    result, _ = padim
    image = load_image(sorted((part_images / "MT_Blowhole" / "Imgs").glob("*.jpg"))[-1])
    reference = _run(result.openvino_dir / "model.xml", image)["pred_score"].item()

    def rebuilt(fmt: str) -> Path:
        return export(result.checkpoint, "padim", result.parameters, fmt, tmp_path / fmt, data_dir=data_dir)

    onnx = rebuilt("onnx") / "model.onnx"
    assert abs(_run(onnx, image)["pred_score"].item() - reference) < 1e-3

    torch_dir = rebuilt("pytorch")
    assert (torch_dir / "model.ckpt").is_file()
    model = torch.load(torch_dir / "model.pt", map_location="cpu", weights_only=False)["model"].eval()
    with torch.no_grad():
        assert abs(model(torch.from_numpy(image)).pred_score.item() - reference) < 1e-3

    with pytest.raises(ExportError, match="unknown export format"):
        rebuilt("tflite")


def test_the_ir_compresses_to_fp16_and_int8_weights(
    padim: tuple[TrainingResult, list[ProgressEvent]], tmp_path: Path, part_images: Path
) -> None:
    """What an export job does for a compressed OpenVINO archive: the stored IR, its weights compressed; the
    graph still takes one image of any size and scores as the f32 IR does."""
    result, _ = padim
    xml = result.openvino_dir / "model.xml"
    image = load_image(sorted((part_images / "MT_Blowhole" / "Imgs").glob("*.jpg"))[-1])
    reference = _run(xml, image)["pred_score"].item()
    fp32_bin = xml.with_suffix(".bin").stat().st_size
    for compression in ("fp16", "int8"):
        folder = compress_ir(xml, compression, tmp_path / compression)
        assert sorted(path.name for path in folder.iterdir()) == ["model.bin", "model.xml"], compression
        assert (folder / "model.bin").stat().st_size < 0.6 * fp32_bin, compression
        assert abs(_run(folder / "model.xml", image)["pred_score"].item() - reference) < 0.05, compression
        shape = ov.Core().read_model(str(folder / "model.xml")).input(0).get_partial_shape()
        assert shape[0].get_length() == 1 and shape[2].is_dynamic and shape[3].is_dynamic, compression
    with pytest.raises(ExportError, match="unknown compression"):
        compress_ir(xml, "int4", tmp_path / "int4")


def test_patchcore_trains_with_the_fast_coreset(
    part_images: Path, tmp_path: Path, data_dir: Path, offline: None
) -> None:
    root = _slice(part_images, tmp_path / "dataset", normal=16, per_defect=2)
    events: list[ProgressEvent] = []
    # 12 images = 12,288 patches: above this limit, so the chunked selection runs (exact: tests/unit/).
    result = train(root, "patchcore", {"backbone": "mobilenetv2_100"}, tmp_path / "work", on_progress=events.append,
                   data_dir=data_dir, exact_coreset_limit=8192)
    print("patchcore", result.metrics, result.timings, result.dataset)
    assert result.dataset["train_images"] == 12
    assert result.dataset["coreset_selection"] == "chunked greedy"
    assert (result.dataset["coreset_patches"], result.dataset["coreset_size"]) == (12 * 1024, 1228)
    assert 0.0 <= result.metrics["image_auroc"] <= 1.0 and "pixel_auroc" in result.metrics
    # Progress moved through the coreset selection (PatchCore's batches only cover the first 30% of fitting).
    fitting = [event.progress for event in events if event.stage == "fitting"]
    assert any(0.3 < (value - 0.05) / 0.75 < 1.0 for value in fitting)
    # The IR takes exactly one image (anomalib's default export would freeze a batch of 2 for PatchCore).
    shape = ov.Core().read_model(str(result.openvino_dir / "model.xml")).input(0).get_partial_shape()
    assert shape[0].get_length() == 1
    assert result.openvino_score is not None


def test_patchcore_evaluates_and_ships_the_capped_memory_bank(
    part_images: Path, tmp_path: Path, data_dir: Path, offline: None
) -> None:
    """coreset_max_size caps the bank during the fit, so evaluation, checkpoint and IR all use the capped bank,
    and the IR scores new images as the evaluated model does."""
    root = _slice(part_images, tmp_path / "dataset", normal=16, per_defect=2)
    steps = TrainingSteps(root, "patchcore", {"backbone": "mobilenetv2_100", "coreset_max_size": 300},
                          tmp_path / "work", data_dir=data_dir)
    steps.fit()
    steps.evaluate()
    steps.export_ir()
    steps.verify_ir()
    result = steps.result()
    # 12 training images: 12,288 patches, anomalib's 10 % would keep 1,228.
    assert (result.dataset["coreset_size"], result.dataset["coreset_uncapped_size"]) == (300, 1228)
    assert result.parameters["coreset_max_size"] == 300
    assert steps.model.model.memory_bank.shape == (300, 128)  # mobilenetv2 blocks.2 + blocks.4
    # The checkpoint loads as an export job loads it (safely: its hyperparameters hold anomalib's PrecisionType,
    # which read_weights once refused, so no PatchCore model could be exported to another format).
    rebuilt = load_model(result.checkpoint, "patchcore", result.parameters, data_dir=data_dir)
    assert rebuilt.model.memory_bank.shape == (300, 128)
    ir = ov.Core().read_model(str(result.openvino_dir / "model.xml"))
    constants_shapes = {tuple(op.get_output_partial_shape(0).to_shape()) for op in ir.get_ops()
                        if op.get_type_name() == "Constant"}
    assert {(300, 128), (128, 300)} & constants_shapes and not {(1228, 128), (128, 1228)} & constants_shapes
    # Images the model never saw (good parts and scratches, a defect kind absent from training and evaluation):
    # the IR's scores are the trained model's.
    unseen = sorted((part_images / "MT_Free" / "Imgs").glob("*.jpg"))[40:43]
    unseen += sorted((part_images / "MT_Scratch" / "Imgs").glob("*.jpg"))[:3]
    scores = []
    for path in unseen:
        image = load_image(path)
        scores.append(verify_openvino(result.openvino_dir / "model.xml", image,
                                      expected_score=torch_score(steps.model, image), tolerance=1e-3))
    assert max(scores[3:]) > min(scores[:3])  # the capped bank still tells scratches from good parts


def test_pixel_figures_rest_on_real_masks_or_say_what_they_rest_on(
    part_images: Path, tmp_path: Path, data_dir: Path, offline: None
) -> None:
    """No defective images: the pixel figure on synthetic defects says so in its name. Masks on some defective
    images only: no pixel figures at all. Fit and evaluate only (no export), on 6 + 4 good parts."""
    good = sorted((part_images / "MT_Free" / "Imgs").glob("*.jpg"))[:10]
    normals = [DatasetItem(path.name, "normal", str(path), split="eval" if index >= 6 else "train")
               for index, path in enumerate(good)]
    cracks = sorted((part_images / "MT_Crack" / "Imgs").glob("*.jpg"))[:2]
    partly_masked = [DatasetItem(cracks[0].name, "anomalous", str(cracks[0]), str(cracks[0].with_suffix(".png"))),
                     DatasetItem(cracks[1].name, "anomalous", str(cracks[1]))]
    seen: dict[str, dict] = {}
    for case, items in (("synthetic", normals), ("partial", normals + partly_masked)):
        root = tmp_path / case / "dataset"
        materialise(items, lambda ref: Path(ref).read_bytes(), root)
        steps = TrainingSteps(root, "padim", {"backbone": "mobilenetv2_100"}, tmp_path / case / "work",
                              data_dir=data_dir)
        steps.fit()
        seen[case] = steps.evaluate()
    pixel_keys = {"pixel_auroc", "pixel_f1", "aupro"}
    assert seen["synthetic"]["pixel_metrics"] == "synthetic defects", seen
    assert 0.0 <= seen["synthetic"]["synthetic_pixel_auroc"] <= 1.0 and not pixel_keys & set(seen["synthetic"])
    assert seen["partial"]["pixel_metrics"] == "incomplete masks", seen
    assert not (pixel_keys | {"synthetic_pixel_auroc"}) & set(seen["partial"]) and "image_auroc" in seen["partial"]


def test_cancellation_and_upfront_failures(part_images: Path, tmp_path: Path, data_dir: Path, offline: None) -> None:
    root = _slice(part_images, tmp_path / "dataset", normal=8, per_defect=1)
    events: list[ProgressEvent] = []
    with pytest.raises(TrainingCancelled):
        train(root, "padim", {}, tmp_path / "cancelled", on_progress=events.append,
              should_stop=lambda: any(event.stage == "fitting" for event in events), data_dir=data_dir)
    assert events[-1].stage == "fitting"

    with pytest.raises(ArchitectureUnavailable, match="imagenette"):
        train(root, "efficientad", {}, tmp_path / "efficientad", data_dir=data_dir)
    # A backbone without weights fails before any training, never as a silently random network.
    with pytest.raises(WeightsUnavailableError, match="resnet18"):
        train(root, "padim", {"backbone": "resnet18"}, tmp_path / "resnet", data_dir=data_dir)
    empty = tmp_path / "empty"
    (empty / "anomalous").mkdir(parents=True)
    with pytest.raises(DatasetError, match="normal images"):
        train(empty, "padim", {}, tmp_path / "empty-run", data_dir=data_dir)


def test_models_normalise_inputs_like_their_backbone_was_trained(data_dir: Path, offline: None) -> None:
    from torchvision.transforms.v2 import Normalize

    from flows.training.build import build_model
    from infra.anomaly.catalog import validate_parameters

    backbones.activate_hub_cache(data_dir)
    for backbone, mean in (("tf_efficientnet_lite0", [0.5] * 3), ("mobilenetv2_100", [0.485, 0.456, 0.406])):
        model = build_model("patchcore", validate_parameters("patchcore", {"backbone": backbone}))
        # export_transform is what goes into the exported graph; transform is what training uses.
        for transform in (model.pre_processor.transform, model.pre_processor.export_transform):
            (normalize,) = [step for step in transform.transforms if isinstance(step, Normalize)]
            assert normalize.mean == pytest.approx(mean), backbone


# Facts' reference slice of the real tiles: plain anomalib measured image AUROC 0.932 (first 200 MT_Free
# for training); this test through train() measured 0.933 (pixel 0.969) on 2026-11-30.
MTD_IMAGE_AUROC_BAR = 0.88


@pytest.mark.real_data  # about 130 s and data a clone lacks: `make test-real-data`, not `make test`
def test_padim_reaches_its_reference_accuracy_on_real_mtd_tiles(
    mtd_dir: Path, tmp_path: Path, data_dir: Path, offline: None
) -> None:
    """The one test on real data (skips without the MTD tiles): the platform's PaDiM on a fixed slice.

    300 MT_Free tiles (200 train, 100 held out) and every MT_Blowhole and MT_Crack tile, 256x256,
    mobilenetv2_100 blocks.2+4 with the offline ImageNet weights.
    """
    root = _slice(mtd_dir, tmp_path / "dataset", normal=300, per_defect=None)
    result = train(root, "padim", {"backbone": "mobilenetv2_100"}, tmp_path / "work", data_dir=data_dir,
                   holdout_ratio=100 / 300)
    print("padim on MTD", result.metrics, result.dataset, result.timings)
    assert result.dataset["train_images"] == 200 and result.dataset["test_images"] == 100 + 115 + 57
    assert result.metrics["image_auroc"] > MTD_IMAGE_AUROC_BAR, result.metrics
