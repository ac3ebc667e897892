"""Training: ``train(config) -> Run`` and its parts.

- ``trainer``: ``train``, ``Run``, the datasets of a run.
- ``fitting``: phases (warm-up, fine-tuning), optimizers, compiling, ``fit_phases``.
- ``callbacks``: backup for ``--resume``, the best checkpoint, logs, early stopping, schedules.
- ``features``: cached-feature training (frozen layers run once).
- ``rundir``: the run directory, ``state.json``, ``history.csv`` and the curves.
- ``strategy``: MirroredStrategy over GPUs, or over logical CPUs for tests.

Import the modules themselves (``from catsdogs.training.trainer import train``) or the package's
public names from ``catsdogs``.
"""
