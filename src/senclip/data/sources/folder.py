"""Source kind ``dated-folder``: a folder of single-date rasters
(:class:`~senclip.data.series.rasters.FolderSource`)."""

from senclip.data.series.rasters import FolderSource
from senclip.data.sources import SourceKind, register_source

register_source(SourceKind(
    "dated-folder", detect=lambda path: path.is_dir(), priority=40,
    open=lambda path, bands=None, mask_band="CLM", **_: FolderSource(path, bands=bands, mask_band=mask_band),
    description="folder of GeoTIFFs, one per acquisition, the date in each file name"))
