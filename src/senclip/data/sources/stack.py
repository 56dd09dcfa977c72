"""Source kind ``stack``: one raster holding the whole series, time-major, or a NetCDF cube
(:class:`~senclip.data.series.rasters.StackSource`): the last resort for a file."""

from senclip.data.series.rasters import StackSource
from senclip.data.sources import SourceKind, register_source

register_source(SourceKind(
    "stack", detect=lambda path: path.is_file(), priority=90,
    open=lambda path, dates=None, bands=None, mask=None, mask_band="CLM", **_: StackSource(
        path, dates=dates, bands=bands, mask=mask, mask_band=mask_band),
    description="one GeoTIFF (bands time-major, dates from --dates, its tags or STACK.dates.txt) or NetCDF"))
