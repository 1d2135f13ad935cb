/*-------------------------------------------------------------------------
 *
 * protect.c
 *		Putting tables under lockbox and taking them out:
 *
 *		lockbox_protect		row-level security, lockbox's restrictive
 *							policies for lockbox_engineer, the privileges
 *							lockbox_engineer lacked; recorded and audited
 *		lockbox_unprotect	exactly that undone
 *
 * Also: which tenant names are valid keys of a tenant column's type, the
 * fingerprint of lockbox's policies (for lockbox.posture), forgetting
 * dropped tables (sql_drop), and refusing any statement that would drop
 * lockbox's policies, or the extension, while tables are protected.
 *
 * Which rows an engineer reaches under those policies is enforce.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "lockbox.h"

PG_FUNCTION_INFO_V1(lockbox_protect);
PG_FUNCTION_INFO_V1(lockbox_unprotect);
PG_FUNCTION_INFO_V1(lockbox_policy_fingerprint);
PG_FUNCTION_INFO_V1(lockbox_on_sql_drop);

/* lockbox_unprotect is dropping policies; those some statement dropped */
static bool unprotecting = false;
static List *dropped_policy_rels = NIL;
static List *dropped_engineer_policy_rels;

/* a transaction that failed forgets what its statements dropped */
void
lockbox_protect_xact(XactEvent event)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		list_free(dropped_policy_rels);
		dropped_policy_rels = NIL;
		list_free(dropped_engineer_policy_rels);
		dropped_engineer_policy_rels = NIL;
	}
}

/* ---------------------------------------------------------------------
 * Tenant keys
 * ---------------------------------------------------------------------
 */
static bool
supported_key_type(Oid typid)
{
	return typid == INT2OID || typid == INT4OID || typid == INT8OID ||
		typid == TEXTOID || typid == VARCHAROID || typid == UUIDOID;
}

static bool
all_digits(const char *s, bool allow_sign)
{
	if (allow_sign && *s == '-')
		s++;
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * Is tenant a valid value of the key type, in the one canonical spelling
 * that reads back the same (so that the tenant named '007' never matches
 * the row keyed 7)?  Checked without raising errors.
 */
bool
lockbox_valid_key(const char *tenant, Oid keytype)
{
	switch (keytype)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			{
				const char *digits = tenant[0] == '-' ? tenant + 1 : tenant;
				int			maxlen = keytype == INT2OID ? 5 : keytype == INT4OID ? 10 : 19;
				int64		v;

				if (!all_digits(tenant, true) || strlen(digits) > maxlen ||
					(digits[0] == '0' && digits[1] != '\0') ||
					strcmp(tenant, "-0") == 0)
					return false;
				errno = 0;
				v = strtoll(tenant, NULL, 10);
				if (errno != 0)
					return false;
				if (keytype == INT2OID)
					return v >= PG_INT16_MIN && v <= PG_INT16_MAX;
				if (keytype == INT4OID)
					return v >= PG_INT32_MIN && v <= PG_INT32_MAX;
				return true;
			}
		case UUIDOID:
			{
				/* lower-case 8-4-4-4-12, as uuid_out writes it */
				if (strlen(tenant) != 36)
					return false;
				for (int i = 0; i < 36; i++)
				{
					char		c = tenant[i];

					if (i == 8 || i == 13 || i == 18 || i == 23)
					{
						if (c != '-')
							return false;
					}
					else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
						return false;
				}
				return true;
			}
		case TEXTOID:
		case VARCHAROID:
			return true;
		default:
			return false;
	}
}

/* ---------------------------------------------------------------------
 * lockbox_protect / lockbox_unprotect
 * ---------------------------------------------------------------------
 */
static const char *const policy_names[] = {
	"lockbox_read", "lockbox_insert", "lockbox_update", "lockbox_delete"
};

static void
exec_ddl(const char *sql)
{
	int			ret = SPI_execute(sql, false, 0);

	if (ret < 0)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(ret));
}

/*
 * A fingerprint of lockbox's policies on a table, from their deparsed form
 * (names, not OIDs), so that it survives dump and restore.  Between enter and
 * leave, which fixes the search_path the expressions are deparsed under.
 */
static char *
policy_fingerprint(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	char	   *fp;

	if (SPI_execute_with_args("SELECT pg_catalog.md5(pg_catalog.string_agg(pg_catalog.concat_ws(':',"
							  "        p.polname, p.polcmd, p.polpermissive,"
							  "        (SELECT pg_catalog.string_agg(r.rolname::pg_catalog.text, ','"
							  "                ORDER BY r.rolname)"
							  "           FROM pg_catalog.pg_roles r"
							  "          WHERE r.oid OPERATOR(pg_catalog.=) ANY (p.polroles)),"
							  "        pg_catalog.pg_get_expr(p.polqual, p.polrelid),"
							  "        pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)),"
							  "        ';' ORDER BY p.polname))"
							  "  FROM pg_catalog.pg_policy p"
							  " WHERE p.polrelid OPERATOR(pg_catalog.=) $1"
							  "   AND p.polname OPERATOR(pg_catalog.~~) 'lockbox\\_%'"
							  "   AND p.polname OPERATOR(pg_catalog.<>) 'lockbox_open'",
							  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the policies of table %u", relid);
	fp = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return fp ? fp : pstrdup("");
}

/* lockbox.policy_fingerprint(rel regclass) -> text, for lockbox.posture */
Datum
lockbox_policy_fingerprint(PG_FUNCTION_ARGS)
{
	LockboxCall call;
	char	   *fp;
	text	   *result;

	lockbox_enter_read(&call);
	fp = policy_fingerprint(PG_GETARG_OID(0));
	/* (in the caller's memory: SPI's is gone at leave) */
	result = SPI_palloc(VARHDRSZ + strlen(fp));
	SET_VARSIZE(result, VARHDRSZ + strlen(fp));
	memcpy(VARDATA(result), fp, strlen(fp));
	lockbox_leave(&call);
	PG_RETURN_TEXT_P(result);
}

/* The USING / WITH CHECK expression of a lockbox policy. */
static char *
policy_qual(const char *rel, const char *column, Oid keytype, char cmd)
{
	if (column == NULL)
		return psprintf("(SELECT lockbox.granted_table(%s::pg_catalog.regclass, '%c'))",
						quote_literal_cstr(rel), cmd);
	/* the cast keeps ANY's argument an array, not a sub-select */
	return psprintf("%s OPERATOR(pg_catalog.=) ANY ((SELECT lockbox.granted_keys(%s::pg_catalog.regclass, '%c', NULL::%s))::%s[])",
					quote_identifier(column), quote_literal_cstr(rel), cmd,
					format_type_be_qualified(keytype),
					format_type_be_qualified(keytype));
}

Datum
lockbox_protect(PG_FUNCTION_ARGS)
{
	Oid			relid;
	char	   *column = NULL;
	char	   *tenant = NULL;
	Oid			keytype = InvalidOid;
	LockboxCall call;
	HeapTuple	tup;
	Form_pg_class cls;
	bool		rls_was_on;
	char	   *rel;
	char	   *relname;
	char	   *read_qual;
	char	   *write_qual;
	char	   *granted;
	StringInfoData detail;

	lockbox_require_writable(fcinfo);
	lockbox_require_arg(fcinfo, 0, "rel");
	relid = PG_GETARG_OID(0);
	if (!PG_ARGISNULL(1))
		column = pstrdup(NameStr(*PG_GETARG_NAME(1)));
	if (!PG_ARGISNULL(2))
		tenant = lockbox_tenant_arg(fcinfo, 2);
	if ((column == NULL) == (tenant == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lockbox_protect needs exactly one of tenant_column and tenant"),
				 errhint("Name the column that holds each row's tenant, or the one tenant the whole table belongs to.")));

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	cls = (Form_pg_class) GETSTRUCT(tup);
	rel = lockbox_relname(relid);
	relname = pstrdup(NameStr(cls->relname));
	if (cls->relkind != RELKIND_RELATION && cls->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", relname)));
	if (cls->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("temporary table \"%s\" cannot be protected", relname)));
	if (!pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to protect table \"%s\"", relname),
				 errdetail("Only the table's owner or a superuser may put it under lockbox.")));
	rls_was_on = cls->relrowsecurity;
	ReleaseSysCache(tup);

	if (column != NULL)
	{
		AttrNumber	attnum = get_attnum(relid, column);

		if (attnum == InvalidAttrNumber || attnum < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							column, relname)));
		keytype = get_atttype(relid, attnum);
		if (type_is_collatable(keytype))
		{
			Oid			typid;
			int32		typmod;
			Oid			collation;

			get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collation);

			if (OidIsValid(collation) && !get_collation_isdeterministic(collation))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("column \"%s\" of table \"%s\" has a nondeterministic collation",
								column, relname),
						 errdetail("Under it, different tenant names can compare equal, and an engineer would see another tenant's rows."),
						 errhint("Give the tenant column a deterministic collation, such as \"C\".")));
		}
		if (!supported_key_type(keytype))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("column \"%s\" of table \"%s\" has type %s, which lockbox cannot use as a tenant key",
							column, relname, format_type_be(keytype)),
					 errhint("Tenant columns may be smallint, integer, bigint, text, varchar or uuid.")));
	}

	lockbox_enter(&call);
	if (tenant != NULL && !lockbox_tenant_lookup(tenant, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant \"%s\" does not exist", tenant)));
	{
		Oid			argtypes[1] = {OIDOID};
		Datum		values[1] = {ObjectIdGetDatum(relid)};

		if (SPI_execute_with_args("SELECT 1 FROM lockbox.protected_table"
								  " WHERE relid OPERATOR(pg_catalog.=) $1",
								  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read lockbox.protected_table");
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("table \"%s\" is already protected by lockbox", relname)));
	}

	/* row-level security, keeping every other role's view as it was */
	if (!rls_was_on)
	{
		exec_ddl(psprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY", rel));
		exec_ddl(psprintf("CREATE POLICY lockbox_open ON %s AS PERMISSIVE FOR ALL"
						  " TO PUBLIC USING (true) WITH CHECK (true)", rel));
	}
	/*
	 * Engineers reach the table through lockbox_engineer: give it the
	 * privileges it lacks, which lockbox_unprotect takes back.  Who may see
	 * which rows, and when, the policies and the executor hook decide.
	 */
	{
		Oid			argtypes[2] = {OIDOID, OIDOID};
		Datum		values[2] = {ObjectIdGetDatum(relid),
		ObjectIdGetDatum(lockbox_role_oid(LB_ENGINEER))};

		if (SPI_execute_with_args("SELECT pg_catalog.array_to_string(pg_catalog.array_agg(p ORDER BY n), ', ')"
								  "  FROM pg_catalog.unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'])"
								  "       WITH ORDINALITY AS x(p, n)"
								  " WHERE NOT EXISTS ("
								  "   SELECT 1 FROM pg_catalog.pg_class c,"
								  "          pg_catalog.aclexplode(COALESCE(c.relacl,"
								  "              pg_catalog.acldefault('r', c.relowner))) a"
								  "    WHERE c.oid OPERATOR(pg_catalog.=) $1"
								  "      AND a.grantee OPERATOR(pg_catalog.=) $2"
								  "      AND a.privilege_type OPERATOR(pg_catalog.=) x.p)",
								  2, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read the privileges of %s", rel);
		granted = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		if (granted != NULL)
			exec_ddl(psprintf("GRANT %s ON TABLE %s TO lockbox_engineer", granted, rel));
	}

	read_qual = policy_qual(rel, column, keytype, 'r');
	write_qual = policy_qual(rel, column, keytype, 'w');
	exec_ddl(psprintf("CREATE POLICY lockbox_read ON %s AS RESTRICTIVE FOR SELECT"
					  " TO lockbox_engineer USING (%s)", rel, read_qual));
	exec_ddl(psprintf("CREATE POLICY lockbox_insert ON %s AS RESTRICTIVE FOR INSERT"
					  " TO lockbox_engineer WITH CHECK (%s)", rel, write_qual));
	exec_ddl(psprintf("CREATE POLICY lockbox_update ON %s AS RESTRICTIVE FOR UPDATE"
					  " TO lockbox_engineer USING (%s) WITH CHECK (%s)",
					  rel, write_qual, write_qual));
	exec_ddl(psprintf("CREATE POLICY lockbox_delete ON %s AS RESTRICTIVE FOR DELETE"
					  " TO lockbox_engineer USING (%s)", rel, write_qual));

	{
		Oid			argtypes[6] = {OIDOID, NAMEOID, TEXTOID, BOOLOID, TEXTOID, TEXTOID};
		Datum		values[6];
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
		NameData	colname;

		values[0] = ObjectIdGetDatum(relid);
		if (column != NULL)
		{
			namestrcpy(&colname, column);
			values[1] = NameGetDatum(&colname);
		}
		else
			nulls[1] = 'n';
		values[2] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
		nulls[2] = tenant ? ' ' : 'n';
		values[3] = BoolGetDatum(rls_was_on);
		values[4] = CStringGetTextDatum(policy_fingerprint(relid));
		values[5] = CStringGetTextDatum(granted ? granted : "");
		if (SPI_execute_with_args("INSERT INTO lockbox.protected_table"
								  " (relid, tenant_column, tenant, rls_was_enabled, policies, granted)"
								  " VALUES ($1, $2, $3, $4, $5,"
								  "         pg_catalog.string_to_array(NULLIF($6, ''), ', '))",
								  6, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record the protected table");
	}

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_str(&detail, "relation", rel);
	lockbox_json_str(&detail, "tenant_column", column);
	lockbox_json_str(&detail, "tenant", tenant);
	lockbox_json_raw(&detail, "rls_was_enabled", rls_was_on ? "true" : "false");
	appendStringInfoChar(&detail, '}');
	lockbox_audit(&call, "protect", 0, tenant, detail.data);
	lockbox_access_changed();

	lockbox_leave(&call);
	PG_RETURN_VOID();
}

/*
 * Dropping or changing lockbox's restrictive policies while their table stays
 * protected would leave row-level security on with the permissive policy
 * lockbox_open and the privileges lockbox gave lockbox_engineer: engineers
 * would reach other tenants' rows.  However it is tried (DROP POLICY, ALTER
 * POLICY ... TO / USING / RENAME, then DROP, DROP EXTENSION lockbox CASCADE,
 * DROP SCHEMA ... CASCADE, DROP OWNED BY), the statement is refused when it
 * ends with the table still there and its lockbox policies no longer those
 * lockbox_protect made (their fingerprint); only lockbox_unprotect takes them
 * away.  When the extension itself went in the statement, a dropped
 * restrictive policy for lockbox_engineer is enough to refuse it.
 */

/* Is this pg_policy row a restrictive policy for lockbox_engineer? */
static bool
restricts_engineers(HeapTuple tup, TupleDesc desc)
{
	Form_pg_policy pol = (Form_pg_policy) GETSTRUCT(tup);
	Oid			engineer = get_role_oid("lockbox_engineer", true);
	bool		isnull;
	Datum		roles = heap_getattr(tup, Anum_pg_policy_polroles, desc, &isnull);
	ArrayType  *arr;
	Oid		   *oids;
	int			n;

	if (pol->polpermissive || isnull || !OidIsValid(engineer))
		return false;
	arr = DatumGetArrayTypeP(roles);
	oids = (Oid *) ARR_DATA_PTR(arr);
	n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	for (int i = 0; i < n; i++)
	{
		if (oids[i] == engineer)
			return true;
	}
	return false;
}

void
lockbox_protect_object_access(int access, Oid classId, Oid objectId)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	if (classId != PolicyRelationId || unprotecting ||
		(access != OAT_DROP && access != OAT_POST_ALTER))
		return;
	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_policy_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(objectId));
	scan = systable_beginscan(rel, PolicyOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Oid			relid = ((Form_pg_policy) GETSTRUCT(tup))->polrelid;
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		dropped_policy_rels = list_append_unique_oid(dropped_policy_rels, relid);
		if (access == OAT_DROP && restricts_engineers(tup, RelationGetDescr(rel)))
			dropped_engineer_policy_rels =
				list_append_unique_oid(dropped_engineer_policy_rels, relid);
		MemoryContextSwitchTo(old);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

/* Are relid's lockbox policies still those lockbox_protect made? */
static bool
policies_intact(Oid relid)
{
	LockboxCall call;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};
	bool		intact;

	lockbox_enter_read(&call);
	if (SPI_execute_with_args("SELECT policies FROM lockbox.protected_table"
							  " WHERE relid OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read lockbox.protected_table");
	if (SPI_processed == 0)
		intact = true;
	else
	{
		/* (read before policy_fingerprint's own query replaces the result) */
		char	   *stored = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		intact = strcmp(stored, policy_fingerprint(relid)) == 0;
	}
	lockbox_leave(&call);
	return intact;
}

/* After a utility statement: did it drop or change lockbox policies? */
void
lockbox_protect_utility_done(void)
{
	List	   *rels = dropped_policy_rels;
	List	   *engineer_rels = dropped_engineer_policy_rels;
	ListCell   *lc;

	if (rels == NIL)
		return;
	dropped_policy_rels = NIL;
	dropped_engineer_policy_rels = NIL;
	foreach(lc, rels)
	{
		Oid			relid = lfirst_oid(lc);

		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
			continue;			/* dropped with the table */
		if (lockbox_installed())
		{
			if (!lockbox_is_protected(relid) || policies_intact(relid))
				continue;
		}
		else if (!list_member_oid(engineer_rels, relid))
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop or change the lockbox policies of protected table \"%s\"",
						get_rel_name(relid)),
				 errdetail("Without them as lockbox made them, engineers would reach other tenants' rows of the table: row-level security stays on with the privileges lockbox gave lockbox_engineer."),
				 errhint("Take the table out of lockbox first, with SELECT lockbox_unprotect(%s).",
						 quote_literal_cstr(lockbox_relname(relid)))));
	}
	list_free(rels);
	list_free(engineer_rels);
}

/*
 * ALTER TABLE ... DISABLE ROW LEVEL SECURITY on a protected table: refused
 * (lockbox_unprotect restores the table's own setting).
 */
static void
refuse_rls_off(AlterTableStmt *stmt)
{
	ListCell   *lc;
	Oid			relid;

	if (unprotecting || !lockbox_installed())
		return;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		if (cmd->subtype != AT_DisableRowSecurity)
			continue;
		relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (OidIsValid(relid) && lockbox_is_protected(relid))
			ereport(ERROR,
					(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
					 errmsg("cannot disable row-level security on protected table \"%s\"",
							get_rel_name(relid)),
					 errdetail("Lockbox's policies keep engineers to their tenants only while row-level security is on."),
					 errhint("Take the table out of lockbox first, with SELECT lockbox_unprotect(%s).",
							 quote_literal_cstr(lockbox_relname(relid)))));
	}
}

/* DROP EXTENSION lockbox: refused, naming them, while tables are protected. */
void
lockbox_protect_utility(Node *node)
{
	DropStmt   *stmt = (DropStmt *) node;
	ListCell   *lc;
	bool		lockbox = false;
	StringInfoData names;
	LockboxCall call;

	if (IsA(node, AlterTableStmt))
	{
		refuse_rls_off((AlterTableStmt *) node);
		return;
	}
	if (!IsA(node, DropStmt) || stmt->removeType != OBJECT_EXTENSION)
		return;
	foreach(lc, stmt->objects)
	{
		if (strcmp(strVal(lfirst(lc)), "lockbox") == 0)
			lockbox = true;
	}
	if (!lockbox || !lockbox_installed())
		return;
	initStringInfo(&names);
	lockbox_enter_read(&call);
	if (SPI_execute("SELECT pg_catalog.string_agg(relid::pg_catalog.text, ', ' ORDER BY relid::pg_catalog.text),"
					"       pg_catalog.min(relid::pg_catalog.text)"
					"  FROM lockbox.protected_table", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read lockbox.protected_table");
	if (SPI_processed > 0 &&
		SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) != NULL)
	{
		appendStringInfoString(&names,
							   SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop extension lockbox while tables are protected"),
				 errdetail("Protected tables: %s.", names.data),
				 errhint("Take each table out of lockbox first, for example with SELECT lockbox_unprotect(%s).",
						 quote_literal_cstr(SPI_getvalue(SPI_tuptable->vals[0],
														 SPI_tuptable->tupdesc, 2)))));
	}
	lockbox_leave(&call);
}

Datum
lockbox_unprotect(PG_FUNCTION_ARGS)
{
	Oid			relid;
	LockboxCall call;
	char	   *rel;
	bool		rls_was_on;
	bool		isnull;
	char	   *tenant;
	char	   *granted;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	StringInfoData detail;

	lockbox_require_writable(fcinfo);
	lockbox_require_arg(fcinfo, 0, "rel");
	relid = PG_GETARG_OID(0);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	rel = lockbox_relname(relid);
	if (!pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to unprotect table \"%s\"", get_rel_name(relid)),
				 errdetail("Only the table's owner or a superuser may take it out of lockbox.")));

	lockbox_enter(&call);
	values[0] = ObjectIdGetDatum(relid);
	if (SPI_execute_with_args("DELETE FROM lockbox.protected_table"
							  " WHERE relid OPERATOR(pg_catalog.=) $1"
							  " RETURNING rls_was_enabled, tenant,"
							  "   pg_catalog.array_to_string(granted, ', ')",
							  1, argtypes, values, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not update lockbox.protected_table");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("table \"%s\" is not protected by lockbox", get_rel_name(relid))));
	rls_was_on = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	tenant = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	granted = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	if (granted != NULL && granted[0] == '\0')
		granted = NULL;

	unprotecting = true;
	PG_TRY();
	{
		for (int i = 0; i < lengthof(policy_names); i++)
			exec_ddl(psprintf("DROP POLICY IF EXISTS %s ON %s", policy_names[i], rel));
		if (!rls_was_on)
		{
			exec_ddl(psprintf("DROP POLICY IF EXISTS lockbox_open ON %s", rel));
			exec_ddl(psprintf("ALTER TABLE %s DISABLE ROW LEVEL SECURITY", rel));
		}
	}
	PG_FINALLY();
	{
		unprotecting = false;
	}
	PG_END_TRY();

	/* take back the privileges lockbox_protect gave lockbox_engineer */
	if (granted != NULL)
		exec_ddl(psprintf("REVOKE %s ON TABLE %s FROM lockbox_engineer", granted, rel));

	initStringInfo(&detail);
	appendStringInfoChar(&detail, '{');
	lockbox_json_str(&detail, "relation", rel);
	lockbox_json_raw(&detail, "rls_restored", rls_was_on ? "true" : "false");
	appendStringInfoChar(&detail, '}');
	lockbox_audit(&call, "unprotect", 0, tenant, detail.data);
	lockbox_access_changed();

	lockbox_leave(&call);
	PG_RETURN_VOID();
}

/*
 * Event trigger on sql_drop: a protected table that is dropped leaves
 * lockbox.protected_table (its policies went with it), audited.
 */
Datum
lockbox_on_sql_drop(PG_FUNCTION_ARGS)
{
	LockboxCall call;
	List	   *dropped = NIL;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "lockbox_on_sql_drop must be called as an event trigger");
	if (!lockbox_installed())
		PG_RETURN_VOID();

	lockbox_enter(&call);
	if (SPI_execute("DELETE FROM lockbox.protected_table p"
					" USING pg_catalog.pg_event_trigger_dropped_objects() d"
					" WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
					"   AND d.objsubid OPERATOR(pg_catalog.=) 0"
					"   AND p.relid::pg_catalog.oid OPERATOR(pg_catalog.=) d.objid"
					" RETURNING d.object_identity, p.tenant",
					false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not forget dropped protected tables");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	  **pair = palloc(sizeof(char *) * 2);

		pair[0] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		pair[1] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		dropped = lappend(dropped, pair);
	}
	foreach(lc, dropped)
	{
		char	  **pair = (char **) lfirst(lc);
		StringInfoData detail;

		initStringInfo(&detail);
		appendStringInfoChar(&detail, '{');
		lockbox_json_str(&detail, "relation", pair[0]);
		lockbox_json_str(&detail, "why", "table dropped");
		appendStringInfoChar(&detail, '}');
		lockbox_audit(&call, "unprotect", 0, pair[1], detail.data);
	}
	if (dropped != NIL)
		lockbox_access_changed();
	lockbox_leave(&call);
	PG_RETURN_VOID();
}

