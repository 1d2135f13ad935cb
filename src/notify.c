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
 * make every transition wait for the previous one.  A transition instead
 * queues the notification's id in lockbox.notify_outbox; at commit it wakes
 * the database's lockbox worker, which sends the NOTIFYs of every committed
 * outbox row in one transaction of its own and deletes those rows in it.  A
 * listener therefore hears each notification once, a few milliseconds after
 * the transition committed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "lockbox.h"

PG_FUNCTION_INFO_V1(lockbox_claim_notifications);
PG_FUNCTION_INFO_V1(lockbox_ack_notification);

/* a claim not acknowledged within this long may be claimed again */
#define CLAIM_LEASE		"5 minutes"
/* most rows one claim may take */
#define CLAIM_MAX		10000

static SPIPlanPtr insert_plan = NULL;

/* A notification's payload (its "id" is added when the row is inserted). */
Datum
lockbox_notification_payload(int64 request_id, Oid recipient, const char *event,
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
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(payload.data));
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
		"                  $5 FROM i RETURNING id, payload)"
		" INSERT INTO lockbox.notify_outbox (notification_id, payload)"
		" SELECT n.id, n.payload::pg_catalog.text FROM n";
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

	lockbox_wake_worker_at_commit();
}

/*
 * Send the NOTIFYs of every committed outbox row and delete those rows, in
 * the caller's transaction (the worker's).  Returns how many were sent.
 */
int64
lockbox_relay_notifications(int batch)
{
	static SPIPlanPtr plan = NULL;
	static const char *sql =
		"WITH d AS (DELETE FROM lockbox.notify_outbox"
		"           WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
		"             SELECT o.ctid FROM lockbox.notify_outbox o"
		"              LIMIT $1 FOR UPDATE SKIP LOCKED))"
		"           RETURNING notification_id, payload)"
		" SELECT d.notification_id, d.payload FROM d ORDER BY d.notification_id";
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(batch)};
	int64		sent;

	lockbox_exec(&plan, sql, 1, argtypes, values, NULL, 0);
	sent = (int64) SPI_processed;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[i];
		Datum		payload = SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull);

		Async_Notify("lockbox", TextDatumGetCString(payload));
	}
	return sent;
}

Datum
lockbox_claim_notifications(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const char *sql =
		"UPDATE lockbox.notification n SET claimed_at = $2, claimed_by = $3"
		" WHERE n.id OPERATOR(pg_catalog.=) ANY (ARRAY("
		"   SELECT c.id FROM lockbox.notification c"
		"    WHERE c.delivered_at IS NULL"
		"      AND (c.claimed_at IS NULL"
		"           OR c.claimed_at OPERATOR(pg_catalog.<)"
		"              ($2 OPERATOR(pg_catalog.-) '" CLAIM_LEASE "'::pg_catalog.interval))"
		"    ORDER BY c.id LIMIT $1 FOR UPDATE SKIP LOCKED))"
		" RETURNING n.id, n.request_id, n.recipient::pg_catalog.name, n.event,"
		"           n.payload, n.created_at";
	Oid			argtypes[3] = {INT4OID, TIMESTAMPTZOID, NAMEOID};
	Datum		values[3];
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LockboxCall call;
	int32		max;
	NameData	claimer;

	lockbox_require_arg(fcinfo, 0, "max");
	max = PG_GETARG_INT32(0);
	if (max < 1 || max > CLAIM_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be between 1 and %d", CLAIM_MAX)));

	InitMaterializedSRF(fcinfo, 0);

	lockbox_enter(&call);
	namestrcpy(&claimer, lockbox_role_name(call.caller));
	values[0] = Int32GetDatum(max);
	values[1] = TimestampTzGetDatum(call.now);
	values[2] = NameGetDatum(&claimer);
	lockbox_exec(&plan, sql, 3, argtypes, values, NULL, 0);

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
