"""Test-session set-up: two logical CPUs for MirroredStrategy, no network, tiny generated images."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CATSDOGS_OFFLINE", "1")  # belt and braces: the library never downloads in tests

import tensorflow as tf  # noqa: E402

# Logical devices can only be configured before TensorFlow initialises, i.e. here, first thing.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """File checks and downloads go to a folder of the test session, never the user's ~/.cache."""
    from catsdogs.config import CACHE_ENV

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection that leaves this machine (loopback servers in tests are fine)."""
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None:
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise OSError(f"tests must not use the network (tried {address})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


def write_image(path: Path, array: np.ndarray, format: str = "JPEG") -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path, format=format, quality=95)
    return path


def make_split_folder(root: Path, per_class: dict[str, int], size: int = 40, seed: int = 0,
                      classes: tuple[str, ...] = ("cats", "dogs")) -> Path:
    """A split folder ``root/<split>/<class>/*.jpg`` whose classes differ in colour (easy to tell apart)."""
    rng = np.random.default_rng(seed)
    colours = {name: rng.integers(0, 256, 3) for name in classes}
    colours.update({"cats": np.array([220, 120, 40]), "dogs": np.array([40, 90, 220])})
    for split, count in per_class.items():
        for name in classes:
            for i in range(count):
                noise = rng.normal(0, 25, (size + i % 7, size, 3))
                write_image(root / split / name / f"{name}.{i}.jpg", np.clip(colours[name] + noise, 0, 255))
    return root


@pytest.fixture
def tiny_split(tmp_path: Path) -> Path:
    """train / validation / test with 6 / 3 / 3 images per class, 40 px, classes told apart by colour."""
    return make_split_folder(tmp_path / "data", {"train": 6, "validation": 3, "test": 3})


def write_legacy_h5_weights(model, path: Path) -> Path:
    """Write ``model``'s weights in the legacy Keras h5 layout that keras.applications files use."""
    import h5py

    layers = [layer for layer in model.layers if layer.weights]
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        handle.attrs["backend"] = b"tensorflow"
        handle.attrs["keras_version"] = b"2.15.0"
        for layer in layers:
            group = handle.create_group(layer.name)
            names = [f"{layer.name}/{variable.name}:0".encode() for variable in layer.weights]
            group.attrs["weight_names"] = names
            for name, variable in zip(names, layer.weights):
                group.create_dataset(name.decode(), data=np.asarray(variable.numpy()))
    return path
