/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The lockbox launcher and the per-database lockbox workers.
 *
 * The launcher (one, started with the server once recovery has finished,
 * connected to no database) starts one worker per database in which the
 * extension is created, and visits no other database (see "The launcher"
 * below for how it finds them).
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
#include "access/xlog.h"
#include "access/genam.h"
#include "catalog/dependency.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_shdepend.h"
#include "catalog/pg_tablespace.h"
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
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/smgr.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/relmapper.h"
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

/* how often the launcher reads pg_database (in its own process) */
#define LAUNCHER_RESCAN_SECS	10
/* lockbox databases remembered while no slot is free for them */
#define LOCKBOX_MAX_WAITING		256
/* how long a worker stopped for a database command stays off */
#define PAUSE_SECS				5
/* notifications relayed per transaction */
#define RELAY_BATCH				1000
/* a due request a session holds locked is tried again after this long */
#define LOCKED_RETRY_MS			100
/* a worker that died is started again after this long */
#define RESTART_MS				1000
/* after a pass that relayed notifications, gather more for this long */
#define RELAY_GATHER_MS			50
/* requests expired or closed per transaction */
#define DEADLINE_BATCH			1000

typedef enum DbWorkerState
{
	DBW_FREE = 0,				/* slot unused */
	DBW_WANTED,					/* start a worker (new database, or woken) */
	DBW_STARTING,				/* launcher registered it */
	DBW_RUNNING,				/* serving */
	DBW_ABSENT,					/* no lockbox in that database */
	DBW_PAUSED,					/* stopped for a database command */
	DBW_BLOCKED					/* no background worker slot: retried */
} DbWorkerState;

typedef struct DbWorker
{
	Oid			dbid;
	DbWorkerState state;
	pid_t		pid;
	Latch	   *latch;
	TimestampTz retry_after;	/* DBW_PAUSED, DBW_BLOCKED: start again after */
	TimestampTz wanted_at;		/* when it was last asked for */
	TimestampTz last_pass;
	TimestampTz next_deadline;	/* DT_NOEND: none */
	bool		retry_now;		/* lockbox updated or dropped: end the pause */
	int			failures;		/* passes failed in a row (lockbox.worker) */
	/*
	 * A backend asks for a whole pass (sessions to end, a revocation to
	 * complete): set at commit under the lock in shared mode, taken by the
	 * worker.  Without it, a wake-up only relays notifications and audits
	 * spooled statements.
	 */
	pg_atomic_uint32 whole_pass;
	/*
	 * The earliest deadline committed earlier than next_deadline since the
	 * worker last looked (DT_NOEND: none): lowered at commit, taken into
	 * the worker's next deadline, whose time then makes a whole pass.
	 */
	pg_atomic_uint64 created_min;
} DbWorker;

/* lockbox.stats: counters per database since its statistics reset */
typedef struct DbStats
{
	TimestampTz reset;
	pg_atomic_uint64 counters[LB_COUNTERS];
} DbStats;

/* a database with lockbox that has no slot in dbs[] (all taken) */
typedef struct WaitingDb
{
	Oid			dbid;
	bool		logged;			/* "not served" is in the log already */
} WaitingDb;

typedef struct WorkerShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch;
	bool		scanned;		/* the launcher read pg_shdepend into dbs[] */
	int			nwaiting;
	WaitingDb	waiting[LOCKBOX_MAX_WAITING];
	DbWorker	dbs[LOCKBOX_MAX_DATABASES];
	DbStats		stats[LOCKBOX_MAX_DATABASES];	/* goes with dbs[i] */
} WorkerShared;

static WorkerShared *worker_shared = NULL;
/* a database worker's own slot */
static DbWorker *my_worker = NULL;

/* after a pass that audited statements, gather more for this long */
#define ACCESS_GATHER_MS	200
/* while spool files wait to be finished, look again this often */
#define ACCESS_POLL_MS		1000
/* spool transactions per pass, at most (the deadlines must not wait) */
#define ACCESS_ROUNDS		8

/* this transaction asks the worker for a whole pass at commit */
static bool wake_worker_pending = false;
/* this transaction queued notifications: wake the worker to relay them */
static bool relay_pending = false;
/* earliest deadline this transaction created */
static TimestampTz created_deadline = DT_NOEND;
static bool start_worker_pending = false;

/*
 * Database commands of this transaction the launcher must hear of: a
 * database created from a template with lockbox, or allowed connections
 * again (the launcher reads pg_shdepend again), a database dropped, lockbox
 * dropped here.
 */
static bool rescan_at_commit = false;
/* ALTER or DROP EXTENSION lockbox: a worker pausing after failed passes tries again */
static bool retry_at_commit = false;
static Oid	dropping_db = InvalidOid;
static bool dropping_lockbox = false;	/* DROP EXTENSION lockbox */

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
		free_slot->wanted_at = GetCurrentTimestamp();
		free_slot->next_deadline = DT_NOEND;
		pg_atomic_init_u32(&free_slot->whole_pass, 1);
		pg_atomic_init_u64(&free_slot->created_min, (uint64) DT_NOEND);
		stats_reset(&worker_shared->stats[free_slot - worker_shared->dbs]);
		return free_slot;
	}
	return NULL;
}

/* ---------------------------------------------------------------------
 * Which databases are served (the caller holds the lock, exclusively to
 * change anything)
 * ---------------------------------------------------------------------
 */
static bool
slot_available(Oid dbid)
{
	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
	{
		DbWorker   *w = &worker_shared->dbs[i];

		if (w->state == DBW_FREE || w->dbid == dbid)
			return true;
	}
	return false;
}

static void
forget_waiting(Oid dbid)
{
	for (int i = 0; i < worker_shared->nwaiting; i++)
	{
		if (worker_shared->waiting[i].dbid != dbid)
			continue;
		worker_shared->nwaiting--;
		memmove(&worker_shared->waiting[i], &worker_shared->waiting[i + 1],
				(worker_shared->nwaiting - i) * sizeof(WaitingDb));
		return;
	}
}

/*
 * Serve database dbid, which has lockbox: a slot of its own (a new one is
 * DBW_WANTED), else a place in the waiting list until a slot frees.  logged:
 * the caller has said already that it is not served.  Returns its slot, or
 * NULL when it waits.
 */
static DbWorker *
want_db(Oid dbid, bool logged)
{
	DbWorker   *w = find_db(dbid, true);

	if (w != NULL)
	{
		forget_waiting(dbid);
		return w;
	}
	for (int i = 0; i < worker_shared->nwaiting; i++)
		if (worker_shared->waiting[i].dbid == dbid)
			return NULL;
	if (worker_shared->nwaiting < LOCKBOX_MAX_WAITING)
	{
		worker_shared->waiting[worker_shared->nwaiting].dbid = dbid;
		worker_shared->waiting[worker_shared->nwaiting].logged = logged;
		worker_shared->nwaiting++;
	}
	return NULL;
}

/*
 * The connectable databases where lockbox is created, as pg_shdepend (a
 * shared catalog) tells any backend connected to a database: the install
 * script grants USAGE on schema lockbox to lockbox_engineer, a dependency
 * recorded there with the database's OID (deptype 'a', classid
 * pg_namespace, refclassid pg_authid), dropped with the extension's schema
 * and copied by CREATE DATABASE from a template that has it.  A database
 * where lockbox_engineer was granted USAGE on a schema by hand, without
 * lockbox, is listed too: its worker finds no lockbox there and exits, once.
 * only_db: that database only, connectable or not (InvalidOid: every
 * connectable one).  In a transaction.
 */
static List *
lockbox_grant_databases(Oid only_db)
{
	List	   *result = NIL;
	Oid			engineer = get_role_oid("lockbox_engineer", true);
	Relation	rel;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;

	if (!OidIsValid(engineer))
		return NIL;
	rel = table_open(SharedDependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_shdepend_refclassid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(AuthIdRelationId));
	ScanKeyInit(&key[1], Anum_pg_shdepend_refobjid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(engineer));
	scan = systable_beginscan(rel, SharedDependReferenceIndexId, true,
							  NULL, 2, key);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		Form_pg_shdepend dep = (Form_pg_shdepend) GETSTRUCT(tup);
		HeapTuple	dbtup;
		bool		connectable = false;

		if (dep->classid != NamespaceRelationId ||
			dep->deptype != SHARED_DEPENDENCY_ACL ||
			(OidIsValid(only_db) && dep->dbid != only_db) ||
			list_member_oid(result, dep->dbid))
			continue;
		dbtup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dep->dbid));
		if (HeapTupleIsValid(dbtup) && OidIsValid(only_db))
		{
			connectable = true;
			ReleaseSysCache(dbtup);
		}
		else if (HeapTupleIsValid(dbtup))
		{
			Form_pg_database db = (Form_pg_database) GETSTRUCT(dbtup);

			connectable = db->datallowconn &&
				db->datconnlimit != DATCONNLIMIT_INVALID_DB;
			ReleaseSysCache(dbtup);
		}
		if (connectable)
			result = lappend_oid(result, dep->dbid);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
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

/*
 * Notifications to relay: wake the worker at commit for a pass that relays
 * them, not one that also reads every deadline (a stream of transitions
 * made the worker read lockbox.open_request many times a second).
 */
void
lockbox_relay_wake_at_commit(void)
{
	relay_pending = true;
}

/* A new deadline: wake the worker at commit if it is earlier than its next. */
void
lockbox_deadline_created(TimestampTz deadline)
{
	if (deadline < created_deadline)
		created_deadline = deadline;
}

/*
 * At commit, tell the launcher what changed: this database has lockbox now
 * (CREATE EXTENSION), a database was created from a template with lockbox,
 * one was dropped, or lockbox was dropped here (its worker, woken, exits).
 */
static void
launcher_xact_commit(void)
{
	bool		wake_launcher = false;

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	if (start_worker_pending)
	{
		DbWorker   *w = want_db(MyDatabaseId, true);

		if (w != NULL && w->pid == 0 &&
			(w->state == DBW_ABSENT || w->state == DBW_PAUSED ||
			 w->state == DBW_BLOCKED))
			w->state = DBW_WANTED;
		if (w != NULL)
			w->wanted_at = GetCurrentTimestamp();
		wake_launcher = true;
	}
	if (rescan_at_commit)
	{
		worker_shared->scanned = false;
		wake_launcher = true;
	}
	if (OidIsValid(dropping_db))
	{
		DbWorker   *w = find_db(dropping_db, false);

		/* its slot is free for a database that waits */
		if (w != NULL && w->pid == 0)
			w->state = DBW_FREE;
		forget_waiting(dropping_db);
		wake_launcher = true;
	}
	if (dropping_lockbox)
		forget_waiting(MyDatabaseId);
	if (wake_launcher && worker_shared->launcher_latch != NULL)
		SetLatch(worker_shared->launcher_latch);
	LWLockRelease(worker_shared->lock);
}

/* Lower w->created_min to deadline (if it is earlier). */
static void
lower_created_min(DbWorker *w, TimestampTz deadline)
{
	uint64		cur = pg_atomic_read_u64(&w->created_min);

	while ((int64) cur > deadline &&
		   !pg_atomic_compare_exchange_u64(&w->created_min, &cur, (uint64) deadline))
		;
}

void
lockbox_worker_xact(XactEvent event)
{
	if (event == XACT_EVENT_COMMIT && worker_shared != NULL &&
		(wake_worker_pending || relay_pending || created_deadline != DT_NOEND))
	{
		DbWorker   *w;
		Latch	   *latch = NULL;
		bool		whole = false;

		LWLockAcquire(worker_shared->lock,
					  retry_at_commit ? LW_EXCLUSIVE : LW_SHARED);
		w = find_db(MyDatabaseId, false);
		if (w != NULL && w->state == DBW_RUNNING && w->latch != NULL)
		{
			bool		earlier = created_deadline < w->next_deadline;

			if (earlier)
				lower_created_min(w, created_deadline);
			whole = wake_worker_pending;
			if (whole || earlier || relay_pending)
				latch = w->latch;
		}
		if (whole)
			pg_atomic_write_u32(&w->whole_pass, 1);
		if (latch != NULL && retry_at_commit)
			w->retry_now = true;
		if (latch != NULL)
			SetLatch(latch);
		LWLockRelease(worker_shared->lock);
	}
	if (event == XACT_EVENT_COMMIT && worker_shared != NULL &&
		(start_worker_pending || rescan_at_commit ||
		 OidIsValid(dropping_db) || dropping_lockbox))
		launcher_xact_commit();
	/* the ring's ids were the dropped installation's */
	if (event == XACT_EVENT_COMMIT && dropping_lockbox)
		lockbox_relay_forget();
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT)
	{
		wake_worker_pending = false;
		relay_pending = false;
		start_worker_pending = false;
		created_deadline = DT_NOEND;
		rescan_at_commit = false;
		retry_at_commit = false;
		dropping_db = InvalidOid;
		dropping_lockbox = false;
	}
}

/*
 * lockbox.start_worker(): serve this database once the calling transaction
 * commits.  CREATE EXTENSION calls it; the extension owner may call it again.
 */
Datum
lockbox_start_worker(PG_FUNCTION_ARGS)
{
	bool		full = false;

	start_worker_pending = true;
	wake_worker_pending = true;
	if (worker_shared != NULL)
	{
		LWLockAcquire(worker_shared->lock, LW_SHARED);
		full = !slot_available(MyDatabaseId);
		LWLockRelease(worker_shared->lock);
	}
	if (full)
		ereport(WARNING,
				(errmsg("lockbox serves at most %d databases; database \"%s\" is not served",
						LOCKBOX_MAX_DATABASES, get_database_name(MyDatabaseId)),
				 errdetail("Access here still ends on time, but pending requests do not expire and engineers' sessions are not ended until a worker serves this database."),
				 errhint("Drop the extension in a database that does not use it; this database is served as soon as a slot frees.")));
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
			dropping_db = get_database_oid(dbname, true);
			break;
		case T_CreatedbStmt:
			/* CREATE DATABASE copies template1 unless it names a template */
			dbname = option_value(((CreatedbStmt *) node)->options, "template");
			if (dbname == NULL)
				dbname = "template1";
			/* a copy of a template with lockbox has lockbox */
			if (OidIsValid(get_database_oid(dbname, true)) &&
				lockbox_grant_databases(get_database_oid(dbname, true)) != NIL)
				rescan_at_commit = true;
			break;
		case T_AlterDatabaseStmt:
			if (option_value(((AlterDatabaseStmt *) node)->options, "tablespace"))
				dbname = ((AlterDatabaseStmt *) node)->dbname;
			if (option_value(((AlterDatabaseStmt *) node)->options, "allow_connections"))
				rescan_at_commit = true;
			break;
		case T_AlterExtensionStmt:
			/* objects of the library's version now, maybe: try at once */
			if (strcmp(((AlterExtensionStmt *) node)->extname, "lockbox") == 0)
			{
				wake_worker_pending = true;
				retry_at_commit = true;
			}
			break;
		case T_RenameStmt:
			if (((RenameStmt *) node)->renameType == OBJECT_DATABASE)
				dbname = ((RenameStmt *) node)->subname;
			break;
		case T_DropStmt:
			if (((DropStmt *) node)->removeType == OBJECT_EXTENSION)
			{
				ListCell   *lc;

				wake_worker_pending = true; /* it exits when lockbox is gone */
				foreach(lc, ((DropStmt *) node)->objects)
					if (IsA(lfirst(lc), String) &&
						strcmp(strVal(lfirst(lc)), "lockbox") == 0)
						dropping_lockbox = retry_at_commit = true;
			}
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

	/*
	 * A DROP EXTENSION lockbox that failed (a savepoint rolled back, the
	 * transaction commits): lockbox was not dropped, and its commit must not
	 * act as though it were (forget the relay ring's notifications, say).
	 * Where no table is protected, anyone may try the command.
	 */
	if (IsA(node, DropStmt) && ((DropStmt *) node)->removeType == OBJECT_EXTENSION)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) node)->objects)
			if (IsA(lfirst(lc), String) && strcmp(strVal(lfirst(lc)), "lockbox") == 0)
				dropping_lockbox = false;
	}
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
	/*
	 * On a hot standby too, once it is consistent: its database workers
	 * forward engineers' statements to the primary and end sessions there.
	 */
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "lockbox");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "lockbox_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "lockbox launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "lockbox launcher");
	RegisterBackgroundWorker(&worker);
}

/* ---------------------------------------------------------------------
 * The launcher
 *
 * It serves the databases where lockbox is created and visits no other.
 * Connected to no database, it can read pg_database (a nailed shared
 * catalog) through the relation cache, but not pg_shdepend: a backend
 * without a database cannot build the relation cache entry of a catalog
 * that is not nailed ("cannot read pg_class without having selected a
 * database").  It reads pg_shdepend's pages itself instead, through the
 * buffer manager (read_lockbox_databases): a shared catalog's file is
 * found by the relation mapper, its rows have a fixed layout, and their
 * visibility is checked against a snapshot as a scan would.  It does so
 * when it starts; from then on it learns of changes from the backends that
 * make them, at commit: CREATE EXTENSION lockbox (lockbox.start_worker()),
 * DROP EXTENSION (the worker exits and its slot frees), DROP DATABASE (the
 * slot frees), CREATE DATABASE from a template with lockbox and ALTER
 * DATABASE ... ALLOW_CONNECTIONS (it reads pg_shdepend again).  On a hot
 * standby no backend tells it of a CREATE EXTENSION it replays: there it
 * reads pg_shdepend again every LAUNCHER_RESCAN_SECS (1.6 started a
 * "lockbox scan" background worker connected to a database each time,
 * which took a worker slot and a connection every ten seconds).  It reads
 * pg_database every LAUNCHER_RESCAN_SECS, and at once at a reload (SIGHUP
 * sets its latch), without starting anything, to forget databases that
 * are gone and to name databases in its messages.
 *
 * Databases with lockbox beyond LOCKBOX_MAX_DATABASES wait for a slot, and a
 * worker the postmaster has no background worker slot for is tried again
 * every RESTART_MS: each is logged once, when it starts waiting, and once
 * when it is served after all.
 * ---------------------------------------------------------------------
 */
typedef struct DbName
{
	Oid			dbid;
	char		name[NAMEDATALEN];
} DbName;

static List *db_names = NIL;	/* connectable databases, from the last read */
static List *db_all = NIL;		/* every database, from the last read */
static List *warned_start = NIL;	/* "could not start a worker" logged */

/* Read the connectable databases and their names from pg_database. */
static void
read_databases(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext caller = CurrentMemoryContext;

	list_free_deep(db_names);
	db_names = NIL;
	list_free(db_all);
	db_all = NIL;
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old;
		DbName	   *d;

		old = MemoryContextSwitchTo(TopMemoryContext);
		db_all = lappend_oid(db_all, db->oid);
		MemoryContextSwitchTo(old);
		if (!db->datallowconn || db->datconnlimit == DATCONNLIMIT_INVALID_DB)
			continue;
		old = MemoryContextSwitchTo(TopMemoryContext);
		d = palloc(sizeof(DbName));
		d->dbid = db->oid;
		strlcpy(d->name, NameStr(db->datname), NAMEDATALEN);
		db_names = lappend(db_names, d);
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
}

/* the database's name, as of the last read; NULL when not connectable */
static const char *
db_name(Oid dbid)
{
	ListCell   *lc;

	foreach(lc, db_names)
	{
		DbName	   *d = (DbName *) lfirst(lc);

		if (d->dbid == dbid)
			return d->name;
	}
	return NULL;
}

static const char *
db_name_or_oid(Oid dbid)
{
	static char buf[32];
	const char *name = db_name(dbid);

	if (name != NULL)
		return name;
	snprintf(buf, sizeof(buf), "%u", dbid);
	return buf;
}

static bool
start_db_worker(Oid dbid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "lockbox");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "lockbox_db_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "lockbox worker for database %s",
			 db_name_or_oid(dbid));
	snprintf(worker.bgw_type, BGW_MAXLEN, "lockbox worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dbid);
	worker.bgw_notify_pid = MyProcPid;

	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

/*
 * The connectable databases where lockbox is created, read by the launcher
 * from pg_shdepend's pages (see "The launcher" above): the rows
 * lockbox_grant_databases finds through the catalog, found by reading
 * every page of the shared catalog's file through the buffer manager (a
 * ring of buffers: a large pg_shdepend does not push other pages out),
 * each row's visibility checked against a snapshot.  pg_shdepend holds a
 * row per object owned by, or granted to, a role other than the bootstrap
 * superuser: a few pages in most clusters.
 */
static List *
read_lockbox_databases(void)
{
	List	   *result = NIL;
	Oid			engineer;
	RelFileNode rnode;
	SMgrRelation smgr;
	BlockNumber nblocks;
	BufferAccessStrategy strategy;
	Snapshot	snap;
	MemoryContext caller = CurrentMemoryContext;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	snap = GetActiveSnapshot();
	engineer = get_role_oid("lockbox_engineer", true);
	if (OidIsValid(engineer))
	{
		rnode.spcNode = GLOBALTABLESPACE_OID;
		rnode.dbNode = InvalidOid;
		rnode.relNode = RelationMapOidToFilenode(SharedDependRelationId, true);
		if (!OidIsValid(rnode.relNode))
			elog(ERROR, "could not find the file of pg_shdepend");
		smgr = smgropen(rnode, InvalidBackendId);
		nblocks = smgrnblocks(smgr, MAIN_FORKNUM);
		strategy = GetAccessStrategy(BAS_BULKREAD);
		for (BlockNumber blk = 0; blk < nblocks; blk++)
		{
			Buffer		buf;
			Page		page;
			OffsetNumber maxoff;

			CHECK_FOR_INTERRUPTS();
			buf = ReadBufferWithoutRelcache(rnode, MAIN_FORKNUM, blk,
											RBM_NORMAL, strategy, true);
			LockBuffer(buf, BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			maxoff = PageIsNew(page) ? InvalidOffsetNumber : PageGetMaxOffsetNumber(page);
			for (OffsetNumber off = FirstOffsetNumber; off <= maxoff; off++)
			{
				ItemId		lp = PageGetItemId(page, off);
				HeapTupleData tup;
				Form_pg_shdepend dep;

				if (!ItemIdIsNormal(lp))
					continue;
				tup.t_data = (HeapTupleHeader) PageGetItem(page, lp);
				tup.t_len = ItemIdGetLength(lp);
				tup.t_tableOid = SharedDependRelationId;
				ItemPointerSet(&tup.t_self, blk, off);
				if (tup.t_len < offsetof(HeapTupleHeaderData, t_bits) ||
					!HeapTupleSatisfiesVisibility(&tup, snap, buf))
					continue;
				dep = (Form_pg_shdepend) GETSTRUCT(&tup);
				if (dep->refclassid == AuthIdRelationId &&
					dep->refobjid == engineer &&
					dep->classid == NamespaceRelationId &&
					dep->deptype == SHARED_DEPENDENCY_ACL &&
					!list_member_oid(result, dep->dbid))
				{
					MemoryContext old = MemoryContextSwitchTo(caller);

					result = lappend_oid(result, dep->dbid);
					MemoryContextSwitchTo(old);
				}
			}
			UnlockReleaseBuffer(buf);
		}
		FreeAccessStrategy(strategy);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	return result;
}

/*
 * Serve the databases with lockbox, as pg_shdepend has them now (a slot
 * each, or a place in the waiting list), when a read is due: at the
 * launcher's start, after CREATE DATABASE from a template with lockbox or
 * ALTER DATABASE ... ALLOW_CONNECTIONS, every LAUNCHER_RESCAN_SECS on a
 * hot standby.  Only connectable databases (the last read of pg_database).
 */
static void
scan_databases(void)
{
	List	   *dbs;
	ListCell   *lc;

	LWLockAcquire(worker_shared->lock, LW_SHARED);
	if (worker_shared->scanned)
	{
		LWLockRelease(worker_shared->lock);
		return;
	}
	LWLockRelease(worker_shared->lock);

	dbs = read_lockbox_databases();
	ereport(DEBUG2,
			(errmsg_internal("lockbox launcher read pg_shdepend: %d databases with lockbox",
							 list_length(dbs))));
	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	/* (a request to read again that came meanwhile is served by this read) */
	worker_shared->scanned = true;
	foreach(lc, dbs)
	{
		Oid			dbid = lfirst_oid(lc);

		if (db_name(dbid) != NULL && find_db(dbid, false) == NULL)
			(void) want_db(dbid, false);
	}
	LWLockRelease(worker_shared->lock);
	list_free(dbs);
}

/* ---------------------------------------------------------------------
 * SIGTERM: the server's shutdown, pg_terminate_backend, a paused database
 * ---------------------------------------------------------------------
 */
/*
 * A launcher or worker waiting between passes stops quietly: die() would
 * have each write "FATAL:  terminating background worker" at every clean
 * shutdown, which monitoring reads as an error.  Anywhere else (a pass
 * running, waiting for a lock maybe) SIGTERM is die(), and stops it at once.
 */
static volatile sig_atomic_t sigterm_quiet = false;
static volatile sig_atomic_t sigterm_pending = false;
static bool stopped_quietly = false;
/* the launcher: a SIGTERM in a pass too ends it at the pass's end, quietly */
static volatile sig_atomic_t sigterm_always_quiet = false;

static void
handle_sigterm(SIGNAL_ARGS)
{
	if (sigterm_quiet || sigterm_always_quiet)
	{
		int			save_errno = errno;

		sigterm_pending = true;
		SetLatch(MyLatch);
		errno = save_errno;
	}
	else
		die(postgres_signal_arg);
}

/*
 * WaitLatch between passes; a SIGTERM meanwhile ends the process with
 * exit_code, without an error line (at once with WL_LATCH_SET in events,
 * else when the timeout ends).
 */
static void
idle_wait(int events, long timeout, int exit_code)
{
	sigterm_quiet = true;
	if (!sigterm_pending)
		(void) WaitLatch(MyLatch, events, timeout, PG_WAIT_EXTENSION);
	sigterm_quiet = false;
	if (sigterm_pending)
	{
		stopped_quietly = true;
		proc_exit(exit_code);
	}
}

/* idle_wait for a database's worker on a standby (standby.c): exit code 0 */
void
lockbox_worker_idle_wait(int events, long timeout)
{
	idle_wait(events, timeout, 0);
}

/* a message for a database, logged after the launcher releases its lock */
typedef struct DbMessage
{
	Oid			dbid;
	int			kind;
} DbMessage;

#define MSG_NOT_SERVED	1
#define MSG_SERVED		2
#define MSG_UNINSTALLED	3

static List *
add_message(List *messages, Oid dbid, int kind)
{
	DbMessage  *m = palloc(sizeof(DbMessage));

	m->dbid = dbid;
	m->kind = kind;
	return lappend(messages, m);
}

static void
launcher_pass(void)
{
	List	   *to_start = NIL;
	List	   *messages = NIL;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();
	/* (taken before pg_database is read: see access_log.c) */
	List	   *spooled = lockbox_spool_databases();

	/* (a slot asked for after this read may be for a database it missed) */
	read_databases();
	ereport(DEBUG2,
			(errmsg_internal("lockbox launcher read pg_database: %d connectable databases",
							 list_length(db_names))));
	scan_databases();
	/* the spool and backlog of databases that are gone (a standby's replay) */
	foreach(lc, spooled)
		if (db_all != NIL && !list_member_oid(db_all, lfirst_oid(lc)))
			lockbox_spool_forget_database(lfirst_oid(lc));
	list_free(spooled);

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	/*
	 * Free the slots of databases that are gone, and of those where lockbox
	 * is no longer installed (their worker found that out and exited).
	 */
	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
	{
		DbWorker   *w = &worker_shared->dbs[i];

		if (w->state == DBW_FREE || w->pid != 0)
			continue;
		if (w->state == DBW_ABSENT)
		{
			messages = add_message(messages, w->dbid, MSG_UNINSTALLED);
			w->state = DBW_FREE;
		}
		else if (db_name(w->dbid) == NULL && w->wanted_at < now)
			w->state = DBW_FREE;
		if (w->state == DBW_FREE)
			warned_start = list_delete_oid(warned_start, w->dbid);
	}
	/* databases waiting for a slot: gone ones forgotten, the next served */
	for (int i = worker_shared->nwaiting - 1; i >= 0; i--)
		if (db_name(worker_shared->waiting[i].dbid) == NULL)
			forget_waiting(worker_shared->waiting[i].dbid);
	while (worker_shared->nwaiting > 0 && slot_available(InvalidOid))
	{
		WaitingDb	first = worker_shared->waiting[0];

		(void) want_db(first.dbid, false);
		if (first.logged)
			messages = add_message(messages, first.dbid, MSG_SERVED);
	}
	for (int i = 0; i < worker_shared->nwaiting; i++)
	{
		if (!worker_shared->waiting[i].logged)
			messages = add_message(messages, worker_shared->waiting[i].dbid,
								   MSG_NOT_SERVED);
		worker_shared->waiting[i].logged = true;
	}
	/* workers to start: new, back from a pause, or waiting for a slot */
	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
	{
		DbWorker   *w = &worker_shared->dbs[i];

		if ((w->state == DBW_PAUSED || w->state == DBW_BLOCKED) &&
			w->pid == 0 && now >= w->retry_after)
			w->state = DBW_WANTED;
		if (w->state == DBW_WANTED && w->pid == 0)
		{
			w->state = DBW_STARTING;
			to_start = lappend_oid(to_start, w->dbid);
		}
	}
	LWLockRelease(worker_shared->lock);

	foreach(lc, messages)
	{
		DbMessage  *m = (DbMessage *) lfirst(lc);

		if (m->kind == MSG_NOT_SERVED)
			ereport(LOG,
					(errmsg("lockbox serves at most %d databases; database \"%s\" is not served",
							LOCKBOX_MAX_DATABASES, db_name_or_oid(m->dbid)),
					 errhint("Drop the extension in a database that does not use it; this database is served as soon as a slot frees.")));
		else if (m->kind == MSG_SERVED)
			ereport(LOG,
					(errmsg("lockbox serves database \"%s\" now that a slot is free",
							db_name_or_oid(m->dbid))));
		else if (db_name(m->dbid) != NULL)
			ereport(LOG,
					(errmsg("lockbox does not serve database \"%s\": the extension is not installed there",
							db_name(m->dbid))));
	}
	list_free_deep(messages);

	foreach(lc, to_start)
	{
		Oid			dbid = lfirst_oid(lc);
		DbWorker   *w;

		if (start_db_worker(dbid))
		{
			if (list_member_oid(warned_start, dbid))
				ereport(LOG,
						(errmsg("lockbox started the worker for database \"%s\"",
								db_name_or_oid(dbid))));
			warned_start = list_delete_oid(warned_start, dbid);
			continue;
		}
		if (!list_member_oid(warned_start, dbid))
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			warned_start = lappend_oid(warned_start, dbid);
			MemoryContextSwitchTo(old);
			ereport(WARNING,
					(errmsg("lockbox could not start a worker for database \"%s\"",
							db_name_or_oid(dbid)),
					 errdetail("No background worker slot is free; it is tried again every second, without another message."),
					 errhint("Raise max_worker_processes: lockbox needs one for its launcher and one per database where it is created, as the README's section on the worker explains.")));
		}
		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		w = find_db(dbid, false);
		if (w != NULL && w->state == DBW_STARTING && w->pid == 0)
		{
			w->state = DBW_BLOCKED;
			w->retry_after = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														 RESTART_MS);
		}
		LWLockRelease(worker_shared->lock);
	}
	list_free(to_start);
}

void
lockbox_launcher_main(Datum main_arg)
{
	MemoryContext passcxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	/*
	 * A pass of the launcher is short and never waits for long (it reads
	 * catalogs and registers workers): a shutdown's SIGTERM ends it when
	 * the pass is done, without the FATAL line die() would write.
	 */
	sigterm_always_quiet = true;
	pqsignal(SIGTERM, handle_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("lockbox launcher");

	LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
	worker_shared->launcher_latch = MyLatch;
	/* read pg_shdepend (again, after a launcher restart) */
	worker_shared->scanned = false;
	/* after a launcher restart, workers that were starting must be retried */
	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
		if (worker_shared->dbs[i].state == DBW_STARTING &&
			worker_shared->dbs[i].pid == 0)
			worker_shared->dbs[i].state = DBW_WANTED;
	LWLockRelease(worker_shared->lock);

	passcxt = AllocSetContextCreate(TopMemoryContext, "lockbox launcher pass",
									ALLOCSET_DEFAULT_SIZES);
	/* settings that only make sense together: checked at start, each reload */
	lockbox_settings_check_windows();
	for (;;)
	{
		MemoryContext old;
		long		timeout = LAUNCHER_RESCAN_SECS * 1000L;
		TimestampTz now;
		static TimestampTz next_standby_scan = 0;

		CHECK_FOR_INTERRUPTS();
		if (sigterm_pending)
		{
			stopped_quietly = true;
			proc_exit(1);
		}
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			lockbox_settings_check_windows();
		}

		/*
		 * On a standby no backend tells the launcher of a CREATE EXTENSION
		 * it replays: read pg_shdepend again now and then (its pages, in
		 * this process).
		 */
		now = GetCurrentTimestamp();
		if (RecoveryInProgress() && now >= next_standby_scan)
		{
			LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
			worker_shared->scanned = false;
			LWLockRelease(worker_shared->lock);
			next_standby_scan = TimestampTzPlusMilliseconds(now, LAUNCHER_RESCAN_SECS * 1000L);
		}

		old = MemoryContextSwitchTo(passcxt);
		launcher_pass();
		MemoryContextSwitchTo(old);
		MemoryContextReset(passcxt);

		/* paused or blocked workers come back in time */
		now = GetCurrentTimestamp();
		LWLockAcquire(worker_shared->lock, LW_SHARED);
		for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
		{
			DbWorker   *w = &worker_shared->dbs[i];

			if (w->state == DBW_PAUSED || w->state == DBW_BLOCKED)
				timeout = Min(timeout,
							  Max(1, TimestampDifferenceMilliseconds(now, w->retry_after)));
		}
		LWLockRelease(worker_shared->lock);

		/* exit code 1: the postmaster starts the launcher again, but at shutdown */
		idle_wait(WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout, 1);
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
			w->state = (code == 0 && !stopped_quietly) ? DBW_ABSENT : DBW_PAUSED;
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
	/* a copied database not yet adopted: nothing (identity.c) */
	*result = lockbox_copy_held(&call) ? 0 : step(&call, arg);
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
	/* (not inside Min(), which would drain twice) */
	int64		audited = lockbox_access_drain(call, (List **) arg);

	return (int) Min(audited, INT_MAX);
}

static int
step_anchor(LockboxCall *call, void *arg)
{
	lockbox_audit_log_anchor();
	return 0;
}

/* the audit's monthly partitions, ahead of time */
static int
step_partitions(LockboxCall *call, void *arg)
{
	return lockbox_audit_keep_partitions(call->now);
}

/* statistics of the whole audit log (arg: whether a partition was made) */
static int
step_analyze(LockboxCall *call, void *arg)
{
	return lockbox_audit_analyze(*(bool *) arg);
}

/* when the worker next looks at the audit's partitions */
static TimestampTz next_partitions_at = 0;

/* a month's partition was made since the audit log was last analyzed */
static bool analyze_due = false;

/* when the worker next writes the audit's heads to the server log */
static TimestampTz next_anchor_at = 0;
/* when it last did (0: not yet) */
static TimestampTz last_anchor_at = 0;

/*
 * A reload, in a database's worker: lockbox.anchor_interval changed counts
 * from the last anchor, not from the one after it (an hour's interval
 * lowered to a minute took effect an hour later).
 */
static void
db_worker_reload(void)
{
	ProcessConfigFile(PGC_SIGHUP);
	if (last_anchor_at != 0)
		next_anchor_at = TimestampTzPlusMilliseconds(last_anchor_at,
													 lockbox_anchor_interval);
}

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

/* Take the deadlines committed earlier than the next one into *next_deadline. */
static void
take_created(TimestampTz *next_deadline)
{
	int64		created;

	if (my_worker == NULL)
		return;
	created = (int64) pg_atomic_exchange_u64(&my_worker->created_min, (uint64) DT_NOEND);
	if (created < *next_deadline)
		*next_deadline = created;
}

/*
 * After an error in a step: log it, abort its transaction, and leave the
 * pass's memory empty, as a new pass finds it.
 */
static void
step_failed(MemoryContext passcxt)
{
	EmitErrorReport();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(TopMemoryContext);
	MemoryContextReset(passcxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

static int
step_keep_relay(LockboxCall *call, void *arg)
{
	return lockbox_relay_keep();
}

/*
 * Relay the queued notifications.  A relay that fails (a NOTIFY queue kept
 * full by a listener that never reads, say) is logged and tried again after
 * a pause of its own, growing with each failure in a row (1 s, doubled up
 * to a minute), and what it took from the relay ring goes into the outbox,
 * which keeps it: it does not fail the pass, whose deadlines, sessions and
 * revocations do not wait for it.  Returns false when lockbox is no longer
 * installed.
 */
static int	relay_failures = 0;		/* in a row */
static TimestampTz relay_retry_at = 0;

static bool
relay_step(MemoryContext passcxt, int *relayed)
{
	volatile bool installed = true;
	volatile bool failed = false;
	int			n;

	if (relay_failures > 0 && GetCurrentTimestamp() < relay_retry_at)
		return true;
	PG_TRY();
	{
		do
		{
			if (!in_transaction(passcxt, "lockbox: relaying notifications",
								step_relay, NULL, &n))
			{
				installed = false;
				break;
			}
			*relayed += n;
		} while (n == RELAY_BATCH);
	}
	PG_CATCH();
	{
		step_failed(passcxt);
		lockbox_count(LB_WORKER_FAILURES);
		failed = true;
	}
	PG_END_TRY();
	if (!failed)
	{
		relay_failures = 0;
		return installed;
	}
	relay_failures++;
	relay_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 Min(60000, 1000L << Min(relay_failures - 1, 6)));
	return in_transaction(passcxt, "lockbox: keeping notifications to relay",
						  step_keep_relay, NULL, &n);
}

/*
 * A whole pass's own steps: act on every passed deadline (in batches, each
 * its own transaction, so other transitions keep flowing), end the sessions
 * whose access ended, relay what that queued, and find the next deadline.
 */
static bool
deadline_steps(MemoryContext passcxt, TimestampTz *next_deadline, int *relayed)
{
	int			n;

	/* (a copied database not adopted runs no step: it has none) */
	*next_deadline = DT_NOEND;
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
	if (!relay_step(passcxt, relayed))
		return false;
	if (!in_transaction(passcxt, "lockbox: finding the next deadline",
						step_next_deadline, next_deadline, &n))
		return false;
	/* and those committed since its snapshot */
	take_created(next_deadline);
	return true;
}

/*
 * One pass: audit spooled statements, relay notifications and, in a whole
 * pass, the deadline steps above (*next_deadline is left as it is by a pass
 * that is not whole).  *more: the spool may hold records this pass had no round
 * left for.  Returns false when lockbox is no longer installed.
 */
static bool
db_worker_pass(MemoryContext passcxt, bool whole, TimestampTz *next_deadline,
			   int *relayed, int *audited, bool *more)
{
	int			n;

	/*
	 * While a whole pass runs, every new deadline is handed to us
	 * (created_min): one committed after the next deadline is read below
	 * must not be slept through.
	 */
	if (whole)
		set_next_deadline(DT_NOEND, false);

	/* engineers' statements, as the sessions spooled them */
	*audited = 0;
	*more = false;
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
		*more = (round == ACCESS_ROUNDS - 1);
	}

	*relayed = 0;
	if (!relay_step(passcxt, relayed))
		return false;
	if (whole && !deadline_steps(passcxt, next_deadline, relayed))
		return false;

	/*
	 * The audit's partitions: this month's and the next two, and the month
	 * of any row a clock put into the default partition; every 10 minutes,
	 * every pass while the log is still empty.
	 */
	if (GetCurrentTimestamp() >= next_partitions_at && !RecoveryInProgress())
	{
		if (!in_transaction(passcxt, "lockbox: creating the audit's partitions",
							step_partitions, NULL, &n))
			return false;
		/* an empty or busy log: look again at the next pass */
		next_partitions_at = n < 0 ? 0 :
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10 * 60 * 1000);
		/*
		 * then the whole log's statistics, when it has none or grew a month
		 * (a month's that a busy lock put off stays due until done)
		 */
		if (n >= 0)
		{
			analyze_due = analyze_due || n > 0;
			if (!in_transaction(passcxt, "lockbox: analyzing the audit log",
								step_analyze, &analyze_due, &n))
				return false;
			if (n >= 0)
				analyze_due = false;
		}
	}

	/* the audit's heads, for anyone to keep outside the database */
	if (GetCurrentTimestamp() >= next_anchor_at)
	{
		if (!in_transaction(passcxt, "lockbox: writing the audit's anchor",
							step_anchor, NULL, &n))
			return false;
		last_anchor_at = GetCurrentTimestamp();
		next_anchor_at = TimestampTzPlusMilliseconds(last_anchor_at,
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
	{"exit_on_error", "off"},
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

	/*
	 * Who it is: the bootstrap superuser it connected as.  A database
	 * owner's ALTER DATABASE ... SET session_authorization (or role) would
	 * make the worker's session that role, and its audit rows (expire,
	 * close) name it as actor and session user.  The name is looked up in a
	 * transaction.
	 */
	StartTransactionCommand();
	SetConfigOption("session_authorization",
					GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false),
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);
	CommitTransactionCommand();
	/* the worker's statements are lockbox's own, not for pgaudit's log */
	if (GetConfigOption("pgaudit.log", true, false) != NULL)
		SetConfigOption("pgaudit.log", "none", PGC_SUSET, PGC_S_OVERRIDE);
}

void
lockbox_db_worker_main(Datum main_arg)
{
	Oid			dbid = DatumGetObjectId(main_arg);
	char	   *dbname;
	DbWorker   *w;
	MemoryContext passcxt;
	volatile int failures;
	/* the next deadline a whole pass found, and whether the next pass is whole */
	TimestampTz next_deadline = DT_NOEND;
	volatile bool whole_next = true;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, handle_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	fix_worker_settings();
	pgstat_report_appname("lockbox worker");
	/* the database's name, for log lines written outside a transaction */
	StartTransactionCommand();
	{
		char	   *name = get_database_name(dbid);

		dbname = MemoryContextStrdup(TopMemoryContext,
									 name ? name : psprintf("%u", dbid));
	}
	CommitTransactionCommand();

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
	my_worker = w;
	w->failures = 0;
	LWLockRelease(worker_shared->lock);
	on_shmem_exit(db_worker_detach, (Datum) 0);

	/* on a hot standby: forward and end sessions until promoted */
	if (RecoveryInProgress())
		lockbox_standby_worker();

	passcxt = AllocSetContextCreate(TopMemoryContext, "lockbox worker pass",
									ALLOCSET_DEFAULT_SIZES);
	failures = 0;
	for (;;)
	{
		bool		installed;
		bool		failed = false;
		bool		whole;
		int			relayed = 0;
		int			audited = 0;
		bool		more = false;
		int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
		long		timeout = -1;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			db_worker_reload();
		}

		/*
		 * A failed pass is reported and retried after a pause that grows
		 * with each failure in a row; the worker itself stays up.
		 */
		/*
		 * (a pass is what a request to try again asks for)  A whole pass:
		 * the first, one after a failure, one at the next deadline, one a
		 * backend asked for; otherwise the pass only relays and audits.
		 */
		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		whole = pg_atomic_exchange_u32(&w->whole_pass, 0) != 0 || w->retry_now ||
			whole_next;
		w->retry_now = false;
		LWLockRelease(worker_shared->lock);
		take_created(&next_deadline);
		whole = whole || GetCurrentTimestamp() >= next_deadline;
		whole_next = false;
		PG_TRY();
		{
			installed = db_worker_pass(passcxt, whole, &next_deadline, &relayed,
									   &audited, &more);
			failures = 0;
			lockbox_count(LB_WORKER_PASSES);
		}
		PG_CATCH();
		{
			step_failed(passcxt);
			failures++;
			whole_next = true;
			lockbox_count(LB_WORKER_FAILURES);
			next_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														Min(60000, 1000L << Min(failures - 1, 6)));
			installed = true;
			failed = true;
		}
		PG_END_TRY();
		LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
		w->failures = failures;
		LWLockRelease(worker_shared->lock);

		if (!installed)
		{
			ereport(DEBUG1,
					(errmsg("lockbox worker for database \"%s\" exiting: the extension is not installed",
							dbname)));
			proc_exit(0);
		}

		/*
		 * Under a stream of transitions, gather notifications for a moment
		 * before the next pass: one relay transaction (one commit, one WAL
		 * flush) then carries many.  The latch stays set meanwhile.
		 */
		if (relayed > 0 || audited > 0)
		{
			idle_wait(WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					  audited > 0 ? ACCESS_GATHER_MS : RELAY_GATHER_MS, 0);
			CHECK_FOR_INTERRUPTS();
		}

		/*
		 * After a failed pass, nothing but the pause brings the next one:
		 * not the anchor the pass did not write (it is due at once, and was
		 * a wake-up every millisecond, each logging the failure again), nor
		 * spool files to remove, nor a session's wake-up.  Interrupts and
		 * reloads are served meanwhile.
		 */
		if (failed)
		{
			for (;;)
			{
				long		until = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																	next_deadline);
				bool		retry_now;

				/* but ALTER or DROP EXTENSION lockbox ends the pause */
				LWLockAcquire(worker_shared->lock, LW_EXCLUSIVE);
				retry_now = w->retry_now;
				w->retry_now = false;
				LWLockRelease(worker_shared->lock);
				if (until <= 0 || retry_now)
					break;
				idle_wait(WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, until, 0);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
				if (ConfigReloadPending)
				{
					ConfigReloadPending = false;
					db_worker_reload();
				}
			}
			continue;
		}

		/* a relay that failed: its next try */
		if (relay_failures > 0)
		{
			long		until = (long) Max(0, (relay_retry_at - GetCurrentTimestamp()) / 1000) + 1;

			events |= WL_TIMEOUT;
			timeout = timeout < 0 ? until : Min(timeout, until);
		}

		/* the next anchor */
		{
			long		until = (long) Max(0, (next_anchor_at - GetCurrentTimestamp()) / 1000) + 1;

			events |= WL_TIMEOUT;
			timeout = timeout < 0 ? until : Min(timeout, until);
		}

		/*
		 * Spool files of sessions that ended: come back to finish them (a
		 * removal that failed, a file of another installation).  Not for a
		 * session still connected, whose file is read as it writes (its
		 * first record since a pass wakes us, and its end too): 1.6 made a
		 * whole pass every second for as long as an engineer's pooled
		 * connection stayed open.  The spool left for the next pass: at once.
		 */
		if (more || lockbox_access_pending_files(true) > 0)
		{
			long		until = more ? 0 : ACCESS_POLL_MS;

			events |= WL_TIMEOUT;
			timeout = timeout < 0 ? until : Min(timeout, until);
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
		/* exit code 0: the postmaster says nothing; the launcher restarts us */
		idle_wait(events, timeout, 0);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------
 * lockbox.worker: what the workers are doing
 * ---------------------------------------------------------------------
 */
static const char *const state_names[] = {
	"free", "starting", "starting", "running", "not installed", "paused",
	"waiting for a background worker slot"
};

Datum
lockbox_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DbWorker	copy[LOCKBOX_MAX_DATABASES];
	WaitingDb	waiting[LOCKBOX_MAX_WAITING];
	int			nwaiting;

	InitMaterializedSRF(fcinfo, 0);
	LWLockAcquire(worker_shared->lock, LW_SHARED);
	memcpy(copy, worker_shared->dbs, sizeof(copy));
	nwaiting = worker_shared->nwaiting;
	memcpy(waiting, worker_shared->waiting, nwaiting * sizeof(WaitingDb));
	LWLockRelease(worker_shared->lock);

	/* databases with lockbox beyond LOCKBOX_MAX_DATABASES */
	for (int i = 0; i < nwaiting; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, true, true, true, true};
		char	   *dbname = get_database_name(waiting[i].dbid);

		if (dbname == NULL)
			continue;
		values[0] = CStringGetTextDatum(dbname);
		values[1] = CStringGetTextDatum("not served: no slot free");
		nulls[1] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

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
		/* a running worker whose last pass failed: retried after a pause */
		values[1] = CStringGetTextDatum(w->state == DBW_RUNNING && w->failures > 0 ?
										"failing" : state_names[w->state]);
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
	int			depth = lockbox_access_pending_files(false);

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
