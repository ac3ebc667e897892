"""TensorFlow's side of ``training.strategy``: MirroredStrategy and the other ``tf.distribute`` strategies over
one machine's devices, logical CPU devices to exercise them without GPUs, and TensorFlow kept off the GPUs
when another backend owns them.

A module of its own because TensorFlow is optional on the JAX backend: ``training.strategy`` imports it only
on TensorFlow, and the ``train`` command only where TensorFlow is installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import keras
import tensorflow as tf

from catsdogs.errors import UserError, parameter


def gpu_count() -> int:
    """TensorFlow's logical GPUs in this process."""
    return len(tf.config.list_logical_devices("GPU"))


def tensorflow_strategy(name: str, devices: Sequence[str]) -> tf.distribute.Strategy:
    """``auto``, ``default``, ``one-device`` or ``mirrored`` (over ``devices``, or every GPU)."""
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
    raise UserError(f"unknown strategy {name!r}; choose auto, mirrored, one-device, default or data-parallel")


def _canonical_device(device: str) -> str:
    """``/cpu:1`` or ``gpu:0`` -> ``/device:CPU:1`` (the name TensorFlow lists logical devices by)."""
    kind, _, index = device.strip().lstrip("/").replace("device:", "").partition(":")
    return f"/device:{kind.upper()}:{index or 0}"


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
                            f"pass {parameter('devices')} on the command line (it configures them first)") from None


def keep_tensorflow_off_the_gpus() -> None:
    """On another backend TensorFlow only feeds data (tf.data runs on the CPU): hide the GPUs from it, or it
    reserves their memory, which JAX needs. Only possible before TensorFlow initialises its devices."""
    if keras.backend.backend() == "tensorflow":
        return
    with contextlib.suppress(RuntimeError):  # initialised already (a notebook): nothing to hide any more
        tf.config.set_visible_devices([], "GPU")
