"""catsdogs: small-data image classification with Keras 3.

Importing the package is cheap (no TensorFlow); the modules that need it import it themselves:
``catsdogs.data`` (tf.data pipelines), ``catsdogs.augment`` (ImageDataGenerator-compatible
augmentation), ``catsdogs.models`` (the model registry), ``catsdogs.training`` (``train(config)``),
``catsdogs.predict``, ``catsdogs.evaluate`` and ``catsdogs.visualize``.
"""

__version__ = "0.1.0"
