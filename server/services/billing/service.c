/*
 * The billing service's definition: its method table, and the start/stop
 * hooks that own its background work: the sender backend, the biller and
 * the dispatcher threads (unless --billing-schedule is 0), and a publisher
 * listener that wakes them when another process's import makes progress.
 */
#include <string.h>

#include <rpcq/alloc.h>

#include "billing_service.h"
#include "entropy.h"
#include "ingest.h"
#include "publisher.h"
#include "upload_ahead.h"

static int biller_run(billing_state *st)
{
	return billing_bill_round(st);
}

static int mailer_run(billing_state *st)
{
	return billing_mail_round(st);
}

/* Progress of any import (of any process) may mean bills or e-mails to
 * do: wake both loops. On the publisher's thread: only signals. */
static void on_progress(void *arg, const Rpcq__StreamMessage *m)
{
	billing_state *st = arg;
	if (strncmp(m->topic, BILLING_TOPIC_PREFIX, strlen(BILLING_TOPIC_PREFIX)) != 0)
		return;
	billing_worker_wake(st->biller);
	billing_worker_wake(st->mailer);
}

static void stop(void *state)
{
	billing_state *st = state;
	if (st == NULL)
		return;
	atomic_store(&st->stopping, 1);
	if (st->listening)
		publisher_remove_listener(server_publisher(st->srv), on_progress, st);
	billing_worker_stop(st->biller);
	billing_worker_stop(st->mailer);
	billing_mailer_destroy(st);
	upload_ahead_destroy(st->ahead);
	rpcq_free(st);
}

static rpcq_status start(server *srv, void **state, rpcq_error *err)
{
	billing_state *st = rpcq_calloc(1, sizeof(*st));
	if (st == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	st->srv = srv;
	st->cfg = server_config(srv);
	if (entropy_hex(st->message_tag, (sizeof(st->message_tag) - 1) / 2) != 0) {
		rpcq_free(st);
		return rpcq_error_set(err, RPCQ_INTERNAL, "billing: the system has no randomness for Message-IDs");
	}
	st->ahead = upload_ahead_create(); /* NULL: chunks are simply not read ahead */
	*state = st;
	if (st->cfg->billing_schedule_s == 0)
		return RPCQ_OK;
	ingest_global_init(); /* libcurl, for SMTP */
	rpcq_status s = billing_mailer_create(st, err);
	/* The mailer first: the biller's thread wakes it through st->mailer,
	 * which must be set before that thread starts (TSan saw the biller read
	 * it while this thread still wrote it). */
	if (s == RPCQ_OK)
		s = billing_worker_start(&st->mailer, "billing-mail", mailer_run, st, st->cfg->billing_schedule_s, err);
	if (s == RPCQ_OK)
		s = billing_worker_start(&st->biller, "billing-bills", biller_run, st, st->cfg->billing_schedule_s,
					 err);
	if (s == RPCQ_OK && publisher_add_listener(server_publisher(srv), on_progress, st) == 0)
		st->listening = 1;
	return s;
}

static const method_def methods[] = {
	{"StartImport", billing_start_import},
	{"ImportChunk", billing_import_chunk},
	{"GetImport", billing_get_import},
	{"ListRejections", billing_list_rejections},
	{"ListFailedEmails", billing_list_failed_emails},
	{"RetryFailedEmails", billing_retry_failed_emails},
	{"GetBill", billing_get_bill},
	{"RecordPayment", billing_record_payment},
	{NULL, NULL},
};

const service_def billing_service = {
	.descriptor = &rpcq__billing__billing_service__descriptor,
	.methods = methods,
	.start = start,
	.stop = stop,
};
