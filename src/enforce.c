/*-------------------------------------------------------------------------
 *
 * enforce.c
 *		What an engineer may do with protected tables (protect.c puts them
 *		under lockbox):
 *
 *	- the policy functions lockbox.granted_keys / granted_table, which the
 *	  restrictive policies call in an InitPlan (once per statement; the qual
 *	  stays an index condition on the tenant column), answer from the
 *	  engineer's open grants;
 *	- before an engineer's statement runs (the executor hook, see hooks.c),
 *	  every relation it reaches that holds protected rows -- named, added by
 *	  the planner as a partition or child, or read by a view or rule -- must
 *	  be reached as an engineer, through the protected table itself, under an
 *	  open request for the command; EXPLAIN only without numbers;
 *	- TRUNCATE (also one whose CASCADE reaches a protected table through
 *	  foreign keys), LOCK TABLE (also through views) and COPY FROM are
 *	  refused, COPY TO is a read;
 *	- an engineer's delete or update of any table may set off foreign key
 *	  actions (ON DELETE / ON UPDATE CASCADE, SET NULL, SET DEFAULT), which
 *	  run as the referencing table's owner past the policies: every chain of
 *	  them is followed, and one reaching a protected table is refused unless
 *	  it provably changes only rows the engineer may write.
 *
 * Access is decided from the requests at every statement, against the real
 * clock, so approving or ending access writes no catalog and ends on time.
 * The grants and the protected tables are cached per backend, dropped when
 * a shared generation counter moves (every commit that changes access or
 * protection bumps it) and when the earliest cached window ends; who is an
 * engineer and which relations descend from which are cached too, dropped on
 * role and relcache invalidations.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/heap.h"
#include "catalog/partition.h"
#include "catalog/indexing.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/tablecmds.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "nodes/pathnodes.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/inval.h"
#include "port/atomics.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrtab.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "lockbox.h"

PG_FUNCTION_INFO_V1(lockbox_granted_keys);
PG_FUNCTION_INFO_V1(lockbox_granted_table);
PG_FUNCTION_INFO_V1(lockbox_cascade_reach);

typedef struct EnforceShared
{
	pg_atomic_uint64 generation;
} EnforceShared;

static EnforceShared *enforce_shared = NULL;

/* a protected table, as the backend caches it */
typedef struct ProtectedRel
{
	Oid			relid;			/* hash key */
	bool		whole;			/* belongs wholly to one tenant */
	char	   *tenant;			/* whole: its tenant */
	char	   *tenant_column;	/* not whole: the column of the tenant key */
} ProtectedRel;

/* one open grant of the current user */
typedef struct Grant
{
	Oid			relid;
	char	   *tenant;
	bool		write;
	int64		request_id;
} Grant;

typedef struct EnforceCache
{
	uint64		generation;
	uint64		watched_invals; /* watched_invals when loaded */
	bool		valid;
	bool		installed;		/* lockbox exists in this database */
	bool		copied;			/* a copy not adopted (identity.c) */
	int64		void_through;	/* requests up to this id are void here */
	HTAB	   *protected;		/* relid -> ProtectedRel */
	Oid			grants_user;	/* grants below are this role's */
	bool		grants_valid;
	TimestampTz grants_until;	/* earliest end of a cached window */
	List	   *grants;			/* of Grant */
	uint64		grants_version; /* bumped whenever grants change */
	List	   *key_arrays;		/* of KeyArray, for grants_version */
	uint64		key_arrays_version;
	MemoryContext cxt;
} EnforceCache;

/* granted_keys' answer for a table and command, kept with the grants */
typedef struct KeyArray
{
	Oid			relid;
	bool		write;
	Oid			keytype;
	ArrayType  *keys;
} KeyArray;

static EnforceCache cache;

/* role -> is it an engineer?  Dropped when roles or memberships change. */
typedef struct RoleEntry
{
	Oid			role;
	bool		engineer;
	bool		inherits;		/* has lockbox_engineer's privileges */
	bool		bypassrls;
} RoleEntry;

static HTAB *role_cache = NULL;
static uint64 role_invals = 0;

/*
 * relid -> its ancestors through partitioning and inheritance, transitively.
 * Dropped on any relcache invalidation: ATTACH / DETACH PARTITION, INHERIT
 * and NO INHERIT all invalidate the relations they change.
 */
typedef struct AncestorEntry
{
	Oid			relid;
	Oid			owner;			/* the relation's owner */
	int			n;
	Oid		   *ancestors;
} AncestorEntry;

static HTAB *ancestor_cache = NULL;
static MemoryContext ancestor_cxt = NULL;
static uint64 ancestor_invals = 0;

static bool access_changed = false;

static void forget_open_statements(void);
static void refuse_prepare(Oid relid);

/*
 * The engineer statement being checked, for the access log: its command,
 * its text and the values bound to its parameters; stmt_query is what the
 * access log keeps of them (recorded_query), made when first needed
 * (stmt_query_made).
 */
static const char *stmt_command = "";
static const char *stmt_source = "";
static ParamListInfo stmt_params = NULL;
static LockboxQuery stmt_query;
static bool stmt_query_made = false;

/*
 * A cursor WITH HOLD being declared (DECLARE ... WITH HOLD under way): its
 * rows outlive the transaction, read from a store no fetch check sees.
 */
static int	declaring_held_cursor = 0;

/*
 * COPY ... TO of a protected table, recorded as COPY TO: the query COPY
 * then runs (a SELECT, as row-level security applies) is not recorded
 * again.  Its text, until that query starts or the COPY ends.
 */
static const char *copy_to_recorded = NULL;
/* (and what it was recorded under, for a refusal before the query starts) */
static LockboxAccessItem copy_to_item;
static LockboxQuery copy_to_query;

/*
 * The engineer statements under way that reach protected tables, until
 * their ExecutorEnd: every ExecutorRun of one (each FETCH of a cursor, each
 * batch of a PL/pgSQL FOR loop, each Execute of a portal) checks again that
 * the requests it ran under still cover its tables.  They live no longer
 * than their transaction (cursors WITH HOLD over protected tables are
 * refused), so the list goes at its end.
 */
typedef struct OpenStatement
{
	QueryDesc  *queryDesc;
	SubTransactionId subid;		/* started in (then merged into) */
	Oid			user;			/* who started it */
	const char *command;		/* as recorded */
	LockboxQuery query;			/* as recorded (copies) */
	int			n;
	int			nnamed;			/* the first nnamed are named by it */
	Oid		   *relids;
	bool	   *write;
	int		   *nrequests;		/* the requests it was allowed under */
	int64	  **requests;
} OpenStatement;

static List *open_statements = NIL;
static MemoryContext open_cxt = NULL;

/*
 * A protected table an engineer statement of this transaction reached: such
 * a transaction is not prepared (PREPARE TRANSACTION), which would let its
 * writes be committed, and its locks held, after the access ended.
 */
static Oid	xact_reached = InvalidOid;

/*
 * What this transaction's engineer statements wrote into protected tables,
 * and under which requests: each of them must still be open when the
 * transaction commits (check_commit), or the writes would be committed after
 * the access that allowed them ended -- a revocation, a close or the
 * window's end while the transaction stayed open.  One entry per engineer,
 * relation and set of requests (a loop of writes adds one), in the
 * subtransaction that first made it (dropped when that one aborts).
 */
typedef struct XactWrite
{
	SubTransactionId subid;
	Oid			user;
	Oid			relid;
	int			nrequests;
	int64	   *requests;
	LockboxQuery query;			/* the first statement that wrote so (copies) */
} XactWrite;

static List *xact_writes = NIL;
static MemoryContext xact_writes_cxt = NULL;

/*
 * A refusal of an engineer's statement is recorded once: by lockbox when it
 * refuses it itself (record_refusal), else by the innermost engineer
 * statement on protected data it fails (lockbox_enforce_run_failed).  The
 * statements around it see it fail too.
 */
static bool run_failure_recorded = false;

static void forget_xact_writes(void);
static void check_commit(void);

/* ---------------------------------------------------------------------
 * Shared generation
 * ---------------------------------------------------------------------
 */
Size
lockbox_enforce_shmem_size(void)
{
	return MAXALIGN(sizeof(EnforceShared));
}

void
lockbox_enforce_shmem_init(void)
{
	bool		found;

	enforce_shared = ShmemInitStruct("lockbox enforce",
									 lockbox_enforce_shmem_size(), &found);
	if (!found)
		pg_atomic_init_u64(&enforce_shared->generation, 1);
}

static void
cache_reset(void)
{
	if (cache.cxt != NULL)
		MemoryContextReset(cache.cxt);
	cache.valid = false;
	cache.grants_valid = false;
	cache.protected = NULL;
	cache.grants = NIL;
	cache.grants_version++;
	cache.key_arrays = NIL;
}

/*
 * The relation whose relcache invalidations tell a backend that who may
 * access what has changed, as of the last load of the cache (InvalidOid:
 * lockbox was not installed then, and any invalidation may mean it is now).
 * It is lockbox.access_signal, a sequence nothing reads: a plan or a cached
 * expression that named it would be planned again after each access change
 * (lockbox.request_id_seq served until 1.3, and the request table's cached
 * id default was rebuilt in every backend at every approval and close).
 */
static Oid	watched_relid = InvalidOid;
static uint64 watched_invals = 0;	/* invalidations of it seen */

static Oid
access_signal_relid(void)
{
	Oid			nsp = get_namespace_oid("lockbox", true);

	return OidIsValid(nsp) ? get_relname_relid("access_signal", nsp) : InvalidOid;
}

/*
 * The calling transaction changes who may access what.  At its commit every
 * backend drops its cached grants: on this server through the shared
 * generation, and on hot standbys through a relcache invalidation of the
 * signal relation, which the commit record carries and each standby replays
 * (nothing commits on a standby to bump its generation).
 */
void
lockbox_access_changed(void)
{
	Oid			relid = access_signal_relid();

	access_changed = true;
	cache_reset();
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
}

void
lockbox_enforce_xact(XactEvent event)
{
	if (event == XACT_EVENT_PRE_PREPARE && OidIsValid(xact_reached))
		refuse_prepare(xact_reached);
	if (event == XACT_EVENT_PRE_COMMIT && xact_writes != NIL)
		check_commit();
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			forget_open_statements();
			forget_xact_writes();
			xact_reached = InvalidOid;
			run_failure_recorded = false;
			break;
		default:
			break;
	}
	if (!access_changed)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			if (enforce_shared != NULL)
				pg_atomic_fetch_add_u64(&enforce_shared->generation, 1);
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			access_changed = false;
			cache_reset();
			break;
		default:
			break;
	}
}

/* ---------------------------------------------------------------------
 * The caches
 * ---------------------------------------------------------------------
 */
static void
cache_check_generation(void)
{
	uint64		gen;

	if (cache.cxt == NULL)
		cache.cxt = AllocSetContextCreate(TopMemoryContext, "lockbox enforce cache",
										  ALLOCSET_SMALL_SIZES);
	gen = enforce_shared ? pg_atomic_read_u64(&enforce_shared->generation) : 0;
	if (gen != cache.generation || watched_invals != cache.watched_invals)
	{
		cache_reset();
		cache.generation = gen;
		cache.watched_invals = watched_invals;
	}
}

/* Load the protected tables of this database.  Runs its own SPI. */
static void
load_protected(void)
{
	LockboxCall call;
	HASHCTL		ctl;

	cache.installed = lockbox_installed();
	cache.copied = false;
	cache.void_through = 0;
	watched_relid = cache.installed ? access_signal_relid() : InvalidOid;
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(ProtectedRel);
	ctl.hcxt = cache.cxt;
	cache.protected = hash_create("lockbox protected tables", 64, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	if (cache.installed)
	{
		lockbox_enter_read(&call);
		if (SPI_execute("SELECT p.relid, p.tenant, p.tenant_column FROM lockbox.protected_table p",
						false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read lockbox.protected_table");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	td = SPI_tuptable->tupdesc;
			bool		isnull;
			Oid			relid = DatumGetObjectId(SPI_getbinval(tup, td, 1, &isnull));
			char	   *tenant = SPI_getvalue(tup, td, 2);
			char	   *column = SPI_getvalue(tup, td, 3);
			ProtectedRel *p;
			bool		found;

			p = hash_search(cache.protected, &relid, HASH_ENTER, &found);
			p->whole = (tenant != NULL);
			p->tenant = tenant ? MemoryContextStrdup(cache.cxt, tenant) : NULL;
			p->tenant_column = column ? MemoryContextStrdup(cache.cxt, column) : NULL;
		}
		lockbox_leave(&call);
		cache.copied = lockbox_database_copy(NULL, &cache.void_through);
	}
	cache.valid = true;
}

static ProtectedRel *
protected_rel(Oid relid)
{
	cache_check_generation();
	if (!cache.valid)
		load_protected();
	if (!cache.installed)
		return NULL;
	return hash_search(cache.protected, &relid, HASH_FIND, NULL);
}

/* Is relid a protected table of this database? */
bool
lockbox_is_protected(Oid relid)
{
	return protected_rel(relid) != NULL;
}

/* The open grants of user, as of this statement. */
static List *
current_grants_for(Oid user)
{

	/*
	 * The real clock, not the statement's start: a statement of a function
	 * or DO block that loops past the end of the window is refused.
	 */
	TimestampTz now = GetCurrentTimestamp();

	cache_check_generation();
	if (cache.grants_valid &&
		(cache.grants_user != user || now >= cache.grants_until))
	{
		MemoryContext old = MemoryContextSwitchTo(cache.cxt);

		list_free_deep(cache.grants);
		MemoryContextSwitchTo(old);
		cache.grants = NIL;
		cache.grants_valid = false;
		cache.grants_version++;
	}
	/* (whether this database is a copy, and what is void in it) */
	if (!cache.valid)
		load_protected();
	if (!cache.grants_valid && cache.copied)
	{
		/* a copied database not adopted: no request grants access */
		cache.grants_user = user;
		cache.grants_until = DT_NOEND;
		cache.grants_valid = true;
		cache.grants_version++;
	}
	if (!cache.grants_valid)
	{
		LockboxCall call;
		Oid			argtypes[3] = {REGROLEOID, TIMESTAMPTZOID, INT8OID};
		Datum		values[3] = {ObjectIdGetDatum(user), TimestampTzGetDatum(now),
		Int64GetDatum(cache.void_through)};
		TimestampTz until = DT_NOEND;

		static SPIPlanPtr plan = NULL;
		Snapshot	snap;
		int			ret;

		lockbox_enter_read(&call);

		/*
		 * Read with the latest snapshot, whatever the isolation level: a
		 * revocation committed after a repeatable-read transaction began
		 * must still end that transaction's access.
		 */
		lockbox_prepare(&plan,
						"SELECT t.relid, r.tenant, r.access, r.access_ends_at, r.id"
						"  FROM lockbox.request r,"
						"       LATERAL pg_catalog.unnest(r.tables) AS t(relid)"
						" WHERE r.requester OPERATOR(pg_catalog.=) $1"
						"   AND r.final_state IS NULL"
						"   AND r.state OPERATOR(pg_catalog.=) 'approved'"
						"   AND lockbox.request_state(r.state, r.deadline, r.access_ends_at,"
						"         EXISTS (SELECT 1 FROM lockbox.revocation v"
						"                  WHERE v.request_id OPERATOR(pg_catalog.=) r.id),"
						"         $2) OPERATOR(pg_catalog.=) 'approved'"
						"   AND r.id OPERATOR(pg_catalog.>) $3",
						3, argtypes);
		/*
		 * (During a parallel operation no new snapshot can be taken: the
		 * statement's own, which its leader's check read with the latest,
		 * stands in.)
		 */
		snap = RegisterSnapshot(IsInParallelMode() ? GetActiveSnapshot() :
								GetLatestSnapshot());
		ret = SPI_execute_snapshot(plan, values, NULL, snap, InvalidSnapshot,
								   true, false, 0);
		UnregisterSnapshot(snap);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read the lockbox grants");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	td = SPI_tuptable->tupdesc;
			bool		isnull;
			MemoryContext old = MemoryContextSwitchTo(cache.cxt);
			Grant	   *g = palloc(sizeof(Grant));
			TimestampTz ends;

			g->relid = DatumGetObjectId(SPI_getbinval(tup, td, 1, &isnull));
			g->tenant = SPI_getvalue(tup, td, 2);
			g->write = strcmp(SPI_getvalue(tup, td, 3), "write") == 0;
			ends = DatumGetTimestampTz(SPI_getbinval(tup, td, 4, &isnull));
			g->request_id = DatumGetInt64(SPI_getbinval(tup, td, 5, &isnull));
			if (ends < until)
				until = ends;
			cache.grants = lappend(cache.grants, g);
			MemoryContextSwitchTo(old);
		}
		lockbox_leave(&call);
		cache.grants_user = user;
		cache.grants_until = until;
		cache.grants_valid = true;
		cache.grants_version++;
	}
	return cache.grants;
}

/* The open grants of the current user, as of this statement. */
static List *
current_grants(void)
{
	return current_grants_for(GetUserId());
}

/* ---------------------------------------------------------------------
 * The policy functions
 * ---------------------------------------------------------------------
 */
static bool
cmd_is_write(FunctionCallInfo fcinfo, int argno)
{
	char		cmd = PG_GETARG_CHAR(argno);

	if (cmd != 'r' && cmd != 'w')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lockbox command must be 'r' or 'w'")));
	return cmd == 'w';
}

/*
 * lockbox.granted_keys(rel regclass, cmd "char", sample anyelement) ->
 * anyarray: the tenant keys the current user may read ('r') or write ('w')
 * in rel now, as values of the tenant column's type.
 */
Datum
lockbox_granted_keys(PG_FUNCTION_ARGS)
{
	Oid			relid;
	bool		write;
	Oid			keytype = get_fn_expr_argtype(fcinfo->flinfo, 2);
	List	   *grants;
	ListCell   *lc;
	Datum	   *keys;
	int			nkeys = 0;
	Oid			infunc;
	Oid			ioparam;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lockbox.granted_keys needs a relation and a command")));
	relid = PG_GETARG_OID(0);
	write = cmd_is_write(fcinfo, 1);
	if (!OidIsValid(keytype))
		elog(ERROR, "could not determine the tenant key type");

	grants = current_grants();

	/* the same answer as last time while the grants are the same */
	if (cache.key_arrays_version != cache.grants_version)
	{
		foreach(lc, cache.key_arrays)
			pfree(((KeyArray *) lfirst(lc))->keys);
		list_free_deep(cache.key_arrays);
		cache.key_arrays = NIL;
		cache.key_arrays_version = cache.grants_version;
	}
	foreach(lc, cache.key_arrays)
	{
		KeyArray   *ka = (KeyArray *) lfirst(lc);

		if (ka->relid == relid && ka->write == write && ka->keytype == keytype)
			PG_RETURN_DATUM(datumCopy(PointerGetDatum(ka->keys), false, -1));
	}

	keys = palloc(sizeof(Datum) * Max(1, list_length(grants)));
	getTypeInputInfo(keytype, &infunc, &ioparam);
	foreach(lc, grants)
	{
		Grant	   *g = (Grant *) lfirst(lc);

		if (g->relid != relid || (write && !g->write))
			continue;
		/* keys were checked against the column's type when requested */
		keys[nkeys++] = OidInputFunctionCall(infunc, g->tenant, ioparam, -1);
	}
	get_typlenbyvalalign(keytype, &typlen, &typbyval, &typalign);
	{
		ArrayType  *arr = construct_array(keys, nkeys, keytype, typlen,
										  typbyval, typalign);
		MemoryContext old = MemoryContextSwitchTo(cache.cxt);
		KeyArray   *ka = palloc(sizeof(KeyArray));

		ka->relid = relid;
		ka->write = write;
		ka->keytype = keytype;
		ka->keys = (ArrayType *) datumCopy(PointerGetDatum(arr), false, -1);
		cache.key_arrays = lappend(cache.key_arrays, ka);
		MemoryContextSwitchTo(old);
		PG_RETURN_ARRAYTYPE_P(arr);
	}
}

/*
 * lockbox.granted_table(rel regclass, cmd "char") -> boolean: may the
 * current user read or write rel, a table of a single tenant, now?
 */
Datum
lockbox_granted_table(PG_FUNCTION_ARGS)
{
	Oid			relid;
	bool		write;
	ListCell   *lc;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lockbox.granted_table needs a relation and a command")));
	relid = PG_GETARG_OID(0);
	write = cmd_is_write(fcinfo, 1);
	foreach(lc, current_grants())
	{
		Grant	   *g = (Grant *) lfirst(lc);

		if (g->relid == relid && (g->write || !write))
			PG_RETURN_BOOL(true);
	}
	PG_RETURN_BOOL(false);
}

/* ---------------------------------------------------------------------
 * Refusing statements
 * ---------------------------------------------------------------------
 */
/*
 * Is user an engineer?  Any membership in lockbox_engineer counts, inherited
 * or not: a NOINHERIT member is an engineer the policies cannot see, and is
 * refused (see refuse_noinherit).  Superusers are no engineers here: nothing
 * restricts them, which lockbox.posture reports.
 */
static RoleEntry *
role_entry(Oid user)
{
	RoleEntry  *e;
	Oid			engineer;
	RoleEntry	result;
	uint64		invals = role_invals;

	if (role_cache != NULL &&
		(e = hash_search(role_cache, &user, HASH_FIND, NULL)) != NULL)
		return e;

	engineer = get_role_oid("lockbox_engineer", true);
	result.role = user;
	result.engineer = OidIsValid(engineer) && !superuser_arg(user) &&
		is_member_of_role_nosuper(user, engineer);
	result.inherits = OidIsValid(engineer) && has_privs_of_role(user, engineer);
	result.bypassrls = has_bypassrls_privilege(user);

	/* keep the answer unless roles changed while it was looked up */
	if (invals == role_invals)
	{
		if (role_cache == NULL)
		{
			HASHCTL		ctl;

			ctl.keysize = sizeof(Oid);
			ctl.entrysize = sizeof(RoleEntry);
			role_cache = hash_create("lockbox engineers", 16, &ctl,
									 HASH_ELEM | HASH_BLOBS);
		}
		e = hash_search(role_cache, &user, HASH_ENTER, NULL);
		*e = result;
		return e;
	}
	e = palloc(sizeof(RoleEntry));
	*e = result;
	return e;
}

static bool
is_engineer(Oid user)
{
	return role_entry(user)->engineer;
}

/* Roles or memberships changed: forget who is an engineer. */
void
lockbox_enforce_role_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	role_invals++;
	if (role_cache != NULL)
	{
		hash_destroy(role_cache);
		role_cache = NULL;
	}
}

/*
 * What the access log keeps of the statement: its text; when values are
 * bound to its parameters (EXECUTE of a prepared statement, the extended
 * protocol), the values; and when it runs inside another statement the
 * client sent (a function, a DO block, EXECUTE, a trigger), that statement.
 * The text alone would not tell what an UPDATE with parameters wrote, or
 * which call of a function read the rows.  (The variables of a PL/pgSQL
 * statement are not bound values: the client's statement shows the call.)
 * Three fields, never joined into one text: the engineer writes the text
 * and the values, and until 1.6, when they were appended to the text as
 * comment lines, a text or a value holding such a line passed for them.
 * lockbox.access_log_max_query bounds each.
 */
static const LockboxQuery *
recorded_query(void)
{
	if (stmt_query_made)
		return &stmt_query;
	stmt_query.text = stmt_source;
	stmt_query.parameters = NULL;
	stmt_query.within = NULL;
	if (debug_query_string != NULL && debug_query_string != stmt_source &&
		strcmp(debug_query_string, stmt_source) != 0)
		stmt_query.within = debug_query_string;
	if (stmt_params != NULL && stmt_params->numParams > 0 &&
		stmt_params->paramFetch == NULL && !IsAbortedTransactionBlockState())
		stmt_query.parameters = BuildParamLogString(stmt_params, NULL, -1);
	stmt_query_made = true;
	return &stmt_query;
}

/* The statement being checked, for the access log. */
static void
set_statement(const char *command, const char *source, ParamListInfo params)
{
	stmt_command = command;
	stmt_source = source ? source : "";
	stmt_params = params;
	stmt_query_made = false;
}

/* The statement being checked: one recorded before (an open statement's). */
static void
set_recorded_statement(const char *command, const LockboxQuery *query)
{
	set_statement(command, query->text, NULL);
	stmt_query = *query;
	stmt_query_made = true;
}

static char *
pstrdup_or_null(const char *s)
{
	return s ? pstrdup(s) : NULL;
}

static void
free_open_statement(OpenStatement *os)
{
	for (int i = 0; i < os->n; i++)
		pfree(os->requests[i]);
	pfree(os->requests);
	pfree(os->nrequests);
	pfree(os->relids);
	pfree(os->write);
	pfree((char *) os->query.text);
	if (os->query.parameters)
		pfree((char *) os->query.parameters);
	if (os->query.within)
		pfree((char *) os->query.within);
	pfree(os);
}

/*
 * Record a refused statement in the access log, under every open request of
 * the engineer's that covers the table (the attempt was made under them),
 * and count it.  reason is the refusal's message.
 */
static void
record_refusal(Oid relid, const char *reason)
{
	ListCell   *lc;
	int64	   *requests;
	int			n = 0;
	List	   *grants = current_grants();

	lockbox_count(LB_REFUSALS);
	requests = palloc(sizeof(int64) * Max(1, list_length(grants)));
	foreach(lc, grants)
	{
		Grant	   *g = (Grant *) lfirst(lc);
		bool		dup = false;

		if (g->relid != relid)
			continue;
		for (int i = 0; i < n && !dup; i++)
			dup = (requests[i] == g->request_id);
		if (!dup)
			requests[n++] = g->request_id;
	}
	lockbox_access_refused(stmt_command, recorded_query(), relid, n, requests,
						   reason);
	/* (the statements around this one see the refusal fail them too) */
	run_failure_recorded = true;
}

static void
refuse_noinherit(Oid user, Oid relid)
{
	char	   *msg;

	if (role_entry(user)->inherits)
		return;
	msg = psprintf("lockbox cannot restrict role \"%s\" on protected table \"%s\"",
				   lockbox_role_name(user), lockbox_relname(relid));
	record_refusal(relid, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("Role \"%s\" is a member of lockbox_engineer without inheriting its privileges, so lockbox's policies cannot apply to it.",
					   lockbox_role_name(user)),
			 errhint("Run ALTER ROLE %s INHERIT.",
					 quote_identifier(lockbox_role_name(user)))));
}

static void
refuse_no_access(Oid relid, bool write, bool has_read)
{
	char	   *relname = lockbox_relname(relid);
	char	   *msg;

	if (write && has_read)
	{
		msg = psprintf("lockbox access to table \"%s\" is read-only", relname);
		record_refusal(relid, msg);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s", msg),
				 errdetail("Your approved lockbox requests for this table grant read access only."),
				 errhint("Ask for write access with lockbox_request(tenant, reason, tables => '{%s}', access => 'write').",
						 relname)));
	}
	if (cache.copied)
	{
		msg = psprintf("no lockbox access to table \"%s\": database \"%s\" is a copy of another database",
					   relname, get_database_name(MyDatabaseId));
		record_refusal(relid, msg);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s", msg),
				 errdetail("Lockbox's requests here were copied with the database (CREATE DATABASE ... TEMPLATE); the tenants approved them for the database copied, so none grants access here."),
				 errhint("A superuser or the extension owner runs SELECT lockbox_adopt_database() in this database; then file a new request.")));
	}
	msg = psprintf("no approved lockbox access to table \"%s\"", relname);
	record_refusal(relid, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("Table \"%s\" is protected by lockbox and no approved, unexpired request of yours covers it.",
					   relname),
			 errhint("Ask for access with lockbox_request(tenant, reason, tables => '{%s}').",
					 relname)));
}

/*
 * An engineer's access is the engineer's own: a SECURITY DEFINER function
 * an engineer owns runs as that engineer, under the engineer's open
 * requests, for whoever calls it.  Another role calling it -- another
 * engineer, a reviewer -- would read or write what the tenant let only that
 * engineer reach: refused, unless the role the session acts as is the
 * engineer or has the engineer's privileges (it could SET ROLE anyway).
 */
static void
refuse_borrowed(Oid relid)
{
	Oid			user = GetUserId();
	Oid			outer = GetOuterUserId();
	char	   *msg;

	if (user == outer || has_privs_of_role(outer, user))
		return;
	msg = psprintf("role \"%s\" cannot use the lockbox access of engineer \"%s\" to table \"%s\"",
				   lockbox_role_name(outer), lockbox_role_name(user),
				   lockbox_relname(relid));
	record_refusal(relid, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("The statement runs as engineer \"%s\" (in a SECURITY DEFINER function the engineer owns), called by role \"%s\": the tenant approved access for the engineer alone.",
					   lockbox_role_name(user), lockbox_role_name(outer)),
			 errhint("Ask for access of your own with lockbox_request(tenant, reason, tables => '{%s}').",
					 lockbox_relname(relid))));
}

/*
 * May the current user (an engineer) run a command of this kind on relid?
 * Fills item with every open request that allows it.
 */
static void
check_access(Oid relid, bool write, LockboxAccessItem *item)
{
	ListCell   *lc;
	bool		has_read = false;
	List	   *grants;

	refuse_noinherit(GetUserId(), relid);
	refuse_borrowed(relid);
	grants = current_grants();
	item->relid = relid;
	item->nrequests = 0;
	item->requests = palloc(sizeof(int64) * Max(1, list_length(grants)));
	foreach(lc, grants)
	{
		Grant	   *g = (Grant *) lfirst(lc);
		bool		dup = false;

		if (g->relid != relid)
			continue;
		if (!g->write && write)
		{
			has_read = true;
			continue;
		}
		for (int i = 0; i < item->nrequests && !dup; i++)
			dup = (item->requests[i] == g->request_id);
		if (!dup)
			item->requests[item->nrequests++] = g->request_id;
	}
	if (item->nrequests == 0)
		refuse_no_access(relid, write, has_read);
}

static const char *
command_name(CmdType operation)
{
	switch (operation)
	{
		case CMD_SELECT:
			return "SELECT";
		case CMD_INSERT:
			return "INSERT";
		case CMD_UPDATE:
			return "UPDATE";
		case CMD_DELETE:
			return "DELETE";
		case CMD_MERGE:
			return "MERGE";
		default:
			return "OTHER";
	}
}

/* the direct parents of relid (partitioning or inheritance) */
static List *
inheritance_parents(Oid relid)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *parents = NIL;

	rel = table_open(InheritsRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, InheritsRelidSeqnoIndexId, true, NULL, 1, &key);
	while ((tup = systable_getnext(scan)) != NULL)
		parents = lappend_oid(parents, ((Form_pg_inherits) GETSTRUCT(tup))->inhparent);
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return parents;
}

void
lockbox_enforce_relcache_inval(Datum arg, Oid relid)
{
	/* (the caches are dropped at their next use, not in the middle of one) */
	if (!OidIsValid(relid) || !OidIsValid(watched_relid) || relid == watched_relid)
		watched_invals++;
	ancestor_invals++;
	if (ancestor_cache != NULL)
	{
		hash_destroy(ancestor_cache);
		ancestor_cache = NULL;
	}
}

/* relid's ancestors, nearest first, from the cache or pg_inherits */
static AncestorEntry *
ancestors_of(Oid relid)
{
	AncestorEntry *e;
	Oid			owner;
	List	   *todo;
	List	   *seen = NIL;
	uint64		invals = ancestor_invals;
	MemoryContext old;
	ListCell   *lc;
	int			i = 0;

	if (ancestor_cache != NULL &&
		(e = hash_search(ancestor_cache, &relid, HASH_FIND, NULL)) != NULL)
		return e;

	{
		HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for relation %u", relid);
		owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
		ReleaseSysCache(tup);
	}
	todo = inheritance_parents(relid);
	while (todo != NIL)
	{
		Oid			parent = linitial_oid(todo);

		todo = list_delete_first(todo);
		if (list_member_oid(seen, parent))
			continue;
		seen = lappend_oid(seen, parent);
		todo = list_concat(todo, inheritance_parents(parent));
	}

	if (ancestor_cxt == NULL)
		ancestor_cxt = AllocSetContextCreate(TopMemoryContext,
											 "lockbox ancestors",
											 ALLOCSET_SMALL_SIZES);
	if (ancestor_cache == NULL)
	{
		HASHCTL		ctl;

		MemoryContextReset(ancestor_cxt);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(AncestorEntry);
		ctl.hcxt = ancestor_cxt;
		ancestor_cache = hash_create("lockbox ancestors", 64, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	old = MemoryContextSwitchTo(ancestor_cxt);
	e = hash_search(ancestor_cache, &relid, HASH_ENTER, NULL);
	e->owner = owner;
	e->n = list_length(seen);
	e->ancestors = e->n > 0 ? palloc(sizeof(Oid) * e->n) : NULL;
	foreach(lc, seen)
		e->ancestors[i++] = lfirst_oid(lc);
	MemoryContextSwitchTo(old);

	/* an invalidation arrived while reading: answer, but do not keep it */
	if (invals != ancestor_invals)
	{
		AncestorEntry *copy = palloc(sizeof(AncestorEntry));

		*copy = *e;
		copy->ancestors = e->n > 0 ? palloc(sizeof(Oid) * e->n) : NULL;
		if (e->n > 0)
			memcpy(copy->ancestors, e->ancestors, sizeof(Oid) * e->n);
		lockbox_enforce_relcache_inval((Datum) 0, InvalidOid);
		return copy;
	}
	return e;
}

/* A protected table relid descends from (partition or child), if any. */
static Oid
protected_ancestor(Oid relid)
{
	AncestorEntry *e = ancestors_of(relid);
	int			n = e->n;
	Oid		   *ancestors;

	if (n == 0)
		return InvalidOid;
	/* protected_rel may load the cache, and an invalidation drop e */
	ancestors = palloc(sizeof(Oid) * n);
	memcpy(ancestors, e->ancestors, sizeof(Oid) * n);
	for (int i = 0; i < n; i++)
	{
		if (protected_rel(ancestors[i]) != NULL)
			return ancestors[i];
	}
	return InvalidOid;
}

/* The protected table whose rows relid holds: itself or an ancestor. */
static Oid
protected_target(Oid relid)
{
	if (protected_rel(relid) != NULL)
		return relid;
	return protected_ancestor(relid);
}

static void
refuse_part_of(Oid relid, Oid protected)
{
	char	   *msg = psprintf("table \"%s\" is part of lockbox-protected table \"%s\"",
							   lockbox_relname(relid), lockbox_relname(protected));

	record_refusal(protected, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("Its rows are protected by lockbox through table \"%s\"; engineers reach them only through that table.",
					   lockbox_relname(protected)),
			 errhint("Ask for access with lockbox_request(tenant, reason, tables => '{%s}') and query that table.",
					 lockbox_relname(protected))));
}

static void
refuse_through_parent(Oid relid, Oid protected)
{
	char	   *msg = psprintf("the statement reaches lockbox-protected table \"%s\" through a table it inherits from",
							   lockbox_relname(protected));

	record_refusal(protected, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 relid == protected ?
			 errdetail("The policies of protected table \"%s\" do not apply when a table it inherits from is queried.",
					   lockbox_relname(protected)) :
			 errdetail("Table \"%s\" holds rows of protected table \"%s\", whose policies do not apply when a parent table is queried.",
					   lockbox_relname(relid), lockbox_relname(protected)),
			 errhint("Query table \"%s\" itself, or add ONLY to the parent table.",
					 lockbox_relname(protected))));
}

/*
 * A view or rule owned by a role lockbox does not restrict reads a protected
 * table with that role's privileges: the lockbox policies, which apply to
 * engineers, do not apply to it.
 */
static void
refuse_through_owner(Oid relid, Oid protected, Oid owner)
{
	char	   *msg = psprintf("the statement reaches lockbox-protected table \"%s\" as role \"%s\"",
							   lockbox_relname(protected), lockbox_role_name(owner));

	record_refusal(protected, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("A view or rule owned by role \"%s\" reads \"%s\" with that role's privileges, which lockbox's policies do not restrict.",
					   lockbox_role_name(owner), lockbox_relname(relid)),
			 errhint("Query table \"%s\" itself under an approved lockbox request.",
					 lockbox_relname(protected))));
}

/* Has reader the privileges of relid's owner?  (The owner from the cache.) */
static bool
owns(Oid reader, Oid relid)
{
	AncestorEntry *e = ancestors_of(relid);

	return reader == e->owner || has_privs_of_role(reader, e->owner);
}

/*
 * Row-level security does not restrict a role with BYPASSRLS, or the table's
 * owner (or a role that has the owner's privileges): lockbox_request refuses
 * such engineers, and this catches one that became so later, or a view
 * owner that is.
 */
static void
refuse_unrestricted(Oid reader, Oid target)
{
	char	   *msg;

	if (!role_entry(reader)->bypassrls && !owns(reader, target))
		return;
	msg = psprintf("role \"%s\" is not restricted by row-level security on lockbox-protected table \"%s\"",
				   lockbox_role_name(reader), lockbox_relname(target));
	record_refusal(target, msg);
	ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s", msg),
				 errdetail("The role owns the table, has its owner's privileges, or has BYPASSRLS, so lockbox's policies do not apply to it."),
				 errhint("Remove the ownership or BYPASSRLS from engineers; lockbox.posture lists them.")));
}

/* What EXPLAIN would show: estimates, or row counts of a run. */
static int	explain_shows_numbers = 0;

static void
refuse_explain(Oid relid)
{
	char	   *msg = psprintf("EXPLAIN with estimates or ANALYZE is not allowed on lockbox-protected table \"%s\"",
							   lockbox_relname(relid));

	record_refusal(relid, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("Estimates come from statistics of every tenant's rows, ANALYZE counts the rows the policies filter out, and BUFFERS the pages planning read, every tenant's index entries among them."),
			 errhint("Use EXPLAIN (COSTS OFF) without ANALYZE or BUFFERS.")));
}

/* ---------------------------------------------------------------------
 * Referential actions
 * ---------------------------------------------------------------------
 */

/*
 * A foreign key's ON DELETE / ON UPDATE action (CASCADE, SET NULL, SET
 * DEFAULT) changes the referencing rows as the referencing table's owner,
 * with row-level security off (ri_triggers.c): neither the executor hook nor
 * the policies see it.  So before an engineer's statement deletes or updates
 * rows, every chain of such actions it can set off is followed, through
 * tables of any kind, to the protected tables it reaches.
 *
 * A step of a chain: rows of a relation that are deleted, or updated in some
 * columns, and the column of that relation that holds the tenant key of the
 * rows the statement itself changes, as far as the keys carry it.
 */
typedef struct CascadeStep
{
	Oid			relid;
	bool		delete;			/* deleted, else updated */
	Bitmapset  *cols;			/* updated: these attnums (NULL: any) */
	AttrNumber	tracked;		/* the tenant key's column, or 0 */
	bool		moved;			/* deleted: by an update moving them to
								 * another partition */
	List	   *path;			/* of CascadeHop: the actions on the way */
} CascadeStep;

/* an action the change of rows of "referenced" fires */
typedef struct CascadeHop
{
	Oid			conid;			/* the foreign key */
	Oid			conrelid;		/* its table */
	Oid			referenced;
	Oid			referencing;	/* the constraint's table, or a partition */
	bool		on_delete;		/* fired by a delete, else by an update */
	char		action;			/* 'c', 'n' or 'd', as confdeltype */
	AttrNumber	tracked;		/* of referencing: as CascadeStep */
	bool		moved;			/* fired by rows moved out of referenced */
	List	   *path;			/* of CascadeHop: the actions before it */
} CascadeHop;

typedef bool (*CascadeVisit) (const CascadeHop *hop, void *arg);

/* relation from's column attnum, in relation to (found by name), or 0 */
static AttrNumber
same_column(Oid from, AttrNumber attnum, Oid to)
{
	char	   *name;

	if (from == to || attnum <= 0)
		return attnum;
	name = get_attname(from, attnum, true);
	return name ? get_attnum(to, name) : InvalidAttrNumber;
}

/*
 * Does equality on the column mean the same value?  Not with a
 * nondeterministic collation: 'ACME' would match 'acme', another tenant.
 */
static bool
exact_column(Oid relid, AttrNumber attnum)
{
	Oid			typid;
	int32		typmod;
	Oid			collation;

	get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collation);
	return !OidIsValid(collation) || get_collation_isdeterministic(collation);
}

static Bitmapset *
same_columns(Oid from, Bitmapset *cols, Oid to)
{
	Bitmapset  *result = NULL;
	int			attnum = -1;

	if (from == to || cols == NULL)
		return cols;
	while ((attnum = bms_next_member(cols, attnum)) >= 0)
	{
		AttrNumber	mapped = same_column(from, attnum, to);

		if (mapped > 0)
			result = bms_add_member(result, mapped);
	}
	/* (nothing found by name: any column, to be safe) */
	return result;
}

static void
cascade_push(List **todo, List **seen, Oid relid, bool delete,
			 Bitmapset *cols, AttrNumber tracked, bool moved, List *path)
{
	ListCell   *lc;
	CascadeStep *step;

	foreach(lc, *seen)
	{
		step = (CascadeStep *) lfirst(lc);
		if (step->relid == relid && step->delete == delete &&
			step->tracked == tracked && step->moved == moved &&
			bms_equal(step->cols, cols))
			return;
	}
	step = palloc(sizeof(CascadeStep));
	step->relid = relid;
	step->delete = delete;
	step->cols = cols;
	step->tracked = tracked;
	step->moved = moved;
	step->path = path;
	*seen = lappend(*seen, step);
	*todo = lappend(*todo, step);
}

/*
 * May an update of relid change any column, whichever it names?  A BEFORE
 * UPDATE row trigger may change any column of the row, and a stored
 * generated column changes with the columns it is made of.  (The one rule
 * of the statements' check and of lockbox.posture, which walk the same way.)
 */
static bool
update_changes_any_column(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	bool		any;

	any = (rel->trigdesc != NULL && rel->trigdesc->trig_update_before_row) ||
		(rel->rd_att->constr != NULL && rel->rd_att->constr->has_generated_stored);
	table_close(rel, AccessShareLock);
	return any;
}

/* May an update of cols (of partitioned table relid; NULL: any) change its partition key? */
static bool
partition_key_changes(Oid relid, Bitmapset *cols)
{
	Relation	rel;
	Bitmapset  *offset = NULL;
	int			attnum = -1;
	bool		changes;

	if (cols == NULL)
		return true;
	while ((attnum = bms_next_member(cols, attnum)) >= 0)
		offset = bms_add_member(offset, attnum - FirstLowInvalidHeapAttributeNumber);
	rel = table_open(relid, AccessShareLock);
	changes = has_partition_attrs(rel, offset, NULL);
	table_close(rel, AccessShareLock);
	return changes;
}

/*
 * The start of chains: rows of relid deleted, or updated in cols (NULL: any
 * column), and with inh the rows of its partitions and children too.
 *
 * An update of a partitioned table moves a row whose partition key it
 * changes to another partition: a delete from the partition the row was
 * in, which fires the ON DELETE actions of the foreign keys referencing
 * that partition itself (those referencing a partitioned table fire their
 * ON UPDATE action instead, on the partitioned table).
 */
static void
cascade_start(List **todo, List **seen, Oid relid, bool inh, bool delete,
			  Bitmapset *cols, AttrNumber tracked, List *path)
{
	List	   *rels;
	List	   *moving = NIL;
	ListCell   *lc;

	if (!inh)
	{
		cascade_push(todo, seen, relid, delete, cols, tracked, false, path);
		return;
	}
	rels = find_all_inheritors(relid, NoLock, NULL);
	foreach(lc, rels)
	{
		Oid			rel = lfirst_oid(lc);

		cascade_push(todo, seen, rel, delete, same_columns(relid, cols, rel),
					 same_column(relid, tracked, rel), false, path);
	}
	if (delete || get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		return;
	/* the partitioned tables whose partition key the update may change */
	foreach(lc, rels)
	{
		Oid			rel = lfirst_oid(lc);

		if (get_rel_relkind(rel) == RELKIND_PARTITIONED_TABLE &&
			partition_key_changes(rel, same_columns(relid, cols, rel)))
			moving = lappend_oid(moving, rel);
	}
	foreach(lc, rels)
	{
		Oid			leaf = lfirst_oid(lc);
		bool		moves;
		ListCell   *lc2;

		if (get_rel_relkind(leaf) == RELKIND_PARTITIONED_TABLE || leaf == relid)
			continue;
		/* (a BEFORE UPDATE trigger's change of any key moves the row too) */
		moves = update_changes_any_column(leaf);
		foreach(lc2, get_partition_ancestors(leaf))
		{
			Oid			ancestor = lfirst_oid(lc2);

			moves = moves || list_member_oid(moving, ancestor);
			if (ancestor == relid)
				break;
		}
		if (moves)
			cascade_push(todo, seen, leaf, true, NULL,
						 same_column(relid, tracked, leaf), true, path);
	}
}

/*
 * The actions the steps in todo fire, and the ones those fire in turn: each
 * is passed to visit, which refuses (ereport) or returns false to stop the
 * walk (then so does this).  The actions are read from the RI triggers on
 * the changed relations, which are what fires them, whether enabled or not.
 */
static bool
cascade_walk(List *todo, CascadeVisit visit, void *arg)
{
	List	   *seen = list_copy(todo);

	while (todo != NIL)
	{
		CascadeStep *step = (CascadeStep *) linitial(todo);
		Relation	trigrel;
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;
		List	   *hops = NIL;
		ListCell   *lc;

		todo = list_delete_first(todo);

		/* an update of such a table may change any referenced key */
		if (!step->delete && step->cols != NULL &&
			update_changes_any_column(step->relid))
			step->cols = NULL;

		/* the actions this step fires (visited after the scan) */
		trigrel = table_open(TriggerRelationId, AccessShareLock);
		ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
					F_OIDEQ, ObjectIdGetDatum(step->relid));
		scan = systable_beginscan(trigrel, TriggerRelidNameIndexId, true,
								  NULL, 1, &key);
		while ((tup = systable_getnext(scan)) != NULL)
		{
			Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);
			bool		on_delete;
			char		action;
			CascadeHop *hop;

			switch (trig->tgfoid)
			{
				case F_RI_FKEY_CASCADE_DEL:
					on_delete = true, action = 'c';
					break;
				case F_RI_FKEY_SETNULL_DEL:
					on_delete = true, action = 'n';
					break;
				case F_RI_FKEY_SETDEFAULT_DEL:
					on_delete = true, action = 'd';
					break;
				case F_RI_FKEY_CASCADE_UPD:
					on_delete = false, action = 'c';
					break;
				case F_RI_FKEY_SETNULL_UPD:
					on_delete = false, action = 'n';
					break;
				case F_RI_FKEY_SETDEFAULT_UPD:
					on_delete = false, action = 'd';
					break;
				default:
					continue;	/* NO ACTION, RESTRICT, checks, user triggers */
			}
			if (on_delete != step->delete || !OidIsValid(trig->tgconstraint))
				continue;
			/* a moved row: the partitioned table's keys fire as an update */
			if (step->moved && OidIsValid(trig->tgparentid))
				continue;
			hop = palloc0(sizeof(CascadeHop));
			hop->conid = trig->tgconstraint;
			hop->referenced = step->relid;
			hop->on_delete = on_delete;
			hop->action = action;
			hop->moved = step->moved;
			hop->path = step->path;
			hops = lappend(hops, hop);
		}
		systable_endscan(scan);
		table_close(trigrel, AccessShareLock);

		foreach(lc, hops)
		{
			CascadeHop *hop = (CascadeHop *) lfirst(lc);
			HeapTuple	contup;
			int			nkeys;
			AttrNumber	conkey[INDEX_MAX_KEYS];
			AttrNumber	confkey[INDEX_MAX_KEYS];
			Oid			pf_eq[INDEX_MAX_KEYS];
			Oid			pp_eq[INDEX_MAX_KEYS];
			Oid			ff_eq[INDEX_MAX_KEYS];
			int			nsetcols = 0;
			AttrNumber	setcols[INDEX_MAX_KEYS];
			bool		fires;
			bool		next_delete;
			Bitmapset  *next_cols = NULL;
			AttrNumber	next_tracked = InvalidAttrNumber;
			List	   *rels;
			ListCell   *lc2;
			bool		partitioned;

			contup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(hop->conid));
			if (!HeapTupleIsValid(contup))
				continue;
			hop->conrelid = ((Form_pg_constraint) GETSTRUCT(contup))->conrelid;
			DeconstructFkConstraintRow(contup, &nkeys, conkey, confkey,
									   pf_eq, pp_eq, ff_eq, &nsetcols, setcols);
			ReleaseSysCache(contup);

			/* an update fires it only when it changes a referenced column */
			fires = hop->on_delete || step->cols == NULL;
			for (int i = 0; i < nkeys && !fires; i++)
				fires = bms_is_member(confkey[i], step->cols);
			if (!fires)
				continue;

			/* what it does to the referencing rows */
			next_delete = hop->on_delete && hop->action == 'c';
			if (!next_delete)
			{
				/* ON DELETE SET NULL / DEFAULT (col, ...) sets only those */
				if (hop->on_delete && hop->action != 'c' && nsetcols > 0)
					for (int i = 0; i < nsetcols; i++)
						next_cols = bms_add_member(next_cols, setcols[i]);
				else
					for (int i = 0; i < nkeys; i++)
						next_cols = bms_add_member(next_cols, conkey[i]);
			}

			/*
			 * The referencing rows are those whose key equals the changed
			 * rows' old key: the referencing column paired with the tenant
			 * key's column holds the same tenants -- unless the action sets
			 * it to null or its default, which may be another tenant's.
			 */
			for (int i = 0; i < nkeys; i++)
			{
				if (step->tracked > 0 && confkey[i] == step->tracked &&
					(hop->action == 'c' || !bms_is_member(conkey[i], next_cols)) &&
					exact_column(step->relid, confkey[i]) &&
					exact_column(hop->conrelid, conkey[i]))
					next_tracked = conkey[i];
			}

			/*
			 * A partitioned table's action changes rows of its partitions
			 * (and may move them between partitions: cascade_start)
			 */
			partitioned = get_rel_relkind(hop->conrelid) == RELKIND_PARTITIONED_TABLE;
			if (partitioned)
				rels = find_all_inheritors(hop->conrelid, NoLock, NULL);
			else
				rels = list_make1_oid(hop->conrelid);
			foreach(lc2, rels)
			{
				Oid			rel = lfirst_oid(lc2);

				hop->referencing = rel;
				hop->tracked = same_column(hop->conrelid, next_tracked, rel);
				if (!visit(hop, arg))
					return false;
			}
			cascade_start(&todo, &seen, hop->conrelid, partitioned,
						  next_delete, next_cols, next_tracked,
						  lappend(list_copy(hop->path),
								  memcpy(palloc(sizeof(CascadeHop)), hop,
										 sizeof(CascadeHop))));
		}
	}
	return true;
}

/* the words of an action, for messages */
static const char *
cascade_action_name(const CascadeHop *hop)
{
	const char *action = hop->action == 'c' ? "CASCADE" :
		hop->action == 'n' ? "SET NULL" : "SET DEFAULT";

	return psprintf("ON %s %s", hop->on_delete ? "DELETE" : "UPDATE", action);
}

/*
 * lockbox_request: the first protected table outside tables (a write
 * request's) that writes into one of them reach through referential
 * actions.  Fills from (the request's table), reached and hop's constraint
 * and tables, and returns false when there is none.
 */
typedef struct CascadeCover
{
	const Oid  *tables;
	int			ntables;
	Oid			reached;
	CascadeHop	hop;
} CascadeCover;

static bool
cover_visit(const CascadeHop *hop, void *arg)
{
	CascadeCover *cc = (CascadeCover *) arg;
	Oid			target = protected_target(hop->referencing);

	if (!OidIsValid(target))
		return true;
	for (int i = 0; i < cc->ntables; i++)
	{
		if (cc->tables[i] == target)
			return true;
	}
	cc->reached = target;
	cc->hop = *hop;
	return false;
}

bool
lockbox_cascade_uncovered(const Oid *tables, int ntables, Oid *from,
						  Oid *reached, Oid *conid, Oid *conrelid,
						  Oid *referenced)
{
	CascadeCover cc;

	cc.tables = tables;
	cc.ntables = ntables;
	for (int i = 0; i < ntables; i++)
	{
		List	   *todo = NIL;
		List	   *seen = NIL;

		/* a write request deletes, and updates any column */
		cascade_start(&todo, &seen, tables[i], true, true, NULL, 0, NIL);
		cascade_start(&todo, &seen, tables[i], true, false, NULL, 0, NIL);
		if (!cascade_walk(todo, cover_visit, &cc))
		{
			*from = tables[i];
			*reached = cc.reached;
			*conid = cc.hop.conid;
			*conrelid = cc.hop.conrelid;
			*referenced = cc.hop.referenced;
			return true;
		}
	}
	return false;
}

/*
 * lockbox.cascade_reach(rel, del, cols): the protected relations (protected
 * tables, their partitions and children) that a delete from rel, or an
 * update of its columns cols (NULL: any), with its partitions and children,
 * reaches through referential actions, each once with the shortest chain of
 * keys.  lockbox.posture's cascade_into_protected: the walk of the
 * statements' check, so that the two follow the same rule.
 */
typedef struct CascadeReach
{
	List	   *reached;
	ReturnSetInfo *rsinfo;
} CascadeReach;

static char *
cascade_hop_text(const CascadeHop *hop)
{
	return psprintf("foreign key %s of %s (%s%s%s)",
					quote_identifier(get_constraint_name(hop->conid)),
					DatumGetCString(DirectFunctionCall1(regclassout,
														ObjectIdGetDatum(hop->conrelid))),
					cascade_action_name(hop),
					hop->moved ? ", as rows move out of partition " : "",
					hop->moved ? DatumGetCString(DirectFunctionCall1(regclassout,
																	 ObjectIdGetDatum(hop->referenced))) : "");
}

static bool
reach_visit(const CascadeHop *hop, void *arg)
{
	CascadeReach *cr = (CascadeReach *) arg;
	StringInfoData steps;
	ListCell   *lc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (!OidIsValid(protected_target(hop->referencing)) ||
		list_member_oid(cr->reached, hop->referencing))
		return true;
	cr->reached = lappend_oid(cr->reached, hop->referencing);
	initStringInfo(&steps);
	foreach(lc, hop->path)
		appendStringInfo(&steps, "%s, then ",
						 cascade_hop_text((CascadeHop *) lfirst(lc)));
	appendStringInfoString(&steps, cascade_hop_text(hop));
	values[0] = ObjectIdGetDatum(hop->referencing);
	values[1] = CStringGetTextDatum(steps.data);
	tuplestore_putvalues(cr->rsinfo->setResult, cr->rsinfo->setDesc,
						 values, nulls);
	return true;
}

Datum
lockbox_cascade_reach(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_ARGISNULL(0) ? InvalidOid : PG_GETARG_OID(0);
	bool		delete = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	Bitmapset  *cols = NULL;
	List	   *todo = NIL;
	List	   *seen = NIL;
	CascadeReach cr;

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) ||
		!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		PG_RETURN_VOID();
	if (!delete && !PG_ARGISNULL(2))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(2);
		Datum	   *elems;
		bool	   *elnulls;
		int			n;

		deconstruct_array(arr, INT2OID, sizeof(int16), true, TYPALIGN_SHORT,
						  &elems, &elnulls, &n);
		for (int i = 0; i < n; i++)
		{
			if (!elnulls[i] && DatumGetInt16(elems[i]) > 0)
				cols = bms_add_member(cols, DatumGetInt16(elems[i]));
		}
		if (cols == NULL)
			PG_RETURN_VOID();	/* no column updated: nothing fires */
	}
	cr.reached = NIL;
	cr.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	cascade_start(&todo, &seen, relid, true, delete, cols, 0, NIL);
	(void) cascade_walk(todo, reach_visit, &cr);
	PG_RETURN_VOID();
}

/*
 * An engineer's statement changes rows of start: the actions it fires may
 * change rows of a protected table only where the statement could change
 * them itself -- the rows of tenants it may write.  That holds when the
 * protected table belongs wholly to one tenant the engineer may write, or
 * when every key on the way carries the tenant key from protected table
 * start (whose changed rows the policies keep to the tenants the engineer
 * may write there) to the protected table's tenant column, and the engineer
 * may write those tenants' rows there too.  Anything else is refused: the
 * action would run past the policies.
 */
typedef struct CascadeCheck
{
	Oid			start;			/* the table the statement changes */
	LockboxAccessItem *items;	/* the statement's, the reached ones added */
	int			nitems;
	int			maxitems;
} CascadeCheck;

static void
refuse_cascade(const CascadeHop *hop, Oid start, Oid target, bool confined)
{
	char	   *relname = lockbox_relname(target);
	char	   *msg = psprintf("the statement would change rows of lockbox-protected table \"%s\" through foreign key \"%s\"",
							   relname, get_constraint_name(hop->conid));
	const char *action = cascade_action_name(hop);

	record_refusal(target, msg);
	if (!confined)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s", msg),
				 errdetail("Its %s action on table \"%s\" runs as the table's owner, past lockbox's policies, and the keys from table \"%s\" do not carry the tenant column there, so it can change any tenant's rows.",
						   action, lockbox_relname(hop->conrelid),
						   lockbox_relname(start)),
				 errhint("Have the application make this change, or make every foreign key on the way include the tenant column.")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("Its %s action on table \"%s\" runs as the table's owner, past lockbox's policies, and your approved write requests do not cover table \"%s\" for every tenant whose rows the statement may change.",
					   action, lockbox_relname(hop->conrelid), relname),
			 lockbox_is_protected(start) && start != target ?
			 errhint("Ask for write access to both tables with lockbox_request(tenant, reason, tables => '{%s,%s}', access => 'write').",
					 lockbox_relname(start), relname) :
			 errhint("Ask for write access with lockbox_request(tenant, reason, tables => '{%s}', access => 'write').",
					 relname)));
}

static bool
check_visit(const CascadeHop *hop, void *arg)
{
	CascadeCheck *cc = (CascadeCheck *) arg;
	Oid			target = protected_target(hop->referencing);
	ProtectedRel *p;
	ProtectedRel *s;
	bool		whole;
	bool		confined;
	bool		covered = true;
	List	   *grants;
	ListCell   *lc;

	if (!OidIsValid(target))
		return true;
	p = protected_rel(target);
	whole = p->whole;
	if (whole)
		confined = true;
	else
	{
		char	   *column = hop->tracked > 0 ?
			get_attname(hop->referencing, hop->tracked, true) : NULL;

		s = protected_rel(cc->start);
		p = protected_rel(target);
		confined = s != NULL && !s->whole && column != NULL &&
			strcmp(column, p->tenant_column) == 0;
	}
	if (!confined)
		refuse_cascade(hop, cc->start, target, false);

	/* a whole table: any write grant; else every tenant written at start */
	grants = current_grants();
	if (whole)
	{
		covered = false;
		foreach(lc, grants)
		{
			Grant	   *g = (Grant *) lfirst(lc);

			covered = covered || (g->relid == target && g->write);
		}
	}
	else
	{
		foreach(lc, grants)
		{
			Grant	   *g = (Grant *) lfirst(lc);
			bool		found = false;
			ListCell   *lc2;

			if (g->relid != cc->start || !g->write)
				continue;
			foreach(lc2, grants)
			{
				Grant	   *g2 = (Grant *) lfirst(lc2);

				found = found || (g2->relid == target && g2->write &&
								  strcmp(g2->tenant, g->tenant) == 0);
			}
			covered = covered && found;
		}
	}
	if (!covered)
		refuse_cascade(hop, cc->start, target, true);

	/* recorded as reached by the statement, under its requests */
	for (int i = 0; i < cc->nitems; i++)
	{
		if (cc->items[i].relid == target)
			return true;
	}
	if (cc->nitems == cc->maxitems)
	{
		cc->maxitems *= 2;
		cc->items = repalloc(cc->items, sizeof(LockboxAccessItem) * cc->maxitems);
	}
	check_access(target, true, &cc->items[cc->nitems++]);
	return true;
}

/* The actions the statement's deletes and updates fire, checked. */
static void
check_cascades(List *rtable, CascadeCheck *cc)
{
	ListCell   *lc;

	foreach(lc, rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		List	   *todo = NIL;
		List	   *seen = NIL;
		ProtectedRel *p;
		AttrNumber	tracked = InvalidAttrNumber;

		if (rte->rtekind != RTE_RELATION ||
			(rte->requiredPerms & (ACL_DELETE | ACL_UPDATE)) == 0)
			continue;
		p = protected_rel(rte->relid);
		if (p != NULL && !p->whole)
			tracked = get_attnum(rte->relid, p->tenant_column);
		if (rte->requiredPerms & ACL_DELETE)
			cascade_start(&todo, &seen, rte->relid, rte->inh, true, NULL,
						  tracked, NIL);
		/* (ACL_UPDATE without updated columns: SELECT ... FOR UPDATE) */
		if ((rte->requiredPerms & ACL_UPDATE) && !bms_is_empty(rte->updatedCols))
		{
			Bitmapset  *cols = NULL;
			int			col = -1;

			while ((col = bms_next_member(rte->updatedCols, col)) >= 0)
			{
				AttrNumber	attnum = col + FirstLowInvalidHeapAttributeNumber;

				if (attnum > 0)
					cols = bms_add_member(cols, attnum);
			}
			if (cols != NULL)
				cascade_start(&todo, &seen, rte->relid, rte->inh, false, cols,
							  tracked, NIL);
		}
		cc->start = rte->relid;
		(void) cascade_walk(todo, check_visit, cc);
	}
}

/*
 * A cursor over a protected table would be kept past its transaction: the
 * rest of its rows go into a store that later fetches read from, unchecked.
 * That is a cursor WITH HOLD, or the query a PL/pgSQL loop in a procedure
 * runs over when the procedure commits inside the loop.
 */
static void
refuse_held_cursor(Oid relid)
{
	char	   *msg = psprintf("a cursor over lockbox-protected table \"%s\" cannot be kept past its transaction",
							   lockbox_relname(relid));

	record_refusal(relid, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("A cursor WITH HOLD, or a loop over a query in a procedure that commits inside the loop, keeps the query's rows after its transaction, where lockbox cannot end access to them."),
			 errhint("Declare the cursor without WITH HOLD, or commit after the loop.")));
}

static void remember_xact_write(Oid user, const LockboxAccessItem *item,
								const LockboxQuery *query);

static void
forget_open_statement(QueryDesc *queryDesc)
{
	ListCell   *lc;

	foreach(lc, open_statements)
	{
		OpenStatement *os = (OpenStatement *) lfirst(lc);

		if (os->queryDesc == queryDesc)
		{
			open_statements = foreach_delete_current(open_statements, lc);
			free_open_statement(os);
			return;
		}
	}
}

/*
 * Keep the protected tables a statement reached (items; the first nnamed
 * named by it, read or written as writes says, the rest reached by its
 * foreign key actions, written), for lockbox_enforce_executor_run and
 * lockbox_enforce_run_failed; with runs false (EXPLAIN without ANALYZE),
 * only for the latter: nothing is written.
 */
static void
remember_open_statement(QueryDesc *queryDesc, Oid user, int nitems,
						const LockboxAccessItem *items, int nnamed,
						const bool *writes, bool runs)
{
	MemoryContext old;
	OpenStatement *os;

	if (nitems == 0)
		return;
	if (open_cxt == NULL)
		open_cxt = AllocSetContextCreate(TopMemoryContext,
										 "lockbox open statements",
										 ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(open_cxt);
	os = palloc(sizeof(OpenStatement));
	os->queryDesc = queryDesc;
	os->subid = GetCurrentSubTransactionId();
	os->user = user;
	os->command = stmt_command;
	{
		const LockboxQuery *q = recorded_query();

		os->query.text = pstrdup(q->text);
		os->query.parameters = pstrdup_or_null(q->parameters);
		os->query.within = pstrdup_or_null(q->within);
	}
	os->n = nitems;
	os->nnamed = nnamed;
	os->relids = palloc(sizeof(Oid) * nitems);
	os->write = palloc(sizeof(bool) * nitems);
	os->nrequests = palloc(sizeof(int) * nitems);
	os->requests = palloc(sizeof(int64 *) * nitems);
	for (int i = 0; i < nitems; i++)
	{
		os->relids[i] = items[i].relid;
		os->write[i] = i >= nnamed || writes[i];
		os->nrequests[i] = items[i].nrequests;
		os->requests[i] = palloc(sizeof(int64) * Max(1, items[i].nrequests));
		if (items[i].nrequests > 0)
			memcpy(os->requests[i], items[i].requests,
				   sizeof(int64) * items[i].nrequests);
	}
	open_statements = lappend(open_statements, os);
	MemoryContextSwitchTo(old);

	for (int i = 0; i < nitems && runs; i++)
	{
		if (os->write[i])
			remember_xact_write(user, &items[i], &os->query);
	}
}

/* An engineer statement writes into a protected table: see XactWrite. */
static void
remember_xact_write(Oid user, const LockboxAccessItem *item,
					const LockboxQuery *query)
{
	ListCell   *lc;
	MemoryContext old;
	XactWrite  *w;

	foreach(lc, xact_writes)
	{
		w = (XactWrite *) lfirst(lc);

		/*
		 * (an entry kept is of this subtransaction or of one it is part of,
		 * so it lasts at least as long as this write would)
		 */
		if (w->user == user && w->relid == item->relid &&
			w->nrequests == item->nrequests &&
			memcmp(w->requests, item->requests,
				   sizeof(int64) * item->nrequests) == 0)
			return;
	}
	if (xact_writes_cxt == NULL)
		xact_writes_cxt = AllocSetContextCreate(TopMemoryContext,
												"lockbox transaction writes",
												ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(xact_writes_cxt);
	w = palloc(sizeof(XactWrite));
	w->subid = GetCurrentSubTransactionId();
	w->user = user;
	w->relid = item->relid;
	w->nrequests = item->nrequests;
	w->requests = palloc(sizeof(int64) * Max(1, item->nrequests));
	if (item->nrequests > 0)
		memcpy(w->requests, item->requests, sizeof(int64) * item->nrequests);
	w->query.text = pstrdup(query->text);
	w->query.parameters = pstrdup_or_null(query->parameters);
	w->query.within = pstrdup_or_null(query->within);
	xact_writes = lappend(xact_writes, w);
	MemoryContextSwitchTo(old);
}

static void
forget_xact_writes(void)
{
	xact_writes = NIL;
	if (xact_writes_cxt != NULL)
		MemoryContextReset(xact_writes_cxt);
}

/*
 * Did this transaction itself end request id (lockbox_close, lockbox_revoke),
 * before its window's end?  Then the writes made under it commit together
 * with its end, not after it.  (Its row changed here for another reason, an
 * extension asked for, is no such end: a revocation recorded beside it
 * meanwhile still ends the access first.  So does one recorded beside it
 * while this transaction held the row it closed: the customer's withdrawal
 * committed first, and the writes must not commit after it.)
 */
static bool
ended_here(int64 id)
{
	LockboxCall call;
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	bool		here = false;
	Snapshot	snap;
	int			ret;

	lockbox_enter_read(&call);
	lockbox_prepare(&plan,
					"SELECT r.xmin, r.access_ends_at FROM lockbox.request r"
					" WHERE r.id OPERATOR(pg_catalog.=) $1"
					"   AND r.state IN ('closed', 'revoked')"
					"   AND NOT EXISTS (SELECT 1 FROM lockbox.revocation v"
					"                    WHERE v.request_id OPERATOR(pg_catalog.=) r.id)",
					1, argtypes);
	/* (at commit no snapshot is active: the latest, as for the grants) */
	snap = RegisterSnapshot(GetLatestSnapshot());
	ret = SPI_execute_snapshot(plan, values, NULL, snap, InvalidSnapshot,
							   true, false, 1);
	UnregisterSnapshot(snap);
	if (ret == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		bool		isnull2;
		TransactionId xmin = DatumGetTransactionId(SPI_getbinval(SPI_tuptable->vals[0],
																 SPI_tuptable->tupdesc, 1, &isnull));
		Datum		ends = SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 2, &isnull2);

		here = !isnull && !isnull2 && TransactionIdIsCurrentTransactionId(xmin) &&
			GetCurrentTimestamp() < DatumGetTimestampTz(ends);
	}
	lockbox_leave(&call);
	return here;
}

/*
 * Hold every request the transaction's writes ran under until it commits,
 * so that no end of their access can commit between check_commit's reading
 * of them and the commit itself: the newest version of each request's row
 * locked FOR KEY SHARE, which every transition (lockbox_close,
 * lockbox_revoke, an approver's decision on an extension) waits for, as it
 * locks the row FOR UPDATE; then lockbox.revocation in SHARE mode, which a
 * revocation recorded beside a request held by another session (one that
 * waited for the row longer than lockbox_revoke does) waits for, as it
 * inserts its row.  A revocation of that kind under way is waited for, and
 * then seen.  The rows are locked in the order of their ids, and the table
 * after them: a session holding a request row (its requester closing it in
 * a transaction left open) holds back this commit only, never a revocation
 * of another request.  Only engineers' transactions that wrote protected
 * rows come here, once, at their commit.
 */
static void
hold_requests(void)
{
	int64	   *ids;
	int			n = 0;
	ListCell   *lc;
	Oid			nsp = get_namespace_oid("lockbox", false);
	Relation	rel;
	TupleTableSlot *slot;

	foreach(lc, xact_writes)
		n += ((XactWrite *) lfirst(lc))->nrequests;
	ids = palloc(sizeof(int64) * Max(1, n));
	n = 0;
	foreach(lc, xact_writes)
	{
		XactWrite  *w = (XactWrite *) lfirst(lc);

		for (int i = 0; i < w->nrequests; i++)
			ids[n++] = w->requests[i];
	}
	qsort(ids, n, sizeof(int64), lockbox_int64_cmp);

	/* (rows changed by this transaction itself, lockbox_close, are seen) */
	CommandCounterIncrement();
	rel = table_open(get_relname_relid("request", nsp), RowShareLock);
	slot = table_slot_create(rel, NULL);
	for (int i = 0; i < n; i++)
	{
		Datum		key = Int64GetDatum(ids[i]);
		Snapshot	snap;
		List	   *rows;
		TM_FailureData tmfd;
		TM_Result	res;

		if (i > 0 && ids[i] == ids[i - 1])
			continue;
		snap = RegisterSnapshot(GetLatestSnapshot());
		rows = lockbox_store_read("request", 1, &key, snap, NULL);
		if (rows == NIL)
		{
			UnregisterSnapshot(snap);
			continue;			/* gone: check_commit finds it closed */
		}

		/*
		 * Whatever the isolation level, the newest version: a transition
		 * committed since the transaction's snapshot is what check_commit
		 * must see, not a reason to fail to serialize.
		 */
		res = table_tuple_lock(rel, &((HeapTuple) linitial(rows))->t_self,
							   snap, slot, GetCurrentCommandId(true),
							   LockTupleKeyShare, LockWaitBlock,
							   TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS |
							   TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
		UnregisterSnapshot(snap);
		switch (res)
		{
			case TM_Ok:
			case TM_SelfModified:	/* changed here: held FOR UPDATE already */
			case TM_Deleted:	/* gone: check_commit finds it closed */
				break;
			default:
				elog(ERROR, "unexpected result %d locking lockbox request " INT64_FORMAT,
					 (int) res, ids[i]);
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
	LockRelationOid(get_relname_relid("revocation", nsp), ShareLock);
	pfree(ids);
}

/*
 * Forget the grants cached: the next look reads them afresh.  A transition
 * that committed is visible to others a moment before its backend tells
 * them to drop their caches (the shared generation moves at its end).
 */
static void
forget_grants(void)
{
	MemoryContext old;

	if (!cache.grants_valid)
		return;
	old = MemoryContextSwitchTo(cache.cxt);
	list_free_deep(cache.grants);
	MemoryContextSwitchTo(old);
	cache.grants = NIL;
	cache.grants_valid = false;
	cache.grants_version++;
}

/*
 * The transaction commits: every request its engineer statements wrote into
 * protected tables under must still be open now -- approved, its window not
 * over, not revoked (read with the latest snapshot, against the clock, as
 * at every statement).  Otherwise the writes would outlive the access that
 * allowed them (an engineer keeping a transaction open across a revocation
 * or the window's end; the session is ended only a moment later, or never
 * with lockbox.terminate_sessions off): the commit fails, and the
 * transaction rolls back.  All of them, not any: a statement under two
 * requests may have written rows of either tenant.  The requests are held
 * first (hold_requests), so that none ends between this check and the
 * commit; and read afresh, not from the cache.
 */
static void
check_commit(void)
{
	ListCell   *lc;

	/*
	 * What core does at commit after this check must not take long: the
	 * requests are held until the commit record is written.  Its ON COMMIT
	 * actions are done first, here: dropping a temporary table ON COMMIT
	 * DROP drops what depends on it (a trigger on another table, say),
	 * which may wait for another session's lock for as long as that
	 * session likes.  After the check, that wait would hold back every
	 * revocation of the requests, and before lockbox held them it let the
	 * writes commit after one.  (Core's own call later finds the tables
	 * gone, and empties again those ON COMMIT DELETE ROWS, empty by then.)
	 */
	PreCommit_on_commit_actions();

	/* (no snapshot is active at commit: lockbox's reads need one) */
	PushActiveSnapshot(GetTransactionSnapshot());
	hold_requests();
	forget_grants();
	foreach(lc, xact_writes)
	{
		XactWrite  *w = (XactWrite *) lfirst(lc);

		for (int i = 0; i < w->nrequests; i++)
		{
			bool		open = false;
			ListCell   *lc2;
			char	   *relname;
			char	   *msg;

			foreach(lc2, current_grants_for(w->user))
			{
				Grant	   *g = (Grant *) lfirst(lc2);

				if (g->request_id == w->requests[i] && g->relid == w->relid &&
					g->write)
				{
					open = true;
					break;
				}
			}
			if (open || ended_here(w->requests[i]))
				continue;
			relname = lockbox_relname(w->relid);
			msg = psprintf("lockbox access to table \"%s\" under request " INT64_FORMAT " ended before the transaction writing it committed",
						   relname, w->requests[i]);
			set_recorded_statement("COMMIT", &w->query);
			lockbox_count(LB_REFUSALS);
			lockbox_access_refused(stmt_command, &stmt_query, w->relid, 1,
								   &w->requests[i], msg);
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("%s", msg),
					 errdetail("The transaction wrote into the table under approved lockbox request " INT64_FORMAT ", which has since been closed or revoked, or whose window has ended; its writes are rolled back.",
							   w->requests[i]),
					 errhint("Ask for access again with lockbox_request(tenant, reason, tables => '{%s}', access => 'write'), and commit while it is open.",
							 relname)));
		}
	}
	PopActiveSnapshot();
}

/* Is any engineer's statement on protected data under way? */
bool
lockbox_enforce_open_statements(void)
{
	return open_statements != NIL;
}

/*
 * Is an error a refusal core or lockbox made while an engineer's statement
 * started, ran or finished: a privilege (core's "permission denied for
 * table t", "... for column c of relation t", "... for function f"), a row
 * the policies refuse, a statistics function?  Not a message of the
 * application's own (a trigger's RAISE with SQLSTATE 42501), which the
 * access log does not repeat to the tenants' approvers.
 */
static bool
refusal_message(const ErrorData *edata)
{
	static const char *const prefixes[] = {
		"permission denied for ",
		"new row violates row-level security policy",
		"target row violates row-level security policy",
		"engineers may not read "
	};

	if (edata->sqlerrcode != ERRCODE_INSUFFICIENT_PRIVILEGE ||
		edata->message_id == NULL || edata->message == NULL)
		return false;
	for (int i = 0; i < lengthof(prefixes); i++)
	{
		if (strncmp(edata->message_id, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	}
	return false;
}

/* Does an error's message name relation relid ("t", or "... table t")? */
static bool
message_names(const char *message, Oid relid)
{
	char	   *name = get_rel_name(relid);
	char	   *quoted;
	size_t		mlen = strlen(message);
	size_t		nlen;

	if (name == NULL)
		return false;
	quoted = psprintf("\"%s\"", name);
	if (strstr(message, quoted) != NULL)
		return true;
	nlen = strlen(name);
	return mlen > nlen && message[mlen - nlen - 1] == ' ' &&
		strcmp(message + mlen - nlen, name) == 0;
}

/*
 * An engineer statement that reached protected tables failed after lockbox
 * let it start -- as core started it (ExecutorStart checks the privileges
 * on its tables and functions), as it ran (each fetch), or as it finished
 * (its AFTER triggers).  When it was refused (refusal_message) -- a
 * privilege the engineer lacks ("permission denied for table invoices",
 * also on a column or a function), a row lockbox's policies refuse to write
 * ("new row violates row-level security policy", WITH CHECK; "target row
 * ..." of ON CONFLICT DO UPDATE and MERGE), a statistics function -- it is
 * recorded as refused, with the error's message as the reason, as the
 * refusals made before it started are: its record made before it started
 * says only that it was let start.  The record is made under the tables the
 * message names, or, when it names none of them, under every protected
 * table the statement reached.  A refusal is recorded once, by the
 * innermost engineer statement it fails, and not when lockbox made and
 * recorded it itself.  An exclusion
 * constraint's violation is raised again without the existing row's key
 * (below).  Runs in the error's PG_CATCH, before the transaction is
 * aborted; every other error is left as it is: the statement ran until it
 * failed, and what it changed rolls back.
 */
void
lockbox_enforce_run_failed(QueryDesc *queryDesc)
{
	ListCell   *lc;
	OpenStatement *os = NULL;
	ErrorData  *edata;
	MemoryContext old;
	bool		matched = false;

	if (run_failure_recorded || open_statements == NIL)
		return;
	foreach(lc, open_statements)
	{
		if (((OpenStatement *) lfirst(lc))->queryDesc == queryDesc)
		{
			os = (OpenStatement *) lfirst(lc);
			break;
		}
	}
	if (os == NULL)
		return;
	/* (the error under way: only these two concern lockbox) */
	if (geterrcode() != ERRCODE_INSUFFICIENT_PRIVILEGE &&
		geterrcode() != ERRCODE_EXCLUSION_VIOLATION)
		return;
	old = MemoryContextSwitchTo(open_cxt);
	edata = CopyErrorData();
	MemoryContextSwitchTo(old);

	/*
	 * An exclusion constraint's violation names the existing row's key
	 * ("Key (room, during)=(1, [...)) conflicts with existing key (room,
	 * during)=(1, [...))"): a row of another tenant, whose values the
	 * engineer must not see.  The error is raised again without them.
	 */
	if (edata->sqlerrcode == ERRCODE_EXCLUSION_VIOLATION &&
		edata->detail != NULL && strstr(edata->detail, "existing key") != NULL)
	{
		ErrorData  *scrubbed;

		FlushErrorState();
		scrubbed = edata;
		scrubbed->detail = pstrdup("The new row conflicts with an existing row; lockbox does not show the existing row's key to engineers.");
		scrubbed->detail_log = NULL;
		ReThrowError(scrubbed);
	}
	if (!refusal_message(edata))
	{
		FreeErrorData(edata);
		return;
	}
	run_failure_recorded = true;

	/* the tables the message names; when it names none, all of them */
	for (int pass = 0; pass < 2 && !matched; pass++)
	{
		for (int i = 0; i < os->n; i++)
		{
			bool		dup = false;

			for (int j = 0; j < i && !dup; j++)
				dup = os->relids[j] == os->relids[i];
			if (dup || (pass == 0 && !message_names(edata->message, os->relids[i])))
				continue;
			matched = true;
			lockbox_count(LB_REFUSALS);
			lockbox_access_refused(os->command, &os->query, os->relids[i],
								   os->nrequests[i], os->requests[i],
								   edata->message);
		}
	}
	FreeErrorData(edata);
}

/*
 * PREPARE TRANSACTION of a transaction in which an engineer's statement
 * reached a protected table: COMMIT PREPARED could make its writes after the
 * request was closed or revoked, or its window ended, and its locks would be
 * held until then.
 */
static void
refuse_prepare(Oid relid)
{
	char	   *msg = psprintf("a transaction that reached lockbox-protected table \"%s\" cannot be prepared",
							   lockbox_relname(relid));

	set_statement("PREPARE TRANSACTION", debug_query_string, NULL);
	record_refusal(relid, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("A prepared transaction could be committed after the lockbox access it ran under has ended."),
			 errhint("Commit the transaction instead.")));
}

/*
 * A subtransaction ended.  Aborted: the statements it started ended with it,
 * most without ExecutorEnd (a PL/pgSQL loop whose handler catches each
 * error would otherwise pile them up).  Committed: its statements are its
 * parent's now.
 */
void
lockbox_enforce_subxact(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid)
{
	ListCell   *lc;

	if (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB)
		return;
	foreach(lc, open_statements)
	{
		OpenStatement *os = (OpenStatement *) lfirst(lc);

		if (os->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			os->subid = parentSubid;
			continue;
		}
		open_statements = foreach_delete_current(open_statements, lc);
		free_open_statement(os);
	}
	foreach(lc, xact_writes)
	{
		XactWrite  *w = (XactWrite *) lfirst(lc);

		if (w->subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
		{
			w->subid = parentSubid;
			continue;
		}
		xact_writes = foreach_delete_current(xact_writes, lc);
		pfree(w->requests);
		pfree((char *) w->query.text);
		if (w->query.parameters)
			pfree((char *) w->query.parameters);
		if (w->query.within)
			pfree((char *) w->query.within);
		pfree(w);
	}
	if (event == SUBXACT_EVENT_ABORT_SUB)
		run_failure_recorded = false;
}

/* The transaction ended: so did every statement of it (see OpenStatement). */
static void
forget_open_statements(void)
{
	open_statements = NIL;
	if (open_cxt != NULL)
		MemoryContextReset(open_cxt);
}

/*
 * An engineer's session acting as a role that is no engineer: SET ROLE to a
 * role the engineer is a member of (a superuser, the application's role),
 * or a maintenance command run as the owner of what it maintains, a role
 * whose privileges the engineer has (REFRESH MATERIALIZED VIEW, ANALYZE,
 * CREATE INDEX: security-restricted operations).  Lockbox's policies do not
 * restrict that role, nor does anything here, so the engineer would read and
 * write every tenant's rows, unaudited.  Not switched away: a SECURITY
 * DEFINER function, which runs as its owner locally (lockbox.posture
 * reports those that can read protected rows), nor core's foreign key
 * checks and actions (enforce.c follows the actions), nor lockbox's own
 * calls, security-restricted as the owner of its schema.
 */
static bool
switched_away(Oid user)
{
	Oid			session = GetSessionUserId();

	if (user == session || !is_engineer(session))
		return false;
	if (InSecurityRestrictedOperation())
		return user != lockbox_owner();
	return !InLocalUserIdChange();
}

static void
refuse_switched(Oid relid)
{
	Oid			user = GetUserId();
	char	   *msg = psprintf("the session of engineer \"%s\" reaches lockbox-protected table \"%s\" as role \"%s\"",
							   lockbox_role_name(GetSessionUserId()),
							   lockbox_relname(relid), lockbox_role_name(user));

	record_refusal(relid, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("Role \"%s\" is no lockbox engineer, so lockbox's policies do not restrict it; an engineer's session reaches protected tables only as an engineer.",
					   lockbox_role_name(user)),
			 errhint("Reach protected tables as yourself (RESET ROLE), under an approved request: lockbox_request(tenant, reason, tables => '{%s}').",
					 lockbox_relname(relid))));
}

/* a foreign key action of the statement reaching a protected table */
static bool
switched_visit(const CascadeHop *hop, void *arg)
{
	Oid			target = protected_target(hop->referencing);

	if (OidIsValid(target))
		refuse_switched(target);
	return true;
}

/*
 * A statement of an engineer's session acting as another role (see
 * switched_away): refused when it reaches a protected table, named, through
 * a view, a partition or child, or a foreign key action.
 */
static void
refuse_switched_statement(QueryDesc *queryDesc)
{
	List	   *rtable = queryDesc->plannedstmt->rtable;
	ListCell   *lc;

	set_statement(command_name(queryDesc->operation), queryDesc->sourceText,
				  queryDesc->params);
	foreach(lc, rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		Oid			target;

		if (rte->rtekind != RTE_RELATION)
			continue;
		target = protected_target(rte->relid);
		if (OidIsValid(target))
			refuse_switched(target);
	}
	foreach(lc, rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		List	   *todo = NIL;
		List	   *seen = NIL;

		if (rte->rtekind != RTE_RELATION ||
			(rte->requiredPerms & (ACL_DELETE | ACL_UPDATE)) == 0)
			continue;
		if (rte->requiredPerms & ACL_DELETE)
			cascade_start(&todo, &seen, rte->relid, rte->inh, true, NULL, 0, NIL);
		if (rte->requiredPerms & ACL_UPDATE)
			cascade_start(&todo, &seen, rte->relid, rte->inh, false, NULL, 0, NIL);
		(void) cascade_walk(todo, switched_visit, NULL);
	}
}

/*
 * Is rti the EXCLUDED pseudo relation of an INSERT ... ON CONFLICT DO UPDATE
 * of the statement (its own, or a data-modifying WITH's)?  It names the
 * target table without privileges to check, as the planner's partitions and
 * children do, but reads no row of it: it is the row being inserted.
 */
static bool
excluded_rti(PlannedStmt *pstmt, int rti)
{
	ListCell   *lc;

	if (pstmt->planTree != NULL && IsA(pstmt->planTree, ModifyTable) &&
		((ModifyTable *) pstmt->planTree)->exclRelRTI == rti)
		return true;
	foreach(lc, pstmt->subplans)
	{
		Plan	   *plan = (Plan *) lfirst(lc);

		if (plan != NULL && IsA(plan, ModifyTable) &&
			((ModifyTable *) plan)->exclRelRTI == rti)
			return true;
	}
	return false;
}

/*
 * An engineer's statement, before it runs: every relation it reaches that
 * holds protected rows -- named, added by the planner as a partition or
 * child, or read by a view or rule -- must be reached as an engineer (so
 * the policies apply), through the protected table itself, and under an
 * open request covering the table for the command.
 */
void
lockbox_enforce_executor_start(QueryDesc *queryDesc, int eflags)
{
	Oid			user = GetUserId();
	List	   *rtable = queryDesc->plannedstmt->rtable;
	ListCell   *lc;
	bool		explain = (eflags & EXEC_FLAG_EXPLAIN_ONLY) != 0 ||
		(explain_shows_numbers > 0 && queryDesc->instrument_options != 0);

	LockboxAccessItem *items;
	bool	   *writes;
	int			nitems = 0;

	bool		recorded = false;

	/* (a QueryDesc at the address of one that ended without ExecutorEnd) */
	forget_open_statement(queryDesc);
	run_failure_recorded = false;
	if (copy_to_recorded != NULL)
	{
		recorded = queryDesc->sourceText == copy_to_recorded &&
			queryDesc->operation == CMD_SELECT;
		copy_to_recorded = NULL;
	}
	if (!is_engineer(user))
	{
		if (switched_away(user))
			refuse_switched_statement(queryDesc);
		return;
	}

	set_statement((eflags & EXEC_FLAG_EXPLAIN_ONLY) ? "EXPLAIN" :
				  command_name(queryDesc->operation),
				  queryDesc->sourceText, queryDesc->params);
	items = palloc(sizeof(LockboxAccessItem) * Max(1, list_length(rtable)));
	writes = palloc(sizeof(bool) * Max(1, list_length(rtable)));

	/* the relations the statement names, which RLS applies to */
	foreach(lc, rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		Oid			reader;
		Oid			target;

		if (rte->rtekind != RTE_RELATION)
			continue;
		target = protected_target(rte->relid);
		if (!OidIsValid(target))
			continue;

		/* through a view or rule, its owner is the one reading */
		reader = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : user;
		if (reader != user)
		{
			if (!is_engineer(reader))
				refuse_through_owner(rte->relid, target, reader);
			refuse_noinherit(reader, target);
		}
		refuse_unrestricted(reader, target);

		if (rte->requiredPerms == 0)
			continue;			/* added by the planner: below */
		if (target != rte->relid)
			refuse_part_of(rte->relid, target);
		writes[nitems] = (rte->requiredPerms & ~ACL_SELECT) != 0;
		check_access(rte->relid, writes[nitems], &items[nitems]);
		if (explain && explain_shows_numbers > 0)
			refuse_explain(rte->relid);
		nitems++;
	}

	/*
	 * Partitions and inheritance children the planner added: their rows are
	 * governed by the policies of the table the statement named, the root of
	 * their expansion, so a child holding protected rows must have been
	 * reached through a protected table -- not merely named elsewhere in the
	 * statement.
	 */
	for (int rti = 1; rti <= list_length(rtable); rti++)
	{
		RangeTblEntry *rte = rt_fetch(rti, rtable);
		Oid			target;
		int			root = rti;

		if (rte->rtekind != RTE_RELATION || rte->requiredPerms != 0)
			continue;
		target = protected_target(rte->relid);
		if (!OidIsValid(target))
			continue;
		/* INSERT ... ON CONFLICT DO UPDATE's EXCLUDED: the row proposed */
		if (excluded_rti(queryDesc->plannedstmt, rti))
			continue;
		/* up the AppendRelInfos to the relation the statement named */
		for (int hops = 0; hops < list_length(rtable); hops++)
		{
			ListCell   *lc2;
			int			parent = 0;

			foreach(lc2, queryDesc->plannedstmt->appendRelations)
			{
				AppendRelInfo *ari = (AppendRelInfo *) lfirst(lc2);

				if (ari->child_relid == root)
				{
					parent = ari->parent_relid;
					break;
				}
			}
			if (parent == 0)
				break;
			root = parent;
		}
		if (root == rti || protected_rel(rt_fetch(root, rtable)->relid) == NULL)
			refuse_through_parent(rte->relid, target);
	}

	/* a cursor WITH HOLD would keep its rows past every check */
	if (declaring_held_cursor > 0 && nitems > 0)
		refuse_held_cursor(items[0].relid);

	/*
	 * Recorded before it runs.  EXPLAIN without ANALYZE runs nothing, but
	 * the statement is the engineer's on protected data all the same.
	 */
	if ((eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0)
	{
		CascadeCheck cc;

		/* the foreign key actions its deletes and updates set off */
		cc.items = items;
		cc.nitems = nitems;
		cc.maxitems = Max(1, list_length(rtable));
		if (queryDesc->operation != CMD_SELECT ||
			queryDesc->plannedstmt->hasModifyingCTE)
			check_cascades(rtable, &cc);
		if (!recorded)
			lockbox_access_allowed(stmt_command, recorded_query(), cc.nitems,
								   cc.items);
		if (cc.nitems > 0)
			xact_reached = cc.items[0].relid;
		remember_open_statement(queryDesc, user, cc.nitems, cc.items, nitems,
								writes, true);
	}
	else
	{
		lockbox_access_allowed(stmt_command, recorded_query(), nitems, items);
		remember_open_statement(queryDesc, user, nitems, items, nitems,
								writes, false);
	}
}

/*
 * An engineer statement that reached protected tables is being run again:
 * a FETCH of its cursor, the next batch of a PL/pgSQL loop over it, the
 * next Execute of its portal.  Its rows are read now, so the requests it
 * started under must still cover its tables now: the window may have ended,
 * or the request been closed or revoked, since it started.
 */
void
lockbox_enforce_executor_run(QueryDesc *queryDesc)
{
	ListCell   *lc;
	OpenStatement *os = NULL;

	foreach(lc, open_statements)
	{
		if (((OpenStatement *) lfirst(lc))->queryDesc == queryDesc)
		{
			os = (OpenStatement *) lfirst(lc);
			break;
		}
	}
	if (os == NULL)
		return;

	/* being kept past the transaction (PersistHoldablePortal)? */
	if (ActivePortal != NULL && ActivePortal->queryDesc == queryDesc &&
		ActivePortal->holdStore != NULL)
	{
		set_recorded_statement(os->command, &os->query);
		refuse_held_cursor(os->relids[0]);
	}

	for (int i = 0; i < os->n; i++)
	{
		bool		covered = false;
		char	   *relname;
		char	   *msg;

		foreach(lc, current_grants_for(os->user))
		{
			Grant	   *g = (Grant *) lfirst(lc);

			if (g->relid == os->relids[i] && (g->write || !os->write[i]))
			{
				covered = true;
				break;
			}
		}
		if (covered)
			continue;
		relname = lockbox_relname(os->relids[i]);
		msg = psprintf("lockbox access to table \"%s\" ended while the statement reading it was open",
					   relname);
		set_recorded_statement("FETCH", &os->query);
		record_refusal(os->relids[i], msg);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s", msg),
				 errdetail("The statement (a cursor, a loop over a query) started under an approved lockbox request whose window has ended, or which was closed or revoked; no more of its rows are read."),
				 errhint("Ask for access again with lockbox_request(tenant, reason, tables => '{%s}').",
						 relname)));
	}
}

void
lockbox_enforce_executor_end(QueryDesc *queryDesc)
{
	forget_open_statement(queryDesc);
}

/*
 * The cumulative statistics functions of relations and databases
 * (pg_stat_get_tuples_fetched(oid), pg_stat_get_xact_tuples_returned(oid),
 * pg_stat_get_blocks_hit(oid), pg_stat_get_db_tuples_fetched(oid) ...,
 * which pg_stat_user_tables, pg_stat_user_indexes, pg_statio_* and
 * pg_stat_database read): they count what scans read before the policies
 * filtered it.  A leakproof condition of an engineer's (note = 'x') may be
 * an index condition, below lockbox's policy filter: the index's count of
 * tuples returned then tells whether another tenant has such a row, as
 * EXPLAIN ANALYZE's "Rows Removed by Filter" would.  Their oids, sorted,
 * read once per backend (pg_catalog's functions do not change).
 */
static Oid *stat_funcs = NULL;
static int	nstat_funcs = 0;

static void
load_stat_funcs(void)
{
	Oid		   *oids;
	int			n = 0;

	/*
	 * From the builtins' table and the syscache, not by a query: this runs
	 * as a function starts (lockbox_enforce_function_execute), also in
	 * planning.  Every function of pg_catalog named so is a builtin.
	 */
	oids = MemoryContextAlloc(TopMemoryContext, sizeof(Oid) * Max(1, fmgr_nbuiltins));
	for (int i = 0; i < fmgr_nbuiltins; i++)
	{
		HeapTuple	tup;
		Form_pg_proc proc;
		const char *name;

		if (fmgr_builtins[i].nargs != 1)
			continue;
		tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fmgr_builtins[i].foid));
		if (!HeapTupleIsValid(tup))
			continue;
		proc = (Form_pg_proc) GETSTRUCT(tup);
		name = NameStr(proc->proname);
		if (proc->pronamespace == PG_CATALOG_NAMESPACE &&
			strncmp(name, "pg_stat_get_", 12) == 0 &&
			strstr(name, "function") == NULL &&
			strstr(name, "subscription") == NULL &&
			proc->pronargs == 1 && proc->proargtypes.values[0] == OIDOID)
			oids[n++] = fmgr_builtins[i].foid;
		ReleaseSysCache(tup);
	}
	qsort(oids, n, sizeof(Oid), oid_cmp);
	nstat_funcs = n;
	stat_funcs = oids;
}

/* Is funcid one of stat_funcs, or an aggregate that calls one? */
static bool
is_stat_func(Oid funcid, bool aggregate)
{
	HeapTuple	tup;
	bool		found = false;

	if (!aggregate)
		return bsearch(&funcid, stat_funcs, nstat_funcs, sizeof(Oid), oid_cmp) != NULL;
	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return false;
	{
		Form_pg_aggregate agg = (Form_pg_aggregate) GETSTRUCT(tup);
		Oid			support[] = {agg->aggtransfn, agg->aggfinalfn, agg->aggcombinefn,
			agg->aggserialfn, agg->aggdeserialfn, agg->aggmtransfn,
		agg->aggminvtransfn, agg->aggmfinalfn};

		for (int i = 0; i < lengthof(support) && !found; i++)
			found = OidIsValid(support[i]) && is_stat_func(support[i], false);
	}
	ReleaseSysCache(tup);
	return found;
}

static void
refuse_stat_func(Oid funcid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("engineers may not read %s in a database with lockbox-protected tables",
					get_func_name(funcid)),
			 errdetail("The cumulative statistics of tables, indexes and databases count the rows scans read before lockbox's policies filtered them, every tenant's: they would tell an engineer what rows they cannot see hold."),
			 errhint("Ask the operator for the statistics you need.")));
}

/*
 * An engineer's statement (or one of an engineer's session acting as
 * another role), just planned, in a database with protected tables: it may
 * not call any of stat_funcs.  Read from the finished plan, so that every
 * way to call one is seen: named, through a view, in the body of an inlined
 * SQL function, as an operator's function, as an aggregate's (functions
 * that are not inlined are planned on their own, and pass here too).
 */
static void
refuse_stat_funcs(PlannedStmt *pstmt)
{
	static const char *const keys[] = {":funcid ", ":opfuncid ", ":aggfnoid ", ":winfnoid "};
	char	   *text;

	cache_check_generation();
	if (!cache.valid)
		load_protected();
	if (!cache.installed || hash_get_num_entries(cache.protected) == 0)
		return;
	if (stat_funcs == NULL)
		load_stat_funcs();
	text = nodeToString(pstmt);
	for (int k = 0; k < lengthof(keys); k++)
	{
		const char *p = text;

		while ((p = strstr(p, keys[k])) != NULL)
		{
			Oid			funcid;

			p += strlen(keys[k]);
			funcid = (Oid) strtoul(p, NULL, 10);
			if (!is_stat_func(funcid, k >= 2))
				continue;
			refuse_stat_func(funcid);
		}
	}
	pfree(text);
}

/*
 * Does the statement run for an engineer: as one, or in an engineer's
 * session acting as another role (switched_away)?  Asked as every function
 * starts, so the answer for roles that are none (the application's) is
 * kept for the pair of roles asked about last: a few comparisons.
 */
static bool
engineer_acting(void)
{
	static Oid	memo_user = InvalidOid;
	static Oid	memo_session = InvalidOid;
	static uint64 memo_invals = 0;
	Oid			user = GetUserId();
	Oid			session = GetSessionUserId();

	if (user == memo_user && session == memo_session &&
		role_invals == memo_invals && OidIsValid(user))
		return false;
	if (!is_engineer(user) && !is_engineer(session))
	{
		memo_user = user;
		memo_session = session;
		memo_invals = role_invals;
		return false;
	}
	return is_engineer(user) || switched_away(user);
}

/*
 * A function is about to run (the executor sets up its call, core's
 * OAT_FUNCTION_EXECUTE): an engineer's may not be one of stat_funcs, in a
 * database with protected tables.  The planner's check (refuse_stat_funcs)
 * sees what a plan calls; this sees every call wherever its expression is
 * run without the planner hook: EXECUTE's and CALL's arguments, a CHECK
 * constraint, a domain's constraint, a column's default or an ALTER TABLE
 * ... USING evaluated at once, a trigger's WHEN, COPY ... WHERE, an index
 * expression.
 */
void
lockbox_enforce_function_execute(Oid funcid)
{
	static bool checking = false;

	/* (every statistics function is a builtin; the application's roles: none) */
	if (funcid >= FirstGenbkiObjectId || checking || !engineer_acting())
		return;
	checking = true;
	PG_TRY();
	{
		if (stat_funcs == NULL)
			load_stat_funcs();
		if (is_stat_func(funcid, false))
		{
			cache_check_generation();
			if (!cache.valid)
				load_protected();
			if (cache.installed && hash_get_num_entries(cache.protected) > 0)
				refuse_stat_func(funcid);
		}
	}
	PG_FINALLY();
	{
		checking = false;
	}
	PG_END_TRY();
}

/*
 * Would plans reach the client, with the planner's estimates (rows, costs)
 * from statistics of every tenant's rows, or the row counts of a run
 * (auto_explain's log_analyze: the rows lockbox's policies filtered out)?
 * What EXPLAIN shows with COSTS or ANALYZE, which engineers may not see
 * (refuse_explain).  They do when messages of level LOG reach the client
 * (client_min_messages at log or below, anyone's to set): debug_print_plan
 * prints the plan at that level, and auto_explain by default; and when
 * auto_explain is loaded and on, logging at a level the client gets.
 * Returns what sends them (for the message), or NULL.
 */
static const char *
plan_reaches_client(void)
{
	static const struct
	{
		const char *name;
		int			level;
	}			levels[] = {
		{"debug5", DEBUG5}, {"debug4", DEBUG4}, {"debug3", DEBUG3},
		{"debug2", DEBUG2}, {"debug1", DEBUG1}, {"debug", DEBUG2},
		{"log", LOG}, {"info", INFO}, {"notice", NOTICE},
		{"warning", WARNING}
	};
	const char *duration;
	const char *level;

	if (client_min_messages <= LOG)
		return Debug_print_plan ? "debug_print_plan" : "client_min_messages";
	/* (a placeholder: auto_explain is not loaded, whatever is set) */
	duration = GetConfigOption("auto_explain.log_min_duration", true, false);
	if (duration == NULL || strcmp(duration, "-1") == 0 ||
		(GetConfigOptionFlags("auto_explain.log_min_duration", true) & GUC_CUSTOM_PLACEHOLDER) != 0)
		return NULL;
	level = GetConfigOption("auto_explain.log_level", true, false);
	for (int i = 0; level != NULL && i < lengthof(levels); i++)
	{
		if (pg_strcasecmp(level, levels[i].name) == 0)
			return (levels[i].level == INFO || levels[i].level >= client_min_messages) ?
				"auto_explain" : NULL;
	}
	return "auto_explain";
}

static void
refuse_plan_to_client(Oid relid, const char *sender)
{
	char	   *msg = psprintf("%s is not allowed in a statement of an engineer on lockbox-protected table \"%s\"",
							   strcmp(sender, "client_min_messages") == 0 ?
							   "client_min_messages at log or below" : sender,
							   lockbox_relname(relid));

	record_refusal(relid, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 strcmp(sender, "auto_explain") == 0 ?
			 errdetail("auto_explain would send the client the statement's plan, with the planner's estimates from statistics of every tenant's rows (or the rows a run filtered out), as EXPLAIN with costs would.") :
			 errdetail("Messages of level LOG reach the client, and the statement's plan would be among them (debug_print_plan, auto_explain), with the planner's estimates from statistics of every tenant's rows, as EXPLAIN with costs would."),
			 strcmp(sender, "auto_explain") == 0 ?
			 errhint("Ask the operator to log auto_explain's plans at level LOG, which clients do not get.") :
			 errhint("SET client_min_messages = notice.")));
}

/*
 * A statement just planned: an engineer's may call no statistics function
 * (refuse_stat_funcs), nor have its plan sent to its client
 * (plan_reaches_client): refused here, before core prints it
 * (debug_print_plan), for an engineer's statement (or one of an engineer's
 * session acting as another role) that reaches a protected table.
 */
void
lockbox_enforce_planned(PlannedStmt *pstmt, const char *query_string)
{
	Oid			user = GetUserId();
	ListCell   *lc;
	const char *sender;

	if (!is_engineer(user) && !switched_away(user))
		return;
	refuse_stat_funcs(pstmt);
	if ((sender = plan_reaches_client()) == NULL)
		return;
	foreach(lc, pstmt->rtable)
	{
		RangeTblEntry *rte = (RangeTblEntry *) lfirst(lc);
		Oid			target;

		if (rte->rtekind != RTE_RELATION)
			continue;
		target = protected_target(rte->relid);
		if (!OidIsValid(target))
			continue;
		set_statement(command_name(pstmt->commandType), query_string, NULL);
		refuse_plan_to_client(target, sender);
	}
}

/*
 * An engineer's statement on protected data finishes: auto_explain prints
 * its plan as it ends, and the settings may have changed since it was
 * planned (SELECT set_config('client_min_messages', 'log', false), ...
 * FROM invoices).  Refused then, before the plan is printed.
 */
void
lockbox_enforce_executor_finish(QueryDesc *queryDesc)
{
	ListCell   *lc;
	const char *sender;

	foreach(lc, open_statements)
	{
		OpenStatement *os = (OpenStatement *) lfirst(lc);

		if (os->queryDesc != queryDesc)
			continue;
		if ((sender = plan_reaches_client()) == NULL)
			return;
		set_recorded_statement(os->command, &os->query);
		refuse_plan_to_client(os->relids[0], sender);
	}
}

/*
 * EXPLAIN by an engineer: does it show numbers (estimates, or ANALYZE's row
 * counts)?  Returns the previous state, for lockbox_enforce_explain_end.
 */
int
lockbox_enforce_explain_begin(Node *node)
{
	int			prev = explain_shows_numbers;
	bool		analyze = false;
	bool		costs = true;
	bool		buffers = false;
	ListCell   *lc;

	if (!IsA(node, ExplainStmt))
		return prev;
	foreach(lc, ((ExplainStmt *) node)->options)
	{
		DefElem    *opt = (DefElem *) lfirst(lc);

		if (strcmp(opt->defname, "analyze") == 0)
			analyze = defGetBoolean(opt);
		else if (strcmp(opt->defname, "costs") == 0)
			costs = defGetBoolean(opt);
		else if (strcmp(opt->defname, "buffers") == 0)
			buffers = defGetBoolean(opt);
	}
	/*
	 * (BUFFERS without ANALYZE shows what planning read: with the pages of
	 * the index the planner probes for a column's actual extremes, every
	 * tenant's entries.)
	 */
	explain_shows_numbers = (analyze || costs || buffers) ? 1 : 0;
	return prev;
}

void
lockbox_enforce_explain_end(int prev)
{
	explain_shows_numbers = prev;
}

/*
 * DECLARE ... WITH HOLD: the statements it starts are refused when they
 * reach protected tables (refuse_held_cursor).  Returns the previous state,
 * for lockbox_enforce_cursor_end, which runs after every utility statement
 * (and also forgets a COPY TO's record, see copy_to_recorded).
 */
int
lockbox_enforce_cursor_begin(Node *node)
{
	int			prev = declaring_held_cursor;

	if (IsA(node, DeclareCursorStmt) &&
		(((DeclareCursorStmt *) node)->options & CURSOR_OPT_HOLD) != 0)
		declaring_held_cursor = 1;
	return prev;
}

/*
 * A utility statement failed.  A COPY ... TO of a protected table recorded
 * as allowed is refused by core before its query starts when the engineer
 * lacks the privilege (DoCopy checks it): recorded as refused, as
 * lockbox_enforce_run_failed records the refusals of a query under way.
 * Runs in the error's PG_CATCH.
 */
void
lockbox_enforce_utility_failed(void)
{
	ErrorData  *edata;
	MemoryContext old;

	if (copy_to_recorded == NULL || run_failure_recorded ||
		geterrcode() != ERRCODE_INSUFFICIENT_PRIVILEGE)
		return;
	copy_to_recorded = NULL;
	old = MemoryContextSwitchTo(CurTransactionContext);
	edata = CopyErrorData();
	MemoryContextSwitchTo(old);
	if (!refusal_message(edata))
	{
		FreeErrorData(edata);
		return;
	}
	run_failure_recorded = true;
	lockbox_count(LB_REFUSALS);
	lockbox_access_refused("COPY TO", &copy_to_query, copy_to_item.relid,
						   copy_to_item.nrequests, copy_to_item.requests,
						   edata->message);
	FreeErrorData(edata);
}

void
lockbox_enforce_cursor_end(int prev)
{
	declaring_held_cursor = prev;
	copy_to_recorded = NULL;
}

static void
refuse_always(Oid relid, const char *what)
{
	char	   *relname = lockbox_relname(relid);
	char	   *msg;

	stmt_command = what;
	if (!is_engineer(GetUserId()))
		refuse_switched(relid);
	msg = psprintf("%s is not allowed on lockbox-protected table \"%s\"", what, relname);
	record_refusal(relid, msg);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 errdetail("Engineers never run %s on a table protected by lockbox, whatever their access.",
					   what),
			 errhint("Under an approved write request (lockbox_request(tenant, reason, access => 'write')), change rows with INSERT, UPDATE or DELETE.")));
}

/*
 * A relation a utility statement writes into or empties, with every table
 * whose rows it reaches: the protected one among them, if any.
 */
static Oid
protected_within(Oid relid, bool with_children)
{
	Oid			target = protected_target(relid);

	if (OidIsValid(target))
		return target;
	if (with_children)
	{
		ListCell   *lc;

		foreach(lc, find_all_inheritors(relid, NoLock, NULL))
		{
			if (protected_rel(lfirst_oid(lc)) != NULL)
				return lfirst_oid(lc);
		}
	}
	return InvalidOid;
}

/*
 * The protected table a view's query reaches, through its relations, the
 * views among them, their partitions and children, and its sublinks: what
 * LOCK TABLE on the view locks.
 */
typedef struct ViewWalk
{
	Oid			found;
	List	   *seen;			/* views already walked */
} ViewWalk;

static bool view_walker(Node *node, ViewWalk *walk);

static void
walk_view(Oid viewid, ViewWalk *walk)
{
	Relation	view;

	if (list_member_oid(walk->seen, viewid))
		return;
	walk->seen = lappend_oid(walk->seen, viewid);
	view = table_open(viewid, AccessShareLock);
	(void) query_tree_walker(get_view_query(view), view_walker, walk,
							 QTW_EXAMINE_RTES_BEFORE);
	table_close(view, AccessShareLock);
}

static bool
view_walker(Node *node, ViewWalk *walk)
{
	if (node == NULL || OidIsValid(walk->found))
		return false;
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION)
		{
			if (rte->relkind == RELKIND_VIEW)
				walk_view(rte->relid, walk);
			else
				walk->found = protected_within(rte->relid, true);
		}
		return false;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, view_walker, walk,
								 QTW_EXAMINE_RTES_BEFORE);
	return expression_tree_walker(node, view_walker, walk);
}

/* Refuse a statement naming relations if it reaches a protected table. */
static void
refuse_relations(List *rangevars, const char *what)
{
	ListCell   *lc;

	foreach(lc, rangevars)
	{
		RangeVar   *rv = (RangeVar *) lfirst(lc);
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);
		Oid			protected;

		if (!OidIsValid(relid))
			continue;
		if (get_rel_relkind(relid) == RELKIND_VIEW)
		{
			ViewWalk	walk = {InvalidOid, NIL};

			walk_view(relid, &walk);
			protected = walk.found;
		}
		else
			protected = protected_within(relid, rv->inh);
		if (OidIsValid(protected))
			refuse_always(protected, what);
	}
}

/*
 * TRUNCATE ... CASCADE also empties every table that references the named
 * ones through a foreign key, and the tables referencing those: refused when
 * one of them holds protected rows, as if it were named.
 */
static void
refuse_truncate_cascade(List *rangevars)
{
	List	   *rels = NIL;
	List	   *next = NIL;
	ListCell   *lc;

	foreach(lc, rangevars)
	{
		RangeVar   *rv = (RangeVar *) lfirst(lc);
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);

		if (OidIsValid(relid))
			next = lappend_oid(next, relid);
	}
	while (next != NIL)
	{
		List	   *found = NIL;

		foreach(lc, next)
		{
			ListCell   *lc2;

			foreach(lc2, find_all_inheritors(lfirst_oid(lc), NoLock, NULL))
			{
				Oid			rel = lfirst_oid(lc2);
				Oid			protected;

				if (list_member_oid(rels, rel))
					continue;
				rels = lappend_oid(rels, rel);
				found = lappend_oid(found, rel);
				protected = protected_target(rel);
				if (OidIsValid(protected))
					refuse_always(protected, "TRUNCATE");
			}
		}
		next = NIL;
		foreach(lc, heap_truncate_find_FKs(found))
		{
			if (!list_member_oid(rels, lfirst_oid(lc)))
				next = lappend_oid(next, lfirst_oid(lc));
		}
	}
}

/* Is role a member of one of lockbox's group roles (not as a superuser)? */
static bool
lockbox_member(Oid role)
{
	static const char *const groups[] = {
		"lockbox_engineer", "lockbox_reviewer", "lockbox_approver", "lockbox_auditor"
	};

	if (superuser_arg(role))
		return false;
	for (int i = 0; i < lengthof(groups); i++)
	{
		Oid			group = get_role_oid(groups[i], true);

		if (OidIsValid(group) && is_member_of_role_nosuper(role, group))
			return true;
	}
	return false;
}

/*
 * LISTEN on a channel other than lockbox's own, in a database with protected
 * tables, by a session of a member of lockbox's roles: NOTIFY payloads are
 * the application's to choose, and a trigger that notifies a row's values
 * would hand every tenant's rows to an engineer, past the policies and the
 * access log, or another tenant's to an approver.  Notifications go to the
 * session, whatever role it acts as: refused when its session user or the
 * role it acts as is such a member.
 */
static void
refuse_listen(const char *channel)
{
	Oid			user = GetUserId();
	Oid			session = GetSessionUserId();
	Oid			member;

	if (strcmp(channel, "lockbox") == 0)
		return;
	if (lockbox_member(user))
		member = user;
	else if (lockbox_member(session))
		member = session;
	else
		return;
	cache_check_generation();
	if (!cache.valid)
		load_protected();
	if (!cache.installed || hash_get_num_entries(cache.protected) == 0)
		return;
	lockbox_count(LB_REFUSALS);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" may not listen on channel \"%s\" in a database with lockbox-protected tables",
					lockbox_role_name(member), channel),
			 errdetail("Notifications on it carry what the application's sessions send, which may be any tenant's data; lockbox's engineers, reviewers, approvers and auditors listen on channel \"lockbox\" only."),
			 errhint("LISTEN lockbox.")));
}

/*
 * TRUNCATE, LOCK TABLE and COPY FROM reaching a protected table: never for
 * engineers (LOCK would let any of them stop the application).  COPY TO: as a
 * SELECT.  LISTEN: refuse_listen.
 */
void
lockbox_enforce_utility(Node *node, const char *query)
{
	Oid			user = GetUserId();

	set_statement("", query, NULL);

	if (IsA(node, ListenStmt))
		refuse_listen(((ListenStmt *) node)->conditionname);
	else if (IsA(node, TruncateStmt))
	{
		TruncateStmt *stmt = (TruncateStmt *) node;

		if (is_engineer(user) || switched_away(user))
		{
			refuse_relations(stmt->relations, "TRUNCATE");
			if (stmt->behavior == DROP_CASCADE)
				refuse_truncate_cascade(stmt->relations);
		}
	}
	else if (IsA(node, LockStmt))
	{
		if (is_engineer(user) || switched_away(user))
			refuse_relations(((LockStmt *) node)->relations, "LOCK TABLE");
	}
	else if (IsA(node, CopyStmt))
	{
		CopyStmt   *stmt = (CopyStmt *) node;
		Oid			relid;
		Oid			protected;

		if (stmt->relation == NULL ||
			!(is_engineer(user) || switched_away(user)))
			return;
		relid = RangeVarGetRelid(stmt->relation, NoLock, true);
		if (!OidIsValid(relid))
			return;
		protected = protected_within(relid, stmt->is_from);
		if (!OidIsValid(protected))
			return;
		if (!is_engineer(user))
		{
			stmt_command = stmt->is_from ? "COPY FROM" : "COPY TO";
			refuse_switched(protected);
		}
		if (stmt->is_from)
			refuse_always(protected, "COPY FROM");
		stmt_command = "COPY TO";
		if (protected != relid)
			refuse_part_of(relid, protected);
		{
			LockboxAccessItem item;

			check_access(relid, false, &item);
			lockbox_access_allowed(stmt_command, recorded_query(), 1, &item);
			copy_to_recorded = query;
			copy_to_item = item;
			copy_to_query = *recorded_query();
			xact_reached = relid;
		}
	}
}

/*
 * Has the engineer a session in this database (other than except_pid) that
 * the worker would end?  Read without a lock: a session that starts later
 * finds the access already ended at its first statement.
 */
bool
lockbox_has_sessions(Oid engineer, int except_pid)
{
	for (uint32 i = 0; i < ProcGlobal->allProcCount; i++)
	{
		PGPROC	   *proc = GetPGProcByNumber(i);
		Oid			role = proc->roleId;

		if (proc->pid == 0 || proc->pid == except_pid ||
			proc->databaseId != MyDatabaseId || !OidIsValid(role) ||
			proc->isBackgroundWorker)
			continue;
		/* a PGPROC no process uses any more keeps its last pid */
		if (BackendPidGetProc(proc->pid) != proc)
			continue;
		/* members, inheriting or not: SET ROLE makes them engineers */
		if (!superuser_arg(role) && is_member_of_role(role, engineer))
			return true;
	}
	return false;
}
