/*-------------------------------------------------------------------------
 *
 * hooks.c
 *		Every hook lockbox installs, in one place.  These functions only
 *		dispatch: what runs on each statement and at each transaction end is
 *		read here, and decided in the files named.
 *
 *	planner				enforce.c: no statistics of relations read by an
 *						engineer's statement, and no plan printed to an
 *						engineer's client (debug_print_plan, messages of
 *						level LOG, auto_explain) for a statement on
 *						protected data
 *	ExecutorStart		enforce.c: an engineer's statement on protected data;
 *						core's refusal of one as it starts (a privilege
 *						it lacks) is recorded
 *	ExecutorRun			enforce.c: each fetch of one that reached protected
 *						tables (its requests must still cover them); a
 *						run refused (a privilege, lockbox's policies) is
 *						recorded, an exclusion violation loses the existing
 *						row's key
 *	ExecutorFinish		enforce.c: no plan of one printed to its client as
 *						it ends (auto_explain); a refusal in its AFTER
 *						triggers, recorded
 *	ExecutorEnd			enforce.c: forgets it
 *	ProcessUtility		enforce.c: TRUNCATE, LOCK, COPY on protected data
 *						(a COPY TO core refuses, recorded),
 *						EXPLAIN, DECLARE ... WITH HOLD; protect.c: DROP EXTENSION lockbox, and
 *						after the statement: lockbox policies it dropped;
 *						worker.c: database commands that need the worker
 *						gone (and back when they fail); lockbox.c: ALTER
 *						SYSTEM of the access windows
 *	object access		protect.c: lockbox policies being dropped or altered;
 *						enforce.c: no statistics function starts for an
 *						engineer
 *	syscache, relcache	enforce.c: its caches of engineers and ancestors
 *	emit_log			deadlines.c: the FATAL of a session lockbox ended says why
 *	transaction end		enforce.c (grants cache; before commit: the requests
 *						its engineers' writes ran under are still open),
 *						protect.c (drops seen),
 *						worker.c (wake at commit),
 *						audit.c (the chain's tips)
 *	subtransaction end	enforce.c (statements under way), audit.c
 *
 * Parallel workers: the plan a worker gets from its leader was checked by
 * the leader, so the worker's first ExecutorStart is not checked again (nor
 * audited twice); every statement a worker runs after that (from a
 * PARALLEL SAFE function, say) is checked like any other.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "executor/executor.h"
#include "optimizer/planner.h"
#include "tcop/utility.h"
#include "utils/inval.h"
#include "utils/syscache.h"

#include "lockbox.h"

static planner_hook_type prev_planner = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorFinish_hook_type prev_executor_finish = NULL;
static ExecutorEnd_hook_type prev_executor_end = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;
static object_access_hook_type prev_object_access = NULL;
static emit_log_hook_type prev_emit_log = NULL;

/* a parallel worker has started the plan its leader gave it */
static bool leader_plan_started = false;

static PlannedStmt *
lockbox_planner(Query *parse, const char *query_string, int cursorOptions,
				ParamListInfo boundParams)
{
	PlannedStmt *pstmt;

	if (prev_planner)
		pstmt = prev_planner(parse, query_string, cursorOptions, boundParams);
	else
		pstmt = standard_planner(parse, query_string, cursorOptions, boundParams);
	lockbox_enforce_planned(pstmt, query_string);
	return pstmt;
}

static void
chain_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

static void
lockbox_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (!IsParallelWorker() || leader_plan_started)
		lockbox_enforce_executor_start(queryDesc, eflags);
	else
		leader_plan_started = true;

	/* (core's privilege checks: only an engineer's statement needs the catch) */
	if (!lockbox_enforce_open_statements())
	{
		chain_executor_start(queryDesc, eflags);
		return;
	}
	PG_TRY();
	{
		chain_executor_start(queryDesc, eflags);
	}
	PG_CATCH();
	{
		lockbox_enforce_run_failed(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
lockbox_executor_run(QueryDesc *queryDesc, ScanDirection direction,
					 uint64 count, bool execute_once)
{
	lockbox_enforce_executor_run(queryDesc);
	/* (only an engineer's statement on protected data needs the catch) */
	if (!lockbox_enforce_open_statements())
	{
		if (prev_executor_run)
			prev_executor_run(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
		return;
	}
	PG_TRY();
	{
		if (prev_executor_run)
			prev_executor_run(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_CATCH();
	{
		lockbox_enforce_run_failed(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
chain_executor_finish(QueryDesc *queryDesc)
{
	if (prev_executor_finish)
		prev_executor_finish(queryDesc);
	else
		standard_ExecutorFinish(queryDesc);
}

/* (AFTER triggers run here: a refusal in one fails the statement) */
static void
lockbox_executor_finish(QueryDesc *queryDesc)
{
	if (!lockbox_enforce_open_statements())
	{
		chain_executor_finish(queryDesc);
		return;
	}
	lockbox_enforce_executor_finish(queryDesc);
	PG_TRY();
	{
		chain_executor_finish(queryDesc);
	}
	PG_CATCH();
	{
		lockbox_enforce_run_failed(queryDesc);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static void
lockbox_executor_end(QueryDesc *queryDesc)
{
	lockbox_enforce_executor_end(queryDesc);
	if (prev_executor_end)
		prev_executor_end(queryDesc);
	else
		standard_ExecutorEnd(queryDesc);
}

static void
chain_process_utility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

static void
lockbox_process_utility(PlannedStmt *pstmt, const char *queryString,
						bool readOnlyTree, ProcessUtilityContext context,
						ParamListInfo params, QueryEnvironment *queryEnv,
						DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *node = pstmt->utilityStmt;
	int			explain = 0;
	int			cursor = 0;

	lockbox_enforce_utility(node, queryString);
	lockbox_protect_utility(node);
	lockbox_worker_utility(node);
	lockbox_access_utility(node);
	lockbox_audit_utility(node);
	lockbox_settings_utility(node);
	explain = lockbox_enforce_explain_begin(node);
	cursor = lockbox_enforce_cursor_begin(node);
	PG_TRY();
	{
		chain_process_utility(pstmt, queryString, readOnlyTree, context,
							  params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		lockbox_enforce_utility_failed();
		lockbox_enforce_explain_end(explain);
		lockbox_enforce_cursor_end(cursor);
		lockbox_worker_utility_failed(node);
		PG_RE_THROW();
	}
	PG_END_TRY();
	lockbox_enforce_explain_end(explain);
	lockbox_enforce_cursor_end(cursor);
	lockbox_protect_utility_done();
	lockbox_access_utility_done(node);
}

static void
lockbox_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					  int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
	if (access == OAT_FUNCTION_EXECUTE)
		lockbox_enforce_function_execute(objectId);
	else
		lockbox_protect_object_access(access, classId, objectId);
}

static void
lockbox_xact_callback(XactEvent event, void *arg)
{
	/* (the relay ring filled before the worker is woken, below) */
	lockbox_relay_xact(event);
	lockbox_enforce_xact(event);
	lockbox_protect_xact(event);
	lockbox_store_xact(event);
	lockbox_worker_xact(event);
	lockbox_audit_xact(event);
	lockbox_tenant_xact(event);
}

static void
lockbox_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	lockbox_enforce_subxact(event, mySubid, parentSubid);
	lockbox_audit_subxact(event, mySubid, parentSubid);
	lockbox_relay_subxact(event, mySubid, parentSubid);
}

static void
lockbox_emit_log(ErrorData *edata)
{
	lockbox_session_end_message(edata);
	if (prev_emit_log)
		prev_emit_log(edata);
}

void
lockbox_hooks_init(void)
{
	prev_planner = planner_hook;
	planner_hook = lockbox_planner;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = lockbox_executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = lockbox_executor_run;
	prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = lockbox_executor_finish;
	prev_executor_end = ExecutorEnd_hook;
	ExecutorEnd_hook = lockbox_executor_end;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = lockbox_process_utility;
	prev_emit_log = emit_log_hook;
	emit_log_hook = lockbox_emit_log;
	prev_object_access = object_access_hook;
	object_access_hook = lockbox_object_access;
	RegisterXactCallback(lockbox_xact_callback, NULL);
	RegisterSubXactCallback(lockbox_subxact_callback, NULL);
	/* who is an engineer; which relations are partitions or children */
	CacheRegisterSyscacheCallback(AUTHOID, lockbox_enforce_role_inval, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, lockbox_enforce_role_inval, (Datum) 0);
	CacheRegisterRelcacheCallback(lockbox_enforce_relcache_inval, (Datum) 0);
}
