"""Exports: a trained ``.keras`` classifier written as a SavedModel (TF Serving's layout), LiteRT or ONNX, checked.

- ``graph``: the inference graph every format is made from (no augmentation; input ``image``, raw RGB
  0-255; output ``probabilities``, one per class).
- ``formats``: one writer per format on Keras's own ``model.export`` (and ``keras.export.ExportArchive``
  for the SavedModel's second, encoded-bytes signature), and the quantizations.
- ``parity``: the exported model against the Keras model on held-out images.
- ``exporter``: ``export_model``, which runs the above and writes the sidecar, card and parity report.
"""
