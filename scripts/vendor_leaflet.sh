#!/usr/bin/env bash
# Vendor a pinned Leaflet release into the explorer's static files (run by hand when upgrading;
# nothing is fetched at run time). Takes the npm registry's tarball, checks its integrity against
# the pin below, and copies only the files the page loads plus the licence. The source-map comment
# is dropped from leaflet.js: the map file is not vendored, and a browser's developer tools would
# ask the server for it (a 404 in the console). Runs with GNU or BSD tools (base64 without -w).
set -euo pipefail
VERSION=1.9.4
INTEGRITY="sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA=="
DEST="$(cd "$(dirname "$0")/.." && pwd)/src/senclip/explore/static/vendor/leaflet"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "leaflet@$VERSION" --silent >/dev/null)
tarball="$work/leaflet-$VERSION.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 | tr -d '\n')"
[ "$got" = "$INTEGRITY" ] || { echo "integrity mismatch: $got" >&2; exit 1; }
tar xzf "$tarball" -C "$work"
rm -rf "$DEST"
mkdir -p "$DEST/images"
grep -v '^//# sourceMappingURL=' "$work/package/dist/leaflet.js" > "$DEST/leaflet.js"
cp "$work/package/dist/leaflet.css" "$work/package/LICENSE" "$DEST/"
cp "$work/package/dist/images/"*.png "$DEST/images/"
echo "leaflet $VERSION ($INTEGRITY) from the npm registry; files: dist/leaflet.js (its sourceMappingURL line dropped), dist/leaflet.css, dist/images/*.png, LICENSE" > "$DEST/VERSION"
echo "vendored Leaflet $VERSION into $DEST"
