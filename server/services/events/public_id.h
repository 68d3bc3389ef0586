/*
 * The public id of an event: a UUIDv5 (RFC 4122, SHA-1, libuuid) of its
 * (base id, event id) pair under a namespace of the project's own, so that
 * every process and every restart gives an event the same id.
 */
#ifndef RPCQ_EVENTS_PUBLIC_ID_H
#define RPCQ_EVENTS_PUBLIC_ID_H

/* The lower-case text form in out (37 bytes, NUL-terminated). The name
 * hashed is base_id, a NUL byte, event_id, so no two pairs share a name. */
void event_public_id(const char *base_id, const char *event_id, char out[37]);

/* 1 when s is a UUID in its 36-character text form (any case). */
int event_public_id_valid(const char *s);

#endif
