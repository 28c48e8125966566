"""Line sources: real folders, rendered InkML, and synthetic generators, all behind one protocol."""

from vihtr.data.sources.base import LineSource, Sample

__all__ = ["LineSource", "Sample"]
