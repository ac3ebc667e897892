"""Distribution strategies: MirroredStrategy over a machine's GPUs, or over logical CPUs for tests.

``auto`` mirrors over all GPUs when there are two or more and otherwise uses the default strategy.
Logical CPU devices (``--devices /cpu:0,/cpu:1``) are how multi-replica code is exercised without
GPUs; TensorFlow can only create them before it initialises its devices, so ``train`` configures
them first thing in the process.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from catsdogs.errors import UserError


def configure_logical_cpus(count: int) -> None:
    """Split the CPU into ``count`` logical devices, so MirroredStrategy can run without GPUs.

    Only possible before TensorFlow initialises its devices: call it first thing in a process.
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) < count:
            raise UserError(f"{count} CPU devices were asked for after TensorFlow started; "
                            "pass --devices on the command line (it configures them first)") from None


def make_strategy(name: str = "auto", devices: Sequence[str] = ()) -> tf.distribute.Strategy:
    """auto: MirroredStrategy over all GPUs when there are 2 or more, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) >= 2 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one-device":
        device = devices[0] if devices else ("/gpu:0" if gpus else "/cpu:0")
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        known = {d.name.lower() for d in tf.config.list_logical_devices()}
        wanted = [_canonical_device(d) for d in devices]
        missing = [d for d in wanted if d.lower() not in known]
        if missing:
            raise UserError(f"devices {missing} do not exist here; available: {sorted(known)}")
        return tf.distribute.MirroredStrategy(devices=wanted or None)
    raise UserError(f"unknown strategy {name!r}; choose auto, mirrored, one-device or default")


def _canonical_device(device: str) -> str:
    """``/cpu:1`` or ``gpu:0`` -> ``/device:CPU:1`` (the name TensorFlow lists logical devices by)."""
    kind, _, index = device.strip().lstrip("/").replace("device:", "").partition(":")
    return f"/device:{kind.upper()}:{index or 0}"


def cpu_devices_wanted(devices: Sequence[str]) -> int:
    """How many logical CPU devices ``devices`` names (``/cpu:1`` needs two); 0 when it names none."""
    indices = [int(d.rsplit(":", 1)[-1]) for d in devices if "cpu" in d.lower() and d.rsplit(":", 1)[-1].isdigit()]
    return max(indices) + 1 if indices else 0
