/*-------------------------------------------------------------------------
 *
 * store.c
 *		Writing lockbox's own rows without the planner.
 *
 * A transition writes a handful of rows into lockbox's tables: the request,
 * its audit row, its notifications.  Through SPI each statement pays for its
 * executor start-up at every call (the plan tree, projections, a CTE's
 * subplans), which was most of what a transition cost besides its commit.
 * These functions write rows the way logical replication's apply worker does
 * (execReplication.c): through the table access method, with the executor's
 * index maintenance (unique checks, partial indexes), column defaults, NOT
 * NULL and CHECK constraints, row and statement triggers, and routing into
 * the partition a row belongs to.  Privileges and row security are not
 * checked: callers run as lockbox, between lockbox_enter and lockbox_leave,
 * on lockbox's own tables.
 *
 * A store covers the tables named when it is opened, for one call; it is
 * closed before the call returns (or goes away with the call's memory on an
 * error).  Rows are read and written with the transaction's current command
 * id; lockbox_store_close makes them visible to what comes next.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/execPartition.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "lockbox.h"

typedef struct StoreRel
{
	Relation	rel;
	ResultRelInfo *rri;			/* the table's (the root, when partitioned) */
	RangeTblEntry *rte;
	TupleTableSlot *slot;		/* the row being built */
	bool	   *set;			/* columns given a value for the row */
	ItemPointerData tid;		/* the row fetched, for an update */
	PartitionTupleRouting *proute;
	ModifyTableState *mtstate;
	bool		indexes_open;	/* see open_indexes */
	bool		inserted;		/* statement triggers fired, to fire after */
	bool		updated;
	bool		deleted;
	struct ExprCache *cache;	/* the table's defaults */
	bool		sql;			/* written with SQL statements (see needs_sql) */
} StoreRel;

struct LockboxStore
{
	EState	   *estate;
	int			nrels;
	StoreRel   *rels;
};

/*
 * The executor builds a table's CHECK constraints, its column defaults and
 * its partial indexes' predicates for each ResultRelInfo, from their stored
 * node trees, through the planner's expression preprocessing: for a store
 * opened at every call that was a good share of a transition.  The planned
 * trees are kept per backend as CachedExpressions (plancache.c marks one
 * invalid when a function or type it depends on changes) and dropped at a
 * relcache invalidation of their table (a constraint, default or index
 * added, dropped or changed invalidates it).  Each store builds its own ExprStates from
 * them: an ExprState keeps pointers into the memory of the query it first
 * ran in, and must not outlive it.
 */
typedef struct ExprCache
{
	Oid			relid;
	int			ncheck;
	CachedExpression **checks;	/* in the order of the table's constr->check */
	int			nindexes;
	Oid		   *indexes;
	CachedExpression **predicates;	/* of indexes[i], NULL for a full index */
	int			natts;
	CachedExpression **defaults;	/* of each column (or its domain), or NULL;
									 * a stored generated column's expression */
} ExprCache;

static List *expr_caches = NIL;

/*
 * A store's ExprStates point into the trees: trees dropped while a store is
 * open (a trigger of the table's, say, opened a relation and took an
 * invalidation) are freed only once no store is open, or at the end of the
 * transaction.
 */
static List *expr_garbage = NIL;
static int	open_stores = 0;

static void
free_cached(CachedExpression **ces, int n)
{
	for (int i = 0; i < n; i++)
		if (ces[i] != NULL)
			FreeCachedExpression(ces[i]);
	pfree(ces);
}

static void
expr_collect_garbage(void)
{
	ListCell   *lc;

	if (open_stores > 0)
		return;
	foreach(lc, expr_garbage)
	{
		ExprCache  *c = lfirst(lc);

		free_cached(c->checks, c->ncheck);
		free_cached(c->predicates, c->nindexes);
		free_cached(c->defaults, c->natts);
		pfree(c->indexes);
		pfree(c);
	}
	list_free(expr_garbage);
	expr_garbage = NIL;
}

/*
 * A relcache invalidation of one table drops that table's trees (InvalidOid:
 * of every table).  Other tables' invalidations, which come at every access
 * change on a busy server (see lockbox_access_changed), leave them be.
 */
static void
expr_cache_inval(Datum arg, Oid relid)
{
	MemoryContext old = MemoryContextSwitchTo(CacheMemoryContext);
	ListCell   *lc;

	foreach(lc, expr_caches)
	{
		ExprCache  *c = lfirst(lc);

		if (OidIsValid(relid) && c->relid != relid)
			continue;
		expr_garbage = lappend(expr_garbage, c);
		expr_caches = foreach_delete_current(expr_caches, lc);
	}
	MemoryContextSwitchTo(old);
	expr_collect_garbage();
}

/* At the end of a transaction: no store is open any more. */
void
lockbox_store_xact(XactEvent event)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		open_stores = 0;
		expr_collect_garbage();
	}
}

static bool
all_valid(CachedExpression **ces, int n)
{
	for (int i = 0; i < n; i++)
		if (ces[i] != NULL && !ces[i]->is_valid)
			return false;
	return true;
}

static ExprCache *
expr_cache(ResultRelInfo *rri)
{
	static bool registered = false;
	Relation	rel = rri->ri_RelationDesc;
	TupleDesc	td = RelationGetDescr(rel);
	TupleConstr *constr = td->constr;
	ListCell   *lc;
	ExprCache  *c;
	MemoryContext old;

	foreach(lc, expr_caches)
	{
		c = lfirst(lc);
		if (c->relid != RelationGetRelid(rel))
			continue;
		if (all_valid(c->checks, c->ncheck) &&
			all_valid(c->predicates, c->nindexes) &&
			all_valid(c->defaults, c->natts))
			return c;
		/* a function or type under it changed: build it anew */
		expr_caches = foreach_delete_current(expr_caches, lc);
		old = MemoryContextSwitchTo(CacheMemoryContext);
		expr_garbage = lappend(expr_garbage, c);
		MemoryContextSwitchTo(old);
		break;
	}
	if (!registered)
	{
		CacheRegisterRelcacheCallback(expr_cache_inval, (Datum) 0);
		registered = true;
	}

	/*
	 * (the indexes' predicates are kept too: a store opens its indexes only
	 * when it needs them, but this once it needs their descriptions now)
	 */
	if (rri->ri_IndexRelationDescs == NULL && rel->rd_rel->relhasindex &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ExecOpenIndices(rri, false);
	/* (built in the caller's memory, then kept: an error leaves nothing) */
	c = palloc0(sizeof(ExprCache));
	c->relid = RelationGetRelid(rel);
	c->ncheck = constr ? constr->num_check : 0;
	c->checks = palloc0(sizeof(CachedExpression *) * Max(c->ncheck, 1));
	c->nindexes = rri->ri_NumIndices;
	c->indexes = palloc0(sizeof(Oid) * Max(c->nindexes, 1));
	c->predicates = palloc0(sizeof(CachedExpression *) * Max(c->nindexes, 1));
	c->natts = td->natts;
	c->defaults = palloc0(sizeof(CachedExpression *) * Max(c->natts, 1));
	PG_TRY();
	{
		for (int i = 0; i < c->ncheck; i++)
			c->checks[i] = GetCachedExpression(stringToNode(constr->check[i].ccbin));
		for (int i = 0; i < c->nindexes; i++)
		{
			IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

			c->indexes[i] = RelationGetRelid(rri->ri_IndexRelationDescs[i]);
			if (ii->ii_Predicate != NIL)
				c->predicates[i] = GetCachedExpression((Node *) copyObject(ii->ii_Predicate));
		}
		for (int i = 0; i < c->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(td, i);
			Node	   *expr;

			if (att->attisdropped)
				continue;
			/*
			 * (the column's default, else its domain's; for a stored
			 * generated column, its expression)
			 */
			expr = build_column_default(rel, i + 1);
			if (expr != NULL)
				c->defaults[i] = GetCachedExpression(expr);
		}
	}
	PG_CATCH();
	{
		for (int i = 0; i < c->ncheck; i++)
			if (c->checks[i] != NULL)
				FreeCachedExpression(c->checks[i]);
		for (int i = 0; i < c->nindexes; i++)
			if (c->predicates[i] != NULL)
				FreeCachedExpression(c->predicates[i]);
		for (int i = 0; i < c->natts; i++)
			if (c->defaults[i] != NULL)
				FreeCachedExpression(c->defaults[i]);
		PG_RE_THROW();
	}
	PG_END_TRY();

	/* kept: moved into long-lived memory */
	old = MemoryContextSwitchTo(CacheMemoryContext);
	{
		ExprCache  *kept = palloc(sizeof(ExprCache));

		*kept = *c;
		kept->checks = memcpy(palloc(sizeof(CachedExpression *) * Max(c->ncheck, 1)),
							  c->checks, sizeof(CachedExpression *) * Max(c->ncheck, 1));
		kept->indexes = memcpy(palloc(sizeof(Oid) * Max(c->nindexes, 1)),
							   c->indexes, sizeof(Oid) * Max(c->nindexes, 1));
		kept->predicates = memcpy(palloc(sizeof(CachedExpression *) * Max(c->nindexes, 1)),
								  c->predicates, sizeof(CachedExpression *) * Max(c->nindexes, 1));
		kept->defaults = memcpy(palloc(sizeof(CachedExpression *) * Max(c->natts, 1)),
								c->defaults, sizeof(CachedExpression *) * Max(c->natts, 1));
		expr_caches = lappend(expr_caches, kept);
		c = kept;
	}
	MemoryContextSwitchTo(old);
	return c;
}

/*
 * Give a store's ResultRelInfo its table's constraints and generated
 * columns, as ExprStates of the store's own, from the planned trees kept
 * (open_indexes gives it the predicates).
 */
static ExprCache *
use_expr_cache(EState *estate, ResultRelInfo *rri)
{
	ExprCache  *c = expr_cache(rri);
	MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);

	if (c->ncheck > 0)
	{
		rri->ri_ConstraintExprs = palloc(sizeof(ExprState *) * c->ncheck);
		for (int i = 0; i < c->ncheck; i++)
			rri->ri_ConstraintExprs[i] = ExecInitExpr((Expr *) c->checks[i]->expr, NULL);
	}
	/*
	 * Stored generated columns: computed at every insert and update (as
	 * ExecInitStoredGenerated would build them, planned anew each time).
	 */
	if (rri->ri_RelationDesc->rd_att->constr &&
		rri->ri_RelationDesc->rd_att->constr->has_generated_stored)
	{
		TupleDesc	td = RelationGetDescr(rri->ri_RelationDesc);

		rri->ri_GeneratedExprs = palloc0(sizeof(ExprState *) * td->natts);
		rri->ri_NumGeneratedNeeded = 0;
		for (int i = 0; i < td->natts && i < c->natts; i++)
		{
			if (TupleDescAttr(td, i)->attgenerated != ATTRIBUTE_GENERATED_STORED)
				continue;
			if (c->defaults[i] == NULL)
				elog(ERROR, "no generation expression found for column number %d of table \"%s\"",
					 i + 1, RelationGetRelationName(rri->ri_RelationDesc));
			rri->ri_GeneratedExprs[i] = ExecInitExpr((Expr *) c->defaults[i]->expr, NULL);
			rri->ri_NumGeneratedNeeded++;
		}
	}
	MemoryContextSwitchTo(old);
	return c;
}

/*
 * lockbox's relations and sequences by name: their OIDs, looked up once per
 * backend and kept until pg_class or pg_namespace changes (a transition
 * names a dozen of them, each a catalog lookup by name before).  Misses are
 * not kept.
 */
#define RELID_CACHE_SIZE	64

typedef struct RelidEntry
{
	char		name[NAMEDATALEN];
	Oid			relid;
} RelidEntry;

static RelidEntry relid_cache[RELID_CACHE_SIZE];
static int	relid_cached = 0;
static Oid	relid_nsp = InvalidOid;

static void
relid_cache_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	relid_cached = 0;
	relid_nsp = InvalidOid;
}

/* The OID of lockbox.<name> (a table, index or sequence); InvalidOid if none. */
Oid
lockbox_relid(const char *name)
{
	static bool registered = false;
	Oid			relid;

	for (int i = 0; i < relid_cached; i++)
		if (strcmp(relid_cache[i].name, name) == 0)
			return relid_cache[i].relid;
	if (!registered)
	{
		CacheRegisterSyscacheCallback(RELNAMENSP, relid_cache_inval, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, relid_cache_inval, (Datum) 0);
		registered = true;
	}
	if (!OidIsValid(relid_nsp))
		relid_nsp = get_namespace_oid("lockbox", true);
	if (!OidIsValid(relid_nsp))
		return InvalidOid;
	relid = get_relname_relid(name, relid_nsp);
	if (OidIsValid(relid) && relid_cached < RELID_CACHE_SIZE &&
		strlen(name) < NAMEDATALEN)
	{
		strlcpy(relid_cache[relid_cached].name, name, NAMEDATALEN);
		relid_cache[relid_cached].relid = relid;
		relid_cached++;
	}
	return relid;
}

/*
 * Close a result relation's indexes, keeping their locks to the end of the
 * transaction as the table's are kept (ExecCloseIndices would release them,
 * and the next transition of the transaction would lock them again).
 */
static void
close_indexes_keep_locks(ResultRelInfo *rri)
{
	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		if (rri->ri_IndexRelationDescs[i] != NULL)
			index_close(rri->ri_IndexRelationDescs[i], NoLock);
	}
}

/*
 * Give the open indexes of rri that have none yet their predicates, as
 * ExprStates of the store's own, from the trees kept in c.  (Else
 * ExecInsertIndexTuples plans each predicate anew for every store.)
 */
static void
use_predicates(EState *estate, ResultRelInfo *rri, ExprCache *c)
{
	MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);

	for (int i = 0; i < rri->ri_NumIndices && i < c->nindexes; i++)
	{
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

		if (c->predicates[i] != NULL && ii->ii_PredicateState == NULL &&
			c->indexes[i] == RelationGetRelid(rri->ri_IndexRelationDescs[i]))
			ii->ii_PredicateState = ExecInitQual((List *) c->predicates[i]->expr, NULL);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Open table r's indexes, with its partial indexes' predicates from the
 * trees kept.  A store opens them only for a row that needs index entries:
 * an insert, or an update that was not HOT.  An update that changes no
 * indexed column and finds room on its page, a delete, or a table the call
 * does not write at all, then costs no index opened or locked (a transition
 * locks more relations than a backend's fast-path lock slots hold).
 */
static void
open_indexes(LockboxStore *store, StoreRel *r)
{
	ResultRelInfo *rri = r->rri;

	if (r->indexes_open)
		return;
	/* (expr_cache opened them, when it built the table's trees) */
	if (rri->ri_IndexRelationDescs == NULL)
		ExecOpenIndices(rri, false);
	use_predicates(store->estate, rri, r->cache);
	r->indexes_open = true;
}

/*
 * Leave trigger name of table t unfired by the store's writes: the caller
 * does what it would do.  (The ResultRelInfo's trigger descriptor is its
 * own copy.)  A table the store writes with SQL (see needs_sql) fires it as
 * SQL does: returns false then.
 */
bool
lockbox_store_skip_trigger(LockboxStore *store, int t, const char *name)
{
	StoreRel   *r = &store->rels[t];
	TriggerDesc *trigdesc = r->rri->ri_TrigDesc;

	if (r->sql)
		return false;
	if (trigdesc == NULL)
		return true;
	for (int i = 0; i < trigdesc->numtriggers; i++)
		if (strcmp(trigdesc->triggers[i].tgname, name) == 0)
			trigdesc->triggers[i].tgenabled = TRIGGER_DISABLED;
	return true;
}

/*
 * What writing through the table access method would not do as SQL does:
 * rules, and statement triggers with transition tables (a trigger that
 * ships new audit rows somewhere, say).  A table with either is written
 * with INSERT and UPDATE statements instead: slower, exactly as SQL.
 */
static bool
needs_sql(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;

	return rel->rd_rules != NULL ||
		(td != NULL && (td->trig_insert_new_table || td->trig_update_old_table ||
						td->trig_update_new_table || td->trig_delete_old_table));
}

/* Open lockbox.<tables[i]> for writing, as table i of the store. */
LockboxStore *
lockbox_store_open(int ntables, const char *const *tables)
{
	LockboxStore *store = palloc0(sizeof(LockboxStore));
	List	   *rtable = NIL;
	EState	   *estate;

	open_stores++;
	store->nrels = ntables;
	store->rels = palloc0(sizeof(StoreRel) * ntables);
	for (int i = 0; i < ntables; i++)
	{
		StoreRel   *r = &store->rels[i];
		Oid			relid = lockbox_relid(tables[i]);

		if (!OidIsValid(relid))
			elog(ERROR, "lockbox.%s is missing", tables[i]);
		r->rel = table_open(relid, RowExclusiveLock);
		if (r->rel->rd_rel->relkind != RELKIND_RELATION &&
			r->rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("\"lockbox.%s\" is not a table", tables[i])));
		r->rte = makeNode(RangeTblEntry);
		r->rte->rtekind = RTE_RELATION;
		r->rte->relid = relid;
		r->rte->relkind = r->rel->rd_rel->relkind;
		r->rte->rellockmode = RowExclusiveLock;
		rtable = lappend(rtable, r->rte);
	}

	store->estate = estate = CreateExecutorState();
	ExecInitRangeTable(estate, rtable);
	estate->es_output_cid = GetCurrentCommandId(true);
	for (int i = 0; i < ntables; i++)
	{
		StoreRel   *r = &store->rels[i];

		r->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(r->rri, r->rel, i + 1, NULL, 0);
		/* (lets ExecGetTriggerResultRel find it, as the apply worker does) */
		estate->es_opened_result_relations =
			lappend(estate->es_opened_result_relations, r->rri);
		r->cache = use_expr_cache(estate, r->rri);
		r->sql = needs_sql(r->rel);
		/* (virtual: its values are the row, whatever was fetched into it) */
		r->slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(r->rel),
										 &TTSOpsVirtual);
		r->set = palloc0(sizeof(bool) * RelationGetDescr(r->rel)->natts);
	}
	AfterTriggerBeginQuery();
	return store;
}

/* The index of column name in td, or an error naming its table. */
#define COLUMN_CACHE_SIZE	251
static int
column_in(TupleDesc td, const char *name, const char *table)
{
	/*
	 * The columns are named by string constants, looked up for every value
	 * a transition reads or writes: the last answer for each (descriptor,
	 * name) pair is kept, and used when the column it names is still name
	 * (one comparison, not one per column before it; a descriptor freed
	 * and its memory reused cannot mislead it).
	 */
	static struct
	{
		TupleDesc	td;
		const char *name;
		int			i;
	}			kept[COLUMN_CACHE_SIZE];
	uint32		h = (uint32) ((((uintptr_t) td) >> 4) ^ (((uintptr_t) name) >> 2)) %
		COLUMN_CACHE_SIZE;

	if (kept[h].td == td && kept[h].name == name && kept[h].i < td->natts)
	{
		Form_pg_attribute att = TupleDescAttr(td, kept[h].i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return kept[h].i;
	}
	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
		{
			kept[h].td = td;
			kept[h].name = name;
			kept[h].i = i;
			return i;
		}
	}
	if (table == NULL)			/* (a copy of its row type: named by it) */
		elog(ERROR, "column \"%s\" of table \"%s\" is missing", name,
			 format_type_be(td->tdtypeid));
	elog(ERROR, "column \"%s\" of table \"lockbox.%s\" is missing", name, table);
	return -1;					/* keep compiler quiet */
}

static int
column(StoreRel *r, const char *name)
{
	return column_in(RelationGetDescr(r->rel), name, RelationGetRelationName(r->rel));
}

/* Start a new row for table t: every column NULL until set. */
void
lockbox_store_new_row(LockboxStore *store, int t)
{
	StoreRel   *r = &store->rels[t];
	TupleDesc	td = RelationGetDescr(r->rel);

	ExecClearTuple(r->slot);
	for (int i = 0; i < td->natts; i++)
	{
		r->slot->tts_values[i] = (Datum) 0;
		r->slot->tts_isnull[i] = true;
		r->set[i] = false;
	}
}

/*
 * Give column name of the row being built for table t a value of type type.
 * A name may go into a text column and a text into a name column; any other
 * difference is an error, never a misread datum.
 */
void
lockbox_store_set(LockboxStore *store, int t, const char *name,
				  Datum value, Oid type, bool isnull)
{
	StoreRel   *r = &store->rels[t];
	int			i = column(r, name);
	Oid			coltype = TupleDescAttr(RelationGetDescr(r->rel), i)->atttypid;

	if (!isnull && coltype != type)
	{
		if (type == NAMEOID && coltype == TEXTOID)
			value = CStringGetTextDatum(NameStr(*DatumGetName(value)));
		else if (type == TEXTOID && coltype == NAMEOID)
		{
			Name		n = palloc0(NAMEDATALEN);
			char	   *str = TextDatumGetCString(value);

			/* (as the text-to-name cast: never half a character) */
			memcpy(NameStr(*n), str, pg_mbcliplen(str, strlen(str), NAMEDATALEN - 1));
			value = NameGetDatum(n);
		}
		else
			elog(ERROR, "column \"%s\" of table \"lockbox.%s\" is of type %s, not %s",
				 name, RelationGetRelationName(r->rel),
				 format_type_be(coltype), format_type_be(type));
	}
	r->slot->tts_values[i] = value;
	r->slot->tts_isnull[i] = isnull;
	r->set[i] = true;
}

/* Columns not set take their defaults, as in an INSERT that omits them. */
static void
apply_defaults(LockboxStore *store, StoreRel *r)
{
	TupleDesc	td = RelationGetDescr(r->rel);
	ExprContext *econtext = GetPerTupleExprContext(store->estate);

	for (int i = 0; i < td->natts && i < r->cache->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);
		ExprState  *state;
		MemoryContext old;

		if (r->set[i] || r->cache->defaults[i] == NULL || att->attgenerated)
			continue;
		old = MemoryContextSwitchTo(store->estate->es_query_cxt);
		state = ExecInitExpr((Expr *) r->cache->defaults[i]->expr, NULL);
		MemoryContextSwitchTo(old);
		r->slot->tts_values[i] = ExecEvalExprSwitchContext(state, econtext,
														  &r->slot->tts_isnull[i]);
		if (!r->slot->tts_isnull[i] && !att->attbyval)
			r->slot->tts_values[i] = datumCopy(r->slot->tts_values[i],
											   att->attbyval, att->attlen);
	}
}

/*
 * Write the row built for table t with a statement (see needs_sql): the
 * columns set, and, for an update, the row fetched by its ctid; or delete
 * that row.
 */
static void
sql_write(StoreRel *r, CmdType cmd)
{
	bool		update = (cmd != CMD_INSERT);

	TupleDesc	td = RelationGetDescr(r->rel);
	StringInfoData sql;
	StringInfoData vals;
	Oid		   *types = palloc(sizeof(Oid) * (td->natts + 1));
	Datum	   *values = palloc(sizeof(Datum) * (td->natts + 1));
	char	   *nulls = palloc(td->natts + 1);
	int			n = 0;
	int			ret;

	initStringInfo(&sql);
	initStringInfo(&vals);
	appendStringInfo(&sql, "%s %s ", update ? "UPDATE" : "INSERT INTO",
					 quote_qualified_identifier("lockbox", RelationGetRelationName(r->rel)));
	appendStringInfoString(&sql, update ? "SET " : "(");
	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (!r->set[i] || att->attisdropped || cmd == CMD_DELETE)
			continue;
		types[n] = att->atttypid;
		values[n] = r->slot->tts_values[i];
		nulls[n] = r->slot->tts_isnull[i] ? 'n' : ' ';
		n++;
		if (update)
			appendStringInfo(&sql, "%s%s = $%d", n > 1 ? ", " : "",
							 quote_identifier(NameStr(att->attname)), n);
		else
		{
			appendStringInfo(&sql, "%s%s", n > 1 ? ", " : "",
							 quote_identifier(NameStr(att->attname)));
			appendStringInfo(&vals, "%s$%d", n > 1 ? ", " : "", n);
		}
	}
	if (cmd == CMD_DELETE)
	{
		resetStringInfo(&sql);
		appendStringInfo(&sql, "DELETE FROM %s",
						 quote_qualified_identifier("lockbox", RelationGetRelationName(r->rel)));
	}
	if (update)
	{
		types[n] = TIDOID;
		values[n] = PointerGetDatum(&r->tid);
		nulls[n] = ' ';
		n++;
		appendStringInfo(&sql, " WHERE ctid OPERATOR(pg_catalog.=) $%d", n);
	}
	else
		appendStringInfo(&sql, ") VALUES (%s)", vals.data);
	ret = SPI_execute_with_args(sql.data, n, types, values, nulls, false, 0);
	if (ret < 0)
		elog(ERROR, "SPI_execute_with_args failed for \"%s\": %s",
			 sql.data, SPI_result_code_string(ret));
}

/*
 * ExecSimpleRelationInsert for a row routed into partition target, which
 * skips the partition constraint as the executor's own INSERT does for a
 * routed row (ExecInsert): the routing chose the partition by its bounds.
 * A BEFORE ROW trigger of the partition may change the row, so then it is
 * checked.
 */
static void
insert_routed(ResultRelInfo *target, EState *estate, TupleTableSlot *slot)
{
	Relation	rel = target->ri_RelationDesc;
	List	   *recheck = NIL;

	CheckCmdReplicaIdentity(rel, CMD_INSERT);
	if (target->ri_TrigDesc && target->ri_TrigDesc->trig_insert_before_row)
	{
		if (!ExecBRInsertTriggers(estate, target, slot))
			return;
	}
	if (rel->rd_att->constr && rel->rd_att->constr->has_generated_stored)
		ExecComputeStoredGenerated(target, estate, slot, CMD_INSERT);
	if (rel->rd_att->constr)
		ExecConstraints(target, slot, estate);
	if (target->ri_TrigDesc && target->ri_TrigDesc->trig_insert_before_row)
		ExecPartitionCheck(target, slot, estate, true);
	simple_table_tuple_insert(rel, slot);
	if (target->ri_NumIndices > 0)
		recheck = ExecInsertIndexTuples(target, slot, estate, false, false,
										NULL, NIL);
	ExecARInsertTriggers(estate, target, slot, recheck, NULL);
	list_free(recheck);
}

/* Insert the row built for table t. */
void
lockbox_store_insert(LockboxStore *store, int t)
{
	StoreRel   *r = &store->rels[t];
	EState	   *estate = store->estate;
	ResultRelInfo *target = r->rri;
	TupleTableSlot *slot = r->slot;

	if (r->sql)
	{
		sql_write(r, CMD_INSERT);
		return;
	}
	apply_defaults(store, r);
	ExecStoreVirtualTuple(slot);
	if (!r->inserted)
	{
		ExecBSInsertTriggers(estate, r->rri);
		r->inserted = true;
	}

	if (r->rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
	{
		TupleConversionMap *map;
		TupleTableSlot *partslot;

		if (r->proute == NULL)
		{
			r->mtstate = makeNode(ModifyTableState);
			r->mtstate->ps.plan = NULL;
			r->mtstate->ps.state = estate;
			r->mtstate->operation = CMD_INSERT;
			r->mtstate->resultRelInfo = r->rri;
			r->proute = ExecSetupPartitionTupleRouting(estate, r->rel);
		}
		target = ExecFindPartition(r->mtstate, r->rri, r->proute, slot, estate);
		/* (the partition's indexes are open: their predicates, as kept) */
		use_predicates(estate, target, expr_cache(target));
		partslot = target->ri_PartitionTupleSlot;
		if (partslot == NULL)
			partslot = table_slot_create(target->ri_RelationDesc,
										 &estate->es_tupleTable);
		map = target->ri_RootToPartitionMap;
		if (map != NULL)
			slot = execute_attr_map_slot(map->attrMap, slot, partslot);
		else
		{
			ExecCopySlot(partslot, slot);
			slot = partslot;
		}
	}
	if (target == r->rri)
	{
		open_indexes(store, r);
		ExecSimpleRelationInsert(target, estate, slot);
	}
	else
		insert_routed(target, estate, slot);
	ResetPerTupleExprContext(estate);
}

/*
 * Fetch the row of table t whose primary key (one bigint column) is key, as
 * the row to update, or return false when there is none.  The caller holds
 * the row's lock (or is its only writer): the version read, with a snapshot
 * taken now, is the newest, this transaction's own changes included.
 */
bool
lockbox_store_fetch(LockboxStore *store, int t, int64 key)
{
	StoreRel   *r = &store->rels[t];
	Datum		keyval = Int64GetDatum(key);
	Snapshot	snapshot;
	List	   *rows;

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	/* (deformed with the open relation's descriptor: no copy of it needed) */
	rows = lockbox_store_read(RelationGetRelationName(r->rel), 1, &keyval,
							  snapshot, NULL);
	UnregisterSnapshot(snapshot);
	if (rows == NIL)
		return false;
	ExecClearTuple(r->slot);
	heap_deform_tuple(linitial(rows), RelationGetDescr(r->rel),
					  r->slot->tts_values, r->slot->tts_isnull);
	r->tid = ((HeapTuple) linitial(rows))->t_self;
	memset(r->set, 0, sizeof(bool) * RelationGetDescr(r->rel)->natts);
	return true;
}

/*
 * lockbox_store_fetch for a row this transaction locked and read at *tid (a
 * copy from lockbox_store_lock, say): that version, read by its place
 * rather than through the primary key's index, if it is still the newest;
 * else (this transaction changed the row since, or tid is invalid) by key.
 */
bool
lockbox_store_fetch_version(LockboxStore *store, int t, ItemPointer tid, int64 key)
{
	StoreRel   *r = &store->rels[t];
	TupleDesc	td = RelationGetDescr(r->rel);
	TupleTableSlot *slot;
	Snapshot	snapshot;
	bool		found;
	bool		isnull;
	HeapTuple	tup;

	if (!ItemPointerIsValid(tid))
		return lockbox_store_fetch(store, t, key);
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(r->rel, NULL);
	/* (a version this transaction updated or deleted since is not visible) */
	found = table_tuple_fetch_row_version(r->rel, tid, snapshot, slot);
	UnregisterSnapshot(snapshot);
	if (found)
	{
		Datum		d = slot_getattr(slot, column(r, "id") + 1, &isnull);

		found = !isnull && DatumGetInt64(d) == key;
	}
	if (!found)
	{
		ExecDropSingleTupleTableSlot(slot);
		return lockbox_store_fetch(store, t, key);
	}
	tup = ExecCopySlotHeapTuple(slot);
	ExecDropSingleTupleTableSlot(slot);
	ExecClearTuple(r->slot);
	heap_deform_tuple(tup, td, r->slot->tts_values, r->slot->tts_isnull);
	r->tid = *tid;
	memset(r->set, 0, sizeof(bool) * td->natts);
	return true;
}

/*
 * Update the row fetched for table r (r->tid) to r->slot's values, as the
 * apply worker's ExecSimpleRelationUpdate does: BEFORE ROW triggers, stored
 * generated columns, constraints, the heap, index entries, AFTER ROW
 * triggers.  But the indexes are opened only when the heap update was not
 * HOT and so needs entries in them.
 */
static void
update_row(LockboxStore *store, StoreRel *r, EPQState *epqstate)
{
	EState	   *estate = store->estate;
	ResultRelInfo *rri = r->rri;
	Relation	rel = r->rel;
	TupleTableSlot *slot = r->slot;
	TriggerDesc *trig = rri->ri_TrigDesc;
	List	   *recheck = NIL;
	bool		update_indexes;

	CheckCmdReplicaIdentity(rel, CMD_UPDATE);
	if (trig != NULL && trig->trig_update_before_row &&
		!ExecBRUpdateTriggers(estate, epqstate, rri, &r->tid, NULL, slot, NULL))
		return;					/* a trigger said do nothing */
	if (rel->rd_att->constr && rel->rd_att->constr->has_generated_stored)
		ExecComputeStoredGenerated(rri, estate, slot, CMD_UPDATE);
	if (rel->rd_att->constr)
		ExecConstraints(rri, slot, estate);
	if (rel->rd_rel->relispartition)
		ExecPartitionCheck(rri, slot, estate, true);
	simple_table_tuple_update(rel, &r->tid, slot, estate->es_snapshot,
							  &update_indexes);
	if (update_indexes)
	{
		open_indexes(store, r);
		if (rri->ri_NumIndices > 0)
			recheck = ExecInsertIndexTuples(rri, slot, estate, true, false,
											NULL, NIL);
	}
	ExecARUpdateTriggers(estate, rri, NULL, NULL, &r->tid, NULL, slot,
						 recheck, NULL, false);
	list_free(recheck);
}

/* Update the row fetched for table t with the columns set since. */
void
lockbox_store_update(LockboxStore *store, int t)
{
	StoreRel   *r = &store->rels[t];
	EState	   *estate = store->estate;
	TupleDesc	td = RelationGetDescr(r->rel);
	EPQState	epqstate;

	/* (the updated columns, for triggers that name theirs) */
	for (int i = 0; i < td->natts; i++)
	{
		if (r->set[i])
			r->rte->updatedCols =
				bms_add_member(r->rte->updatedCols,
							   i + 1 - FirstLowInvalidHeapAttributeNumber);
	}
	if (r->sql)
	{
		sql_write(r, CMD_UPDATE);
		return;
	}
	if (!r->updated)
	{
		ExecBSUpdateTriggers(estate, r->rri);
		r->updated = true;
	}
	EvalPlanQualInit(&epqstate, estate, NULL, NIL, -1);
	ExecStoreVirtualTuple(r->slot);
	update_row(store, r, &epqstate);
	EvalPlanQualEnd(&epqstate);
	ResetPerTupleExprContext(estate);
}

/* Delete the row fetched for table t. */
void
lockbox_store_delete(LockboxStore *store, int t)
{
	StoreRel   *r = &store->rels[t];
	EState	   *estate = store->estate;
	TupleTableSlot *searchslot;
	EPQState	epqstate;

	if (r->sql)
	{
		sql_write(r, CMD_DELETE);
		return;
	}
	if (!r->deleted)
	{
		ExecBSDeleteTriggers(estate, r->rri);
		r->deleted = true;
	}
	searchslot = table_slot_create(r->rel, &estate->es_tupleTable);
	searchslot->tts_tid = r->tid;
	EvalPlanQualInit(&epqstate, estate, NULL, NIL, -1);
	ExecSimpleRelationDelete(r->rri, estate, &epqstate, searchslot);
	EvalPlanQualEnd(&epqstate);
	ResetPerTupleExprContext(estate);
}

/* Fire what is left to fire, close the tables, and show the rows. */
void
lockbox_store_close(LockboxStore *store)
{
	EState	   *estate = store->estate;

	for (int i = 0; i < store->nrels; i++)
	{
		StoreRel   *r = &store->rels[i];

		if (r->inserted)
			ExecASInsertTriggers(estate, r->rri, NULL);
		if (r->updated)
			ExecASUpdateTriggers(estate, r->rri, NULL);
		if (r->deleted)
			ExecASDeleteTriggers(estate, r->rri, NULL);
	}
	AfterTriggerEndQuery(estate);
	for (int i = 0; i < store->nrels; i++)
	{
		StoreRel   *r = &store->rels[i];

		if (r->proute != NULL)
			ExecCleanupTupleRouting(r->mtstate, r->proute);
		close_indexes_keep_locks(r->rri);
	}
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	for (int i = 0; i < store->nrels; i++)
		table_close(store->rels[i].rel, NoLock);
	open_stores--;
	expr_collect_garbage();
	CommandCounterIncrement();
}

/*
 * The rows of lockbox.<table> whose primary key begins with the nkeys
 * values keys (of the key columns' own types: bigint, text, oid or regrole),
 * in the key's order, as read with snapshot (registered): copies, and in
 * *td (unless td is NULL) the table's row type.  The caller's memory holds
 * them.
 */
List *
lockbox_store_read(const char *table, int nkeys, const Datum *keys,
				   Snapshot snapshot, TupleDesc *td)
{
	return lockbox_store_read_by(table, NULL, nkeys, keys, snapshot, td);
}

/*
 * How a table is read by one of its indexes: the scan keys' columns,
 * collations and equality functions, and a copy of the table's row type
 * with its constraints (the defaults of columns added since a row was
 * written), for callers to read the rows with.  Kept per backend, like the
 * OIDs above, until pg_class, pg_namespace or the table's relcache entry
 * changes; a copy handed out is never freed (it stays valid for the caller
 * however the cache changes).
 */
#define READ_CACHE_SIZE		32

typedef struct ReadPath
{
	char		table[NAMEDATALEN];
	char		index[NAMEDATALEN]; /* "" for the primary key */
	Oid			relid;
	Oid			indexid;
	int			nkeyatts;
	AttrNumber	attno[INDEX_MAX_KEYS];
	Oid			collation[INDEX_MAX_KEYS];
	RegProcedure eq[INDEX_MAX_KEYS];
	TupleDesc	td;				/* in CacheMemoryContext */
} ReadPath;

static ReadPath read_paths[READ_CACHE_SIZE];
static int	read_paths_cached = 0;

/*
 * The row types handed out, in CacheMemoryContext: a path built again (after
 * a vacuum's statistics, say) reuses its table's when it is still equal, so
 * only a change of the table's columns or defaults leaves an old one behind.
 */
static List *read_descs = NIL;

static TupleDesc
read_desc(Relation rel)
{
	ListCell   *lc;
	TupleDesc	td;
	MemoryContext old;

	foreach(lc, read_descs)
	{
		td = lfirst(lc);
		if (td->tdtypeid == RelationGetDescr(rel)->tdtypeid &&
			equalTupleDescs(td, RelationGetDescr(rel)))
			return td;
	}
	old = MemoryContextSwitchTo(CacheMemoryContext);
	td = CreateTupleDescCopyConstr(RelationGetDescr(rel));
	read_descs = lappend(read_descs, td);
	MemoryContextSwitchTo(old);
	return td;
}

static void
read_paths_inval(Datum arg, int cacheid, uint32 hashvalue)
{
	read_paths_cached = 0;
}

static void
read_paths_relcache_inval(Datum arg, Oid relid)
{
	for (int i = 0; i < read_paths_cached; i++)
		if (!OidIsValid(relid) || read_paths[i].relid == relid ||
			read_paths[i].indexid == relid)
		{
			read_paths_cached = 0;
			return;
		}
}

/* How lockbox.<table> is read by lockbox.<index_name> (NULL: its primary key). */
static ReadPath *
read_path(const char *table, const char *index_name)
{
	static bool registered = false;
	const char *iname = index_name ? index_name : "";
	Oid			relid;
	Oid			indexid;
	Relation	rel;
	Relation	index;
	ReadPath	path;

	for (int i = 0; i < read_paths_cached; i++)
		if (strcmp(read_paths[i].table, table) == 0 &&
			strcmp(read_paths[i].index, iname) == 0)
			return &read_paths[i];
	if (!registered)
	{
		CacheRegisterSyscacheCallback(RELNAMENSP, read_paths_inval, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, read_paths_inval, (Datum) 0);
		CacheRegisterRelcacheCallback(read_paths_relcache_inval, (Datum) 0);
		registered = true;
	}

	relid = lockbox_relid(table);
	if (!OidIsValid(relid))
		elog(ERROR, "lockbox.%s is missing", table);
	rel = table_open(relid, AccessShareLock);
	indexid = index_name ? lockbox_relid(index_name) :
		RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(indexid))
		elog(ERROR, "table \"lockbox.%s\" has no index %s", table,
			 index_name ? index_name : "for its primary key");
	index = index_open(indexid, AccessShareLock);
	if (index->rd_index->indrelid != relid)
		elog(ERROR, "index \"lockbox.%s\" is not on table \"lockbox.%s\"",
			 index_name, table);
	memset(&path, 0, sizeof(path));
	strlcpy(path.table, table, NAMEDATALEN);
	strlcpy(path.index, iname, NAMEDATALEN);
	path.relid = relid;
	path.indexid = indexid;
	path.nkeyatts = index->rd_index->indnkeyatts;
	for (int i = 0; i < path.nkeyatts; i++)
	{
		AttrNumber	attno = index->rd_index->indkey.values[i];
		Form_pg_attribute att;

		path.attno[i] = attno;
		/* (the index's collation: its order is that collation's) */
		path.collation[i] = index->rd_indcollation[i];
		if (attno <= 0)
			continue;			/* an expression: not a key lookups use */
		att = TupleDescAttr(RelationGetDescr(rel), attno - 1);
		switch (att->atttypid)
		{
			case INT8OID:
				path.eq[i] = F_INT8EQ;
				break;
			case TEXTOID:
				path.eq[i] = F_TEXTEQ;
				break;
			case OIDOID:
			case REGROLEOID:
				path.eq[i] = F_OIDEQ;
				break;
			default:
				path.eq[i] = InvalidOid;	/* refused when used as a key */
		}
	}
	path.td = read_desc(rel);
	index_close(index, NoLock);
	table_close(rel, NoLock);

	if (read_paths_cached >= READ_CACHE_SIZE)
		read_paths_cached = 0;
	read_paths[read_paths_cached] = path;
	return &read_paths[read_paths_cached++];
}

/* The same, by the index lockbox.<index_name> of the table (NULL: its primary key). */
List *
lockbox_store_read_by(const char *table, const char *index_name, int nkeys,
					  const Datum *keys, Snapshot snapshot, TupleDesc *td)
{
	ReadPath   *path = read_path(table, index_name);
	ReadPath	p = *path;		/* (an invalidation below may reuse the slot) */
	Relation	rel;
	ScanKeyData skeys[INDEX_MAX_KEYS];
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *result = NIL;

	Assert(nkeys <= p.nkeyatts);
	for (int i = 0; i < nkeys; i++)
	{
		if (p.attno[i] <= 0 || !OidIsValid(p.eq[i]))
			elog(ERROR, "cannot look up lockbox.%s by key column %d of its index",
				 table, i + 1);
		ScanKeyEntryInitialize(&skeys[i], 0, p.attno[i], BTEqualStrategyNumber,
							   InvalidOid, p.collation[i], p.eq[i], keys[i]);
	}
	rel = table_open(p.relid, AccessShareLock);
	scan = systable_beginscan(rel, p.indexid, true, snapshot, nkeys, skeys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		result = lappend(result, heap_copytuple(tup));
	systable_endscan(scan);
	if (td != NULL)
		*td = p.td;
	/* (the lock kept to the end of the transaction) */
	table_close(rel, NoLock);
	return result;
}

/*
 * Lock the row of lockbox.<table> whose primary key is the nkeys values
 * keys, as SELECT ... FOR UPDATE (FOR KEY SHARE, ...) would with mode: a
 * transaction holding it is waited for; then read committed locks the newest
 * version, while repeatable read and serializable fail to serialize if the
 * row changed.  Returns a copy of the row locked, in *td its row type; NULL
 * when there is none (read committed: or it was deleted meanwhile).  what
 * names the row in messages.
 */
HeapTuple
lockbox_store_lock(const char *table, int nkeys, const Datum *keys,
				   LockTupleMode mode, TupleDesc *td, const char *what)
{
	Relation	rel;
	Snapshot	snapshot;
	List	   *rows;
	HeapTuple	tup = NULL;

	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	rel = table_open(lockbox_relid(table), RowShareLock);
	rows = lockbox_store_read(table, nkeys, keys, snapshot, td);
	if (rows != NIL)
	{
		TupleTableSlot *slot = table_slot_create(rel, NULL);
		TM_FailureData tmfd;
		TM_Result	res;
		int			flags = TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS;

		/* as ExecLockRows: read committed follows updates to the newest row */
		if (!IsolationUsesXactSnapshot())
			flags |= TUPLE_LOCK_FLAG_FIND_LAST_VERSION;
		tup = linitial(rows);
		res = table_tuple_lock(rel, &tup->t_self, snapshot, slot,
							   GetCurrentCommandId(true), mode, LockWaitBlock,
							   flags, &tmfd);
		switch (res)
		{
			case TM_Ok:
				tup = ExecCopySlotHeapTuple(slot);
				tup->t_self = slot->tts_tid;	/* (the version locked) */
				break;
			case TM_Deleted:
				if (!IsolationUsesXactSnapshot())
				{
					tup = NULL;
					break;
				}
				/* FALLTHROUGH */
			case TM_Updated:
				/* (read committed followed it: only a snapshot's isolation) */
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
				break;
			case TM_SelfModified:
				ereport(ERROR,
						(errcode(ERRCODE_TRIGGERED_DATA_CHANGE_VIOLATION),
						 errmsg("%s was changed by an operation the current command triggered",
								what)));
				break;
			default:
				elog(ERROR, "unexpected result %d locking %s", (int) res, what);
		}
		ExecDropSingleTupleTableSlot(slot);
	}
	table_close(rel, NoLock);
	UnregisterSnapshot(snapshot);
	return tup;
}

/* Column name of a row read with lockbox_store_read. */
Datum
lockbox_store_get(HeapTuple tup, TupleDesc td, const char *name, bool *isnull)
{
	return heap_getattr(tup, column_in(td, name, NULL) + 1, td, isnull);
}
