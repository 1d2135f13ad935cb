/*-------------------------------------------------------------------------
 *
 * lockbox-notify.c
 *		Delivers lockbox's notifications by e-mail (SMTP) and signed
 *		webhooks (HTTP(S)): claims them with lockbox_claim_notifications,
 *		renders, delivers, and acknowledges each only once the SMTP server or
 *		the webhook endpoint accepted it.  A failed attempt is retried with
 *		exponential backoff; after max_attempts it is failed for good.
 *
 * One process, one database connection, one message at a time.  It LISTENs
 * on channel "lockbox" and also polls, since NOTIFYs sent while it is down
 * are lost.  Two notifiers may run at once: claims never overlap, and every
 * message carries an idempotency key (Message-ID, X-Lockbox-Id) that is the
 * same at every attempt, so a receiver can drop the copy a crash between
 * sending and acknowledging causes.
 *
 * Usage and configuration: lockbox-notify --help, and README "Delivery".
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define NOTIFY_VERSION "1.1"
#define DEFAULT_CONFIG "/etc/lockbox/lockbox-notify.conf"

/* ------------------------------------------------------------------------
 * Growable strings
 * ------------------------------------------------------------------------
 */
typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

static void
buf_reserve(Buf *b, size_t more)
{
	if (b->len + more + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;

		while (b->len + more + 1 > cap)
			cap *= 2;
		b->data = realloc(b->data, cap);
		if (b->data == NULL)
		{
			fprintf(stderr, "lockbox-notify: out of memory\n");
			exit(1);
		}
		b->cap = cap;
	}
}

static void
buf_add(Buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_str(Buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_printf(Buf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
buf_printf(Buf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	buf_reserve(b, n);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

static void
buf_reset(Buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* a JSON string literal */
static void
buf_json(Buf *b, const char *s)
{
	buf_add(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		switch (*p)
		{
			case '"':
				buf_str(b, "\\\"");
				break;
			case '\\':
				buf_str(b, "\\\\");
				break;
			case '\n':
				buf_str(b, "\\n");
				break;
			case '\r':
				buf_str(b, "\\r");
				break;
			case '\t':
				buf_str(b, "\\t");
				break;
			default:
				if (*p < 0x20)
					buf_printf(b, "\\u%04x", *p);
				else
					buf_add(b, (const char *) p, 1);
		}
	}
	buf_add(b, "\"", 1);
}

/* a header value: control characters (CR, LF above all) become spaces */
static void
buf_header_value(Buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		char		c = (*p < 0x20 || *p == 0x7f) ? ' ' : (char) *p;

		buf_add(b, &c, 1);
	}
}

/* ------------------------------------------------------------------------
 * Logging: one line per event on stderr (the journal, under systemd)
 * ------------------------------------------------------------------------
 */
static int	verbose = 0;

static void
logmsg(const char *level, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
logmsg(const char *level, const char *fmt,...)
{
	struct timeval tv;
	struct tm	tm;
	char		ts[64];
	va_list		ap;

	if (strcmp(level, "DEBUG") == 0 && !verbose)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "%s.%03d UTC lockbox-notify[%d] %s:  ", ts,
			(int) (tv.tv_usec / 1000), (int) getpid(), level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* ------------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------------
 */
#define MAX_SECRETS 256

typedef struct Secret
{
	char	   *tenant;			/* NULL: the default secret */
	char	   *secret;
} Secret;

typedef struct Config
{
	char	   *conninfo;
	char	   *smtp_url;
	char	   *smtp_tls;		/* off, try, require */
	char	   *smtp_user;
	char	   *smtp_password;
	char	   *ca_file;
	bool		tls_verify;
	char	   *from;
	char	   *message_id_domain;
	char	   *webhook_format; /* json, slack */
	Secret		secrets[MAX_SECRETS];
	int			nsecrets;
	int			timeout;		/* seconds, per delivery */
	int			connect_timeout;
	int			batch;
	int			poll_interval;
	int			lease;
	int			max_attempts;
	int			retry_base;
	int			retry_max;
} Config;

static Config cfg = {
	.conninfo = "dbname=postgres",
	.smtp_url = NULL,
	.smtp_tls = "try",
	.tls_verify = true,
	.from = NULL,
	.webhook_format = "json",
	.timeout = 10,
	.connect_timeout = 5,
	.batch = 20,
	.poll_interval = 5,
	.lease = 300,
	.max_attempts = 8,
	.retry_base = 10,
	.retry_max = 3600,
};

static char *
trim(char *s)
{
	char	   *e;

	while (isspace((unsigned char) *s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char) e[-1]))
		*--e = '\0';
	return s;
}

static bool
parse_int(const char *file, int line, const char *key, const char *v,
		  int min, int max, int *out)
{
	char	   *end;
	long		n = strtol(v, &end, 10);

	if (*v == '\0' || *end != '\0' || n < min || n > max)
	{
		logmsg("FATAL", "%s:%d: %s must be an integer between %d and %d, not \"%s\"",
			   file, line, key, min, max, v);
		return false;
	}
	*out = (int) n;
	return true;
}

static bool
parse_bool(const char *file, int line, const char *key, const char *v, bool *out)
{
	if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
		strcmp(v, "1") == 0)
		*out = true;
	else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0 ||
			 strcmp(v, "no") == 0 || strcmp(v, "0") == 0)
		*out = false;
	else
	{
		logmsg("FATAL", "%s:%d: %s must be on or off, not \"%s\"", file, line, key, v);
		return false;
	}
	return true;
}

/*
 * key = value lines; '#' starts a comment; a value may be in single quotes
 * (then it may contain '#', and '' is a quote), as in postgresql.conf.
 */
static bool
load_config(const char *file)
{
	FILE	   *f = fopen(file, "r");
	char		raw[8192];
	int			line = 0;

	if (f == NULL)
	{
		logmsg("FATAL", "could not open configuration file \"%s\": %s", file,
			   strerror(errno));
		return false;
	}
	while (fgets(raw, sizeof(raw), f) != NULL)
	{
		char	   *s = raw;
		char	   *eq;
		char	   *key;
		char	   *val;

		line++;
		s = trim(s);
		if (*s == '\0' || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (eq == NULL)
		{
			logmsg("FATAL", "%s:%d: expected key = value", file, line);
			fclose(f);
			return false;
		}
		*eq = '\0';
		key = trim(s);
		val = trim(eq + 1);
		if (*val == '\'')
		{
			char	   *out = val;
			char	   *in = val + 1;

			for (;;)
			{
				if (*in == '\0')
				{
					logmsg("FATAL", "%s:%d: unterminated quoted value", file, line);
					fclose(f);
					return false;
				}
				if (*in == '\'')
				{
					if (in[1] == '\'')
					{
						*out++ = '\'';
						in += 2;
						continue;
					}
					break;
				}
				*out++ = *in++;
			}
			*out = '\0';
		}
		else
		{
			char	   *hash = strchr(val, '#');

			if (hash)
				*hash = '\0';
			val = trim(val);
		}
		val = strdup(val);

		if (strcmp(key, "conninfo") == 0)
			cfg.conninfo = val;
		else if (strcmp(key, "smtp_url") == 0)
			cfg.smtp_url = val;
		else if (strcmp(key, "smtp_tls") == 0)
		{
			if (strcmp(val, "off") != 0 && strcmp(val, "try") != 0 &&
				strcmp(val, "require") != 0)
			{
				logmsg("FATAL", "%s:%d: smtp_tls must be off, try or require", file, line);
				fclose(f);
				return false;
			}
			cfg.smtp_tls = val;
		}
		else if (strcmp(key, "smtp_user") == 0)
			cfg.smtp_user = val;
		else if (strcmp(key, "smtp_password") == 0)
			cfg.smtp_password = val;
		else if (strcmp(key, "ca_file") == 0)
			cfg.ca_file = val;
		else if (strcmp(key, "tls_verify") == 0)
		{
			if (!parse_bool(file, line, key, val, &cfg.tls_verify))
				goto bad;
		}
		else if (strcmp(key, "from") == 0)
			cfg.from = val;
		else if (strcmp(key, "message_id_domain") == 0)
			cfg.message_id_domain = val;
		else if (strcmp(key, "webhook_format") == 0)
		{
			if (strcmp(val, "json") != 0 && strcmp(val, "slack") != 0)
			{
				logmsg("FATAL", "%s:%d: webhook_format must be json or slack", file, line);
				goto bad;
			}
			cfg.webhook_format = val;
		}
		else if (strcmp(key, "webhook_secret") == 0 ||
				 strncmp(key, "webhook_secret.", 15) == 0)
		{
			if (cfg.nsecrets == MAX_SECRETS)
			{
				logmsg("FATAL", "%s:%d: more than %d webhook secrets", file, line, MAX_SECRETS);
				goto bad;
			}
			if (strlen(val) < 16)
			{
				logmsg("FATAL", "%s:%d: a webhook secret must be at least 16 characters", file, line);
				goto bad;
			}
			cfg.secrets[cfg.nsecrets].tenant = key[14] == '.' ? strdup(key + 15) : NULL;
			cfg.secrets[cfg.nsecrets].secret = val;
			cfg.nsecrets++;
		}
		else if (strcmp(key, "timeout") == 0)
		{
			if (!parse_int(file, line, key, val, 1, 600, &cfg.timeout))
				goto bad;
		}
		else if (strcmp(key, "connect_timeout") == 0)
		{
			if (!parse_int(file, line, key, val, 1, 600, &cfg.connect_timeout))
				goto bad;
		}
		else if (strcmp(key, "batch") == 0)
		{
			if (!parse_int(file, line, key, val, 1, 10000, &cfg.batch))
				goto bad;
		}
		else if (strcmp(key, "poll_interval") == 0)
		{
			if (!parse_int(file, line, key, val, 1, 3600, &cfg.poll_interval))
				goto bad;
		}
		else if (strcmp(key, "lease") == 0)
		{
			if (!parse_int(file, line, key, val, 1, 86400, &cfg.lease))
				goto bad;
		}
		else if (strcmp(key, "max_attempts") == 0)
		{
			if (!parse_int(file, line, key, val, 1, 1000, &cfg.max_attempts))
				goto bad;
		}
		else if (strcmp(key, "retry_base") == 0)
		{
			if (!parse_int(file, line, key, val, 1, 86400, &cfg.retry_base))
				goto bad;
		}
		else if (strcmp(key, "retry_max") == 0)
		{
			if (!parse_int(file, line, key, val, 1, 604800, &cfg.retry_max))
				goto bad;
		}
		else
		{
			logmsg("FATAL", "%s:%d: unknown setting \"%s\"", file, line, key);
			goto bad;
		}
	}
	fclose(f);
	if (cfg.smtp_url && cfg.from == NULL)
	{
		logmsg("FATAL", "%s: smtp_url is set but from is not", file);
		return false;
	}
	if (cfg.message_id_domain == NULL)
	{
		const char *at = cfg.from ? strchr(cfg.from, '@') : NULL;

		cfg.message_id_domain = at ? strdup(at + 1) : "lockbox.invalid";
	}
	if ((long) cfg.batch * (cfg.timeout + cfg.connect_timeout) > cfg.lease)
		logmsg("WARNING", "%s: lease (%d s) is shorter than a batch at its slowest "
			   "(batch %d x (timeout %d s + connect_timeout %d s)): another notifier "
			   "may send a claimed message again (under the same idempotency key)",
			   file, cfg.lease, cfg.batch, cfg.timeout, cfg.connect_timeout);
	return true;
bad:
	fclose(f);
	return false;
}

static const char *
secret_for(const char *tenant)
{
	const char *def = NULL;

	for (int i = 0; i < cfg.nsecrets; i++)
	{
		if (cfg.secrets[i].tenant == NULL)
			def = cfg.secrets[i].secret;
		else if (strcmp(cfg.secrets[i].tenant, tenant) == 0)
			return cfg.secrets[i].secret;
	}
	return def;
}

/* ------------------------------------------------------------------------
 * Signals
 * ------------------------------------------------------------------------
 */
static volatile sig_atomic_t stop_requested = 0;

static void
handle_stop(int sig)
{
	stop_requested = 1;
}

/* ------------------------------------------------------------------------
 * One notification, as lockbox.delivery() gives it
 * ------------------------------------------------------------------------
 */
enum
{
	F_ID, F_EVENT, F_RECIPIENT, F_ATTEMPTS, F_REQUEST_ID, F_TENANT,
	F_REQUESTER, F_REASON, F_TICKET, F_TABLES, F_ACCESS, F_DURATION,
	F_STATE, F_CREATED, F_DEADLINE, F_APPROVED_AT, F_ACCESS_ENDS_AT,
	F_CLOSE_REASON, F_REVIEWER, F_APPROVED_BY, F_EMAILS, F_WEBHOOKS,
	F_ANCHORS_TEXT, F_ANCHORS_JSON, F_KEY, F_DATE, F_REQUEST_JSON, NFIELDS
};

typedef struct Note
{
	const char *f[NFIELDS];
} Note;

static const char *
field(const Note *n, int i)
{
	return n->f[i] ? n->f[i] : "";
}

static bool
has(const Note *n, int i)
{
	return n->f[i] != NULL && n->f[i][0] != '\0';
}

static char *schema = NULL;		/* the extension's schema, quoted */

/* The headline of a notification: what happened, for whom. */
static void
headline(const Note *n, Buf *b, bool subject)
{
	const char *ev = field(n, F_EVENT);
	const char *id = field(n, F_REQUEST_ID);
	const char *t = field(n, F_TENANT);

	if (subject)
		buf_printf(b, "[lockbox] %s: ", t);
	if (strcmp(ev, "review_requested") == 0)
		buf_printf(b, "request %s awaits review", id);
	else if (strcmp(ev, "approval_requested") == 0)
		buf_printf(b, "request %s needs your approval", id);
	else if (strcmp(ev, "extension_requested") == 0)
		buf_printf(b, "request %s: more time asked, needs your approval", id);
	else if (strcmp(ev, "access_started") == 0)
		buf_printf(b, "access under request %s has started", id);
	else if (strcmp(ev, "access_ended") == 0)
		buf_printf(b, "access under request %s has ended (%s%s%s)", id,
				   field(n, F_STATE), has(n, F_CLOSE_REASON) ? ", " : "",
				   has(n, F_CLOSE_REASON) ? field(n, F_CLOSE_REASON) : "");
	else
		buf_printf(b, "request %s is %s", id, ev);
	if (!subject)
		buf_printf(b, " (tenant %s)", t);
}

static bool
asks_decision(const Note *n)
{
	const char *ev = field(n, F_EVENT);

	return strcmp(ev, "review_requested") == 0 ||
		strcmp(ev, "approval_requested") == 0 ||
		strcmp(ev, "extension_requested") == 0;
}

/* The plain-text body, shared by e-mail and the webhooks' "text". */
static void
render_text(const Note *n, Buf *b)
{
	const char *id = field(n, F_REQUEST_ID);

	buf_str(b, "Lockbox: ");
	headline(n, b, false);
	buf_str(b, ".\n\n");
	buf_printf(b, "  Request:      %s\n", id);
	buf_printf(b, "  Tenant:       %s\n", field(n, F_TENANT));
	buf_printf(b, "  State:        %s\n", field(n, F_STATE));
	buf_printf(b, "  Requester:    %s\n", field(n, F_REQUESTER));
	buf_printf(b, "  Reason:       %s\n", field(n, F_REASON));
	buf_printf(b, "  Ticket:       %s\n", has(n, F_TICKET) ? field(n, F_TICKET) : "(none)");
	buf_printf(b, "  Tables:       %s\n", field(n, F_TABLES));
	buf_printf(b, "  Access:       %s\n", field(n, F_ACCESS));
	buf_printf(b, "  Duration:     %s\n", field(n, F_DURATION));
	buf_printf(b, "  Requested:    %s\n", field(n, F_CREATED));
	if (has(n, F_DEADLINE))
		buf_printf(b, "  Deadline:     %s\n", field(n, F_DEADLINE));
	if (has(n, F_APPROVED_AT))
		buf_printf(b, "  Access from:  %s\n", field(n, F_APPROVED_AT));
	if (has(n, F_ACCESS_ENDS_AT))
		buf_printf(b, "  Access until: %s\n", field(n, F_ACCESS_ENDS_AT));
	if (has(n, F_CLOSE_REASON))
		buf_printf(b, "  Ended:        %s\n", field(n, F_CLOSE_REASON));
	buf_printf(b, "  Reviewed by:  %s\n", has(n, F_REVIEWER) ? field(n, F_REVIEWER) : "(not yet)");
	buf_printf(b, "  Approved by:  %s\n", has(n, F_APPROVED_BY) ? field(n, F_APPROVED_BY) : "(nobody yet)");
	if (asks_decision(n))
	{
		buf_str(b, "\nTo approve, run as yourself (in psql):\n\n");
		buf_printf(b, "  SELECT %slockbox_approve(%s);\n", schema, id);
		buf_str(b, "\nTo deny:\n\n");
		buf_printf(b, "  SELECT %slockbox_deny(%s, 'the reason');\n", schema, id);
	}
	else if (strcmp(field(n, F_EVENT), "access_started") == 0)
	{
		buf_str(b, "\nTo end the access now:\n\n");
		buf_printf(b, "  SELECT %slockbox_revoke(%s, 'the reason');\n", schema, id);
	}
	if (has(n, F_ANCHORS_TEXT))
	{
		buf_str(b, "\nAudit anchor at this moment (keep it: lockbox_verify_audit(anchors)\n"
				"detects a rewrite of the audit before it):\n\n");
		buf_printf(b, "  [%s]\n", field(n, F_ANCHORS_TEXT));
	}
}

/* RFC 2047 for a header value that is not plain ASCII */
static void
buf_header_encoded(Buf *b, const char *s)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	bool		ascii = true;
	size_t		len = strlen(s);

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
		if (*p >= 0x80)
			ascii = false;
	if (ascii)
	{
		buf_header_value(b, s);
		return;
	}
	buf_str(b, "=?UTF-8?B?");
	for (size_t i = 0; i < len; i += 3)
	{
		unsigned	v = ((unsigned char) s[i]) << 16;
		char		out[4];

		if (i + 1 < len)
			v |= ((unsigned char) s[i + 1]) << 8;
		if (i + 2 < len)
			v |= (unsigned char) s[i + 2];
		out[0] = tbl[(v >> 18) & 63];
		out[1] = tbl[(v >> 12) & 63];
		out[2] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		out[3] = i + 2 < len ? tbl[v & 63] : '=';
		buf_add(b, out, 4);
	}
	buf_str(b, "?=");
}

/* The e-mail: headers and the text, lines ending in CRLF. */
static void
render_email(const Note *n, Buf *out)
{
	Buf			text = {0};
	Buf			subject = {0};

	render_text(n, &text);
	buf_str(&text, "\n-- \nlockbox-notify: notification ");
	buf_printf(&text, "%s (%s) to role %s\n", field(n, F_ID), field(n, F_EVENT),
			   field(n, F_RECIPIENT));
	headline(n, &subject, true);

	buf_printf(out, "Date: %s\r\n", field(n, F_DATE));
	buf_str(out, "From: ");
	buf_header_value(out, cfg.from);
	buf_str(out, "\r\nTo: ");
	buf_header_value(out, field(n, F_EMAILS));
	buf_str(out, "\r\nSubject: ");
	buf_header_encoded(out, subject.data);
	buf_printf(out, "\r\nMessage-ID: <%s@", field(n, F_KEY));
	buf_header_value(out, cfg.message_id_domain);
	buf_str(out, ">\r\n");
	buf_str(out, "MIME-Version: 1.0\r\n"
			"Content-Type: text/plain; charset=utf-8\r\n"
			"Content-Transfer-Encoding: 8bit\r\n"
			"Auto-Submitted: auto-generated\r\n");
	buf_printf(out, "X-Lockbox-Event: %s\r\n", field(n, F_EVENT));
	buf_printf(out, "X-Lockbox-Request: %s\r\n", field(n, F_REQUEST_ID));
	buf_str(out, "\r\n");
	/* the body, LF -> CRLF; libcurl dot-stuffs lines that begin with '.' */
	for (const char *p = text.data; *p; p++)
	{
		if (*p == '\n')
			buf_add(out, "\r\n", 2);
		else if (*p != '\r')
			buf_add(out, p, 1);
	}
	free(text.data);
	free(subject.data);
}

/* The webhook body: JSON, or Slack's {"text": ...}. */
static void
render_webhook(const Note *n, Buf *out)
{
	Buf			text = {0};

	if (strcmp(cfg.webhook_format, "slack") == 0)
	{
		Buf			head = {0};

		headline(n, &head, true);
		buf_printf(&text, "*%s*\n", head.data);
		render_text(n, &text);
		buf_str(out, "{\"text\": ");
		buf_json(out, text.data);
		buf_str(out, "}");
		free(head.data);
		free(text.data);
		return;
	}
	render_text(n, &text);
	buf_str(out, "{\"idempotency_key\": ");
	buf_json(out, field(n, F_KEY));
	buf_printf(out, ", \"notification_id\": %s, \"event\": ", field(n, F_ID));
	buf_json(out, field(n, F_EVENT));
	buf_str(out, ", \"recipient\": ");
	buf_json(out, field(n, F_RECIPIENT));
	buf_printf(out, ", \"request\": %s", field(n, F_REQUEST_JSON));
	if (asks_decision(n))
	{
		Buf			sql = {0};

		buf_printf(&sql, "SELECT %slockbox_approve(%s);", schema, field(n, F_REQUEST_ID));
		buf_str(out, ", \"approve_sql\": ");
		buf_json(out, sql.data);
		buf_reset(&sql);
		buf_printf(&sql, "SELECT %slockbox_deny(%s, 'the reason');", schema,
				   field(n, F_REQUEST_ID));
		buf_str(out, ", \"deny_sql\": ");
		buf_json(out, sql.data);
		free(sql.data);
	}
	if (has(n, F_ANCHORS_JSON))
		buf_printf(out, ", \"anchors\": %s", field(n, F_ANCHORS_JSON));
	buf_str(out, ", \"text\": ");
	buf_json(out, text.data);
	buf_str(out, "}");
	free(text.data);
}

/* ------------------------------------------------------------------------
 * Delivery through libcurl
 * ------------------------------------------------------------------------
 */
typedef struct Upload
{
	const char *data;
	size_t		len;
	size_t		pos;
} Upload;

static size_t
read_upload(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Upload	   *u = userdata;
	size_t		n = size * nmemb;

	if (n > u->len - u->pos)
		n = u->len - u->pos;
	memcpy(ptr, u->data + u->pos, n);
	u->pos += n;
	return n;
}

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Buf		   *b = userdata;
	size_t		n = size * nmemb;

	/* keep the start of a response body, for the log */
	if (b && b->len < 200)
		buf_add(b, ptr, n < 200 - b->len ? n : 200 - b->len);
	return n;
}

static CURL *smtp_handle = NULL;
static CURL *http_handle = NULL;

typedef enum Outcome
{
	SENT,
	RETRY,						/* worth another attempt */
	PERMANENT					/* no attempt will succeed */
} Outcome;

static void
tls_options(CURL *h)
{
	if (cfg.ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg.ca_file);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, cfg.tls_verify ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, cfg.tls_verify ? 2L : 0L);
}

static Outcome
send_email(const Note *n, Buf *err)
{
	Buf			msg = {0};
	Upload		up;
	struct curl_slist *rcpt = NULL;
	char	   *list = strdup(field(n, F_EMAILS));
	char	   *save = NULL;
	char		from[512];
	char		errbuf[CURL_ERROR_SIZE] = "";
	CURLcode	rc;
	long		code = 0;
	Outcome		result;

	if (cfg.smtp_url == NULL)
	{
		buf_str(err, "e-mail: no smtp_url in the configuration");
		free(list);
		return RETRY;
	}
	for (char *a = strtok_r(list, ", ", &save); a; a = strtok_r(NULL, ", ", &save))
	{
		char		addr[600];

		snprintf(addr, sizeof(addr), "<%s>", a);
		rcpt = curl_slist_append(rcpt, addr);
	}
	free(list);
	render_email(n, &msg);
	up.data = msg.data;
	up.len = msg.len;
	up.pos = 0;
	snprintf(from, sizeof(from), "<%s>", cfg.from);

	if (smtp_handle == NULL)
		smtp_handle = curl_easy_init();
	curl_easy_reset(smtp_handle);
	curl_easy_setopt(smtp_handle, CURLOPT_URL, cfg.smtp_url);
	curl_easy_setopt(smtp_handle, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(smtp_handle, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(smtp_handle, CURLOPT_READFUNCTION, read_upload);
	curl_easy_setopt(smtp_handle, CURLOPT_READDATA, &up);
	curl_easy_setopt(smtp_handle, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(smtp_handle, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(smtp_handle, CURLOPT_TIMEOUT, (long) cfg.timeout);
	curl_easy_setopt(smtp_handle, CURLOPT_CONNECTTIMEOUT, (long) cfg.connect_timeout);
	curl_easy_setopt(smtp_handle, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(smtp_handle, CURLOPT_USE_SSL,
					 strcmp(cfg.smtp_tls, "require") == 0 ? (long) CURLUSESSL_ALL :
					 strcmp(cfg.smtp_tls, "try") == 0 ? (long) CURLUSESSL_TRY :
					 (long) CURLUSESSL_NONE);
	tls_options(smtp_handle);
	if (cfg.smtp_user)
		curl_easy_setopt(smtp_handle, CURLOPT_USERNAME, cfg.smtp_user);
	if (cfg.smtp_password)
		curl_easy_setopt(smtp_handle, CURLOPT_PASSWORD, cfg.smtp_password);

	rc = curl_easy_perform(smtp_handle);
	curl_easy_getinfo(smtp_handle, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_OK)
		result = SENT;
	else
	{
		buf_printf(err, "e-mail to %s: %s%s(SMTP %ld)", field(n, F_EMAILS),
				   errbuf[0] ? errbuf : curl_easy_strerror(rc), errbuf[0] ? " " : " ",
				   code);
		/* 5xx: the server refuses this message for good (bad address) */
		result = (code >= 500 && code < 600) ? PERMANENT : RETRY;
	}
	curl_slist_free_all(rcpt);
	free(msg.data);
	return result;
}

static void
hmac_hex(const char *secret, const char *data, size_t len, char *hex)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	HMAC(EVP_sha256(), secret, (int) strlen(secret),
		 (const unsigned char *) data, len, mac, &maclen);
	for (unsigned i = 0; i < maclen; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	hex[2 * maclen] = '\0';
}

static Outcome
send_webhook(const Note *n, const char *url, Buf *err)
{
	Buf			body = {0};
	Buf			signed_data = {0};
	Buf			resp = {0};
	Buf			h = {0};
	struct curl_slist *headers = NULL;
	const char *secret = secret_for(field(n, F_TENANT));
	char		hex[2 * EVP_MAX_MD_SIZE + 1];
	char		errbuf[CURL_ERROR_SIZE] = "";
	long		ts = (long) time(NULL);
	long		code = 0;
	CURLcode	rc;
	Outcome		result;

	if (secret == NULL)
	{
		buf_printf(err, "webhook %s: no webhook_secret for tenant %s in the configuration",
				   url, field(n, F_TENANT));
		return RETRY;
	}
	render_webhook(n, &body);
	buf_printf(&signed_data, "%ld.", ts);
	buf_add(&signed_data, body.data, body.len);
	hmac_hex(secret, signed_data.data, signed_data.len, hex);

	headers = curl_slist_append(headers, "Content-Type: application/json");
	buf_printf(&h, "X-Lockbox-Id: %s", field(n, F_KEY));
	headers = curl_slist_append(headers, h.data);
	buf_reset(&h);
	buf_printf(&h, "X-Lockbox-Event: %s", field(n, F_EVENT));
	headers = curl_slist_append(headers, h.data);
	buf_reset(&h);
	buf_printf(&h, "X-Lockbox-Signature: t=%ld,v1=%s", ts, hex);
	headers = curl_slist_append(headers, h.data);
	headers = curl_slist_append(headers, "Expect:");

	if (http_handle == NULL)
		http_handle = curl_easy_init();
	curl_easy_reset(http_handle);
	curl_easy_setopt(http_handle, CURLOPT_URL, url);
	curl_easy_setopt(http_handle, CURLOPT_POSTFIELDS, body.data);
	curl_easy_setopt(http_handle, CURLOPT_POSTFIELDSIZE, (long) body.len);
	curl_easy_setopt(http_handle, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(http_handle, CURLOPT_USERAGENT, "lockbox-notify/" NOTIFY_VERSION);
	curl_easy_setopt(http_handle, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(http_handle, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(http_handle, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(http_handle, CURLOPT_TIMEOUT, (long) cfg.timeout);
	curl_easy_setopt(http_handle, CURLOPT_CONNECTTIMEOUT, (long) cfg.connect_timeout);
	curl_easy_setopt(http_handle, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(http_handle, CURLOPT_PROTOCOLS_STR, "http,https");
	tls_options(http_handle);

	rc = curl_easy_perform(http_handle);
	curl_easy_getinfo(http_handle, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_OK && code >= 200 && code < 300)
		result = SENT;
	else if (rc != CURLE_OK)
	{
		buf_printf(err, "webhook %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
		result = RETRY;
	}
	else
	{
		buf_printf(err, "webhook %s: HTTP %ld %s", url, code, resp.data ? resp.data : "");
		/* 4xx but timeouts and rate limits: the endpoint refuses it for good */
		result = (code >= 400 && code < 500 && code != 408 && code != 429) ?
			PERMANENT : RETRY;
	}
	curl_slist_free_all(headers);
	free(body.data);
	free(signed_data.data);
	free(resp.data);
	free(h.data);
	return result;
}

/* ------------------------------------------------------------------------
 * The database
 * ------------------------------------------------------------------------
 */
static PGconn *conn = NULL;

/* ids delivered whose acknowledgement did not reach the database yet */
static long long *unacked = NULL;
static int	nunacked = 0;
static int	unacked_cap = 0;

static void
drop_connection(const char *why)
{
	if (conn)
	{
		logmsg("LOG", "connection to the database lost (%s); reconnecting", why);
		PQfinish(conn);
		conn = NULL;
	}
}

static bool
exec_ok(PGresult *res, const char *what)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return true;
	logmsg("ERROR", "%s: %s", what, PQresultErrorMessage(res));
	return false;
}

static bool
connect_db(void)
{
	PGresult   *res;
	static const char *setup =
		"SET application_name = 'lockbox-notify';"
		"SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET IntervalStyle = 'postgres';"
		/* an acknowledgement lost in a crash means a resend under the same key */
		"SET synchronous_commit = off;"
		"LISTEN lockbox";

	conn = PQconnectdb(cfg.conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = PQerrorMessage(conn);
		size_t		l = strlen(msg);

		while (l > 0 && msg[l - 1] == '\n')
			msg[--l] = '\0';
		logmsg("WARNING", "could not connect to the database: %s", msg);
		PQfinish(conn);
		conn = NULL;
		return false;
	}
	res = PQexec(conn, setup);
	if (!exec_ok(res, "session setup"))
		goto fail;
	PQclear(res);
	res = PQexec(conn,
				 "SELECT pg_catalog.quote_ident(n.nspname),"
				 "       pg_catalog.pg_has_role('lockbox_auditor', 'USAGE'),"
				 "       current_user, pg_catalog.current_database()"
				 "  FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n"
				 "    ON n.oid = e.extnamespace WHERE e.extname = 'lockbox'");
	if (!exec_ok(res, "looking up the lockbox extension"))
		goto fail;
	if (PQntuples(res) == 0)
	{
		logmsg("WARNING", "extension lockbox is not installed in this database");
		goto fail;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
	{
		logmsg("WARNING", "role \"%s\" is not a member of lockbox_auditor; "
			   "lockbox-notify claims notifications as one",
			   PQgetvalue(res, 0, 2));
		goto fail;
	}
	free(schema);
	schema = malloc(strlen(PQgetvalue(res, 0, 0)) + 2);
	/* unqualified when the extension is in public, as the README shows it */
	if (strcmp(PQgetvalue(res, 0, 0), "public") == 0)
		schema[0] = '\0';
	else
		sprintf(schema, "%s.", PQgetvalue(res, 0, 0));
	logmsg("LOG", "connected to database \"%s\" as \"%s\"; listening on channel lockbox",
		   PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 2));
	PQclear(res);
	return true;
fail:
	PQclear(res);
	PQfinish(conn);
	conn = NULL;
	return false;
}

/* Acknowledge every delivered notification not yet acknowledged. */
static bool
flush_acks(void)
{
	Buf			arr = {0};
	const char *params[1];
	PGresult   *res;
	Buf			sql = {0};
	bool		ok;

	if (nunacked == 0)
		return true;
	buf_str(&arr, "{");
	for (int i = 0; i < nunacked; i++)
		buf_printf(&arr, "%s%lld", i ? "," : "", unacked[i]);
	buf_str(&arr, "}");
	params[0] = arr.data;
	buf_printf(&sql, "SELECT pg_catalog.count(*) FROM pg_catalog.unnest($1::pg_catalog.int8[]) i"
			   " WHERE %slockbox_ack_notification(i)", schema);
	res = PQexecParams(conn, sql.data, 1, NULL, params, NULL, NULL, 0);
	ok = exec_ok(res, "acknowledging");
	if (ok)
	{
		if (atoi(PQgetvalue(res, 0, 0)) < nunacked)
			logmsg("LOG", "%d of %d notifications were acknowledged already (by another notifier)",
				   nunacked - atoi(PQgetvalue(res, 0, 0)), nunacked);
		nunacked = 0;
	}
	PQclear(res);
	free(arr.data);
	free(sql.data);
	return ok;
}

static void
remember_ack(long long id)
{
	if (nunacked == unacked_cap)
	{
		unacked_cap = unacked_cap ? unacked_cap * 2 : 64;
		unacked = realloc(unacked, sizeof(long long) * unacked_cap);
	}
	unacked[nunacked++] = id;
}

/* Record a failed attempt: retried with backoff, or failed for good. */
static bool
record_failure(const Note *n, const char *error, Outcome outcome)
{
	int			attempts = atoi(field(n, F_ATTEMPTS)) + 1;
	bool		final = outcome == PERMANENT || attempts >= cfg.max_attempts;
	char		retry[32];
	const char *params[3];
	PGresult   *res;
	Buf			sql = {0};
	bool		ok;
	long		delay = cfg.retry_base;

	for (int i = 1; i < attempts && delay < cfg.retry_max; i++)
		delay *= 2;
	if (delay > cfg.retry_max)
		delay = cfg.retry_max;
	snprintf(retry, sizeof(retry), "%ld seconds", delay);
	params[0] = field(n, F_ID);
	params[1] = error;
	params[2] = final ? NULL : retry;
	buf_printf(&sql, "SELECT %slockbox_fail_notification($1, $2, $3)", schema);
	res = PQexecParams(conn, sql.data, 3, NULL, params, NULL, NULL, 0);
	ok = exec_ok(res, "recording a failed delivery");
	PQclear(res);
	free(sql.data);
	if (final)
		logmsg("WARNING", "notification %s (%s, request %s) failed for good after %d attempt%s: %s",
			   field(n, F_ID), field(n, F_EVENT), field(n, F_REQUEST_ID), attempts,
			   attempts == 1 ? "" : "s", error);
	else
		logmsg("WARNING", "notification %s (%s, request %s): attempt %d of %d failed, "
			   "next in %ld s: %s", field(n, F_ID), field(n, F_EVENT),
			   field(n, F_REQUEST_ID), attempts, cfg.max_attempts, delay, error);
	return ok;
}

/* Deliver one notification everywhere it goes; acknowledge or fail it. */
static bool
deliver(const Note *n)
{
	Buf			err = {0};
	Buf			where = {0};
	Outcome		worst = SENT;

	if (!has(n, F_EMAILS) && !has(n, F_WEBHOOKS))
	{
		Buf			e = {0};
		bool		ok;

		buf_printf(&e, "no e-mail address (lockbox_set_contact) or webhook (lockbox_set_webhook) "
				   "reaches role %s", field(n, F_RECIPIENT));
		ok = record_failure(n, e.data, PERMANENT);
		free(e.data);
		return ok;
	}
	if (has(n, F_EMAILS))
	{
		Outcome		o = send_email(n, &err);

		if (o == SENT)
			buf_printf(&where, "e-mail to %s", field(n, F_EMAILS));
		else if (o > worst)
			worst = o;
	}
	if (has(n, F_WEBHOOKS))
	{
		char	   *urls = strdup(field(n, F_WEBHOOKS));
		char	   *save = NULL;

		for (char *u = strtok_r(urls, " ", &save); u; u = strtok_r(NULL, " ", &save))
		{
			Buf			e = {0};
			Outcome		o = send_webhook(n, u, &e);

			if (o == SENT)
				buf_printf(&where, "%swebhook %s", where.len ? ", " : "", u);
			else
			{
				buf_printf(&err, "%s%s", err.len ? "; " : "", e.data);
				if (o > worst)
					worst = o;
			}
			free(e.data);
		}
		free(urls);
	}
	if (worst == SENT)
	{
		logmsg("LOG", "notification %s (%s, request %s, tenant %s) delivered: %s",
			   field(n, F_ID), field(n, F_EVENT), field(n, F_REQUEST_ID),
			   field(n, F_TENANT), where.data);
		remember_ack(atoll(field(n, F_ID)));
		free(err.data);
		free(where.data);
		if (!flush_acks())
		{
			logmsg("LOG", "notification %s was delivered but not acknowledged yet; "
				   "it is acknowledged once the database answers again", field(n, F_ID));
			return false;
		}
		return true;
	}
	{
		bool		ok;

		if (where.len)
			buf_printf(&err, " (delivered meanwhile: %s; a retry sends again under the same idempotency key)",
					   where.data);
		ok = record_failure(n, err.data, worst);
		free(err.data);
		free(where.data);
		return ok;
	}
}

/*
 * Claim a batch and deliver it.  Returns the number claimed, or -1 when the
 * database failed us (the connection is then dropped).
 */
static int
claim_and_deliver(void)
{
	char		max[16];
	char		lease[32];
	const char *params[2];
	PGresult   *res;
	Buf			sql = {0};
	int			n;

	snprintf(max, sizeof(max), "%d", cfg.batch);
	snprintf(lease, sizeof(lease), "%d seconds", cfg.lease);
	params[0] = max;
	params[1] = lease;
	buf_printf(&sql,
			   "SELECT d.id, d.event, d.recipient, d.attempts, d.request_id, d.tenant,"
			   "       d.requester, d.reason, d.ticket, d.tables, d.access, d.duration,"
			   "       d.state,"
			   "       pg_catalog.to_char(d.created, 'YYYY-MM-DD HH24:MI:SS \"UTC\"'),"
			   "       pg_catalog.to_char(d.deadline, 'YYYY-MM-DD HH24:MI:SS \"UTC\"'),"
			   "       pg_catalog.to_char(d.approved_at, 'YYYY-MM-DD HH24:MI:SS \"UTC\"'),"
			   "       pg_catalog.to_char(d.access_ends_at, 'YYYY-MM-DD HH24:MI:SS \"UTC\"'),"
			   "       d.close_reason, d.reviewer, d.approved_by, d.emails, d.webhooks,"
			   "       (SELECT pg_catalog.string_agg(pg_catalog.format('{\"seq\": %%s, \"hash\": \"%%s\"}',"
			   "                 a->>'seq', a->>'hash'), ', ')"
			   "          FROM pg_catalog.jsonb_array_elements(d.anchors) a),"
			   "       d.anchors::pg_catalog.text,"
			   "       pg_catalog.format('lockbox.%%s.%%s.%%s', pg_catalog.current_database(), d.id,"
			   "              (EXTRACT(epoch FROM d.created_at) * 1000000)::pg_catalog.int8),"
			   "       pg_catalog.to_char(d.created_at, 'Dy, DD Mon YYYY HH24:MI:SS +0000'),"
			   "       pg_catalog.jsonb_build_object('id', d.request_id, 'tenant', d.tenant,"
			   "              'requester', d.requester, 'reason', d.reason, 'ticket', d.ticket,"
			   "              'tables', pg_catalog.string_to_array(d.tables, ', '),"
			   "              'access', d.access, 'duration', d.duration::pg_catalog.text,"
			   "              'state', d.state, 'created_at', d.created, 'deadline', d.deadline,"
			   "              'approved_at', d.approved_at, 'access_ends_at', d.access_ends_at,"
			   "              'close_reason', d.close_reason, 'reviewer', d.reviewer,"
			   "              'approved_by', pg_catalog.string_to_array(d.approved_by, ', '))::pg_catalog.text"
			   "  FROM lockbox.delivery(ARRAY(SELECT c.id FROM %slockbox_claim_notifications($1, $2::pg_catalog.interval) c)) d",
			   schema);
	res = PQexecParams(conn, sql.data, 2, NULL, params, NULL, NULL, 0);
	free(sql.data);
	if (!exec_ok(res, "claiming notifications"))
	{
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	if (n > 0)
		logmsg("DEBUG", "claimed %d notification%s", n, n == 1 ? "" : "s");
	for (int i = 0; i < n && !stop_requested; i++)
	{
		Note		note;

		for (int f = 0; f < NFIELDS; f++)
			note.f[f] = PQgetisnull(res, i, f) ? NULL : PQgetvalue(res, i, f);
		if (!deliver(&note))
		{
			PQclear(res);
			return -1;
		}
	}
	PQclear(res);
	return n;
}

/* Wait for a NOTIFY lockbox, or poll_interval, or a signal. */
static bool
wait_for_work(void)
{
	int			sock = PQsocket(conn);
	fd_set		fds;
	struct timeval tv = {cfg.poll_interval, 0};
	PGnotify   *note;
	bool		woken = false;

	FD_ZERO(&fds);
	FD_SET(sock, &fds);
	if (select(sock + 1, &fds, NULL, NULL, &tv) < 0 && errno != EINTR)
		return false;
	if (!PQconsumeInput(conn))
		return false;
	while ((note = PQnotifies(conn)) != NULL)
	{
		woken = true;
		PQfreemem(note);
	}
	if (woken)
		logmsg("DEBUG", "woken by NOTIFY lockbox");
	return PQstatus(conn) == CONNECTION_OK;
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------
 */
static void
usage(void)
{
	printf(
		   "LOCKBOX-NOTIFY(1)            lockbox                  LOCKBOX-NOTIFY(1)\n"
		   "\n"
		   "NAME\n"
		   "       lockbox-notify - deliver lockbox notifications by e-mail and webhooks\n"
		   "\n"
		   "SYNOPSIS\n"
		   "       lockbox-notify [-c FILE] [--once] [-v]\n"
		   "       lockbox-notify --help | --version\n"
		   "\n"
		   "DESCRIPTION\n"
		   "       Connects to a database where extension lockbox is installed, as a\n"
		   "       member of lockbox_auditor, LISTENs on channel lockbox and polls.\n"
		   "       Claims notifications with lockbox_claim_notifications(batch, lease),\n"
		   "       renders each as a plain-text e-mail to the recipient's addresses\n"
		   "       (lockbox_set_contact; a group role reaches its members) and as a\n"
		   "       signed JSON POST to the tenant's webhooks (lockbox_set_webhook; for\n"
		   "       notifications to the tenant's approvers), and acknowledges it with\n"
		   "       lockbox_ack_notification only once the SMTP server and every\n"
		   "       endpoint accepted it.  A failed attempt is retried after\n"
		   "       retry_base, doubled at each attempt up to retry_max; after\n"
		   "       max_attempts, or at once when the server refuses the message for\n"
		   "       good (SMTP 5xx, HTTP 4xx), it is failed with its error\n"
		   "       (lockbox_fail_notification; lockbox.notifications, lockbox.stats).\n"
		   "\n"
		   "       Every message has an idempotency key, the same at every attempt\n"
		   "       and in every notifier: the e-mail's Message-ID, the webhook's\n"
		   "       X-Lockbox-Id header.  A crash between sending and acknowledging\n"
		   "       sends the message again under the same key.\n"
		   "\n"
		   "OPTIONS\n"
		   "       -c, --config FILE\n"
		   "              the configuration file (default " DEFAULT_CONFIG ")\n"
		   "       --once\n"
		   "              deliver what is due now, then exit\n"
		   "       -v, --verbose\n"
		   "              log claims and wake-ups too\n"
		   "       -h, --help\n"
		   "              show this help, then exit\n"
		   "       -V, --version\n"
		   "              show the version, then exit\n"
		   "\n"
		   "CONFIGURATION\n"
		   "       Lines of key = value; # starts a comment; quote a value in single\n"
		   "       quotes to keep a # or surrounding spaces ('' is a quote).  Keep the\n"
		   "       file readable by the service's user only: it holds the secrets.\n"
		   "\n"
		   "       conninfo          libpq connection string, a direct connection\n"
		   "                         (not through a transaction pooler: LISTEN)\n"
		   "       smtp_url          smtp://host:port, or smtps://host:port for TLS\n"
		   "                         from the start\n"
		   "       smtp_tls          off, try (default) or require: STARTTLS\n"
		   "       smtp_user, smtp_password\n"
		   "                         SMTP authentication, if the server wants it\n"
		   "       from              the sender's address (required with smtp_url)\n"
		   "       message_id_domain right-hand side of Message-ID (default: from's\n"
		   "                         domain)\n"
		   "       ca_file           CA bundle for SMTP and HTTPS (default: system's)\n"
		   "       tls_verify        on (default) or off\n"
		   "       webhook_secret    HMAC-SHA256 key of every tenant's webhooks\n"
		   "       webhook_secret.TENANT\n"
		   "                         the key of one tenant's webhooks\n"
		   "       webhook_format    json (default) or slack ({\"text\": ...})\n"
		   "       timeout           seconds one delivery may take (10)\n"
		   "       connect_timeout   seconds to connect to a server (5)\n"
		   "       batch             notifications claimed at once (20)\n"
		   "       lease             seconds a claim is held (300); keep it at least\n"
		   "                         batch x (timeout + connect_timeout)\n"
		   "       poll_interval     seconds between polls without NOTIFY (5)\n"
		   "       max_attempts      attempts before failing for good (8)\n"
		   "       retry_base, retry_max\n"
		   "                         backoff in seconds (10, 3600)\n"
		   "\n"
		   "WEBHOOKS\n"
		   "       POST with Content-Type: application/json and the headers\n"
		   "         X-Lockbox-Id: <idempotency key>\n"
		   "         X-Lockbox-Event: <event>\n"
		   "         X-Lockbox-Signature: t=<unix seconds>,v1=<hex>\n"
		   "       where hex = HMAC-SHA256(secret, \"<t>.\" + body).  A receiver\n"
		   "       recomputes it over the raw body, compares in constant time,\n"
		   "       rejects a t older than a few minutes, and drops an X-Lockbox-Id\n"
		   "       it has already seen.  Any 2xx accepts.\n"
		   "\n"
		   "SIGNALS\n"
		   "       SIGTERM, SIGINT: finish the message being sent, then exit.\n"
		   "       SIGHUP is ignored: configuration changes take effect at a\n"
		   "       restart.\n"
		   "\n"
		   "EXIT STATUS\n"
		   "       0 when stopped by a signal or after --once; 1 on a bad\n"
		   "       configuration or command line; 2 when --once could not reach\n"
		   "       the database.\n"
		   "\n"
		   "FILES\n"
		   "       " DEFAULT_CONFIG "\n"
		   "       lockbox-notify.service, the systemd unit\n"
		   "\n"
		   "SEE ALSO\n"
		   "       README.md, section \"Delivery\", of lockbox.\n");
}

int
main(int argc, char **argv)
{
	static struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"once", no_argument, NULL, 'o'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	const char *config = DEFAULT_CONFIG;
	bool		once = false;
	int			c;
	int			backoff = 1;
	struct sigaction sa;

	while ((c = getopt_long(argc, argv, "c:vhV", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'c':
				config = optarg;
				break;
			case 'o':
				once = true;
				break;
			case 'v':
				verbose = 1;
				break;
			case 'h':
				usage();
				return 0;
			case 'V':
				printf("lockbox-notify " NOTIFY_VERSION "\n");
				return 0;
			default:
				fprintf(stderr, "Try \"lockbox-notify --help\" for more information.\n");
				return 1;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "lockbox-notify: unexpected argument \"%s\"\n", argv[optind]);
		return 1;
	}
	if (!load_config(config))
		return 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* the configuration is read at the start only: a SIGHUP changes nothing */
	signal(SIGHUP, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	logmsg("LOG", "starting (configuration %s)", config);

	while (!stop_requested)
	{
		int			n;

		if (conn == NULL)
		{
			if (!connect_db())
			{
				if (once)
					return 2;
				logmsg("LOG", "retrying in %d s", backoff);
				for (int i = 0; i < backoff * 10 && !stop_requested; i++)
					usleep(100000);
				backoff = backoff < 30 ? backoff * 2 : 30;
				continue;
			}
			backoff = 1;
		}
		if (!flush_acks())
		{
			drop_connection(PQerrorMessage(conn));
			continue;
		}
		n = claim_and_deliver();
		if (n < 0 && PQstatus(conn) == CONNECTION_OK)
		{
			/* the database answered with an error: try again later */
			for (int i = 0; i < cfg.poll_interval * 10 && !stop_requested; i++)
				usleep(100000);
			continue;
		}
		if (n < 0)
		{
			drop_connection(PQerrorMessage(conn));
			continue;
		}
		if (n == cfg.batch)
			continue;
		if (once)
			break;
		if (!wait_for_work())
			drop_connection(PQerrorMessage(conn));
	}
	if (conn)
	{
		flush_acks();
		PQfinish(conn);
	}
	if (smtp_handle)
		curl_easy_cleanup(smtp_handle);
	if (http_handle)
		curl_easy_cleanup(http_handle);
	curl_global_cleanup();
	logmsg("LOG", "stopped");
	return 0;
}
