"""EuroSAT MS (Helber et al. 2019): 13-band Sentinel-2 L1C GeoTIFFs, 64x64 px, 10 classes.

Layout: ``<root>/<ClassName>/*.tif``. The release's nested root
``<root>/ds/images/remote_sensing/otherDatasets/sentinel_2/tif/`` and the Zenodo
release's ``<root>/EuroSAT_MS/`` are accepted too.

Band order inside each file, as published (see phelber/EuroSAT issue #7 and
torchgeo/torchgeo#2458): ``B01, B02, B03, B04, B05, B06, B07, B08, B09, B10,
B11, B12, B8A`` -- B8A is the last band, not the ninth. Images are returned as
stored: uint16 digital numbers (reflectance x 10,000) as float32 ``(13, 64, 64)``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from senclip.bands import S2_L1C_BANDS
from senclip.data.base import EUROSAT_CLASSES, GEOTIFF_OPEN_OPTIONS, ClassFolderDataset, raster_read_env
from senclip.data.download import DatasetSpec
from senclip.data.eurosat import EUROSAT_HF
from senclip.data.radiometry import read_dn_units
from senclip.errors import SenclipError

EUROSAT_MS_BANDS: tuple[str, ...] = (*(b for b in S2_L1C_BANDS if b != "B8A"), "B8A")  # B8A last (see above)


class EuroSATMS(ClassFolderDataset):
    """EuroSAT multispectral GeoTIFFs in class folders, read with rasterio.

    Args:
        root: Folder with the class folders (or a parent holding the release's nested root).
        transforms: Sample transform (dict -> dict), or None for raw digital numbers.
        download: Fetch the data with ``senclip.data.download`` when missing.
    """

    name: ClassVar[str] = "eurosat-ms"
    classes: ClassVar[list[str]] = list(EUROSAT_CLASSES)
    multilabel: ClassVar[bool] = False
    all_bands: ClassVar[tuple[str, ...]] = EUROSAT_MS_BANDS
    suffixes: ClassVar[tuple[str, ...]] = (".tif", ".tiff")
    nested_roots: ClassVar[tuple[str, ...]] = (
        "ds/images/remote_sensing/otherDatasets/sentinel_2/tif",
        "EuroSAT_MS",
        "EuroSATallBands/ds/images/remote_sensing/otherDatasets/sentinel_2/tif",
    )
    layout: ClassVar[str] = ("<root>/<ClassName>/*.tif (13-band GeoTIFFs) for the 10 EuroSAT classes, "
                             "or <root>/ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<ClassName>/")
    prompt_set: ClassVar[str] = "eurosat"
    download_spec: ClassVar[DatasetSpec] = DatasetSpec(
        "eurosat-ms", "EuroSATallBands.zip", extracted="ds", md5="5ac12b3b2557aa56e1826e981e8e200e",
        urls=(f"{EUROSAT_HF}/06fd1b090bceecc0ce724cd21578ba7a6664fe8d/EuroSATallBands.zip",
              "http://madm.dfki.de/files/sentinel/EuroSATallBands.zip"),
        approx_size="2.07 GB", source="torchgeo.datasets.EuroSAT (URL and MD5)")

    def _read_image(self, index: int) -> torch.Tensor:
        import rasterio
        from rasterio.errors import RasterioError

        path = self.paths[index]
        try:
            with raster_read_env(), rasterio.open(path, **GEOTIFF_OPEN_OPTIONS) as src:
                if src.count != len(self.all_bands):
                    raise SenclipError(f"{path} has {src.count} bands, expected {len(self.all_bands)} "
                                       f"({','.join(self.all_bands)}); is this EuroSAT MS?")
                array = read_dn_units(src, src.read())  # honours GDAL scale/offset (data.radiometry)
        except RasterioError as err:
            raise SenclipError(f"cannot read GeoTIFF {path}: {err}; replace or delete the file") from None
        return torch.from_numpy(array.astype(np.float32))
