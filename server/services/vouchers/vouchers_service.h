/*
 * rpcq.vouchers.VoucherService inside rpcqd: the service definition that
 * services.c registers, and what its files share. import.c serves the
 * imports (StartImport, ImportChunk, GetImport, ListRejections) and apply.c
 * merges a complete import into the stock (FinishImport); reports.c answers
 * the reports and issue.c IssueVouchers. Everything is in PostgreSQL
 * (db/migrations/0004_vouchers.sql), so any process may take any call of an
 * import; the only state in the process is issue.c's queue of issues that
 * wait for a batch.
 */
#ifndef RPCQ_VOUCHERS_SERVICE_H
#define RPCQ_VOUCHERS_SERVICE_H

#include <stdint.h>

#include "rows.h"
#include "rpcq/vouchers.pb-c.h"
#include "service.h"

#define VOUCHERS_TOPIC "vouchers.issued"
/* Rejections an Import message carries (ListRejections pages the rest). */
#define VOUCHERS_FIRST_REJECTIONS 100

extern const service_def vouchers_service;

/* import.c */
rpcq_status vouchers_start_import(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status vouchers_import_chunk(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status vouchers_get_import(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status vouchers_list_rejections(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
/* The import id of a request ("42"), checked; the call fails when it is not one. */
rpcq_status vouchers_import_id(call *c, const char *text, int64_t *id) RPCQ_NODISCARD;
/* The Import message of import id as stored now (NOT_FOUND when there is
 * none), in the call arena. */
rpcq_status vouchers_import_load(call *c, int64_t id, Rpcq__Vouchers__Import **out) RPCQ_NODISCARD;

/* apply.c */
rpcq_status vouchers_finish_import(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);

/* reports.c */
rpcq_status vouchers_list_vouchers(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status vouchers_top_customers(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status vouchers_count_unused(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);

/* issue.c: IssueVouchers, and the batches it makes (the service's state). */
typedef struct vouchers_issuer vouchers_issuer;
rpcq_status vouchers_issuer_create(vouchers_issuer **out, rpcq_error *err) RPCQ_NODISCARD;
void vouchers_issuer_destroy(vouchers_issuer *is);
rpcq_status vouchers_issue(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);

/* Checks an id given in a request (customer_id, idempotency key): present
 * when required, at most max bytes, UTF-8 without control characters; the
 * call fails naming the field otherwise. */
rpcq_status vouchers_check_text(call *c, const char *field, const char *s, size_t max, int required) RPCQ_NODISCARD;

/* A text value of a result row as an integer (0 for NULL). */
int64_t vouchers_int(const PGresult *res, int row, int col);

#endif
