"""Models on the device: the TFLite interpreter, a classifier and an embedder over it, and the
stock models fetched from pinned packages."""
