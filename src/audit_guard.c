/*-------------------------------------------------------------------------
 *
 * audit_guard.c
 *		The guard on the audit's tables: utility statements that would take
 *		audit rows out, rewrite them or let them escape the append-only
 *		triggers are refused, whoever runs them.
 *
 * The rows themselves, their hashes and verification are in audit.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "lockbox.h"

/*
 * The guard on the audit's tables.  lockbox.audit_log, every partition of it
 * (at any depth: found by inheritance, whatever its name, the default one
 * included), lockbox.audit_anchor and lockbox.audit_statement are
 * append-only for every role, superusers included: their triggers
 * (lockbox.audit_log_append_only, ENABLE ALWAYS) refuse UPDATE, DELETE and
 * TRUNCATE.  A utility statement that would take their rows out, rewrite
 * them, make them crash-unsafe or let them escape those triggers is refused
 * here, 42501, by anyone: DROP, DETACH, TRUNCATE, ALTER EXTENSION lockbox
 * DROP of them or of the trigger function, DISABLE or ENABLE [REPLICA]
 * TRIGGER (only ENABLE ALWAYS passes), SET UNLOGGED, SET ACCESS METHOD,
 * [NO] INHERIT, column changes (TYPE rewrites every row, DROP COLUMN takes
 * a value from each), RENAME and SET SCHEMA (lockbox finds them by name),
 * dropping or replacing lockbox's triggers or their function, or making them
 * depend on an extension (dropped with it), rules, and an unlogged, foreign
 * or partitioned table created or attached as a partition.  ALTER TABLE passes
 * only the subcommands below that leave every row as it is and its triggers
 * firing, which are also those pg_dump's output and lockbox's own
 * partitioning issue: indexes, constraints (dropping one removes no row;
 * verification does not rely on them), defaults and NOT NULL, statistics
 * and storage options, ENABLE ALWAYS TRIGGER, owner, CLUSTER ON, SET LOGGED,
 * SET TABLESPACE (the rows are copied as they are, WAL-logged), REPLICA
 * IDENTITY, ATTACH PARTITION of a permanent table.
 *
 * lockbox's own statements pass: its scripts (CREATE and ALTER EXTENSION),
 * lockbox_archive_audit() (which detaches and moves months), and
 * pg_upgrade's binary-upgrade restore.  DROP EXTENSION lockbox drops the
 * log with the extension, as README says, and is no statement on the
 * tables themselves.  A superuser who edits the catalogs or the files
 * directly is beyond what a hook sees: the hash links and anchors kept
 * outside are what catch that.
 */
static Oid
audit_append_only_function(void)
{
	/*
	 * (from the catalog, not by LookupFuncName: that checks the caller's
	 * USAGE on schema lockbox, and every CREATE FUNCTION and CREATE TRIGGER
	 * of a role without it would fail here)
	 */
	Oid			nsp = get_namespace_oid("lockbox", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
						   CStringGetDatum("audit_log_append_only"),
						   PointerGetDatum(buildoidvector(NULL, 0)),
						   ObjectIdGetDatum(nsp));
}

static bool
is_audit_table(Oid relid)
{
	Oid			nsp;
	Oid			log;

	if (!OidIsValid(relid))
		return false;
	nsp = get_namespace_oid("lockbox", true);
	if (!OidIsValid(nsp))
		return false;
	log = get_relname_relid("audit_log", nsp);
	if (!OidIsValid(log))
		return false;
	if (relid == log)
		return true;
	if (get_rel_relispartition(relid))
	{
		List	   *ancestors = get_partition_ancestors(relid);
		bool		found = list_member_oid(ancestors, log);

		list_free(ancestors);
		if (found)
			return true;
	}
	return get_rel_namespace(relid) == nsp &&
		(relid == get_relname_relid("audit_anchor", nsp) ||
		 relid == get_relname_relid("audit_statement", nsp));
}

/* an audit table role owns (the log, its partitions, anchors, statements), or InvalidOid */
static Oid
audit_table_owned_by(Oid role)
{
	Oid			nsp = get_namespace_oid("lockbox", true);
	Oid			log;
	List	   *tables;
	ListCell   *lc;
	Oid			found = InvalidOid;

	if (!OidIsValid(role) || !OidIsValid(nsp) ||
		!OidIsValid(log = get_relname_relid("audit_log", nsp)))
		return InvalidOid;
	tables = find_all_inheritors(log, NoLock, NULL);
	tables = lappend_oid(tables, get_relname_relid("audit_anchor", nsp));
	tables = lappend_oid(tables, get_relname_relid("audit_statement", nsp));
	foreach(lc, tables)
	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (!HeapTupleIsValid(tup))
			continue;
		if (((Form_pg_class) GETSTRUCT(tup))->relowner == role)
			found = lfirst_oid(lc);
		ReleaseSysCache(tup);
		if (OidIsValid(found))
			break;
	}
	return found;
}

static char *
audit_table_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

static void
refuse_partition_change(const char *what, Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s partition \"%s\" of table \"lockbox.audit_log\"",
					what, audit_table_name(relid)),
			 errdetail("The audit's rows leave it only through lockbox_archive_audit(), which records it."),
			 errhint("Archive whole months with SELECT * FROM lockbox_archive_audit(before).")));
}

/*
 * what: the statement, as "ALTER TABLE ... SET UNLOGGED"; removal: it would
 * take rows out (the hint names the one way that does, for the log's rows)
 */
static void
refuse_audit_change(const char *what, Oid relid, bool removal)
{
	bool		log = removal && (get_rel_relispartition(relid) ||
								  strcmp(get_rel_name(relid), "audit_log") == 0);

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is refused on audit table \"%s\"", what, audit_table_name(relid)),
			 errdetail("The audit's tables are append-only for every role, superusers included: nothing may remove, rewrite or hide their rows, make them crash-unsafe, or stop their triggers."),
			 log ? errhint("Archive whole months with SELECT * FROM lockbox_archive_audit(before).") : 0));
}

/* is the function a statement names lockbox.audit_log_append_only()? */
static bool
is_append_only_function(ObjectType objtype, ObjectWithArgs *func)
{
	Oid			fn = audit_append_only_function();

	return OidIsValid(fn) && LookupFuncWithArgs(objtype, func, true) == fn;
}

static void
refuse_audit_rename(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is refused", what),
			 errdetail("Schema lockbox and its function audit_log_append_only() keep the audit append-only under these names.")));
}

/* the ALTER TABLE subcommands that leave an audit table's rows and triggers be */
static bool
audit_alter_harmless(AlterTableType subtype)
{
	switch (subtype)
	{
		case AT_AddIndex:
		case AT_ReAddIndex:
		case AT_AddConstraint:
		case AT_ReAddConstraint:
		case AT_AddIndexConstraint:
		case AT_ValidateConstraint:
		case AT_DropConstraint:
		case AT_ColumnDefault:
		case AT_CookedColumnDefault:
		case AT_SetNotNull:
		case AT_CheckNotNull:
		case AT_DropNotNull:
		case AT_SetStatistics:
		case AT_SetOptions:
		case AT_ResetOptions:
		case AT_SetStorage:
		case AT_SetCompression:
		case AT_SetRelOptions:
		case AT_ResetRelOptions:
		case AT_ReplaceRelOptions:
		case AT_EnableAlwaysTrig:
		case AT_ChangeOwner:
		case AT_ClusterOn:
		case AT_DropCluster:
		case AT_SetLogged:
		case AT_SetTableSpace:
		case AT_ReplicaIdentity:
		case AT_AttachPartition:	/* checked apart */
		case AT_DetachPartition:	/* checked apart */
		case AT_DetachPartitionFinalize:
			return true;
		default:
			return false;
	}
}

static const char *
audit_alter_name(AlterTableType subtype)
{
	switch (subtype)
	{
		case AT_SetUnLogged:
			return "ALTER TABLE ... SET UNLOGGED";
		case AT_DisableTrig:
		case AT_DisableTrigAll:
		case AT_DisableTrigUser:
			return "ALTER TABLE ... DISABLE TRIGGER";
		case AT_EnableTrig:
		case AT_EnableTrigAll:
		case AT_EnableTrigUser:
			return "ALTER TABLE ... ENABLE TRIGGER (not ALWAYS)";
		case AT_EnableReplicaTrig:
			return "ALTER TABLE ... ENABLE REPLICA TRIGGER";
		case AT_SetAccessMethod:
			return "ALTER TABLE ... SET ACCESS METHOD";
		case AT_AddInherit:
		case AT_DropInherit:
			return "ALTER TABLE ... [NO] INHERIT";
		case AT_AlterColumnType:
			return "ALTER TABLE ... ALTER COLUMN ... TYPE";
		case AT_DropColumn:
			return "ALTER TABLE ... DROP COLUMN";
		case AT_AddColumn:
			return "ALTER TABLE ... ADD COLUMN";
		case AT_EnableRowSecurity:
		case AT_DisableRowSecurity:
		case AT_ForceRowSecurity:
		case AT_NoForceRowSecurity:
			return "ALTER TABLE ... ROW LEVEL SECURITY";
		default:
			return "this ALTER TABLE";
	}
}

/*
 * A table becomes a partition of an audit table: a permanent, plain one (a
 * partitioned one could bring unlogged or foreign partitions of its own).
 */
static void
check_new_audit_partition(Oid partid, Oid parent)
{
	Relation	rel;
	bool		empty;
	bool		own_trigger = false;

	if (!OidIsValid(partid))
		return;					/* PostgreSQL reports it */
	if (get_rel_relkind(partid) != RELKIND_RELATION ||
		get_rel_persistence(partid) != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a partition of audit table \"%s\" must be a permanent table",
						audit_table_name(parent)),
				 errdetail("Only a permanent, plain table is attached to it: audit rows are kept in no unlogged, temporary or foreign table, nor in a partitioned one that could hold such partitions.")));

	/*
	 * Rows come into the log only as lockbox writes them: a table attached
	 * by anyone else (a restore, say) is empty, in schema lockbox, and has
	 * no trigger that lockbox did not put there.  lockbox.audit_partitions()
	 * attaches the table it has just moved a month's rows into.
	 */
	if (partid == lockbox_audit_moved_into())
		return;
	rel = table_open(partid, AccessShareLock);
	{
		TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
		TupleTableSlot *slot = table_slot_create(rel, NULL);

		empty = !table_scan_getnextslot(scan, ForwardScanDirection, slot);
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
	}
	if (rel->trigdesc != NULL)
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
			if (rel->trigdesc->triggers[i].tgfoid != audit_append_only_function())
				own_trigger = true;
	table_close(rel, AccessShareLock);
	if (get_rel_namespace(partid) != get_rel_namespace(parent) || !empty || own_trigger)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot attach table \"%s\" to audit table \"%s\"",
						audit_table_name(partid), audit_table_name(parent)),
				 errdetail("A partition of the audit log is an empty table of schema lockbox with no triggers of its own: audit rows are only those lockbox writes.")));
}

/* the function of trigger trigname on relid, InvalidOid if none */
static Oid
trigger_function(Oid relid, const char *trigname)
{
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			fn = InvalidOid;

	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	ScanKeyInit(&key[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(trigname));
	scan = systable_beginscan(rel, TriggerRelidNameIndexId, true, NULL, 2, key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		fn = ((Form_pg_trigger) GETSTRUCT(tup))->tgfoid;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return fn;
}

/* is it lockbox's trigger named trigname on audit table relid? */
static bool
is_audit_trigger(Oid relid, const char *trigname)
{
	Oid			fn;

	if (!is_audit_table(relid))
		return false;
	fn = trigger_function(relid, trigname);
	return OidIsValid(fn) && fn == audit_append_only_function();
}

static void
audit_alter_table(AlterTableStmt *stmt)
{
	Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	bool		audit = is_audit_table(relid);
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

		if (cmd->subtype == AT_DetachPartition ||
			cmd->subtype == AT_DetachPartitionFinalize)
		{
			Oid			part = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name,
												NoLock, true);

			if (is_audit_table(part))
				refuse_partition_change("detach", part);
		}
		else if (cmd->subtype == AT_AttachPartition && audit &&
				 stmt->objtype == OBJECT_TABLE)
			check_new_audit_partition(RangeVarGetRelid(((PartitionCmd *) cmd->def)->name,
													   NoLock, true), relid);
		else if (audit && cmd->subtype == AT_ChangeOwner &&
				 !superuser_arg(get_rolespec_oid(cmd->newowner, false)))
			refuse_audit_change("ALTER TABLE ... OWNER TO a role that is no superuser",
								relid, false);
		else if (audit && !audit_alter_harmless(cmd->subtype))
			refuse_audit_change(audit_alter_name(cmd->subtype), relid, false);
	}
}

static void
audit_drop(DropStmt *stmt)
{
	ListCell   *lc;
	Oid			fn;

	foreach(lc, stmt->objects)
	{
		switch (stmt->removeType)
		{
			case OBJECT_TABLE:
				{
					RangeVar   *rv = makeRangeVarFromNameList((List *) lfirst(lc));
					Oid			relid = RangeVarGetRelid(rv, NoLock, true);

					if (!is_audit_table(relid))
						break;
					if (get_rel_relispartition(relid))
						refuse_partition_change("drop", relid);
					refuse_audit_change("DROP TABLE", relid, true);
				}
				break;
			case OBJECT_TRIGGER:
			case OBJECT_RULE:
				{
					List	   *names = (List *) lfirst(lc);
					RangeVar   *rv;
					Oid			relid;

					if (list_length(names) < 2)
						break;
					rv = makeRangeVarFromNameList(list_truncate(list_copy(names),
																list_length(names) - 1));
					relid = RangeVarGetRelid(rv, NoLock, true);
					if (stmt->removeType == OBJECT_TRIGGER &&
						is_audit_trigger(relid, strVal(llast(names))))
						refuse_audit_change("DROP TRIGGER", relid, false);
				}
				break;
			case OBJECT_FUNCTION:
			case OBJECT_ROUTINE:
				fn = LookupFuncWithArgs(stmt->removeType,
										(ObjectWithArgs *) lfirst(lc), true);
				if (OidIsValid(fn) && fn == audit_append_only_function())
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("cannot drop function lockbox.audit_log_append_only()"),
							 errdetail("It keeps the audit's tables append-only.")));
				break;
			default:
				return;
		}
	}
}

/*
 * The utility hook: what the comment above refuses.
 */
void
lockbox_audit_utility(Node *node)
{
	if (lockbox_audit_archiving() || creating_extension || IsBinaryUpgrade || node == NULL)
		return;
	switch (nodeTag(node))
	{
		case T_AlterTableStmt:
			audit_alter_table((AlterTableStmt *) node);
			break;
		case T_DropStmt:
			audit_drop((DropStmt *) node);
			break;
		case T_TruncateStmt:
			{
				ListCell   *lc;

				foreach(lc, ((TruncateStmt *) node)->relations)
				{
					Oid			relid = RangeVarGetRelid((RangeVar *) lfirst(lc),
														 NoLock, true);

					if (is_audit_table(relid))
						refuse_audit_change("TRUNCATE", relid, true);
				}
			}
			break;
		case T_AlterExtensionContentsStmt:
			{
				AlterExtensionContentsStmt *stmt = (AlterExtensionContentsStmt *) node;
				Oid			relid;
				Oid			fn;

				if (stmt->action >= 0 || strcmp(stmt->extname, "lockbox") != 0)
					break;
				if (stmt->objtype == OBJECT_TABLE)
				{
					relid = RangeVarGetRelid(makeRangeVarFromNameList((List *) stmt->object),
											 NoLock, true);
					if (is_audit_table(relid))
						refuse_audit_change("ALTER EXTENSION lockbox DROP", relid, true);
				}
				else if (stmt->objtype == OBJECT_FUNCTION ||
						 stmt->objtype == OBJECT_ROUTINE)
				{
					fn = LookupFuncWithArgs(stmt->objtype,
											(ObjectWithArgs *) stmt->object, true);
					if (OidIsValid(fn) && fn == audit_append_only_function())
						ereport(ERROR,
								(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
								 errmsg("cannot remove function lockbox.audit_log_append_only() from extension lockbox"),
								 errdetail("It keeps the audit's tables append-only.")));
				}
			}
			break;
		case T_CreateFunctionStmt:
			{
				CreateFunctionStmt *stmt = (CreateFunctionStmt *) node;
				Oid			fn = audit_append_only_function();

				if (stmt->replace && OidIsValid(fn) &&
					LookupFuncName(stmt->funcname, 0, NULL, true) == fn &&
					list_length(stmt->parameters) == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("cannot replace function lockbox.audit_log_append_only()"),
							 errdetail("It keeps the audit's tables append-only.")));
			}
			break;
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *stmt = (CreateTrigStmt *) node;
				Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);

				if (stmt->replace && is_audit_trigger(relid, stmt->trigname))
					refuse_audit_change("CREATE OR REPLACE TRIGGER", relid, false);

				/*
				 * A row trigger that runs before the row is written could
				 * change or discard it: only lockbox's own (a restore
				 * creates them again).  Statement triggers and AFTER row
				 * triggers (a SIEM's, say) see rows, and change none.
				 */
				if (stmt->row && (stmt->timing & TRIGGER_TYPE_BEFORE) &&
					is_audit_table(relid) &&
					LookupFuncName(stmt->funcname, 0, NULL, true) != audit_append_only_function())
					refuse_audit_change("CREATE TRIGGER ... BEFORE ... FOR EACH ROW", relid, false);
			}
			break;
		case T_DropOwnedStmt:
			{
				/* it would drop the audit tables a role owns */
				ListCell   *lc;

				foreach(lc, ((DropOwnedStmt *) node)->roles)
				{
					Oid			role = get_rolespec_oid((RoleSpec *) lfirst(lc), true);
					Oid			owned = audit_table_owned_by(role);

					if (OidIsValid(owned))
						refuse_audit_change("DROP OWNED", owned, true);
				}
			}
			break;
		case T_AlterObjectDependsStmt:
			{
				/* dropping that extension would drop the trigger or function */
				AlterObjectDependsStmt *stmt = (AlterObjectDependsStmt *) node;

				if (stmt->remove)
					break;
				if (stmt->objectType == OBJECT_TRIGGER && stmt->relation != NULL)
				{
					Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);

					if (is_audit_trigger(relid, strVal(linitial((List *) stmt->object))))
						refuse_audit_change("ALTER TRIGGER ... DEPENDS ON EXTENSION", relid, false);
				}
				else if (stmt->objectType == OBJECT_FUNCTION)
				{
					Oid			fn = LookupFuncWithArgs(OBJECT_FUNCTION,
														(ObjectWithArgs *) stmt->object, true);

					if (OidIsValid(fn) && fn == audit_append_only_function())
						ereport(ERROR,
								(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
								 errmsg("cannot make function lockbox.audit_log_append_only() depend on an extension"),
								 errdetail("It keeps the audit's tables append-only.")));
				}
			}
			break;
		case T_RuleStmt:
			{
				Oid			relid = RangeVarGetRelid(((RuleStmt *) node)->relation,
													 NoLock, true);

				if (is_audit_table(relid))
					refuse_audit_change("CREATE RULE", relid, false);
			}
			break;
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) node;

				/*
				 * The guard knows the audit's tables and trigger function
				 * by their names in schema lockbox: under other names they
				 * would be unguarded (a trigger of a renamed function could
				 * be dropped, a table of a renamed schema disabled).
				 */
				if (stmt->renameType == OBJECT_SCHEMA &&
					strcmp(stmt->subname, "lockbox") == 0)
					refuse_audit_rename("ALTER SCHEMA lockbox RENAME");
				if ((stmt->renameType == OBJECT_FUNCTION ||
					 stmt->renameType == OBJECT_ROUTINE) &&
					is_append_only_function(stmt->renameType,
											(ObjectWithArgs *) stmt->object))
					refuse_audit_rename("ALTER FUNCTION lockbox.audit_log_append_only() RENAME");
				/*
				 * (ALTER INDEX, VIEW, SEQUENCE ... RENAME name a table
				 * too: PostgreSQL renames any relation whichever word is
				 * used, and ALTER INDEX does)
				 */
				if (stmt->relation != NULL &&
					(stmt->renameType == OBJECT_TABLE ||
					 stmt->renameType == OBJECT_INDEX ||
					 stmt->renameType == OBJECT_VIEW ||
					 stmt->renameType == OBJECT_MATVIEW ||
					 stmt->renameType == OBJECT_SEQUENCE ||
					 stmt->renameType == OBJECT_FOREIGN_TABLE ||
					 stmt->renameType == OBJECT_COLUMN ||
					 stmt->renameType == OBJECT_TRIGGER))
				{
					Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);

					if (is_audit_table(relid) &&
						(stmt->renameType != OBJECT_TRIGGER ||
						 is_audit_trigger(relid, stmt->subname)))
						refuse_audit_change("RENAME", relid, false);
				}
			}
			break;
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) node;

				if ((stmt->objectType == OBJECT_FUNCTION ||
					 stmt->objectType == OBJECT_ROUTINE) &&
					is_append_only_function(stmt->objectType,
											(ObjectWithArgs *) stmt->object))
					refuse_audit_rename("ALTER FUNCTION lockbox.audit_log_append_only() SET SCHEMA");
				if (stmt->relation != NULL &&
					(stmt->objectType == OBJECT_TABLE ||
					 stmt->objectType == OBJECT_INDEX ||
					 stmt->objectType == OBJECT_VIEW ||
					 stmt->objectType == OBJECT_MATVIEW ||
					 stmt->objectType == OBJECT_SEQUENCE ||
					 stmt->objectType == OBJECT_FOREIGN_TABLE))
				{
					Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);

					if (is_audit_table(relid))
						refuse_audit_change("ALTER TABLE ... SET SCHEMA", relid, false);
				}
			}
			break;
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			{
				CreateStmt *stmt = (CreateStmt *) node;
				ListCell   *lc;

				if (stmt->partbound == NULL ||
					(IsA(node, CreateStmt) &&
					 stmt->relation->relpersistence == RELPERSISTENCE_PERMANENT))
					break;
				foreach(lc, stmt->inhRelations)
				{
					Oid			parent = RangeVarGetRelid((RangeVar *) lfirst(lc),
														  NoLock, true);

					if (is_audit_table(parent))
						ereport(ERROR,
								(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
								 errmsg("a partition of audit table \"%s\" must be a permanent table",
										audit_table_name(parent)),
								 errdetail("Audit rows are not kept in unlogged, temporary or foreign tables.")));
				}
			}
			break;
		default:
			break;
	}
}
