"""The network layer: every HTTP transfer senclip makes itself goes through here.

It sits at the bottom of the package and imports nothing of senclip but
:mod:`senclip.errors`. :mod:`.retry`: :class:`RetryPolicy` and :func:`retry_call`
(backoff on transient failures); :mod:`.fetch`: :func:`fetch` a file with
``Range`` resume through ``<dest>.partial`` and checksums; :mod:`.gdal`: the
GDAL options for ``/vsicurl/`` COG reads, which GDAL performs itself.
"""

from senclip.net.fetch import OfflineError, cache_dir, fetch, network_reachable, offline_switch, verify_file
from senclip.net.gdal import gdal_env
from senclip.net.retry import RemoteError, RetryPolicy, http_status, is_remote, is_transient, retry_call

__all__ = ["OfflineError", "RemoteError", "RetryPolicy", "cache_dir", "fetch", "gdal_env", "http_status",
           "is_remote", "is_transient", "network_reachable", "offline_switch", "retry_call", "verify_file"]
