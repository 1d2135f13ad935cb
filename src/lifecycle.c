/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *		Requests and every transition of their lifecycle:
 *
 *		lockbox_request		(engineer)   -> pending_review
 *		lockbox_approve		stage 1 (reviewer)  -> pending_approval, or
 *							approved when the tenant's lockbox is off;
 *							stage 2 (approvers) -> approved at quorum
 *		lockbox_deny		either stage         -> denied
 *		lockbox_cancel		(requester)          -> cancelled
 *		lockbox_close		(requester)          -> closed (resolved)
 *		lockbox_revoke		(approver, reviewer) -> revoked
 *		lockbox_extend		(requester)          approved, an extension of
 *							its window pending; approvers decide on it with
 *							lockbox_approve / lockbox_deny (still approved)
 *
 * What the worker does at deadlines is in deadlines.c.
 *
 * Every transition locks the request row first, so two sessions acting on
 * one request take turns: the second sees the first's outcome and is refused
 * when the state no longer allows its step.  Deadlines are checked against
 * the statement's clock, so a pending stage past its deadline is refused as
 * expired even before the worker has recorded the expiry.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/fmgroids.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "lockbox.h"

PG_FUNCTION_INFO_V1(lockbox_request);
PG_FUNCTION_INFO_V1(lockbox_approve);
PG_FUNCTION_INFO_V1(lockbox_deny);
PG_FUNCTION_INFO_V1(lockbox_cancel);
PG_FUNCTION_INFO_V1(lockbox_close);
PG_FUNCTION_INFO_V1(lockbox_revoke);
PG_FUNCTION_INFO_V1(lockbox_extend);
PG_FUNCTION_INFO_V1(lockbox_request_open_sync);

/* how long lockbox_revoke waits for a request another session holds */
#define REVOKE_LOCK_WAIT_MS	1000

/* longest ticket reference, in characters */
#define LOCKBOX_MAX_TICKET	200

/* A request row, as locked for a transition. */
typedef struct Request
{
	int64		id;
	char	   *tenant;
	Oid			requester;
	char	   *state;
	char	   *effective_state;	/* lockbox.request_state() when read */
	TimestampTz as_of;			/* ... at this time */
	bool		has_deadline;
	TimestampTz deadline;
	Oid			reviewer;
	bool		has_reviewed_at;
	TimestampTz reviewed_at;
	bool		has_approved_at;
	TimestampTz approved_at;
	bool		has_access_ends_at;
	TimestampTz access_ends_at;
	bool		has_closed_at;
	TimestampTz closed_at;
	char	   *close_reason;
	Interval	duration;
	ArrayType  *tables;
	ItemPointerData tid;		/* the version locked (LOCK_WAIT), else invalid */
	/* the tenant's, read with the request */
	bool		tenant_enabled;
	int			required_approvals;
	List	   *approvers;		/* role OIDs bound to the tenant */
} Request;

static TimestampTz
add_interval(TimestampTz t, Interval *span)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(t),
												   IntervalPGetDatum(span)));
}

static int
interval_compare(Interval *a, Interval *b)
{
	return DatumGetInt32(DirectFunctionCall2(interval_cmp,
											 IntervalPGetDatum(a),
											 IntervalPGetDatum(b)));
}

/*
 * A duration as the exact length of time it spans from now, in microseconds
 * only.  Months and days are calendar units: '1 mon -29 days' or '1 day' can
 * be longer or shorter than they compare (a month compares as 30 days, a day
 * as 24 hours), so an access window is fixed as a plain length, the one
 * checked against the maximum.  Absurd values are refused before the
 * arithmetic can overflow.
 */
static Interval
exact_duration(Interval *span, TimestampTz now, const char *what)
{
	Interval	result;

	if (span->month > 1200 || span->month < -1200 ||
		span->day > 36600 || span->day < -36600 ||
		span->time > 3162240000LL * USECS_PER_SEC ||
		span->time < -3162240000LL * USECS_PER_SEC)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is out of range", what),
				 errdetail("Durations are limited to 100 years.")));
	memset(&result, 0, sizeof(result));
	result.time = add_interval(now, span) - now;
	return result;
}

/* An interval as text, the same whatever the session's IntervalStyle. */
static char *
interval_text(Interval *span)
{
	struct pg_itm itm;
	char		buf[MAXDATELEN + 1];

	interval2itm(*span, &itm);
	EncodeInterval(&itm, INTSTYLE_POSTGRES, buf);
	return pstrdup(buf);
}

static bool
is_pending(const char *state)
{
	return strcmp(state, "pending_review") == 0 ||
		strcmp(state, "pending_approval") == 0;
}

/*
 * The state as the views show it (lockbox.request_state: deadlines passed
 * and revocations recorded count as acted on), read with the request.
 */
static const char *
effective_state(Request *r, TimestampTz now)
{
	return r->effective_state;
}

/* ---------------------------------------------------------------------
 * Open requests
 *
 * A transition updates its request in place (HOT) only if it changes no
 * column an index of lockbox.request names: so no index of the request
 * names its state, its deadline or its access window's end.  The indexes
 * name final_state instead (a stored generated column: the settled state,
 * NULL while open), which only the settling transition changes; the views,
 * the grants lookup and the worker's other queries find the open requests
 * as final_state IS NULL (request_open_idx).  The worker's deadlines are in
 * lockbox.open_request: each open request with the time the worker must
 * look at it next (the pending stage's deadline, the access window's end),
 * indexed.  A request leaves it when it settles.  The trigger below keeps
 * it in step with every write of a request's state, deadline or window,
 * lockbox's own and any other (an operator's UPDATE, a restore's COPY).
 * ---------------------------------------------------------------------
 */

/*
 * What a transition wrote into lockbox.open_request itself, in the store
 * that also wrote the request (store_open_request): the trigger, fired when
 * that store closes, finds the row already as the request implies and does
 * not write it again.  Set only while that store closes.
 */
typedef struct OpenNote
{
	bool		valid;
	int64		id;
	bool		is_open;
	bool		has_due;
	TimestampTz due;
} OpenNote;

static OpenNote open_note;

/* Whether the request row tup is open, and then its next deadline, if any. */
static bool
open_due(HeapTuple tup, TupleDesc td, TimestampTz *due, bool *has_due)
{
	bool		isnull;
	Datum		d = lockbox_store_get(tup, td, "state", &isnull);
	char	   *state = isnull ? "" : TextDatumGetCString(d);
	const char *column;

	if (is_pending(state))
		column = "deadline";
	else if (strcmp(state, "approved") == 0)
		column = "access_ends_at";
	else
		return false;
	d = lockbox_store_get(tup, td, column, &isnull);
	*has_due = !isnull;
	*due = isnull ? 0 : DatumGetTimestampTz(d);
	return true;
}

/*
 * lockbox.request_open_sync(): AFTER INSERT OR UPDATE OF state, deadline,
 * access_ends_at (or id) ON lockbox.request FOR EACH ROW.  Runs under the
 * request's row lock (the writer's), so no one else writes the request's
 * row of lockbox.open_request meanwhile.
 */
Datum
lockbox_request_open_sync(PG_FUNCTION_ARGS)
{
	static const char *const tables[] = {"open_request"};
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	td;
	HeapTuple	tup;
	bool		isnull;
	int64		id;
	bool		is_open;
	bool		has_due = false;
	TimestampTz due = 0;
	int64		old_id;
	LockboxStore *store;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) ||
		TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("lockbox.request_open_sync() must be fired after insert or update, for each row")));
	td = RelationGetDescr(trigdata->tg_relation);
	tup = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ?
		trigdata->tg_newtuple : trigdata->tg_trigtuple;
	id = DatumGetInt64(lockbox_store_get(tup, td, "id", &isnull));
	is_open = open_due(tup, td, &due, &has_due);
	old_id = id;
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		HeapTuple	old = trigdata->tg_trigtuple;
		bool		old_has_due = false;
		TimestampTz old_due = 0;
		bool		was_open = open_due(old, td, &old_due, &old_has_due);

		old_id = DatumGetInt64(lockbox_store_get(old, td, "id", &isnull));
		/* (nothing lockbox.open_request holds changed) */
		if (old_id == id && was_open == is_open &&
			(!is_open || (old_has_due == has_due && old_due == due)))
			return PointerGetDatum(NULL);
	}
	else if (!is_open)
		return PointerGetDatum(NULL);
	/* (the transition that wrote the request wrote this already) */
	if (open_note.valid && open_note.id == id && old_id == id &&
		open_note.is_open == is_open &&
		(!is_open || (open_note.has_due == has_due && open_note.due == due)))
	{
		open_note.valid = false;
		return PointerGetDatum(NULL);
	}

	store = lockbox_store_open(lengthof(tables), tables);
	if (old_id != id && lockbox_store_fetch(store, 0, old_id))
		lockbox_store_delete(store, 0);
	if (lockbox_store_fetch(store, 0, id))
	{
		if (!is_open)
			lockbox_store_delete(store, 0);
		else
		{
			lockbox_store_set(store, 0, "due", TimestampTzGetDatum(due),
							  TIMESTAMPTZOID, !has_due);
			lockbox_store_update(store, 0);
		}
	}
	else if (is_open)
	{
		lockbox_store_new_row(store, 0);
		lockbox_store_set(store, 0, "id", Int64GetDatum(id), INT8OID, false);
		lockbox_store_set(store, 0, "due", TimestampTzGetDatum(due),
						  TIMESTAMPTZOID, !has_due);
		lockbox_store_insert(store, 0);
	}
	lockbox_store_close(store);
	return PointerGetDatum(NULL);
}

/* ---------------------------------------------------------------------
 * Loading and saving a request
 * ---------------------------------------------------------------------
 */
typedef enum LockMode
{
	LOCK_WAIT,					/* FOR UPDATE */
	LOCK_NONE					/* read only */
} LockMode;

/*
 * A request keeps its tenant's name when the tenant is removed
 * (lockbox_remove_tenant, which only removes tenants whose requests have all
 * ended): such a request is read without its tenant's settings and
 * approvers, and every transition refuses it for its state.
 */
static Request *read_request(int64 id, LockMode mode);

/* Lock and read a request, or refuse with 42704.  Between enter and leave. */
static Request *
lock_request(int64 id)
{
	return read_request(id, LOCK_WAIT);
}

static bool
get_ts_col(HeapTuple tup, TupleDesc td, const char *name, TimestampTz *out)
{
	bool		isnull;
	Datum		d = lockbox_store_get(tup, td, name, &isnull);

	if (!isnull)
		*out = DatumGetTimestampTz(d);
	return !isnull;
}

static char *
get_text_col(HeapTuple tup, TupleDesc td, const char *name)
{
	bool		isnull;
	Datum		d = lockbox_store_get(tup, td, name, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/*
 * Read a request with its tenant's settings and approvers, and its state as
 * of the statement's start (lockbox.request_state: deadlines passed and
 * revocations recorded count as acted on).  LOCK_WAIT locks the row as
 * SELECT ... FOR UPDATE would: after waiting for another transaction's
 * lock, the newest version is the one read (read committed), or the
 * transaction fails to serialize (repeatable read and serializable); the
 * state is then as of the time the lock was taken, and the rest is read as
 * committed then.  LOCK_NONE reads with the transaction's snapshot.
 */
static Request *
read_request(int64 id, LockMode mode)
{
	TupleDesc	td;
	HeapTuple	tup = NULL;
	Snapshot	snapshot;
	Request    *r;
	Datum		key = Int64GetDatum(id);
	List	   *rows;
	TupleDesc	rtd;
	bool		isnull;
	TimestampTz at = GetCurrentStatementStartTimestamp();
	bool		revoked;
	ListCell   *lc;

	if (mode == LOCK_WAIT)
	{
		tup = lockbox_store_lock("request", 1, &key, LockTupleExclusive, &td,
								 psprintf("lockbox request " INT64_FORMAT, id));

		/*
		 * Waiting for the lock took time: deadlines are judged as of now.
		 * And the tenant's settings, its approvers and a revocation are read
		 * as committed now, whatever the isolation level: a repeatable-read
		 * snapshot taken before lockbox_set_enabled or
		 * lockbox_remove_approver committed must not decide on the request.
		 */
		at = Max(at, GetCurrentTimestamp());
		CommandCounterIncrement();
		snapshot = RegisterSnapshot(GetLatestSnapshot());
	}
	else
	{
		CommandCounterIncrement();
		snapshot = RegisterSnapshot(GetTransactionSnapshot());
	}
	if (mode != LOCK_WAIT)
	{
		rows = lockbox_store_read("request", 1, &key, snapshot, &td);
		if (rows != NIL)
			tup = linitial(rows);
	}
	if (tup == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("lockbox request " INT64_FORMAT " does not exist", id)));

	r = palloc0(sizeof(Request));
	r->id = id;
	if (mode == LOCK_WAIT)
		r->tid = tup->t_self;
	else
		ItemPointerSetInvalid(&r->tid);
	r->tenant = get_text_col(tup, td, "tenant");
	r->requester = DatumGetObjectId(lockbox_store_get(tup, td, "requester", &isnull));
	r->state = get_text_col(tup, td, "state");
	r->has_deadline = get_ts_col(tup, td, "deadline", &r->deadline);
	{
		Datum		d = lockbox_store_get(tup, td, "reviewer", &isnull);

		r->reviewer = isnull ? InvalidOid : DatumGetObjectId(d);
	}
	r->has_reviewed_at = get_ts_col(tup, td, "reviewed_at", &r->reviewed_at);
	r->has_approved_at = get_ts_col(tup, td, "approved_at", &r->approved_at);
	r->has_access_ends_at = get_ts_col(tup, td, "access_ends_at", &r->access_ends_at);
	r->has_closed_at = get_ts_col(tup, td, "closed_at", &r->closed_at);
	r->close_reason = get_text_col(tup, td, "close_reason");
	r->duration = *DatumGetIntervalP(lockbox_store_get(tup, td, "duration", &isnull));
	r->tables = DatumGetArrayTypePCopy(lockbox_store_get(tup, td, "tables", &isnull));

	/*
	 * the tenant's settings and approvers (none when it was removed): as
	 * committed now after the lock, else as of the transaction's snapshot
	 */
	if (mode == LOCK_WAIT)
		lockbox_tenant_facts(r->tenant, snapshot, at, &r->tenant_enabled,
							 &r->required_approvals, &r->approvers);
	else
	{
		key = CStringGetTextDatum(r->tenant);
		rows = lockbox_store_read("tenant", 1, &key, snapshot, &rtd);
		r->tenant_enabled = true;
		r->required_approvals = 1;
		if (rows != NIL)
		{
			Datum		d;

			d = lockbox_store_get(linitial(rows), rtd, "enabled", &isnull);
			if (isnull)
				elog(ERROR, "tenant \"%s\" has no setting \"enabled\"", r->tenant);
			r->tenant_enabled = DatumGetBool(d);
			d = lockbox_store_get(linitial(rows), rtd, "required_approvals", &isnull);
			if (isnull)
				elog(ERROR, "tenant \"%s\" has no setting \"required_approvals\"", r->tenant);
			r->required_approvals = DatumGetInt32(d);
		}
		r->approvers = NIL;
		rows = lockbox_store_read("approver", 1, &key, snapshot, &rtd);
		foreach(lc, rows)
			r->approvers = lappend_oid(r->approvers,
									   DatumGetObjectId(lockbox_store_get(lfirst(lc), rtd,
																		  "approver", &isnull)));
	}

	/* the state as of now (a revocation counts only for an approved request) */
	key = Int64GetDatum(id);
	revoked = strcmp(r->state, "approved") == 0 &&
		lockbox_store_read("revocation", 1, &key, snapshot, &rtd) != NIL;
	UnregisterSnapshot(snapshot);
	r->as_of = at;
	if (is_pending(r->state) && r->has_deadline && r->deadline <= at)
		r->effective_state = "expired";
	else if (strcmp(r->state, "approved") == 0 && revoked)
		r->effective_state = "revoked";
	else if (strcmp(r->state, "approved") == 0 && r->has_access_ends_at &&
			 r->access_ends_at <= at)
		r->effective_state = "closed";
	else
		r->effective_state = pstrdup(r->state);
	return r;
}

/* Move to a final state now. */
static void
finish(Request *r, const char *state, const char *close_reason, TimestampTz now)
{
	r->state = pstrdup(state);
	r->has_deadline = false;
	r->has_closed_at = true;
	r->closed_at = now;
	r->close_reason = close_reason ? pstrdup(close_reason) : NULL;
}

/*
 * Record a step on a request, in one statement: the request row (when save),
 * its audit row, and its notifications, each also queued for the worker's
 * NOTIFY.  Notified are, in this order: the requester, for every state change
 * after the request was filed except the one into pending_approval (when
 * notify_requester); each role of notify_roles, with event notify_event (the
 * approvers asked to decide, or the requester told of an extension's fate);
 * and, with deciders_event, the approvers who voted for the request (access
 * started or ended).  One statement per transition: its round trips through
 * the executor are most of what a transition costs besides its commit.
 */
/* the tables a transition writes */
enum
{
	T_REQUEST,
	T_AUDIT,
	T_NOTIFICATION,
	T_OPEN
};
static const char *const transition_tables[] = {
	"request", "audit_log", "notification", "open_request"
};

/*
 * Write request r's row of lockbox.open_request as its new state implies
 * (as the trigger request_open_sync would), in the store that wrote the
 * request, and note it for the trigger.  new_row: r was just filed and the
 * store wrote its row itself, so that the trigger did not fire and it has
 * no row there yet.
 */
static void
store_open_request(LockboxStore *store, Request *r, bool new_row)
{
	bool		is_open = true;
	bool		has_due = false;
	TimestampTz due = 0;
	bool		found = false;

	if (is_pending(r->state))
	{
		has_due = r->has_deadline;
		due = r->deadline;
	}
	else if (strcmp(r->state, "approved") == 0)
	{
		has_due = r->has_access_ends_at;
		due = r->access_ends_at;
	}
	else
		is_open = false;

	/*
	 * (fetched also for a new request written with SQL, see needs_sql: the
	 * trigger has fired already)
	 */
	found = !new_row && lockbox_store_fetch(store, T_OPEN, r->id);
	if (found && !is_open)
		lockbox_store_delete(store, T_OPEN);
	else if (found)
	{
		lockbox_store_set(store, T_OPEN, "due", TimestampTzGetDatum(due),
						  TIMESTAMPTZOID, !has_due);
		lockbox_store_update(store, T_OPEN);
	}
	else if (is_open)
	{
		lockbox_store_new_row(store, T_OPEN);
		lockbox_store_set(store, T_OPEN, "id", Int64GetDatum(r->id), INT8OID, false);
		lockbox_store_set(store, T_OPEN, "due", TimestampTzGetDatum(due),
						  TIMESTAMPTZOID, !has_due);
		lockbox_store_insert(store, T_OPEN);
	}
	open_note.id = r->id;
	open_note.is_open = is_open;
	open_note.has_due = has_due;
	open_note.due = due;
}

/*
 * Close a transition's store: its triggers fire, request_open_sync with
 * the note of what store_open_request wrote.
 */
static void
close_transition_store(LockboxStore *store)
{
	open_note.valid = true;
	PG_TRY();
	{
		lockbox_store_close(store);
	}
	PG_FINALLY();
	{
		open_note.valid = false;
	}
	PG_END_TRY();
}

/*
 * A notification's payload, but its id: the object lockbox_notification_payload
 * parses from text, built as jsonb directly (a transition writes up to four).
 */
typedef struct Payload
{
	const char *event;
	int64		request_id;
	const char *tenant;
	const char *state;
	Oid			recipient;
	JsonbValue *anchors;		/* the audit's head; NULL: none in the payload */
} Payload;

/* Pair *n of an object being built: key and value (filled by the caller). */
static JsonbValue *
payload_pair(JsonbPair *pairs, int *n, const char *key)
{
	JsonbPair  *pair = &pairs[(*n)++];

	pair->key.type = jbvString;
	pair->key.val.string.val = (char *) key;
	pair->key.val.string.len = strlen(key);
	pair->order = *n - 1;
	return &pair->value;
}

static void
payload_str(JsonbPair *pairs, int *n, const char *key, const char *value)
{
	JsonbValue *v = payload_pair(pairs, n, key);

	v->type = jbvString;
	v->val.string.val = (char *) value;
	v->val.string.len = strlen(value);
}

static void
payload_int8(JsonbPair *pairs, int *n, const char *key, int64 value)
{
	JsonbValue *v = payload_pair(pairs, n, key);

	v->type = jbvNumeric;
	v->val.numeric = int64_to_numeric(value);
}

/* The audit's head, as the payloads of this transition's notifications name it. */
static JsonbValue *
payload_anchors(void)
{
	return lockbox_audit_head_value();
}

/* Write a notification, and hand it to the worker's NOTIFY at commit. */
static void
store_notification(LockboxStore *store, const Payload *p, TimestampTz now)
{
	Oid			seq = lockbox_relid("notification_id_seq");
	int64		id;
	Datum		with_id;
	JsonbPair	pairs[7];
	int			n = 0;
	JsonbValue	object;
	int64		request_id = p->request_id;
	Oid			recipient = p->recipient;
	const char *event = p->event;

	if (!OidIsValid(seq))
		elog(ERROR, "lockbox.notification_id_seq is missing");
	id = nextval_internal(seq, false);
	/*
	 * The keys as lockbox_notification_payload_text writes them, and the id,
	 * in jsonb's order of keys (the shorter first, then bytewise), which an
	 * object built this way must have: pushJsonbValue would sort them.
	 */
	payload_int8(pairs, &n, "id", id);
	payload_str(pairs, &n, "event", p->event);
	payload_str(pairs, &n, "state", p->state);
	payload_str(pairs, &n, "tenant", p->tenant);
	if (p->anchors != NULL)
		*payload_pair(pairs, &n, "anchors") = *p->anchors;
	payload_str(pairs, &n, "recipient", lockbox_role_name(p->recipient));
	payload_int8(pairs, &n, "request_id", p->request_id);
	object.type = jbvObject;
	object.val.object.nPairs = n;
	object.val.object.pairs = pairs;
	with_id = JsonbPGetDatum(JsonbValueToJsonb(&object));
	lockbox_store_new_row(store, T_NOTIFICATION);
	lockbox_store_set(store, T_NOTIFICATION, "id", Int64GetDatum(id), INT8OID, false);
	lockbox_store_set(store, T_NOTIFICATION, "request_id",
					  Int64GetDatum(request_id), INT8OID, false);
	lockbox_store_set(store, T_NOTIFICATION, "recipient",
					  ObjectIdGetDatum(recipient), REGROLEOID, false);
	lockbox_store_set(store, T_NOTIFICATION, "event",
					  CStringGetTextDatum(event), TEXTOID, false);
	lockbox_store_set(store, T_NOTIFICATION, "payload", with_id, JSONBOID, false);
	lockbox_store_set(store, T_NOTIFICATION, "created_at",
					  TimestampTzGetDatum(now), TIMESTAMPTZOID, false);
	lockbox_store_insert(store, T_NOTIFICATION);
	lockbox_relay_at_commit(id);
}

/*
 * The approvers who voted for a request (stage 2 "approve" decisions), in
 * the order of their role OIDs, this transaction's own votes included.
 */
static List *
approving_deciders(int64 request_id)
{
	Datum		key = Int64GetDatum(request_id);
	Snapshot	snapshot;
	TupleDesc	td;
	List	   *rows;
	ListCell   *lc;
	List	   *result = NIL;

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	/* (the primary key is (request_id, approver): in approver order) */
	rows = lockbox_store_read("decision", 1, &key, snapshot, &td);
	UnregisterSnapshot(snapshot);
	foreach(lc, rows)
	{
		bool		isnull;
		Datum		d = lockbox_store_get(lfirst(lc), td, "decision", &isnull);

		if (!isnull && strcmp(TextDatumGetCString(d), "approve") == 0)
			result = lappend_oid(result,
								 DatumGetObjectId(lockbox_store_get(lfirst(lc), td,
																	"approver", &isnull)));
	}
	return result;
}

static void
record_notify(LockboxCall *call, Request *r, const char *event, const char *from,
			  StringInfo extra, bool notify_requester, bool save,
			  List *notify_roles, const char *notify_event,
			  const char *deciders_event)
{
	StringInfoData detail;
	AuditRow	row;
	bool		notify = notify_requester && strcmp(from, r->state) != 0;
	List	   *deciders = NIL;
	LockboxStore *store;
	ListCell   *lc;
	bool		notified = false;
	JsonbValue *anchors = NULL;

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_str(&detail, "from", from);
	lockbox_json_str(&detail, "to", r->state);
	if (extra != NULL && extra->len > 0)
		appendStringInfo(&detail, ", %s", extra->data);
	appendStringInfoChar(&detail, '}');
	if (deciders_event != NULL)
		deciders = approving_deciders(r->id);
	lockbox_audit_row(call, event, r->id, r->tenant, detail.data, &row);

	store = lockbox_store_open(lengthof(transition_tables), transition_tables);
	/* (store_open_request does request_open_sync's work) */
	lockbox_store_skip_trigger(store, T_REQUEST, "request_open_sync");
	if (save)
	{
		if (!lockbox_store_fetch_version(store, T_REQUEST, &r->tid, r->id))
			elog(ERROR, "could not record lockbox request " INT64_FORMAT, r->id);
		lockbox_store_set(store, T_REQUEST, "state",
						  CStringGetTextDatum(r->state), TEXTOID, false);
		lockbox_store_set(store, T_REQUEST, "deadline",
						  TimestampTzGetDatum(r->deadline), TIMESTAMPTZOID,
						  !r->has_deadline);
		lockbox_store_set(store, T_REQUEST, "reviewer",
						  ObjectIdGetDatum(r->reviewer), REGROLEOID,
						  !OidIsValid(r->reviewer));
		lockbox_store_set(store, T_REQUEST, "reviewed_at",
						  TimestampTzGetDatum(r->reviewed_at), TIMESTAMPTZOID,
						  !r->has_reviewed_at);
		lockbox_store_set(store, T_REQUEST, "approved_at",
						  TimestampTzGetDatum(r->approved_at), TIMESTAMPTZOID,
						  !r->has_approved_at);
		lockbox_store_set(store, T_REQUEST, "access_ends_at",
						  TimestampTzGetDatum(r->access_ends_at), TIMESTAMPTZOID,
						  !r->has_access_ends_at);
		lockbox_store_set(store, T_REQUEST, "closed_at",
						  TimestampTzGetDatum(r->closed_at), TIMESTAMPTZOID,
						  !r->has_closed_at);
		lockbox_store_set(store, T_REQUEST, "close_reason",
						  r->close_reason ? CStringGetTextDatum(r->close_reason) : (Datum) 0,
						  TEXTOID, r->close_reason == NULL);
		lockbox_store_update(store, T_REQUEST);
		store_open_request(store, r, false);
	}
	lockbox_audit_store(store, T_AUDIT, &row);

	/* (payloads after the audit row: their anchors name it) */
	if (notify || notify_roles != NIL)
		anchors = payload_anchors();
	if (notify)
	{
		Payload		p = {r->state, r->id, r->tenant, r->state, r->requester, anchors};

		store_notification(store, &p, call->now);
		notified = true;
	}
	foreach(lc, notify_roles)
	{
		Payload		p = {notify_event, r->id, r->tenant, r->state, lfirst_oid(lc), anchors};

		store_notification(store, &p, call->now);
		notified = true;
	}
	foreach(lc, deciders)
	{
		/* (no anchors in these) */
		Payload		p = {deciders_event, r->id, r->tenant, r->state, lfirst_oid(lc), NULL};

		store_notification(store, &p, call->now);
		notified = true;
	}
	if (save)
		close_transition_store(store);
	else
		lockbox_store_close(store);
	if (notified)
		lockbox_relay_wake_at_commit();
}

/* A step that notifies no one but (maybe) the requester. */
static void
record(LockboxCall *call, Request *r, const char *event, const char *from,
	   StringInfo extra, bool notify_requester, bool save)
{
	record_notify(call, r, event, from, extra, notify_requester, save,
				  NIL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Refusals shared by the transitions
 * ---------------------------------------------------------------------
 */
static void
refuse_state(Request *r, TimestampTz now, const char *step)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("cannot %s lockbox request " INT64_FORMAT ": it is %s",
					step, r->id, effective_state(r, now))));
}

/* The requester, in whatever role, never decides on their own request. */
static void
refuse_requester(LockboxCall *call, Request *r, const char *step)
{
	if (lockbox_same_party(call->caller, r->requester) ||
		lockbox_same_party(call->session_user, r->requester))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s lockbox request " INT64_FORMAT, step, r->id),
				 errdetail("Role \"%s\" filed this request; a requester never reviews or approves it.",
						   lockbox_role_name(r->requester))));
}

static void
require_reviewer(LockboxCall *call, Request *r, const char *step)
{
	if (!lockbox_has_role(call->caller, LB_REVIEWER))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s lockbox request " INT64_FORMAT, step, r->id),
				 errdetail("The request awaits review; only members of lockbox_reviewer decide at this stage.")));
	refuse_requester(call, r, step);
}

static void
require_approver(LockboxCall *call, Request *r, const char *step)
{
	if (!lockbox_approver_among(call->caller, r->approvers))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s lockbox request " INT64_FORMAT, step, r->id),
				 errdetail("Role \"%s\" is not an approver of the request's tenant.",
						   lockbox_role_name(call->caller))));
}

/* Stage 2 deciders: an approver, neither the requester nor the reviewer. */
static void
require_stage2_decider(LockboxCall *call, Request *r, const char *step)
{
	require_approver(call, r, step);
	refuse_requester(call, r, step);
	if (lockbox_same_party(call->caller, r->reviewer) ||
		lockbox_same_party(call->session_user, r->reviewer))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s lockbox request " INT64_FORMAT, step, r->id),
				 errdetail("Role \"%s\" reviewed this request; the reviewer never also approves it.",
						   lockbox_role_name(r->reviewer))));
}

/*
 * A reviewer (not an approver of the tenant) acting on a request that has
 * moved on to stage 2 (after losing a race with another reviewer, say): the
 * step belongs to the tenant's approvers, so the caller is not allowed.
 */
static void
refuse_reviewer_late(LockboxCall *call, Request *r, const char *step,
					 bool extension)
{
	if (lockbox_has_role(call->caller, LB_REVIEWER) &&
		!lockbox_approver_among(call->caller, r->approvers))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s lockbox request " INT64_FORMAT, step, r->id),
				 extension ?
				 errdetail("An extension of its access window awaits the approvers of tenant \"%s\"; role \"%s\" is a reviewer, not one of them.",
						   r->tenant, lockbox_role_name(call->caller)) :
				 errdetail("The request has been reviewed and awaits the approvers of tenant \"%s\"; role \"%s\" is a reviewer, not one of them.",
						   r->tenant, lockbox_role_name(call->caller))));
}

static void
refuse_expired(Request *r, TimestampTz now, const char *step)
{
	if (r->has_deadline && r->deadline <= Max(now, r->as_of))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s lockbox request " INT64_FORMAT ": it has expired",
						step, r->id),
				 errdetail("Its %s stage ended at %s.",
						   strcmp(r->state, "pending_review") == 0 ? "review" : "approval",
						   timestamptz_to_str(r->deadline))));
}

static void
require_requester(LockboxCall *call, Request *r, const char *step)
{
	if (call->caller != r->requester)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s lockbox request " INT64_FORMAT, step, r->id),
				 errdetail("Only its requester may %s it.", step)));
}

static int64
request_id_arg(FunctionCallInfo fcinfo)
{
	lockbox_require_arg(fcinfo, 0, "request_id");
	return PG_GETARG_INT64(0);
}

/* ---------------------------------------------------------------------
 * lockbox_request
 * ---------------------------------------------------------------------
 */

/* a protected table, as lockbox_request sees it */
typedef struct Protected
{
	Oid			relid;
	char	   *tenant;			/* whole table of one tenant, else NULL */
	Oid			keytype;		/* type of the tenant column */
} Protected;

static List *
protected_tables(void)
{
	List	   *result = NIL;
	List	   *rows;
	TupleDesc	td;
	Snapshot	snapshot;
	ListCell   *lc;

	/*
	 * (in relid order, through the primary key's index; with a snapshot
	 * taken now, as a statement's: see lockbox_exec)
	 */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	rows = lockbox_store_read("protected_table", 0, NULL, snapshot, &td);
	UnregisterSnapshot(snapshot);
	foreach(lc, rows)
	{
		HeapTuple	tup = lfirst(lc);
		Protected  *p = palloc(sizeof(Protected));
		bool		isnull;
		Datum		d;

		p->relid = DatumGetObjectId(lockbox_store_get(tup, td, "relid", &isnull));
		d = lockbox_store_get(tup, td, "tenant", &isnull);
		p->tenant = isnull ? NULL : TextDatumGetCString(d);
		d = lockbox_store_get(tup, td, "tenant_column", &isnull);
		p->keytype = InvalidOid;
		if (!isnull)
		{
			AttrNumber	attnum = get_attnum(p->relid, NameStr(*DatumGetName(d)));

			if (attnum != InvalidAttrNumber)
				p->keytype = get_atttype(p->relid, attnum);
		}
		result = lappend(result, p);
	}
	return result;
}

/* Does a protected table hold rows of this tenant? */
static bool
covers(Protected *p, const char *tenant)
{
	if (p->tenant != NULL)
		return strcmp(p->tenant, tenant) == 0;
	return lockbox_valid_key(tenant, p->keytype);
}

/*
 * The tables a request covers: every protected table holding the tenant's
 * rows when none are named, else the named ones, each of which must hold
 * them.  An engineer who owns a protected table (or holds its owner's
 * privileges) is refused: RLS does not apply to owners.
 */
static ArrayType *
resolve_tables(FunctionCallInfo fcinfo, Oid caller, const char *tenant,
			   StringInfo names)
{
	List	   *protected = protected_tables();
	ListCell   *lc;
	Oid		   *oids;
	int			noids = 0;
	Datum	   *result;

	foreach(lc, protected)
	{
		Protected  *p = (Protected *) lfirst(lc);

		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(p->relid)))
			continue;
		if (pg_class_ownercheck(p->relid, caller))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to request lockbox access"),
					 errdetail("Role \"%s\" owns protected table \"%s\", or holds its owner's privileges; row-level security does not apply to owners.",
							   lockbox_role_name(caller),
							   get_rel_name(p->relid)),
					 errhint("Engineers must not own the tables they are kept from.")));
	}

	if (PG_ARGISNULL(2))
	{
		oids = palloc(sizeof(Oid) * Max(1, list_length(protected)));
		foreach(lc, protected)
		{
			Protected  *p = (Protected *) lfirst(lc);

			if (covers(p, tenant))
				oids[noids++] = p->relid;
		}
		if (noids == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("no table is protected for tenant \"%s\"", tenant),
					 errdetail("A request with no tables would grant nothing."),
					 errhint("The owner of a table puts it under lockbox with lockbox_protect().")));
	}
	else
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(2);
		Datum	   *elems;
		bool	   *elem_nulls;
		int			nelems;

		if (ARR_NDIM(arr) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tables must be a one-dimensional array")));
		deconstruct_array(arr, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT,
						  &elems, &elem_nulls, &nelems);
		if (nelems == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tables must not be empty"),
					 errhint("Pass NULL to ask for every table protected for the tenant.")));
		oids = palloc(sizeof(Oid) * nelems);
		for (int i = 0; i < nelems; i++)
		{
			Oid			relid;
			bool		ok = false;
			bool		dup = false;

			if (elem_nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("tables must not contain null")));
			relid = DatumGetObjectId(elems[i]);
			foreach(lc, protected)
			{
				Protected  *p = (Protected *) lfirst(lc);

				if (p->relid == relid)
					ok = covers(p, tenant);
			}
			if (!ok && get_rel_name(relid) == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("table with OID %u is not protected for tenant \"%s\"",
								relid, tenant),
						 errhint("See lockbox.protected_tables.")));
			if (!ok)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("table \"%s\" is not protected for tenant \"%s\"",
								get_rel_name(relid),
								tenant),
						 errhint("See lockbox.protected_tables.")));
			for (int j = 0; j < noids; j++)
				dup = dup || (oids[j] == relid);
			if (!dup)
				oids[noids++] = relid;
		}
	}

	result = palloc(sizeof(Datum) * Max(1, noids));
	appendStringInfoChar(names, '[');
	for (int i = 0; i < noids; i++)
	{
		result[i] = ObjectIdGetDatum(oids[i]);
		if (i > 0)
			appendStringInfoString(names, ", ");
		escape_json(names, DatumGetCString(DirectFunctionCall1(regclassout,
															   ObjectIdGetDatum(oids[i]))));
	}
	appendStringInfoChar(names, ']');
	return construct_array(result, noids, REGCLASSOID, sizeof(Oid), true,
						   TYPALIGN_INT);
}

/*
 * Writing into a table can change rows of other tables through foreign keys
 * with ON DELETE/UPDATE CASCADE, SET NULL or SET DEFAULT, which run as the
 * referencing table's owner, past lockbox's checks, and set off the actions
 * of the keys referencing the rows they change in turn: a write request must
 * cover every protected table its tables' writes can reach that way, through
 * tables of any kind.
 */
static void
refuse_uncovered_cascades(ArrayType *tables)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	Oid		   *oids;
	Oid			from;
	Oid			reached;
	Oid			conid;
	Oid			conrelid;
	Oid			referenced;

	deconstruct_array(tables, REGCLASSOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, &nulls, &n);
	oids = palloc(sizeof(Oid) * Max(1, n));
	for (int i = 0; i < n; i++)
		oids[i] = DatumGetObjectId(elems[i]);
	if (lockbox_cascade_uncovered(oids, n, &from, &reached, &conid, &conrelid,
								  &referenced))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("write access to table \"%s\" would also change protected table \"%s\"",
						get_rel_name(from), get_rel_name(reached)),
				 errdetail("Foreign key constraint \"%s\" of table \"%s\" cascades changes from table \"%s\".",
						   get_constraint_name(conid), get_rel_name(conrelid),
						   get_rel_name(referenced)),
				 errhint("Include table %s in the request's tables.",
						 lockbox_relname(reached))));
}

Datum
lockbox_request(PG_FUNCTION_ARGS)
{
	LockboxStore *store;
	bool		direct;
	AuditRow	row;
	LockboxCall call;
	Oid			caller = GetUserId();
	char	   *tenant;
	char	   *reason;
	char	   *access;
	char	   *ticket;
	Interval	duration;
	Interval	max_duration;
	Interval	zero;
	ArrayType  *tables;
	TimestampTz deadline;
	int64		id;
	StringInfoData table_names;
	StringInfoData detail;

	lockbox_require_writable(fcinfo);

	/* who may ask */
	if (!lockbox_has_role(caller, LB_ENGINEER))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to request lockbox access"),
				 errdetail("Only members of lockbox_engineer may file requests.")));
	if (superuser_arg(caller))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to request lockbox access"),
				 errdetail("Role \"%s\" is a superuser, which lockbox cannot restrict.",
						   lockbox_role_name(caller)),
				 errhint("Engineers must not be superusers.")));
	if (has_bypassrls_privilege(caller))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to request lockbox access"),
				 errdetail("Role \"%s\" has BYPASSRLS, which lockbox cannot restrict.",
						   lockbox_role_name(caller)),
				 errhint("Take it away with ALTER ROLE %s NOBYPASSRLS.",
						 quote_identifier(lockbox_role_name(caller)))));

	/* a group role of lockbox's own would share the access with every member */
	for (int i = LB_ENGINEER; i <= LB_AUDITOR; i++)
	{
		if (caller == lockbox_role_oid((LockboxRole) i))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to request lockbox access"),
					 errdetail("Requests are filed by an engineer's own role, not by group role \"%s\".",
							   lockbox_role_name(caller)),
					 errhint("RESET ROLE and file the request as yourself.")));
	}

	/* what they ask for */
	tenant = lockbox_tenant_arg(fcinfo, 0);
	reason = lockbox_text_arg(fcinfo, 1, "reason", true,
							  lockbox_min_reason_length, LOCKBOX_MAX_TEXT);
	lockbox_require_arg(fcinfo, 3, "access");
	access = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (strcmp(access, "read") != 0 && strcmp(access, "write") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("access must be \"read\" or \"write\", not \"%s\"",
						lockbox_clip(access))));
	if (PG_ARGISNULL(4))
		duration = lockbox_default_access_duration;
	else
		duration = *PG_GETARG_INTERVAL_P(4);
	duration = exact_duration(&duration, GetCurrentStatementStartTimestamp(),
							  "duration");
	max_duration = exact_duration(&lockbox_max_access_duration,
								  GetCurrentStatementStartTimestamp(),
								  "lockbox.max_access_duration");

	/*
	 * The settings are checked one by one (a reload applies a file's lines
	 * in turn, and startup applies them before either can be compared), so
	 * the default may exceed the maximum: the maximum is the bound, and a
	 * request naming no duration gets it.  The caller is told; the server
	 * log has it once per reload, from the launcher, not once per request.
	 */
	if (PG_ARGISNULL(4) && interval_compare(&duration, &max_duration) > 0)
	{
		ereport(NOTICE,
				(errmsg("lockbox.default_access_duration (%s) exceeds lockbox.max_access_duration (%s)",
						GetConfigOption("lockbox.default_access_duration", false, false),
						GetConfigOption("lockbox.max_access_duration", false, false)),
				 errdetail("The request's window is lockbox.max_access_duration.")));
		duration = max_duration;
	}
	memset(&zero, 0, sizeof(zero));
	if (interval_compare(&duration, &zero) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("duration must be greater than zero")));
	if (interval_compare(&duration, &max_duration) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("duration %s exceeds lockbox.max_access_duration (%s)",
						interval_text(&duration),
						interval_text(&max_duration))));
	ticket = lockbox_text_arg(fcinfo, 5, "ticket", false, 0, LOCKBOX_MAX_TICKET);

	lockbox_enter(&call);
	/* (held until commit: lockbox_remove_tenant waits, then sees the request) */
	if (!lockbox_tenant_hold(tenant))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist", tenant)));

	initStringInfo(&table_names);
	tables = resolve_tables(fcinfo, call.caller, tenant, &table_names);
	if (strcmp(access, "write") == 0)
		refuse_uncovered_cascades(tables);
	deadline = add_interval(call.now, &lockbox_review_timeout);

	id = nextval_internal(lockbox_relid("request_id_seq"),
						  false);

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_str(&detail, "to", "pending_review");
	lockbox_json_str(&detail, "reason", reason);
	lockbox_json_str(&detail, "ticket", ticket);
	lockbox_json_raw(&detail, "tables", table_names.data);
	lockbox_json_str(&detail, "access", access);
	lockbox_json_str(&detail, "duration", interval_text(&duration));
	appendStringInfoChar(&detail, '}');
	lockbox_audit_row(&call, "request", id, tenant, detail.data, &row);

	store = lockbox_store_open(lengthof(transition_tables), transition_tables);
	/* (store_open_request does request_open_sync's work) */
	direct = lockbox_store_skip_trigger(store, T_REQUEST, "request_open_sync");
	lockbox_store_new_row(store, T_REQUEST);
	lockbox_store_set(store, T_REQUEST, "id", Int64GetDatum(id), INT8OID, false);
	lockbox_store_set(store, T_REQUEST, "tenant", CStringGetTextDatum(tenant),
					  TEXTOID, false);
	lockbox_store_set(store, T_REQUEST, "requester", ObjectIdGetDatum(call.caller),
					  REGROLEOID, false);
	lockbox_store_set(store, T_REQUEST, "reason", CStringGetTextDatum(reason),
					  TEXTOID, false);
	lockbox_store_set(store, T_REQUEST, "ticket",
					  ticket ? CStringGetTextDatum(ticket) : (Datum) 0,
					  TEXTOID, ticket == NULL);
	lockbox_store_set(store, T_REQUEST, "tables", PointerGetDatum(tables),
					  REGCLASSARRAYOID, false);
	lockbox_store_set(store, T_REQUEST, "access", CStringGetTextDatum(access),
					  TEXTOID, false);
	lockbox_store_set(store, T_REQUEST, "duration", IntervalPGetDatum(&duration),
					  INTERVALOID, false);
	lockbox_store_set(store, T_REQUEST, "state", CStringGetTextDatum("pending_review"),
					  TEXTOID, false);
	lockbox_store_set(store, T_REQUEST, "created_at", TimestampTzGetDatum(call.now),
					  TIMESTAMPTZOID, false);
	lockbox_store_set(store, T_REQUEST, "deadline", TimestampTzGetDatum(deadline),
					  TIMESTAMPTZOID, false);
	lockbox_store_insert(store, T_REQUEST);
	{
		Request		filed = {0};

		filed.id = id;
		filed.state = "pending_review";
		filed.has_deadline = true;
		filed.deadline = deadline;
		store_open_request(store, &filed, direct);
	}
	lockbox_audit_store(store, T_AUDIT, &row);
	/* the reviewers are told (the payload after the audit row: its anchors name it) */
	{
		Payload		p = {"review_requested", id, tenant, "pending_review",
		lockbox_role_oid(LB_REVIEWER), payload_anchors()};

		store_notification(store, &p, call.now);
	}
	close_transition_store(store);
	lockbox_deadline_created(deadline);
	lockbox_relay_wake_at_commit();

	lockbox_leave(&call);
	PG_RETURN_INT64(id);
}

/* ---------------------------------------------------------------------
 * lockbox_approve / lockbox_deny
 * ---------------------------------------------------------------------
 */

/*
 * Record a stage 2 vote, or, with extension_id, a vote on an extension of
 * the request's access window; returns the number of approvals now recorded
 * (of the request, or of the extension) by roles that are still among the
 * tenant's approvers: the vote of an approver removed since no longer
 * counts.  A second decision of the same
 * approver role or the same session user is refused (the unique keys on
 * (request or extension, approver) and (request or extension, session
 * approver) back the check).  Votes on one request take turns under its row
 * lock, and every vote rewrites the request row, so a repeatable-read voter
 * that could not see an earlier vote fails to serialize instead of
 * miscounting.
 */
static int
record_decision(LockboxCall *call, int64 id, int64 extension_id,
				const char *decision, const char *comment, List *approvers)
{
	const char *table = extension_id != 0 ? "extension_decision" : "decision";
	Datum		key = Int64GetDatum(extension_id != 0 ? extension_id : id);
	Snapshot	snapshot;
	TupleDesc	td;
	List	   *rows;
	ListCell   *lc;
	LockboxStore *store;
	int			inserted = 1;
	int			approvals = strcmp(decision, "approve") == 0 ? 1 : 0;

	/*
	 * The decisions so far, as of now: the caller holds the request's row
	 * lock, which every decision on it takes first, so none is being made
	 * beside this one.  (Were one made, the unique keys would refuse this.)
	 */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	rows = lockbox_store_read(table, 1, &key, snapshot, &td);
	UnregisterSnapshot(snapshot);
	foreach(lc, rows)
	{
		bool		isnull;
		Datum		d;

		if (DatumGetObjectId(lockbox_store_get(lfirst(lc), td, "approver", &isnull)) == call->caller ||
			DatumGetObjectId(lockbox_store_get(lfirst(lc), td, "session_approver", &isnull)) == call->session_user)
			inserted = 0;
		d = lockbox_store_get(lfirst(lc), td, "decision", &isnull);
		/* (a vote counts while its role still approves for the tenant) */
		if (!isnull && strcmp(TextDatumGetCString(d), "approve") == 0 &&
			lockbox_approver_among(DatumGetObjectId(lockbox_store_get(lfirst(lc), td,
																	  "approver", &isnull)),
								   approvers))
			approvals++;
	}
	if (inserted == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 extension_id != 0 ?
				 errmsg("role \"%s\" has already decided on the extension of lockbox request " INT64_FORMAT,
						lockbox_role_name(call->caller), id) :
				 errmsg("role \"%s\" has already decided on lockbox request " INT64_FORMAT,
						lockbox_role_name(call->caller), id),
				 call->session_user != call->caller ?
				 errdetail("Each approver counts once, whatever role they act as; session user \"%s\" or role \"%s\" has decided.",
						   lockbox_role_name(call->session_user),
						   lockbox_role_name(call->caller)) :
				 errdetail("Each approver counts once.")));

	store = lockbox_store_open(1, &table);
	lockbox_store_new_row(store, 0);
	lockbox_store_set(store, 0, extension_id != 0 ? "extension_id" : "request_id",
					  key, INT8OID, false);
	lockbox_store_set(store, 0, "approver", ObjectIdGetDatum(call->caller),
					  REGROLEOID, false);
	lockbox_store_set(store, 0, "session_approver",
					  ObjectIdGetDatum(call->session_user), REGROLEOID, false);
	lockbox_store_set(store, 0, "decision", CStringGetTextDatum(decision),
					  TEXTOID, false);
	lockbox_store_set(store, 0, "comment",
					  comment ? CStringGetTextDatum(comment) : (Datum) 0,
					  TEXTOID, comment == NULL);
	lockbox_store_set(store, 0, "decided_at", TimestampTzGetDatum(call->now),
					  TIMESTAMPTZOID, false);
	lockbox_store_insert(store, 0);
	lockbox_store_close(store);
	return approvals;
}

/*
 * Access starts: the window opens now and lasts the requested duration.  The
 * caller saves the request and calls lockbox_access_changed().
 */
static void
open_access(Request *r, TimestampTz now)
{
	r->state = "approved";
	r->has_deadline = false;
	r->has_approved_at = true;
	r->approved_at = now;
	r->has_access_ends_at = true;
	r->access_ends_at = add_interval(now, &r->duration);
	lockbox_deadline_created(r->access_ends_at);
}

/*
 * With lockbox.terminate_sessions on, have the worker end the sessions of an
 * engineer whose access ended, when there are any (other than except_pid).
 */
void
lockbox_queue_session_end(Oid engineer, int64 request_id, int except_pid)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {REGROLEOID, INT8OID, INT4OID};
	Datum		values[3];

	if (!lockbox_terminate_sessions || !lockbox_has_sessions(engineer, except_pid))
		return;
	values[0] = ObjectIdGetDatum(engineer);
	values[1] = Int64GetDatum(request_id);
	values[2] = Int32GetDatum(except_pid);
	lockbox_exec(&plan,
				 "INSERT INTO lockbox.session_end (engineer, request_id, except_pid)"
				 " VALUES ($1, $2, $3)",
				 3, argtypes, values, NULL, 0);
	lockbox_wake_worker_at_commit();
}

/*
 * Access has ended (closed, revoked, window elapsed): every backend drops its
 * cached grants at commit, and the worker ends the engineer's sessions.
 */
static void
end_access(LockboxCall *call, Request *r)
{
	lockbox_access_changed();
	/* the session that closed its own request ends it itself */
	lockbox_queue_session_end(r->requester, r->id,
					  call->caller == r->requester ? MyProcPid : 0);
}

/* Stage 1, approve or deny: the caller reviews the request. */
static void
review(LockboxCall *call, Request *r, const char *step, StringInfo extra)
{
	require_reviewer(call, r, step);
	refuse_expired(r, call->now, step);
	r->reviewer = call->caller;
	r->has_reviewed_at = true;
	r->reviewed_at = call->now;
	lockbox_json_raw(extra, "stage", "1");
}

/* ---------------------------------------------------------------------
 * Extensions of an access window
 *
 * The requester of an approved request whose window is open asks for more
 * time (lockbox_extend); the tenant's approvers decide as at stage 2, with
 * lockbox_approve and lockbox_deny on the request: the same quorum, distinct
 * approvers, never the requester or the request's reviewer, and any deny
 * denies.  Meanwhile the request stays approved with its current window.  An
 * extension is pending until it is approved (the window's end moves) or
 * denied, or until the access ends (it lapses).  One at a time per request.
 * ---------------------------------------------------------------------
 */

/* A pending extension, as read under its request's row lock. */
typedef struct Extension
{
	int64		id;
	Interval	by;
	TimestampTz ends_at;		/* the window's end when it was asked for */
	TimestampTz new_ends_at;
} Extension;

/* A timestamp as JSON text: ISO 8601 in UTC, whatever the session's zone. */
static char *
json_timestamp(TimestampTz t)
{
	int			utc = 0;

	return JsonEncodeDateTime(NULL, TimestampTzGetDatum(t), TIMESTAMPTZOID, &utc);
}

/* {"from": ..., "to": ...} of two timestamps, for an audit row's detail. */
static char *
json_window(TimestampTz from, TimestampTz to)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	lockbox_json_str(&buf, "from", json_timestamp(from));
	lockbox_json_str(&buf, "to", json_timestamp(to));
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * The pending extension of a request, if any.  Every change to a request's
 * extensions is made under the request's row lock, which the caller holds.
 */
static bool
pending_extension(int64 request_id, Extension *out)
{
	Datum		key = Int64GetDatum(request_id);
	Snapshot	snapshot;
	TupleDesc	td;
	List	   *rows;
	ListCell   *lc;
	bool		isnull;

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	rows = lockbox_store_read_by("extension", "extension_request_idx", 1, &key,
								 snapshot, &td);
	UnregisterSnapshot(snapshot);
	foreach(lc, rows)
	{
		HeapTuple	tup = lfirst(lc);
		char	   *state = get_text_col(tup, td, "state");

		if (state == NULL || strcmp(state, "pending") != 0)
			continue;
		out->id = DatumGetInt64(lockbox_store_get(tup, td, "id", &isnull));
		out->by = *DatumGetIntervalP(lockbox_store_get(tup, td, "by", &isnull));
		out->ends_at = DatumGetTimestampTz(lockbox_store_get(tup, td, "ends_at", &isnull));
		out->new_ends_at = DatumGetTimestampTz(lockbox_store_get(tup, td, "new_ends_at", &isnull));
		return true;
	}
	return false;
}

/* An extension is decided (approved, denied) or has lapsed, at now. */
static void
settle_extension(int64 extension_id, const char *state, TimestampTz now)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {INT8OID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];

	values[0] = Int64GetDatum(extension_id);
	values[1] = CStringGetTextDatum(state);
	values[2] = TimestampTzGetDatum(now);
	lockbox_exec(&plan,
				 "UPDATE lockbox.extension SET state = $2, decided_at = $3"
				 " WHERE id OPERATOR(pg_catalog.=) $1"
				 "   AND state OPERATOR(pg_catalog.=) 'pending'",
				 3, argtypes, values, NULL, 0);
	if (SPI_processed != 1)
		elog(ERROR, "could not settle lockbox extension " INT64_FORMAT, extension_id);
}

/*
 * The access of a request ends (closed or revoked, under its row lock): its
 * pending extension lapses, noted in the step's audit detail.  (The worker
 * lapses those of the requests it closes or revokes.)
 */
static void
lapse_extension(Request *r, TimestampTz now, StringInfo extra)
{
	Extension	ext;

	if (!pending_extension(r->id, &ext))
		return;
	settle_extension(ext.id, "lapsed", now);
	lockbox_json_raw(extra, "extension_lapsed", psprintf(INT64_FORMAT, ext.id));
}

/* Is the request approved, its window open, at the statement's time? */
static bool
access_open(Request *r)
{
	return strcmp(r->effective_state, "approved") == 0;
}

/*
 * An approver approves the pending extension of an approved request: their
 * vote, and at quorum the window's end moves.  Returns the request's state.
 */
static const char *
approve_extension(LockboxCall *call, Request *r, Extension *ext,
				  const char *comment)
{
	StringInfoData extra;
	int			approvals;
	bool		quorum;

	refuse_reviewer_late(call, r, "approve", true);
	require_stage2_decider(call, r, "approve");

	approvals = record_decision(call, r->id, ext->id, "approve", comment, r->approvers);
	quorum = approvals >= r->required_approvals;
	initStringInfo(&extra);
	lockbox_json_raw(&extra, "extension", psprintf(INT64_FORMAT, ext->id));
	lockbox_json_str(&extra, "comment", comment);
	lockbox_json_raw(&extra, "approvals", psprintf("%d", approvals));
	lockbox_json_raw(&extra, "required_approvals",
					 psprintf("%d", r->required_approvals));
	record(call, r, "extend_approve", "approved", &extra, false, !quorum);
	if (!quorum)
		return "approved";

	/* the window's end moves: access goes on until the new end */
	settle_extension(ext->id, "approved", call->now);
	r->access_ends_at = ext->new_ends_at;
	lockbox_deadline_created(r->access_ends_at);
	lockbox_access_changed();
	resetStringInfo(&extra);
	lockbox_json_raw(&extra, "extension", psprintf(INT64_FORMAT, ext->id));
	lockbox_json_str(&extra, "by", interval_text(&ext->by));
	lockbox_json_raw(&extra, "access_ends_at",
					 json_window(ext->ends_at, ext->new_ends_at));
	record_notify(call, r, "extended", "approved", &extra, false, true,
				  list_make1_oid(r->requester), "extended", NULL);
	return "approved";
}

/* An approver denies the pending extension; the window stays as it is. */
static const char *
deny_extension(LockboxCall *call, Request *r, Extension *ext,
			   const char *reason)
{
	StringInfoData extra;

	refuse_reviewer_late(call, r, "deny", true);
	require_stage2_decider(call, r, "deny");

	(void) record_decision(call, r->id, ext->id, "deny", reason, r->approvers);
	settle_extension(ext->id, "denied", call->now);
	initStringInfo(&extra);
	lockbox_json_raw(&extra, "extension", psprintf(INT64_FORMAT, ext->id));
	lockbox_json_str(&extra, "reason", reason);
	record_notify(call, r, "extend_deny", "approved", &extra, false, true,
				  list_make1_oid(r->requester), "extension_denied", NULL);
	return "approved";
}

Datum
lockbox_approve(PG_FUNCTION_ARGS)
{
	int64		id = request_id_arg(fcinfo);
	char	   *comment = lockbox_text_arg(fcinfo, 1, "comment", false, 0,
										   LOCKBOX_MAX_TEXT);
	LockboxCall call;
	Request    *r;
	Extension	ext;
	char	   *from;
	char		result[NAMEDATALEN];
	StringInfoData extra;

	lockbox_require_writable(fcinfo);
	lockbox_enter(&call);
	r = lock_request(id);
	from = pstrdup(r->state);
	initStringInfo(&extra);

	if (strcmp(r->state, "pending_review") == 0)
	{
		review(&call, r, "approve", &extra);
		lockbox_json_str(&extra, "comment", comment);
		if (r->tenant_enabled)
		{
			List	   *approvers = r->approvers;

			r->state = "pending_approval";
			r->has_deadline = true;
			r->deadline = add_interval(call.now, &lockbox_approval_timeout);
			lockbox_deadline_created(r->deadline);
			lockbox_json_raw(&extra, "approvers_notified",
							 psprintf("%d", list_length(approvers)));
			record_notify(&call, r, "approve", from, &extra, false, true,
						  approvers, "approval_requested", NULL);
		}
		else
		{
			open_access(r, call.now);
			lockbox_access_changed();
			lockbox_json_str(&extra, "lockbox", "disabled");
			lockbox_json_str(&extra, "why",
							 "lockbox is switched off for this tenant, so the review alone approves");
			record(&call, r, "approve", from, &extra, true, true);
		}
	}
	else if (strcmp(r->state, "pending_approval") == 0)
	{
		int			approvals;

		refuse_reviewer_late(&call, r, "approve", false);
		require_stage2_decider(&call, r, "approve");
		refuse_expired(r, call.now, "approve");

		approvals = record_decision(&call, r->id, 0, "approve", comment, r->approvers);
		lockbox_json_raw(&extra, "stage", "2");
		lockbox_json_str(&extra, "comment", comment);
		lockbox_json_raw(&extra, "approvals", psprintf("%d", approvals));
		lockbox_json_raw(&extra, "required_approvals",
						 psprintf("%d", r->required_approvals));
		if (approvals >= r->required_approvals)
		{
			open_access(r, call.now);
			lockbox_access_changed();
		}
		record_notify(&call, r, "approve", from, &extra, true, true, NIL, NULL,
					  strcmp(r->state, "approved") == 0 ? "access_started" : NULL);
	}
	else if (access_open(r) && pending_extension(r->id, &ext))
	{
		(void) approve_extension(&call, r, &ext, comment);
	}
	else
		refuse_state(r, call.now, "approve");

	strlcpy(result, r->state, sizeof(result));	/* (r is in SPI memory, gone at leave) */
	lockbox_leave(&call);
	PG_RETURN_TEXT_P(cstring_to_text(result));
}

Datum
lockbox_deny(PG_FUNCTION_ARGS)
{
	int64		id = request_id_arg(fcinfo);
	char	   *reason = lockbox_text_arg(fcinfo, 1, "reason", true,
										  lockbox_min_reason_length,
										  LOCKBOX_MAX_TEXT);
	LockboxCall call;
	Request    *r;
	Extension	ext;
	char	   *from;
	StringInfoData extra;

	lockbox_require_writable(fcinfo);
	lockbox_enter(&call);
	r = lock_request(id);
	from = pstrdup(r->state);
	initStringInfo(&extra);

	if (strcmp(r->state, "pending_review") == 0)
	{
		review(&call, r, "deny", &extra);
	}
	else if (strcmp(r->state, "pending_approval") == 0)
	{
		refuse_reviewer_late(&call, r, "deny", false);
		require_stage2_decider(&call, r, "deny");
		refuse_expired(r, call.now, "deny");
		(void) record_decision(&call, r->id, 0, "deny", reason, r->approvers);
		lockbox_json_raw(&extra, "stage", "2");
	}
	else if (access_open(r) && pending_extension(r->id, &ext))
	{
		/* the extension is denied; the request stays approved */
		(void) deny_extension(&call, r, &ext, reason);
		lockbox_leave(&call);
		PG_RETURN_TEXT_P(cstring_to_text("approved"));
	}
	else
		refuse_state(r, call.now, "deny");

	lockbox_json_str(&extra, "reason", reason);
	finish(r, "denied", NULL, call.now);
	record(&call, r, "deny", from, &extra, true, true);

	lockbox_leave(&call);
	PG_RETURN_TEXT_P(cstring_to_text("denied"));
}

/* ---------------------------------------------------------------------
 * lockbox_cancel / lockbox_close / lockbox_revoke
 * ---------------------------------------------------------------------
 */
Datum
lockbox_cancel(PG_FUNCTION_ARGS)
{
	int64		id = request_id_arg(fcinfo);
	char	   *reason = lockbox_text_arg(fcinfo, 1, "reason", false, 0,
										  LOCKBOX_MAX_TEXT);
	LockboxCall call;
	Request    *r;
	char	   *from;
	StringInfoData extra;

	lockbox_require_writable(fcinfo);
	lockbox_enter(&call);
	r = lock_request(id);
	require_requester(&call, r, "cancel");
	if (!is_pending(r->state))
		refuse_state(r, call.now, "cancel");
	refuse_expired(r, call.now, "cancel");

	from = pstrdup(r->state);
	finish(r, "cancelled", NULL, call.now);
	initStringInfo(&extra);
	lockbox_json_str(&extra, "reason", reason);
	record(&call, r, "cancel", from, &extra, true, true);

	lockbox_leave(&call);
	PG_RETURN_TEXT_P(cstring_to_text("cancelled"));
}

/* Is the access window of an approved request still open? */
static void
require_open_window(Request *r, TimestampTz now, const char *step)
{
	if (strcmp(r->state, "approved") != 0 ||
		(r->has_access_ends_at && r->access_ends_at <= now))
		refuse_state(r, now, step);
}

Datum
lockbox_close(PG_FUNCTION_ARGS)
{
	int64		id = request_id_arg(fcinfo);
	char	   *resolution = lockbox_text_arg(fcinfo, 1, "resolution", false, 0,
											  LOCKBOX_MAX_TEXT);
	LockboxCall call;
	Request    *r;
	StringInfoData extra;

	lockbox_require_writable(fcinfo);
	lockbox_enter(&call);
	r = lock_request(id);
	require_requester(&call, r, "close");
	require_open_window(r, call.now, "close");

	finish(r, "closed", "resolved", call.now);
	end_access(&call, r);
	initStringInfo(&extra);
	lockbox_json_str(&extra, "close_reason", "resolved");
	lockbox_json_str(&extra, "resolution", resolution);
	lapse_extension(r, call.now, &extra);
	record_notify(&call, r, "close", "approved", &extra, true, true, NIL, NULL,
				  "access_ended");

	lockbox_leave(&call);
	PG_RETURN_TEXT_P(cstring_to_text("closed"));
}

/*
 * Lock a request, waiting at most REVOKE_LOCK_WAIT_MS: NULL when another
 * session holds it longer.  A transition or the worker holds a request for
 * milliseconds; a session that holds it for longer (its requester closing it
 * in a transaction left open) must not hold a revocation back.  The attempt
 * runs in a subtransaction, so that the lock timeout leaves nothing behind.
 */
static Request *
lock_request_nowait(int64 id)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Request    *volatile r = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		/* SAVE: undone when the subtransaction ends, not left to the caller */
		(void) set_config_option("lock_timeout", CppAsString2(REVOKE_LOCK_WAIT_MS),
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		r = read_request(id, LOCK_WAIT);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		/* any other error (no such request, say) is the caller's */
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			ReThrowError(edata);
		r = NULL;
	}
	PG_END_TRY();
	return r;
}

/* Record a revocation beside its request; false if one is already there. */
static bool
mark_revoked(LockboxCall *call, Request *r, const char *reason)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[4] = {INT8OID, REGROLEOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[4];

	values[0] = Int64GetDatum(r->id);
	values[1] = ObjectIdGetDatum(call->caller);
	values[2] = CStringGetTextDatum(reason);
	values[3] = TimestampTzGetDatum(call->now);
	lockbox_exec(&plan,
				 "INSERT INTO lockbox.revocation (request_id, revoked_by, reason, revoked_at)"
				 " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
				 4, argtypes, values, NULL, 0);
	return SPI_processed == 1;
}

static bool
revocation_pending(int64 id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	lockbox_exec(&plan,
				 "SELECT 1 FROM lockbox.revocation WHERE request_id OPERATOR(pg_catalog.=) $1",
				 1, argtypes, values, NULL, 1);
	return SPI_processed > 0;
}

/*
 * Who may revoke: the approvers of the request's tenant (the customer
 * withdrawing consent), and members of lockbox_reviewer (the operator's
 * emergency stop), except on a request of their own: a requester ends their
 * access with lockbox_close, and revoking it as the operator would misstate
 * who stopped it.  Returns the role the caller acts in, for the audit.
 */
static const char *
require_revoker(LockboxCall *call, Request *r)
{
	if (lockbox_approver_among(call->caller, r->approvers))
		return "approver";
	if (!lockbox_has_role(call->caller, LB_REVIEWER))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to revoke lockbox request " INT64_FORMAT, r->id),
				 errdetail("Role \"%s\" is neither an approver of the request's tenant nor a member of lockbox_reviewer.",
						   lockbox_role_name(call->caller))));
	if (lockbox_same_party(call->caller, r->requester) ||
		lockbox_same_party(call->session_user, r->requester))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to revoke lockbox request " INT64_FORMAT, r->id),
				 errdetail("Role \"%s\" filed this request; a reviewer never revokes a request of their own.",
						   lockbox_role_name(r->requester)),
				 errhint("The requester ends the access with lockbox_close().")));
	return "reviewer";
}

Datum
lockbox_revoke(PG_FUNCTION_ARGS)
{
	int64		id = request_id_arg(fcinfo);
	char	   *reason = lockbox_text_arg(fcinfo, 1, "reason", true,
										  lockbox_min_reason_length,
										  LOCKBOX_MAX_TEXT);
	LockboxCall call;
	Request    *r;
	const char *by_role;
	StringInfoData extra;

	lockbox_require_writable(fcinfo);
	lockbox_enter(&call);
	r = lock_request_nowait(id);
	if (r == NULL)
	{
		/*
		 * Another session holds the request (its requester closing it in a
		 * transaction left open, say).  A revocation must not wait for it:
		 * record it beside the request, which ends the access at once, and
		 * let the worker move the request to revoked when it can (and lapse
		 * a pending extension of it).
		 */
		r = read_request(id, LOCK_NONE);
		by_role = require_revoker(&call, r);
		require_open_window(r, call.now, "revoke");
		if (!mark_revoked(&call, r, reason))
			refuse_state(r, call.now, "revoke");
		finish(r, "revoked", "revoked", call.now);
		end_access(&call, r);
		initStringInfo(&extra);
		lockbox_json_str(&extra, "reason", reason);
		if (strcmp(by_role, "approver") != 0)
			lockbox_json_str(&extra, "by_role", by_role);
		lockbox_json_str(&extra, "completed_by", "lockbox worker");
		record_notify(&call, r, "revoke", "approved", &extra, true, false, NIL,
					  NULL, "access_ended");
		lockbox_wake_worker_at_commit();
		lockbox_leave(&call);
		PG_RETURN_TEXT_P(cstring_to_text("revoked"));
	}
	by_role = require_revoker(&call, r);
	require_open_window(r, call.now, "revoke");
	if (revocation_pending(r->id))
		refuse_state(r, call.now, "revoke");

	finish(r, "revoked", "revoked", call.now);
	end_access(&call, r);
	initStringInfo(&extra);
	lockbox_json_str(&extra, "reason", reason);
	if (strcmp(by_role, "approver") != 0)
		lockbox_json_str(&extra, "by_role", by_role);
	lapse_extension(r, call.now, &extra);
	record_notify(&call, r, "revoke", "approved", &extra, true, true, NIL, NULL,
				  "access_ended");

	lockbox_leave(&call);
	PG_RETURN_TEXT_P(cstring_to_text("revoked"));
}

/* ---------------------------------------------------------------------
 * lockbox_extend
 * ---------------------------------------------------------------------
 */

/* How long an extension adds, exactly, from the end it extends. */
static Interval
extension_span(Interval *by, TimestampTz from)
{
	Interval	span = exact_duration(by, from, "by");
	Interval	zero;

	memset(&zero, 0, sizeof(zero));
	if (interval_compare(&span, &zero) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("by must be greater than zero")));
	return span;
}

/*
 * The requester asks for more time on an approved request whose window is
 * open: the window may end by at most lockbox.max_access_duration after the
 * approval.  The tenant's approvers are notified and decide (see "Extensions
 * of an access window" above); until they do, the window stays as it is.
 * Returns the request's state, approved.
 */
Datum
lockbox_extend(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	int64		id = request_id_arg(fcinfo);
	Interval	by;
	Interval	span;
	Interval	window;
	Interval	max_window;
	char	   *reason;
	LockboxCall call;
	Request    *r;
	Extension	pending;
	TimestampTz new_end;
	TimestampTz limit;
	int64		extension_id;
	Oid			argtypes[8] = {INT8OID, TEXTOID, REGROLEOID, INTERVALOID, TEXTOID,
		TIMESTAMPTZOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[8];
	StringInfoData extra;

	lockbox_require_writable(fcinfo);
	lockbox_require_arg(fcinfo, 1, "by");
	by = *PG_GETARG_INTERVAL_P(1);
	(void) extension_span(&by, GetCurrentStatementStartTimestamp());
	reason = lockbox_text_arg(fcinfo, 2, "reason", true,
							  lockbox_min_reason_length, LOCKBOX_MAX_TEXT);

	lockbox_enter(&call);
	r = lock_request(id);
	require_requester(&call, r, "extend");
	if (!access_open(r))
		refuse_state(r, call.now, "extend");
	if (pending_extension(r->id, &pending))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot extend lockbox request " INT64_FORMAT ": an extension of it is pending",
						r->id),
				 errdetail("Extension " INT64_FORMAT " by %s awaits the approvers of tenant \"%s\".",
						   pending.id, interval_text(&pending.by), r->tenant)));

	/* the new end, at most lockbox.max_access_duration after the approval */
	span = extension_span(&by, r->access_ends_at);
	new_end = r->access_ends_at + span.time;
	limit = add_interval(r->approved_at, &lockbox_max_access_duration);
	if (new_end > limit)
	{
		memset(&window, 0, sizeof(window));
		window.time = new_end - r->approved_at;
		memset(&max_window, 0, sizeof(max_window));
		max_window.time = limit - r->approved_at;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("extending lockbox request " INT64_FORMAT " by %s would make its access window %s long, more than lockbox.max_access_duration (%s)",
						r->id, interval_text(&span), interval_text(&window),
						interval_text(&max_window)),
				 errdetail("Access was approved at %s; it can be extended to end at %s at the latest, and now ends at %s.",
						   timestamptz_to_str(r->approved_at),
						   timestamptz_to_str(limit),
						   timestamptz_to_str(r->access_ends_at))));
	}

	values[0] = Int64GetDatum(r->id);
	values[1] = CStringGetTextDatum(r->tenant);
	values[2] = ObjectIdGetDatum(r->requester);
	values[3] = IntervalPGetDatum(&span);
	values[4] = CStringGetTextDatum(reason);
	values[5] = TimestampTzGetDatum(call.now);
	values[6] = TimestampTzGetDatum(r->access_ends_at);
	values[7] = TimestampTzGetDatum(new_end);
	lockbox_exec(&plan,
				 "INSERT INTO lockbox.extension (request_id, tenant, requester, by, reason,"
				 "       requested_at, ends_at, new_ends_at, state)"
				 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending') RETURNING id",
				 8, argtypes, values, NULL, 1);
	if (SPI_processed != 1)
		elog(ERROR, "could not insert a lockbox extension");
	{
		bool		isnull;

		extension_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												   SPI_tuptable->tupdesc, 1, &isnull));
	}

	initStringInfo(&extra);
	lockbox_json_raw(&extra, "extension", psprintf(INT64_FORMAT, extension_id));
	lockbox_json_str(&extra, "by", interval_text(&span));
	lockbox_json_str(&extra, "reason", reason);
	lockbox_json_raw(&extra, "access_ends_at",
					 json_window(r->access_ends_at, new_end));
	lockbox_json_raw(&extra, "approvers_notified",
					 psprintf("%d", list_length(r->approvers)));
	record_notify(&call, r, "extend_request", "approved", &extra, false, true,
				  r->approvers, "extension_requested", NULL);

	lockbox_leave(&call);
	PG_RETURN_TEXT_P(cstring_to_text("approved"));
}
