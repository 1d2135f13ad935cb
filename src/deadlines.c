/*-------------------------------------------------------------------------
 *
 * deadlines.c
 *		What the worker does when time passes: expire pending stages whose
 *		deadline has passed, close access windows that have ended, complete
 *		revocations recorded while a session held their request, end the
 *		sessions of engineers whose access ended, and find the next deadline.
 *
 * Pending extensions of the windows it ends lapse with them.
 *
 * Each is done in bulk, skipping requests a session holds locked (whichever
 * commits first wins, the other sees the new state); which state a request
 * is in at a given time is lockbox.request_state(), as everywhere.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "lockbox.h"

PG_FUNCTION_INFO_V1(lockbox_run_deadlines);

/* a request acted on by the worker, as its bulk UPDATE returned it */
typedef struct DueRequest
{
	int64		id;
	char	   *from;
	char	   *tenant;
	Oid			requester;
} DueRequest;

/*
 * One kind of deadline, in bulk: up to batch due requests, locked (skipping
 * those a session holds), moved to their final state by one UPDATE; their
 * audit rows, chained in order, and the requesters' notifications inserted by
 * one more statement.  Returns the requests acted on.
 */
static List *
bulk_deadlines(LockboxCall *call, int batch, bool expiring)
{
	static SPIPlanPtr update_plans[2] = {NULL, NULL};
	static SPIPlanPtr insert_plan = NULL;
	static const char *const update_sql[2] = {
		/* access windows that ended */
		"WITH due AS (SELECT r.id FROM lockbox.open_request o"
		"               JOIN lockbox.request r ON r.id OPERATOR(pg_catalog.=) o.id"
		"              WHERE o.due OPERATOR(pg_catalog.<=) $1"
		"                AND r.state OPERATOR(pg_catalog.=) 'approved'"
		"                AND r.access_ends_at OPERATOR(pg_catalog.<=) $1"
		"                AND lockbox.request_state(r.state, r.deadline, r.access_ends_at,"
		"                      r.id IN (SELECT request_id FROM lockbox.revocation), $1)"
		"                    OPERATOR(pg_catalog.=) 'closed'"
		"              ORDER BY o.due LIMIT $2 FOR UPDATE OF r SKIP LOCKED)"
		" UPDATE lockbox.request r SET state = 'closed', closed_at = r.access_ends_at,"
		"        close_reason = 'window_elapsed'"
		"   FROM due WHERE r.id OPERATOR(pg_catalog.=) due.id"
		" RETURNING r.id, 'approved'::pg_catalog.text, r.tenant, r.requester",
		/* pending stages that expired */
		"WITH due AS (SELECT r.id, r.state FROM lockbox.open_request o"
		"               JOIN lockbox.request r ON r.id OPERATOR(pg_catalog.=) o.id"
		"              WHERE o.due OPERATOR(pg_catalog.<=) $1"
		"                AND r.state IN ('pending_review', 'pending_approval')"
		"                AND r.deadline OPERATOR(pg_catalog.<=) $1"
		"                AND lockbox.request_state(r.state, r.deadline, r.access_ends_at,"
		"                      r.id IN (SELECT request_id FROM lockbox.revocation), $1)"
		"                    OPERATOR(pg_catalog.=) 'expired'"
		"              ORDER BY o.due LIMIT $2 FOR UPDATE OF r SKIP LOCKED)"
		" UPDATE lockbox.request r SET state = 'expired', closed_at = r.deadline,"
		"        deadline = NULL"
		"   FROM due WHERE r.id OPERATOR(pg_catalog.=) due.id"
		" RETURNING r.id, due.state, r.tenant, r.requester"
	};
	static const char *insert_sql =
		"WITH a AS (INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor,"
		"                  event, request_id, tenant, detail, parents, hash)"
		"           SELECT u.seq, u.at, u.sun, u.actor, u.event, u.rid, u.tenant, u.detail,"
		"                  u.parents::pg_catalog.int8[], u.hash"
		"             FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
		"                  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
		"                  pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8),"
		"                  pg_catalog.unnest($9), pg_catalog.unnest($10))"
		"                  AS u(seq, at, sun, actor, event, rid, tenant, detail, parents, hash)"
		"           RETURNING 1),"
		"     i AS (SELECT pg_catalog.nextval('lockbox.notification_id_seq') AS id,"
		"                  v.rid, v.recipient, v.payload"
		"             FROM ROWS FROM (pg_catalog.unnest($6), pg_catalog.unnest($11),"
		"                  pg_catalog.unnest($12)) AS v(rid, recipient, payload)),"
		"     n AS (INSERT INTO lockbox.notification"
		"                  (id, request_id, recipient, event, payload, created_at)"
		"           SELECT i.id, i.rid, i.recipient, $13,"
		"                  i.payload OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('id', i.id),"
		"                  $14 FROM i RETURNING id),"
		"     o AS (INSERT INTO lockbox.notify_outbox (notification_id) SELECT n.id FROM n)"
		" SELECT pg_catalog.count(*) FROM a";
	Oid			update_types[2] = {TIMESTAMPTZOID, INT4OID};
	Datum		update_values[2] = {TimestampTzGetDatum(call->now), Int32GetDatum(batch)};
	Oid			insert_types[14] = {INT8ARRAYOID, TIMESTAMPTZARRAYOID, NAMEARRAYOID,
		NAMEARRAYOID, TEXTARRAYOID, INT8ARRAYOID, TEXTARRAYOID, JSONBARRAYOID,
	TEXTARRAYOID, BYTEAARRAYOID, OIDARRAYOID, JSONBARRAYOID, TEXTOID, TIMESTAMPTZOID};
	Datum		insert_values[14];
	const char *state = expiring ? "expired" : "closed";
	const char *event = expiring ? "expire" : "close";
	List	   *due = NIL;
	ListCell   *lc;
	int			n;
	Datum	   *cols[12];
	bool		isnull;

	lockbox_exec(&update_plans[expiring ? 1 : 0], update_sql[expiring ? 1 : 0],
				 2, update_types, update_values, NULL, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		DueRequest *d = palloc(sizeof(DueRequest));

		d->id = DatumGetInt64(SPI_getbinval(tup, td, 1, &isnull));
		d->from = SPI_getvalue(tup, td, 2);
		d->tenant = SPI_getvalue(tup, td, 3);
		d->requester = DatumGetObjectId(SPI_getbinval(tup, td, 4, &isnull));
		due = lappend(due, d);
	}
	n = list_length(due);
	if (n == 0)
		return NIL;

	for (int c = 0; c < 12; c++)
		cols[c] = palloc(sizeof(Datum) * n);
	n = 0;
	foreach(lc, due)
	{
		DueRequest *d = (DueRequest *) lfirst(lc);
		StringInfoData detail;
		AuditRow	row;
		AuditRow   *kept = palloc(sizeof(AuditRow));

		initStringInfo(&detail);
		appendStringInfoChar(&detail, '{');
		lockbox_json_str(&detail, "from", d->from);
		lockbox_json_str(&detail, "to", state);
		lockbox_json_str(&detail, "by", "lockbox worker");
		if (!expiring)
			lockbox_json_str(&detail, "close_reason", "window_elapsed");
		appendStringInfoChar(&detail, '}');
		lockbox_audit_row(call, event, d->id, d->tenant, detail.data, &row);

		/* the names are referenced by pointer: keep them */
		*kept = row;
		for (int c = 0; c < LOCKBOX_AUDIT_NARGS; c++)
			cols[c][n] = row.values[c];
		cols[2][n] = NameGetDatum(&kept->session_name);
		cols[3][n] = NameGetDatum(&kept->actor_name);
		cols[8][n] = CStringGetDatum(OidOutputFunctionCall(F_ARRAY_OUT, row.values[8]));
		cols[8][n] = CStringGetTextDatum(DatumGetCString(cols[8][n]));
		cols[10][n] = ObjectIdGetDatum(d->requester);
		cols[11][n] = lockbox_notification_payload(d->id, d->requester, state,
												   d->tenant, state);
		n++;
	}

	insert_values[0] = PointerGetDatum(construct_array(cols[0], n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	insert_values[1] = PointerGetDatum(construct_array(cols[1], n, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	insert_values[2] = PointerGetDatum(construct_array(cols[2], n, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
	insert_values[3] = PointerGetDatum(construct_array(cols[3], n, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
	insert_values[4] = PointerGetDatum(construct_array(cols[4], n, TEXTOID, -1, false, TYPALIGN_INT));
	insert_values[5] = PointerGetDatum(construct_array(cols[5], n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	insert_values[6] = PointerGetDatum(construct_array(cols[6], n, TEXTOID, -1, false, TYPALIGN_INT));
	insert_values[7] = PointerGetDatum(construct_array(cols[7], n, JSONBOID, -1, false, TYPALIGN_INT));
	insert_values[8] = PointerGetDatum(construct_array(cols[8], n, TEXTOID, -1, false, TYPALIGN_INT));
	insert_values[9] = PointerGetDatum(construct_array(cols[9], n, BYTEAOID, -1, false, TYPALIGN_INT));
	insert_values[10] = PointerGetDatum(construct_array(cols[10], n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	insert_values[11] = PointerGetDatum(construct_array(cols[11], n, JSONBOID, -1, false, TYPALIGN_INT));
	insert_values[12] = CStringGetTextDatum(state);
	insert_values[13] = TimestampTzGetDatum(call->now);

	lockbox_exec(&insert_plan, insert_sql, 14, insert_types, insert_values, NULL, 1);
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) != n)
		elog(ERROR, "could not record the worker's transitions");
	lockbox_relay_wake_at_commit();
	return due;
}

/*
 * Expire pending stages and close access windows whose deadline has passed:
 * at most batch of each, in the caller's transaction, between lockbox_enter
 * and lockbox_leave.  Requests a session holds locked are left for the next
 * pass; whichever commits first wins, the other sees the new state.  Returns
 * how many requests were acted on.
 */
/*
 * Revocations recorded while their request was held by another session:
 * move the requests that are still approved to revoked (their audit row was
 * written by lockbox_revoke), and forget the ones their holder moved on.
 */
static int
complete_revocations(LockboxCall *call, int batch)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(batch)};
	bool		isnull;

	lockbox_exec(&plan,
				 "WITH due AS (SELECT r.id, v.revoked_at FROM lockbox.request r"
				 "               JOIN lockbox.revocation v"
				 "                 ON v.request_id OPERATOR(pg_catalog.=) r.id"
				 "              LIMIT $1 FOR UPDATE OF r SKIP LOCKED),"
				 "     u AS (UPDATE lockbox.request r SET state = 'revoked',"
				 "                  closed_at = due.revoked_at, close_reason = 'revoked'"
				 "             FROM due WHERE r.id OPERATOR(pg_catalog.=) due.id"
				 "              AND r.state OPERATOR(pg_catalog.=) 'approved'"
				 "           RETURNING r.id),"
				 "     d AS (DELETE FROM lockbox.revocation v USING due"
				 "            WHERE v.request_id OPERATOR(pg_catalog.=) due.id RETURNING 1)"
				 " SELECT (SELECT pg_catalog.count(*) FROM d)::pg_catalog.int4",
				 1, argtypes, values, NULL, 1);
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									   1, &isnull));
}

/*
 * Pending extensions of requests whose access has ended (closed or revoked
 * by the steps above) lapse.  lockbox_close and lockbox_revoke lapse those
 * of the requests they end themselves.
 */
static void
lapse_extensions(void)
{
	static SPIPlanPtr plan = NULL;

	lockbox_exec(&plan,
				 "WITH due AS (SELECT e.id, r.closed_at FROM lockbox.extension e"
				 "               JOIN lockbox.request r"
				 "                 ON r.id OPERATOR(pg_catalog.=) e.request_id"
				 "              WHERE e.state OPERATOR(pg_catalog.=) 'pending'"
				 "                AND lockbox.extension_state(e.state, r.state)"
				 "                    OPERATOR(pg_catalog.=) 'lapsed'"
				 "              FOR UPDATE OF e SKIP LOCKED)"
				 " UPDATE lockbox.extension e SET state = 'lapsed', decided_at = due.closed_at"
				 "   FROM due WHERE e.id OPERATOR(pg_catalog.=) due.id",
				 0, NULL, NULL, NULL, 0);
}

int
lockbox_act_on_deadlines(LockboxCall *call, int batch)
{
	int			revoked = complete_revocations(call, batch);
	List	   *expired = bulk_deadlines(call, batch, true);
	List	   *closed = bulk_deadlines(call, batch, false);

	if (closed != NIL || revoked > 0)
		lapse_extensions();
	if (closed != NIL)
	{
		List	   *engineers = NIL;
		List	   *ids = NIL;
		ListCell   *lc;

		lockbox_access_changed();
		foreach(lc, closed)
		{
			DueRequest *d = (DueRequest *) lfirst(lc);

			if (!list_member_oid(engineers, d->requester))
				engineers = lappend_oid(engineers, d->requester);
			ids = lappend(ids, &d->id);
		}
		/* the approvers who approved them are told the access ended */
		lockbox_notify_deciders(call, ids, "access_ended", "closed");
		foreach(lc, engineers)
			lockbox_queue_session_end(lfirst_oid(lc), ((DueRequest *) linitial(closed))->id, 0);
	}
	if (revoked > 0)
		lockbox_access_changed();
	return revoked + list_length(expired) + list_length(closed);
}

/* The earliest deadline still to be acted on, or DT_NOEND. */
TimestampTz
lockbox_next_deadline(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	Datum		d;

	lockbox_exec(&plan,
				 "SELECT LEAST("
				 "  (SELECT pg_catalog.min(due) FROM lockbox.open_request),"
				 "  (SELECT pg_catalog.min(revoked_at) FROM lockbox.revocation))",
				 0, NULL, NULL, NULL, 1);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? DT_NOEND : DatumGetTimestampTz(d);
}

/*
 * Why lockbox ended a session, left in shared memory for the session itself
 * (indexed by its PGPROC number): the FATAL it gets then says lockbox ended
 * it and why, not just "administrator command".
 */
typedef struct SessionEndMark
{
	pid_t		pid;			/* the session marked; 0: none */
	int64		request_id;
	char		why;			/* 'w' window elapsed, 'c' closed, 'r' revoked */
} SessionEndMark;

static SessionEndMark *session_end_marks = NULL;
static int	session_end_mark_count = 0;

Size
lockbox_session_end_shmem_size(void)
{
	return mul_size(MaxBackends, sizeof(SessionEndMark));
}

void
lockbox_session_end_shmem_init(void)
{
	bool		found;

	session_end_mark_count = MaxBackends;
	session_end_marks = ShmemInitStruct("lockbox session ends",
										lockbox_session_end_shmem_size(), &found);
	if (!found)
		memset(session_end_marks, 0, lockbox_session_end_shmem_size());
}

/* End one session, leaving it the reason. */
static bool
end_session(pid_t pid, int64 request_id, char why)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	if (proc == NULL)
		return false;
	if (session_end_marks != NULL && proc->pgprocno < session_end_mark_count)
	{
		SessionEndMark *m = &session_end_marks[proc->pgprocno];

		m->request_id = request_id;
		m->why = why;
		pg_write_barrier();
		m->pid = pid;
	}
	return kill(pid, SIGTERM) == 0;
}

/*
 * The FATAL a session gets when it is terminated: when lockbox did it, say
 * so, and why (emit_log_hook, in the ending session).
 */
void
lockbox_session_end_message(ErrorData *edata)
{
	SessionEndMark *m;

	if (edata->elevel != FATAL || edata->sqlerrcode != ERRCODE_ADMIN_SHUTDOWN ||
		MyProc == NULL || session_end_marks == NULL ||
		MyProc->pgprocno >= session_end_mark_count)
		return;
	m = &session_end_marks[MyProc->pgprocno];
	if (m->pid != MyProcPid)
		return;
	pg_read_barrier();
	edata->message = pstrdup("terminating connection: lockbox ended this engineer's access");
	edata->detail = psprintf(m->why == 'r' ?
							 "Access under lockbox request " INT64_FORMAT " was revoked." :
							 m->why == 'c' ?
							 "Lockbox request " INT64_FORMAT " was closed by its requester." :
							 "The access window of lockbox request " INT64_FORMAT " has ended.",
							 m->request_id);
	edata->hint = pstrdup("Ask for access again with lockbox_request() if the work is not done.");
	m->pid = 0;
}

/*
 * End the sessions of engineers whose access ended: those queued by
 * end_access, and -- never waiting for a row lock an engineer can hold --
 * those whose request is still recorded as approved although its access has
 * ended (its window elapsed or a revocation is recorded, but a session holds
 * the request locked, so the deadline step skipped it).  Forget the queue.
 * The latter are found again at every pass until the holder lets go (the
 * worker retries every LOCKED_RETRY_MS): of those, only the sessions that
 * began before the access ended (its window's end, or the revocation) are
 * ended, so each is ended once, and a session the engineer opens afterwards,
 * which that access cannot serve, is left alone.
 * Sessions of members of the engineer count, inheriting or not (SET ROLE
 * makes them the engineer); superusers' sessions are never ended.  Returns
 * how many sessions were signalled.
 */
int
lockbox_end_sessions(void)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {TIMESTAMPTZOID, BOOLOID};
	Datum		values[2] = {TimestampTzGetDatum(GetCurrentTimestamp()),
	BoolGetDatum(lockbox_terminate_sessions)};
	int			ended = 0;

	lockbox_exec(&plan,
				 "WITH q AS (DELETE FROM lockbox.session_end"
				 "           RETURNING engineer, request_id, except_pid),"
				 "     held AS (SELECT r.requester AS engineer, r.id AS request_id, 0 AS except_pid,"
				 "                     LEAST(r.access_ends_at,"
				 "                         (SELECT pg_catalog.min(v.revoked_at) FROM lockbox.revocation v"
				 "                           WHERE v.request_id OPERATOR(pg_catalog.=) r.id)) AS ended_at"
				 "                FROM lockbox.request r"
				 "               WHERE $2 AND r.final_state IS NULL"
				 "                 AND r.state OPERATOR(pg_catalog.=) 'approved'"
				 "                 AND (r.access_ends_at OPERATOR(pg_catalog.<=) $1"
				 "                      OR r.id IN (SELECT v.request_id FROM lockbox.revocation v))"
				 "                 AND lockbox.request_state(r.state, r.deadline, r.access_ends_at,"
				 "                         r.id IN (SELECT v.request_id FROM lockbox.revocation v),"
				 "                         $1) OPERATOR(pg_catalog.<>) 'approved'),"
				 "     e AS (SELECT q.engineer, q.request_id, q.except_pid,"
				 "                  NULL::pg_catalog.timestamptz AS ended_at FROM q"
				 "           UNION ALL SELECT held.engineer, held.request_id, held.except_pid,"
				 "                  held.ended_at FROM held)"
				 " SELECT DISTINCT ON (a.pid) a.pid, e.request_id,"
				 "        CASE WHEN r.state OPERATOR(pg_catalog.=) 'revoked'"
				 "               OR r.id IN (SELECT v.request_id FROM lockbox.revocation v) THEN 'r'"
				 "             WHEN r.close_reason OPERATOR(pg_catalog.=) 'resolved' THEN 'c'"
				 "             ELSE 'w' END"
				 "   FROM pg_catalog.pg_stat_activity a"
				 "   JOIN e ON pg_catalog.pg_has_role(a.usesysid, e.engineer::pg_catalog.oid, 'MEMBER')"
				 "         AND a.pid OPERATOR(pg_catalog.<>) e.except_pid"
				 "         AND (e.ended_at IS NULL"
				 "              OR a.backend_start OPERATOR(pg_catalog.<) e.ended_at)"
				 "   LEFT JOIN lockbox.request r ON r.id OPERATOR(pg_catalog.=) e.request_id"
				 "  WHERE a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
				 "    AND a.backend_type OPERATOR(pg_catalog.=) 'client backend'"
				 "    AND NOT (SELECT x.rolsuper FROM pg_catalog.pg_roles x"
				 "              WHERE x.oid OPERATOR(pg_catalog.=) a.usesysid)"
				 "  ORDER BY a.pid, e.request_id",
				 2, argtypes, values, NULL, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		pid_t		pid = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		int64		request_id = DatumGetInt64(SPI_getbinval(tup, td, 2, &isnull));
		char	   *why = SPI_getvalue(tup, td, 3);

		if (end_session(pid, request_id, why[0]))
		{
			ended++;
			lockbox_count(LB_SESSIONS_ENDED);
		}
	}
	return ended;
}

/*
 * On a standby, read only: the worker there keeps the requests that grant
 * access now (as of replay and the clock), and ends the requester's sessions
 * when one of them stops granting it: its window ends (the clock), or the
 * close or revocation made on the primary is replayed.  Its first pass
 * also ends the sessions of requests still approved in the table whose
 * access has ended, that began before it ended (the primary's worker has
 * yet to close them).  Nothing is written: the session_end queue is the
 * primary's.  Returns how many sessions were signalled.
 */
typedef struct StandbyGrant
{
	int64		id;				/* hash key */
	Oid			requester;
	bool		seen;
} StandbyGrant;

static HTAB *standby_grants = NULL;

static int
end_requester_sessions(Oid requester, int64 request_id, char why,
					   Datum before)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {OIDOID, TIMESTAMPTZOID};
	Datum		values[2] = {ObjectIdGetDatum(requester), before};
	int			ended = 0;

	lockbox_exec(&plan,
				 "SELECT a.pid FROM pg_catalog.pg_stat_activity a"
				 " WHERE a.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()"
				 "   AND a.backend_type OPERATOR(pg_catalog.=) 'client backend'"
				 "   AND pg_catalog.pg_has_role(a.usesysid, $1, 'MEMBER')"
				 "   AND a.backend_start OPERATOR(pg_catalog.<) $2"
				 "   AND NOT (SELECT x.rolsuper FROM pg_catalog.pg_roles x"
				 "             WHERE x.oid OPERATOR(pg_catalog.=) a.usesysid)",
				 2, argtypes, values, NULL, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		pid_t		pid = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 1, &isnull));

		if (end_session(pid, request_id, why))
		{
			ended++;
			lockbox_count(LB_SESSIONS_ENDED);
		}
	}
	return ended;
}

int
lockbox_end_sessions_standby(void)
{
	static SPIPlanPtr grants_plan = NULL;
	static SPIPlanPtr held_plan = NULL;
	static SPIPlanPtr why_plan = NULL;
	Oid			argtypes[1] = {TIMESTAMPTZOID};
	TimestampTz now = GetCurrentTimestamp();
	Datum		values[1] = {TimestampTzGetDatum(now)};
	HASH_SEQ_STATUS seq;
	StandbyGrant *g;
	List	   *gone = NIL;
	ListCell   *lc;
	int			ended = 0;
	bool		first = (standby_grants == NULL);

	if (first)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(StandbyGrant);
		standby_grants = hash_create("lockbox standby grants", 64, &ctl,
									 HASH_ELEM | HASH_BLOBS);
	}

	lockbox_exec(&grants_plan,
				 "SELECT r.id, r.requester::pg_catalog.oid FROM lockbox.request r"
				 " WHERE r.final_state IS NULL"
				 "   AND r.state OPERATOR(pg_catalog.=) 'approved'"
				 "   AND lockbox.request_state(r.state, r.deadline, r.access_ends_at,"
				 "         r.id IN (SELECT v.request_id FROM lockbox.revocation v),"
				 "         $1) OPERATOR(pg_catalog.=) 'approved'",
				 1, argtypes, values, NULL, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 1, &isnull));
		bool		found;

		g = hash_search(standby_grants, &id, HASH_ENTER, &found);
		g->requester = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
													  SPI_tuptable->tupdesc, 2, &isnull));
		g->seen = true;
	}
	hash_seq_init(&seq, standby_grants);
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		if (!g->seen)
			gone = lappend(gone, g);
		g->seen = false;
	}

	foreach(lc, gone)
	{
		StandbyGrant *e = (StandbyGrant *) lfirst(lc);
		Oid			wtypes[1] = {INT8OID};
		Datum		wvalues[1] = {Int64GetDatum(e->id)};
		char		why = 'w';

		lockbox_exec(&why_plan,
					 "SELECT CASE WHEN r.state OPERATOR(pg_catalog.=) 'revoked'"
					 "              OR r.id IN (SELECT v.request_id FROM lockbox.revocation v) THEN 'r'"
					 "            WHEN r.close_reason OPERATOR(pg_catalog.=) 'resolved' THEN 'c'"
					 "            ELSE 'w' END"
					 "  FROM lockbox.request r WHERE r.id OPERATOR(pg_catalog.=) $1",
					 1, wtypes, wvalues, NULL, 1);
		if (SPI_processed > 0)
			why = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)[0];
		if (lockbox_terminate_sessions)
			ended += end_requester_sessions(e->requester, e->id, why,
											TimestampTzGetDatum(now));
		hash_search(standby_grants, &e->id, HASH_REMOVE, NULL);
	}
	list_free(gone);

	/* held on the primary or not yet closed there: once, when starting */
	if (first && lockbox_terminate_sessions)
	{
		lockbox_exec(&held_plan,
					 "SELECT r.id, r.requester::pg_catalog.oid,"
					 "       CASE WHEN r.id IN (SELECT v.request_id FROM lockbox.revocation v)"
					 "            THEN 'r' ELSE 'w' END,"
					 "       LEAST(r.access_ends_at,"
					 "             (SELECT pg_catalog.min(v.revoked_at) FROM lockbox.revocation v"
					 "               WHERE v.request_id OPERATOR(pg_catalog.=) r.id))"
					 "  FROM lockbox.request r"
					 " WHERE r.final_state IS NULL"
					 "   AND r.state OPERATOR(pg_catalog.=) 'approved'"
					 "   AND lockbox.request_state(r.state, r.deadline, r.access_ends_at,"
					 "         r.id IN (SELECT v.request_id FROM lockbox.revocation v),"
					 "         $1) OPERATOR(pg_catalog.<>) 'approved'",
					 1, argtypes, values, NULL, 0);
		if (SPI_processed > 0)
		{
			SPITupleTable *tt = SPI_tuptable;
			uint64		n = SPI_processed;

			for (uint64 i = 0; i < n; i++)
			{
				bool		isnull;
				int64		id = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
				Oid			requester = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
				char		why = SPI_getvalue(tt->vals[i], tt->tupdesc, 3)[0];
				Datum		before = SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull);

				ended += end_requester_sessions(requester, id, why, before);
			}
		}
	}
	return ended;
}

/*
 * lockbox.run_deadlines(batch int) -> int: one batch of the worker's
 * deadline step in the caller's transaction, for the extension owner (and
 * for tests that race it against sessions).  Returns how many requests it
 * acted on.
 */
Datum
lockbox_run_deadlines(PG_FUNCTION_ARGS)
{
	LockboxCall call;
	int32		batch;
	int			done;

	lockbox_require_arg(fcinfo, 0, "batch");
	batch = PG_GETARG_INT32(0);
	if (batch < 1 || batch > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch must be between 1 and 100000")));
	lockbox_enter(&call);
	done = lockbox_act_on_deadlines(&call, batch);
	lockbox_leave(&call);
	PG_RETURN_INT32(done);
}
