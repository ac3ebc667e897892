"""``export_model``: a saved ``.keras`` classifier -> a checked export folder.

The folder (``<output>/<model>-<format>[-<quantization>]``, made new, ``-2`` ... on a clash, so an
export never replaces anything) holds the model (``<model>.tflite``, ``<model>.onnx``, or the
SavedModel's ``1/``), its sidecar ``catsdogs.json`` and ``labels.txt``, its model card and
``parity.json``. The held-out images for the parity check (the data's test split, else validation)
and, for ``int8``, the representative images (its train split) come from ``--data-dir`` or the data
folder recorded in the model's metadata; both are found and decoded before anything is exported.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import keras
import numpy as np

from catsdogs.config import DEFAULT_EXPORT_CHECK_IMAGES, EXPORT_FORMATS, EXPORT_SUFFIXES, QUANTIZATIONS, SPLITS
from catsdogs.data.files import Failure, ImageFolder, read_image_folder
from catsdogs.data.images import check_files
from catsdogs.data.pillow_decode import decoded_batches
from catsdogs.errors import UserError, parameter
from catsdogs.exports.formats import ONNX_REFUSED, Representative, write_litert, write_onnx, write_saved_model
from catsdogs.exports.graph import inference_model
from catsdogs.exports.parity import compare
from catsdogs.metadata import ExportRecord, ModelInfo, Parity, write_sidecar
from catsdogs.modelcard import write_card
from catsdogs.outputs import TEMP_PREFIX, check_apart, new_folder, replace_empty_folder, write_json
from catsdogs.runtime.classifier import Classifier
from catsdogs.runtime.engines import BYTES_INPUT, BYTES_SIGNATURE, INPUT_NAME, OUTPUT_NAME, SERVING_DEFAULT
from catsdogs.runtime.opening import open_classifier

REPRESENTATIVE_IMAGES = 200  # int8 calibration: TFLite's guide suggests 100-500


@dataclass
class Export:
    """What ``export_model`` made: the folder, the model in it, its metadata and the parity report."""

    folder: Path
    model_path: Path
    info: ModelInfo
    parity: Parity | None
    skipped: list[Failure]

    @property
    def passed(self) -> bool:
        return self.parity is None or self.parity.passed


def _data_dir(data_dir: str | Path | None, info: ModelInfo, purpose: str) -> Path:
    recorded = info.extra.data.dir if info.extra.data else None
    chosen = Path(data_dir) if data_dir else Path(recorded) if recorded else None
    if chosen is None or not chosen.is_dir():
        where = f"{chosen} (recorded in the model) does not exist" if chosen else "the model records no data folder"
        raise UserError(f"{purpose} needs images and {where}; pass {parameter('data_dir')} (a data_prep output or a "
                        "split folder)")
    return chosen


def _split(data_dir: Path, names: tuple[str, ...], class_names: list[str]) -> ImageFolder:
    """The first of ``names`` under ``data_dir`` that exists, else ``data_dir`` itself as a split folder."""
    folder = next((data_dir / name for name in names if (data_dir / name).is_dir()), data_dir)
    images = read_image_folder(folder)
    if list(images.class_names) != list(class_names):
        raise UserError(f"{folder} has the classes {list(images.class_names)} but the model was trained on "
                        f"{class_names}; pass the model's data with {parameter('data_dir')}")
    return images


def decode_folder(folder: ImageFolder, image_size: int, limit: int) -> tuple[np.ndarray, np.ndarray, list[Failure]]:
    """Up to ``limit`` images of ``folder`` (spread over its classes: every k-th file) decoded, with their labels."""
    step = max(1, len(folder.paths) // max(limit, 1))
    chosen = list(range(0, len(folder.paths), step))[:limit]
    paths = [folder.paths[i] for i in chosen]
    label_of = {folder.paths[i]: folder.labels[i] for i in chosen}
    checks = check_files(paths, image_size)
    failures = [check.failure() for check in checks if not check.ok]
    batches = list(decoded_batches([c for c in checks if c.ok], image_size, 64, failures))
    if not batches:
        raise UserError(f"no image of {folder.root} could be decoded")
    images = np.concatenate([batch for _, batch in batches])
    labels = np.array([label_of[path] for batch_paths, _ in batches for path in batch_paths], int)
    return images, labels, failures


def predict_arrays(classifier: Classifier, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """``classifier``'s probabilities for decoded ``images``, in batches."""
    return np.concatenate([classifier.predict(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def _representative(images: np.ndarray) -> Representative:
    return lambda: (images[i:i + 1] for i in range(len(images)))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write(graph: keras.Model, info: ModelInfo, export_format: str, quantize: str, folder: Path, stem: str,
           representative: Representative | None) -> Path:
    if export_format == "saved_model":
        write_saved_model(graph, info, folder)
        return folder
    writer = write_litert if export_format == "litert" else write_onnx
    return writer(graph, info, folder / f"{stem}{EXPORT_SUFFIXES[export_format]}", quantize, representative)


def export_model(model_path: str | Path, export_format: str, quantize: str = "none", output: str | Path = "exports",
                 data_dir: str | Path | None = None, check_images: int = DEFAULT_EXPORT_CHECK_IMAGES,
                 unsafe: bool = False) -> Export:
    """Export a saved model, check it against the Keras model, and write its sidecar, card and parity report.

    Runs on the TensorFlow backend only (Keras exports through TensorFlow's graphs); ``python -m catsdogs.export``
    switches to it by itself."""
    if keras.backend.backend() != "tensorflow":
        raise UserError(f"export_model runs on the TensorFlow backend, not {keras.backend.backend()}: set "
                        "KERAS_BACKEND=tensorflow, or run `python -m catsdogs.export`, which switches by itself")
    if export_format not in EXPORT_FORMATS or quantize not in QUANTIZATIONS:
        raise UserError(f"{parameter('export_format')} must be one of {EXPORT_FORMATS} and {parameter('quantize')} "
                        f"one of {QUANTIZATIONS}, not {export_format!r} and {quantize!r}")
    if export_format == "onnx" and quantize in ONNX_REFUSED:
        raise UserError(f"{parameter('export_format', 'onnx')} {parameter('quantize', quantize)} is refused: "
                        f"{ONNX_REFUSED[quantize]}")
    if export_format == "saved_model" and quantize != "none":
        raise UserError(f"{parameter('quantize')} is for litert and onnx; a SavedModel keeps float32 (TF Serving "
                        "runs it as is)")
    source = Path(model_path)
    keras_classifier = open_classifier(source, unsafe=unsafe)
    model, info = keras_classifier.keras_model(), keras_classifier.info
    skipped: list[Failure] = []
    held_out = representative = None
    if check_images > 0:
        check_folder = _split(_data_dir(data_dir, info, "the parity check"), (SPLITS[2], SPLITS[1]), info.class_names)
        check_apart(output, [check_folder.root], "output", may_hold_inputs=True)  # never among the images
        held_out = (*decode_folder(check_folder, info.image_size, check_images), check_folder.root)
        skipped += held_out[2]
    if quantize == "int8":
        train = _split(_data_dir(data_dir, info, "int8 calibration"), (SPLITS[0],), info.class_names)
        check_apart(output, [train.root], "output", may_hold_inputs=True)
        calibration, _, failures = decode_folder(train, info.image_size, REPRESENTATIVE_IMAGES)
        representative, skipped = _representative(calibration), skipped + failures
    graph = inference_model(model, info)
    stem = source.stem
    name = f"{stem}-{export_format}" + ("" if quantize == "none" else f"-{quantize}")
    # Written under a hidden name and published whole once checked and described: a kill leaves no export that a
    # later command would open.
    folder = new_folder(output, name)  # the name, reserved empty (a SavedModel's card is named after its folder)
    staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=output)) / folder.name
    try:
        staging.mkdir()
        calibrated_on = ({"folder": str(train.root), "images": len(calibration)} if representative is not None
                         else None)
        written = _written(graph, info, export_format, quantize, staging, stem, representative, source,
                           keras_classifier, held_out, calibrated_on)
        replace_empty_folder(staging, folder)
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # interrupted: the reserved name goes back
    return Export(folder, folder / written.model_path.relative_to(staging), written.info, written.parity, skipped)


def _written(graph: keras.Model, info: ModelInfo, export_format: str, quantize: str, folder: Path, stem: str,
             representative: Representative | None, source: Path, keras_classifier: Classifier,
             held_out: tuple[np.ndarray, np.ndarray, list[Failure], Path] | None,
             calibrated_on: dict[str, object] | None) -> Export:
    """The export in ``folder``: the model, its sidecar, the parity check against the Keras model, its card."""
    exported_path = _write(graph, info, export_format, quantize, folder, stem, representative)
    record = ExportRecord(
        format=export_format, quantize=quantize, source=str(source), source_sha256=_sha256(source),
        input=INPUT_NAME, output=OUTPUT_NAME, exported=datetime.now().isoformat(timespec="seconds"),
        input_description="float32 (N, size, size, 3) RGB 0-255; the model preprocesses itself",
        signatures={SERVING_DEFAULT: INPUT_NAME, BYTES_SIGNATURE: BYTES_INPUT} if export_format == "saved_model"
        else None,
        representative_data=calibrated_on, parity_skipped=held_out is None)
    exported_info = info.with_extra(export=record)
    write_sidecar(folder, exported_info)  # before opening: the engines read it
    parity = None
    if held_out is not None:
        images, labels, _, root = held_out
        reference = predict_arrays(keras_classifier, images)
        exported = predict_arrays(open_classifier(exported_path, being_checked=True), images)
        parity = compare(reference, exported, labels, quantize, str(root))
        exported_info = info.with_extra(export=record.model_copy(update={"parity": parity}))
        write_sidecar(folder, exported_info)
        write_json(folder / "parity.json", parity.model_dump(mode="json", exclude_none=True))
    write_card(exported_path, exported_info)
    return Export(folder, exported_path, exported_info, parity, [])
