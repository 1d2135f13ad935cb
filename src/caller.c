/*-------------------------------------------------------------------------
 *
 * caller.c
 *		What every SQL entry point uses: who is calling (lockbox's roles,
 *		parties), entering and leaving the extension owner's context (with
 *		the check that lockbox's objects are the library's version), SPI
 *		plans, and the checks of arguments.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "lockbox.h"

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

/* qsort's comparison of two int64s */
int
lockbox_int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
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
#define LOCKBOX_SCHEMA_VERSION	"1.7"

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
