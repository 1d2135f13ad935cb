/*-------------------------------------------------------------------------
 *
 * notify.c
 *		Notifications: a row in lockbox.notification per recipient, a NOTIFY
 *		lockbox with a JSON payload, and the claim/acknowledge interface a
 *		delivery service uses.
 *
 * The NOTIFY is not sent by the transition's own transaction.  PostgreSQL
 * serializes every transaction that sends a NOTIFY through its commit (one
 * cluster-wide lock held until the commit record is flushed), which would
 * make every transition wait for the previous one.  The database's lockbox
 * worker sends them instead, in one transaction of its own, a few
 * milliseconds after the transition committed; a listener hears each
 * notification once.  A transition hands the ids of the notifications it
 * wrote to the worker through the database's relay ring in shared memory:
 * it reserves their places in the ring just before its commit, fills them
 * in once committed (or voids them if the commit failed), and wakes the
 * worker, which takes the ids in ring order, stopping at a place still
 * reserved.  A subtransaction rolled back takes its ids back.  When the
 * ring is full, or the database has none, the ids go into the table
 * lockbox.notify_outbox instead, in the transition's transaction, as the
 * worker's own transitions put theirs; the worker sends the notifications of
 * both and deletes the outbox's rows in the same transaction.  A restart of
 * the server loses what the ring held (as it loses NOTIFYs queued and
 * listeners): a delivery service claims rows (lockbox_claim_notifications)
 * when it connects and uses the NOTIFY as a wake-up only.
 *
 * Delivery (lockbox-notify, README "Delivery"): the extension owner sets the
 * e-mail addresses of roles (lockbox_set_contact) and the webhook URLs of
 * tenants (lockbox_set_webhook).  A claim leases its rows: a row is claimable
 * again once next_attempt_at has passed (the lease of the claim, or the
 * backoff of a failed attempt), so a notifier that dies between sending and
 * acknowledging loses nothing.  lockbox_fail_notification records a failed
 * attempt: retried after the delay the notifier asks for, or failed for good.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/syscache.h"
#include "commands/async.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "nodes/value.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "lockbox.h"

PG_FUNCTION_INFO_V1(lockbox_claim_notifications);
PG_FUNCTION_INFO_V1(lockbox_ack_notification);
PG_FUNCTION_INFO_V1(lockbox_fail_notification);
PG_FUNCTION_INFO_V1(lockbox_set_contact);
PG_FUNCTION_INFO_V1(lockbox_set_webhook);

/* a claim not acknowledged within this long may be claimed again (default) */
#define CLAIM_LEASE		"5 minutes"
/* longest error text kept with a notification, in bytes */
#define ERROR_MAX		2000
/* longest e-mail address, webhook URL */
#define EMAIL_MAX		254
#define URL_MAX			2000
/* most rows one claim may take */
#define CLAIM_MAX		10000

static SPIPlanPtr insert_plan = NULL;

/* ---------------------------------------------------------------------
 * The relay rings (see the top of this file)
 * ---------------------------------------------------------------------
 */
#define RELAY_RING_SIZE		1024
#define RELAY_RESERVED		INT64CONST(-1)	/* a committing transaction's */
#define RELAY_VOID			INT64CONST(-2)	/* its commit failed */

typedef struct RelayRing
{
	slock_t		mutex;
	Oid			dbid;			/* InvalidOid: free */
	uint64		head;			/* the next place to reserve */
	uint64		tail;			/* the next place the worker takes */
	int64		ids[RELAY_RING_SIZE];
} RelayRing;

typedef struct RelayShared
{
	slock_t		assign;			/* held while a ring is given a database */
	RelayRing	rings[LOCKBOX_MAX_DATABASES];
} RelayShared;

static RelayShared *relay_shared = NULL;

/* this transaction's notifications, for the ring at its commit */
typedef struct PendingRelay
{
	int64		id;
	SubTransactionId subid;
} PendingRelay;

static PendingRelay *pending = NULL;
static int	npending = 0;
static int	pending_size = 0;

/* places reserved at pre-commit */
static RelayRing *reserved_ring = NULL;
static uint64 reserved_at = 0;
static int	nreserved = 0;

/*
 * The worker's: ids taken from the ring whose relay has not committed.  A
 * relay transaction that fails (a full NOTIFY queue, say) keeps them, and
 * the worker puts them into the outbox (lockbox_relay_keep).
 */
static int64 relay_taken[RELAY_RING_SIZE];
static int	nrelay_taken = 0;
static bool relaying_taken = false;	/* this transaction sends them */

Size
lockbox_relay_shmem_size(void)
{
	return MAXALIGN(sizeof(RelayShared));
}

void
lockbox_relay_shmem_init(void)
{
	bool		found;

	relay_shared = ShmemInitStruct("lockbox relay", sizeof(RelayShared), &found);
	if (!found)
	{
		SpinLockInit(&relay_shared->assign);
		for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
		{
			SpinLockInit(&relay_shared->rings[i].mutex);
			relay_shared->rings[i].dbid = InvalidOid;
			relay_shared->rings[i].head = relay_shared->rings[i].tail = 0;
		}
	}
}

/*
 * The ring of this database, locked; NULL when it has none and (unless
 * create) none is free.  An empty ring of another database is taken over.
 */
static RelayRing *
lock_ring(bool create)
{
	static RelayRing *mine = NULL;
	RelayRing  *ring = NULL;

	if (relay_shared == NULL)
		return NULL;
	if (mine != NULL)
	{
		SpinLockAcquire(&mine->mutex);
		if (mine->dbid == MyDatabaseId)
			return mine;
		SpinLockRelease(&mine->mutex);
		mine = NULL;
	}
	SpinLockAcquire(&relay_shared->assign);
	for (int i = 0; i < LOCKBOX_MAX_DATABASES && ring == NULL; i++)
		if (relay_shared->rings[i].dbid == MyDatabaseId)
			ring = &relay_shared->rings[i];
	for (int i = 0; i < LOCKBOX_MAX_DATABASES && ring == NULL && create; i++)
	{
		RelayRing  *r = &relay_shared->rings[i];

		SpinLockAcquire(&r->mutex);
		if (r->dbid == InvalidOid || r->head == r->tail)
		{
			r->dbid = MyDatabaseId;
			r->head = r->tail = 0;
			ring = r;
		}
		SpinLockRelease(&r->mutex);
	}
	SpinLockRelease(&relay_shared->assign);
	if (ring == NULL)
		return NULL;
	SpinLockAcquire(&ring->mutex);
	if (ring->dbid != MyDatabaseId)
	{
		/* (taken over between the two locks) */
		SpinLockRelease(&ring->mutex);
		return NULL;
	}
	mine = ring;
	return ring;
}

/* Hand notification id to the worker once this transaction commits. */
void
lockbox_relay_at_commit(int64 id)
{
	if (npending == pending_size)
	{
		int			size = Max(16, pending_size * 2);

		pending = pending == NULL ?
			MemoryContextAlloc(TopMemoryContext, sizeof(PendingRelay) * size) :
			repalloc(pending, sizeof(PendingRelay) * size);
		pending_size = size;
	}
	pending[npending].id = id;
	pending[npending].subid = GetCurrentSubTransactionId();
	npending++;
	lockbox_relay_wake_at_commit();
}

/* Queue notifications in the outbox: id(i) for i below n. */
static void
into_outbox(int n, int64 (*id) (int i))
{
	static const char *const tables[] = {"notify_outbox"};
	LockboxStore *store = lockbox_store_open(1, tables);

	for (int i = 0; i < n; i++)
	{
		lockbox_store_new_row(store, 0);
		lockbox_store_set(store, 0, "notification_id", Int64GetDatum(id(i)),
						  INT8OID, false);
		lockbox_store_insert(store, 0);
	}
	lockbox_store_close(store);
}

static int64
pending_id(int i)
{
	return pending[i].id;
}

static int64
taken_id(int i)
{
	return relay_taken[i];
}

/* The outbox, for ids the ring has no room for (at pre-commit). */
static void
relay_through_outbox(void)
{
	into_outbox(npending, pending_id);
}

/*
 * The worker's, after a relay that failed: the ids it took from the ring go
 * into the outbox (kept there, and sent by the next relay that works, even
 * from another worker process).  Returns how many.
 */
int
lockbox_relay_keep(void)
{
	if (nrelay_taken == 0)
		return 0;
	into_outbox(nrelay_taken, taken_id);
	relaying_taken = true;		/* (forgotten once this commits) */
	return nrelay_taken;
}

/*
 * At the commit of DROP EXTENSION lockbox: what this database's ring holds
 * names notifications of the installation dropped, and is forgotten, not
 * looked up in a new installation's table (which numbers its own from 1
 * again).  No transition of it is between its pre-commit and its commit:
 * DROP EXTENSION waited for their locks.
 */
void
lockbox_relay_forget(void)
{
	RelayRing  *ring = lock_ring(false);

	if (ring == NULL)
		return;
	ring->tail = ring->head;
	SpinLockRelease(&ring->mutex);
}

void
lockbox_relay_xact(XactEvent event)
{
	RelayRing  *ring;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			if (npending == 0)
				break;
			ring = lock_ring(true);
			if (ring != NULL &&
				ring->head - ring->tail + npending <= RELAY_RING_SIZE)
			{
				reserved_ring = ring;
				reserved_at = ring->head;
				nreserved = npending;
				for (int i = 0; i < npending; i++)
					ring->ids[(ring->head + i) % RELAY_RING_SIZE] = RELAY_RESERVED;
				ring->head += npending;
			}
			if (ring != NULL)
				SpinLockRelease(&ring->mutex);
			if (nreserved == 0)
				relay_through_outbox();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (event == XACT_EVENT_COMMIT && relaying_taken)
				nrelay_taken = 0;	/* relayed */
			relaying_taken = false;
			if (nreserved > 0)
			{
				/* (a ring with places reserved is never taken over) */
				SpinLockAcquire(&reserved_ring->mutex);
				for (int i = 0; i < nreserved; i++)
					reserved_ring->ids[(reserved_at + i) % RELAY_RING_SIZE] =
						event == XACT_EVENT_COMMIT ? pending[i].id : RELAY_VOID;
				SpinLockRelease(&reserved_ring->mutex);
			}
			reserved_ring = NULL;
			nreserved = 0;
			npending = 0;
			break;
		default:
			break;
	}
}

void
lockbox_relay_subxact(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid)
{
	int			keep = 0;

	if (npending == 0)
		return;
	for (int i = 0; i < npending; i++)
	{
		if (pending[i].subid != mySubid)
			pending[keep++] = pending[i];
		else if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			pending[i].subid = parentSubid;
			pending[keep++] = pending[i];
		}
		else if (event != SUBXACT_EVENT_ABORT_SUB)
			pending[keep++] = pending[i];
	}
	npending = keep;
}

/*
 * The worker: up to max (at most RELAY_RING_SIZE) ids committed into this
 * database's ring, taken into ids; returns how many.
 */
static int
take_from_ring(int64 *ids, int max)
{
	RelayRing  *ring = lock_ring(false);
	int			n = 0;

	if (ring == NULL)
		return 0;
	while (ring->tail < ring->head && n < max)
	{
		int64		id = ring->ids[ring->tail % RELAY_RING_SIZE];

		if (id == RELAY_RESERVED)
			break;				/* its transaction is still committing */
		ring->tail++;
		if (id != RELAY_VOID)
			ids[n++] = id;
	}
	SpinLockRelease(&ring->mutex);
	return n;
}

/* A notification's payload (its "id" is added when the row is inserted). */
Datum
lockbox_notification_payload(int64 request_id, Oid recipient, const char *event,
							 const char *tenant, const char *state)
{
	return DirectFunctionCall1(jsonb_in,
							   CStringGetDatum(lockbox_notification_payload_text(request_id, recipient,
																				 event, tenant, state)));
}

/* The same, as JSON text. */
char *
lockbox_notification_payload_text(int64 request_id, Oid recipient, const char *event,
								  const char *tenant, const char *state)
{
	StringInfoData payload;

	initStringInfo(&payload);
	appendStringInfoChar(&payload, '{');
	lockbox_json_str(&payload, "event", event);
	lockbox_json_raw(&payload, "request_id", psprintf(INT64_FORMAT, request_id));
	lockbox_json_str(&payload, "tenant", tenant);
	lockbox_json_str(&payload, "state", state);
	lockbox_json_str(&payload, "recipient", lockbox_role_name(recipient));
	/* the audit's head now: an anchor the recipient keeps */
	lockbox_json_raw(&payload, "anchors", lockbox_audit_head_json());
	appendStringInfoChar(&payload, '}');
	return payload.data;
}

void
lockbox_notify(LockboxCall *call, int64 request_id, Oid recipient,
			   const char *event, const char *tenant, const char *state)
{
	static const char *sql =
		"WITH i AS (SELECT pg_catalog.nextval('lockbox.notification_id_seq') AS id),"
		"     n AS (INSERT INTO lockbox.notification"
		"           (id, request_id, recipient, event, payload, created_at)"
		"           SELECT i.id, $1, $2, $3,"
		"                  $4 OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('id', i.id),"
		"                  $5 FROM i RETURNING id)"
		" INSERT INTO lockbox.notify_outbox (notification_id) SELECT n.id FROM n";
	Oid			argtypes[5] = {INT8OID, REGROLEOID, TEXTOID, JSONBOID, TIMESTAMPTZOID};
	Datum		values[5];

	values[0] = Int64GetDatum(request_id);
	values[1] = ObjectIdGetDatum(recipient);
	values[2] = CStringGetTextDatum(event);
	values[3] = lockbox_notification_payload(request_id, recipient, event,
											 tenant, state);
	values[4] = TimestampTzGetDatum(call->now);
	if (lockbox_exec(&insert_plan, sql, 5, argtypes, values, NULL, 0)
		!= SPI_OK_INSERT)
		elog(ERROR, "could not queue a lockbox notification");

	lockbox_relay_wake_at_commit();
}

/*
 * NOTIFY lockbox with the payload of each notification of ids (n of them;
 * sorted here, and sent in that order), each read by its primary key with a
 * snapshot taken now, after the ids were: every one of them committed.
 * (By the key, not by a cached SQL plan: one planned while the table was
 * small would scan it whole for every batch as it grows.)  Returns how many
 * were sent; a notification deleted meanwhile is not.
 */
static int64
notify_ids(int64 *ids, int n)
{
	Snapshot	snapshot;
	int64		sent = 0;

	if (n == 0)
		return 0;
	qsort(ids, n, sizeof(int64), lockbox_int64_cmp);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	for (int i = 0; i < n; i++)
	{
		Datum		key = Int64GetDatum(ids[i]);
		TupleDesc	td;
		List	   *rows = lockbox_store_read("notification", 1, &key, snapshot, &td);
		bool		isnull;
		Datum		payload;
		Jsonb	   *jb;

		if (rows == NIL)
			continue;
		payload = lockbox_store_get(linitial(rows), td, "payload", &isnull);
		if (isnull)
			continue;
		jb = DatumGetJsonbP(payload);
		Async_Notify("lockbox", JsonbToCString(NULL, &jb->root, VARSIZE(jb)));
		sent++;
		list_free_deep(rows);
	}
	UnregisterSnapshot(snapshot);
	return sent;
}

/*
 * Send the NOTIFYs of the notifications committed into this database's
 * relay ring and of every committed outbox row (deleting those rows), in
 * the caller's transaction (the worker's).  Returns how many were sent, or
 * batch when either source gave a full batch (the worker asks again).
 * Only the database's worker relays; were two relays to run at once, the
 * ring gives each id to one of them, and the second's DELETE would wait for
 * the first and skip the rows it deleted, so no NOTIFY is sent twice (and
 * no row lock is taken, and logged, first).
 */
int64
lockbox_relay_notifications(int batch)
{
	static SPIPlanPtr plan = NULL;
	static const char *sql =
		"DELETE FROM lockbox.notify_outbox"
		" WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
		"   SELECT o.ctid FROM lockbox.notify_outbox o LIMIT $1))"
		" RETURNING notification_id";
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	int64		sent;
	int			nring;
	int			noutbox;
	int64	   *ids;

	batch = Min(batch, RELAY_RING_SIZE);
	values[0] = Int32GetDatum(batch);
	ids = palloc(sizeof(int64) * batch * 2);
	/* what a relay that failed took first, then more from the ring */
	if (nrelay_taken == 0)
		nrelay_taken = take_from_ring(relay_taken, batch);
	nring = Min(nrelay_taken, batch);
	memcpy(ids, relay_taken, sizeof(int64) * nring);
	relaying_taken = nring > 0;

	lockbox_exec(&plan, sql, 1, argtypes, values, NULL, 0);
	noutbox = (int) SPI_processed;
	for (int i = 0; i < noutbox; i++)
	{
		bool		isnull;
		Datum		id = SPI_getbinval(SPI_tuptable->vals[i],
									   SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			ids[nring++] = DatumGetInt64(id);
	}
	sent = notify_ids(ids, nring);
	pfree(ids);
	/* (a full batch from either: the worker asks again) */
	if (nring - noutbox == batch || noutbox == batch)
		return batch;
	return Min(sent, batch - 1);
}

/*
 * lockbox_claim_notifications(max [, lease]): up to max notifications that
 * are neither delivered nor failed and are due (never claimed, or their
 * lease or backoff has passed), leased to the caller until now + lease.
 */
Datum
lockbox_claim_notifications(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const char *sql =
		"UPDATE lockbox.notification n SET claimed_at = $2, claimed_by = $3,"
		"       next_attempt_at = $2 OPERATOR(pg_catalog.+) $4"
		" WHERE n.id OPERATOR(pg_catalog.=) ANY (ARRAY("
		"   SELECT c.id FROM lockbox.notification c"
		"    WHERE c.delivered_at IS NULL AND c.failed_at IS NULL"
		"      AND COALESCE(c.next_attempt_at,"
		"                   c.claimed_at OPERATOR(pg_catalog.+) '" CLAIM_LEASE "'::pg_catalog.interval,"
		"                   '-infinity') OPERATOR(pg_catalog.<=) $2"
		"    ORDER BY c.id LIMIT $1 FOR UPDATE SKIP LOCKED))"
		" RETURNING n.id, n.request_id, n.recipient::pg_catalog.name, n.event,"
		"           n.payload, n.created_at";
	Oid			argtypes[4] = {INT4OID, TIMESTAMPTZOID, NAMEOID, INTERVALOID};
	Datum		values[4];
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LockboxCall call;
	int32		max;
	NameData	claimer;
	Interval	lease;

	lockbox_require_writable(fcinfo);
	lockbox_require_arg(fcinfo, 0, "max");
	max = PG_GETARG_INT32(0);
	if (max < 1 || max > CLAIM_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be between 1 and %d", CLAIM_MAX)));
	if (PG_NARGS() > 1)
	{
		Interval	zero;

		lockbox_require_arg(fcinfo, 1, "lease");
		lease = *PG_GETARG_INTERVAL_P(1);
		memset(&zero, 0, sizeof(zero));
		if (DatumGetInt32(DirectFunctionCall2(interval_cmp,
											  IntervalPGetDatum(&lease),
											  IntervalPGetDatum(&zero))) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lease must be greater than zero")));
	}
	else
		lease = *DatumGetIntervalP(DirectFunctionCall3(interval_in,
													   CStringGetDatum(CLAIM_LEASE),
													   ObjectIdGetDatum(InvalidOid),
													   Int32GetDatum(-1)));

	InitMaterializedSRF(fcinfo, 0);

	lockbox_enter(&call);
	namestrcpy(&claimer, lockbox_role_name(call.caller));
	values[0] = Int32GetDatum(max);
	values[1] = TimestampTzGetDatum(call.now);
	values[2] = NameGetDatum(&claimer);
	values[3] = IntervalPGetDatum(&lease);
	lockbox_exec(&plan, sql, 4, argtypes, values, NULL, 0);

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		row[6];
		bool		nulls[6];

		for (int c = 0; c < 6; c++)
			row[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
								   c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
	}
	lockbox_leave(&call);
	return (Datum) 0;
}

Datum
lockbox_ack_notification(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr ack_plan = NULL;
	static SPIPlanPtr exists_plan = NULL;
	Oid			argtypes[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];
	LockboxCall call;
	bool		marked;

	lockbox_require_writable(fcinfo);
	lockbox_require_arg(fcinfo, 0, "id");

	lockbox_enter(&call);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = TimestampTzGetDatum(call.now);
	lockbox_exec(&ack_plan,
				 "UPDATE lockbox.notification SET delivered_at = $2"
				 " WHERE id OPERATOR(pg_catalog.=) $1 AND delivered_at IS NULL",
				 2, argtypes, values, NULL, 0);
	marked = (SPI_processed > 0);
	if (!marked)
	{
		lockbox_exec(&exists_plan,
					 "SELECT 1 FROM lockbox.notification WHERE id OPERATOR(pg_catalog.=) $1",
					 1, argtypes, values, NULL, 1);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("notification " INT64_FORMAT " does not exist",
							PG_GETARG_INT64(0))));
	}
	lockbox_leave(&call);
	PG_RETURN_BOOL(marked);
}

/*
 * lockbox_fail_notification(id, error [, retry_in]): a delivery attempt
 * failed.  With retry_in the notification may be claimed again once that
 * long has passed; without, it is failed for good.  Either way the claim
 * ends, the attempt is counted and the error kept.  Returns the attempts
 * made.  A notification already delivered or failed is left as it is.
 */
Datum
lockbox_fail_notification(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr fail_plan = NULL;
	static SPIPlanPtr read_plan = NULL;
	Oid			argtypes[4] = {INT8OID, TEXTOID, INTERVALOID, TIMESTAMPTZOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	LockboxCall call;
	char	   *error;
	bool		isnull;
	int32		attempts;

	lockbox_require_writable(fcinfo);
	lockbox_require_arg(fcinfo, 0, "id");
	lockbox_require_arg(fcinfo, 1, "error");
	error = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strlen(error) > ERROR_MAX)
		error[pg_mbcliplen(error, strlen(error), ERROR_MAX)] = '\0';
	if (!PG_ARGISNULL(2))
	{
		Interval	zero;

		memset(&zero, 0, sizeof(zero));
		if (DatumGetInt32(DirectFunctionCall2(interval_cmp, PG_GETARG_DATUM(2),
											  IntervalPGetDatum(&zero))) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("retry_in must be greater than zero")));
	}

	lockbox_enter(&call);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = CStringGetTextDatum(error);
	values[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	values[3] = TimestampTzGetDatum(call.now);
	lockbox_exec(&fail_plan,
				 "UPDATE lockbox.notification"
				 "   SET attempts = attempts OPERATOR(pg_catalog.+) 1, last_error = $2,"
				 "       claimed_at = NULL, claimed_by = NULL,"
				 "       next_attempt_at = $4 OPERATOR(pg_catalog.+) $3,"
				 "       failed_at = CASE WHEN $3 IS NULL THEN $4 END"
				 " WHERE id OPERATOR(pg_catalog.=) $1"
				 "   AND delivered_at IS NULL AND failed_at IS NULL"
				 " RETURNING attempts",
				 4, argtypes, values, nulls, 0);
	if (SPI_processed == 0)
	{
		lockbox_exec(&read_plan,
					 "SELECT attempts FROM lockbox.notification"
					 " WHERE id OPERATOR(pg_catalog.=) $1",
					 1, argtypes, values, NULL, 1);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("notification " INT64_FORMAT " does not exist",
							PG_GETARG_INT64(0))));
	}
	attempts = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	lockbox_leave(&call);
	PG_RETURN_INT32(attempts);
}

/*
 * Approvers are told when access they approved starts and ends: one
 * notification to each role that voted to approve each request of
 * request_ids (a List of int64 pointers), with event and state.
 */
void
lockbox_notify_deciders(LockboxCall *call, List *request_ids,
						const char *event, const char *state)
{
	static SPIPlanPtr plan = NULL;
	static const char *sql =
		"WITH d AS (SELECT d.request_id, d.approver, r.tenant"
		"             FROM lockbox.decision d JOIN lockbox.request r"
		"               ON r.id OPERATOR(pg_catalog.=) d.request_id"
		"            WHERE d.request_id OPERATOR(pg_catalog.=) ANY ($1)"
		"              AND d.decision OPERATOR(pg_catalog.=) 'approve'),"
		"     i AS (SELECT pg_catalog.nextval('lockbox.notification_id_seq') AS id,"
		"                  d.request_id, d.approver, d.tenant FROM d),"
		"     n AS (INSERT INTO lockbox.notification"
		"                  (id, request_id, recipient, event, payload, created_at)"
		"           SELECT i.id, i.request_id, i.approver, $2,"
		"                  pg_catalog.jsonb_build_object('event', $2,"
		"                      'request_id', i.request_id, 'tenant', i.tenant,"
		"                      'state', $3, 'recipient',"
		"                      pg_catalog.pg_get_userbyid(i.approver::pg_catalog.oid),"
		"                      'id', i.id),"
		"                  $4 FROM i RETURNING id)"
		" INSERT INTO lockbox.notify_outbox (notification_id) SELECT n.id FROM n";
	Oid			argtypes[4] = {INT8ARRAYOID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[4];
	Datum	   *ids;
	ListCell   *lc;
	int			n = 0;

	if (request_ids == NIL)
		return;
	ids = palloc(sizeof(Datum) * list_length(request_ids));
	foreach(lc, request_ids)
		ids[n++] = Int64GetDatum(*(int64 *) lfirst(lc));
	values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = CStringGetTextDatum(event);
	values[2] = CStringGetTextDatum(state);
	values[3] = TimestampTzGetDatum(call->now);
	lockbox_exec(&plan, sql, 4, argtypes, values, NULL, 0);
	if (SPI_processed > 0)
		lockbox_relay_wake_at_commit();
}

/* ---------------------------------------------------------------------
 * Addresses: lockbox_set_contact, lockbox_set_webhook
 * ---------------------------------------------------------------------
 */

/* An e-mail address as lockbox accepts it: local@domain, plain ASCII. */
static bool
valid_email(const char *a)
{
	const char *at = strchr(a, '@');
	const char *p;
	size_t		len = strlen(a);

	if (len < 3 || len > EMAIL_MAX || at == NULL || at == a ||
		strchr(at + 1, '@') != NULL || at - a > 64)
		return false;
	for (p = a; p < at; p++)
	{
		if (*p <= ' ' || *p >= 127 || strchr("<>()[]\\,;:\"", *p) != NULL)
			return false;
	}
	/* the domain: labels of letters, digits and hyphens */
	p = at + 1;
	if (*p == '\0' || *p == '.' || *p == '-' || a[len - 1] == '.' ||
		strstr(p, "..") != NULL)
		return false;
	for (; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return false;
	}
	return true;
}

/* A webhook URL: http:// or https://, a host, printable ASCII, no spaces. */
static bool
valid_url(const char *u)
{
	const char *host;

	if (strlen(u) > URL_MAX)
		return false;
	if (strncmp(u, "https://", 8) == 0)
		host = u + 8;
	else if (strncmp(u, "http://", 7) == 0)
		host = u + 7;
	else
		return false;
	if (*host == '\0' || *host == '/' || *host == ':')
		return false;
	for (const char *p = u; *p; p++)
	{
		if (*p <= ' ' || *p >= 127 || *p == '"' || *p == '<' || *p == '>' ||
			*p == '\\')
			return false;
	}
	return true;
}

/*
 * Split a list of addresses at the separators, dropping empty items; each
 * must pass check, else 22023 naming what.
 */
static List *
split_addresses(const char *list, const char *separators,
				bool (*check) (const char *), const char *what)
{
	char	   *copy = pstrdup(list);
	char	   *save = NULL;
	List	   *result = NIL;

	for (char *item = strtok_r(copy, separators, &save); item != NULL;
		 item = strtok_r(NULL, separators, &save))
	{
		if (!check(item))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: \"%s\"", what, lockbox_clip(item)),
					 strcmp(what, "e-mail address") == 0 ?
					 errdetail("An address is local@domain in plain ASCII; several are separated by commas.") :
					 errdetail("A URL begins with https:// or http:// and has no white space; several are separated by white space.")));
		if (!list_member(result, makeString(item)))
			result = lappend(result, makeString(item));
	}
	if (result == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no %s given", what),
				 errhint("Pass NULL to remove them all.")));
	return result;
}

/* Replace the rows of key in table (contact by role, webhook by tenant). */
static void
replace_addresses(SPIPlanPtr *delete_plan, SPIPlanPtr *insert_plan,
				  const char *table, const char *keycol, Oid keytype,
				  const char *valcol, Datum key, List *items)
{
	Oid			argtypes[2] = {keytype, TEXTARRAYOID};
	Datum		values[2];
	Datum	   *elems;
	ListCell   *lc;
	int			n = 0;

	values[0] = key;
	lockbox_exec(delete_plan,
				 psprintf("DELETE FROM lockbox.%s WHERE %s OPERATOR(pg_catalog.=) $1",
						  table, keycol),
				 1, argtypes, values, NULL, 0);
	if (items == NIL)
		return;
	elems = palloc(sizeof(Datum) * list_length(items));
	foreach(lc, items)
		elems[n++] = CStringGetTextDatum(strVal(lfirst(lc)));
	values[1] = PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false,
												TYPALIGN_INT));
	lockbox_exec(insert_plan,
				 psprintf("INSERT INTO lockbox.%s (%s, %s)"
						  " SELECT $1, a FROM pg_catalog.unnest($2) a",
						  table, keycol, valcol),
				 2, argtypes, values, NULL, 0);
}

/* The list as a JSON array, for the audit. */
static char *
json_list(List *items)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	foreach(lc, items)
	{
		if (buf.len > 1)
			appendStringInfoString(&buf, ", ");
		escape_json(&buf, strVal(lfirst(lc)));
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

/*
 * lockbox_set_contact(who, email): the extension owner sets a role's e-mail
 * addresses (several separated by commas), replacing those it had; NULL
 * removes them.  A group role's notifications also reach its members'
 * addresses.
 */
Datum
lockbox_set_contact(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr delete_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	LockboxCall call;
	Oid			role;
	List	   *items = NIL;
	StringInfoData detail;

	lockbox_require_writable(fcinfo);
	lockbox_require_arg(fcinfo, 0, "who");
	role = PG_GETARG_OID(0);
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", role)));
	if (!PG_ARGISNULL(1))
		items = split_addresses(text_to_cstring(PG_GETARG_TEXT_PP(1)),
								", \t\r\n", valid_email, "e-mail address");

	lockbox_enter(&call);
	replace_addresses(&delete_plan, &insert_plan, "contact", "role",
					  REGROLEOID, "email", ObjectIdGetDatum(role), items);
	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_str(&detail, "role", lockbox_role_name(role));
	lockbox_json_raw(&detail, "email", json_list(items));
	appendStringInfoChar(&detail, '}');
	lockbox_audit(&call, "set_contact", 0, NULL, detail.data);
	lockbox_leave(&call);
	PG_RETURN_VOID();
}

/*
 * lockbox_set_webhook(tenant, url): the extension owner sets a tenant's
 * webhook URLs (several separated by white space), replacing those it had;
 * NULL removes them.
 */
Datum
lockbox_set_webhook(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr delete_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	LockboxCall call;
	char	   *tenant = lockbox_tenant_arg(fcinfo, 0);
	List	   *items = NIL;
	StringInfoData detail;

	lockbox_require_writable(fcinfo);
	if (!PG_ARGISNULL(1))
		items = split_addresses(text_to_cstring(PG_GETARG_TEXT_PP(1)),
								" \t\r\n", valid_url, "webhook URL");

	lockbox_enter(&call);
	if (!lockbox_tenant_hold(tenant))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist", tenant)));
	replace_addresses(&delete_plan, &insert_plan, "webhook", "tenant",
					  TEXTOID, "url", CStringGetTextDatum(tenant), items);
	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_raw(&detail, "url", json_list(items));
	appendStringInfoChar(&detail, '}');
	lockbox_audit(&call, "set_webhook", 0, tenant, detail.data);
	lockbox_leave(&call);
	PG_RETURN_VOID();
}
