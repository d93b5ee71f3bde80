#!/bin/sh
# Install drills VERSION into the virtualenv VENV from the wheels in TARBALL (no index: the host
# needs no internet). Prints "unchanged" and does nothing when this very tarball was installed
# already (its sha256 is kept in the venv).
# usage: install_drills.sh VENV TARBALL VERSION PYTHON
set -eu
venv="$1"
tarball="$2"
version="$3"
python="$4"
stamp="$venv/.drills-wheels.sha256"
want="$(sha256sum "$tarball" | cut -d' ' -f1)"
if [ -x "$venv/bin/drill" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
    echo unchanged
    exit 0
fi
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
tar -xf "$tarball" -C "$wheels"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip="$venv/bin/python -m pip --disable-pip-version-check --no-input --quiet"
$pip install --no-index --find-links "$wheels" "drills==$version"
# The same version rebuilt from changed sources: pip would call it satisfied already.
$pip install --no-index --find-links "$wheels" --no-deps --force-reinstall "drills==$version"
echo "$want" >"$stamp"
echo "installed drills $version into $venv"
