#!/bin/sh
# Entrypoint of the rpcqd image.
#
#   (no arguments)     rpcqd migrate, then rpcqd serve on 0.0.0.0:7400 (calls),
#                      0.0.0.0:7401 (streams) and 0.0.0.0:7480 (HTTP)
#   -FLAGS...          the same, with these flags added to serve (--workers 8, ...)
#   COMMAND ARGS...    runs that instead: `rpcqd migrate`, `rpcq health`, `sh`, ...
#
# The 0.0.0.0 addresses are defaults, set as RPCQ_LISTEN, RPCQ_PUBLISH and
# RPCQ_HTTP only where neither the environment (even empty: RPCQ_HTTP= is no
# HTTP) nor the config file (--config or RPCQ_CONFIG) sets them, so rpcqd's own order
# holds: a flag replaces the environment's list, which replaces the file's.
#
# The database is RPCQ_DATABASE_URL (a libpq conninfo or URI), read by rpcqd
# from the environment, so that a password never shows in a process list. The
# database may still be starting: migrate is retried for up to
# RPCQ_MIGRATE_WAIT_S seconds (60) before the container gives up.
set -eu

if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
	exec "$@"
fi

if [ -z "${RPCQ_DATABASE_URL:-}" ]; then
	echo "rpcqd-entrypoint: set RPCQ_DATABASE_URL to the database (libpq conninfo or URI)" >&2
	exit 2
fi

wait_s=${RPCQ_MIGRATE_WAIT_S:-60}
start=$(date +%s)
until rpcqd migrate; do
	if [ $(($(date +%s) - start)) -ge "$wait_s" ]; then
		echo "rpcqd-entrypoint: rpcqd migrate kept failing for ${wait_s} s; giving up" >&2
		exit 1
	fi
	echo "rpcqd-entrypoint: rpcqd migrate failed; retrying in 2 s" >&2
	sleep 2
done

# The config file rpcqd will read: --config's (it beats RPCQ_CONFIG), else RPCQ_CONFIG.
config=${RPCQ_CONFIG:-}
prev=
for a in "$@"; do
	case $prev in --config) config=$a ;; esac
	case $a in --config=*) config=${a#--config=} ;; esac
	prev=$a
done
# in_config KEY: that file sets KEY ("key = value", as rpcqd reads it).
in_config() {
	[ -n "$config" ] && [ -r "$config" ] && grep -Eq "^[[:space:]]*$1[[:space:]]*=" "$config"
}
if [ -z "${RPCQ_LISTEN+set}" ] && ! in_config listen; then
	export RPCQ_LISTEN=tcp://0.0.0.0:7400
fi
if [ -z "${RPCQ_PUBLISH+set}" ] && ! in_config publish; then
	export RPCQ_PUBLISH=tcp://0.0.0.0:7401
fi
if [ -z "${RPCQ_HTTP+set}" ] && ! in_config http; then
	export RPCQ_HTTP=http://0.0.0.0:7480
fi
exec rpcqd serve "$@"
