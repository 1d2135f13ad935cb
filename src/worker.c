/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The lockbox launcher and the per-database lockbox workers.
 *
 * The launcher (one, started with the server once recovery has finished,
 * connected to no database) starts one worker per database in which the
 * extension is created.  It learns of databases three ways: by scanning
 * pg_database when it starts and every LAUNCHER_RESCAN_SECS (a worker
 * started for a database without the extension finds that out and exits),
 * and by being woken when CREATE EXTENSION lockbox commits.
 *
 * A database worker sleeps on its latch and is woken by the transactions
 * that need it at their commit.  Each pass runs in transactions of its own.
 * Today a pass relays queued notifications (see notify.c).
 *
 * A worker holds a connection to its database, which would block DROP
 * DATABASE, ALTER DATABASE ... RENAME / SET TABLESPACE and CREATE DATABASE
 * ... TEMPLATE.  The utility hook stops the worker before those run; the
 * launcher starts it again later if the database is still there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <unistd.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "lockbox.h"

PG_FUNCTION_INFO_V1(lockbox_start_worker);
PG_FUNCTION_INFO_V1(lockbox_worker_status);
PG_FUNCTION_INFO_V1(lockbox_stats_counters);
PG_FUNCTION_INFO_V1(lockbox_stats_reset);

PGDLLEXPORT void lockbox_launcher_main(Datum main_arg);
PGDLLEXPORT void lockbox_db_worker_main(Datum main_arg);

#define LAUNCHER_RESCAN_SECS	10
/* how long a worker stopped for a database command stays off */
#define PAUSE_SECS				5
/* notifications relayed per transaction */
#define RELAY_BATCH				1000
/* a due request a session holds locked is tried again after this long */
#define LOCKED_RETRY_MS			100
/* a worker that died is started again after this long */
#define RESTART_MS				1000
/* after a pass that relayed notifications, gather more for this long */
#define RELAY_GATHER_MS			20
/* requests expired or closed per transaction */
#define DEADLINE_BATCH			1000

typedef enum DbWorkerState
{
	DBW_FREE = 0,				/* slot unused */
	DBW_WANTED,					/* start a worker (new database, or woken) */
	DBW_STARTING,				/* launcher registered it */
	DBW_RUNNING,				/* serving */
	DBW_ABSENT,					/* no lockbox in that database */
	DBW_PAUSED					/* stopped for a database command */
} DbWorkerState;

typedef struct DbWorker
{
	Oid			dbid;
	DbWorkerState state;
	pid_t		pid;
	Latch	   *latch;
	TimestampTz retry_after;	/* DBW_PAUSED: start again after */
	TimestampTz last_pass;
	TimestampTz next_deadline;	/* DT_NOEND: none */
} DbWorker;

/* lockbox.stats: counters per database since its statistics reset */
typedef struct DbStats
{
	TimestampTz reset;
	pg_atomic_uint64 counters[LB_COUNTERS];
} DbStats;

typedef struct WorkerShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch;
	DbWorker	dbs[LOCKBOX_MAX_DATABASES];
	DbStats		stats[LOCKBOX_MAX_DATABASES];	/* goes with dbs[i] */
} WorkerShared;

static WorkerShared *worker_shared = NULL;

/* after a pass that audited statements, gather more for this long */
#define ACCESS_GATHER_MS	200
/* while spool files wait to be finished, look again this often */
#define ACCESS_POLL_MS		1000
/* spool transactions per pass, at most (the deadlines must not wait) */
#define ACCESS_ROUNDS		8

static bool wake_worker_pending = false;
/* earliest deadline this transaction created */
static TimestampTz created_deadline = DT_NOEND;
static bool start_worker_pending = false;

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */
Size
lockbox_worker_shmem_size(void)
{
	return MAXALIGN(sizeof(WorkerShared));
}

void
lockbox_worker_shmem_init(void)
{
	bool		found;

	worker_shared = ShmemInitStruct("lockbox workers",
									lockbox_worker_shmem_size(), &found);
	if (!found)
	{
		memset(worker_shared, 0, lockbox_worker_shmem_size());
		worker_shared->lock = &(GetNamedLWLockTranche("lockbox"))[1].lock;
		for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
			for (int c = 0; c < LB_COUNTERS; c++)
				pg_atomic_init_u64(&worker_shared->stats[i].counters[c], 0);
	}
}

static void
stats_reset(DbStats *st)
{
	st->reset = GetCurrentTimestamp();
	for (int c = 0; c < LB_COUNTERS; c++)
		pg_atomic_write_u64(&st->counters[c], 0);
}

static DbWorker *
find_db(Oid dbid, bool create)
{
	DbWorker   *free_slot = NULL;

	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
	{
		DbWorker   *w = &worker_shared->dbs[i];

		if (w->state != DBW_FREE && w->dbid == dbid)
			return w;
		if (w->state == DBW_FREE && free_slot == NULL)
			free_slot = w;
	}
	if (create && free_slot != NULL)
	{
		memset(free_slot, 0, sizeof(DbWorker));
		free_slot->dbid = dbid;
		free_slot->state = DBW_WANTED;
		free_slot->next_deadline = DT_NOEND;
		stats_reset(&worker_shared->stats[free_slot - worker_shared->dbs]);
		return free_slot;
	}
	return NULL;
}

/* Wake this database's worker; false when none runs. */
bool
lockbox_wake_worker(void)
{
	DbWorker   *w;
	Latch	   *latch = NULL;

	LWLockAcquire(worker_shared->lock, LW_SHARED);
	w = find_db(MyDatabaseId, false);
	if (w != NULL && w->state == DBW_RUNNING && w->latch != NULL)
		latch = w->latch;
	LWLockRelease(worker_shared->lock);
	if (latch != NULL)
		SetLatch(latch);
	return latch != NULL;
}

/* ---------------------------------------------------------------------
 * Waking, from backends at commit
 * ---------------------------------------------------------------------
 */
void
lockbox_wake_worker_at_commit(void)
{
	wake_worker_pending = true;
}

/* A new deadline: wake the worker at commit if it is earlier than its next. */
void
lockbox_deadline_created(TimestampTz deadline)
{
	if (deadline < created_deadline)
		created_deadline = deadline;
}

void
lockbox_worker_xact(XactEvent event)
{
	if (event == XACT_EVENT_COMMIT && worker_shared != NULL &&
		(wake_worker_pending || start_worker_pending ||
		 created_deadline != DT_NOEND))
	{
		DbWorker   *w;
		Latch	   *latch = NULL;
		bool		wake_launcher = false;

		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		w = find_db(MyDatabaseId, start_worker_pending);
		if (w != NULL && w->state == DBW_RUNNING && w->latch != NULL &&
			(wake_worker_pending || created_deadline < w->next_deadline))
			latch = w->latch;
		else if (w != NULL && start_worker_pending &&
				 (w->state == DBW_ABSENT || w->state == DBW_PAUSED ||
				  w->state == DBW_WANTED))
		{
			w->state = DBW_WANTED;
			wake_launcher = true;
		}
		if (wake_launcher && worker_shared->launcher_latch != NULL)
			SetLatch(worker_shared->launcher_latch);
		if (latch != NULL)
			SetLatch(latch);
		LWLockRelease(worker_shared->lock);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT)
	{
		wake_worker_pending = false;
		start_worker_pending = false;
		created_deadline = DT_NOEND;
	}
}

/*
 * lockbox.start_worker(): serve this database once the calling transaction
 * commits.  CREATE EXTENSION calls it; the extension owner may call it again.
 */
Datum
lockbox_start_worker(PG_FUNCTION_ARGS)
{
	start_worker_pending = true;
	wake_worker_pending = true;
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * Stopping a database's worker before commands that need it gone
 * ---------------------------------------------------------------------
 */
static void
pause_worker(Oid dbid)
{
	DbWorker   *w;
	pid_t		pid = 0;

	if (!OidIsValid(dbid) || worker_shared == NULL)
		return;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	w = find_db(dbid, false);
	if (w != NULL)
	{
		w->state = DBW_PAUSED;
		w->retry_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 PAUSE_SECS * 1000);
		pid = w->pid;
	}
	LWLockRelease(worker_shared->lock);

	if (pid == 0)
		return;
	(void) kill(pid, SIGTERM);

	/* wait for it to go, at most 10 seconds */
	for (int i = 0; i < 1000; i++)
	{
		bool		gone;

		LWLockAcquire(worker_shared->lock, LW_SHARED);
		w = find_db(dbid, false);
		gone = (w == NULL || w->pid != pid);
		LWLockRelease(worker_shared->lock);
		if (gone)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static char *
option_value(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, name) == 0 && def->arg != NULL)
			return defGetString(def);
	}
	return NULL;
}

/*
 * Are there sessions in database dbid that would make a command needing it
 * unused fail, other than its lockbox worker (which the command stops) and
 * autovacuum (which the command itself stops)?
 */
static bool
database_in_use(Oid dbid, pid_t worker_pid)
{
	for (uint32 i = 0; i < ProcGlobal->allProcCount; i++)
	{
		PGPROC	   *proc = GetPGProcByNumber(i);

		const char *type;

		if (proc->pid == 0 || proc->databaseId != dbid ||
			proc->pid == worker_pid || proc->pid == MyProcPid ||
			(proc->statusFlags & PROC_IS_AUTOVACUUM) != 0)
			continue;
		/* a PGPROC no process uses any more keeps its last pid */
		if (BackendPidGetProc(proc->pid) != proc)
			continue;
		/* a lockbox worker just starting or exiting goes with the pause */
		if (proc->isBackgroundWorker &&
			(type = GetBackgroundWorkerTypeByPid(proc->pid)) != NULL &&
			strcmp(type, "lockbox worker") == 0)
			continue;
		return true;
	}
	return false;
}

/*
 * Stop the worker only for a command that will run: its caller may run it
 * (else any role could keep a database's worker down with commands that
 * then fail their own permission check), the database is not the current
 * one, the new name is free, and nothing else holds the database.  Should
 * the command fail anyway, lockbox_worker_utility_failed starts the worker
 * again at once.
 */
static bool
may_run_database_command(Oid dbid, Node *node)
{
	bool		owner;
	pid_t		worker_pid = 0;
	DbWorker   *w;

	if (!OidIsValid(dbid) || dbid == MyDatabaseId || worker_shared == NULL)
		return false;
	owner = pg_database_ownercheck(dbid, GetUserId());
	switch (nodeTag(node))
	{
		case T_DropdbStmt:
			if (!owner)
				return false;
			/* WITH (FORCE) ends the other sessions itself */
			if (option_value(((DropdbStmt *) node)->options, "force") != NULL)
				return true;
			break;
		case T_RenameStmt:
			if (!owner || !have_createdb_privilege() ||
				OidIsValid(get_database_oid(((RenameStmt *) node)->newname, true)))
				return false;
			break;
		case T_AlterDatabaseStmt:
			if (!owner)
				return false;
			break;
		case T_CreatedbStmt:
			{
				HeapTuple	tup;
				bool		is_template = false;

				if (!have_createdb_privilege() ||
					OidIsValid(get_database_oid(((CreatedbStmt *) node)->dbname, true)))
					return false;
				tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dbid));
				if (HeapTupleIsValid(tup))
				{
					is_template = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
					ReleaseSysCache(tup);
				}
				if (!is_template && !owner)
					return false;
				break;
			}
		default:
			return false;
	}
	LWLockAcquire(worker_shared->lock, LW_SHARED);
	w = find_db(dbid, false);
	if (w != NULL)
		worker_pid = w->pid;
	LWLockRelease(worker_shared->lock);
	return !database_in_use(dbid, worker_pid);
}

/* the database whose worker this backend stopped for its current command */
static Oid	paused_for_command = InvalidOid;

/*
 * Before a utility statement runs: stop the worker of a database the
 * statement needs without connections, and wake this database's worker when
 * an extension is dropped.
 */
void
lockbox_worker_utility(Node *node)
{
	char	   *dbname = NULL;

	paused_for_command = InvalidOid;
	switch (nodeTag(node))
	{
		case T_DropdbStmt:
			dbname = ((DropdbStmt *) node)->dbname;
			break;
		case T_CreatedbStmt:
			/* CREATE DATABASE copies template1 unless it names a template */
			dbname = option_value(((CreatedbStmt *) node)->options, "template");
			if (dbname == NULL)
				dbname = "template1";
			break;
		case T_AlterDatabaseStmt:
			if (option_value(((AlterDatabaseStmt *) node)->options, "tablespace"))
				dbname = ((AlterDatabaseStmt *) node)->dbname;
			break;
		case T_RenameStmt:
			if (((RenameStmt *) node)->renameType == OBJECT_DATABASE)
				dbname = ((RenameStmt *) node)->subname;
			break;
		case T_DropStmt:
			if (((DropStmt *) node)->removeType == OBJECT_EXTENSION)
				wake_worker_pending = true; /* it exits when lockbox is gone */
			break;
		default:
			break;
	}
	if (dbname != NULL)
	{
		Oid			dbid = get_database_oid(dbname, true);

		if (may_run_database_command(dbid, node))
		{
			pause_worker(dbid);
			paused_for_command = dbid;
		}
	}
}

/* The command failed after all: the database's worker starts again now. */
void
lockbox_worker_utility_failed(Node *node)
{
	Oid			dbid = paused_for_command;
	DbWorker   *w;

	paused_for_command = InvalidOid;
	if (!OidIsValid(dbid) || worker_shared == NULL)
		return;
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	w = find_db(dbid, false);
	if (w != NULL && w->state == DBW_PAUSED)
	{
		w->retry_after = GetCurrentTimestamp();
		if (worker_shared->launcher_latch != NULL)
			SetLatch(worker_shared->launcher_latch);
	}
	LWLockRelease(worker_shared->lock);
}

/* ---------------------------------------------------------------------
 * Registration
 * ---------------------------------------------------------------------
 */
void
lockbox_worker_init(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* not on a standby: the launcher starts once recovery has finished */
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "lockbox");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "lockbox_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "lockbox launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "lockbox launcher");
	RegisterBackgroundWorker(&worker);
}

static bool
start_db_worker(Oid dbid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "lockbox");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "lockbox_db_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "lockbox worker for database %u", dbid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "lockbox worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dbid);
	worker.bgw_notify_pid = MyProcPid;

	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */
static List *
connectable_databases(void)
{
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext caller = CurrentMemoryContext;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;

		if (!db->datallowconn || db->datconnlimit == DATCONNLIMIT_INVALID_DB)
			continue;
		old = MemoryContextSwitchTo(caller);
		result = lappend_oid(result, db->oid);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return result;
}

static void
launcher_pass(bool rescan)
{
	List	   *dbs = NIL;
	List	   *to_start = NIL;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();

	/* about to start a worker: make sure its database is still there */
	if (!rescan)
	{
		LWLockAcquire(worker_shared->lock, LW_SHARED);
		for (int i = 0; i < LOCKBOX_MAX_DATABASES && !rescan; i++)
		{
			DbWorker   *w = &worker_shared->dbs[i];

			rescan = (w->pid == 0 &&
					  (w->state == DBW_WANTED ||
					   (w->state == DBW_PAUSED && now >= w->retry_after)));
		}
		LWLockRelease(worker_shared->lock);
	}
	if (rescan)
		dbs = connectable_databases();

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	if (rescan)
	{
		/* forget databases that are gone, learn new ones */
		for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
		{
			DbWorker   *w = &worker_shared->dbs[i];

			if (w->state != DBW_FREE && !list_member_oid(dbs, w->dbid) &&
				w->pid == 0)
				w->state = DBW_FREE;
		}
		foreach(lc, dbs)
		{
			if (find_db(lfirst_oid(lc), false) == NULL &&
				find_db(lfirst_oid(lc), true) == NULL)
				ereport(LOG,
						(errmsg("lockbox serves at most %d databases; database %u is not served",
								LOCKBOX_MAX_DATABASES, lfirst_oid(lc))));
		}
	}
	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
	{
		DbWorker   *w = &worker_shared->dbs[i];

		if (w->state == DBW_PAUSED && w->pid == 0 && now >= w->retry_after)
			w->state = DBW_WANTED;
		if (w->state == DBW_WANTED && w->pid == 0)
		{
			w->state = DBW_STARTING;
			to_start = lappend_oid(to_start, w->dbid);
		}
	}
	LWLockRelease(worker_shared->lock);

	foreach(lc, to_start)
	{
		if (!start_db_worker(lfirst_oid(lc)))
		{
			DbWorker   *w;

			ereport(WARNING,
					(errmsg("lockbox could not start a worker for database %u",
							lfirst_oid(lc)),
					 errhint("Raise max_worker_processes.")));
			LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
			w = find_db(lfirst_oid(lc), false);
			if (w != NULL && w->state == DBW_STARTING)
				w->state = DBW_WANTED;
			LWLockRelease(worker_shared->lock);
		}
	}
	list_free(dbs);
	list_free(to_start);
}

void
lockbox_launcher_main(Datum main_arg)
{
	TimestampTz next_scan = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("lockbox launcher");

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	worker_shared->launcher_latch = MyLatch;
	/* after a launcher restart, workers that were starting must be retried */
	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
		if (worker_shared->dbs[i].state == DBW_STARTING &&
			worker_shared->dbs[i].pid == 0)
			worker_shared->dbs[i].state = DBW_WANTED;
	LWLockRelease(worker_shared->lock);

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		rescan = (now >= next_scan);
		long		timeout;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		launcher_pass(rescan);
		if (rescan)
			next_scan = TimestampTzPlusMilliseconds(now, LAUNCHER_RESCAN_SECS * 1000);

		timeout = Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_scan));
		/* paused workers come back once their pause is over */
		LWLockAcquire(worker_shared->lock, LW_SHARED);
		for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
		{
			DbWorker   *w = &worker_shared->dbs[i];

			if (w->state == DBW_PAUSED)
				timeout = Min(timeout,
							  Max(1, TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																	 w->retry_after)));
		}
		LWLockRelease(worker_shared->lock);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------
 * A database's worker
 * ---------------------------------------------------------------------
 */
static void
db_worker_detach(int code, Datum arg)
{
	DbWorker   *w;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	w = find_db(MyDatabaseId, false);
	if (w != NULL && w->pid == MyProcPid)
	{
		w->pid = 0;
		w->latch = NULL;
		/* a worker that died unexpectedly is started again, after a pause */
		if (w->state == DBW_RUNNING || w->state == DBW_STARTING)
		{
			w->state = (code == 0) ? DBW_ABSENT : DBW_PAUSED;
			w->retry_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														 RESTART_MS);
		}
	}
	if (worker_shared->launcher_latch != NULL)
		SetLatch(worker_shared->launcher_latch);
	LWLockRelease(worker_shared->lock);
}

static void
set_next_deadline(TimestampTz next_deadline, bool pass_done)
{
	DbWorker   *w;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	w = find_db(MyDatabaseId, false);
	if (w != NULL)
	{
		w->next_deadline = next_deadline;
		if (pass_done)
			w->last_pass = GetCurrentTimestamp();
	}
	LWLockRelease(worker_shared->lock);
}

/*
 * Run step in a transaction of its own, as the extension owner, with SPI.
 * Returns false (and runs nothing) when lockbox is no longer installed.
 */
typedef int (*PassStep) (LockboxCall *call, void *arg);

static bool
in_transaction(MemoryContext passcxt, const char *activity, PassStep step,
			   void *arg, int *result)
{
	MemoryContext old;
	LockboxCall call;

	CHECK_FOR_INTERRUPTS();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (!lockbox_installed())
	{
		CommitTransactionCommand();
		return false;
	}
	old = MemoryContextSwitchTo(passcxt);
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	lockbox_enter(&call);
	*result = step(&call, arg);
	lockbox_leave(&call);
	PopActiveSnapshot();
	MemoryContextSwitchTo(old);
	CommitTransactionCommand();
	MemoryContextReset(passcxt);
	return true;
}

static int
step_relay(LockboxCall *call, void *arg)
{
	return (int) lockbox_relay_notifications(RELAY_BATCH);
}

/*
 * Audit the engineers' statements the sessions spooled.  Files finished in
 * the transaction are removed after it committed.
 */
static int
step_access(LockboxCall *call, void *arg)
{
	return (int) Min(lockbox_access_drain(call, (List **) arg), INT_MAX);
}

static int
step_anchor(LockboxCall *call, void *arg)
{
	lockbox_audit_log_anchor();
	return 0;
}

/* when the worker next writes the audit's heads to the server log */
static TimestampTz next_anchor_at = 0;

static int
step_deadlines(LockboxCall *call, void *arg)
{
	return lockbox_act_on_deadlines(call, DEADLINE_BATCH);
}

static int
step_end_sessions(LockboxCall *call, void *arg)
{
	return lockbox_end_sessions();
}

static int
step_next_deadline(LockboxCall *call, void *arg)
{
	*(TimestampTz *) arg = lockbox_next_deadline();
	return 0;
}

/*
 * One pass: relay notifications, act on every passed deadline (in batches,
 * each its own transaction, so other transitions keep flowing), end the
 * sessions whose access ended, and find the next deadline.  Returns false
 * when lockbox is no longer installed.
 */
static bool
db_worker_pass(MemoryContext passcxt, TimestampTz *next_deadline,
			   int *relayed, int *audited)
{
	int			n;

	/*
	 * While the pass runs, every new deadline wakes us: one committed after
	 * the next deadline is read below must not be slept through.
	 */
	set_next_deadline(DT_NOEND, false);

	/* engineers' statements, as the sessions spooled them */
	*audited = 0;
	for (int round = 0; round < ACCESS_ROUNDS; round++)
	{
		List	   *finished = NIL;

		if (!in_transaction(passcxt, "lockbox: auditing engineers' statements",
							step_access, &finished, &n))
			return false;
		lockbox_access_remove_finished(finished);
		list_free_deep(finished);
		*audited += n;
		if (n == 0)
			break;
	}

	*relayed = 0;
	do
	{
		if (!in_transaction(passcxt, "lockbox: relaying notifications",
							step_relay, NULL, &n))
			return false;
		*relayed += n;
	} while (n == RELAY_BATCH);
	do
	{
		if (!in_transaction(passcxt, "lockbox: acting on deadlines",
							step_deadlines, NULL, &n))
			return false;
	} while (n > 0);
	if (!in_transaction(passcxt, "lockbox: ending sessions",
						step_end_sessions, NULL, &n))
		return false;
	/* relays queued by this pass's own transitions */
	do
	{
		if (!in_transaction(passcxt, "lockbox: relaying notifications",
							step_relay, NULL, &n))
			return false;
		*relayed += n;
	} while (n == RELAY_BATCH);
	if (!in_transaction(passcxt, "lockbox: finding the next deadline",
						step_next_deadline, next_deadline, &n))
		return false;

	/* the audit's heads, for anyone to keep outside the database */
	if (GetCurrentTimestamp() >= next_anchor_at)
	{
		if (!in_transaction(passcxt, "lockbox: writing the audit's anchor",
							step_anchor, NULL, &n))
			return false;
		next_anchor_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 lockbox_anchor_interval);
	}

	set_next_deadline(*next_deadline, true);
	pgstat_report_stat(true);
	pgstat_report_activity(STATE_IDLE, NULL);
	return true;
}

/*
 * Settings a database owner (ALTER DATABASE ... SET) or a role setting could
 * give the worker's session that would stop it from writing, waiting or
 * formatting as it must: fixed for the worker's life, above every other
 * source.
 */
static const char *const worker_settings[][2] = {
	{"default_transaction_read_only", "off"},
	{"default_transaction_isolation", "read committed"},
	{"default_transaction_deferrable", "off"},
	{"statement_timeout", "0"},
	{"lock_timeout", "0"},
	{"idle_in_transaction_session_timeout", "0"},
	{"idle_session_timeout", "0"},
	{"session_replication_role", "origin"},
	{"search_path", "pg_catalog, pg_temp"},
	{"DateStyle", "ISO, MDY"},
	{"IntervalStyle", "postgres"},
	{"bytea_output", "hex"},
};

static void
fix_worker_settings(void)
{
	for (int i = 0; i < lengthof(worker_settings); i++)
		SetConfigOption(worker_settings[i][0], worker_settings[i][1],
						PGC_SUSET, PGC_S_OVERRIDE);
	/* the worker's statements are lockbox's own, not for pgaudit's log */
	if (GetConfigOption("pgaudit.log", true, false) != NULL)
		SetConfigOption("pgaudit.log", "none", PGC_SUSET, PGC_S_OVERRIDE);
}

void
lockbox_db_worker_main(Datum main_arg)
{
	Oid			dbid = DatumGetObjectId(main_arg);
	DbWorker   *w;
	MemoryContext passcxt;
	volatile int failures;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	fix_worker_settings();
	pgstat_report_appname("lockbox worker");

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	w = find_db(dbid, true);
	if (w == NULL || w->pid != 0 || w->state == DBW_PAUSED)
	{
		/* no slot, a twin, or told to stay off: leave quietly */
		LWLockRelease(worker_shared->lock);
		proc_exit(1);
	}
	w->pid = MyProcPid;
	w->latch = MyLatch;
	w->state = DBW_RUNNING;
	LWLockRelease(worker_shared->lock);
	on_shmem_exit(db_worker_detach, (Datum) 0);

	passcxt = AllocSetContextCreate(TopMemoryContext, "lockbox worker pass",
									ALLOCSET_DEFAULT_SIZES);
	failures = 0;
	for (;;)
	{
		bool		installed;
		int			relayed = 0;
		int			audited = 0;
		TimestampTz next_deadline = DT_NOEND;
		int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
		long		timeout = -1;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/*
		 * A failed pass is reported and retried after a pause that grows
		 * with each failure in a row; the worker itself stays up.
		 */
		PG_TRY();
		{
			installed = db_worker_pass(passcxt, &next_deadline, &relayed, &audited);
			failures = 0;
			lockbox_count(LB_WORKER_PASSES);
		}
		PG_CATCH();
		{
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			MemoryContextSwitchTo(TopMemoryContext);
			MemoryContextReset(passcxt);
			pgstat_report_activity(STATE_IDLE, NULL);
			failures++;
			lockbox_count(LB_WORKER_FAILURES);
			next_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														Min(60000, 1000L << Min(failures - 1, 6)));
			installed = true;
		}
		PG_END_TRY();

		if (!installed)
		{
			ereport(DEBUG1,
					(errmsg("lockbox worker for database %u exiting: the extension is not installed",
							dbid)));
			proc_exit(0);
		}

		/*
		 * Under a stream of transitions, gather notifications for a moment
		 * before the next pass: one relay transaction (one commit, one WAL
		 * flush) then carries many.  The latch stays set meanwhile.
		 */
		if (relayed > 0 || audited > 0)
		{
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 audited > 0 ? ACCESS_GATHER_MS : RELAY_GATHER_MS,
							 PG_WAIT_EXTENSION);
			CHECK_FOR_INTERRUPTS();
		}

		/* the next anchor */
		{
			long		until = (long) Max(0, (next_anchor_at - GetCurrentTimestamp()) / 1000) + 1;

			events |= WL_TIMEOUT;
			timeout = timeout < 0 ? until : Min(timeout, until);
		}

		/* spool files of sessions that ended: come back to remove them */
		if (lockbox_access_pending_files() > 0)
		{
			events |= WL_TIMEOUT;
			timeout = ACCESS_POLL_MS;
		}

		/* sleep until the next deadline (to the millisecond), or until woken */
		if (next_deadline != DT_NOEND)
		{
			TimestampTz now = GetCurrentTimestamp();

			/*
			 * A deadline already past after a pass belongs to a request a
			 * session holds locked: try again shortly, not at once.
			 */
			long		until;

			events |= WL_TIMEOUT;
			until = next_deadline <= now ? LOCKED_RETRY_MS :
				(long) Min((next_deadline - now + 999) / 1000, (int64) INT_MAX);
			timeout = timeout < 0 ? until : Min(timeout, until);
		}
		(void) WaitLatch(MyLatch, events, timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------
 * lockbox.worker: what the workers are doing
 * ---------------------------------------------------------------------
 */
static const char *const state_names[] = {
	"free", "starting", "starting", "running", "not installed", "paused"
};

Datum
lockbox_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DbWorker	copy[LOCKBOX_MAX_DATABASES];

	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(worker_shared->lock, LW_SHARED);
	memcpy(copy, worker_shared->dbs, sizeof(copy));
	LWLockRelease(worker_shared->lock);

	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
	{
		DbWorker   *w = &copy[i];
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		char	   *dbname;

		if (w->state == DBW_FREE || w->state == DBW_ABSENT)
			continue;
		dbname = get_database_name(w->dbid);
		if (dbname == NULL)
			continue;
		values[0] = CStringGetTextDatum(dbname);
		values[1] = CStringGetTextDatum(state_names[w->state]);
		values[2] = Int32GetDatum(w->pid);
		nulls[2] = (w->pid == 0);
		values[3] = TimestampTzGetDatum(w->last_pass);
		nulls[3] = (w->last_pass == 0);
		values[4] = TimestampTzGetDatum(w->next_deadline);
		nulls[4] = (w->next_deadline == DT_NOEND || w->state != DBW_RUNNING);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* ---------------------------------------------------------------------
 * Statistics
 * ---------------------------------------------------------------------
 */
/* Count one event of this database (not transactional, like pg_stat). */
void
lockbox_count(LockboxCounter counter)
{
	DbWorker   *w;

	if (worker_shared == NULL || !OidIsValid(MyDatabaseId))
		return;
	LWLockAcquire(worker_shared->lock, LW_SHARED);
	w = find_db(MyDatabaseId, false);
	if (w != NULL)
		pg_atomic_fetch_add_u64(&worker_shared->stats[w - worker_shared->dbs].counters[counter], 1);
	LWLockRelease(worker_shared->lock);
}

/*
 * lockbox.stats_counters(): this database's counters and the time they
 * were reset (server start, the database first served, or
 * lockbox_stats_reset()), with the access queue's depth now.
 */
Datum
lockbox_stats_counters(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[2 + LB_COUNTERS];
	bool		nulls[2 + LB_COUNTERS];
	DbWorker   *w;
	int			depth = lockbox_access_pending_files();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, true, sizeof(nulls));
	LWLockAcquire(worker_shared->lock, LW_SHARED);
	w = find_db(MyDatabaseId, false);
	if (w != NULL)
	{
		int			i = w - worker_shared->dbs;

		values[0] = TimestampTzGetDatum(worker_shared->stats[i].reset);
		nulls[0] = false;
		for (int c = 0; c < LB_COUNTERS; c++)
		{
			values[1 + c] = Int64GetDatum((int64) pg_atomic_read_u64(&worker_shared->stats[i].counters[c]));
			nulls[1 + c] = false;
		}
	}
	LWLockRelease(worker_shared->lock);
	values[1 + LB_COUNTERS] = Int32GetDatum(depth);
	nulls[1 + LB_COUNTERS] = false;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* lockbox_stats_reset(): start this database's counters afresh. */
Datum
lockbox_stats_reset(PG_FUNCTION_ARGS)
{
	DbWorker   *w;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	w = find_db(MyDatabaseId, false);
	if (w != NULL)
		stats_reset(&worker_shared->stats[w - worker_shared->dbs]);
	LWLockRelease(worker_shared->lock);
	PG_RETURN_VOID();
}
