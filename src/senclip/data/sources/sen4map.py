"""Source kind ``sen4map``: a Sen4Map HDF5 file as a ``1 x N`` grid of monthly steps
(:class:`~senclip.data.sen4map.Sen4MapSource`)."""

from senclip.data.sen4map import Sen4MapSource, is_sen4map
from senclip.data.sources import SourceKind, register_source

register_source(SourceKind(
    "sen4map", detect=is_sen4map, priority=20, open=lambda path, **_: Sen4MapSource(path),
    description="Sen4Map HDF5 file (.h5, .hdf5), its points as one row"))
