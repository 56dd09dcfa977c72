"""Source kind ``eopatch``: an eo-learn EOPatch folder (:class:`~senclip.data.series.io.EOPatchSource`)."""

from senclip.data.series.io import EOPatchSource, is_eopatch
from senclip.data.sources import SourceKind, register_source

register_source(SourceKind(
    "eopatch", detect=is_eopatch, priority=10,
    open=lambda path, bands=None, feature="NDVI", **_: EOPatchSource(path, feature=feature, bands=bands),
    description="eo-learn EOPatch folder (data/<FEATURE>.npy, mask/CLM.npy, timestamps.json)"))
