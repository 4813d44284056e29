"""Export a trained model to the files a user downloads: OpenVINO IR, ONNX, or PyTorch.

OpenVINO and ONNX graphs take ONE image (batch 1) of any height and width: the model's own
resize is part of the graph. anomalib's default export traces PatchCore with a batch of 2 and
freezes that batch (its nearest-neighbour search loops over fixed-size chunks), so the shapes
are always given explicitly here. :func:`verify_openvino` runs a single image through an IR.

The IR is first converted by OpenVINO from a TorchScript trace (`traced_ir`): a third of the time
of the route through torch.export and ONNX, which was three quarters of a PaDiM training job. A
trace records one run, so the traced IR is kept only where it gives the model's own outputs on
images of sizes other than the traced one; otherwise the IR comes the ONNX way, as before.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from anomalib.deploy import CompressionType
from anomalib.models.components import AnomalibModule
from torch.export import Dim

from flows.training.build import DEFAULT_IMAGE_SIZE, build_model, load_weights, read_weights
from infra.anomaly import backbones
from infra.anomaly.catalog import validate_parameters
from infra.anomaly.telemetry import decline_openvino_telemetry

FORMATS = ("openvino", "onnx", "pytorch")
COMPRESSIONS = ("fp16", "int8")
MODEL_NAME = "model"
# The opset torch.onnx (dynamo) emits natively; asking for an older one triggers a failing down-conversion.
ONNX_OPSET = 18
# The traced IR's check: outputs that are scores or maps (not thresholded labels and masks) within this of the
# model's own on each check image. Both routes agree with the model to about 1e-5 on PaDiM, PatchCore and STFPM.
TRACE_TOLERANCE = 1e-3
CONVERSION_KEY = ("geti_inspect", "conversion")  # rt_info of a traced IR: "torchscript" (absent: the ONNX route)

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """The model could not be exported, or the exported file does not run."""


class CompressionNotAvailable(ExportError):
    """The requested compression cannot be done with what is installed here."""


def _dynamic_image_shape() -> tuple[dict[int, Any]]:
    """Batch fixed at 1; height and width free (the graph resizes to the training size itself)."""
    return ({2: Dim("height", min=32, max=4096), 3: Dim("width", min=32, max=4096)},)


def _compression_type(compression: str) -> CompressionType:
    if compression not in COMPRESSIONS:
        raise ExportError(f"unknown compression {compression!r}; expected one of {', '.join(COMPRESSIONS)}")
    if compression == "int8":
        import importlib.util

        if importlib.util.find_spec("nncf") is None:
            raise CompressionNotAvailable("int8 compression needs NNCF (pip install nncf), which is not installed")
        # Weight-only INT8 (nncf.compress_weights): needs no calibration images.
        return CompressionType.INT8
    return CompressionType.FP16


def load_model(
    checkpoint: Path,
    architecture: str,
    parameters: dict[str, Any],
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    data_dir: Path | None = None,
) -> AnomalibModule:
    """Rebuild a trained model from its checkpoint and the resolved training parameters.

    The checkpoint is read first: an unsafe one (UnsafeCheckpoint) fails before anything is built."""
    state_dict = read_weights(Path(checkpoint))
    if data_dir is not None:
        backbones.activate_hub_cache(data_dir)  # building the backbone loads its pretrained weights first
    resolved = validate_parameters(architecture, parameters)
    return load_weights(build_model(architecture, resolved, image_size), state_dict)


def export(
    source: Path | AnomalibModule,
    architecture: str,
    parameters: dict[str, Any],
    fmt: str,
    out_dir: Path,
    *,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    data_dir: Path | None = None,
) -> Path:
    """Write the files of one format into ``out_dir`` (created, must not hold older files) and return it.

    ``source`` is a trained model or its Lightning checkpoint. openvino: ``model.xml`` + ``model.bin`` in
    f32 (:func:`compress_ir` makes the fp16 and int8 variants of it); onnx: ``model.onnx``; pytorch:
    ``model.pt`` (anomalib's torch export, for ``TorchInferencer``) + ``model.ckpt`` (the Lightning
    checkpoint) when known.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    checkpoint = None if isinstance(source, AnomalibModule) else Path(source)
    model = source if checkpoint is None else load_model(checkpoint, architecture, parameters, image_size, data_dir)
    model = model.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        try:
            produced = _export_files(model, fmt, Path(tmp), tuple(image_size))
        except Exception as error:  # noqa: BLE001 - anomalib/torch/openvino raise many kinds
            raise ExportError(f"{fmt} export of {architecture} failed: {error}") from error
        # Everything next to the produced file belongs to it (ONNX keeps large weights in model.onnx.data).
        for path in sorted(produced.parent.iterdir()):
            if path.is_file():
                shutil.move(str(path), out_dir / path.name)
    if fmt == "pytorch" and checkpoint is not None and checkpoint.resolve() != (out_dir / "model.ckpt").resolve():
        shutil.copyfile(checkpoint, out_dir / "model.ckpt")
    return out_dir


def _export_files(
    model: AnomalibModule,
    fmt: str,
    tmp: Path,
    image_size: tuple[int, int],
) -> Path:
    """The main file written (in a folder of its own under ``tmp``)."""
    decline_openvino_telemetry()  # before the converter first asks
    with torch.no_grad():
        if fmt == "pytorch":
            return model.to_torch(export_root=tmp, model_file_name=MODEL_NAME)
        if fmt == "onnx":
            return model.to_onnx(
                export_root=tmp,
                model_file_name=MODEL_NAME,
                input_size=image_size,
                dynamic_shapes=_dynamic_image_shape(),
                opset_version=ONNX_OPSET,
            )
        return traced_ir(model, tmp / "traced", image_size) or onnx_route_ir(model, tmp, image_size)


def onnx_route_ir(model: AnomalibModule, tmp: Path, image_size: tuple[int, int]) -> Path:
    """The IR through torch.export, ONNX and OpenVINO's ONNX conversion (anomalib's ``to_openvino``)."""
    with torch.no_grad():
        return model.to_openvino(
            export_root=tmp,
            model_file_name=MODEL_NAME,
            input_size=image_size,
            onnx_kwargs={"dynamic_shapes": _dynamic_image_shape(), "opset_version": ONNX_OPSET},
        )


def _output_names(model: AnomalibModule, example: torch.Tensor) -> list[str]:
    """The names of the outputs the model gives (anomalib's InferenceBatch fields that are not None), in order."""
    return [name for name, value in model(example)._asdict().items() if value is not None]


def _check_images(image_size: tuple[int, int]) -> list[np.ndarray]:
    """Two smooth, textured images: one of the training size, one of a size that is neither it nor the traced."""
    height, width = image_size
    rng = np.random.default_rng(0)
    images = []
    for h, w in ((height, width), (height * 3 // 4 + 5, width * 5 // 4 + 3)):
        rows, cols = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
        base = 0.5 + 0.25 * np.sin(9 * rows + 4 * cols)[None] + 0.05 * rng.standard_normal((3, h, w))
        images.append(np.clip(base, 0, 1).astype(np.float32)[None])
    return images


def traced_ir(model: AnomalibModule, folder: Path, image_size: tuple[int, int],
              trace_size: tuple[int, int] | None = None) -> Path | None:
    """``folder/model.xml``: the IR OpenVINO converts from a TorchScript trace of ``model``, or None where that
    conversion fails or its outputs differ from the model's on the check images (`_check_images`).

    The trace runs on an image of ``trace_size``, by default one the model's own resize changes: traced on the
    training size, that resize would be recorded as doing nothing, and other sizes would then fail."""
    import openvino as ov

    height, width = trace_size or (image_size[0] + 32, image_size[1] + 64)
    example = torch.zeros(1, 3, height, width)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's tracer warnings: the check below is what decides
            names = _output_names(model, example)
            ir = ov.convert_model(model, example_input=example, input=[ov.PartialShape([1, 3, -1, -1])])
        if len(ir.outputs) != len(names):
            raise ExportError(f"the trace has {len(ir.outputs)} outputs where the model gives {len(names)}")
        for output, name in zip(ir.outputs, names, strict=True):
            output.get_tensor().set_names({name})
        ir.inputs[0].get_tensor().set_names({"input"})
        compiled = ov.Core().compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        for image in _check_images(image_size):
            with torch.no_grad():
                expected = model(torch.from_numpy(image))._asdict()
            got = {next(iter(port.get_names())): value for port, value in compiled(image).items()}
            for name in ("pred_score", "anomaly_map"):
                if expected[name] is not None and not np.allclose(got[name], expected[name].numpy(),
                                                                  atol=TRACE_TOLERANCE, rtol=TRACE_TOLERANCE):
                    raise ExportError(f"the traced IR's {name} differs from the model's on a {image.shape} image")
    except Exception as error:  # noqa: BLE001 - tracing and conversion fail in many ways; the ONNX route remains
        log.info("converting the IR through ONNX: the TorchScript trace was not usable (%s)", error)
        return None
    ir.set_rt_info("torchscript", list(CONVERSION_KEY))
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(ir, folder / f"{MODEL_NAME}.xml", compress_to_fp16=False)
    return folder / f"{MODEL_NAME}.xml"


def compress_ir(xml: Path, compression: str, out_dir: Path) -> Path:
    """The IR at ``xml`` with its weights compressed into ``out_dir`` (created): ``model.xml`` + ``model.bin``.

    The same transforms anomalib applies after converting (fp16 weights on save, NNCF's int8 weight
    compression), applied to an IR that is already there: no checkpoint, no torch, and the very graph
    training verified.
    """
    compression_type = _compression_type(compression)
    import openvino as ov

    decline_openvino_telemetry()  # before NNCF first asks
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        model = ov.Core().read_model(str(xml))
        if compression_type == CompressionType.INT8:
            import nncf

            model = nncf.compress_weights(model)
        ov.save_model(model, out_dir / f"{MODEL_NAME}.xml", compress_to_fp16=compression_type == CompressionType.FP16)
    except Exception as error:  # noqa: BLE001 - openvino's and NNCF's own errors
        raise ExportError(f"openvino {compression} compression of {xml.name} failed: {error}") from error
    return out_dir


def load_image(path: Path, image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """An image file as the exported graphs take it: float32 RGB in [0, 1], shape (1, 3, H, W)."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
    array = np.asarray(rgb, dtype=np.float32) / 255.0
    return np.ascontiguousarray(array.transpose(2, 0, 1)[None])


def verify_openvino(
    xml: Path,
    image: np.ndarray,
    expected_score: float | None = None,
    tolerance: float = 0.02,
) -> float:
    """Run one image (batch 1) through an IR on the CPU and return its anomaly score.

    Raises :class:`ExportError` when the IR does not take a single image, produces no finite
    score, or disagrees with ``expected_score`` (the PyTorch model's) by more than ``tolerance``.
    Runs in f32: the CPU would otherwise pick bf16 and differ in the third decimal.
    """
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    batch = model.input(0).get_partial_shape()[0]
    if batch.is_static and batch.get_length() != 1:
        raise ExportError(f"exported IR takes a batch of {batch.get_length()}, not a single image")
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    try:
        outputs = compiled(image)
    except Exception as error:  # noqa: BLE001 - openvino's own runtime errors
        raise ExportError(f"exported IR failed on a single {tuple(image.shape)} image: {error}") from error
    by_name = {name: value for port, value in outputs.items() for name in port.get_names()}
    if "pred_score" not in by_name:
        raise ExportError(f"exported IR has no pred_score output (outputs: {sorted(by_name)})")
    score = float(np.asarray(by_name["pred_score"]).reshape(-1)[0])
    if not np.isfinite(score):
        raise ExportError(f"exported IR produced a non-finite score {score}")
    if expected_score is not None and abs(score - expected_score) > tolerance:
        raise ExportError(f"exported IR scores {score:.4f} where the trained model scores {expected_score:.4f}")
    return score


def torch_score(model: AnomalibModule, image: np.ndarray) -> float:
    """The trained model's own score for one image (the reference for :func:`verify_openvino`)."""
    with torch.no_grad():
        output = model.eval()(torch.from_numpy(image))
    return float(output.pred_score.reshape(-1)[0])
