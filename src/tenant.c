/*-------------------------------------------------------------------------
 *
 * tenant.c
 *		Tenants, their approvers, and the per-tenant lockbox switch.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "lockbox.h"

PG_FUNCTION_INFO_V1(lockbox_add_tenant);
PG_FUNCTION_INFO_V1(lockbox_set_enabled);
PG_FUNCTION_INFO_V1(lockbox_add_approver);
PG_FUNCTION_INFO_V1(lockbox_remove_approver);
PG_FUNCTION_INFO_V1(lockbox_remove_tenant);
PG_FUNCTION_INFO_V1(lockbox_tenants_changed);

static SPIPlanPtr tenant_plan = NULL;
static SPIPlanPtr approvers_plan = NULL;

/* ---------------------------------------------------------------------
 * A tenant's facts, cached per backend
 *
 * Every transition reads its request's tenant (enabled, required approvals)
 * and approvers as committed now.  A backend keeps what it read, and uses
 * it while nothing in lockbox.tenant or lockbox.approver changed: a
 * statement trigger on both (lockbox.tenants_changed, ENABLE ALWAYS: also
 * under session_replication_role = replica) advances a counter in shared
 * memory when the change is made, and again once its transaction has
 * committed or aborted.  A backend that read the counter before reading the
 * tables uses the facts only while the counter is unchanged: a change
 * committed after the read advances it at its commit at the latest, and
 * one whose transaction was still open when the facts were read advanced
 * it before they were read, so they are read again after it ends.  Facts
 * are also read again after a second, whatever the counter (a trigger a
 * superuser disabled leaves them at most a second old).
 * ---------------------------------------------------------------------
 */
#define TENANT_FACTS_TTL_MS		1000

typedef struct TenantShared
{
	pg_atomic_uint64 generation;
} TenantShared;

static TenantShared *tenant_shared = NULL;

/* this transaction changed tenants or approvers: advance again at its end */
static bool tenants_changed_here = false;

typedef struct TenantFacts
{
	char		tenant[LOCKBOX_MAX_TENANT * MAX_MULTIBYTE_CHAR_LEN + 1];	/* key */
	bool		exists;
	bool		enabled;
	int			required_approvals;
	int			napprovers;
	Oid		   *approvers;		/* in TopMemoryContext */
	TimestampTz read_at;
} TenantFacts;

static HTAB *tenant_facts = NULL;
static uint64 tenant_facts_generation = 0;

Size
lockbox_tenant_shmem_size(void)
{
	return MAXALIGN(sizeof(TenantShared));
}

void
lockbox_tenant_shmem_init(void)
{
	bool		found;

	tenant_shared = ShmemInitStruct("lockbox tenants", sizeof(TenantShared), &found);
	if (!found)
		pg_atomic_init_u64(&tenant_shared->generation, 1);
}

static void
advance_generation(void)
{
	if (tenant_shared != NULL)
		pg_atomic_fetch_add_u64(&tenant_shared->generation, 1);
}

/*
 * lockbox.tenants_changed(): AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
 * ON lockbox.tenant and lockbox.approver, FOR EACH STATEMENT.
 */
Datum
lockbox_tenants_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("lockbox.tenants_changed() must be fired as a trigger")));
	advance_generation();
	tenants_changed_here = true;
	return PointerGetDatum(NULL);
}

/* At the end of a transaction that changed tenants or approvers. */
void
lockbox_tenant_xact(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (tenants_changed_here)
				advance_generation();
			tenants_changed_here = false;
			break;
		default:
			break;
	}
}

/*
 * The tenant's settings and approvers (in role OID order) as committed now,
 * this transaction's own changes included; false when there is no such
 * tenant.  snapshot: the latest, registered.  now: the caller's time.
 * Between lockbox_enter and lockbox_leave.
 */
bool
lockbox_tenant_facts(const char *tenant, Snapshot snapshot, TimestampTz now,
					 bool *enabled, int *required_approvals, List **approvers)
{
	uint64		generation;
	TenantFacts *f;
	bool		found;
	List	   *rows;
	TupleDesc	td;
	Datum		key;
	ListCell   *lc;
	bool		isnull;
	int			i;

	if (strlen(tenant) >= sizeof(f->tenant))
		elog(ERROR, "tenant name too long");
	if (tenant_facts == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(f->tenant);
		ctl.entrysize = sizeof(TenantFacts);
		ctl.hcxt = TopMemoryContext;
		tenant_facts = hash_create("lockbox tenant facts", 64, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	pg_memory_barrier();
	generation = tenant_shared ? pg_atomic_read_u64(&tenant_shared->generation) : 0;
	if (generation != tenant_facts_generation || tenants_changed_here ||
		generation == 0)
	{
		HASH_SEQ_STATUS seq;

		hash_seq_init(&seq, tenant_facts);
		while ((f = hash_seq_search(&seq)) != NULL)
		{
			if (f->approvers)
				pfree(f->approvers);
			hash_search(tenant_facts, f->tenant, HASH_REMOVE, NULL);
		}
		tenant_facts_generation = generation;
	}
	f = hash_search(tenant_facts, tenant, HASH_FIND, NULL);
	if (f != NULL && f->read_at <= now &&
		now - f->read_at < TENANT_FACTS_TTL_MS * INT64CONST(1000) &&
		!tenants_changed_here && generation != 0)
	{
		*enabled = f->enabled;
		*required_approvals = f->required_approvals;
		*approvers = NIL;
		for (i = 0; i < f->napprovers; i++)
			*approvers = lappend_oid(*approvers, f->approvers[i]);
		return f->exists;
	}

	/* read them */
	key = CStringGetTextDatum(tenant);
	rows = lockbox_store_read("tenant", 1, &key, snapshot, &td);
	*enabled = true;
	*required_approvals = 1;
	*approvers = NIL;
	found = rows != NIL;
	if (found)
	{
		Datum		d;

		d = lockbox_store_get(linitial(rows), td, "enabled", &isnull);
		if (isnull)
			elog(ERROR, "tenant \"%s\" has no setting \"enabled\"", tenant);
		*enabled = DatumGetBool(d);
		d = lockbox_store_get(linitial(rows), td, "required_approvals", &isnull);
		if (isnull)
			elog(ERROR, "tenant \"%s\" has no setting \"required_approvals\"", tenant);
		*required_approvals = DatumGetInt32(d);
		rows = lockbox_store_read("approver", 1, &key, snapshot, &td);
		foreach(lc, rows)
			*approvers = lappend_oid(*approvers,
									 DatumGetObjectId(lockbox_store_get(lfirst(lc), td,
																		"approver", &isnull)));
	}

	/* and keep them (not while this transaction has changes of its own) */
	if (!tenants_changed_here && generation != 0)
	{
		f = hash_search(tenant_facts, tenant, HASH_ENTER, NULL);
		f->exists = found;
		f->enabled = *enabled;
		f->required_approvals = *required_approvals;
		f->napprovers = list_length(*approvers);
		f->approvers = MemoryContextAlloc(TopMemoryContext,
										  sizeof(Oid) * Max(f->napprovers, 1));
		i = 0;
		foreach(lc, *approvers)
			f->approvers[i++] = lfirst_oid(lc);
		f->read_at = now;
	}
	return found;
}

/* Must run between lockbox_enter and lockbox_leave. */
bool
lockbox_tenant_lookup(const char *tenant, LockboxTenant *out)
{
	static const char *sql =
		"SELECT enabled, required_approvals FROM lockbox.tenant"
		" WHERE tenant OPERATOR(pg_catalog.=) $1";
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(tenant)};
	bool		isnull;

	lockbox_exec(&tenant_plan, sql, 1, argtypes, values, NULL, 1);
	if (SPI_processed == 0)
		return false;
	if (out)
	{
		out->enabled = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
		out->required_approvals = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
															  SPI_tuptable->tupdesc, 2, &isnull));
	}
	return true;
}

/*
 * Does the tenant exist?  If so, it is held until the transaction ends
 * (FOR KEY SHARE): lockbox_remove_tenant waits for the transaction, then
 * sees what it did (a request it filed).  Must run between lockbox_enter
 * and lockbox_leave.
 */
bool
lockbox_tenant_hold(const char *tenant)
{
	Datum		key = CStringGetTextDatum(tenant);
	TupleDesc	td;

	return lockbox_store_lock("tenant", 1, &key, LockTupleKeyShare, &td,
							  psprintf("tenant \"%s\"", tenant)) != NULL;
}

static void
require_tenant(const char *tenant, LockboxTenant *out)
{
	if (!lockbox_tenant_lookup(tenant, out))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist", tenant),
				 errhint("The extension owner registers tenants with lockbox_add_tenant().")));
}

/* The roles bound as approvers of a tenant.  Between enter and leave. */
List *
lockbox_tenant_approvers(const char *tenant)
{
	static const char *sql =
		"SELECT approver FROM lockbox.approver"
		" WHERE tenant OPERATOR(pg_catalog.=) $1 ORDER BY approver::pg_catalog.oid";
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(tenant)};
	List	   *result = NIL;

	lockbox_exec(&approvers_plan, sql, 1, argtypes, values, NULL, 0);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		result = lappend_oid(result,
							 DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1, &isnull)));
	}
	return result;
}

/*
 * May role act as an approver of tenant?  It must hold the privileges of a
 * role bound to the tenant.  Being superuser does not make anyone the
 * customer's approver: a superuser counts only through real membership.
 */
bool
lockbox_is_approver(Oid role, const char *tenant)
{
	return lockbox_approver_among(role, lockbox_tenant_approvers(tenant));
}

/* Is role one of these approver roles, by privileges (see above)? */
bool
lockbox_approver_among(Oid role, List *approvers)
{
	ListCell   *lc;
	bool		su = superuser_arg(role);

	foreach(lc, approvers)
	{
		Oid			approver = lfirst_oid(lc);

		if (su ? is_member_of_role_nosuper(role, approver)
			: has_privs_of_role(role, approver))
			return true;
	}
	return false;
}

Datum
lockbox_add_tenant(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static const char *sql =
		"INSERT INTO lockbox.tenant (tenant, enabled, required_approvals, created_at)"
		" VALUES ($1, $2, $3, $4)";
	Oid			argtypes[4] = {TEXTOID, BOOLOID, INT4OID, TIMESTAMPTZOID};
	Datum		values[4];
	char	   *tenant = lockbox_tenant_arg(fcinfo, 0);
	bool		enabled;
	int32		required;
	LockboxCall call;
	StringInfoData detail;

	lockbox_require_writable(fcinfo);
	lockbox_require_arg(fcinfo, 1, "enabled");
	lockbox_require_arg(fcinfo, 2, "required_approvals");
	enabled = PG_GETARG_BOOL(1);
	required = PG_GETARG_INT32(2);
	if (required < 1 || required > 100)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("required_approvals must be between 1 and 100")));

	lockbox_enter(&call);
	if (lockbox_tenant_lookup(tenant, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("tenant \"%s\" already exists", tenant)));

	values[0] = CStringGetTextDatum(tenant);
	values[1] = BoolGetDatum(enabled);
	values[2] = Int32GetDatum(required);
	values[3] = TimestampTzGetDatum(call.now);
	lockbox_exec(&plan, sql, 4, argtypes, values, NULL, 0);

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_raw(&detail, "enabled", enabled ? "true" : "false");
	lockbox_json_raw(&detail, "required_approvals", psprintf("%d", required));
	appendStringInfoChar(&detail, '}');
	lockbox_audit(&call, "add_tenant", 0, tenant, detail.data);

	lockbox_leave(&call);
	PG_RETURN_VOID();
}

Datum
lockbox_set_enabled(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr update_plan = NULL;
	Oid			argtypes[2] = {TEXTOID, BOOLOID};
	Datum		values[2];
	char	   *tenant = lockbox_tenant_arg(fcinfo, 0);
	bool		enabled;
	bool		was;
	int32		required;
	bool		isnull;
	LockboxCall call;
	StringInfoData detail;

	lockbox_require_writable(fcinfo);
	lockbox_require_arg(fcinfo, 1, "enabled");
	enabled = PG_GETARG_BOOL(1);

	lockbox_enter(&call);
	values[0] = CStringGetTextDatum(tenant);
	values[1] = BoolGetDatum(enabled);

	/*
	 * FOR NO KEY UPDATE: switches take turns, but do not wait for requests
	 * being filed, which hold the tenant FOR KEY SHARE until they commit
	 * (an engineer's open transaction would hold the switch back).
	 */
	lockbox_exec(&lock_plan,
				 "SELECT enabled, required_approvals FROM lockbox.tenant"
				 " WHERE tenant OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE",
				 1, argtypes, values, NULL, 1);
	if (SPI_processed == 0)
		require_tenant(tenant, NULL);
	was = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1, &isnull));
	required = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 2, &isnull));

	if (!lockbox_is_approver(call.caller, tenant))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to switch lockbox for tenant \"%s\"", tenant),
				 errdetail("Only the tenant's own approvers may switch its lockbox on or off.")));

	/*
	 * With lockbox off, a review alone approves: for a tenant that needs
	 * several approvals, one approver switching it off would approve alone.
	 */
	if (!enabled && required > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to switch lockbox off for tenant \"%s\"", tenant),
				 errdetail("The tenant needs %d approvals for every request; one approver cannot waive them.",
						   required)));

	lockbox_exec(&update_plan,
				 "UPDATE lockbox.tenant SET enabled = $2"
				 " WHERE tenant OPERATOR(pg_catalog.=) $1",
				 2, argtypes, values, NULL, 0);

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_raw(&detail, "from", was ? "true" : "false");
	lockbox_json_raw(&detail, "to", enabled ? "true" : "false");
	appendStringInfoChar(&detail, '}');
	lockbox_audit(&call, "set_enabled", 0, tenant, detail.data);

	lockbox_leave(&call);
	PG_RETURN_VOID();
}

/* the approver argument: required, and a role that exists */
static Oid
approver_arg(FunctionCallInfo fcinfo, int argno)
{
	Oid			role;

	lockbox_require_arg(fcinfo, argno, "approver");
	role = PG_GETARG_OID(argno);
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", role)));
	return role;
}

static bool
is_bound(const char *tenant, Oid role)
{
	List	   *approvers = lockbox_tenant_approvers(tenant);

	return list_member_oid(approvers, role);
}

Datum
lockbox_add_approver(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {TEXTOID, REGROLEOID, TIMESTAMPTZOID};
	Datum		values[3];
	char	   *tenant = lockbox_tenant_arg(fcinfo, 0);
	Oid			role = approver_arg(fcinfo, 1);
	LockboxCall call;
	StringInfoData detail;

	lockbox_require_writable(fcinfo);
	lockbox_enter(&call);
	require_tenant(tenant, NULL);

	if (!is_member_of_role_nosuper(role, lockbox_role_oid(LB_APPROVER)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("role \"%s\" is not a member of lockbox_approver",
						lockbox_role_name(role)),
				 errhint("Grant it the role first, with GRANT lockbox_approver TO %s.",
						 quote_identifier(lockbox_role_name(role)))));
	if (is_bound(tenant, role))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("role \"%s\" is already an approver of tenant \"%s\"",
						lockbox_role_name(role), tenant)));

	values[0] = CStringGetTextDatum(tenant);
	values[1] = ObjectIdGetDatum(role);
	values[2] = TimestampTzGetDatum(call.now);
	lockbox_exec(&plan,
				 "INSERT INTO lockbox.approver (tenant, approver, added_at)"
				 " VALUES ($1, $2, $3)",
				 3, argtypes, values, NULL, 0);

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_str(&detail, "approver", lockbox_role_name(role));
	appendStringInfoChar(&detail, '}');
	lockbox_audit(&call, "add_approver", 0, tenant, detail.data);

	lockbox_leave(&call);
	PG_RETURN_VOID();
}

Datum
lockbox_remove_approver(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {TEXTOID, REGROLEOID};
	Datum		values[2];
	char	   *tenant = lockbox_tenant_arg(fcinfo, 0);
	Oid			role = approver_arg(fcinfo, 1);
	LockboxCall call;
	StringInfoData detail;

	lockbox_require_writable(fcinfo);
	lockbox_enter(&call);
	require_tenant(tenant, NULL);

	values[0] = CStringGetTextDatum(tenant);
	values[1] = ObjectIdGetDatum(role);
	lockbox_exec(&plan,
				 "DELETE FROM lockbox.approver"
				 " WHERE tenant OPERATOR(pg_catalog.=) $1"
				 "   AND approver OPERATOR(pg_catalog.=) $2",
				 2, argtypes, values, NULL, 0);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\" is not an approver of tenant \"%s\"",
						lockbox_role_name(role), tenant)));

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_str(&detail, "approver", lockbox_role_name(role));
	appendStringInfoChar(&detail, '}');
	lockbox_audit(&call, "remove_approver", 0, tenant, detail.data);

	lockbox_leave(&call);
	PG_RETURN_VOID();
}

/*
 * A query run with the latest snapshot rather than the transaction's: after
 * waiting for a lock, a repeatable-read transaction must still see what the
 * transactions it waited for committed.
 */
static void
exec_latest(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
			Datum *values, long count)
{
	SPIPlanPtr	plan = lockbox_prepare(cache, sql, nargs, argtypes);
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	int			ret;

	ret = SPI_execute_snapshot(plan, values, NULL, snap, InvalidSnapshot,
							   true, false, count);
	UnregisterSnapshot(snap);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_snapshot failed for \"%s\": %s",
			 sql, SPI_result_code_string(ret));
}

/*
 * lockbox_remove_tenant(tenant): the extension owner removes a tenant and
 * its approver bindings.  Its requests and their audit stay, under the
 * tenant's name.  Refused while the tenant has an open request (pending, or
 * approved with its window open, as lockbox.request_state says now) or a
 * table protected as wholly its own.
 *
 * The tenant's row is locked first: lockbox_request holds it while it files
 * a request (lockbox_tenant_hold), as lockbox_add_approver and
 * lockbox_protect do through their foreign keys, so this waits for them and
 * then reads, with the latest snapshot, what they committed.
 */
Datum
lockbox_remove_tenant(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr open_plan = NULL;
	static SPIPlanPtr table_plan = NULL;
	static SPIPlanPtr bound_plan = NULL;
	static SPIPlanPtr delete_plan = NULL;
	Oid			argtypes[2] = {TEXTOID, TIMESTAMPTZOID};
	Datum		values[2];
	char	   *tenant = lockbox_tenant_arg(fcinfo, 0);
	bool		enabled;
	int32		required;
	bool		isnull;
	LockboxCall call;
	StringInfoData detail;

	lockbox_require_writable(fcinfo);
	lockbox_enter(&call);
	values[0] = CStringGetTextDatum(tenant);
	values[1] = TimestampTzGetDatum(call.now);
	lockbox_exec(&lock_plan,
				 "SELECT enabled, required_approvals FROM lockbox.tenant"
				 " WHERE tenant OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				 1, argtypes, values, NULL, 1);
	if (SPI_processed == 0)
		require_tenant(tenant, NULL);
	enabled = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	required = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 2, &isnull));

	/* open requests: pending, or approved with the window open */
	exec_latest(&open_plan,
				"SELECT o.id, o.state, pg_catalog.count(*) OVER ()"
				"  FROM (SELECT r.id, lockbox.request_state(r.state, r.deadline,"
				"               r.access_ends_at, EXISTS (SELECT 1 FROM lockbox.revocation v"
				"                 WHERE v.request_id OPERATOR(pg_catalog.=) r.id), $2) AS state"
				"          FROM lockbox.request r"
				"         WHERE r.final_state IS NULL"
				"           AND r.state IN ('pending_review', 'pending_approval')"
				"           AND r.tenant OPERATOR(pg_catalog.=) $1"
				"        UNION ALL"
				"        SELECT r.id, lockbox.request_state(r.state, r.deadline,"
				"               r.access_ends_at, EXISTS (SELECT 1 FROM lockbox.revocation v"
				"                 WHERE v.request_id OPERATOR(pg_catalog.=) r.id), $2)"
				"          FROM lockbox.request r"
				"         WHERE r.final_state IS NULL"
				"           AND r.state OPERATOR(pg_catalog.=) 'approved'"
				"           AND r.tenant OPERATOR(pg_catalog.=) $1) o"
				" WHERE o.state IN ('pending_review', 'pending_approval', 'approved')"
				" ORDER BY o.id LIMIT 1",
				2, argtypes, values, 1);
	if (SPI_processed > 0)
	{
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 1, &isnull));
		char	   *state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		int64		n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													SPI_tuptable->tupdesc, 3, &isnull));

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot remove tenant \"%s\": it has open lockbox requests", tenant),
				 n > 1 ?
				 errdetail("Request " INT64_FORMAT " is %s, and " INT64_FORMAT " more are open.",
						   id, state, n - 1) :
				 errdetail("Request " INT64_FORMAT " is %s.", id, state),
				 errhint("A request ends when it is denied, cancelled, closed, revoked or expires.")));
	}

	/* tables protected as wholly the tenant's */
	exec_latest(&table_plan,
				"SELECT p.relid::pg_catalog.oid FROM lockbox.protected_table p"
				" WHERE p.tenant OPERATOR(pg_catalog.=) $1"
				" ORDER BY p.relid::pg_catalog.oid LIMIT 1",
				1, argtypes, values, 1);
	if (SPI_processed > 0)
	{
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1, &isnull));

		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot remove tenant \"%s\": table \"%s\" is protected for it",
						tenant, get_rel_name(relid)),
				 errdetail("The whole table belongs to the tenant."),
				 errhint("Take the table out of lockbox first, with SELECT lockbox_unprotect(%s).",
						 quote_literal_cstr(lockbox_relname(relid)))));
	}

	/* the approvers that go with it, for the audit */
	exec_latest(&bound_plan,
				"SELECT pg_catalog.to_jsonb(ARRAY(SELECT a.approver::pg_catalog.text"
				"         FROM lockbox.approver a WHERE a.tenant OPERATOR(pg_catalog.=) $1"
				"        ORDER BY 1))::pg_catalog.text",
				1, argtypes, values, 1);
	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_raw(&detail, "enabled", enabled ? "true" : "false");
	lockbox_json_raw(&detail, "required_approvals", psprintf("%d", required));
	lockbox_json_raw(&detail, "approvers",
					 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	appendStringInfoChar(&detail, '}');

	/* the approver bindings go with it (ON DELETE CASCADE) */
	lockbox_exec(&delete_plan,
				 "DELETE FROM lockbox.tenant WHERE tenant OPERATOR(pg_catalog.=) $1",
				 1, argtypes, values, NULL, 0);
	if (SPI_processed != 1)
		elog(ERROR, "could not remove tenant \"%s\"", tenant);
	lockbox_audit(&call, "remove_tenant", 0, tenant, detail.data);

	lockbox_leave(&call);
	PG_RETURN_VOID();
}
