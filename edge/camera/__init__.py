"""One camera's path through a frame: motion, where to look, following, tracks, pipeline."""
