#!/usr/bin/env bash
# `make install` as a user meets it: installs the build into a temporary
# prefix, then builds tests/install/consumer.c twice, with pkg-config and with
# the CMake package, and runs both against the installed shared library.
# Usage: run.sh BUILD_DIR
set -euo pipefail
build=$1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="tcp://127.0.0.1:$port"    # nobody listens there
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(find "$tmp/prefix" -name 'librpcq.so' -printf '%h\n' | head -n1)

echo "== pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Wextra -Werror -o "$tmp/consumer-pc" "$here/consumer.c" $(pkg-config --cflags --libs rpcq)
LD_LIBRARY_PATH="$libdir" "$tmp/consumer-pc" "$url"

echo "== CMake package"
cmake -S "$here" -B "$tmp/consumer-build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer-build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/consumer-build/consumer" "$url"
