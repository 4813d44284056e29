"""OpenVINO inference for anomalib exports: load an IR once, score one BGR frame at a time.

Shared by the live runtime (`pipelines/`) and the retraining flow, which scores champion and
candidate with the same code that runs on the line.

anomalib (2.x) bakes its pre-processing (resize + ImageNet normalisation) and post-processing
into the exported graph. The IR therefore takes RGB floats in 0..1 shaped ``[1, 3, H, W]`` and
returns ``pred_score`` (``[1, 1]``) and ``anomaly_map`` (``[1, 1, H, W]``), both already
min-max normalised around the training threshold so that 0.5 is the model's own decision
boundary (``pred_label = pred_score > 0.5``). That is why a pipeline's ``threshold`` (default
0.5) is compared with ``pred_score`` directly. ``pred_label``/``pred_mask`` are ignored: the
pipeline threshold, not the one frozen in the export, decides.

Only the resize stays in OpenCV; BGR→RGB, uint8→float and the 1/255 scaling are folded into the
compiled graph (OpenVINO PrePostProcessor), so a frame goes in as ``[1, H, W, 3]`` uint8 BGR
straight from the decoder and the plugin does the conversion with its optimised kernels.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
from openvino.preprocess import ColorFormat, PrePostProcessor

log = logging.getLogger(__name__)

SCORE_OUTPUT = "pred_score"
MAP_OUTPUT = "anomaly_map"
# Used when the IR leaves height/width dynamic (the export's own pre-processor resizes anyway).
DEFAULT_INPUT_SIZE = (256, 256)

@functools.cache
def _ov_core() -> ov.Core:
    """One OpenVINO core per process: it owns the plugins and their thread pools."""
    return ov.Core()


class ModelLoadError(RuntimeError):
    """The model directory does not hold a usable anomalib OpenVINO export."""


@dataclass(frozen=True)
class Prediction:
    score: float
    anomaly_map: np.ndarray | None  # float32 [H, W] in 0..1 at the model's input size
    inference_ms: float  # pre-processing + OpenVINO inference + reading outputs


def find_model_xml(model_dir: Path) -> Path:
    """The one ``.xml`` IR under ``model_dir`` (anomalib writes ``weights/openvino/model.xml``)."""
    model_dir = Path(model_dir)
    if model_dir.is_file() and model_dir.suffix == ".xml":
        return model_dir
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    candidates = sorted(path for path in model_dir.rglob("*.xml") if path.with_suffix(".bin").is_file())
    if not candidates:
        raise ModelLoadError(f"no OpenVINO IR (.xml + .bin) found under {model_dir}")
    if len(candidates) > 1:
        names = ", ".join(str(path.relative_to(model_dir)) for path in candidates)
        raise ModelLoadError(f"more than one OpenVINO IR under {model_dir}: {names}")
    return candidates[0]


def model_input(frame_bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """BGR uint8 frame → the model's ``[1, H, W, 3]`` uint8 input (the graph does the rest)."""
    return cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_LINEAR)[None]


class AnomalyModel:
    """A compiled anomalib IR. :meth:`infer` is synchronous and not thread-safe (one caller at a time);
    the pipeline scores through :class:`AsyncScorer`, which keeps several requests in flight."""

    def __init__(self, model_dir: Path, device: str = "CPU", performance_hint: str = "LATENCY") -> None:
        self.xml_path = find_model_xml(Path(model_dir))
        self.device = device
        try:
            model = _ov_core().read_model(self.xml_path)
        except Exception as error:  # OpenVINO raises plain RuntimeError with a long text
            raise ModelLoadError(f"cannot read {self.xml_path}: {error}") from error
        self.input_height, self.input_width = self._fix_input_shape(model)
        model = self._fold_preprocessing(model)
        names = {name for output in model.outputs for name in output.get_names()}
        if SCORE_OUTPUT not in names:
            raise ModelLoadError(f"{self.xml_path} has no '{SCORE_OUTPUT}' output (outputs: {sorted(names)})")
        try:
            self.compiled = _ov_core().compile_model(model, device, {"PERFORMANCE_HINT": performance_hint})
        except Exception as error:
            raise ModelLoadError(f"cannot compile {self.xml_path} on {device}: {error}") from error
        self._score_output = self.compiled.output(SCORE_OUTPUT)
        self._map_output = self.compiled.output(MAP_OUTPUT) if MAP_OUTPUT in names else None
        self.has_map = self._map_output is not None
        self._request: ov.InferRequest | None = None  # for infer(); made on first use (requests cost memory)
        log.info("loaded %s on %s, input %dx%d", self.xml_path, device, self.input_width, self.input_height)

    def _fix_input_shape(self, model: ov.Model) -> tuple[int, int]:
        """Pin the batch to 1 (and dynamic H/W to a default) so the plugin compiles a static graph."""
        if len(model.inputs) != 1:
            raise ModelLoadError(f"{self.xml_path} has {len(model.inputs)} inputs; an anomalib export has one")
        shape = model.input().get_partial_shape()
        if shape.rank.is_dynamic or shape.rank.get_length() != 4:
            raise ModelLoadError(f"{self.xml_path} input {shape} is not [N, 3, H, W]")
        batch, channels, height, width = (shape[i] for i in range(4))
        if channels.is_static and channels.get_length() != 3:
            raise ModelLoadError(f"{self.xml_path} input {shape} does not take 3-channel images")
        if batch.is_static and batch.get_length() != 1:
            raise ModelLoadError(
                f"{self.xml_path} has a fixed batch of {batch.get_length()}; re-export it with batch 1"
            )
        size_h = height.get_length() if height.is_static else DEFAULT_INPUT_SIZE[0]
        size_w = width.get_length() if width.is_static else DEFAULT_INPUT_SIZE[1]
        if shape.is_dynamic:
            model.reshape([1, 3, size_h, size_w])
        return size_h, size_w

    @staticmethod
    def _fold_preprocessing(model: ov.Model) -> ov.Model:
        """Let the graph take uint8 BGR NHWC and convert to the float RGB NCHW in 0..1 the export expects."""
        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(
            ColorFormat.BGR
        )
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        ppp.input().preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).scale(255.0)
        return ppp.build()

    def preprocess(self, frame_bgr: np.ndarray) -> np.ndarray:
        return model_input(frame_bgr, self.input_height, self.input_width)

    def close(self) -> None:
        """Nothing to release early: the compiled model goes with the last reference (a shared one does not)."""

    def read_outputs(self, request: ov.InferRequest) -> tuple[float, np.ndarray | None]:
        """Score and a copy of the anomaly map (the request's buffers are reused by the next inference)."""
        score = float(request.get_tensor(self._score_output).data.reshape(-1)[0])
        anomaly_map = None
        if self._map_output is not None:
            anomaly_map = np.array(request.get_tensor(self._map_output).data[0, 0], dtype=np.float32)
        return score, anomaly_map

    def infer(self, frame_bgr: np.ndarray) -> Prediction:
        started = time.perf_counter()
        if self._request is None:
            self._request = self.compiled.create_infer_request()
        self._request.infer({0: self.preprocess(frame_bgr)})
        score, anomaly_map = self.read_outputs(self._request)
        return Prediction(score, anomaly_map, (time.perf_counter() - started) * 1000)


def score_images(model_dir: Path, images: list[bytes]) -> list[float]:
    """The IR's anomaly score of each encoded image (PNG/JPEG), decoded as the line decodes frames."""
    model = AnomalyModel(model_dir)
    scores = []
    for data in images:
        frame = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError("an evaluation image could not be decoded")
        scores.append(model.infer(frame).score)
    return scores
