"""Model cards: a ``<name>.md`` beside every saved and exported model, written from its records.

Everything on the card comes from the model's metadata (``ModelInfo``), which training and export
fill from what happened: the data (folder, source, counts, manifest hash), the recipe, the test
metrics (with Wilson 95 % intervals computed here from the counts) and, for an export, its format
and parity check. A figure that was not measured is said to be missing, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from catsdogs.config import LEGACY_MODEL_OPTIONS
from catsdogs.metadata import ModelExtra, ModelInfo
from catsdogs.metrics import wilson_interval
from catsdogs.outputs import write_text


def card_path(model_path: Path) -> Path:
    """``saved_models/x.keras`` -> ``saved_models/x.md``; an export's folder -> ``<folder>/<folder name>.md``."""
    return model_path / f"{model_path.name}.md" if model_path.is_dir() else model_path.with_suffix(".md")


def _percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def _interval(correct: int, total: int) -> str:
    low, high = wilson_interval(correct, total)
    return f"{_percent(correct / total)} (95 % interval {_percent(low)} to {_percent(high)}, {correct}/{total})"


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _data_section(info: ModelInfo) -> list[str]:
    data, metrics = info.extra.data, info.metrics
    lines = ["## Data", ""]
    if data is None and not metrics.images:
        return lines + ["Not recorded (the model was saved outside `catsdogs.train`).", ""]
    lines += [f"- Folder: `{(data.dir if data else None) or 'not recorded'}`"]
    if data and data.source:
        lines += [f"- Source: `{data.source}` ({data.kind or 'unknown kind'}, split {data.split or '?'})"]
    lines += [f"- Manifest hash (sha256): `{info.data_fingerprint or 'not recorded'}`"]
    if metrics.images:
        lines += [f"- Images: {', '.join(f'{split} {count}' for split, count in metrics.images.items())}"
                  + (f"; {metrics.skipped} unreadable files skipped" if metrics.skipped else "")]
    return lines + [f"- Classes: {', '.join(info.class_names)}", ""]


def _options_note(extra: ModelExtra) -> str:
    """`` (alpha 0.25)``: the model's own options as given (files from before them record only alpha)."""
    options = extra.model_options if extra.model_options is not None else {"alpha": extra.alpha}
    shown = {name: value for name, value in options.items()
             if value is not None and not (name in LEGACY_MODEL_OPTIONS and value == LEGACY_MODEL_OPTIONS[name])}
    return f" ({', '.join(f'{name} {value}' for name, value in shown.items())})" if shown else ""


def _recipe_section(info: ModelInfo) -> list[str]:
    extra, metrics = info.extra, info.metrics
    lines = ["## Model and recipe", "",
             f"- Architecture: `{info.model_name or 'not recorded'}`" + _options_note(extra),
             f"- Input: raw RGB 0-255, {info.image_size} x {info.image_size}; preprocessing "
             f"`{info.preprocessing or 'none'}` inside the model",
             f"- Output: one probability per class ({', '.join(info.class_names)})"]
    if extra.recipe:
        trained = extra.trained_layers or extra.unfreeze or "?"  # files from before trained_layers have unfreeze
        lines += [f"- Recipe: `{extra.recipe}`, layers trained: `{trained}`"]
    if metrics.epochs:
        best = (f", best validation accuracy {metrics.best_val_accuracy:.4f} at epoch {metrics.best_epoch}"
                if metrics.best_epoch and metrics.best_val_accuracy is not None else "")
        lines += [f"- Epochs: {metrics.epochs}{best}"]
    if extra.trained:
        lines += [f"- Trained: {extra.trained}, run folder `{extra.run_dir or '?'}`"]
    return lines + [""]


def _metrics_section(info: ModelInfo) -> list[str]:
    test = info.metrics.test
    lines = ["## Test metrics", ""]
    if test is None:
        return lines + ["No test split was scored: no test figure exists for this model.", ""]
    total = test.images
    correct = round(test.accuracy * total)
    lines += [f"- Accuracy: {_interval(correct, total) if total else _percent(test.accuracy)}"]
    if test.loss is not None:
        lines += [f"- Cross-entropy: {test.loss:.4f}"]
    if test.roc_auc is not None:
        lines += [f"- ROC AUC: {test.roc_auc:.4f}"]
    calibration = test.calibration
    if calibration:
        low, high = calibration.ece_interval_95
        lines += [f"- Calibration: expected calibration error {calibration.ece:.4f} (bootstrap 95 % interval "
                  f"{low:.4f} to {high:.4f}), Brier score {calibration.brier:.4f}"]
    if test.per_class:
        rows = []
        for name, scores in test.per_class.items():
            support = scores.support
            recalled = round(scores.recall * support)
            low, high = wilson_interval(recalled, support) if support else (0.0, 1.0)
            rows.append([name, support, f"{scores.precision:.3f}", f"{scores.recall:.3f}",
                         f"{low:.3f} to {high:.3f}", f"{scores.f1:.3f}"])
        lines += ["", *_table(["class", "images", "precision", "recall", "recall 95 % interval", "F1"], rows)]
    return lines + [""]


def _export_section(info: ModelInfo) -> list[str]:
    export = info.extra.export
    if export is None:
        return []
    lines = ["## Export", "", f"- Format: {export.format}, quantization `{export.quantize}`",
             f"- From: `{export.source or '?'}` (sha256 `{export.source_sha256 or '?'}`)",
             f"- Input `{export.input}`: float32 (N, {info.image_size}, {info.image_size}, 3) RGB "
             f"0-255; output `{export.output}`: (N, {len(info.class_names)})"]
    parity = export.parity
    if parity:
        verdict = "passed" if parity.passed else "FAILED"
        lines += [f"- Parity with the Keras model on {parity.images} held-out images: {verdict}; label agreement "
                  f"{_percent(parity.agreement)}, max |dp| {parity.max_abs_difference:.2e}"
                  + (f", accuracy {parity.accuracy:.4f} against {parity.keras_accuracy:.4f}"
                     if parity.accuracy is not None and parity.keras_accuracy is not None else "")]
    return lines + [""]


def _calibration_note(info: ModelInfo) -> str:
    fit = info.extra.calibration_fit
    if fit is None:
        return "Its probabilities are not calibrated (train with --calibrate, or evaluate --calibrate)."
    views = "" if fit.tta == "none" else f" seen through --tta {fit.tta}"
    return (f"Its probabilities are temperature-scaled (T = {fit.temperature:.3f}, fitted on {fit.images} "
            f"{fit.split} images{views}: NLL {fit.nll_before:.4f} to {fit.nll_after:.4f}); every runtime "
            "applies it.")


def _decision_note(info: ModelInfo) -> str:
    choice = info.extra.threshold
    if choice is None:
        return ""
    return (f" It answers {choice.second_class} when P({choice.second_class}) >= {choice.threshold:.4f}, a threshold "
            f"chosen on {choice.images} {choice.split} images for balanced accuracy "
            f"({choice.balanced_accuracy_at_half:.4f} at 0.5, {choice.balanced_accuracy:.4f} at the threshold); every "
            "runtime applies it.")


def _use_section(info: ModelInfo) -> list[str]:
    classes = ", ".join(info.class_names)
    return ["## Intended use and known limits", "",
            f"- Intended use: sorting photos that show one of {classes}, of the kind in the training data; "
            "teaching and comparing small-data image classification.",
            f"- It always answers one of {classes}: a photo of anything else still gets one of these labels, often "
            "with high confidence. " + _calibration_note(info) + _decision_note(info),
            "- The test figures hold for photos like the test split (same source, same kind of framing); "
            "other cameras, drawings, crops or several animals in one image may score lower.",
            "- Not for decisions about people or animals' welfare; no fairness or robustness study was made.", ""]


def render_card(info: ModelInfo, title: str) -> str:
    """The card as Markdown."""
    lines = [f"# Model card: {title}", ""]
    for section in (_recipe_section, _data_section, _metrics_section, _export_section, _use_section):
        lines += section(info)
    return "\n".join(lines)


def write_card(model_path: Path, info: ModelInfo) -> Path:
    """Write (atomically) the card beside ``model_path`` and return its path."""
    model_path = Path(model_path)
    return write_text(card_path(model_path), render_card(info, model_path.name))
