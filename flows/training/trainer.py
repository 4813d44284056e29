"""Train one anomaly model on a materialised dataset: fit, test, export, verify.

Pure library code (no Prefect, no MLflow): the training flow calls :func:`train`, forwards the
:class:`ProgressEvent` stream to its progress artifact, passes ``should_stop`` for cancellation,
and logs the :class:`TrainingResult`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from anomalib.callbacks.checkpoint import ModelCheckpoint
from anomalib.engine import Engine
from anomalib.metrics import AUPRO
from anomalib.models.components import MemoryBankMixin
from lightning.pytorch import Callback, Trainer, seed_everything
from torch.utils.data import DataLoader

from flows.training.build import DEFAULT_IMAGE_SIZE, build_model
from flows.training.dataset import ANOMALOUS, NORMAL, DatasetLayout, build_datamodule, loader_workers, read_layout
from flows.training.export import export, load_image, torch_score, verify_openvino
from flows.training.patchcore import fast_patchcore
from flows.training.signals import KeepSigtermHandler
from infra.anomaly import backbones
from infra.anomaly.catalog import MAX_EPOCHS, availability, get_architecture, validate_parameters

log = logging.getLogger(__name__)

# Share of overall progress per stage; fitting dominates every architecture.
STAGE_SPANS: dict[str, tuple[float, float]] = {
    "preparing": (0.0, 0.05),
    "fitting": (0.05, 0.80),
    "testing": (0.80, 0.90),
    "exporting": (0.90, 1.0),
}
# anomalib metric names -> ours (AUROC first: F1 depends on a threshold chosen on few images).
METRIC_NAMES = {
    "image_AUROC": "image_auroc",
    "image_F1Score": "image_f1",
    "pixel_AUROC": "pixel_auroc",
    "pixel_F1Score": "pixel_f1",
    "pixel_AUPRO": "aupro",
}
# What the pixel figures rest on (the metric `pixel_metrics`): real masks on every anomalous eval image; masks
# on some only (anomalib pairs a mask with every anomalous image or none: no pixel figures); none; or no
# anomalous images at all, so anomalib draws synthetic defects with their masks.
MASKS, INCOMPLETE_MASKS, NO_MASKS, SYNTHETIC = "masks", "incomplete masks", "no masks", "synthetic defects"
# Pixel figures on synthetic defects say so in their name; pixel F1 there says nothing worth keeping.
SYNTHETIC_NAMES = {**{key: value for key, value in METRIC_NAMES.items() if not key.startswith("pixel_")},
                   "pixel_AUROC": "synthetic_pixel_auroc"}
# PatchCore: the batches only extract features; the coreset selection after them is most of the fit.
PATCHCORE_BATCH_SHARE = 0.3


class TrainingCancelled(Exception):  # noqa: N818 - reads as what happened
    """``should_stop`` asked to stop; nothing half-finished is returned."""


class ArchitectureUnavailable(RuntimeError):  # noqa: N818
    """The architecture cannot train on this machine (e.g. it needs downloads and there is no internet)."""


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # preparing | fitting | testing | exporting
    progress: float  # overall, 0..1, never decreases
    epoch: int | None = None  # 1-based, during fitting
    max_epochs: int | None = None
    loss: float | None = None  # last training loss, for models that have one

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class TrainingResult:
    architecture: str
    parameters: dict[str, Any]  # fully resolved (what the model was built with)
    # image_auroc, image_f1, pixel_metrics and, with masks, pixel_auroc, pixel_f1, aupro (synthetic_pixel_auroc
    # when the test set's defects are synthetic)
    metrics: dict[str, float | str]
    history: list[dict[str, float]]  # one entry per epoch: loss and validation metrics
    checkpoint: Path
    openvino_dir: Path  # model.xml + model.bin, batch 1, verified on one image
    timings: dict[str, float]  # fit_s, test_s, export_s
    dataset: dict[str, Any]  # image counts and whether the test anomalies are synthetic
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
    openvino_score: float | None = None  # the verification image's score from the IR
    # Normalised score at which the exported graph calls an image anomalous (anomalib: 1 - image_sensitivity).
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checkpoint"] = str(self.checkpoint)
        data["openvino_dir"] = str(self.openvino_dir)
        data["image_size"] = list(self.image_size)
        return data


class _Reporter:
    """Turns (stage, fraction of stage) into monotonic overall progress and checks for cancellation."""

    def __init__(
        self,
        on_progress: Callable[[ProgressEvent], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.progress = 0.0

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise TrainingCancelled("training cancelled")

    def __call__(self, stage: str, fraction: float = 0.0, **fields: Any) -> None:
        self.check()
        start, end = STAGE_SPANS[stage]
        self.progress = max(self.progress, start + (end - start) * min(max(fraction, 0.0), 1.0))
        if self.on_progress is not None:
            self.on_progress(ProgressEvent(stage=stage, progress=round(self.progress, 4), **fields))


def pixel_evaluation(layout: DatasetLayout) -> str:
    """Which pixel figures this dataset can give (see MASKS ... SYNTHETIC)."""
    if layout.anomalous == 0:
        return SYNTHETIC
    if layout.has_masks:
        return MASKS
    return INCOMPLETE_MASKS if layout.masks else NO_MASKS


def metric_names(pixel: str) -> dict[str, str]:
    """anomalib's metric names -> the platform's, for what the pixel figures rest on."""
    if pixel == MASKS:
        return METRIC_NAMES
    if pixel == SYNTHETIC:
        return SYNTHETIC_NAMES
    return {key: value for key, value in METRIC_NAMES.items() if not key.startswith("pixel_")}


@contextmanager
def _aupro_while_testing(model: Any) -> Iterator[None]:
    """AUPRO (anomalib's) beside the model's own test metrics, for the test pass only.

    Only where the model's evaluator already scores anomaly maps against masks (image-only models such as
    DFKDE have none). Removed afterwards: its ``fpr_limit`` buffer would enter the checkpoint's state dict,
    which must load into a model built the usual way (re-export, ``flows/training/export.py``).
    """
    evaluator = getattr(model, "evaluator", None)
    metrics = evaluator.test_metrics if evaluator is not None else []
    if not any("gt_mask" in getattr(metric, "fields", ()) for metric in metrics):
        yield
        return
    metrics.append(AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False))
    try:
        yield
    finally:
        del metrics[-1]


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, int | float):
            out[key] = float(value)
    return out


def _epoch_loss(metrics: dict[str, float]) -> float | None:
    for key in ("train_loss_epoch", "train_loss", "loss"):
        if key in metrics:
            return metrics[key]
    return None


class _ProgressCallback(Callback):
    """Lightning hooks -> progress events, the per-epoch history, and cancellation checks."""

    def __init__(self, report: _Reporter, max_epochs: int, batch_share: float, names: dict[str, str]) -> None:
        self.report = report
        self.max_epochs = max_epochs
        self.batch_share = batch_share
        self.names = names
        self.history: list[dict[str, float]] = []
        self.last_loss: float | None = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        # Memory-bank models (PaDiM, PatchCore, ...) return a constant placeholder: they have no loss.
        if not isinstance(pl_module, MemoryBankMixin) and isinstance(loss, torch.Tensor) and loss.numel() == 1:
            self.last_loss = float(loss.detach())
        batches = max(int(trainer.num_training_batches or 1), 1)
        done = (trainer.current_epoch + (batch_idx + 1) / batches) / self.max_epochs
        self.report(
            "fitting",
            done * self.batch_share,
            epoch=trainer.current_epoch + 1,
            max_epochs=self.max_epochs,
            loss=self.last_loss,
        )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        entry: dict[str, float] = {"epoch": float(trainer.current_epoch + 1)}
        loss = _epoch_loss(_scalars(trainer.callback_metrics))
        if loss is not None and not isinstance(pl_module, MemoryBankMixin):
            entry["loss"] = loss
        self.history.append(entry)

    def on_validation_end(self, trainer: Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking or not self.history:
            return
        for key, value in _scalars(trainer.callback_metrics).items():
            if key in self.names:
                self.history[-1][f"val_{self.names[key]}"] = value

    def on_test_batch_end(
        self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        total = trainer.num_test_batches[dataloader_idx] if trainer.num_test_batches else 1
        self.report("testing", (batch_idx + 1) / max(int(total), 1))


class _KeepValidationBatches(Callback):
    """Keeps the validation batches (images decoded and resized) so the test pass need not load them again.

    The platform validates and tests on the same images (``ValSplitMode.SAME_AS_TEST``); for large
    images, decoding is most of a pass. Shallow copies: the steps replace fields, never the kept tensors.
    Stops keeping (and drops what it kept) beyond ``max_images``.
    """

    def __init__(self, max_images: int = 1024) -> None:
        self.max_images = max_images
        self.batches: list[Any] | None = []

    def on_validation_batch_start(
        self, trainer: Trainer, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if trainer.sanity_checking or self.batches is None:
            return
        if batch_idx == 0:
            self.batches = []
        self.batches.append(copy.copy(batch))
        if sum(len(kept) for kept in self.batches) > self.max_images:
            self.batches = None


def _as_is(batch: Any) -> Any:
    return batch


def _engine(progress: _ProgressCallback, max_epochs: int, root: Path, extra: list[Callback]) -> Engine:
    return Engine(
        max_epochs=max_epochs,
        # Without a checkpoint callback anomalib adds one that writes every epoch; we save once, at the end.
        callbacks=[progress, ModelCheckpoint(dirpath=root, save_top_k=0, save_last=False), KeepSigtermHandler(),
                   *extra],
        accelerator="cpu",
        devices=1,
        logger=False,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def _verification_image(root: Path) -> Path:
    for sub in (ANOMALOUS, NORMAL):
        folder = root / sub
        if folder.is_dir():
            files = sorted(path for path in folder.iterdir() if path.is_file())
            if files:
                return files[0]
    raise FileNotFoundError(f"no image under {root}")


class TrainingSteps:
    """One training, step by step: prepare (on construction), fit, evaluate, export IR, verify IR.

    The steps run in this order; the training flow runs each as its own Prefect task so the run's
    timeline shows where the time goes, and :func:`train` runs them all in one call.

    Fits ``architecture`` on ``dataset_root`` (see ``dataset.materialise``). ``data_dir`` holds the
    Hugging Face cache with the offline backbone weights (defaults to the platform data dir);
    ``exact_coreset_limit`` defaults to the setting ``patchcore_exact_coreset_limit``.
    Raises ``ParameterError`` for bad parameters, ``WeightsUnavailableError`` when the backbone's
    weights cannot be loaded, :class:`ArchitectureUnavailable`, :class:`TrainingCancelled`,
    ``DatasetError`` or ``ExportError``.
    """

    def __init__(
        self,
        dataset_root: Path,
        architecture: str,
        parameters: dict[str, Any] | None,
        work_dir: Path,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        *,
        data_dir: Path | None = None,
        image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
        seed: int = 42,
        holdout_ratio: float = 0.25,
        batch_size: int = 8,
        exact_coreset_limit: int | None = None,
    ) -> None:
        report = self.report = _Reporter(on_progress, should_stop)
        report("preparing", 0.0)
        dataset_root, work_dir = Path(dataset_root), Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        from infra.settings import get_settings

        settings = get_settings()
        data_dir = settings.resolved_data_dir if data_dir is None else data_dir
        self.exact_coreset_limit = exact_coreset_limit or settings.patchcore_exact_coreset_limit
        cache_dir = backbones.activate_hub_cache(Path(data_dir))

        arch = get_architecture(architecture)
        resolved = validate_parameters(arch.name, parameters, cache_dir=cache_dir)
        available, reason = availability(arch, cache_dir)
        if not available:
            raise ArchitectureUnavailable(f"{arch.offering.display_name}: {reason}")
        if resolved.get("backbone"):
            backbones.ensure_weights(resolved["backbone"], cache_dir)

        seed_everything(seed, workers=True, verbose=False)
        self.layout = read_layout(dataset_root)
        self.datamodule = build_datamodule(
            dataset_root, holdout_ratio=holdout_ratio, train_batch_size=batch_size, eval_batch_size=batch_size,
            seed=seed, num_workers=loader_workers(dataset_root, image_size)
        )
        self.model = build_model(arch.name, resolved, image_size)
        max_epochs = int(resolved[MAX_EPOCHS])
        self.is_patchcore = arch.name == "patchcore"
        self.pixel_metrics = pixel_evaluation(self.layout)
        self.progress = _ProgressCallback(report, max_epochs, PATCHCORE_BATCH_SHARE if self.is_patchcore else 1.0,
                                          metric_names(self.pixel_metrics))
        self.kept = _KeepValidationBatches()
        extra_callbacks: list[Callback] = [self.kept] if self.is_patchcore else []
        self.engine = _engine(self.progress, max_epochs, work_dir / "lightning", extra_callbacks)
        self.architecture, self.parameters, self.image_size = arch.name, resolved, tuple(image_size)
        self.dataset_root, self.work_dir = dataset_root, work_dir
        self.timings: dict[str, float] = {}
        self.metrics: dict[str, float | str] = {}
        self.checkpoint = work_dir / "model.ckpt"
        self.openvino_dir = work_dir / "openvino"
        self.openvino_score: float | None = None
        # PatchCore's speed-ups (flows/training/patchcore.py) span fit and evaluation; closed before export.
        self._speedups = ExitStack()
        self.speedup_stats: dict[str, float] = {}
        report("preparing", 1.0)

    def fit(self) -> None:
        report = self.report

        def coreset_progress(done: int, total: int) -> None:
            report("fitting", PATCHCORE_BATCH_SHARE + (1 - PATCHCORE_BATCH_SHARE) * done / total)

        started = time.perf_counter()
        if self.is_patchcore:
            self.speedup_stats = self._speedups.enter_context(fast_patchcore(
                self.model, progress=coreset_progress, exact_limit=self.exact_coreset_limit,
                max_size=self.parameters.get("coreset_max_size")))
        try:
            self.engine.fit(model=self.model, datamodule=self.datamodule)
        except BaseException:
            self._speedups.close()
            raise
        self.timings["fit_s"] = round(time.perf_counter() - started, 3)
        report("fitting", 1.0)

    def evaluate(self) -> dict[str, float | str]:
        """Test on the held-out images and save the checkpoint; returns the metrics.

        Pixel AUROC, pixel F1 and AUPRO only against real masks; ``pixel_metrics`` says what they rest on.
        """
        started = time.perf_counter()
        kept = self.kept.batches
        if kept and sum(len(batch) for batch in kept) == len(self.datamodule.test_data):
            # The very images, already decoded (see _KeepValidationBatches); one kept batch per step.
            loader = DataLoader(kept, batch_size=None, collate_fn=_as_is)
            self.datamodule.test_dataloader = lambda: loader
        aupro = _aupro_while_testing(self.model) if self.pixel_metrics == MASKS else nullcontext()
        try:
            with aupro:
                results = self.engine.test(model=self.model, datamodule=self.datamodule, verbose=False)
        finally:
            self._speedups.close()  # the model is anomalib's own again: it checkpoints and exports as such
            self.kept.batches = None
        self.timings["test_s"] = round(time.perf_counter() - started, 3)
        names = metric_names(self.pixel_metrics)
        self.metrics = {names[key]: value for key, value in _scalars(results[0]).items() if key in names}
        self.metrics["pixel_metrics"] = self.pixel_metrics
        # Which images the figures rest on: a candidate and its champion compare on the same eval set.
        self.metrics["train_images"] = len(self.datamodule.train_data)
        self.metrics["eval_images"] = len(self.datamodule.test_data)
        self.engine.trainer.save_checkpoint(self.checkpoint)
        self.report("exporting", 0.0)
        return self.metrics

    def export_ir(self) -> Path:
        self._speedups.close()
        started = time.perf_counter()
        self.openvino_dir = export(self.model, self.architecture, self.parameters, "openvino",
                                   self.work_dir / "openvino", image_size=self.image_size)
        self.timings["export_s"] = round(time.perf_counter() - started, 3)
        self.report("exporting", 0.7)
        return self.openvino_dir

    def verify_ir(self) -> float:
        """Run the IR on one real image: a graph that only takes a batch of 2 must not reach users."""
        started = time.perf_counter()
        image = load_image(_verification_image(self.dataset_root), self.image_size)
        self.openvino_score = verify_openvino(self.openvino_dir / "model.xml", image,
                                              expected_score=torch_score(self.model, image))
        self.timings["export_s"] = round(self.timings.get("export_s", 0.0) + time.perf_counter() - started, 3)
        self.report("exporting", 1.0)
        return self.openvino_score

    def shipped_threshold(self) -> float:
        """The threshold the exported model ships with, on its normalised score.

        anomalib's post-processor learns the best-F1 threshold on the evaluation set and maps it to
        ``1 - image_sensitivity`` of the normalised score the IR outputs (0.5 by default).
        """
        return float(self.model.post_processor.normalized_image_threshold)

    def _coreset_facts(self) -> dict[str, Any]:
        """PatchCore: how the memory bank was chosen (exact greedy, or chunked above the exact limit)."""
        stats = self.speedup_stats
        if not stats.get("coreset_points"):
            return {}
        return {"coreset_patches": int(stats["coreset_points"]), "coreset_size": int(stats["coreset_size"]),
                "coreset_uncapped_size": int(stats["coreset_uncapped"]),
                "coreset_selection": "chunked greedy" if stats["chunked"] else "exact greedy",
                "coreset_s": stats["coreset_s"], "scoring_s": stats["scoring_s"]}

    def result(self) -> TrainingResult:
        layout, test_data = self.layout, self.datamodule.test_data
        return TrainingResult(
            architecture=self.architecture,
            parameters=self.parameters,
            metrics=self.metrics,
            history=self.progress.history,
            checkpoint=self.checkpoint,
            openvino_dir=self.openvino_dir,
            timings=self.timings,
            dataset={
                "normal": layout.normal,
                "normal_eval": layout.normal_eval,
                "anomalous": layout.anomalous,
                "masks": layout.masks,
                "train_images": len(self.datamodule.train_data),
                "test_images": len(test_data),
                "synthetic_anomalies": layout.anomalous == 0,
                **self._coreset_facts(),
            },
            image_size=self.image_size,
            openvino_score=self.openvino_score,
            threshold=self.shipped_threshold(),
        )


def train(*args: Any, **kwargs: Any) -> TrainingResult:
    """Every step in one call; the arguments are :class:`TrainingSteps`'."""
    steps = TrainingSteps(*args, **kwargs)
    steps.fit()
    steps.evaluate()
    steps.export_ir()
    steps.verify_ir()
    return steps.result()
