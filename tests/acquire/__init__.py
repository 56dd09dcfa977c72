"""Tests of senclip.acquire (a package so that helper imports and test names stay unique)."""
