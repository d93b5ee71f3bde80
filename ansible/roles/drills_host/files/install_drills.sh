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
# pip is run from the wheel ensurepip would install it from, rather than installed into the
# venv (which costs as much as installing drills): the venv holds drills and what it runs on.
bundled="$("$python" -c 'import ensurepip, os; print(os.path.dirname(ensurepip.__file__))')/_bundled"
pip_wheel="$(ls /usr/share/python-wheels/pip-*.whl "$bundled"/pip-*.whl 2>/dev/null | head -n 1 || true)"
if [ -n "$pip_wheel" ]; then
    [ -x "$venv/bin/python" ] || "$python" -m venv --without-pip "$venv"
    pip="$venv/bin/python $pip_wheel/pip"
else
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    pip="$venv/bin/python -m pip"
fi
# --no-compile: byte-compiling every dependency (pygments alone is large) costs more than the
# install; Python compiles what it imports, once.
pip="$pip --disable-pip-version-check --no-input --quiet"
$pip install --no-compile --no-index --find-links "$wheels" "drills==$version"
# The same version rebuilt from changed sources: pip would call it satisfied already.
$pip install --no-compile --no-index --find-links "$wheels" --no-deps --force-reinstall "drills==$version"
echo "$want" >"$stamp"
echo "installed drills $version into $venv"
