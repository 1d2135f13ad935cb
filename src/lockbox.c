/*-------------------------------------------------------------------------
 *
 * lockbox.c
 *		Module load, settings, shared memory, and the helpers every SQL entry
 *		point uses: who is calling, and running privileged work as the
 *		extension owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_authid.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "lockbox.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(lockbox_preload_check);

/* settings */
Interval	lockbox_review_timeout;
Interval	lockbox_approval_timeout;
Interval	lockbox_default_access_duration;
Interval	lockbox_max_access_duration;
int			lockbox_min_reason_length = 10;
bool		lockbox_terminate_sessions = true;

static char *review_timeout_string;
static char *approval_timeout_string;
static char *default_access_duration_string;
static char *max_access_duration_string;

static bool lockbox_loaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

/*
 * Parse an interval setting without throwing: check hooks must report, not
 * raise.  Accepts everything interval input accepts, and refuses anything
 * that is not a finite, positive duration.
 */
static bool
check_duration(char **newval, void **extra, GucSource source)
{
	char		workbuf[256];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype = 0;
	int			dterr;
	struct pg_itm_in itm_in;
	Interval	value;
	Interval	zero;
	Interval   *result;

	memset(&itm_in, 0, sizeof(itm_in));
	dterr = ParseDateTime(*newval, workbuf, sizeof(workbuf), field, ftype,
						  MAXDATEFIELDS, &nf);
	if (dterr == 0)
		dterr = DecodeInterval(field, ftype, nf, INTERVAL_FULL_RANGE,
							   &dtype, &itm_in);
	if (dterr == DTERR_BAD_FORMAT)
	{
		memset(&itm_in, 0, sizeof(itm_in));
		dterr = DecodeISO8601Interval(*newval, &dtype, &itm_in);
	}
	if (dterr != 0 || dtype != DTK_DELTA || itmin2interval(&itm_in, &value) != 0)
	{
		GUC_check_errdetail("\"%s\" is not a valid interval.", *newval);
		return false;
	}

	memset(&zero, 0, sizeof(zero));
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp,
										  IntervalPGetDatum(&value),
										  IntervalPGetDatum(&zero))) <= 0)
	{
		GUC_check_errdetail("The duration must be greater than zero.");
		return false;
	}

	result = (Interval *) malloc(sizeof(Interval));
	if (result == NULL)
		return false;
	*result = value;
	*extra = result;
	return true;
}

#define DURATION_ASSIGN_HOOK(name, target) \
static void \
name(const char *newval, void *extra) \
{ \
	target = *((Interval *) extra); \
}

/*
 * Compare two durations as PostgreSQL compares intervals (a month as 30
 * days): never dependent on today's date.
 */
static int
duration_cmp(Interval *a, Interval *b)
{
	return DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(a),
											 IntervalPGetDatum(b)));
}

/* a duration as core shows its timeouts: 12h, 30min, 90s, 1500ms */
static const char *
duration_show(Interval *v)
{
	static char buf[64];
	static const struct
	{
		int64		usecs;
		const char *unit;
	}			units[] = {
		{USECS_PER_DAY, "d"}, {USECS_PER_HOUR, "h"}, {USECS_PER_MINUTE, "min"},
		{USECS_PER_SEC, "s"}, {1000, "ms"}, {1, "us"}
	};
	int64		total;

	if (v->month != 0)
	{
		/* calendar months: as interval output writes them */
		char	   *s = DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(v)));

		strlcpy(buf, s, sizeof(buf));
		return buf;
	}
	total = v->day * USECS_PER_DAY + v->time;
	for (int i = 0; i < lengthof(units); i++)
	{
		if (total % units[i].usecs == 0)
		{
			snprintf(buf, sizeof(buf), INT64_FORMAT "%s", total / units[i].usecs,
					 units[i].unit);
			break;
		}
	}
	return buf;
}

#define DURATION_SHOW_HOOK(name, target) \
static const char * \
name(void) \
{ \
	return duration_show(&target); \
}

DURATION_SHOW_HOOK(show_review_timeout, lockbox_review_timeout)
DURATION_SHOW_HOOK(show_approval_timeout, lockbox_approval_timeout)
DURATION_SHOW_HOOK(show_default_access_duration, lockbox_default_access_duration)
DURATION_SHOW_HOOK(show_max_access_duration, lockbox_max_access_duration)

/*
 * ALTER SYSTEM SET of the default window or the longest one: refused when
 * the default would exceed the longest, both values named (the utility hook
 * calls this before the statement runs).  A check hook cannot do it: a reload
 * applies a file's lines in turn, so a default raised together with the
 * maximum, its line first, would be refused against the old maximum; a
 * request that names no duration gets the maximum when the default exceeds
 * it (lockbox_request warns).  Compared with the values in force: a change
 * of the other setting by ALTER SYSTEM counts once it is reloaded.
 */
void
lockbox_settings_utility(Node *node)
{
	AlterSystemStmt *stmt;
	VariableSetStmt *set;
	bool		is_default;
	char	   *value;
	void	   *extra = NULL;
	Interval	v;
	Interval   *other;

	if (node == NULL || !IsA(node, AlterSystemStmt))
		return;
	stmt = (AlterSystemStmt *) node;
	set = stmt->setstmt;
	if (set == NULL || set->kind != VAR_SET_VALUE || set->name == NULL)
		return;
	if (pg_strcasecmp(set->name, "lockbox.default_access_duration") == 0)
		is_default = true;
	else if (pg_strcasecmp(set->name, "lockbox.max_access_duration") == 0)
		is_default = false;
	else
		return;
	value = ExtractSetVariableArgs(set);
	/* (an invalid value is refused by ALTER SYSTEM itself, with its reason) */
	if (value == NULL || !check_duration(&value, &extra, PGC_S_FILE))
		return;
	v = *(Interval *) extra;
	free(extra);
	other = is_default ? &lockbox_max_access_duration : &lockbox_default_access_duration;
	if (is_default ? duration_cmp(&v, other) > 0 : duration_cmp(&v, other) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for parameter \"%s\": \"%s\"",
						is_default ? "lockbox.default_access_duration" :
						"lockbox.max_access_duration", value),
				 is_default ?
				 errdetail("lockbox.default_access_duration (%s) may not exceed lockbox.max_access_duration (%s).",
						   value, duration_show(other)) :
				 errdetail("lockbox.max_access_duration (%s) may not be less than lockbox.default_access_duration (%s).",
						   value, duration_show(other)),
				 is_default ?
				 errhint("Raise lockbox.max_access_duration first, and reload.") :
				 errhint("Lower lockbox.default_access_duration first, and reload.")));
}

/*
 * The launcher, at startup and after each reload: a default window above the
 * longest (a configuration file may set them so; a reload checks each line
 * on its own) is named in the server log once, where the DBA who set it
 * looks, rather than at every request that names no duration (those get the
 * maximum, and their callers a NOTICE).
 */
void
lockbox_settings_check_windows(void)
{
	if (duration_cmp(&lockbox_default_access_duration,
					 &lockbox_max_access_duration) <= 0)
		return;
	ereport(WARNING,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("lockbox.default_access_duration (%s) exceeds lockbox.max_access_duration (%s)",
					GetConfigOption("lockbox.default_access_duration", false, false),
					GetConfigOption("lockbox.max_access_duration", false, false)),
			 errdetail("A request that names no duration gets lockbox.max_access_duration."),
			 errhint("Lower lockbox.default_access_duration, or raise lockbox.max_access_duration, and reload.")));
}

DURATION_ASSIGN_HOOK(assign_review_timeout, lockbox_review_timeout)
DURATION_ASSIGN_HOOK(assign_approval_timeout, lockbox_approval_timeout)
DURATION_ASSIGN_HOOK(assign_default_access_duration, lockbox_default_access_duration)
DURATION_ASSIGN_HOOK(assign_max_access_duration, lockbox_max_access_duration)

static void
lockbox_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(add_size(add_size(add_size(lockbox_audit_shmem_size(),
															   lockbox_worker_shmem_size()),
													  lockbox_enforce_shmem_size()),
											 lockbox_session_end_shmem_size()),
									lockbox_access_shmem_size()));
	/* [0] the audit tips, [1] the workers */
	RequestNamedLWLockTranche("lockbox", 2);
}

static void
lockbox_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	lockbox_audit_shmem_init();
	lockbox_worker_shmem_init();
	lockbox_enforce_shmem_init();
	lockbox_session_end_shmem_init();
	lockbox_access_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockbox must be loaded via shared_preload_libraries"),
				 errhint("Add lockbox to shared_preload_libraries in postgresql.conf and restart the server.")));

	DefineCustomStringVariable("lockbox.review_timeout",
							   "How long a request may wait for a reviewer (stage 1).",
							   "A request no reviewer approves or denies within this time expires. "
							   "Any positive interval, in a unit (12h, 30min, 90s) or as an interval ('12 hours'); "
							   "the deadline is fixed when the stage starts, so a change applies to requests entering stage 1 afterwards.",
							   &review_timeout_string, "12h",
							   PGC_SIGHUP, 0,
							   check_duration, assign_review_timeout, show_review_timeout);
	DefineCustomStringVariable("lockbox.approval_timeout",
							   "How long a request may wait for the customer's approvers (stage 2).",
							   "A request the tenant's approvers do not approve within this time expires. "
							   "Any positive interval, in a unit (12h, 30min, 90s) or as an interval ('12 hours'); "
							   "the deadline is fixed when the stage starts, so a change applies to requests entering stage 2 afterwards.",
							   &approval_timeout_string, "12h",
							   PGC_SIGHUP, 0,
							   check_duration, assign_approval_timeout, show_approval_timeout);
	DefineCustomStringVariable("lockbox.default_access_duration",
							   "Access window of a request that names no duration.",
							   "Any positive interval; above lockbox.max_access_duration, a request naming no duration gets the maximum. "
							   "The window starts when the request is approved and is fixed then.",
							   &default_access_duration_string, "4h",
							   PGC_SIGHUP, 0,
							   check_duration, assign_default_access_duration,
							   show_default_access_duration);
	DefineCustomStringVariable("lockbox.max_access_duration",
							   "Longest access window a request may ask for.",
							   "A request asking for a longer window is refused (SQLSTATE 22023). "
							   "Any positive interval.",
							   &max_access_duration_string, "8h",
							   PGC_SIGHUP, 0,
							   check_duration, assign_max_access_duration,
							   show_max_access_duration);
	DefineCustomIntVariable("lockbox.min_reason_length",
							"Shortest accepted reason, in characters after trimming.",
							"Applies to the reasons of lockbox_request, lockbox_deny, lockbox_revoke and lockbox_extend; "
							"a shorter one, after trimming white space, is refused (SQLSTATE 22023).",
							&lockbox_min_reason_length, 10, 1, LOCKBOX_MAX_TEXT,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("lockbox.terminate_sessions",
							 "End an engineer's sessions when their access ends.",
							 "When on, the database's lockbox worker ends an engineer's open sessions within a second of their access ending "
							 "(window elapsed, closed or revoked). Off or on, their statements on protected tables are refused from then on.",
							 &lockbox_terminate_sessions, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);

	lockbox_access_log_init();
	lockbox_audit_init();
	lockbox_standby_init();

	MarkGUCPrefixReserved("lockbox");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = lockbox_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = lockbox_shmem_startup;

	lockbox_worker_init();
	lockbox_hooks_init();

	lockbox_loaded = true;
}

/*
 * Called once by the install script: reaching it means _PG_init accepted the
 * load, and shared memory must then be ours.
 */
Datum
lockbox_preload_check(PG_FUNCTION_ARGS)
{
	if (!lockbox_loaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockbox must be loaded via shared_preload_libraries"),
				 errhint("Add lockbox to shared_preload_libraries in postgresql.conf and restart the server.")));
	PG_RETURN_VOID();
}

/* Is the extension created in the current database? */
bool
lockbox_installed(void)
{
	return OidIsValid(get_extension_oid("lockbox", true));
}

/* ---------------------------------------------------------------------
 * Roles
 * ---------------------------------------------------------------------
 */
static const char *const role_names[] = {
	"lockbox_engineer", "lockbox_reviewer", "lockbox_approver", "lockbox_auditor"
};

Oid
lockbox_role_oid(LockboxRole role)
{
	return get_role_oid(role_names[role], false);
}

/* Does member hold the privileges of the group role?  (Superusers do.) */
bool
lockbox_has_role(Oid member, LockboxRole role)
{
	Oid			roleid = get_role_oid(role_names[role], true);

	return OidIsValid(roleid) && has_privs_of_role(member, roleid);
}

char *
lockbox_role_name(Oid roleid)
{
	char	   *name = GetUserNameFromId(roleid, true);

	return name ? name : psprintf("%u", roleid);
}

/* A user-supplied string, cut short for an error message. */
char *
lockbox_clip(const char *s)
{
	int			len = strlen(s);
	int			cut = pg_mbcliplen(s, len, 60);

	return cut < len ? psprintf("%.*s...", cut, s) : pstrdup(s);
}

/*
 * Two roles are the same party when they are the same role or one can act as
 * the other through membership.  Superuser status is not membership here, so
 * a superuser is not everyone's party.
 */
bool
lockbox_same_party(Oid a, Oid b)
{
	if (!OidIsValid(a) || !OidIsValid(b))
		return false;
	return a == b || is_member_of_role_nosuper(a, b) ||
		is_member_of_role_nosuper(b, a);
}

/* ---------------------------------------------------------------------
 * Running as the extension owner
 * ---------------------------------------------------------------------
 */
/*
 * The extension owner: the owner of schema lockbox, which the install script
 * (run by the extension owner) creates.  A syscache lookup, not a scan.
 */
static Oid
extension_owner(void)
{
	Oid			nsp = get_namespace_oid("lockbox", true);
	HeapTuple	tuple;
	Oid			owner = InvalidOid;

	if (OidIsValid(nsp))
	{
		tuple = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
		if (HeapTupleIsValid(tuple))
		{
			owner = ((Form_pg_namespace) GETSTRUCT(tuple))->nspowner;
			ReleaseSysCache(tuple);
		}
	}
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"lockbox\" is not installed in this database")));
	return owner;
}

/* The role lockbox's own calls run as (lockbox_enter), or InvalidOid. */
Oid
lockbox_owner(void)
{
	Oid			nsp = get_namespace_oid("lockbox", true);
	HeapTuple	tuple;
	Oid			owner = InvalidOid;

	if (!OidIsValid(nsp))
		return InvalidOid;
	tuple = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (HeapTupleIsValid(tuple))
	{
		owner = ((Form_pg_namespace) GETSTRUCT(tuple))->nspowner;
		ReleaseSysCache(tuple);
	}
	return owner;
}

/*
 * The version of lockbox's SQL objects this library needs.  After the
 * library of a new version is installed and the server restarted, a
 * database keeps the old objects until ALTER EXTENSION lockbox UPDATE: every
 * entry point refuses clearly until then (an engineer's statement on a
 * protected table too: fail closed), rather than failing on a missing
 * object.
 */
#define LOCKBOX_SCHEMA_VERSION	"1.6"

static bool schema_version_ok = false;

/*
 * Installing, updating or dropping the extension creates, replaces or drops
 * its functions: any change to a function has the version read again.
 */
static void
schema_version_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	schema_version_ok = false;
}

static void
check_schema_version(void)
{
	static bool registered = false;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *version = NULL;

	if (creating_extension)
		return;					/* CREATE / ALTER EXTENSION runs our scripts */
	if (schema_version_ok)
		return;
	if (!registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, schema_version_inval, (Datum) 0);
		registered = true;
	}
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("lockbox"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = TextDatumGetCString(d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (version != NULL && strcmp(version, LOCKBOX_SCHEMA_VERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockbox's objects in database \"%s\" are version %s, and the lockbox library loaded is version %s",
						get_database_name(MyDatabaseId), version,
						LOCKBOX_SCHEMA_VERSION),
				 errhint("Run ALTER EXTENSION lockbox UPDATE in this database.")));
	schema_version_ok = (version != NULL);
}

/*
 * lockbox's own statements are not the user's: keep them out of pgaudit's
 * log (the user's statement that called lockbox is logged as usual).
 */
static void
quiet_pgaudit(void)
{
	if (GetConfigOption("pgaudit.log", true, false) == NULL)
		return;
	(void) set_config_option("pgaudit.log", "none", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (GetConfigOption("pgaudit.role", true, false) != NULL)
		(void) set_config_option("pgaudit.role", "", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * Enter for a function that changes lockbox's state.  On a hot standby
 * nothing can be written: refuse here, once for every such function, with an
 * error that says what to do, rather than let the first write inside fail
 * with a message that quotes lockbox's internal statements.
 */
void
lockbox_enter(LockboxCall *call)
{
	lockbox_require_writable(NULL);
	lockbox_enter_read(call);
}

/*
 * A function that changes lockbox's state, called where nothing can be
 * written: on a hot standby, or in a read-only transaction
 * (default_transaction_read_only, SET TRANSACTION READ ONLY).  Refused
 * before anything else, with 25006 and lockbox's message, rather than with
 * core's about the first nextval() or UPDATE lockbox runs inside.  fcinfo
 * names the function called, for the detail (NULL: none named); such a
 * function is refused too in a copied database not adopted (identity.c).
 */
void
lockbox_require_writable(FunctionCallInfo fcinfo)
{
	char	   *name = NULL;

	if (!RecoveryInProgress() && !XactReadOnly)
	{
		/* an API function, in a copied database not yet adopted: refused */
		if (fcinfo != NULL)
			lockbox_refuse_copy();
		return;
	}
	if (fcinfo != NULL && fcinfo->flinfo != NULL)
		name = get_func_name(fcinfo->flinfo->fn_oid);
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("lockbox cannot change requests, tenants or protected tables during recovery"),
				 name != NULL ?
				 errdetail("This server is a standby; lockbox's state changes only on the primary, and %s changes it.", name) :
				 errdetail("This server is a standby; lockbox's state changes only on the primary."),
				 errhint("Call the function on the primary server.")));
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("lockbox cannot change requests, tenants or protected tables in a read-only transaction"),
			 name != NULL ?
			 errdetail("%s changes lockbox's state, which a read-only transaction cannot.", name) :
			 errdetail("The function changes lockbox's state, which a read-only transaction cannot."),
			 errhint("Call it in a read-write transaction (SET TRANSACTION READ WRITE, or default_transaction_read_only off), on the primary.")));
}

/*
 * Enter for reading only (the grants cache, verifying the audit, policy
 * checks): this works on a standby too.
 */
void
lockbox_enter_read(LockboxCall *call)
{
	Oid			owner;

	check_schema_version();

	call->caller = GetUserId();
	call->session_user = GetSessionUserId();
	call->now = GetCurrentStatementStartTimestamp();
	call->actor_name = NULL;
	call->session_name = NULL;

	owner = extension_owner();
	GetUserIdAndSecContext(&call->save_userid, &call->save_sec_context);
	SetUserIdAndSecContext(owner,
						   call->save_sec_context |
						   SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	call->save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* lockbox's own plans are not the caller's to see (with their estimates) */
	if (Debug_print_plan)
		(void) set_config_option("debug_print_plan", "off",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	quiet_pgaudit();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
lockbox_leave(LockboxCall *call)
{
	SPI_finish();
	/* as core does after running code as another role: nothing set inside stays */
	AtEOXact_GUC(false, call->save_nestlevel);
	SetUserIdAndSecContext(call->save_userid, call->save_sec_context);
}

/* ---------------------------------------------------------------------
 * SPI with plans kept for the backend's life
 * ---------------------------------------------------------------------
 */
SPIPlanPtr
lockbox_prepare(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		/*
		 * Generic plans: these statements are planned once per backend and
		 * reused, not re-planned for each set of parameter values.
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes,
											  CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s",
				 sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*cache = plan;
	}
	return *cache;
}

int
lockbox_exec(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
			 Datum *values, const char *nulls, long count)
{
	SPIPlanPtr	plan = lockbox_prepare(cache, sql, nargs, argtypes);
	int			ret;

	/*
	 * Never read-only: a read-only query would reuse the statement's
	 * snapshot, and after a transition has waited for a request's row lock,
	 * every later read must see what the transaction it waited for wrote.
	 */
	ret = SPI_execute_plan(plan, values, nulls, false, count);

	if (ret < 0)
		elog(ERROR, "SPI_execute_plan failed for \"%s\": %s",
			 sql, SPI_result_code_string(ret));
	return ret;
}

/* ---------------------------------------------------------------------
 * Arguments
 * ---------------------------------------------------------------------
 */
void
lockbox_require_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", argname)));
}

static bool
is_space_char(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		c == '\f' || c == '\v';
}

/*
 * A free-text argument, trimmed of surrounding white space.  NULL is refused
 * when required (22004) and returned as NULL otherwise.  An empty text is
 * refused when required; min_length applies to the trimmed text, max_length
 * to the whole argument (22023).
 */
char *
lockbox_text_arg(FunctionCallInfo fcinfo, int argno, const char *argname,
				 bool required, int min_length, int max_length)
{
	text	   *t;
	char	   *s;
	char	   *end;
	int			len;
	int			nchars;

	if (PG_ARGISNULL(argno))
	{
		if (required)
			lockbox_require_arg(fcinfo, argno, argname);
		return NULL;
	}

	t = PG_GETARG_TEXT_PP(argno);
	/* measure before detoasting a huge value completely into C string */
	if (VARSIZE_ANY_EXHDR(t) > max_length * pg_database_encoding_max_length())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", argname),
				 errdetail("The limit is %d characters.", max_length)));
	s = text_to_cstring(t);
	if (pg_mbstrlen(s) > max_length)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", argname),
				 errdetail("The limit is %d characters.", max_length)));

	while (is_space_char(*s))
		s++;
	end = s + strlen(s);
	while (end > s && is_space_char(end[-1]))
		end--;
	*end = '\0';
	len = end - s;

	if (len == 0)
	{
		if (!required)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname)));
	}

	nchars = pg_mbstrlen(s);
	if (nchars < min_length)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too short", argname),
				 errdetail("It needs at least %d characters after trimming; it has %d.",
						   min_length, nchars)));
	return s;
}

/*
 * A tenant name argument: required, not blank, no surrounding white space,
 * at most LOCKBOX_MAX_TENANT characters.  Lookups use the name exactly.
 */
char *
lockbox_tenant_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *trimmed = lockbox_text_arg(fcinfo, argno, "tenant", true, 1,
										   LOCKBOX_MAX_TENANT);
	char	   *raw = text_to_cstring(PG_GETARG_TEXT_PP(argno));

	if (strcmp(raw, trimmed) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant name must not begin or end with white space")));
	return raw;
}

/* A relation's schema-qualified, quoted name, whatever the search_path. */
char *
lockbox_relname(Oid relid)
{
	char	   *rel = get_rel_name(relid);

	if (rel == NULL)
		return psprintf("%u", relid);
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  rel);
}
