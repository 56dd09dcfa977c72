"""Loopback servers and fixture builders that the tests and benchmarks share (no test folder keeps its own).

:mod:`.servers`: a file server with HTTP Range support, fault injection and a
request log, in a thread or in its own process. :mod:`.stac`: a Sentinel-2
STAC collection of COGs made from BigEarthNet patches, served by ``rustac
serve``. Like :mod:`senclip.net` it sits below ``data``: it never imports the code it tests.
"""

from senclip.testing.servers import FaultPlan, RangeServer, RangeServerProcess
from senclip.testing.stac import SceneSpec, StacServer, build_sample_catalog

__all__ = ["FaultPlan", "RangeServer", "RangeServerProcess", "SceneSpec", "StacServer",
           "build_sample_catalog"]
