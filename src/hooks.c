/*-------------------------------------------------------------------------
 *
 * hooks.c
 *		Every hook lockbox installs, in one place.  These functions only
 *		dispatch: what runs on each statement and at each transaction end is
 *		read here, and decided in the files named.
 *
 *	ExecutorStart		enforce.c: an engineer's statement on protected data
 *	ProcessUtility		enforce.c: TRUNCATE, LOCK, COPY on protected data;
 *						worker.c: database commands that need the worker gone
 *	transaction end		enforce.c (grants cache), worker.c (wake at commit),
 *						audit.c (the chain's tips)
 *	subtransaction end	audit.c
 *
 * Parallel workers run the plan their leader checked: no hook acts in them
 * (the leader decided, and a worker cannot read the catalogs the checks
 * need with a snapshot of its own).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "tcop/utility.h"

#include "lockbox.h"

static ExecutorStart_hook_type prev_executor_start = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

static void
lockbox_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (!IsParallelWorker())
		lockbox_enforce_executor_start(queryDesc, eflags);

	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

static void
lockbox_process_utility(PlannedStmt *pstmt, const char *queryString,
						bool readOnlyTree, ProcessUtilityContext context,
						ParamListInfo params, QueryEnvironment *queryEnv,
						DestReceiver *dest, QueryCompletion *qc)
{
	if (!IsParallelWorker())
	{
		lockbox_enforce_utility(pstmt->utilityStmt);
		lockbox_worker_utility(pstmt->utilityStmt);
	}

	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

static void
lockbox_xact_callback(XactEvent event, void *arg)
{
	lockbox_enforce_xact(event);
	lockbox_worker_xact(event);
	lockbox_audit_xact(event);
}

static void
lockbox_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	lockbox_audit_subxact(event, mySubid, parentSubid);
}

void
lockbox_hooks_init(void)
{
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = lockbox_executor_start;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = lockbox_process_utility;
	RegisterXactCallback(lockbox_xact_callback, NULL);
	RegisterSubXactCallback(lockbox_subxact_callback, NULL);
}
