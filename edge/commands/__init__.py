"""The owner's tools beside the service: enrol faces, collect crops, install a model."""
