#!/usr/bin/env bash
# Runs a command against QGIS 3.40 LTR while the system keeps its QGIS (3.22 on Debian 12):
#     scripts/qgis340_env.sh .venv/bin/python -m pytest tests -q
# The first call unpacks Debian's bookworm-backports packages of QGIS 3.40, plus whatever they
# need that the system lacks, into build/qgis340/prefix (about 140 MB of .debs, under a minute);
# later calls reuse it. Nothing is installed on the system, so the same .venv (torch, pytest)
# runs both versions: both are Debian's Python 3.11 builds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${QGIS340_ROOT:-$PWD/build/qgis340}
PREFIX=$ROOT/prefix
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=(qgis python3-qgis qgis-providers)

build_prefix() {
    echo "qgis340_env: unpacking QGIS 3.40 from bookworm-backports into $PREFIX" >&2
    rm -rf "$ROOT" && mkdir -p "$ROOT/apt/lists/partial" "$ROOT/apt/cache/archives/partial" "$ROOT/debs"
    cat > "$ROOT/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
deb $MIRROR bookworm-backports main
EOF
    # A private package index: the system's apt sources and state are left as they are.
    local apt=(-qq -o "Dir::Etc::sourcelist=$ROOT/apt/sources.list" -o Dir::Etc::sourceparts=-
               -o "Dir::State::Lists=$ROOT/apt/lists" -o "Dir::Cache=$ROOT/apt/cache" -o Debug::NoLocking=1)
    apt-get "${apt[@]}" update >/dev/null
    # What installing 3.40 would add or upgrade on this system, as name=version.
    local wanted
    wanted=$(apt-get "${apt[@]}" -s -t bookworm-backports install --no-install-recommends "${PACKAGES[@]}" |
             sed -n 's/^Inst \([^ ]*\) \(\[[^]]*\] \)\?(\([^ ]*\) .*/\1=\3/p')
    grep -q '^libqgis-core3\.40' <<<"$wanted" || { echo "qgis340_env: bookworm-backports offers no QGIS 3.40" >&2; exit 1; }
    (cd "$ROOT/debs" && apt-get "${apt[@]}" -o APT::Sandbox::User="$(id -un)" download $wanted >/dev/null)
    for deb in "$ROOT"/debs/*.deb; do dpkg -x "$deb" "$PREFIX"; done
    # QGIS puts <prefix>/share/qgis/python first on its Python path (also in qgis_process), so the
    # 3.40 bindings go there, beside a PyQt5 made of the system's modules plus the extra ones 3.40 needs.
    local python=$PREFIX/usr/share/qgis/python
    ln -sfn ../../../lib/python3/dist-packages/qgis "$python/qgis"  # relative: the checkout may move
    mkdir -p "$python/PyQt5"
    for item in /usr/lib/python3/dist-packages/PyQt5/*; do
        [ "$(basename "$item")" = __pycache__ ] || ln -sfn "$item" "$python/PyQt5/"
    done
    for item in "$PREFIX"/usr/lib/python3/dist-packages/PyQt5/*.so; do
        ln -sfn "../../../../lib/python3/dist-packages/PyQt5/$(basename "$item")" "$python/PyQt5/"
    done
    rm -rf "$ROOT/debs" "$ROOT/apt/cache"
    touch "$ROOT/.ready"
}

[ -f "$ROOT/.ready" ] || build_prefix

export QGIS_PREFIX_PATH=$PREFIX/usr
export LD_LIBRARY_PATH=$PREFIX/usr/lib:$PREFIX/usr/lib/x86_64-linux-gnu:$PREFIX/usr/lib/x86_64-linux-gnu/pulseaudio${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONPATH=$PREFIX/usr/share/qgis/python:$PREFIX/usr/share/qgis/python/plugins${PYTHONPATH:+:$PYTHONPATH}
export QGIS_PROCESS=$PREFIX/usr/bin/qgis_process.bin
export QGIS_CUSTOM_CONFIG_PATH=$ROOT/profile  # 3.40 would upgrade the settings 3.22 reads
exec "$@"
