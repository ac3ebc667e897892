"""Training beyond one process: two processes on 127.0.0.1 (JAX backend, keras.distribution), the even
batches they need, and the one-line refusals of what cannot work.

The two-process test is what the README's multi-process section runs: each process is started with the
coordinator's address, the count and its index; process 0 alone writes. A hung process ignores SIGTERM,
so the harness kills whole process groups with SIGKILL when anything fails or runs past its limit.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers.images import make_split_folder

from catsdogs.data.pipeline import make_dataset
from catsdogs.errors import UserError
from catsdogs.models.saving import load_model
from catsdogs.training.rundir import read_history
from catsdogs.training.strategy import MULTI_WORKER_REFUSAL

LIMIT_S = 120
needs_jax = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow" or importlib.util.find_spec("jax") is None,
    reason="needs JAX installed (pip install -e '.[jax]'); runs from the TensorFlow test session")
# 26 training and 10 validation images: neither divides the global batch of 8.
COUNTS = {"train": 13, "validation": 5, "test": 4}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_args(data: Path, output: Path) -> list[str]:
    return [sys.executable, "-m", "catsdogs.train", "--data-dir", str(data), "--model", "lenet5", "--image-size", "32",
            "--epochs", "2", "--batch-size", "4", "--seed", "3", "--verbose", "2", "--output", str(output / "runs"),
            "--saved-models-dir", str(output / "saved_models")]


def launch(args: list[str], folder: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    """A process in its own group and working folder, with its own temporary folder (to see what it leaves)."""
    (folder / "tmp").mkdir(parents=True)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3",
           "TMPDIR": str(folder / "tmp"), **extra_env}
    return subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish_all(processes: list[subprocess.Popen]) -> list[str]:
    """Every process's output; all of them killed (SIGKILL, whole group) if one fails or the limit passes."""
    deadline = time.monotonic() + LIMIT_S
    outputs: list[str] = []
    try:
        for process in processes:
            out, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs.append(out)
            assert process.returncode == 0, out[-4000:]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return outputs


def fingerprint(output: str) -> str:
    [line] = [line for line in output.splitlines() if "weights fingerprint" in line]
    return line.rsplit(" ", 1)[-1]


def saved_weights(output: Path) -> list[np.ndarray]:
    [path] = list((output / "runs").glob("*/model.keras"))
    model, _ = load_model(path)
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


@needs_jax
def test_two_processes_train_as_one_and_only_process_0_writes(tmp_path):
    data = make_split_folder(tmp_path / "data", COUNTS)
    started = time.monotonic()
    port = free_port()
    shared = tmp_path / "shared"
    processes = [launch(train_args(data, shared) + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2",
                                                     "--process-id", str(index)], tmp_path / f"process-{index}", {})
                 for index in range(2)]
    # The same global batches in one process: two devices (as the two processes have), batch 4 on each.
    reference = launch(train_args(data, tmp_path / "single"), tmp_path / "single-process",
                       {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    first, second, single = finish_all([*processes, reference])
    elapsed = time.monotonic() - started

    assert fingerprint(first) == fingerprint(second)  # identical weights in both processes
    runs = list((shared / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "model.keras").is_file()
    assert read_history(runs[0] / "history.csv")["epoch"] == [0, 1]
    assert [p.name for p in (shared / "saved_models").iterdir() if p.suffix == ".keras"] == ["lenet5.keras"]
    assert not any(path.is_file() for path in (tmp_path / "process-1").rglob("*"))  # nothing of process 1's
    assert "done: process 0 writes" in second
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["run"]["replicas"] == 2 and config["run"]["global_batch_size"] == 8

    for distributed, alone in zip(saved_weights(shared), saved_weights(tmp_path / "single"), strict=True):
        np.testing.assert_allclose(distributed, alone, atol=1e-5)
    assert elapsed < LIMIT_S


@needs_jax
def test_after_both_processes_are_killed_resume_continues_the_run(tmp_path):
    data = make_split_folder(tmp_path / "data", COUNTS)
    shared = tmp_path / "shared"
    args = train_args(data, shared)
    args[args.index("--epochs") + 1] = "30"  # killed long before

    def start(extra: list[str], index: int, attempt: str) -> subprocess.Popen:
        return launch(args + extra + ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id",
                                      str(index)], tmp_path / f"{attempt}-{index}", {})

    port = free_port()
    first = [start([], index, "first") for index in range(2)]
    deadline, history = time.monotonic() + LIMIT_S, None
    try:
        while time.monotonic() < deadline and history is None:
            found = list((shared / "runs").glob("*/history.csv"))
            history = found[0] if found and len(read_history(found[0]).get("epoch", [])) >= 2 else None
            time.sleep(0.1)
    finally:
        for process in first:
            os.killpg(process.pid, signal.SIGKILL)  # both, as a lost machine takes a job down
            process.wait()
    assert history is not None, "no two epochs within the limit"
    run_dir = history.parent
    done_before = json.loads((run_dir / "backup" / "state.json").read_text())["epoch"]
    config = run_dir / "config.json"
    config.write_text(config.read_text().replace('"epochs": 30', f'"epochs": {done_before + 2}'))

    port = free_port()
    outputs = finish_all([start(["--resume", str(run_dir)], index, "again") for index in range(2)])
    assert fingerprint(outputs[0]) == fingerprint(outputs[1])
    assert read_history(run_dir / "history.csv")["epoch"] == list(range(done_before + 2))  # each epoch once
    assert (run_dir / "model.keras").is_file() and not (run_dir / "backup").exists()
    assert len(list((shared / "runs").iterdir())) == 1


def test_even_batches_drop_for_training_and_pad_evaluation_with_weightless_blanks(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 5, "validation": 5})  # 10 images each, batch 4
    training = list(make_dataset(data / "train", 32, 4, shuffle=True, drop_remainder=True).as_numpy_iterator())
    assert [len(labels) for _, labels in training] == [4, 4]
    evaluation = list(make_dataset(data / "validation", 32, 4, pad_remainder=True).as_numpy_iterator())
    assert [len(labels) for _, labels, _ in evaluation] == [4, 4, 4]
    images = np.concatenate([batch for batch, _, _ in evaluation])
    weights = np.concatenate([weight for _, _, weight in evaluation])
    assert weights.tolist() == [1.0] * 10 + [0.0] * 2  # every image once, the blanks weigh nothing
    plain = np.concatenate([batch for batch, _ in make_dataset(data / "validation", 32, 4).as_numpy_iterator()])
    np.testing.assert_array_equal(images[:10], plain)
    assert not images[10:].any()


def run_train(args: list[str], backend: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "catsdogs.train", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_multi_worker_on_tensorflow_is_one_line_pointing_to_the_jax_path(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 2})
    done = run_train(["--data-dir", str(data), "--strategy", "multi-worker", "--output", str(tmp_path / "runs")],
                     "tensorflow")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(UserError(MULTI_WORKER_REFUSAL).worded())
    assert "keras-team/keras#20585" in MULTI_WORKER_REFUSAL and "KERAS_BACKEND=jax" in MULTI_WORKER_REFUSAL
    done = run_train(["--data-dir", str(data), "--coordinator", "127.0.0.1:1", "--num-processes", "2",
                      "--process-id", "0", "--output", str(tmp_path / "runs")], "tensorflow")
    assert done.returncode != 0 and "Traceback" not in done.stderr and "KERAS_BACKEND=jax" in done.stderr
    assert not (tmp_path / "runs").exists()
