/*
 * The sender backends of the billing e-mails (mail.h): SMTP through one
 * libcurl easy handle per sender, which keeps its connection between
 * messages because a dispatcher sends many in a row, and the spool, which
 * writes each message as <dir>/<key>.eml atomically so that a resend after a
 * crash replaces the file instead of adding a second one. Replies and
 * errnos become the statuses mail.h lists here and nowhere else.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include <rpcq/alloc.h>

#include "ingest.h"
#include "mail.h"

#define CONNECT_TIMEOUT_MS 10000
#define TIMEOUT_MS 30000
#define STALE_TMP_S 3600 /* a temporary spool file this old belongs to a writer that died */

struct mail_sender {
	int smtp;
	char *shown; /* describe(): the URL without credentials, or "spool DIR" */
	char from_addr[256];
	/* SMTP */
	CURL *h;
	char *url; /* what curl connects to (credentials included) */
	long use_ssl;
	int connect_timeout_ms, timeout_ms;
	char curl_err[CURL_ERROR_SIZE];
	/* The transaction under way, for mapping its failure. */
	const char *data;
	size_t len, off;
	char last_cmd[8];     /* "MAIL", "RCPT", "DATA", "AUTH", ... the last command sent but QUIT */
	char last_reply[256]; /* the server's last reply line, printable */
	char fail_cmd[8];     /* the command that the first 4xx or 5xx reply answered */
	char fail_reply[256]; /* that reply (libcurl's QUIT afterwards must not hide it) */
	/* spool */
	char *dir;
	unsigned long seq;
};

/* Debug callback: remembers the last command sent, the last reply line and
 * the first refusal (the only way libcurl lets a caller see the text of a
 * refusal, and which command it answered). */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
	(void)h;
	mail_sender *s = arg;
	if (type == CURLINFO_HEADER_OUT) {
		size_t n = 0;
		while (n < size && n < sizeof(s->last_cmd) - 1 && data[n] >= 'A' && data[n] <= 'Z')
			n++;
		if (n > 0 && !(n == 4 && memcmp(data, "QUIT", 4) == 0)) {
			memcpy(s->last_cmd, data, n);
			s->last_cmd[n] = '\0';
		}
	} else if (type == CURLINFO_HEADER_IN) {
		size_t n = 0;
		for (size_t i = 0; i < size && n < sizeof(s->last_reply) - 1; i++) {
			char c = data[i];
			if (c == '\r' || c == '\n')
				break;
			s->last_reply[n++] = c >= 0x20 && c < 0x7f ? c : '?';
		}
		if (n > 0)
			s->last_reply[n] = '\0';
		if (n > 0 && (s->last_reply[0] == '4' || s->last_reply[0] == '5') && s->fail_reply[0] == '\0') {
			memcpy(s->fail_reply, s->last_reply, n + 1);
			memcpy(s->fail_cmd, s->last_cmd, sizeof(s->fail_cmd));
		}
	}
	return 0;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *arg)
{
	mail_sender *s = arg;
	size_t n = size * nitems;
	if (n > s->len - s->off)
		n = s->len - s->off;
	memcpy(buf, s->data + s->off, n);
	s->off += n;
	return n;
}

/* mkdir -p. 0, or -1 with errno. */
static int make_dirs(const char *path)
{
	char p[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			return -1;
		p[i] = c;
	}
	struct stat st;
	if (stat(path, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* What a failed file operation means for the dispatcher (mail.h). */
static rpcq_status errno_status(int e)
{
	switch (e) {
	case EACCES:
	case EPERM:
	case EROFS:
	case ENOTDIR:
	case ENAMETOOLONG:
		return RPCQ_PERMISSION_DENIED;
	case ENOMEM:
		return RPCQ_RESOURCE_EXHAUSTED;
	default: /* ENOSPC, EDQUOT, EIO, EMFILE, ...: may pass */
		return RPCQ_UNAVAILABLE;
	}
}

/* Removes temporary files (".<key>.<pid>-<n>.tmp") that writers which died
 * left behind, leaving the younger ones of writers still at work. */
static void remove_stale_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	time_t now = time(NULL);
	struct dirent *ent;
	while ((ent = readdir(d)) != NULL) {
		size_t n = strlen(ent->d_name);
		if (ent->d_name[0] != '.' || n < 5 || strcmp(ent->d_name + n - 4, ".tmp") != 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    now - st.st_mtime > STALE_TMP_S)
			(void)unlinkat(dirfd(d), ent->d_name, 0);
	}
	closedir(d);
}

static rpcq_status spool_create(mail_sender *s, const char *dir, rpcq_error *err)
{
	s->dir = rpcq_strdup(dir);
	size_t n = strlen(dir) + 8;
	s->shown = rpcq_alloc(n);
	if (s->dir == NULL || s->shown == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	snprintf(s->shown, n, "spool %s", dir);
	if (make_dirs(dir) != 0) {
		int e = errno;
		return rpcq_error_set(err, errno_status(e), "mail spool %s: %s", dir, strerror(e));
	}
	remove_stale_tmp(dir);
	return RPCQ_OK;
}

static rpcq_status smtp_create(mail_sender *s, const mail_config *cfg, rpcq_error *err)
{
	rpcq_status result = RPCQ_INVALID_ARGUMENT;
	char *scheme = NULL, *url = NULL, *shown = NULL;
	CURLU *u = curl_url();
	if (u == NULL) {
		result = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, cfg->smtp_url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		result = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "SMTP URL does not parse");
		goto out;
	}
	if (strcmp(scheme, "smtp+starttls") == 0) {
		s->use_ssl = CURLUSESSL_ALL;
		if (curl_url_set(u, CURLUPART_SCHEME, "smtp", 0) != CURLUE_OK) {
			result = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "SMTP URL does not parse as smtp://");
			goto out;
		}
	} else if (strcmp(scheme, "smtp") == 0 || strcmp(scheme, "smtps") == 0) {
		s->use_ssl = CURLUSESSL_NONE; /* smtps: TLS from the start, by the scheme itself */
	} else {
		result = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT,
					"SMTP URL scheme %s: smtp://, smtp+starttls:// or smtps:// only", scheme);
		goto out;
	}
	/* The credentials stay out of everything that is shown. */
	if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &shown, 0) != CURLUE_OK) {
		result = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "SMTP URL does not parse");
		goto out;
	}
	char *path = strstr(shown, "://") ? strchr(strstr(shown, "://") + 3, '/') : NULL;
	if (path && path[1] == '\0')
		*path = '\0'; /* curl's "smtp://host:port/" as it was given: "smtp://host:port" */
	if (s->use_ssl == CURLUSESSL_ALL && strncmp(shown, "smtp://", 7) == 0) {
		size_t n = strlen(shown) + 16;
		s->shown = rpcq_alloc(n);
		if (s->shown)
			snprintf(s->shown, n, "smtp+starttls://%s", shown + 7);
	} else {
		s->shown = rpcq_strdup(shown);
	}
	s->url = rpcq_strdup(url);
	if (s->shown == NULL || s->url == NULL) {
		result = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}

	/* A CA file that is not there fails here, when rpcqd starts, rather
	 * than as every e-mail's TLS handshake later. */
	if (cfg->ca_file && cfg->ca_file[0]) {
		FILE *f = fopen(cfg->ca_file, "r");
		if (f == NULL) {
			result = rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "SMTP CA file %s: %s", cfg->ca_file,
						strerror(errno));
			goto out;
		}
		fclose(f);
	}

	ingest_global_init();
	s->h = curl_easy_init();
	if (s->h == NULL) {
		result = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "cannot create an SMTP client");
		goto out;
	}
	s->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : CONNECT_TIMEOUT_MS;
	s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : TIMEOUT_MS;
	CURL *h = s->h;
	curl_easy_setopt(h, CURLOPT_URL, s->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(h, CURLOPT_USE_SSL, s->use_ssl);
	/* Verification stays on (libcurl's default: chain and host name); a
	 * private CA replaces the system's store instead of joining it, so
	 * that --smtp-ca-file names everything that is trusted. */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cfg->ca_file && cfg->ca_file[0]) {
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h, CURLOPT_READDATA, s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->curl_err);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
	curl_easy_setopt(h, CURLOPT_DEBUGDATA, s);
	result = RPCQ_OK;
out:
	curl_free(shown);
	curl_free(url);
	curl_free(scheme);
	curl_url_cleanup(u);
	return result;
}

rpcq_status mail_sender_create(mail_sender **out, const mail_config *cfg, rpcq_error *err)
{
	int smtp = cfg->smtp_url && cfg->smtp_url[0];
	if (!smtp && !(cfg->spool_dir && cfg->spool_dir[0]))
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "mail: neither an SMTP URL nor a spool directory");
	mail_sender *s = rpcq_calloc(1, sizeof(*s));
	if (s == NULL)
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
	s->smtp = smtp;
	const char *from = cfg->from ? cfg->from : MAIL_DEFAULT_FROM;
	if (mail_mailbox_addr(from, s->from_addr, sizeof(s->from_addr)) == 0 ||
	    !mail_addr_check(s->from_addr, strlen(s->from_addr), 0)) {
		mail_sender_destroy(s);
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "mail From \"%.200s\" has no address", from);
	}
	rpcq_status st = smtp ? smtp_create(s, cfg, err) : spool_create(s, cfg->spool_dir, err);
	if (st != RPCQ_OK) {
		mail_sender_destroy(s);
		return st;
	}
	*out = s;
	return RPCQ_OK;
}

/* The status of a failed transaction, from curl's code and the server's
 * last reply (mail.h lists what each means). */
static rpcq_status smtp_failure(mail_sender *s, CURLcode rc, const mail_envelope *env, const char *from,
				rpcq_error *err)
{
	const char *r = s->fail_reply[0] ? s->fail_reply : s->last_reply;
	int code = r[0] >= '1' && r[0] <= '5' && r[1] >= '0' && r[1] <= '9' && r[2] >= '0' && r[2] <= '9'
			   ? (r[0] - '0') * 100 + (r[1] - '0') * 10 + (r[2] - '0')
			   : 0;
	const char *what = s->fail_reply[0] ? s->fail_cmd : s->last_cmd;
	char stage[300];
	if (strcmp(what, "MAIL") == 0)
		snprintf(stage, sizeof(stage), "MAIL FROM <%s>", from);
	else if (strcmp(what, "RCPT") == 0)
		snprintf(stage, sizeof(stage), "RCPT TO <%s>", env->to);
	else
		snprintf(stage, sizeof(stage), "%s", what[0] ? what : "connect");

	if (rc == CURLE_LOGIN_DENIED)
		return rpcq_error_set(err, RPCQ_PERMISSION_DENIED, "SMTP %s: login refused: %s", s->shown, r);
	if (code >= 400 && code < 500) {
		/* Deferred: at RCPT TO or DATA it is this message's (greylisting,
		 * a full mailbox), and the next one may go; before, the server's. */
		rpcq_status st = strcmp(what, "RCPT") == 0 || strcmp(what, "DATA") == 0 ? RPCQ_RESOURCE_EXHAUSTED
											: RPCQ_UNAVAILABLE;
		return rpcq_error_set(err, st, "SMTP %s: %s: %s", s->shown, stage, r);
	}
	if (code >= 500) {
		/* The recipient or this message refused; anything before that is
		 * a refusal of the sender (its address, its login, the client). */
		rpcq_status st = strcmp(what, "RCPT") == 0 || strcmp(what, "DATA") == 0 ? RPCQ_FAILED_PRECONDITION
											: RPCQ_PERMISSION_DENIED;
		return rpcq_error_set(err, st, "SMTP %s: %s: %s", s->shown, stage, r);
	}
	const char *why = s->curl_err[0] ? s->curl_err : curl_easy_strerror(rc);
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return rpcq_error_set(err, RPCQ_UNAVAILABLE, "SMTP %s: %s: no answer within %d ms", s->shown, stage,
				      s->timeout_ms);
	case CURLE_OUT_OF_MEMORY:
		return rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "SMTP %s: out of memory", s->shown);
	case CURLE_USE_SSL_FAILED:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return rpcq_error_set(err, RPCQ_PERMISSION_DENIED, "SMTP %s: %s", s->shown, why);
	default: /* refused, reset, closed, unresolved, a TLS handshake cut short: may pass */
		return rpcq_error_set(err, RPCQ_UNAVAILABLE, "SMTP %s: %s: %s", s->shown, stage, why);
	}
}

static rpcq_status smtp_send(mail_sender *s, const mail_envelope *env, const char *message, size_t len, rpcq_error *err)
{
	rpcq_status result = RPCQ_RESOURCE_EXHAUSTED;
	const char *from = env->from ? env->from : s->from_addr;
	char mail_from[300], rcpt[300];
	snprintf(mail_from, sizeof(mail_from), "<%s>", from);
	snprintf(rcpt, sizeof(rcpt), "<%s>", env->to);
	struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
	if (rcpts == NULL) {
		result = rpcq_error_set(err, RPCQ_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	curl_easy_setopt(s->h, CURLOPT_MAIL_FROM, mail_from);
	curl_easy_setopt(s->h, CURLOPT_MAIL_RCPT, rcpts);
	curl_easy_setopt(s->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	CURLcode rc = CURLE_OK;
	for (int attempt = 0; attempt < 2; attempt++) {
		s->data = message;
		s->len = len;
		s->off = 0;
		s->curl_err[0] = s->last_cmd[0] = s->last_reply[0] = s->fail_cmd[0] = s->fail_reply[0] = '\0';
		curl_easy_setopt(s->h, CURLOPT_FRESH_CONNECT, attempt > 0 ? 1L : 0L);
		rc = curl_easy_perform(s->h);
		if (rc == CURLE_OK)
			break;
		/* A kept connection that the server had closed, found out only by
		 * the first command: not one reply came, so nothing of this
		 * message was taken, and a new connection may try at once. */
		long connects = 1;
		curl_easy_getinfo(s->h, CURLINFO_NUM_CONNECTS, &connects);
		if (connects != 0 || s->last_reply[0] != '\0' || rc == CURLE_OPERATION_TIMEDOUT)
			break;
	}
	result = rc == CURLE_OK ? RPCQ_OK : smtp_failure(s, rc, env, from, err);
out:
	curl_easy_setopt(s->h, CURLOPT_MAIL_RCPT, NULL);
	curl_slist_free_all(rcpts);
	s->data = NULL;
	return result;
}

static int valid_key(const char *key)
{
	size_t n = strlen(key);
	if (n == 0 || n > MAIL_KEY_LIMIT || key[0] == '.')
		return 0;
	for (const char *p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      strchr("=._-", *p) != NULL))
			return 0;
	return 1;
}

/* Writes the whole buffer to a new file at path and fsyncs it. 0, or -1
 * with errno (and no file left behind). */
static int write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlink(path);
	errno = e;
	return -1;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rv = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rv;
}

static rpcq_status spool_send(mail_sender *s, const mail_envelope *env, const char *message, size_t len,
			      rpcq_error *err)
{
	if (env->key == NULL || !valid_key(env->key))
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "spool key \"%.200s\" is not a message key",
				      env->key ? env->key : "");
	char tmp[4096], path[4096];
	int n1 = snprintf(tmp, sizeof(tmp), "%s/.%s.%ld-%lu.tmp", s->dir, env->key, (long)getpid(), ++s->seq);
	int n2 = snprintf(path, sizeof(path), "%s/%s.eml", s->dir, env->key);
	if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(tmp) || (size_t)n2 >= sizeof(path))
		return rpcq_error_set(err, RPCQ_PERMISSION_DENIED, "mail spool %s: path too long", s->dir);
	int rv = write_file(tmp, message, len);
	if (rv != 0 && errno == ENOENT && make_dirs(s->dir) == 0) /* someone removed the directory */
		rv = write_file(tmp, message, len);
	if (rv != 0) {
		int e = errno;
		return rpcq_error_set(err, errno_status(e), "mail spool %s: writing %s: %s", s->dir, tmp, strerror(e));
	}
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return rpcq_error_set(err, errno_status(e), "mail spool %s: renaming to %s: %s", s->dir, path,
				      strerror(e));
	}
	if (sync_dir(s->dir) != 0) {
		int e = errno;
		return rpcq_error_set(err, errno_status(e), "mail spool %s: fsync: %s", s->dir, strerror(e));
	}
	return RPCQ_OK;
}

rpcq_status mail_send(mail_sender *s, const mail_envelope *env, const char *message, size_t len, rpcq_error *err)
{
	if (env->to == NULL || !mail_addr_valid(env->to))
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "recipient \"%.200s\" is not an address",
				      env->to ? env->to : "");
	if (env->from && !mail_addr_check(env->from, strlen(env->from), 0))
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "sender \"%.200s\" is not an address", env->from);
	if (message == NULL || len == 0)
		return rpcq_error_set(err, RPCQ_INVALID_ARGUMENT, "empty message");
	return s->smtp ? smtp_send(s, env, message, len, err) : spool_send(s, env, message, len, err);
}

const char *mail_sender_describe(const mail_sender *s)
{
	return s->shown ? s->shown : "mail";
}

void mail_sender_destroy(mail_sender *s)
{
	if (s == NULL)
		return;
	if (s->h)
		curl_easy_cleanup(s->h);
	rpcq_free(s->url);
	rpcq_free(s->shown);
	rpcq_free(s->dir);
	rpcq_free(s);
}
