/*-------------------------------------------------------------------------
 *
 * identity.c
 *		Which database lockbox's requests were made in.
 *
 * CREATE DATABASE ... TEMPLATE app copies app's lockbox tables as they are:
 * its approved requests, whose approvers consented to access to app, would
 * grant the same access in the copy, and the copy's audit would go on from
 * the same rows as app's (a fork no one sees).  So lockbox records the oid of
 * the database it is installed in (lockbox.installation, at CREATE
 * EXTENSION; pg_upgrade keeps database oids, a dump restored runs CREATE
 * EXTENSION afresh), and a database whose oid is another is a copy: there no
 * request grants access, every function that changes lockbox's state is
 * refused, and the worker does nothing, until a superuser or the extension
 * owner runs lockbox_adopt_database() (a copy holding no request, of a
 * template with lockbox, is adopted at once by the worker or the first
 * such function: there is nothing to void).  That records the database as its
 * own, with every request made until then void here (they never grant
 * access in it; those still open end, as revoked or cancelled for reason
 * database_copied), and audits the copy.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "lockbox.h"

PG_FUNCTION_INFO_V1(lockbox_adopt_database);

/*
 * This backend found its database to be lockbox's own (and how many requests
 * are void in it): a database's oid does not change, and nothing makes a
 * database lockbox's own a copy again, so every later call skips the read.
 * (Not while the row found is of this transaction: an adoption that may yet
 * roll back.)  Known of one installation only: the lockbox.installation it
 * was read from (own_relid).  DROP EXTENSION and CREATE EXTENSION make
 * another, with none void and a spool epoch of its own, which a pooled
 * session that outlives both must read again.
 */
static bool own_known = false;
static Oid	own_relid = InvalidOid;
static int64 own_through = 0;

/*
 * The spool epoch of the installation last read, and whether it takes
 * records spooled before 1.7, which carry none (access_log.c).
 */
static uint32 installation_epoch = 0;
static bool installation_legacy = true;

/*
 * Is this database a copy of the one lockbox was installed in?  Sets
 * *recorded to that database's oid and *void_through to the highest request
 * id void here (0: none), when not NULL.  False where lockbox.installation
 * does not exist (while CREATE EXTENSION runs the scripts before 1.6).
 */
bool
lockbox_database_copy(Oid *recorded, int64 *void_through)
{
	LockboxCall call;
	Oid			nsp = get_namespace_oid("lockbox", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("installation", nsp) : InvalidOid;
	Oid			datid = InvalidOid;
	int64		through = 0;
	Snapshot	snap;
	int			ret;
	bool		has_epoch;

	if (!OidIsValid(relid))
		return false;
	if (own_known && own_relid == relid)
	{
		if (recorded != NULL)
			*recorded = MyDatabaseId;
		if (void_through != NULL)
			*void_through = own_through;
		return false;
	}
	own_known = false;
	installation_epoch = 0;
	installation_legacy = true;
	/* (1.7's columns: absent while the objects are older than the library) */
	has_epoch = get_attnum(relid, "spool_epoch") != InvalidAttrNumber;
	lockbox_enter_read(&call);
	/* the latest: an adoption just committed counts at once */
	snap = RegisterSnapshot(IsInParallelMode() ? GetActiveSnapshot() :
							GetLatestSnapshot());
	{
		SPIPlanPtr	plan = SPI_prepare(has_epoch ?
									   "SELECT i.datid, i.requests_void_through, i.xmin,"
									   "       i.spool_epoch, i.spool_legacy"
									   "  FROM lockbox.installation i" :
									   "SELECT i.datid, i.requests_void_through, i.xmin"
									   "  FROM lockbox.installation i", 0, NULL);

		if (plan == NULL)
			elog(ERROR, "could not read lockbox.installation");
		ret = SPI_execute_snapshot(plan, NULL, NULL, snap, InvalidSnapshot,
								   true, false, 1);
	}
	UnregisterSnapshot(snap);
	if (ret == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;

		datid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
		through = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc, 2, &isnull));
		if (has_epoch)
		{
			Datum		d;

			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
			installation_epoch = isnull ? 0 : (uint32) DatumGetInt32(d);
			d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull);
			installation_legacy = isnull ? true : DatumGetBool(d);
		}
		if (datid == MyDatabaseId && has_epoch &&
			!TransactionIdIsCurrentTransactionId(DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
																				 SPI_tuptable->tupdesc, 3, &isnull))))
		{
			own_known = true;
			own_relid = relid;
			own_through = through;
		}
	}
	lockbox_leave(&call);
	if (recorded != NULL)
		*recorded = datid;
	if (void_through != NULL)
		*void_through = through;
	/* (no row: fail closed, as a copy) */
	return datid != MyDatabaseId;
}

/*
 * The spool epoch of this database's installation of lockbox, as this
 * backend last read lockbox.installation: the installation whose requests
 * the enforcement cache holds (it reads lockbox.installation again whenever
 * lockbox is created or dropped here), and so the one an engineer's record
 * names requests of.  0 when none is known (objects older than 1.7).
 * *legacy: whether that installation audits records spooled before 1.7,
 * which carry no epoch.  Reads nothing: a record may be written where no
 * query can run.
 */
uint32
lockbox_installation_epoch(bool *legacy)
{
	if (legacy != NULL)
		*legacy = installation_legacy;
	return installation_epoch;
}

/*
 * Record this database, a copy, as lockbox's own, with every request made
 * until now void in it (through: the highest id), and audit it.  With
 * empty_only, only a copy holding no request at all (a template's): nothing
 * is void, nothing was approved for another database.  Returns whether it
 * is adopted now (false: it holds requests, or another session adopted it
 * meanwhile).  SPI connected, as the extension owner (lockbox_enter).
 */
static bool
adopt(LockboxCall *call, Oid recorded, bool empty_only, int64 *through_out)
{
	static SPIPlanPtr max_plan = NULL;
	static SPIPlanPtr update_plan = NULL;
	static SPIPlanPtr settle_plan = NULL;
	int64		settled;
	bool		isnull;
	Oid			argtypes[3] = {OIDOID, INT8OID, OIDOID};
	Datum		values[3];
	int64		through = 0;
	StringInfoData detail;

	lockbox_exec(&max_plan,
				 "SELECT pg_catalog.max(r.id) FROM lockbox.request r",
				 0, NULL, NULL, NULL, 1);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0],
									  SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			through = DatumGetInt64(d);
	}
	if (empty_only && through != 0)
		return false;
	values[0] = ObjectIdGetDatum(MyDatabaseId);
	values[1] = Int64GetDatum(through);
	values[2] = ObjectIdGetDatum(recorded);
	/* (a concurrent adoption: the second finds the row changed, and stops) */
	lockbox_exec(&update_plan,
				 "UPDATE lockbox.installation"
				 "   SET datid = $1, requests_void_through = $2,"
				 "       recorded_at = pg_catalog.now()"
				 " WHERE datid OPERATOR(pg_catalog.=) $3",
				 3, argtypes, values, NULL, 0);
	if (SPI_processed != 1)
		return false;

	/*
	 * The copied requests still open end here, so that no view shows them
	 * pending or active, no approver decides on them and the worker ends
	 * none of them later: an approved one as revoked, a pending one as
	 * cancelled, each closed for reason database_copied.
	 */
	values[0] = Int64GetDatum(through);
	lockbox_exec(&settle_plan,
				 "WITH s AS (UPDATE lockbox.request r"
				 "              SET state = CASE WHEN r.state OPERATOR(pg_catalog.=) 'approved'"
				 "                               THEN 'revoked' ELSE 'cancelled' END,"
				 "                  deadline = NULL, closed_at = pg_catalog.now(),"
				 "                  close_reason = 'database_copied'"
				 "            WHERE r.final_state IS NULL"
				 "              AND r.id OPERATOR(pg_catalog.<=) $1"
				 "           RETURNING r.id),"
				 "     d AS (DELETE FROM lockbox.revocation v USING s"
				 "            WHERE v.request_id OPERATOR(pg_catalog.=) s.id RETURNING 1)"
				 " SELECT (SELECT pg_catalog.count(*) FROM s)",
				 1, argtypes + 1, values, NULL, 1);
	settled = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));

	initStringInfo(&detail);
	appendStringInfo(&detail,
					 "{\"copied_from\": %u, \"database\": %u, \"database_name\": ",
					 recorded, MyDatabaseId);
	escape_json(&detail, get_database_name(MyDatabaseId));
	appendStringInfo(&detail, ", \"requests_void_through\": " INT64_FORMAT
					 ", \"requests_ended\": " INT64_FORMAT ", \"automatic\": %s}",
					 through, settled, empty_only ? "true" : "false");
	lockbox_audit(call, "database_adopted", 0, NULL, detail.data);
	lockbox_access_changed();
	if (through_out != NULL)
		*through_out = through;
	return true;
}

/*
 * Is this database a copy lockbox may not act in?  A copy that holds no
 * request (of a template with lockbox, say) is adopted at once: there is
 * nothing to void.  SPI connected, as the extension owner.
 */
bool
lockbox_copy_held(LockboxCall *call)
{
	Oid			recorded;

	if (!lockbox_database_copy(&recorded, NULL))
		return false;
	if (RecoveryInProgress() || XactReadOnly)
		return true;
	if (adopt(call, recorded, true, NULL))
		return false;
	/* (or another session, the worker, adopted it meanwhile) */
	return lockbox_database_copy(NULL, NULL);
}

/* A function that changes lockbox's state, in a copy not yet adopted. */
void
lockbox_refuse_copy(void)
{
	Oid			recorded;
	LockboxCall call;
	bool		held;

	if (!lockbox_database_copy(&recorded, NULL))
		return;
	lockbox_enter(&call);
	held = lockbox_copy_held(&call);
	lockbox_leave(&call);
	if (!held)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("lockbox in database \"%s\" was copied from another database",
					get_database_name(MyDatabaseId)),
			 errdetail("Lockbox was installed in the database of oid %u; its requests, approvals and audit were made there, not here (CREATE DATABASE ... TEMPLATE copies them).",
					   recorded),
			 errhint("A superuser or the extension owner runs SELECT lockbox_adopt_database() in this database first: the copied requests then never grant access here.")));
}

/*
 * lockbox_adopt_database() -> bigint: this database, a copy, becomes
 * lockbox's own.  Every request made until now is void here; the audit
 * records the copy (event database_adopted).  Returns the highest request
 * id made void.  Refused (55000) in a database that is no copy.
 */
Datum
lockbox_adopt_database(PG_FUNCTION_ARGS)
{
	LockboxCall call;
	Oid			recorded;
	int64		through = 0;

	if (RecoveryInProgress() || XactReadOnly)
		lockbox_require_writable(fcinfo);
	if (!superuser() && GetUserId() != lockbox_owner())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to adopt a copied lockbox database"),
				 errdetail("Only a superuser or the owner of extension lockbox may.")));
	if (!lockbox_database_copy(&recorded, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this database is lockbox's own, not a copy"),
				 errdetail("Lockbox was installed in this database: its requests were made here.")));

	lockbox_enter(&call);
	/* (every request: none can be added meanwhile, lockbox_request is refused) */
	if (!adopt(&call, recorded, false, &through))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this database is lockbox's own, not a copy"),
				 errdetail("Another session adopted it meanwhile.")));
	lockbox_leave(&call);
	PG_RETURN_INT64(through);
}
