"""Images in: split folders and input files, decoding, the tf.data pipeline, augmentation.

- ``files``: split folders (``ImageFolder``, ``read_splits``), input expansion for predict and
  friends (files, folders, globs -> files and ``Failure``s), the data's fingerprint. No TensorFlow.
- ``images``: is a file usable (header, pixel limit, reduced-scale decode, EXIF orientation) before
  TensorFlow decodes it, remembered per file; bounded decoding for display. No TensorFlow.
- ``decode``: encoded bytes -> uint8 RGB at a size (reduced-scale JPEG decoding), and why a file
  does not decode, in words.
- ``pipeline``: ``make_dataset`` (training, evaluation) and ``make_path_dataset`` (prediction).
- ``augment``: ImageDataGenerator-compatible augmentation of a batched dataset, and its preview.
- ``mixing``: mixup and CutMix batches with soft targets.
- ``pillow_decode``: the TensorFlow decoder's copy in Pillow and NumPy. No TensorFlow.
- ``pydataset``: ``--pipeline pydataset``, the same batches through ``keras.utils.PyDataset``. No TensorFlow.
- ``sources``: the pipeline by ``--pipeline`` name (tf.data's only where TensorFlow is installed).
- ``near_duplicates``: perceptual hashes and near-duplicate groups (the audit's, and data_prep's). No TensorFlow.

This package knows nothing of models or training. Import the modules themselves: this file imports
nothing, so that ``catsdogs.data.files`` stays free of TensorFlow.
"""
