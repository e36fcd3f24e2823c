"""Training the emotion and authenticity CNNs on a workstation (TensorFlow via
workstation.tfenv). Data readers here import no TensorFlow, so the converter can use them."""
