"""Shared by the workstation tools (converter and training): the TensorFlow environment,
Keras model loading, dataset readers and classification metrics. Both import this package;
neither imports the other."""
