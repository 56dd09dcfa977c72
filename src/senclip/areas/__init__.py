"""The area pipeline, an area and a season in, composites and land-use maps out (the workflows layer).

It composes :mod:`senclip.acquire` (grid, search, compositing of one block) and
:mod:`senclip.mapping` (mapping one block) without either importing the other: :mod:`.plan`
checks a request, searches its items and keeps its work folders; :mod:`.composites` runs
``composite`` (and the composite of the map commands); :mod:`.maps` runs ``map --bbox`` and
``map-pixels --bbox``; :mod:`.blocks` runs blocks here or on a Dask cluster, journalled and
resumable; :mod:`.mosaic` assembles the blocks into COGs with their STAC Items. See
``docs/areas.md``.
"""
