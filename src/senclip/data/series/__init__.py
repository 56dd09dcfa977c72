"""Sentinel-2 time series as data: readers (``io``, ``rasters``; opened by kind through
:func:`senclip.data.sources.open_series`), monthly
compositing (``composite``), point sampling (``sampling``), labelled pixels (``dataset``,
registered as ``timeseries``, on the labelled-series base ``base`` it shares with Sen4Map) and
paired training points (``paired``). Submodules are imported
on demand, so this package stays cheap. See ``docs/timeseries.md``.
"""
