"""Training: ``train(config) -> Run`` and its parts.

- ``trainer``: ``train``, ``Run``, the datasets of a run, what a finished run saves and publishes.
- ``settings``: a run's settings in layers (defaults <- the model's recipe <- a config file <- flags), and the one
  place settings become a model.
- ``fitting``: phases (warm-up, fine-tuning), optimizers, compiling, ``fit_phases``.
- ``callbacks``: the backup for ``--resume``, the best checkpoint, logs, early stopping, schedules.
- ``checkpoints``: weights snapshotted at an epoch's end and written by a background thread.
- ``features``: cached-feature training (the frozen layers run once; tf.data, so TensorFlow only).
- ``lr_finder``: ``find_learning_rate``, fastai's learning-rate sweep.
- ``rundir``: the run directory, ``state.json``, ``history.csv`` and the curves.
- ``strategy``: the strategy a backend means; ``keras.distribution`` data parallelism over processes on JAX.
- ``tf_strategy``: MirroredStrategy and the other ``tf.distribute`` strategies, logical CPUs (TensorFlow only).

Import the modules themselves (``from catsdogs.training.trainer import train``) or the package's
public names from ``catsdogs``.
"""
