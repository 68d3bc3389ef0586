#!/bin/sh
# Entrypoint of the rpcqd image.
#
#   (no arguments)     rpcqd migrate, then rpcqd serve on 0.0.0.0:7400 (calls),
#                      0.0.0.0:7401 (streams) and 0.0.0.0:7480 (HTTP)
#   -FLAGS...          the same, with these flags added to serve (--workers 8, ...)
#   COMMAND ARGS...    runs that instead: `rpcqd migrate`, `rpcq health`, `sh`, ...
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

exec rpcqd serve --listen tcp://0.0.0.0:7400 --publish tcp://0.0.0.0:7401 --http http://0.0.0.0:7480 "$@"
