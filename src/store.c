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
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"

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
	bool		inserted;		/* statement triggers fired, to fire after */
	bool		updated;
} StoreRel;

struct LockboxStore
{
	EState	   *estate;
	int			nrels;
	StoreRel   *rels;
};

/*
 * The executor builds a table's CHECK constraints and its partial indexes'
 * predicates for each ResultRelInfo, from their stored node trees, through
 * the planner's expression preprocessing: for a store opened at every call
 * that was a good share of a transition.  They are built once per backend
 * here, and dropped at any relcache invalidation (a constraint or index
 * added, dropped or changed invalidates its table).
 */
typedef struct ExprCache
{
	Oid			relid;
	int			ncheck;
	ExprState **checks;			/* in the order of the table's constr->check */
	int			nindexes;
	Oid		   *indexes;
	ExprState **predicates;		/* of indexes[i], NULL for a full index */
} ExprCache;

static MemoryContext expr_cxt = NULL;
static List *expr_caches = NIL;

/*
 * A ResultRelInfo of an open store may be using the expressions when an
 * invalidation arrives (a trigger of the table's, say, opens a relation):
 * they are then forgotten at once but freed only once no store is open, or
 * at the end of the transaction.
 */
static int	open_stores = 0;
static bool expr_stale = false;

static void
expr_cache_free(void)
{
	if (expr_cxt != NULL)
		MemoryContextReset(expr_cxt);
	expr_caches = NIL;
	expr_stale = false;
}

static void
expr_cache_inval(Datum arg, Oid relid)
{
	expr_caches = NIL;
	if (open_stores == 0)
		expr_cache_free();
	else
		expr_stale = true;
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
		if (expr_stale)
			expr_cache_free();
	}
}

static ExprCache *
expr_cache(ResultRelInfo *rri)
{
	Relation	rel = rri->ri_RelationDesc;
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	ListCell   *lc;
	ExprCache  *c;
	MemoryContext old;

	foreach(lc, expr_caches)
	{
		c = lfirst(lc);
		if (c->relid == RelationGetRelid(rel))
			return c;
	}
	if (expr_cxt == NULL)
	{
		expr_cxt = AllocSetContextCreate(CacheMemoryContext, "lockbox store expressions",
										 ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(expr_cache_inval, (Datum) 0);
	}
	old = MemoryContextSwitchTo(expr_cxt);
	c = palloc0(sizeof(ExprCache));
	c->relid = RelationGetRelid(rel);
	c->ncheck = constr ? constr->num_check : 0;
	c->checks = palloc0(sizeof(ExprState *) * Max(c->ncheck, 1));
	for (int i = 0; i < c->ncheck; i++)
		c->checks[i] = ExecInitExpr(expression_planner(stringToNode(constr->check[i].ccbin)),
									NULL);
	c->nindexes = rri->ri_NumIndices;
	c->indexes = palloc0(sizeof(Oid) * Max(c->nindexes, 1));
	c->predicates = palloc0(sizeof(ExprState *) * Max(c->nindexes, 1));
	for (int i = 0; i < c->nindexes; i++)
	{
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

		c->indexes[i] = RelationGetRelid(rri->ri_IndexRelationDescs[i]);
		if (ii->ii_Predicate != NIL)
			c->predicates[i] = ExecInitQual((List *) expression_planner((Expr *) copyObject(ii->ii_Predicate)),
											NULL);
	}
	expr_caches = lappend(expr_caches, c);
	MemoryContextSwitchTo(old);
	return c;
}

/* Give a ResultRelInfo its table's constraints and predicates, built once. */
static void
use_expr_cache(ResultRelInfo *rri)
{
	ExprCache  *c = expr_cache(rri);

	if (c->ncheck > 0)
		rri->ri_ConstraintExprs = c->checks;
	for (int i = 0; i < rri->ri_NumIndices && i < c->nindexes; i++)
	{
		if (c->indexes[i] == RelationGetRelid(rri->ri_IndexRelationDescs[i]))
			rri->ri_IndexRelationInfo[i]->ii_PredicateState = c->predicates[i];
	}
}

/* Open lockbox.<tables[i]> for writing, as table i of the store. */
LockboxStore *
lockbox_store_open(int ntables, const char *const *tables)
{
	LockboxStore *store = palloc0(sizeof(LockboxStore));
	Oid			nsp = get_namespace_oid("lockbox", false);
	List	   *rtable = NIL;
	EState	   *estate;

	open_stores++;
	store->nrels = ntables;
	store->rels = palloc0(sizeof(StoreRel) * ntables);
	for (int i = 0; i < ntables; i++)
	{
		StoreRel   *r = &store->rels[i];
		Oid			relid = get_relname_relid(tables[i], nsp);

		if (!OidIsValid(relid))
			elog(ERROR, "lockbox.%s is missing", tables[i]);
		r->rel = table_open(relid, RowExclusiveLock);
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
		if (r->rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		{
			ExecOpenIndices(r->rri, false);
			use_expr_cache(r->rri);
		}
		/* (virtual: its values are the row, whatever was fetched into it) */
		r->slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(r->rel),
										 &TTSOpsVirtual);
		r->set = palloc0(sizeof(bool) * RelationGetDescr(r->rel)->natts);
	}
	AfterTriggerBeginQuery();
	return store;
}

static int
column(StoreRel *r, const char *name)
{
	TupleDesc	td = RelationGetDescr(r->rel);

	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i;
	}
	elog(ERROR, "column \"%s\" of table \"lockbox.%s\" is missing",
		 name, RelationGetRelationName(r->rel));
	return -1;					/* keep compiler quiet */
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

			namestrcpy(n, TextDatumGetCString(value));
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

	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);
		Node	   *expr;
		ExprState  *state;

		if (r->set[i] || att->attisdropped || !att->atthasdef ||
			att->attgenerated)
			continue;
		expr = build_column_default(r->rel, i + 1);
		if (expr == NULL)
			continue;
		state = ExecPrepareExpr((Expr *) expr, store->estate);
		r->slot->tts_values[i] = ExecEvalExprSwitchContext(state, econtext,
														  &r->slot->tts_isnull[i]);
		if (!r->slot->tts_isnull[i] && !att->attbyval)
			r->slot->tts_values[i] = datumCopy(r->slot->tts_values[i],
											   att->attbyval, att->attlen);
	}
}

/* Insert the row built for table t. */
void
lockbox_store_insert(LockboxStore *store, int t)
{
	StoreRel   *r = &store->rels[t];
	EState	   *estate = store->estate;
	ResultRelInfo *target = r->rri;
	TupleTableSlot *slot = r->slot;

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
	ExecSimpleRelationInsert(target, estate, slot);
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
	Oid			pkey = RelationGetPrimaryKeyIndex(r->rel);
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;
	Snapshot	snapshot;

	if (!OidIsValid(pkey))
		elog(ERROR, "table \"lockbox.%s\" has no primary key",
			 RelationGetRelationName(r->rel));
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(key));
	scan = systable_beginscan(r->rel, pkey, true, snapshot, 1, &skey);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		HeapTuple	copy = heap_copytuple(tup);

		ExecClearTuple(r->slot);
		heap_deform_tuple(copy, RelationGetDescr(r->rel),
						  r->slot->tts_values, r->slot->tts_isnull);
		r->tid = tup->t_self;
		memset(r->set, 0, sizeof(bool) * RelationGetDescr(r->rel)->natts);
		found = true;
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	return found;
}

/* Update the row fetched for table t with the columns set since. */
void
lockbox_store_update(LockboxStore *store, int t)
{
	StoreRel   *r = &store->rels[t];
	EState	   *estate = store->estate;
	TupleDesc	td = RelationGetDescr(r->rel);
	TupleTableSlot *searchslot;
	EPQState	epqstate;

	/* (the updated columns, for triggers that name theirs) */
	for (int i = 0; i < td->natts; i++)
	{
		if (r->set[i])
			r->rte->updatedCols =
				bms_add_member(r->rte->updatedCols,
							   i + 1 - FirstLowInvalidHeapAttributeNumber);
	}
	if (!r->updated)
	{
		ExecBSUpdateTriggers(estate, r->rri);
		r->updated = true;
	}
	searchslot = table_slot_create(r->rel, &estate->es_tupleTable);
	searchslot->tts_tid = r->tid;
	EvalPlanQualInit(&epqstate, estate, NULL, NIL, -1);
	ExecStoreVirtualTuple(r->slot);
	ExecSimpleRelationUpdate(r->rri, estate, &epqstate, searchslot, r->slot);
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
	}
	AfterTriggerEndQuery(estate);
	for (int i = 0; i < store->nrels; i++)
	{
		StoreRel   *r = &store->rels[i];

		if (r->proute != NULL)
			ExecCleanupTupleRouting(r->mtstate, r->proute);
		ExecCloseIndices(r->rri);
	}
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	for (int i = 0; i < store->nrels; i++)
		table_close(store->rels[i].rel, NoLock);
	if (--open_stores == 0 && expr_stale)
		expr_cache_free();
	CommandCounterIncrement();
}

/*
 * The rows of lockbox.<table> whose primary key begins with the nkeys
 * values keys (of the key columns' own types: bigint, text, oid or regrole),
 * in the key's order, as read with snapshot (registered): copies, and in
 * *td the table's row type.  The caller's memory holds them.
 */
List *
lockbox_store_read(const char *table, int nkeys, const Datum *keys,
				   Snapshot snapshot, TupleDesc *td)
{
	Oid			relid = get_relname_relid(table, get_namespace_oid("lockbox", false));
	Relation	rel;
	Relation	index;
	ScanKeyData skeys[INDEX_MAX_KEYS];
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *result = NIL;

	if (!OidIsValid(relid))
		elog(ERROR, "lockbox.%s is missing", table);
	rel = table_open(relid, AccessShareLock);
	index = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	Assert(nkeys <= index->rd_index->indnkeyatts);
	for (int i = 0; i < nkeys; i++)
	{
		AttrNumber	attno = index->rd_index->indkey.values[i];
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), attno - 1);
		RegProcedure eq;

		switch (att->atttypid)
		{
			case INT8OID:
				eq = F_INT8EQ;
				break;
			case TEXTOID:
				eq = F_TEXTEQ;
				break;
			case OIDOID:
			case REGROLEOID:
				eq = F_OIDEQ;
				break;
			default:
				elog(ERROR, "cannot look up lockbox.%s by a column of type %s",
					 table, format_type_be(att->atttypid));
				eq = InvalidOid;	/* keep compiler quiet */
		}
		/* (the index's collation: its order is that collation's) */
		ScanKeyEntryInitialize(&skeys[i], 0, attno, BTEqualStrategyNumber,
							   InvalidOid, index->rd_indcollation[i], eq, keys[i]);
	}
	scan = systable_beginscan(rel, RelationGetRelid(index), true, snapshot,
							  nkeys, skeys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		result = lappend(result, heap_copytuple(tup));
	systable_endscan(scan);
	*td = CreateTupleDescCopy(RelationGetDescr(rel));
	index_close(index, AccessShareLock);
	table_close(rel, NoLock);
	return result;
}

/* Column name of a row read with lockbox_store_read. */
Datum
lockbox_store_get(HeapTuple tup, TupleDesc td, const char *name, bool *isnull)
{
	for (int i = 0; i < td->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(td, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return heap_getattr(tup, i + 1, td, isnull);
	}
	elog(ERROR, "column \"%s\" of a lockbox table is missing", name);
	return (Datum) 0;			/* keep compiler quiet */
}
