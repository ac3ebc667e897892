"""How close a training step comes to the processor's peak: FLOPs per image, images per second and achieved GFLOP/s
against cores x clock x FLOPs per cycle, for small_cnn, mini_xception_s2 and MobileNet 0.25 at their default sizes,
in float32 and in mixed_bfloat16.

    python benchmarks/utilisation.py [--steps 12] [--batch 32]

- **FLOPs per image** are counted from the model, not estimated: TensorFlow's graph profiler
  (``tf.compat.v1.profiler``, ``float_operation``: a multiply-add counts 2) over the graph of one whole training
  step, forward, backward and the optimizer's update, traced for a batch of 1 with every layer trainable (the
  fine-tuning phase of the transfer recipe; from scratch, the only phase). Ops without a registered count
  (the activations, batch normalisation's arithmetic) count 0, so the figure is a floor.
- **Images per second**: ``train_on_batch`` on one batch of tensors in memory (no input pipeline: the model's own
  speed),
  the best of 3 repeats of ``--steps`` timed steps after 3 of warm-up (1 repeat for bfloat16, which runs several
  times slower where the processor lacks bfloat16 instructions; each repeat is kept in the JSON), in a fresh
  process per row (its own thread pools and memory).
- **Peak**: cores x clock x FLOPs per cycle per core, each from ``/proc/cpuinfo`` (cores, ``cpu MHz``, the CPU
  family and model, the ``avx512f`` / ``avx512_bf16`` / ``amx_bf16`` flags) and the microarchitecture's vector units
  (``PEAK_FLOPS_PER_CYCLE``, with its source); bfloat16 doubles it only where the processor has bfloat16 dot
  products.

Written: ``results/utilisation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from common import print_table, run_isolated, write_results

from catsdogs.config import DEFAULT_IMAGE_SIZE

MODELS = {  # name: (create_model name, options, image size)
    "small_cnn": ("small_cnn", {}, DEFAULT_IMAGE_SIZE),
    "mini_xception_s2": ("mini_xception_s2", {"alpha": 1.5}, 180),
    "mobilenet 0.25": ("mobilenet", {"alpha": 0.25}, 224),  # its ImageNet size (the 0.956 recipe)
}
PRECISIONS = ("float32", "mixed_bfloat16")

# float32 FLOPs per cycle per core: FMA pipes x float32 lanes per pipe x 2 (a multiply-add). AMD's Zen 2 and 3
# have two 256-bit FMA pipes (8 lanes each); Zen 4 runs AVX-512 on the same two 256-bit pipes (AMD's Zen 4
# software optimisation guide); Intel's Xeons since Skylake-SP have two 512-bit FMA units (16 lanes) on their
# Gold and Platinum parts. bfloat16 dot products (AVX512_BF16's VDPBF16PS) do twice the float32 multiply-adds per
# instruction; AMX's tiles far more, which this table does not claim.
PEAK_FLOPS_PER_CYCLE = {"amd zen 2/3": 32, "amd zen 4": 32, "intel avx-512": 64}


def processor() -> dict[str, Any]:
    """Cores, clock, family/model, flags and the peak they give (see ``PEAK_FLOPS_PER_CYCLE``)."""
    fields: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    vendor, family, model = fields.get("vendor_id", ""), int(fields.get("cpu family", 0)), int(fields.get("model", 0))
    if vendor == "AuthenticAMD":
        kind = "amd zen 4" if family == 25 and model >= 0x10 else "amd zen 2/3"
    else:
        kind = "intel avx-512" if "avx512f" in flags else "amd zen 2/3"  # an AVX2 part: two 256-bit FMA units
    cores, clock_ghz = os.cpu_count() or 1, float(fields.get("cpu MHz", 0)) / 1000
    per_cycle = PEAK_FLOPS_PER_CYCLE[kind]
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    return {"model_name": fields.get("model name"), "vendor": vendor, "family": family, "model": model,
            "microarchitecture": kind, "cores": cores, "clock_ghz": clock_ghz, "float32_flops_per_cycle": per_cycle,
            "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "peak_float32_gflops": cores * clock_ghz * per_cycle,
            "peak_bfloat16_gflops": cores * clock_ghz * per_cycle * (2 if bf16 else 1)}


def child(name: str, precision: str, steps: int, batch: int) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    from catsdogs.models import create_model

    keras.mixed_precision.set_global_policy(precision)
    model_name, options, size = MODELS[name]
    keras.utils.set_random_seed(0)
    model = create_model(model_name, image_size=size, num_classes=2, weights=None, unfreeze="all", **options)
    model.compile(keras.optimizers.Adam(1e-4), "binary_crossentropy")

    # Timed before the count, by train_on_batch on tensors already in memory: fed by a repeated tf.data batch, the
    # same steps ran at 25 or 50 images per second from one call to the next on 2 cores (small_cnn, measured: the
    # input thread took a core half the time), which is the input side's question, not the model's.
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    labels = tf.constant((np.arange(batch) % 2).astype("float32")[:, None])
    for _ in range(3):  # warm-up: tracing, thread pools
        model.train_on_batch(images, labels)
    speeds = []
    for _ in range(3 if precision == "float32" else 1):  # bfloat16 without its instructions: 8x slower, no need
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(images, labels)
        speeds.append(steps * batch / (time.perf_counter() - start))

    @tf.function
    def train_step(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = keras.losses.binary_crossentropy(labels, model(images, training=True))
        model.optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                            model.trainable_variables))
        return loss

    graph = train_step.get_concrete_function(tf.TensorSpec([1, size, size, 3], tf.float32),
                                             tf.TensorSpec([1, 1], tf.float32)).graph
    options_builder = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options_builder["output"] = "none"
    flops = tf.compat.v1.profiler.profile(graph, options=options_builder).total_float_ops
    print(json.dumps({"flops_per_image": int(flops), "images_per_second": max(speeds), "repeats": speeds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per row")
    parser.add_argument("--batch", type=int, default=32, help="images per step")
    parser.add_argument("--only", default="", help="comma-separated model names (default: all three)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.steps, args.batch)
        return
    cpu = processor()
    rows = []
    for name in [n.strip() for n in args.only.split(",") if n.strip()] or list(MODELS):
        for precision in PRECISIONS:
            measured = run_isolated(Path(__file__), "--child", name, precision, "--steps", str(args.steps),
                                    "--batch", str(args.batch))
            achieved = measured["flops_per_image"] * measured["images_per_second"] / 1e9
            peak = cpu["peak_bfloat16_gflops" if precision == "mixed_bfloat16" else "peak_float32_gflops"]
            rows.append({"model": name, "size": MODELS[name][2], "precision": precision,
                         "GFLOPs per image (train step)": round(measured["flops_per_image"] / 1e9, 3),
                         "images/s": round(measured["images_per_second"], 1),
                         "repeats": [round(speed, 1) for speed in measured["repeats"]],
                         "achieved GFLOP/s": round(achieved, 1), "peak GFLOP/s": round(peak, 1),
                         "share of peak": f"{achieved / peak:.1%}"})
            print(rows[-1], file=sys.stderr)
    for row in rows:
        if row["precision"] != "float32":
            base = next(r for r in rows if r["model"] == row["model"] and r["precision"] == "float32")
            row["speed vs float32"] = f"{row['images/s'] / base['images/s']:.2f}x"
    print(f"processor: {cpu['model_name']} (family {cpu['family']} model {cpu['model']}: {cpu['microarchitecture']}),"
          f" {cpu['cores']} cores at {cpu['clock_ghz']:.2f} GHz, {cpu['float32_flops_per_cycle']} float32 FLOPs per "
          f"cycle per core; avx512f {cpu['avx512f']}, avx512_bf16 {cpu['avx512_bf16']}, amx_bf16 {cpu['amx_bf16']}")
    shown = [{key: str(value) for key, value in row.items()} for row in rows]
    print_table(shown, ["model", "size", "precision", "GFLOPs per image (train step)", "images/s", "achieved GFLOP/s",
                        "peak GFLOP/s", "share of peak", "speed vs float32"])
    write_results("utilisation", {"command": "python benchmarks/utilisation.py", "processor": cpu,
                                  "steps": args.steps, "batch": args.batch, "rows": rows})


if __name__ == "__main__":
    main()
