"""Sentinel-2 time series: readers, monthly compositing, point sampling, per-pixel datasets and maps.

Modules (imported on demand, so ``import senclip.timeseries`` stays cheap):

* :mod:`~senclip.timeseries.io` / :mod:`~senclip.timeseries.rasters`: ``open_series`` and the
  readers (arrays, EOPatch, folder of dated GeoTIFFs, GeoTIFF/NetCDF stacks), ``write_stack``;
* :mod:`~senclip.timeseries.composite`: ``monthly_composite`` (12 calendar months, clear observations);
* :mod:`~senclip.timeseries.sampling`: ``sample_points`` (manifest -> ``(N, 12, C)`` series);
* :mod:`~senclip.timeseries.dataset`: ``TimeSeriesDataset`` (registered as ``timeseries``),
  the eo-learn LULC classes and prompts;
* :mod:`~senclip.timeseries.paired`: ``SeriesPairedDataset`` (manifest ``series_path`` rows + ground
  cache), the training data of the timesen tower;
* :mod:`~senclip.timeseries.mapping`: ``PixelMapper``, the engine of ``senclip map-pixels``.

The model is :class:`senclip.models.timesen.TimeSenTower`. See ``docs/timeseries.md``.
"""
