/*
 * The billing e-mails: composing one bill's RFC 5322 message (mail_message.c,
 * pure) and the sender backends the dispatcher hands it to (mail_send.c):
 * SMTP through libcurl, or a spool directory of .eml files when no SMTP
 * server is configured. One e-mail per bill, so every message carries a
 * Message-ID derived from its bill: a copy sent again after a crash is
 * recognisable downstream, and the spool file of a resend replaces the first.
 *
 * Messages are text/plain in UTF-8 with a quoted-printable body. Not 8bit:
 * libcurl never declares BODY=8BITMIME, so 8-bit data would break RFC 6152 on
 * a strict relay, and quoted-printable also bounds every line to 76 bytes
 * whatever the slip's lines are, while an ASCII slip still reads as itself.
 * Every line ends in CRLF; no header line passes 998 bytes (long ones fold
 * near 78).
 *
 * Errors of mail_send, and what the dispatcher should do about them:
 *   RPCQ_UNAVAILABLE        temporary: retry this message later (no server,
 *                           connection refused or lost, a timeout, a 4xx
 *                           reply before RCPT TO, a spool write that failed
 *                           for lack of space or an I/O error); the next
 *                           message would meet the same.
 *   RPCQ_FAILED_PRECONDITION  permanent for this message: the server refused
 *                           its recipient (5xx to RCPT TO) or the message
 *                           itself (5xx to DATA or to its end). Sending it
 *                           again gives the same answer.
 *   RPCQ_INVALID_ARGUMENT   permanent: the envelope or message given is not
 *                           sendable (an address that is not a plain ASCII
 *                           addr-spec, a bad spool key, an empty message);
 *                           nothing was sent.
 *   RPCQ_PERMISSION_DENIED  the sender as configured is refused, not this
 *                           message: 5xx to MAIL FROM, login refused, TLS
 *                           required but not offered or the certificate not
 *                           trusted, a spool directory not writable. Every
 *                           message fails alike until the configuration is
 *                           fixed, so do not count it against the message
 *                           (back off and log).
 *   RPCQ_RESOURCE_EXHAUSTED temporary for this message only: a 4xx to RCPT TO
 *                           or DATA (greylisting, a full mailbox), or out of
 *                           memory. Retry it later; the next may go now.
 * mail_error_is_temporary says which of them are worth retrying.
 */
#ifndef RPCQ_BILLING_MAIL_H
#define RPCQ_BILLING_MAIL_H

#include <stddef.h>
#include <stdint.h>

#include <rpcq/error.h>

#include "address.h"
#include "strbuf.h"

/* The From mailbox when none is configured. */
#define MAIL_DEFAULT_FROM "rpcq Billing <billing@localhost>"

/* Room for a message key ("bill-..." with its NUL) and a whole Message-ID
 * ("<bill-...@domain>" with its NUL). */
#define MAIL_KEY_MAX 224
#define MAIL_KEY_LIMIT 200 /* the longest key mail_message_key makes and the spool takes */
#define MAIL_MESSAGE_ID_MAX 512

/*
 * Composing (mail_message.c). Pure functions: no I/O, no clock, no locale;
 * thread-safe.
 */

/* One bill's e-mail. Strings are UTF-8, borrowed for the call. */
typedef struct mail_message {
	const char *from;    /* From: "Display Name <addr>" or "addr"; NULL: MAIL_DEFAULT_FROM */
	const char *to_name; /* the debtor's name (any UTF-8); NULL or "": the address alone */
	const char *to_addr; /* the debtor's address: an ASCII addr-spec */
	const char *subject; /* NULL: "Your bill for debt <debt_id>" */
	const char *debt_id; /* names the debt in the default subject */
	const char *id;	     /* the bill's id for the Message-ID (its debtId or bill number); NULL: debt_id */
	const char *domain;  /* the Message-ID's domain; NULL: the From address's, or "localhost" */
	/* The Message-ID to write as it is ("<...@...>", as mail_message_id made it
	 * when the bill was made and billing_notifications.message_id keeps it);
	 * NULL: made from id and domain (mail_message_id). A resend must carry the
	 * first send's id whatever the From configured meanwhile, so the
	 * dispatcher passes the stored one. */
	const char *message_id;
	int64_t date;	  /* Date:, in seconds since the epoch; written in UTC (+0000) */
	const char *body; /* the rendered slip; LF or CRLF line ends */
	size_t body_len;
} mail_message;

/* Appends the whole message to out: headers From, To, Subject, Date,
 * Message-ID, MIME-Version, Content-Type, Content-Transfer-Encoding, a blank
 * line, the body in quoted-printable ending in CRLF (a body without a final
 * line end gains one). Display names and subjects that are not plain ASCII
 * atoms are written as quoted strings (ASCII with specials) or RFC 2047
 * encoded-words (anything else); control characters in them become spaces.
 * INVALID_ARGUMENT when a text is not valid UTF-8, to_addr is not an
 * address (mail_addr_valid), from has none, or message_id is given and is
 * not "<" dot-atom-text "@" dot-atom-text ">" of less than
 * MAIL_MESSAGE_ID_MAX bytes; RESOURCE_EXHAUSTED when out of memory. On
 * failure out may hold part of a message: the caller truncates. */
rpcq_status mail_compose(const mail_message *m, strbuf *out, rpcq_error *err) RPCQ_NODISCARD;

/* The message key: "bill-" and the bill's id (m->id, else m->debt_id) with
 * every byte other than [A-Za-z0-9_-] and inner single dots written =XX
 * (uppercase hex), so that it is dot-atom-text (a valid Message-ID left part)
 * and a safe file name, and distinct ids give distinct keys. An id whose key
 * would pass MAIL_KEY_LIMIT bytes keeps its first part and ends in "==" and 16 hex
 * digits of a 64-bit hash of the whole id. The spool backend names the
 * file after it. buf holds MAIL_KEY_MAX bytes; returns the key's length. */
size_t mail_message_key(const mail_message *m, char *buf);

/* The Message-ID mail_compose writes, angle brackets included:
 * "<" key "@" domain ">", the domain escaped like the key. buf holds
 * MAIL_MESSAGE_ID_MAX bytes; returns its length. */
size_t mail_message_id(const mail_message *m, char *buf);

/* 1 if a (NUL-terminated) is a recipient that mail_compose and mail_send
 * take: mail_addr_check(a, strlen(a), 1). */
int mail_addr_valid(const char *a);

/* The addr-spec of a mailbox ("Name <a@b>" → "a@b", "a@b" → "a@b") into buf
 * (NUL-terminated). Returns its length, or 0 when there is none or it does
 * not fit in cap. */
size_t mail_mailbox_addr(const char *mailbox, char *buf, size_t cap);

/*
 * Sending (mail_send.c).
 */

typedef struct mail_sender mail_sender;

typedef struct mail_config {
	/* SMTP server URL; NULL or "": the spool backend.
	 *   smtp://[user:password@]host[:port]            no TLS (port 25)
	 *   smtp+starttls://[user:password@]host[:port]   STARTTLS required (CURLOPT_USE_SSL
	 *                                                 CURLUSESSL_ALL): a server that does not
	 *                                                 offer it is PERMISSION_DENIED
	 *   smtps://[user:password@]host[:port]           TLS from the first byte (port 465)
	 * User and password (percent-encoded) log in with whatever AUTH mechanism the server
	 * offers; over smtp:// they cross the network in clear. Over TLS the server's
	 * certificate is always verified, chain and name (an IP address in the URL must be an
	 * IP SAN of it), against ca_file or else the system's CA store. */
	const char *smtp_url;
	const char *ca_file;	/* PEM CA bundle, the only one trusted (CURLOPT_CAINFO); NULL or "": the system's */
	const char *spool_dir;	/* the spool backend's directory (created if missing, with its parents) */
	const char *from;	/* the From mailbox; its address is the default MAIL FROM; NULL: MAIL_DEFAULT_FROM */
	int connect_timeout_ms; /* SMTP: connecting, TLS and the greeting; 0: 10000 */
	int timeout_ms;		/* SMTP: one whole mail_send, connecting included; 0: 30000 */
} mail_config;

/* The SMTP envelope of one message. Strings borrowed for the call. */
typedef struct mail_envelope {
	const char *from; /* MAIL FROM addr-spec; NULL: the configured From's address */
	const char *to;	  /* RCPT TO addr-spec: the one recipient */
	const char *key;  /* mail_message_key of the message: the spool file's name (SMTP ignores it) */
} mail_envelope;

/* Makes a sender from cfg: SMTP when cfg->smtp_url is set, else the spool.
 * Connects to nothing yet (the first mail_send does); the spool directory is
 * created here, and temporary files that a crashed writer left in it more
 * than an hour ago are removed. Calls ingest_global_init (libcurl's global
 * init, once per process). Sets *out only on success. INVALID_ARGUMENT for a
 * URL that does not parse or has another scheme, neither URL nor spool
 * directory, a From without an address, or a CA file that cannot be read;
 * PERMISSION_DENIED or UNAVAILABLE when the spool directory cannot be made;
 * RESOURCE_EXHAUSTED when out of memory. Does not block on the network. */
rpcq_status mail_sender_create(mail_sender **out, const mail_config *cfg, rpcq_error *err) RPCQ_NODISCARD;

/* Sends message[0..len) (a whole RFC 5322 message with CRLF line ends, as
 * mail_compose makes it) to env->to.
 * SMTP: one transaction (MAIL FROM, RCPT TO, DATA) on the sender's
 * connection, opened by the first call and kept for the next ones (a
 * dispatcher sends many in a row); a connection that the server closed
 * meanwhile is found dead and replaced, once, before anything of the
 * message was accepted. OK once the server has answered 250 to the end of
 * the data, i.e. it has taken responsibility for the message.
 * Spool: writes <spool_dir>/<env->key>.eml atomically (a temporary file in
 * the same directory, fsync, rename, fsync of the directory), so a resend
 * of the same message replaces the file and readers never see half of one.
 * OK once the file and its name are on disk.
 * Errors as listed atop this file; err's message names the server's reply
 * ("RCPT TO <a@b>: 550 ...") or the cause, never the password. Blocks for at
 * most cfg->timeout_ms (SMTP) or the disk's time (spool). Only the thread
 * that uses the sender may call it: a sender is not thread-safe (one per
 * dispatcher thread). */
rpcq_status mail_send(mail_sender *s, const mail_envelope *env, const char *message, size_t len,
		      rpcq_error *err) RPCQ_NODISCARD;

/* "smtp://host:port" (credentials left out) or "spool /dir", for logs.
 * Valid while the sender lives. */
const char *mail_sender_describe(const mail_sender *s);

/* Closes the connection (QUIT) and frees. NULL is a no-op. May block up to
 * the connect timeout on a server that does not answer QUIT. */
void mail_sender_destroy(mail_sender *s);

/* 1 if a mail_send failure with this status may succeed later unchanged
 * (UNAVAILABLE, RESOURCE_EXHAUSTED, PERMISSION_DENIED: the message is not at
 * fault), 0 if the message itself will never go (FAILED_PRECONDITION,
 * INVALID_ARGUMENT and anything else). */
int mail_error_is_temporary(rpcq_status code);

/* The longest wait between two attempts at an e-mail: an hour. */
#define MAIL_RETRY_MAX_MS 3600000

/* The wait after the attempts-th failed attempt at an e-mail (attempts
 * from 1) before the next: base_ms doubled attempts - 1 times, at most
 * MAIL_RETRY_MAX_MS, less a jitter of up to a third of it (jitter % (d/3+1),
 * jitter from the caller's generator) so that dispatchers that failed
 * together do not retry in step. Pure; base_ms >= 0, attempts >= 1. */
long long mail_retry_delay_ms(int base_ms, int attempts, unsigned jitter);

#endif
