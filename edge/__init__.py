"""FaceLens on the device: camera → detector → classifiers → tracker → publishers.

Nothing in this package imports TensorFlow; models run through the TFLite runtime.
"""

__version__ = "0.1.0"
