#!/usr/bin/python3
"""GET /search, the plain Python way: the baseline rpcqd's /search is measured against.

    EVENTS_DATABASE_URL='host=... port=... dbname=... user=...' \\
        /usr/bin/python3 -m uvicorn --app-dir bench/baseline events_search:app --workers 2 --port PORT

FastAPI + uvicorn + asyncpg, as such services are commonly built: one asyncpg
pool per worker process, one query per request on the events table rpcqd
writes (SELECT ... WHERE starts_at >= $1 AND ends_at <= $2 ORDER BY
starts_at, id, served by its (starts_at, id) index), and the reply in the
shape of ../shared/data/events/search-openapi.yaml, as rpcqd's /search writes it:

    {"data":{"events":[{"id":..,"title":..,"start_date":"2021-06-30","start_time":"21:00:00",
      "end_date":..,"end_time":..,"min_price":15.0,"max_price":30.0}]},"error":null}

Both bounds are optional ISO 8601 date-times; a zone suffix is accepted and
the wall-clock part compared, as rpcqd does. A malformed bound is 400, any
other failure 500, both as {"data":null,"error":{"code":..,"message":..}}.
Prices are numeric in PostgreSQL and go out as JSON numbers through float
(what json.dumps does with them once made floats; 15.00 is written 15.0).

uvicorn picks uvloop and httptools when installed (python3-uvloop and
python3-httptools, what `pip install uvicorn[standard]` brings; scripts/setup
installs them), as a production deployment would.

Without an upper bound on starts_at the index scan of "starts_at >= $1"
runs from the window's start to the end of the table, filtering on ends_at:
that is the plain query; EVENTS_SEARCH_QUERY=bounded (below) is the tuned one.

EVENTS_DATABASE_URL is a libpq keyword conninfo (what scripts/pg start
prints) or a postgresql:// URI. bench/run-events-search.sh starts it.
"""

import datetime
import os

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SELECT = "SELECT id, title, starts_at, ends_at, min_price, max_price FROM events"
ORDER = " ORDER BY starts_at, id"
# One statement per combination of bounds given, so that each is planned with
# the index on (starts_at, id) in mind (a "$1 IS NULL OR ..." would not be).
QUERIES = {
    (True, True): SELECT + " WHERE starts_at >= $1 AND ends_at <= $2" + ORDER,
    (True, False): SELECT + " WHERE starts_at >= $1" + ORDER,
    (False, True): SELECT + " WHERE ends_at <= $1" + ORDER,
    (False, False): SELECT + ORDER,
}
# EVENTS_SEARCH_QUERY=bounded: with both bounds, also "starts_at <= $2", so that
# the index scan stops at the window's end instead of running to the end of
# the table. The same answer only while no stored event ends before it
# starts (bench/run-events-search.sh checks that the store has none).
if os.environ.get("EVENTS_SEARCH_QUERY") == "bounded":
    QUERIES[True, True] = SELECT + " WHERE starts_at >= $1 AND ends_at <= $2 AND starts_at <= $2" + ORDER

app = FastAPI()
pool = None


def connect_args(dsn):
    """asyncpg.create_pool arguments from a libpq keyword conninfo or a URI."""
    if "://" in dsn:
        return {"dsn": dsn}
    names = {"host": "host", "port": "port", "dbname": "database", "user": "user", "password": "password"}
    args = {}
    for part in dsn.split():
        key, _, value = part.partition("=")
        if key in names:
            args[names[key]] = int(value) if key == "port" else value
    return args


@app.on_event("startup")
async def startup():
    global pool
    pool = await asyncpg.create_pool(**connect_args(os.environ["EVENTS_DATABASE_URL"]), min_size=2, max_size=10)


@app.on_event("shutdown")
async def shutdown():
    await pool.close()


def error(status, code, message):
    return JSONResponse({"data": None, "error": {"code": code, "message": message}}, status_code=status)


def bound(name, value):
    """The wall-clock part of an ISO 8601 date-time, or None; ValueError when malformed."""
    if value is None or value == "":
        return None
    try:
        t = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} {value!r} is not an ISO 8601 date-time") from None
    return t.replace(tzinfo=None)


def price(v):
    return None if v is None else float(v)


@app.get("/search")
async def search(request: Request, starts_at: str = None, ends_at: str = None):
    try:
        lo, hi = bound("starts_at", starts_at), bound("ends_at", ends_at)
    except ValueError as e:
        return error(400, "invalid_argument", str(e))
    try:
        async with pool.acquire() as conn:
            args = [v for v in (lo, hi) if v is not None]
            rows = await conn.fetch(QUERIES[lo is not None, hi is not None], *args)
    except Exception as e:  # anything else is a 500 in the spec's shape
        return error(500, "internal", str(e))
    events = [
        {
            "id": str(r["id"]),
            "title": r["title"],
            "start_date": r["starts_at"].date().isoformat(),
            "start_time": r["starts_at"].time().isoformat(),
            "end_date": r["ends_at"].date().isoformat(),
            "end_time": r["ends_at"].time().isoformat(),
            "min_price": price(r["min_price"]),
            "max_price": price(r["max_price"]),
        }
        for r in rows
    ]
    return JSONResponse({"data": {"events": events}, "error": None})
