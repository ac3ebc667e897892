"""Filter patterns of a deep MobileNet layer: the report's gradient ascent against our improved one.

    python benchmarks/filters.py [--layer conv_pw_13] [--filters 64] [--seed 0] [--weights imagenet] [--ablation]

MobileNet v1, alpha 0.25, 224 px, ImageNet weights (Keras's cache, ``$KERAS_HOME/models/
mobilenet_2_5_224_tf_no_top.h5``, or ``--weights PATH``), nested in our classifier as ``create_model``
builds it. For each method: the first N filters of ``--layer`` optimised in one batch from the same
start (grey + uniform noise, the report's), then per tile the structure measure of
``catsdogs.explanations.filters.low_frequency_share`` (share of the change's power at wavelengths over 8 px; white
noise 0.049) and the fraction of tiles above ``STRUCTURE_THRESHOLD`` (0.5), the filter's mean
activation over the whole map before and after (one yardstick for both methods, whatever each
optimised) and over its centre (the improved method's objective), and the seconds taken.
``--ablation`` adds variants on the first 16 filters: the report's with 128 steps, and the improved
one with one ingredient removed at a time. Writes ``results/filters.json`` and, under
``results/filters/``, the grids as PNGs (each tile standardised as in the report; filters in row
order; 256 colours; the 64-tile grids at half resolution, ``*-first8-full-size.png`` at full).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from common import RESULTS, print_table, write_results

from catsdogs.outputs import quiet_tensorflow

quiet_tensorflow()

from catsdogs.explanations.filters import (  # noqa: E402
    LOW_FREQUENCY_CUTOFF,
    SETTINGS,
    STRUCTURE_THRESHOLD,
    AscentSettings,
    filter_ascent,
    filter_objective,
    low_frequency_share,
    to_display,
)
from catsdogs.models import create_model  # noqa: E402
from catsdogs.plots import save_mosaic  # noqa: E402

FIGURES = RESULTS / "filters"
ABLATIONS = {  # label -> (method changed, what changes)
    "report, 128 steps": ("report", {"steps": 128}),
    "improved, no border crop": ("improved", {"border": 0.0}),
    "improved, no jitter": ("improved", {"jitter": 0.0}),
    "improved, no octaves": ("improved", {"octaves": 1}),
    "improved, no blur": ("improved", {"blur_every": 0}),
    "improved, no octaves, no blur": ("improved", {"octaves": 1, "blur_every": 0}),
    "improved, 40 steps": ("improved", {"steps": 40}),
}
FIGURE_TILE = 112  # px per tile in the 64-tile grids (half the patterns' 224), to keep the PNGs small


def save_figure(patterns: np.ndarray, path: Path, tile: int | None = FIGURE_TILE) -> Path:
    """The patterns as a mosaic (tiles box-downsampled to ``tile`` px), in 256 colours: about 1 MB, not 8."""
    from PIL import Image

    tiles = list(to_display(patterns))
    if tile:
        tiles = [np.asarray(Image.fromarray(t).resize((tile, tile), Image.BOX)) for t in tiles]
    save_mosaic(tiles, path, min_tile=1)
    with Image.open(path) as image:
        quantised = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    quantised.save(path, optimize=True)
    return path


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).replace("--", "-").strip("-")


def run_method(model, layer: str, count: int, method: str | AscentSettings, seed: int,
               label: str) -> tuple[dict, np.ndarray]:
    start = time.perf_counter()
    ascent = filter_ascent(model, layer, count, method=method, seed=seed)
    seconds = time.perf_counter() - start
    structure = ascent.structure
    whole_map_before = filter_objective(model, layer, ascent.starts, ascent.filters)
    whole_map_after = filter_objective(model, layer, ascent.patterns, ascent.filters)
    border = SETTINGS["improved"].border
    centre_before = filter_objective(model, layer, ascent.starts, ascent.filters, border)
    centre_after = filter_objective(model, layer, ascent.patterns, ascent.filters, border)
    change = ascent.patterns - ascent.starts
    row = {
        "method": label, "filters": len(ascent.filters), "steps": ascent.settings.steps, "seconds": seconds,
        "structured_fraction": ascent.structured_fraction,
        "structure_median": float(np.median(structure)),
        "structure_min": float(structure.min()), "structure_max": float(structure.max()),
        "activation_before": float(whole_map_before.mean()), "activation_after": float(whole_map_after.mean()),
        "centre_activation_before": float(centre_before.mean()),
        "centre_activation_after": float(centre_after.mean()),
        "change_rms": float(np.sqrt(np.mean(change ** 2))),
        "settings": asdict(ascent.settings),
        "per_filter": {"filter": ascent.filters, "structure": structure.round(4).tolist(),
                       "activation_after": whole_map_after.round(4).tolist()},
    }
    return row, ascent.patterns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layer", default="conv_pw_13", help="a MobileNet layer (conv_pw_13: the last convolution)")
    parser.add_argument("--filters", type=int, default=64, help="the first N filters")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default="imagenet", help="imagenet (Keras's cache) or a weights file")
    parser.add_argument("--ablation", action="store_true", help="also the improved method minus one ingredient")
    args = parser.parse_args()

    model = create_model("mobilenet", image_size=224, alpha=0.25, weights=args.weights)
    rows = []
    for method in ("report", "improved"):
        row, patterns = run_method(model, args.layer, args.filters, method, args.seed, method)
        rows.append(row)
        save_figure(patterns, FIGURES / f"{args.layer}-{method}.png")
        save_figure(patterns[:8], FIGURES / f"{args.layer}-{method}-first8-full-size.png", tile=None)
        print(f"{method}: {row['structured_fraction']:.0%} structured, {row['seconds']:.0f} s", flush=True)
    if args.ablation:
        for label, (method, change) in ABLATIONS.items():
            row, patterns = run_method(model, args.layer, min(16, args.filters), replace(SETTINGS[method], **change),
                                       args.seed, label)
            rows.append(row)
            save_figure(patterns, FIGURES / f"{args.layer}-ablation-{slug(label)}.png")
            print(f"{label}: {row['structured_fraction']:.0%} structured, {row['seconds']:.0f} s", flush=True)

    # The measure on the starts' own noise, for scale: what "no structure at all" scores.
    noise = np.random.default_rng(args.seed).random((args.filters, 224, 224, 3))
    reference = float(np.median(low_frequency_share(noise)))
    print()
    print_table([{**row, "structured": f"{row['structured_fraction']:.0%}",
                  "median_share": f"{row['structure_median']:.3f}",
                  "activation": f"{row['activation_before']:.2f} -> {row['activation_after']:.2f}",
                  "centre": f"{row['centre_activation_before']:.2f} -> {row['centre_activation_after']:.2f}"}
                 for row in rows],
                ["method", "filters", "steps", "seconds", "structured", "median_share", "activation", "centre",
                 "change_rms"])
    print(f"white noise scores {reference:.3f}; a tile is structured above {STRUCTURE_THRESHOLD}")
    write_results("filters", {
        "model": "mobilenet alpha 0.25, 224 px, ImageNet weights, nested in the create_model classifier",
        "weights": args.weights, "layer": args.layer, "seed": args.seed,
        "measure": (f"low_frequency_share: share of the power of (pattern - start), per-channel mean removed, "
                    f"at spatial frequencies below {LOW_FREQUENCY_CUTOFF} cycle/pixel (wavelengths > 8 px)"),
        "threshold": STRUCTURE_THRESHOLD, "white_noise_share": reference,
        "activation": "the filter's mean activation over the whole map (the report's objective), before -> after",
        "centre_activation": f"the same over the map's centre, {SETTINGS['improved'].border:.0%} cut on each side "
                             "(the improved method's objective)",
        "figures": sorted(str(p.relative_to(RESULTS.parent)) for p in FIGURES.glob(f"{args.layer}-*.png")),
        "rows": rows})


if __name__ == "__main__":
    main()
