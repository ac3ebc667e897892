"""Test-session set-up: two logical CPUs for MirroredStrategy, no network, tiny generated images."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.images import make_split_folder

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


@pytest.fixture
def tiny_split(tmp_path: Path) -> Path:
    """train / validation / test with 6 / 3 / 3 images per class, 40 px, classes told apart by colour."""
    return make_split_folder(tmp_path / "data", {"train": 6, "validation": 3, "test": 3})
