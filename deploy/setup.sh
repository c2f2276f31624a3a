#!/usr/bin/env bash
# Installs the Debian packages meshd needs, and only those missing: `build` for building meshd and
# running the demo, `test` for the test suite (adds Prometheus, systemd, PostgreSQL, valgrind, the Python venv
# module). Works as root without sudo, and as a user with sudo; `apt-get update` runs only when the
# package lists are missing or an install fails on stale ones.
#
#   deploy/setup.sh build && cargo run -p meshd-runtime -- demo
set -euo pipefail

# C toolchain for librdkafka, zstd and the vendored OpenSSL (which needs perl and make); no
# libssl-dev or pkg-config: OpenSSL is built from source with librdkafka.
build_packages=(gcc g++ make perl)
test_packages=(prometheus systemd postgresql valgrind)

case "${1:-build}" in
build) wanted=("${build_packages[@]}") ;;
test) wanted=("${build_packages[@]}" "${test_packages[@]}") ;;
*)
    echo "usage: $0 [build|test]" >&2
    exit 2
    ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${1:-build}" = test ] && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi

if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null; then
        as_root=(sudo)
    else
        echo "meshd setup: missing Debian packages ${missing[*]}, and neither root nor sudo is available;" >&2
        echo "install them as root: apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    install() {
        DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    }
    echo "meshd setup: installing ${missing[*]}"
    # A machine whose lists were never fetched has no *_Packages files: fetch them first.
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        "${as_root[@]}" apt-get update -qq
    fi
    # Lists that are there but stale make the install fail on a 404: fetch them and try once more.
    install || { "${as_root[@]}" apt-get update -qq && install; }
fi

if ! command -v cargo >/dev/null; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        echo "meshd setup: cargo is in $HOME/.cargo/bin but not on PATH; run: export PATH=\"\$HOME/.cargo/bin:\$PATH\"" >&2
    else
        echo "meshd setup: no Rust toolchain; install one with rustup (https://rustup.rs), Rust 1.94 or newer" >&2
    fi
    exit 1
fi
