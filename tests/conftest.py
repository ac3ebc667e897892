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


# README's second pytest runs the model, layer and training tests again on JAX. These stay on TensorFlow: they test
# plumbing that no backend changes (flags, run folders, option checks, parameter counts), or a second case of what
# another test runs on JAX already. Each says so when skipped, and CI stays within its time.
PLUMBING_SKIPPED_ON_JAX = {
    "test_training.py::test_a_run_directory_holds_config_history_curves_metrics_and_the_model",
    "test_training.py::test_a_split_with_only_train_images_trains_and_checkpoints_on_training_accuracy",
    "test_training.py::test_cli_errors_are_one_line_with_exit_code_2",
    "test_training.py::test_cli_maps_flags_onto_the_config_and_trains",
    "test_training.py::test_small_cnn_learns_the_synthetic_set_and_mixed_labels_stay_at_chance[True]",
    "test_models.py::test_partial_unfreeze_by_fraction_or_layer_keeps_batchnorm_frozen",
    "test_models.py::test_each_model_validates_its_own_options_in_one_line",
    "test_models.py::test_units_size_the_mlp_and_depth_sizes_the_resnet_and_other_models_refuse_them",
    "test_models.py::test_the_classic_networks_train_on_three_classes_and_reload[resnet_small]",
    # in-model augmentation trains on JAX in test_pydataset's mixing test
    "test_training.py::test_augmentation_inside_the_model_is_saved_and_inert_at_inference",
    # resume runs on JAX in test_resume_continues_at_the_first_unfinished_epoch, fine-tuning in the block5 test
    "test_training.py::test_resume_in_the_fine_tuning_phase_keeps_the_phase",
    # prediction where TensorFlow is absent: tests/test_without_tensorflow.py runs it where it really is
    "test_pydataset.py::test_prediction_decodes_with_pillow_where_tensorflow_is_absent_and_still_names_bad_files",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("KERAS_BACKEND") != "jax":
        return
    for item in items:
        if item.nodeid.rpartition("/")[2] in PLUMBING_SKIPPED_ON_JAX:
            item.add_marker(pytest.mark.skip(reason="backend-neutral, or run on JAX by another test: TensorFlow's "
                                                    "run covers it (conftest.PLUMBING_SKIPPED_ON_JAX)"))


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
