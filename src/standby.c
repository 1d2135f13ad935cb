/*-------------------------------------------------------------------------
 *
 * standby.c
 *		A database's lockbox worker on a hot standby: it forwards the
 *		engineers' spooled statements to the primary and ends sessions whose
 *		access ended there.
 *
 * Engineers' sessions on a standby spool their statements as on the primary
 * (access_log.c): the spool is a file of the data directory, not a table,
 * so recovery does not stop it.  The standby cannot write its audit, so its
 * worker connects to the primary (lockbox.primary_conninfo, as a login role
 * of the group lockbox_forwarder named as the standby) and hands whole
 * records in with lockbox.forward_access, which audits them and keeps how
 * far it audited each file in the same transaction.  After every (re)connect
 * the worker asks the primary how far each file got before sending more:
 * a record is audited once whatever fails when.  A file is removed once its
 * session ended and the primary has all of it.
 *
 * libpq is used as contrib/dblink and postgres_fdw use it in a backend:
 * non-blocking, waiting on the socket and the latch together, so that
 * SIGTERM (die) ends the worker at once whatever the primary does.
 *
 * Every pass (ACCESS_STANDBY_POLL_MS, or when a session has news) also ends
 * the sessions whose access ended (deadlines.c), reading only.  Once the
 * standby is promoted the caller goes on as a primary's worker, whose drain
 * starts from the progress the primary had for this node's files.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "lockbox.h"

/* a pass at least this often: sessions to end, records to forward */
#define STANDBY_POLL_MS			500
/* reconnecting after a failure, at most this often */
#define RECONNECT_MS			1000
/* a call to the primary that takes longer has failed */
#define CALL_TIMEOUT_MS			30000
/* bytes of records handed in per call (a larger record goes alone) */
#define FORWARD_CHUNK			LOCKBOX_FORWARD_CHUNK

char	   *lockbox_primary_conninfo = NULL;

/* a spool file and how far the primary has it */
typedef struct ForwardFile
{
	char		file[64];		/* hash key */
	int64		done;			/* audited on the primary up to here */
	bool		known;			/* done was read over this connection */
	int64		end;			/* bytes of records (complete files) */
	bool		end_known;
	bool		damaged;		/* cannot go on: a damaged record at done */
	bool		seen;
} ForwardFile;

static HTAB *files = NULL;
static PGconn *conn = NULL;
static char *dbname = NULL;		/* this worker's database */
static TimestampTz next_connect = 0;
static char *last_logged = NULL;	/* the failure last written to the log */

/*
 * A connection string libpq cannot parse is refused when it is set: the
 * parser's message, which the worker would otherwise show in
 * lockbox.standby_backlog and the log, may quote the password.
 */
static bool
check_primary_conninfo(char **newval, void **extra, GucSource source)
{
	PQconninfoOption *options;
	char	   *error = NULL;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	options = PQconninfoParse(*newval, &error);
	if (error != NULL)
		PQfreemem(error);
	if (options == NULL)
	{
		GUC_check_errmsg("lockbox.primary_conninfo is not a valid connection string");
		GUC_check_errdetail("The parser's own message is not shown, since it may quote a password.");
		return false;
	}
	PQconninfoFree(options);
	return true;
}

void
lockbox_standby_init(void)
{
	DefineCustomStringVariable("lockbox.primary_conninfo",
							   "Connection string a standby's lockbox workers use to reach the primary.",
							   "On a hot standby, engineers' statements are forwarded to the primary's access log over this connection, "
							   "logged in as a member of lockbox_forwarder named as the standby (lockbox.node_name); dbname is the worker's own database. "
							   "Empty: statements wait on the standby, up to lockbox.standby_backlog_max. Only superusers can read it (it may hold a password).",
							   &lockbox_primary_conninfo, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   check_primary_conninfo, NULL, NULL);
}

static void
disconnect(void)
{
	if (conn != NULL)
		PQfinish(conn);
	conn = NULL;
}

/* Record a failure for lockbox.standby_backlog and the log, and disconnect. */
static void
failed(const char *what, const char *error)
{
	char	   *msg = pstrdup(error != NULL ? error : "");
	size_t		len = strlen(msg);

	/* libpq's messages end with a newline */
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	/* once per failure, not at every retry (lockbox.standby_backlog has it) */
	if (last_logged == NULL || strcmp(last_logged, msg) != 0)
	{
		ereport(LOG,
				(errmsg("lockbox could not forward engineers' statements to the primary: %s: %s",
						what, msg),
				 errhint("It is tried again every second; lockbox.standby_backlog shows the backlog.")));
		if (last_logged != NULL)
			pfree(last_logged);
		last_logged = MemoryContextStrdup(TopMemoryContext, msg);
	}
	lockbox_backlog_report(-1, -1, false, psprintf("%s: %s", what, msg));
	disconnect();
	next_connect = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RECONNECT_MS);
}

static void end_sessions_pass(void);
static bool query_one(const char *what, const char *sql, int nparams,
					  const char *const *values, const int *lengths,
					  const int *formats, char **value);
static TimestampTz last_end_sessions = 0;

/*
 * Wait until the socket is ready (or the timeout passes: false), serving
 * interrupts meanwhile.  A primary that is slow to answer (or a network that
 * drops packets) must not hold up ending sessions on this standby: they are
 * looked at every STANDBY_POLL_MS while waiting too.
 */
static bool
wait_socket(int io, TimestampTz until)
{
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		ms = TimestampDifferenceMilliseconds(now, until);
		int			rc;

		if (ms <= 0)
			return false;
		if (now >= TimestampTzPlusMilliseconds(last_end_sessions, STANDBY_POLL_MS))
			end_sessions_pass();
		rc = WaitLatchOrSocket(MyLatch,
							   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | io,
							   PQsocket(conn), Min(ms, STANDBY_POLL_MS),
							   PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if (rc & io)
			return true;
	}
}

/* Connect to the primary, to this worker's database.  False: failed. */
static bool
connect_primary(void)
{
	const char *keys[4];
	const char *vals[4];
	TimestampTz until;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (conn != NULL)
		return true;
	if (GetCurrentTimestamp() < next_connect)
		return false;
	if (lockbox_primary_conninfo == NULL || lockbox_primary_conninfo[0] == '\0')
	{
		lockbox_backlog_report(-1, -1, false, "lockbox.primary_conninfo is not set");
		return false;
	}
	if (lockbox_node_name() == NULL)
	{
		lockbox_backlog_report(-1, -1, false, "neither lockbox.node_name nor cluster_name is set");
		return false;
	}

	/* the setting, then this database's name over any it names */
	keys[0] = "dbname";
	vals[0] = lockbox_primary_conninfo;
	keys[1] = "dbname";
	vals[1] = dbname;
	keys[2] = "fallback_application_name";
	vals[2] = "lockbox forwarder";
	keys[3] = NULL;
	vals[3] = NULL;
	conn = PQconnectStartParams(keys, vals, 1);
	if (conn == NULL)
	{
		failed("connecting", "out of memory");
		return false;
	}
	until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CALL_TIMEOUT_MS);
	while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
		   st != PGRES_POLLING_FAILED)
	{
		if (!wait_socket(st == PGRES_POLLING_READING ? WL_SOCKET_READABLE :
						 WL_SOCKET_WRITEABLE, until))
		{
			failed("connecting", "timeout");
			return false;
		}
		st = PQconnectPoll(conn);
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		failed("connecting", PQerrorMessage(conn));
		return false;
	}
	if (PQsetnonblocking(conn, 1) != 0)
	{
		failed("connecting", PQerrorMessage(conn));
		return false;
	}

	/*
	 * A wrong conninfo must not hand this standby's records to another
	 * cluster's lockbox: the server reached must be the one this standby
	 * replicates (streaming keeps the system identifier).
	 */
	{
		char	   *sysid;
		char		mine[32];

		if (!query_one("checking the primary", "SELECT system_identifier FROM pg_catalog.pg_control_system()",
					   0, NULL, NULL, NULL, &sysid))
			return false;
		snprintf(mine, sizeof(mine), UINT64_FORMAT, GetSystemIdentifier());
		if (strcmp(sysid, mine) != 0)
		{
			failed("checking the primary",
				   psprintf("the server lockbox.primary_conninfo reaches has system identifier %s, this standby %s: it is not this standby's primary",
							sysid, mine));
			return false;
		}
		pfree(sysid);
	}
	if (last_logged != NULL)
	{
		ereport(LOG,
				(errmsg("lockbox forwards engineers' statements to the primary again")));
		pfree(last_logged);
		last_logged = NULL;
	}

	/* a new connection: how far each file got is read again */
	if (files != NULL)
	{
		HASH_SEQ_STATUS seq;
		ForwardFile *f;

		hash_seq_init(&seq, files);
		while ((f = hash_seq_search(&seq)) != NULL)
			f->known = false;
	}
	return true;
}

/*
 * Run a one-row, one-column query on the primary; *value: its result
 * (palloc'd).  what names the call in errors.  False: failed (disconnected).
 */
static bool
query_one(const char *what, const char *sql, int nparams, const char *const *values,
		  const int *lengths, const int *formats, char **value)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CALL_TIMEOUT_MS);
	PGresult   *res;
	PGresult   *last = NULL;
	bool		ok = false;

	if (!PQsendQueryParams(conn, sql, nparams, NULL, values, lengths, formats, 0))
	{
		failed("sending", PQerrorMessage(conn));
		return false;
	}
	for (;;)
	{
		int			flushed = PQflush(conn);

		if (flushed == 0)
			break;
		if (flushed < 0 || !wait_socket(WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE, until))
		{
			failed("sending", flushed < 0 ? PQerrorMessage(conn) : "timeout");
			return false;
		}
		if (!PQconsumeInput(conn))
		{
			failed("sending", PQerrorMessage(conn));
			return false;
		}
	}
	for (;;)
	{
		while (PQisBusy(conn))
		{
			if (!wait_socket(WL_SOCKET_READABLE, until))
			{
				failed("waiting for the primary", "timeout");
				if (last != NULL)
					PQclear(last);
				return false;
			}
			if (!PQconsumeInput(conn))
			{
				failed("waiting for the primary", PQerrorMessage(conn));
				if (last != NULL)
					PQclear(last);
				return false;
			}
		}
		res = PQgetResult(conn);
		if (res == NULL)
			break;
		if (last != NULL)
			PQclear(last);
		last = res;
	}
	if (last != NULL && PQresultStatus(last) == PGRES_TUPLES_OK &&
		PQntuples(last) == 1 && !PQgetisnull(last, 0, 0))
	{
		*value = pstrdup(PQgetvalue(last, 0, 0));
		ok = true;
	}
	else
		failed(what, last != NULL ? PQresultErrorMessage(last) : PQerrorMessage(conn));
	if (last != NULL)
		PQclear(last);
	return ok;
}

/*
 * Call lockbox.forward_access(node, file, start, records, finished) on the
 * primary; *done: its result.  False: failed (disconnected).
 */
static bool
forward_call(const char *file, int64 start, const char *records, size_t len,
			 bool finished, int64 *done)
{
	const char *values[5];
	int			lengths[5] = {0, 0, 0, (int) len, 0};
	int			formats[5] = {0, 0, 0, 1, 0};
	char		startbuf[32];
	char	   *value;

	snprintf(startbuf, sizeof(startbuf), INT64_FORMAT, start);
	values[0] = lockbox_node_name();
	values[1] = file;
	values[2] = startbuf;
	values[3] = records;
	values[4] = finished ? "true" : "false";
	if (!query_one("lockbox.forward_access on the primary",
				   "SELECT lockbox.forward_access($1, $2, $3::pg_catalog.int8, $4::pg_catalog.bytea, $5::pg_catalog.bool)",
				   5, values, lengths, formats, &value))
		return false;
	*done = strtoi64(value, NULL, 10);
	pfree(value);
	return true;
}

/*
 * Bytes of records of a file not yet forwarded: up to what its session wrote
 * while it writes it, else up to where its records end (read once: a
 * complete file does not change any more), all of it when a record in it is
 * damaged.  What cannot be forwarded counts toward the bound as what waits.
 */
static int64
file_pending(ForwardFile *f)
{
	int64		written;

	if (lockbox_spool_live(f->file, &written))
		return Max(written - f->done, 0);
	if (!f->end_known)
	{
		bool		damaged;

		f->end = lockbox_spool_end(f->file, f->done, &damaged);
		f->end_known = true;
	}
	return Max(f->end - f->done, 0);
}

/*
 * Forward one file as far as it goes.  False: the connection failed (it is
 * closed; the pass forwards nothing more).
 */
static bool
forward_file(ForwardFile *f, bool *removed)
{
	*removed = false;
	if (!f->known)
	{
		if (!forward_call(f->file, 0, NULL, 0, false, &f->done))
			return false;
		f->known = true;
	}
	for (;;)
	{
		size_t		len;
		bool		at_end;
		bool		damaged;
		bool		foreign;
		int64		done;
		char	   *buf;

		CHECK_FOR_INTERRUPTS();
		buf = lockbox_spool_chunk(f->file, (off_t) f->done, FORWARD_CHUNK,
								  &len, &at_end, &damaged, &foreign);
		if (damaged)
		{
			/*
			 * Records after a damaged one: the file stops here until someone
			 * looks.  It counts toward the bound; the error says which.
			 */
			pfree(buf);
			if (!f->damaged)
				ereport(WARNING,
						(errmsg("lockbox spool file \"%s\" has a damaged record at offset " INT64_FORMAT " and cannot be forwarded further",
								f->file, f->done)));
			f->damaged = true;
			lockbox_backlog_report(-1, -1, false,
								   psprintf("spool file \"%s\": a damaged record at offset " INT64_FORMAT,
											f->file, f->done));
			return true;
		}
		if (len == 0 && foreign)
		{
			int64		written;

			/*
			 * Records of an installation of lockbox dropped on the primary
			 * since (access_log.c, "Installations"): set aside here once the
			 * session let the file go (it moves on to a new file at its
			 * next record), and forgotten on the primary.
			 */
			pfree(buf);
			if (lockbox_spool_live(f->file, &written))
				return true;
			lockbox_spool_set_aside(f->file, f->done, dbname);
			*removed = true;
			return forward_call(f->file, 0, NULL, 0, true, &done);
		}
		if (len == 0)
		{
			pfree(buf);
			if (!at_end)
				return true;	/* a live file: more later */

			/*
			 * Everything is on the primary and the session ended: remove the
			 * file, then let the primary forget it (the other order could
			 * forward it again from the start after a crash in between).
			 */
			lockbox_spool_remove(f->file);
			*removed = true;
			return forward_call(f->file, 0, NULL, 0, true, &done);
		}
		if (!forward_call(f->file, f->done, buf, len, false, &done))
		{
			pfree(buf);
			return false;
		}
		if (done == f->done + (int64) len)
		{
			lockbox_spool_log(buf, len, lockbox_node_name());
			lockbox_backlog_report(-1, -1, true, NULL);
		}
		pfree(buf);
		if (done == f->done)
			return true;		/* nothing taken: try again next pass */
		f->done = done;
	}
}

/* One pass of forwarding: as far as the primary takes it. */
static void
forward_pass(void)
{
	List	   *names = lockbox_spool_files();
	ListCell   *lc;
	HASH_SEQ_STATUS seq;
	ForwardFile *f;
	bool		connected;
	int64		pending = 0;
	int			nfiles = 0;

	if (files == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = 64;
		ctl.entrysize = sizeof(ForwardFile);
		files = hash_create("lockbox forwarded files", 64, &ctl,
							HASH_ELEM | HASH_STRINGS);
	}
	connected = names != NIL && connect_primary();
	foreach(lc, names)
	{
		const char *name = (const char *) lfirst(lc);
		bool		found;
		bool		removed = false;

		if (strlen(name) >= 64)
			continue;
		f = hash_search(files, name, HASH_ENTER, &found);
		if (!found)
		{
			f->done = 0;
			f->known = false;
			f->end_known = false;
			f->damaged = false;
		}
		f->seen = true;
		if (connected)
			connected = forward_file(f, &removed);
		if (removed)
		{
			hash_search(files, name, HASH_REMOVE, NULL);
			continue;
		}
		pending += file_pending(f);
		nfiles++;
	}
	hash_seq_init(&seq, files);
	while ((f = hash_seq_search(&seq)) != NULL)
	{
		if (!f->seen)
			hash_search(files, f->file, HASH_REMOVE, NULL);
		else
			f->seen = false;
	}
	lockbox_backlog_report(pending, nfiles, false, NULL);
}

/* The sessions to end, in a read-only transaction of its own. */
static void
end_sessions_pass(void)
{
	last_end_sessions = GetCurrentTimestamp();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (dbname == NULL)
		dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	if (!lockbox_installed())
	{
		/* DROP EXTENSION replayed: as on a primary, the worker leaves */
		CommitTransactionCommand();
		proc_exit(0);
	}
	{
		LockboxCall call;

		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "lockbox: ending sessions (standby)");
		lockbox_enter_read(&call);
		(void) lockbox_end_sessions_standby();
		/* the installation whose records are forwarded, as replayed */
		lockbox_spool_read_owner();
		lockbox_leave(&call);
		PopActiveSnapshot();
	}
	CommitTransactionCommand();
}

static void
standby_reload(void)
{
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	/* the conninfo may have changed */
	disconnect();
	next_connect = 0;
}

/*
 * The worker's loop while the server is in recovery; returns once it is
 * promoted.  A failed pass is logged and retried after a pause that grows
 * with each failure in a row, as on a primary (1 s, doubled up to a
 * minute; one line per pause): a failure that lasts (objects of an older
 * version than the library, until the primary's ALTER EXTENSION lockbox
 * UPDATE is replayed) was two lines a second.  Between passes a SIGTERM
 * (a clean shutdown) ends the worker without an error line.
 */
void
lockbox_standby_worker(void)
{
	MemoryContext passcxt = AllocSetContextCreate(TopMemoryContext,
												  "lockbox standby pass",
												  ALLOCSET_DEFAULT_SIZES);
	volatile int failures = 0;

	while (RecoveryInProgress())
	{
		MemoryContext old;
		TimestampTz retry_at = 0;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
			standby_reload();
		old = MemoryContextSwitchTo(passcxt);
		PG_TRY();
		{
			end_sessions_pass();
			pgstat_report_activity(STATE_RUNNING, "lockbox: forwarding engineers' statements to the primary");
			forward_pass();
			failures = 0;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(passcxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			lockbox_backlog_report(-1, -1, false, edata->message);
			ereport(LOG,
					(errmsg("lockbox worker pass on the standby failed: %s", edata->message)));
			disconnect();
			failures++;
			retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   Min(60000, 1000L << Min(failures - 1, 6)));
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		MemoryContextReset(passcxt);
		pgstat_report_activity(STATE_IDLE, NULL);

		/* after a failure, only the pause (or the promotion) brings the next pass */
		while (retry_at != 0 && RecoveryInProgress())
		{
			long		until = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																retry_at);

			if (until <= 0)
				break;
			lockbox_worker_idle_wait(WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
									 Min(until, STANDBY_POLL_MS));
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
				standby_reload();
		}
		if (retry_at != 0)
			continue;

		lockbox_worker_idle_wait(WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 STANDBY_POLL_MS);
		ResetLatch(MyLatch);
	}
	disconnect();
	MemoryContextDelete(passcxt);
}
