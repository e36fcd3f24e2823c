"""The workstation converter: prune and quantise trained Keras CNNs into TFLite models the
device runs, with a fidelity report. TensorFlow is imported through workstation.tfenv."""
