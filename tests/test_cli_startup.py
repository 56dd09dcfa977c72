"""`senclip --help` and every command's parser stay light: building them imports no heavy library."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "pandas", "rasterio", "open_clip", "lightning", "odc.stac", "fastapi", "pyarrow", "h5py")


def test_building_every_parser_imports_no_heavy_library():
    code = ("import sys; from senclip.cli import build_parser; build_parser(); "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules) or 'none')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["none"], out.stdout


def test_written_out_choices_equal_the_library_names():
    from senclip.commands.zeroshot import SEN4MAP_LABEL_SETS
    from senclip.data.sen4map_labels import LABEL_SETS

    assert SEN4MAP_LABEL_SETS == LABEL_SETS
