/*
 * rpcq.billing.BillingService inside rpcqd: the service definition that
 * services.c registers, and what its files share. import.c takes the
 * chunks of an import and merges each chunk's rows into the debts;
 * bills.c is the biller (claims queued debts, writes their bills and
 * e-mails into the outbox) and GetBill; mailer.c is the dispatcher (claims
 * due e-mails and sends them through the sender backend); payments.c is
 * RecordPayment; outbox.c is RetryFailedEmails. The biller and the
 * dispatcher run on threads of their own in every process (worker.c), woken
 * by this process's imports and by the other processes' progress messages,
 * and every --billing-schedule seconds.
 */
#ifndef RPCQ_BILLING_SERVICE_H
#define RPCQ_BILLING_SERVICE_H

#include <stdatomic.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "boleto.h"
#include "debt.h"
#include "rpcq/billing.pb-c.h"
#include "server.h"
#include "service.h"
#include "strbuf.h"

#define BILLING_TOPIC_PREFIX "billing.imports."
#define BILLING_FIRST_REJECTIONS 100
#define BILLING_FIRST_FAILED_EMAILS 100
#define BILLING_KEY_MAX 128
#define BILLING_FILE_NAME_MAX 200

extern const service_def billing_service;

/* A background loop (worker.c): run() until it reports no more work, then
 * sleep until woken or the schedule's period passes. */
typedef struct billing_worker billing_worker;
typedef struct billing_state billing_state;
/* Does one round of work; returns 1 when there may be more right away. */
typedef int (*billing_work_fn)(billing_state *st);
rpcq_status billing_worker_start(billing_worker **out, const char *name, billing_work_fn fn, billing_state *st,
				 int period_s, rpcq_error *err) RPCQ_NODISCARD;
void billing_worker_wake(billing_worker *w);
void billing_worker_stop(billing_worker *w);

struct billing_state {
	server *srv;
	const rpcq_config *cfg;
	billing_worker *biller;
	billing_worker *mailer;
	struct mailer_ctx *mail;    /* the dispatcher's sender (mailer.c) */
	struct upload_ahead *ahead; /* chunks read ahead (import.c; NULL: none) */
	/* This process's part of the Message-IDs of the bills it makes
	 * (bills.c): 16 random hex digits, new at every start. */
	char message_tag[17];
	atomic_int stopping;
	int listening;
};

/* import.c */
rpcq_status billing_start_import(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status billing_import_chunk(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status billing_get_import(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status billing_list_rejections(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
rpcq_status billing_list_failed_emails(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);
/* The import id of a request, checked (the call fails when it is not one). */
rpcq_status billing_import_id(call *c, const char *text, int64_t *id) RPCQ_NODISCARD;
/* The Import message of id as stored (in arena ar), reading on db; with
 * with_reasons, also its first rejections and failed e-mails. */
rpcq_status billing_import_read(dbconn *db, arena *ar, int64_t id, int with_reasons, Rpcq__Billing__Import **out,
				rpcq_error *err) RPCQ_NODISCARD;
/* Appends the import's progress to "billing.imports.<id>" in the
 * transaction open on db. */
rpcq_status billing_publish_progress(dbconn *db, int64_t id, rpcq_error *err) RPCQ_NODISCARD;

/* outbox.c */
rpcq_status billing_retry_failed_emails(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);

/* bills.c */
/* The slip layout new bills are made with (billing_bills.slip_layout). */
#define BILLING_SLIP_LAYOUT 1

/* What a bill is made from: its debt as stored. */
typedef struct billing_bill_source {
	int64_t number; /* the debt's id, the bill number of its boleto */
	const char *debt_id;
	const char *name;
	const char *government_id;
	int64_t amount_cents;
	const char *due_date; /* YYYY-MM-DD */
} billing_bill_source;

/* The boleto of a bill into *b and, when slip is not NULL, its slip in
 * layout (appended): the same bytes every time for the same debt. */
rpcq_status billing_bill_render(const billing_bill_source *src, int layout, boleto *b, strbuf *slip,
				rpcq_error *err) RPCQ_NODISCARD;

/* The slip of the bill of src as a PDF (slip_pdf.h), appended to pdf. */
rpcq_status billing_bill_pdf(const billing_bill_source *src, strbuf *pdf, rpcq_error *err) RPCQ_NODISCARD;

int billing_bill_round(billing_state *st);
rpcq_status billing_get_bill(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);

/* mailer.c */
rpcq_status billing_mailer_create(billing_state *st, rpcq_error *err) RPCQ_NODISCARD;
void billing_mailer_destroy(billing_state *st);
int billing_mail_round(billing_state *st);

/* payments.c */
rpcq_status billing_record_payment(call *c, const ProtobufCMessage *in, ProtobufCMessage **out);

#endif
