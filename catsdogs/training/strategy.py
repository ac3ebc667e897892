"""Distribution: MirroredStrategy over a machine's devices on TensorFlow; ``keras.distribution`` data
parallelism over every device of every process on JAX.

``auto`` on TensorFlow mirrors over all GPUs when there are two or more and otherwise uses the default
strategy (``training.tf_strategy``, imported only on TensorFlow). Logical CPU devices (``--devices
/cpu:0,/cpu:1``) are how multi-replica code is exercised without GPUs; TensorFlow can only create them before
it initialises its devices, so ``train`` configures them first thing in the process.

Beyond one machine, TensorFlow's paths are broken with Keras 3 (``MULTI_WORKER_REFUSAL``), so multi-process
training is ``KERAS_BACKEND=jax`` with ``data-parallel`` (``auto`` there): each process is started with the
coordinator's address, the process count and its own index (``start_processes``), sees its local devices,
and ``keras.distribution.DataParallel`` spans all of them. The trainer asks a strategy for ``scope()`` and
``num_replicas_in_sync``; ``DataParallelStrategy`` answers both, plus which process this is.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import keras

from catsdogs.errors import UserError, parameter

# Each backend's own library is installed where it is the backend, and maybe only there (JAX trains without
# TensorFlow): TensorFlow's strategies live in their own module, imported only on TensorFlow.
if keras.backend.backend() == "jax":
    import jax
if keras.backend.backend() == "tensorflow":
    from catsdogs.training import tf_strategy

MULTI_WORKER_REFUSAL = (
    f"{parameter('strategy', 'multi-worker')}: TensorFlow's MultiWorkerMirroredStrategy fails with Keras 3's fit "
    f"(keras-team/keras#20585, open); train across machines with KERAS_BACKEND=jax and "
    f"{parameter('strategy', 'data-parallel')} (README: Beyond one machine)")
# What keras.distribution.initialize reads when its arguments are not given.
PROCESS_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                     "KERAS_DISTRIBUTION_PROCESS_ID")
# Clusters JAX finds by itself (jax.distributed.initialize() with no arguments): Slurm, Open MPI.
CLUSTER_VARIABLES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


@dataclass
class DataParallelStrategy:
    """``keras.distribution.DataParallel`` over every device of every process, as the trainer uses a strategy.

    It is installed as the process's distribution when made (Keras's fit reads the global one to shard
    each global batch between the processes), so ``scope`` has nothing more to do.
    """

    num_replicas_in_sync: int
    process_id: int = 0
    num_processes: int = 1

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        yield


def process_of(strategy: Any) -> tuple[int, int]:
    """(this process's index, the process count); TensorFlow's strategies run in one process."""
    return getattr(strategy, "process_id", 0), getattr(strategy, "num_processes", 1)


def start_processes(coordinator: str | None, num_processes: int | None, process_id: int | None) -> int:
    """Join the processes of a multi-process run (JAX backend) before any computation; returns the count.

    Coordinates come from the flags, else the ``KERAS_DISTRIBUTION_*`` variables, else a cluster JAX
    detects (Slurm, Open MPI); with none of them the run is one process and nothing is started.
    """
    given = coordinator is not None or num_processes is not None or process_id is not None
    from_environment = any(os.environ.get(name) for name in PROCESS_VARIABLES)
    in_cluster = any(int(os.environ.get(name, "1") or 1) > 1 for name in CLUSTER_VARIABLES)
    if not (given or from_environment or in_cluster):
        return 1
    if keras.backend.backend() != "jax":
        raise UserError("training on several processes needs the JAX backend: run with KERAS_BACKEND=jax "
                        f"(this process uses {keras.backend.backend()}); on TensorFlow, "
                        f"{parameter('strategy', 'mirrored')} spreads over one machine's GPUs")
    if given and (coordinator is None or num_processes is None or process_id is None):
        raise UserError(f"{parameter('coordinator', 'HOST:PORT')}, {parameter('num_processes', 'N')} and "
                        f"{parameter('process_id', 'I')} go together; pass all three (or set the "
                        "KERAS_DISTRIBUTION_* variables)")
    if num_processes is not None and process_id is not None and not 0 <= process_id < num_processes:
        raise UserError(f"{parameter('process_id', process_id)} is not one of 0..{num_processes - 1} "
                        f"({parameter('num_processes', num_processes)})")
    keras.distribution.initialize(coordinator, num_processes, process_id)
    return jax.process_count()


def make_strategy(name: str = "auto", devices: Sequence[str] = ()) -> Any:
    """The strategy ``name`` means on this process's Keras backend (see the module's notes)."""
    if name == "multi-worker":
        raise UserError(MULTI_WORKER_REFUSAL)
    if keras.backend.backend() != "tensorflow":
        return _keras_distribution_strategy(name, devices)
    if name == "data-parallel":
        raise UserError(f"{parameter('strategy', 'data-parallel')} is keras.distribution on the JAX backend: run "
                        f"with KERAS_BACKEND=jax; on TensorFlow, {parameter('strategy', 'mirrored')} spreads over one "
                        "machine's GPUs")
    return tf_strategy.tensorflow_strategy(name, devices)


def has_accelerator() -> bool:
    """Whether this process computes on a GPU or TPU (where augmenting inside the model pays)."""
    if keras.backend.backend() == "tensorflow":
        return tf_strategy.gpu_count() > 0
    if keras.backend.backend() == "jax":
        return jax.default_backend() != "cpu"
    return False


def _keras_distribution_strategy(name: str, devices: Sequence[str]) -> DataParallelStrategy:
    if name not in ("auto", "data-parallel", "default"):
        raise UserError(f"{parameter('strategy', name)} is TensorFlow's; on the {keras.backend.backend()} backend use "
                        "data-parallel (the default there) or default")
    if devices:
        raise UserError(f"{parameter('devices')} names TensorFlow devices; on the JAX backend data-parallel uses "
                        "every device of every process (limit them with CUDA_VISIBLE_DEVICES)")
    if name == "default":
        return DataParallelStrategy(num_replicas_in_sync=1)
    every_device = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=every_device))
    return DataParallelStrategy(num_replicas_in_sync=len(every_device), process_id=jax.process_index(),
                                num_processes=jax.process_count())


def cpu_devices_wanted(devices: Sequence[str]) -> int:
    """How many logical CPU devices ``devices`` names (``/cpu:1`` needs two); 0 when it names none."""
    indices = [int(d.rsplit(":", 1)[-1]) for d in devices if "cpu" in d.lower() and d.rsplit(":", 1)[-1].isdigit()]
    return max(indices) + 1 if indices else 0
