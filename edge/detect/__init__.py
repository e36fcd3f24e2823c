"""Face detectors: BlazeFace (TFLite, with tiling) and OpenCV's Haar cascade as the fallback."""

from facelens.edge.detect.base import Box, Detection, Detector, crop, crop_box, iou

__all__ = ["Box", "Detection", "Detector", "crop", "crop_box", "iou"]
