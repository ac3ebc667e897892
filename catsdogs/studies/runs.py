"""An experiment's runs: each is an ordinary ``train`` run in the experiment's ``runs/`` folder, found by name.

What makes ``ladder`` and ``ablate`` resumable: a run whose folder holds ``metrics.json`` finished and is
reused, one with only ``config.json`` was interrupted and is continued (``train(resume_dir=...)``), and
a missing one is started. Run folders are ``<time>-<name>``, so the newest of a name is the one that counts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from catsdogs.config import TrainConfig
from catsdogs.training.trainer import train


def run_once(runs_dir: Path, name: str, make_config: Callable[[], TrainConfig]) -> Path:
    """The run folder of ``name`` in ``runs_dir``: reused when finished, continued when interrupted, else trained
    from ``make_config()`` (whose ``output`` must be ``runs_dir`` and ``name`` this name)."""
    existing = sorted(runs_dir.glob(f"*-{name}")) if runs_dir.is_dir() else []
    if existing and (existing[-1] / "metrics.json").is_file():
        return existing[-1]
    if existing and (existing[-1] / "config.json").is_file():
        return train(TrainConfig(), resume_dir=existing[-1]).run_dir
    return train(make_config()).run_dir
