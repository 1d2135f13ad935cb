/*-------------------------------------------------------------------------
 *
 * access_log.c
 *		The access log: every engineer statement on protected data, allowed
 *		or refused, recorded before it runs and never lost.
 *
 * Capture.  The enforcement check (enforce.c) hands over each statement it
 * allows, with every open request covering each protected relation it
 * reaches, and each statement it refuses, with the reason.
 *
 * The durable store is a spool file per session, outside any transaction:
 * $PGDATA/lockbox_spool/<database oid>/<pid>.<session start>.<n>, mapped
 * shared.  The record is copied into it (into the kernel's page cache; with
 * lockbox.access_log_sync also flushed to disk by msync(2)) before the
 * statement runs; when it cannot be (no disk space could be reserved, the
 * file could not be made) the statement is refused.  A
 * rollback, an aborted subtransaction, the end of the session, or a crash of
 * the session, the worker or the postmaster leaves it in place; what an
 * operating-system crash can lose is what the kernel had not yet written,
 * which lockbox.access_log_sync makes nothing.
 *
 * A statement the session repeats (the same text, relations, requests and
 * outcome) is spooled, on a primary, as a short repeat record naming the first one; the
 * worker counts them into one audit row (statements, first and last time).
 *
 * Per-session slots in shared memory tell the worker which spool files are
 * still being written (and whether the session has news for it).  The
 * database's worker drains the spool into lockbox.audit_log, recording in the
 * same transaction how far it read each file (lockbox.access_spool), so every
 * record becomes audit rows exactly once; it removes a file once its session
 * has ended and everything in it is audited.
 *
 * On a hot standby sessions spool the same way (without repeat records, and
 * with a flag saying the statement ran during recovery); the database's
 * worker there (standby.c) forwards whole records to the primary, whose
 * lockbox_forward_access audits them with the standby's node name and keeps
 * its progress by node and file.  The standby's backlog is bounded by
 * lockbox.standby_backlog_max: beyond it engineers' statements are refused.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "access/detoast.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "nodes/parsenodes.h"
#include "common/cryptohash.h"
#include "common/file_perm.h"
#include "common/sha2.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "lockbox.h"

#define SPOOL_DIR			"lockbox_spool"
#define SPOOL_MAGIC			0x58424B4C	/* "LKBX" */
#define SPOOL_STATEMENT		1
#define SPOOL_REPEAT		2
/* captured during recovery: the statement ran on a standby */
#define SPOOL_FLAG_STANDBY	0x0001
/*
 * From 1.6: after the relations come the statement's bound values and the
 * client's statement it ran within, each as a part (see put_part).  The
 * query of a record without the flag (written before) is the whole text,
 * with them appended as comment lines.
 */
#define SPOOL_FLAG_PARTS	0x0002
/* a session starts a new spool file beyond this size */
#define SPOOL_ROTATE		(16 * 1024 * 1024)
/* how much of a spool file a session maps (no record comes near the rest) */
#define SPOOL_MAP			(2 * SPOOL_ROTATE)
/* disk space reserved (fallocate) at a time, ahead of the records */
#define SPOOL_EXTENT		(1024 * 1024)
/* bytes of spool the worker audits in one transaction */
#define INGEST_CHUNK		(4 * 1024 * 1024)

/* settings */
int			lockbox_access_log_max_query = 16384;
bool		lockbox_access_log_sync = false;
int			lockbox_standby_backlog_max = 256 * 1024;	/* kB */
char	   *lockbox_node_name_setting = NULL;

typedef struct SpoolHeader
{
	uint32		magic;
	uint32		len;			/* the whole record, header included */
	pg_crc32c	crc;			/* of the record from kind on */
	uint8		kind;			/* SPOOL_STATEMENT or SPOOL_REPEAT */
	uint8		outcome;		/* LockboxOutcome */
	uint16		flags;			/* SPOOL_FLAG_* */
	int32		pid;
	uint32		installation;	/* the spool epoch of the installation of
								 * lockbox whose requests the record names
								 * (lockbox.installation.spool_epoch, 1.7);
								 * 0: written before 1.7 */
	TimestampTz at;
	uint64		base;			/* SPOOL_REPEAT: offset of its statement */
} SpoolHeader;

#define SPOOL_CRC_START		offsetof(SpoolHeader, kind)

/*
 * A session's slot: the spool file it writes (empty: none), and whether the
 * worker has been told since it last read the file.
 */
typedef struct AccessSlot
{
	slock_t		mutex;
	Oid			dbid;
	char		file[64];
	pg_atomic_uint32 announced;
	pg_atomic_uint64 written;	/* bytes of records in the file so far */
	char		pad[PG_CACHE_LINE_SIZE];	/* sessions write their own slot
											 * at every statement: no sharing
											 * of cache lines */
} AccessSlot;

PG_FUNCTION_INFO_V1(lockbox_standby_backlog);
PG_FUNCTION_INFO_V1(lockbox_forward_access);

static AccessSlot *access_slots = NULL;
static int	access_slot_count = 0;

/*
 * On a standby, per database: the spool not yet forwarded to the primary.
 * Sessions add what they append; the database's worker sets it to what it
 * measured at each pass (so the sum stays true also when no worker runs),
 * and notes its last forward and its last error for lockbox.standby_backlog.
 */
typedef struct BacklogSlot
{
	slock_t		mutex;
	Oid			dbid;
	pg_atomic_uint64 bytes;
	int			files;
	TimestampTz last_forward;
	TimestampTz last_error_at;
	char		last_error[256];
} BacklogSlot;

static BacklogSlot *backlog_slots = NULL;
static slock_t *backlog_lock = NULL;

/* this session's spool file, the how-manieth of the session */
static int	spool_fd = -1;
static char *spool_map = NULL;	/* the file, mapped shared */
static char spool_file[64];
static off_t spool_size = 0;	/* bytes of records */
static off_t spool_allocated = 0;	/* bytes reserved on disk */
static int	spool_number = 0;
/*
 * The installation of lockbox this session's records are of (its spool
 * epoch), and the one its open file's records are of: a file holds the
 * records of one installation only, so that those of an installation
 * dropped meanwhile can be set aside whole (see "Installations" below).
 */
static uint32 record_installation = 0;
static uint32 spool_installation = 0;

/* the last statement record, for repeats */
typedef struct LastStatement
{
	bool		valid;
	off_t		offset;
	LockboxOutcome outcome;
	Oid			user;
	Oid			session_user;
	char	   *command;
	char	   *reason;
	char	   *query;
	char	   *parameters;		/* NULL: none */
	char	   *within;			/* NULL: none */
	int			nitems;
	LockboxAccessItem *items;
} LastStatement;

static LastStatement last;

/* DROP DATABASE under way: the database's oid */
static Oid	dropped_dbid = InvalidOid;
static MemoryContext last_cxt = NULL;

/* ---------------------------------------------------------------------
 * Settings and shared memory
 * ---------------------------------------------------------------------
 */
void
lockbox_access_log_init(void)
{
	DefineCustomIntVariable("lockbox.access_log_max_query",
							"Longest statement text kept in the access log.",
							"Beyond it the access log keeps this much of the text, its full length and the SHA-256 of the whole.",
							&lockbox_access_log_max_query, 16384, 1024, 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomBoolVariable("lockbox.access_log_sync",
							 "Flush each engineer statement's access record to disk before the statement runs.",
							 "Off: a crash of the operating system can lose the records of the last seconds; on: nothing, for a flush to disk (msync) per statement.",
							 &lockbox_access_log_sync, false,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("lockbox.standby_backlog_max",
							"Most engineer statement records a standby keeps waiting for the primary.",
							"On a hot standby, when the access records not yet forwarded to the primary reach this size, "
							"engineers' statements on protected tables there are refused (SQLSTATE 53400) until the backlog drains.",
							&lockbox_standby_backlog_max, 256 * 1024, 1, INT_MAX / 2,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomStringVariable("lockbox.node_name",
							   "This server's name in the access log when it is a standby (empty: cluster_name).",
							   "Statements run on a standby are recorded with this node name; a standby forwards them to the primary "
							   "logged in as a role of the same name. Also keys the progress of this server's spool files.",
							   &lockbox_node_name_setting, "",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
}

/*
 * This server's node name: lockbox.node_name, else cluster_name; NULL when
 * neither is set.
 */
const char *
lockbox_node_name(void)
{
	if (lockbox_node_name_setting != NULL && lockbox_node_name_setting[0] != '\0')
		return lockbox_node_name_setting;
	if (cluster_name != NULL && cluster_name[0] != '\0')
		return cluster_name;
	return NULL;
}

/* The node under which this server keeps the progress of its own spool. */
static const char *
local_node_key(void)
{
	const char *name = lockbox_node_name();

	return name != NULL ? name : "primary";
}

/*
 * Whose spool this is.  lockbox_spool/node names the node whose sessions
 * wrote the files beside it.  A base backup copies the directory with the
 * rest of the data directory: a standby made from it would take the files
 * of the server it was copied from for its own, and forward records that
 * server audits itself, under its own name.  So a server that starts as a
 * standby under another name than the directory's sets the files it finds
 * aside in lockbox_spool/set_aside (they are its source's business; never
 * deleted, in case the standby was only renamed), and writes its own name.
 * A primary never moves anything: it only writes its name.
 */
#define SPOOL_NODE_FILE		SPOOL_DIR "/node"
#define SPOOL_ASIDE_DIR		SPOOL_DIR "/set_aside"

static void
spool_claim(void)
{
	const char *mine = local_node_key();
	char		theirs[NAMEDATALEN + 1] = "";
	FILE	   *f;
	DIR		   *root;
	struct dirent *de;
	struct stat st;
	int			removed = 0;

	/* (created here, so that it has its name before any file is in it) */
	if (stat(SPOOL_DIR, &st) != 0 && MakePGDirectory(SPOOL_DIR) < 0)
		return;					/* the sessions will say why */
	f = AllocateFile(SPOOL_NODE_FILE, "r");
	if (f != NULL)
	{
		if (fgets(theirs, sizeof(theirs), f) == NULL)
			theirs[0] = '\0';
		FreeFile(f);
		theirs[strcspn(theirs, "\n")] = '\0';
	}
	if (strcmp(theirs, mine) == 0)
		return;

	if (theirs[0] != '\0' && stat(STANDBY_SIGNAL_FILE, &st) == 0)
	{
		if (MakePGDirectory(SPOOL_ASIDE_DIR) < 0 && errno != EEXIST)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not create directory \"%s\": %m", SPOOL_ASIDE_DIR)));
		root = AllocateDir(SPOOL_DIR);
		while ((de = ReadDir(root, SPOOL_DIR)) != NULL)
		{
			char		dbdir[MAXPGPATH];
			char		aside[MAXPGPATH];
			DIR		   *d;
			struct dirent *fe;

			if (strspn(de->d_name, "0123456789") != strlen(de->d_name))
				continue;
			snprintf(dbdir, sizeof(dbdir), "%s/%s", SPOOL_DIR, de->d_name);
			d = AllocateDir(dbdir);
			while ((fe = ReadDir(d, dbdir)) != NULL)
			{
				char		path[MAXPGPATH];

				if (fe->d_name[0] == '.')
					continue;
				snprintf(path, sizeof(path), "%s/%s", dbdir, fe->d_name);
				snprintf(aside, sizeof(aside), "%s/%s.%s", SPOOL_ASIDE_DIR,
						 de->d_name, fe->d_name);
				if (rename(path, aside) == 0)
					removed++;
				else
					ereport(WARNING,
							(errcode_for_file_access(),
							 errmsg("could not move lockbox spool file \"%s\" to \"%s\": %m",
									path, aside)));
			}
			FreeDir(d);
		}
		FreeDir(root);
		ereport(LOG,
				(errmsg("set aside %d lockbox spool files of node \"%s\" in \"%s\": this standby is node \"%s\"",
						removed, theirs, SPOOL_ASIDE_DIR, mine),
				 errdetail("Files copied with the data directory from the server they were written on are that server's to audit; this standby does not forward them."),
				 errhint("If this standby was renamed rather than copied, they hold its own records not yet forwarded: start it under its former name until its backlog is empty.")));
	}

	f = AllocateFile(SPOOL_NODE_FILE ".tmp", "w");
	if (f == NULL || fprintf(f, "%s\n", mine) < 0 || FreeFile(f) != 0)
	{
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", SPOOL_NODE_FILE ".tmp")));
		return;
	}
	(void) durable_rename(SPOOL_NODE_FILE ".tmp", SPOOL_NODE_FILE, WARNING);
}

Size
lockbox_access_shmem_size(void)
{
	return add_size(add_size(mul_size(MaxBackends + NUM_AUXILIARY_PROCS, sizeof(AccessSlot)),
							 mul_size(LOCKBOX_MAX_DATABASES, sizeof(BacklogSlot))),
					sizeof(slock_t));
}

void
lockbox_access_shmem_init(void)
{
	bool		found;

	/* in the postmaster, before any session can spool */
	if (!IsUnderPostmaster)
		spool_claim();

	access_slot_count = MaxBackends + NUM_AUXILIARY_PROCS;
	access_slots = ShmemInitStruct("lockbox access slots",
								   lockbox_access_shmem_size(), &found);
	if (!found)
	{
		memset(access_slots, 0, lockbox_access_shmem_size());
		for (int i = 0; i < access_slot_count; i++)
		{
			SpinLockInit(&access_slots[i].mutex);
			pg_atomic_init_u32(&access_slots[i].announced, 0);
			pg_atomic_init_u64(&access_slots[i].written, 0);
		}
	}
	backlog_slots = ShmemInitStruct("lockbox standby backlog",
									mul_size(LOCKBOX_MAX_DATABASES, sizeof(BacklogSlot)) + sizeof(slock_t),
									&found);
	backlog_lock = (slock_t *) (backlog_slots + LOCKBOX_MAX_DATABASES);
	if (!found)
	{
		memset(backlog_slots, 0, mul_size(LOCKBOX_MAX_DATABASES, sizeof(BacklogSlot)));
		SpinLockInit(backlog_lock);
		for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
		{
			SpinLockInit(&backlog_slots[i].mutex);
			pg_atomic_init_u64(&backlog_slots[i].bytes, 0);
		}
	}
}

/* This database's backlog slot (made on first use); NULL when all are taken. */
static BacklogSlot *
my_backlog(void)
{
	static BacklogSlot *mine = NULL;
	BacklogSlot *found = NULL;

	if (mine != NULL && mine->dbid == MyDatabaseId)
		return mine;
	if (backlog_slots == NULL || !OidIsValid(MyDatabaseId))
		return NULL;
	SpinLockAcquire(backlog_lock);
	for (int i = 0; i < LOCKBOX_MAX_DATABASES && found == NULL; i++)
		if (backlog_slots[i].dbid == MyDatabaseId)
			found = &backlog_slots[i];
	for (int i = 0; i < LOCKBOX_MAX_DATABASES && found == NULL; i++)
		if (!OidIsValid(backlog_slots[i].dbid))
		{
			found = &backlog_slots[i];
			found->dbid = MyDatabaseId;
			pg_atomic_write_u64(&found->bytes, 0);
		}
	SpinLockRelease(backlog_lock);
	mine = found;
	return found;
}

/* The server's whole backlog, in bytes: the bound is on the disk's share. */
static uint64
backlog_total(void)
{
	uint64		total = 0;

	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
		if (OidIsValid(backlog_slots[i].dbid))
			total += pg_atomic_read_u64(&backlog_slots[i].bytes);
	return total;
}

/*
 * The database's worker on a standby: what it measured (bytes and files not
 * yet forwarded), and how the last forward went (error NULL: it succeeded).
 */
void
lockbox_backlog_report(int64 bytes, int files, bool forwarded, const char *error)
{
	BacklogSlot *b = my_backlog();
	TimestampTz now = GetCurrentTimestamp();

	if (b == NULL)
		return;
	if (bytes >= 0)
		pg_atomic_write_u64(&b->bytes, (uint64) bytes);
	/* (nothing that can fail or take long while the spinlock is held) */
	SpinLockAcquire(&b->mutex);
	if (files >= 0)
		b->files = files;
	if (forwarded)
		b->last_forward = now;
	if (error != NULL)
	{
		strlcpy(b->last_error, error, sizeof(b->last_error));
		b->last_error_at = now;
	}
	SpinLockRelease(&b->mutex);
}

/*
 * lockbox.standby_backlog_status(): this database's backlog on a standby
 * (zeros elsewhere, with the last error a promoted standby's worker had).
 */
Datum
lockbox_standby_backlog(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};
	BacklogSlot *b = my_backlog();
	const char *name = lockbox_node_name();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = CStringGetTextDatum(name != NULL ? name : "primary");
	values[1] = Int64GetDatum(0);
	values[2] = Int32GetDatum(0);
	nulls[3] = nulls[4] = nulls[5] = true;
	if (b != NULL)
	{
		int			files;
		TimestampTz last_forward;
		TimestampTz last_error_at;
		char		last_error[sizeof(b->last_error)];

		/* copied under the spinlock, made into datums after */
		SpinLockAcquire(&b->mutex);
		files = b->files;
		last_forward = b->last_forward;
		last_error_at = b->last_error_at;
		memcpy(last_error, b->last_error, sizeof(last_error));
		SpinLockRelease(&b->mutex);
		last_error[sizeof(last_error) - 1] = '\0';

		values[1] = Int64GetDatum((int64) pg_atomic_read_u64(&b->bytes));
		values[2] = Int32GetDatum(files);
		if (last_forward != 0)
		{
			values[3] = TimestampTzGetDatum(last_forward);
			nulls[3] = false;
		}
		if (last_error_at != 0)
		{
			values[4] = CStringGetTextDatum(last_error);
			values[5] = TimestampTzGetDatum(last_error_at);
			nulls[4] = nulls[5] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

static AccessSlot *
my_slot(void)
{
	if (access_slots == NULL || MyProc == NULL ||
		MyProc->pgprocno < 0 || MyProc->pgprocno >= access_slot_count)
		return NULL;
	return &access_slots[MyProc->pgprocno];
}

/* ---------------------------------------------------------------------
 * Writing the spool
 * ---------------------------------------------------------------------
 */
static void
spool_dir(Oid dbid, char *path)
{
	snprintf(path, MAXPGPATH, "%s/%u", SPOOL_DIR, dbid);
}

static void
close_spool(void)
{
	if (spool_map != NULL)
		munmap(spool_map, SPOOL_MAP);
	spool_map = NULL;
	if (spool_fd >= 0)
		close(spool_fd);
	spool_fd = -1;
	last.valid = false;			/* repeats name a record of their own file */
}

/* The session ends: its file is complete; the worker may finish it. */
static void
release_slot(int code, Datum arg)
{
	AccessSlot *slot = my_slot();

	close_spool();
	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->dbid = InvalidOid;
	slot->file[0] = '\0';
	pg_atomic_write_u32(&slot->announced, 0);
	SpinLockRelease(&slot->mutex);
	/* let the worker finish the file soon */
	lockbox_wake_worker();
}

/*
 * Open this session's spool file, registering it in the session's slot
 * first: the worker never takes a file it finds for one whose session ended.
 */
static bool
open_spool(void)
{
	static bool exit_registered = false;
	AccessSlot *slot = my_slot();
	char		dir[MAXPGPATH];
	char		path[MAXPGPATH];

	if (slot == NULL)
	{
		errno = EINVAL;
		return false;
	}
	if (!exit_registered)
	{
		on_shmem_exit(release_slot, (Datum) 0);
		exit_registered = true;
	}
	snprintf(spool_file, sizeof(spool_file), "%d." INT64_FORMAT ".%d",
			 MyProcPid, (int64) MyStartTimestamp, ++spool_number);
	SpinLockAcquire(&slot->mutex);
	slot->dbid = MyDatabaseId;
	strlcpy(slot->file, spool_file, sizeof(slot->file));
	pg_atomic_write_u64(&slot->written, 0);
	/*
	 * (the slot's last session, maybe of another database, may have left it
	 * announced: its worker clears only its own database's slots, and so
	 * the first record of this file would not wake this one's)
	 */
	pg_atomic_write_u32(&slot->announced, 0);
	SpinLockRelease(&slot->mutex);

	spool_dir(MyDatabaseId, dir);
	if (MakePGDirectory(SPOOL_DIR) < 0 && errno != EEXIST)
		return false;
	if (MakePGDirectory(dir) < 0 && errno != EEXIST)
		return false;
	snprintf(path, sizeof(path), "%s/%s", dir, spool_file);
	spool_fd = open(path, O_RDWR | O_CREAT | O_EXCL | PG_BINARY,
					pg_file_create_mode);
	if (spool_fd < 0)
		return false;
	spool_size = 0;
	spool_allocated = 0;
	spool_installation = record_installation;

	/*
	 * Records are copied into the file's pages in the kernel's page cache: no
	 * system call per statement, and a record survives the end of the
	 * process however it ends.  Disk space is reserved ahead (fallocate), so
	 * that a full disk refuses a statement instead of faulting on a page.
	 */
	spool_map = mmap(NULL, SPOOL_MAP, PROT_READ | PROT_WRITE, MAP_SHARED,
					 spool_fd, 0);
	if (spool_map == MAP_FAILED)
	{
		int			save_errno = errno;

		spool_map = NULL;
		close(spool_fd);
		spool_fd = -1;
		errno = save_errno;
		return false;
	}
	if (lockbox_access_log_sync)
	{
		/* the file's name must survive a crash as well as its contents */
		if (pg_fsync(spool_fd) != 0 || fsync_fname_ext(dir, true, false, ERROR) != 0)
			return false;
	}
	return true;
}

/*
 * Append one record.  On failure nothing of it stays and errno says why.
 */
static bool
spool_append(const char *data, size_t len, off_t *offset)
{
	AccessSlot *slot;

	if (spool_fd < 0 && !open_spool())
		return false;
	if (spool_size + (off_t) len > SPOOL_MAP)
	{
		errno = EFBIG;
		return false;
	}
	while (spool_size + (off_t) len > spool_allocated)
	{
		int			rc = posix_fallocate(spool_fd, spool_allocated, SPOOL_EXTENT);

		if (rc != 0)
		{
			errno = rc;
			return false;
		}
		spool_allocated += SPOOL_EXTENT;
		/* the file's new size must survive a crash too */
		if (lockbox_access_log_sync && pg_fsync(spool_fd) != 0)
			return false;
	}
	*offset = spool_size;
	memcpy(spool_map + spool_size, data, len);
	if (lockbox_access_log_sync)
	{
		off_t		start = spool_size - spool_size % sysconf(_SC_PAGESIZE);

		if (msync(spool_map + start, spool_size + len - start, MS_SYNC) != 0)
		{
			/* written but maybe not durable: better refuse than run unrecorded */
			spool_size += len;
			return false;
		}
	}
	spool_size += len;
	if (RecoveryInProgress())
	{
		BacklogSlot *b = my_backlog();

		if (b != NULL)
			pg_atomic_fetch_add_u64(&b->bytes, len);
	}

	/*
	 * How far the worker may read; then, first news since it looked: tell it.
	 * The worker clears "announced" and then reads "written"; this stores
	 * "written" and then reads "announced".  Each side needs a full barrier
	 * between its store and its load (a store may otherwise be seen after a
	 * later load): else both could read the old values, and the record would
	 * wait for the worker's next pass, a minute away when nothing else
	 * happens.
	 */
	slot = my_slot();
	pg_write_barrier();
	if (slot != NULL)
		pg_atomic_write_u64(&slot->written, (uint64) spool_size);
	pg_memory_barrier();
	if (slot != NULL && pg_atomic_read_u32(&slot->announced) == 0 &&
		pg_atomic_exchange_u32(&slot->announced, 1) == 0)
		lockbox_wake_worker();
	return true;
}

static void
put_str(StringInfo buf, const char *s)
{
	appendBinaryStringInfo(buf, s ? s : "", strlen(s ? s : "") + 1);
}

static void
put_int64(StringInfo buf, int64 v)
{
	appendBinaryStringInfo(buf, (char *) &v, sizeof(v));
}

static void
put_uint32(StringInfo buf, uint32 v)
{
	appendBinaryStringInfo(buf, (char *) &v, sizeof(v));
}

static void
finish_record(StringInfo buf)
{
	SpoolHeader *h = (SpoolHeader *) buf->data;

	h->len = buf->len;
	INIT_CRC32C(h->crc);
	COMP_CRC32C(h->crc, buf->data + SPOOL_CRC_START, buf->len - SPOOL_CRC_START);
	FIN_CRC32C(h->crc);
}

static void
start_record(StringInfo buf, uint8 kind, LockboxOutcome outcome, TimestampTz at)
{
	SpoolHeader h;

	memset(&h, 0, sizeof(h));
	h.magic = SPOOL_MAGIC;
	h.kind = kind;
	h.outcome = (uint8) outcome;
	h.pid = MyProcPid;
	h.installation = record_installation;
	h.at = at;
	if (RecoveryInProgress())
		h.flags |= SPOOL_FLAG_STANDBY;
	appendBinaryStringInfo(buf, (char *) &h, sizeof(h));
}

static bool
same_items(int n, const LockboxAccessItem *a, const LockboxAccessItem *b)
{
	for (int i = 0; i < n; i++)
	{
		if (a[i].relid != b[i].relid || a[i].nrequests != b[i].nrequests)
			return false;
		if (a[i].nrequests > 0 &&
			memcmp(a[i].requests, b[i].requests, sizeof(int64) * a[i].nrequests) != 0)
			return false;
	}
	return true;
}

static bool
same_str_or_null(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
		(a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
same_as_last(LockboxOutcome outcome, const char *command, const char *reason,
			 const LockboxQuery *query, int nitems, const LockboxAccessItem *items)
{
	return last.valid && last.outcome == outcome &&
		last.user == GetUserId() && last.session_user == GetSessionUserId() &&
		last.nitems == nitems &&
		strcmp(last.command, command) == 0 &&
		strcmp(last.reason, reason ? reason : "") == 0 &&
		strcmp(last.query, query->text) == 0 &&
		same_str_or_null(last.parameters, query->parameters) &&
		same_str_or_null(last.within, query->within) &&
		same_items(nitems, last.items, items);
}

static void
remember_last(off_t offset, LockboxOutcome outcome, const char *command,
			  const char *reason, const LockboxQuery *query, int nitems,
			  const LockboxAccessItem *items)
{
	MemoryContext old;

	if (last_cxt == NULL)
		last_cxt = AllocSetContextCreate(TopMemoryContext, "lockbox last statement",
										 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(last_cxt);
	old = MemoryContextSwitchTo(last_cxt);
	last.offset = offset;
	last.outcome = outcome;
	last.user = GetUserId();
	last.session_user = GetSessionUserId();
	last.command = pstrdup(command);
	last.reason = pstrdup(reason ? reason : "");
	last.query = pstrdup(query->text);
	last.parameters = query->parameters ? pstrdup(query->parameters) : NULL;
	last.within = query->within ? pstrdup(query->within) : NULL;
	last.nitems = nitems;
	last.items = palloc(sizeof(LockboxAccessItem) * Max(1, nitems));
	for (int i = 0; i < nitems; i++)
	{
		last.items[i].relid = items[i].relid;
		last.items[i].nrequests = items[i].nrequests;
		last.items[i].requests = palloc(sizeof(int64) * Max(1, items[i].nrequests));
		if (items[i].nrequests > 0)
			memcpy(last.items[i].requests, items[i].requests,
				   sizeof(int64) * items[i].nrequests);
	}
	last.valid = true;
	MemoryContextSwitchTo(old);
}

/*
 * A text of the statement, at most lockbox.access_log_max_query bytes of it
 * (cut at a character's end): what is kept, then the sha256 of the whole in
 * hex when cut ("" when whole).  Returns its whole length.
 */
static int64
put_bounded(StringInfo buf, const char *text)
{
	size_t		qlen = strlen(text);

	if (qlen > (size_t) lockbox_access_log_max_query)
	{
		pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
		uint8		digest[PG_SHA256_DIGEST_LENGTH];
		char		hex[PG_SHA256_DIGEST_LENGTH * 2 + 1];
		int			keep;

		keep = pg_mbcliplen(text, (int) qlen, lockbox_access_log_max_query);
		if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
			pg_cryptohash_update(ctx, (const uint8 *) text, qlen) < 0 ||
			pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
			elog(ERROR, "could not compute sha256");
		pg_cryptohash_free(ctx);
		hex_encode((char *) digest, sizeof(digest), hex);
		hex[sizeof(hex) - 1] = '\0';
		appendBinaryStringInfo(buf, text, keep);
		appendStringInfoChar(buf, '\0');
		put_str(buf, hex);
	}
	else
	{
		put_str(buf, text);
		put_str(buf, "");
	}
	return (int64) qlen;
}

/*
 * A part of a record (SPOOL_FLAG_PARTS): its whole length (-1: none), then,
 * when there is one, as put_bounded.
 */
static void
put_part(StringInfo buf, const char *text)
{
	StringInfoData part;

	if (text == NULL)
	{
		put_int64(buf, -1);
		return;
	}
	initStringInfo(&part);
	put_int64(buf, put_bounded(&part, text));
	appendBinaryStringInfo(buf, part.data, part.len);
	pfree(part.data);
}

/*
 * Record an engineer's statement: allowed (items: each protected relation it
 * reaches, with every open request covering it for the command) or refused
 * (reason: why).  Returns false, with errno set, when the record could not
 * be written.
 */
static bool
write_access(LockboxOutcome outcome, const char *command, const char *reason,
			 const LockboxQuery *query, int nitems, const LockboxAccessItem *items)
{
	StringInfoData buf;
	TimestampTz now = GetCurrentTimestamp();
	off_t		offset;
	int64		qlen;
	bool		ok;
	LockboxQuery none = {"", NULL, NULL};

	if (query == NULL)
		query = &none;

	/*
	 * A long session moves on to a new file now and then, so that the worker
	 * can remove what it audited, and at once when lockbox was dropped and
	 * created again since its last record (a pooled connection outlives
	 * both): a file holds one installation's records.  The slot names the
	 * new file before the old one is left: the worker takes it as finished
	 * from then on.
	 */
	record_installation = lockbox_installation_epoch(NULL);
	if (spool_fd >= 0 &&
		(spool_size >= SPOOL_ROTATE || spool_installation != record_installation))
		close_spool();

	initStringInfo(&buf);

	/*
	 * On a standby every record stands alone: the primary audits what is
	 * forwarded chunk by chunk, without the file a repeat would point into.
	 */
	if (!RecoveryInProgress() &&
		same_as_last(outcome, command, reason, query, nitems, items))
	{
		start_record(&buf, SPOOL_REPEAT, outcome, now);
		((SpoolHeader *) buf.data)->base = (uint64) last.offset;
		finish_record(&buf);
		ok = spool_append(buf.data, buf.len, &offset);
		pfree(buf.data);
		return ok;
	}

	/* larger than every reader of the spool takes: refused, not run */
	{
		int64		rows = 0;

		for (int i = 0; i < nitems; i++)
			rows += Max(items[i].nrequests, 1);
		if (nitems > LOCKBOX_RECORD_MAX_ITEMS || rows > LOCKBOX_RECORD_MAX_ROWS)
		{
			pfree(buf.data);
			errno = EFBIG;
			return false;
		}
	}

	start_record(&buf, SPOOL_STATEMENT, outcome, now);
	((SpoolHeader *) buf.data)->flags |= SPOOL_FLAG_PARTS;
	put_str(&buf, lockbox_role_name(GetUserId()));
	put_str(&buf, lockbox_role_name(GetSessionUserId()));
	put_str(&buf, command);
	put_str(&buf, reason);
	qlen = put_bounded(&buf, query->text);
	put_int64(&buf, qlen);
	put_uint32(&buf, nitems);
	for (int i = 0; i < nitems; i++)
	{
		put_str(&buf, lockbox_relname(items[i].relid));
		put_uint32(&buf, items[i].nrequests);
		for (int j = 0; j < items[i].nrequests; j++)
			put_int64(&buf, items[i].requests[j]);
	}
	put_part(&buf, query->parameters);
	put_part(&buf, query->within);
	if (buf.len > LOCKBOX_RECORD_MAX)
	{
		pfree(buf.data);
		errno = EFBIG;
		return false;
	}
	finish_record(&buf);
	ok = spool_append(buf.data, buf.len, &offset);
	pfree(buf.data);
	if (ok)
		remember_last(offset, outcome, command, reason, query, nitems, items);
	return ok;
}

/*
 * Past the bound, or in a database that has no slot to count its backlog
 * (more databases with engineers' statements since the start than lockbox
 * serves): there no worker would forward its records either.
 */
static bool
backlog_full(void)
{
	return backlog_slots != NULL &&
		(my_backlog() == NULL ||
		 backlog_total() >= (uint64) lockbox_standby_backlog_max * 1024);
}

static void
check_backlog(void)
{
	if (backlog_full())
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the standby's backlog of lockbox access records for the primary is full"),
				 errdetail("Engineers' statements on protected tables run on a standby only once recorded, and " UINT64_FORMAT " bytes of records wait to be forwarded to the primary (lockbox.standby_backlog_max is %d kB); this one did not run.",
						   backlog_total(), lockbox_standby_backlog_max),
				 errhint("Check lockbox.standby_backlog for the last error reaching the primary, or run the statement on the primary.")));
}

/*
 * An allowed statement, before it runs.  When it cannot be recorded it does
 * not run.
 */
void
lockbox_access_allowed(const char *command, const LockboxQuery *query,
					   int nitems, const LockboxAccessItem *items)
{
	int			code;

	if (nitems == 0)
		return;

	/*
	 * On a standby the records wait in the spool until the database's worker
	 * has forwarded them to the primary.  While it cannot (the primary
	 * unreachable, the forwarding not set up), they pile up on the standby's
	 * disk: past lockbox.standby_backlog_max, refuse rather than let them
	 * grow without bound or run statements that could not be kept.
	 */
	if (RecoveryInProgress())
		check_backlog();
	if (write_access(LB_ALLOWED, command, NULL, query, nitems, items))
		return;
	if (errno == EFBIG)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the statement is too large to record in the lockbox access log"),
				 errdetail("Engineers' statements on protected tables run only once recorded, and a record holds at most %d relations, %d relation and request pairs and %d bytes; this one did not run.",
						   LOCKBOX_RECORD_MAX_ITEMS, LOCKBOX_RECORD_MAX_ROWS, LOCKBOX_RECORD_MAX),
				 errhint("Split the statement.")));
	code = (errno == ENOSPC) ? ERRCODE_DISK_FULL : ERRCODE_INSUFFICIENT_RESOURCES;
	ereport(ERROR,
				(errcode(code),
				 errmsg("could not record the statement in the lockbox access log: %m"),
				 errdetail("Engineers' statements on protected tables run only once recorded; this one did not run."),
				 errhint("Check the space and permissions of directory \"%s\" in the data directory.",
						 SPOOL_DIR)));
}

/*
 * A refused statement, before the refusal is raised.  Failing to record it
 * is reported; the statement is refused either way.
 */
void
lockbox_access_refused(const char *command, const LockboxQuery *query, Oid relid,
					   int nrequests, int64 *requests, const char *reason)
{
	LockboxAccessItem item;
	int			code;

	/* past the standby's bound, the refusal is reported but not kept */
	if (RecoveryInProgress() && backlog_full())
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the refused statement is not recorded: the standby's backlog of lockbox access records for the primary is full")));
		return;
	}
	item.relid = relid;
	item.nrequests = nrequests;
	item.requests = requests;

	if (write_access(LB_REFUSED, command, reason, query, 1, &item))
		return;
	code = (errno == ENOSPC) ? ERRCODE_DISK_FULL : ERRCODE_INSUFFICIENT_RESOURCES;
	ereport(WARNING,
				(errcode(code),
				 errmsg("could not record the refused statement in the lockbox access log: %m")));
}

/* ---------------------------------------------------------------------
 * Draining the spool (the database's worker)
 * ---------------------------------------------------------------------
 */
typedef struct Reader
{
	const char *p;
	const char *end;
	bool		ok;
} Reader;

static const char *
get_str(Reader *r)
{
	const char *s = r->p;
	const char *nul;

	if (!r->ok || r->p >= r->end ||
		(nul = memchr(r->p, '\0', r->end - r->p)) == NULL)
	{
		r->ok = false;
		return "";
	}
	r->p = nul + 1;
	return s;
}

/* Copy len bytes out of the record into dst (zeros when they are not there). */
static void
get_bytes(Reader *r, void *dst, size_t len)
{
	if (!r->ok || r->end - r->p < (ptrdiff_t) len)
	{
		r->ok = false;
		memset(dst, 0, len);
		return;
	}
	memcpy(dst, r->p, len);
	r->p += len;
}

static int64
get_int64(Reader *r)
{
	int64		v;

	get_bytes(r, &v, sizeof(v));
	return v;
}

static uint32
get_uint32(Reader *r)
{
	uint32		v;

	get_bytes(r, &v, sizeof(v));
	return v;
}

/* A part of a statement record (see put_part): false when there is none. */
typedef struct RecordPart
{
	const char *text;			/* NULL: none */
	const char *sha256;			/* NULL: text is whole */
	int64		length;
} RecordPart;

static void
get_part(Reader *r, RecordPart *part)
{
	part->length = get_int64(r);
	part->text = NULL;
	part->sha256 = NULL;
	if (!r->ok || part->length < 0)
		return;
	part->text = get_str(r);
	part->sha256 = get_str(r);
	if (*part->sha256 == '\0')
		part->sha256 = NULL;
}

/* Past a statement record's relations and their requests. */
static void
skip_items(Reader *r, uint32 nitems)
{
	for (uint32 i = 0; i < nitems && r->ok; i++)
	{
		uint32		nreq;

		(void) get_str(r);
		nreq = get_uint32(r);
		if (!r->ok || nreq > (uint32) (r->end - r->p) / sizeof(int64))
		{
			r->ok = false;
			return;
		}
		r->p += (size_t) nreq * sizeof(int64);
	}
}

/*
 * The parts of a statement record whose relations start at r: its bound
 * values and the client's statement it ran within (none in a record written
 * before 1.6).  r stays where it is.
 */
static bool
get_parts(const Reader *r, uint16 flags, uint32 nitems, RecordPart *parameters,
		  RecordPart *within)
{
	Reader		p = *r;

	memset(parameters, 0, sizeof(*parameters));
	memset(within, 0, sizeof(*within));
	parameters->length = within->length = -1;
	if ((flags & SPOOL_FLAG_PARTS) == 0)
		return true;
	skip_items(&p, nitems);
	get_part(&p, parameters);
	get_part(&p, within);
	return p.ok;
}

/* Is there a whole, intact record at buf (len bytes available)? */
static bool
record_ok(const char *buf, size_t avail, uint32 *len)
{
	SpoolHeader h;
	pg_crc32c	crc;

	if (avail < sizeof(SpoolHeader))
		return false;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != SPOOL_MAGIC || h.len < sizeof(SpoolHeader) || h.len > avail)
		return false;
	if (h.kind != SPOOL_STATEMENT && h.kind != SPOOL_REPEAT)
		return false;
	INIT_CRC32C(crc);
	COMP_CRC32C(crc, buf + SPOOL_CRC_START, h.len - SPOOL_CRC_START);
	FIN_CRC32C(crc);
	if (!EQ_CRC32C(crc, h.crc))
		return false;
	*len = h.len;
	return true;
}

/* ---------------------------------------------------------------------
 * Installations
 *
 * DROP EXTENSION lockbox drops the audit and the requests, not the spool:
 * records its worker had not audited yet stay in lockbox_spool/<database>/,
 * and a session connected meanwhile may still have its file open.  A later
 * CREATE EXTENSION starts request ids afresh, so such a record would be
 * audited into the new log naming requests of the new installation that
 * have nothing to do with it.  Each installation has a spool epoch (the
 * id of the transaction that created it, lockbox.installation.spool_epoch,
 * kept by pg_upgrade and replicated); every record carries the epoch of the
 * installation whose requests it names, and a session starts a new file
 * when that changes.  A
 * worker audits (a standby forwards, a primary takes in) only the records
 * of its own installation, and records spooled before 1.7 (epoch 0) only
 * in an installation updated from an earlier version (spool_legacy): a
 * fresh one takes none.  Files of another installation are set aside once
 * their session let them go, as text a DBA can read, never audited
 * (set_aside_file).
 * ---------------------------------------------------------------------
 */
typedef struct SpoolOwner
{
	uint32		epoch;			/* this installation's */
	bool		legacy;			/* takes records without one (before 1.7) */
} SpoolOwner;

/* Is the record of another installation than owner (NULL: of any)? */
static bool
foreign_record(const SpoolHeader *h, const SpoolOwner *owner)
{
	if (owner == NULL)
		return false;
	if (h->installation == 0)
		return !owner->legacy;
	return h->installation != owner->epoch;
}

/* This database's installation, as lockbox.installation says (SPI connected). */
static void
read_owner(SpoolOwner *owner)
{
	static SPIPlanPtr plan = NULL;

	owner->epoch = 0;
	owner->legacy = true;
	lockbox_exec(&plan,
				 "SELECT i.spool_epoch, i.spool_legacy FROM lockbox.installation i",
				 0, NULL, NULL, NULL, 1);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			owner->epoch = (uint32) DatumGetInt32(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
			owner->legacy = DatumGetBool(d);
	}
}

/* a statement record and how often it ran in a row */
typedef struct RunGroup
{
	bool		active;
	uint64		base;
	char	   *record;			/* the statement record (copy) */
	TimestampTz first;
	TimestampTz lastat;
	int64		count;
} RunGroup;

typedef struct TenantCache
{
	int64		request_id;
	char	   *tenant;
} TenantCache;

static char *
request_tenant(int64 request_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(request_id)};

	lockbox_exec(&plan,
				 "SELECT tenant FROM lockbox.request WHERE id OPERATOR(pg_catalog.=) $1",
				 1, argtypes, values, NULL, 1);
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/*
 * A row a record of a former installation would have made, as a line of the
 * file it is set aside in (see "Installations" below): the keys of the
 * server log's LOCKBOX line, without seq, hash and tenant (no audit has the
 * row), and with the installation (its spool epoch) whose request the row
 * names.
 */
static void
aside_line(FILE *aside, const SpoolHeader *h, const char *engineer,
		   const char *session_user_name, int64 request_id,
		   const LockboxAccess *a, TimestampTz at)
{
	StringInfoData line;
	StringInfoData detail;

	initStringInfo(&line);
	appendStringInfoChar(&line, '{');
	lockbox_json_str(&line, "at", lockbox_iso_time(at));
	lockbox_json_str(&line, "event", h->outcome == LB_REFUSED ? "refused" : "access");
	lockbox_json_str(&line, "actor", engineer);
	lockbox_json_str(&line, "session_user", session_user_name);
	if (request_id > 0)
		lockbox_json_raw(&line, "request_id", psprintf(INT64_FORMAT, request_id));
	/* (as lockbox.installation.spool_epoch shows it: an integer) */
	lockbox_json_raw(&line, "installation", psprintf("%d", (int32) h->installation));
	appendStringInfoString(&line, ", \"detail\": {");
	initStringInfo(&detail);
	lockbox_json_str(&detail, "relation", a->relation);
	lockbox_json_str(&detail, "command", a->command);
	lockbox_json_str(&detail, "query", a->query);
	if (a->query_sha256)
	{
		lockbox_json_raw(&detail, "query_length", psprintf(INT64_FORMAT, a->query_length));
		lockbox_json_str(&detail, "query_sha256", a->query_sha256);
	}
	if (a->parameters)
		lockbox_json_str(&detail, "parameters", a->parameters);
	if (a->parameters_sha256)
		lockbox_json_str(&detail, "parameters_sha256", a->parameters_sha256);
	if (a->within)
		lockbox_json_str(&detail, "within_query", a->within);
	if (a->within_sha256)
		lockbox_json_str(&detail, "within_sha256", a->within_sha256);
	if (a->reason)
		lockbox_json_str(&detail, "reason", a->reason);
	lockbox_json_raw(&detail, "pid", psprintf("%d", a->pid));
	if (a->node)
		lockbox_json_str(&detail, "node", a->node);
	lockbox_json_raw(&detail, "statements", psprintf(INT64_FORMAT, a->statements));
	if (a->statements > 1)
		lockbox_json_raw(&detail, "last_at_usec", psprintf(INT64_FORMAT, a->last_at_usec));
	appendStringInfoString(&line, detail.data);
	appendStringInfoString(&line, "}}\n");
	if (fwrite(line.data, 1, line.len, aside) != (size_t) line.len)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write a set-aside lockbox spool file: %m")));
	pfree(detail.data);
	pfree(line.data);
}

/*
 * Write a group's audit rows: one per relation and covering request.  node:
 * the standby the statement ran on, recorded for records captured during
 * recovery (all of them when forwarded: forced).  aside: write them there,
 * as lines, instead of into the audit.
 */
static int
flush_group(LockboxCall *call, RunGroup *g, const char *file,
			const char *node, bool forced, FILE *aside)
{
	SpoolHeader h;
	Reader		r;
	const char *engineer;
	const char *session_user_name;
	const char *command;
	const char *reason;
	const char *query;
	const char *sha;
	int64		qlen;
	uint32		nitems;
	int			rows = 0;
	RecordPart	parameters;
	RecordPart	within;

	if (!g->active)
		return 0;
	g->active = false;
	memcpy(&h, g->record, sizeof(h));
	r.p = g->record + sizeof(h);
	r.end = g->record + h.len;
	r.ok = true;
	engineer = get_str(&r);
	session_user_name = get_str(&r);
	command = get_str(&r);
	reason = get_str(&r);
	query = get_str(&r);
	sha = get_str(&r);
	qlen = get_int64(&r);
	nitems = get_uint32(&r);
	if (!r.ok || !get_parts(&r, h.flags, nitems, &parameters, &within))
	{
		ereport(WARNING,
				(errmsg("skipping a malformed record in lockbox spool file \"%s\"",
						file)));
		return 0;
	}
	for (uint32 i = 0; i < nitems && r.ok; i++)
	{
		const char *relname = get_str(&r);
		uint32		nreq = get_uint32(&r);

		for (uint32 j = 0; j < Max(nreq, 1) && r.ok; j++)
		{
			int64		request_id = nreq > 0 ? get_int64(&r) : 0;
			LockboxAccess access;
			LockboxCall as_engineer;

			if (!r.ok)
				break;
			access.relation = relname;
			access.command = command;
			access.query = query;
			access.query_length = qlen;
			access.query_sha256 = *sha ? sha : NULL;
			access.parameters = parameters.text;
			access.parameters_length = parameters.length;
			access.parameters_sha256 = parameters.sha256;
			access.within = within.text;
			access.within_length = within.length;
			access.within_sha256 = within.sha256;
			access.reason = h.outcome == LB_REFUSED ? reason : NULL;
			access.pid = h.pid;
			access.node = (node != NULL &&
						   (forced || (h.flags & SPOOL_FLAG_STANDBY) != 0)) ? node : NULL;
			access.statements = g->count;
			access.last_at_usec = g->lastat - g->first;

			if (aside != NULL)
			{
				aside_line(aside, &h, engineer, session_user_name, request_id,
						   &access, g->first);
				rows++;
				continue;
			}
			as_engineer = *call;
			as_engineer.actor_name = engineer;
			as_engineer.session_name = session_user_name;
			as_engineer.now = g->first;
			lockbox_audit_access(&as_engineer,
								 h.outcome == LB_REFUSED ? "refused" : "access",
								 request_id,
								 request_id > 0 ? request_tenant(request_id) : NULL,
								 &access);
			rows++;
		}
	}
	if (!r.ok)
		ereport(WARNING,
				(errmsg("a malformed record in lockbox spool file \"%s\" was audited in part",
						file)));
	pfree(g->record);
	return rows;
}

/* Read len bytes at offset of an open file; false if they are not there. */
static bool
read_at(int fd, off_t offset, char *buf, size_t len)
{
	size_t		done = 0;

	while (done < len)
	{
		ssize_t		n = pg_pread(fd, buf + done, len - done, offset + done);

		if (n <= 0)
			return false;
		done += n;
	}
	return true;
}

/*
 * Is a session still writing file (of this database)?  If so, *written says
 * how far its records go.
 */
static bool
file_is_live(const char *file, off_t *written)
{
	for (int i = 0; i < access_slot_count; i++)
	{
		AccessSlot *slot = &access_slots[i];
		bool		live;

		if (slot->dbid != MyDatabaseId)
			continue;
		SpinLockAcquire(&slot->mutex);
		live = slot->dbid == MyDatabaseId && strcmp(slot->file, file) == 0;
		if (live)
			*written = (off_t) pg_atomic_read_u64(&slot->written);
		SpinLockRelease(&slot->mutex);
		if (live)
		{
			pg_read_barrier();
			return true;
		}
	}
	return false;
}

/*
 * Audit the records in buf (avail bytes of a spool file from offset done;
 * fd: the file, to find the statements of repeats in it, or -1).  more: the
 * file goes on beyond buf (a session still writes it, or the rest comes in
 * a later chunk), so a record cut short is left for later rather than
 * discarded.  owner: stop before the first record of another installation
 * (*foreign then says so); NULL: take every record.  aside: write the rows
 * there instead of into the audit.  Returns how many bytes of buf were
 * audited; *records counts them, *finished says the file has nothing more.
 */
static size_t
ingest_records(LockboxCall *call, const char *buf, size_t avail, off_t done,
			   int fd, const char *path, const char *file, bool live,
			   bool more, const char *node, bool forced, const SpoolOwner *owner,
			   FILE *aside, int64 *records, bool *finished, bool *foreign)
{
	size_t		pos = 0;
	RunGroup	g = {0};

	*finished = false;
	*foreign = false;
	while (pos < avail)
	{
		uint32		len;
		SpoolHeader h;
		uint32		magic = 0;

		/* the reserved, never written rest of the file: the end */
		if (avail - pos >= sizeof(magic))
			memcpy(&magic, buf + pos, sizeof(magic));
		if (magic == 0)
		{
			*finished = !live;
			break;
		}
		if (!record_ok(buf + pos, avail - pos, &len))
		{
			/* a record still being written, or the end of a chunk */
			if (live || more)
				break;
			ereport(WARNING,
					(errmsg("discarding a damaged record at the end of lockbox spool file \"%s\"",
							path)));
			*finished = true;
			break;
		}
		memcpy(&h, buf + pos, sizeof(h));
		if (foreign_record(&h, owner))
		{
			*foreign = true;
			break;
		}
		if (h.kind == SPOOL_STATEMENT)
		{
			flush_group(call, &g, file, node, forced, aside);
			g.active = true;
			g.base = (uint64) (done + pos);
			g.record = palloc(len);
			memcpy(g.record, buf + pos, len);
			g.first = g.lastat = h.at;
			g.count = 1;
		}
		else if (g.active && g.base == h.base)
		{
			g.count++;
			g.lastat = h.at;
		}
		else
		{
			/* a repeat of a statement read in an earlier pass */
			SpoolHeader bh;
			uint32		blen;
			char	   *brec;

			flush_group(call, &g, file, node, forced, aside);
			if (fd < 0 || h.base >= (uint64) (done + pos) ||
				!read_at(fd, (off_t) h.base, (char *) &bh, sizeof(bh)) ||
				bh.len < sizeof(bh) || bh.len > LOCKBOX_RECORD_MAX ||
				(brec = palloc(bh.len), !read_at(fd, (off_t) h.base, brec, bh.len)) ||
				!record_ok(brec, bh.len, &blen) ||
				((SpoolHeader *) brec)->kind != SPOOL_STATEMENT)
			{
				ereport(WARNING,
						(errmsg("skipping a repeat record without its statement in lockbox spool file \"%s\"",
								path)));
			}
			else
			{
				g.active = true;
				g.base = h.base;
				g.record = brec;
				g.first = g.lastat = h.at;
				g.count = 1;
			}
		}
		pos += len;
		(*records)++;
	}
	flush_group(call, &g, file, node, forced, aside);
	return pos;
}

/*
 * The length of the record whose header is at offset at of an open file
 * when it is whole in the file's first size bytes and no larger than a
 * session writes (not checked any further), else 0.
 */
static uint32
record_len_at(int fd, off_t at, off_t size)
{
	SpoolHeader h;

	if (size - at < (off_t) sizeof(h) || !read_at(fd, at, (char *) &h, sizeof(h)))
		return 0;
	if (h.magic != SPOOL_MAGIC || h.len < sizeof(h) || h.len > LOCKBOX_RECORD_MAX ||
		at + (off_t) h.len > size)
		return 0;
	return h.len;
}

/*
 * Audit what one spool file holds from offset done on, up to limit bytes
 * (size: where its records may go, beyond limit).  A first record larger
 * than limit allows is read whole all the same: a record longer than the
 * budget of a pass must not stop the file.  Records of another installation
 * than owner are not audited: *foreign says the file goes on with one at the
 * offset returned.  Returns the new offset; *records counts what was read.
 */
static off_t
ingest_file(LockboxCall *call, const char *dir, const char *file, off_t done,
			off_t limit, off_t size, bool live, const SpoolOwner *owner,
			int64 *records, bool *finished, bool *foreign)
{
	char		path[MAXPGPATH];
	int			fd;
	size_t		avail;
	char	   *buf;
	size_t		pos;
	uint32		first;
	SpoolHeader h;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open lockbox spool file \"%s\": %m", path)));
	avail = (size_t) (limit - done);
	first = record_len_at(fd, done, size);
	if (first > avail)
		avail = first;
	/*
	 * A file of another installation (its session still connected, maybe):
	 * its first record tells, not the chunk a pass would read.
	 */
	if (first > 0 && read_at(fd, done, (char *) &h, sizeof(h)) &&
		foreign_record(&h, owner))
		avail = first;
	buf = palloc(avail + 1);
	if (!read_at(fd, done, buf, avail))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read lockbox spool file \"%s\": %m", path)));
	/* records captured here during recovery ran on this server as a standby */
	pos = ingest_records(call, buf, avail, done, fd, path, file, live,
						 (off_t) avail < size - done, lockbox_node_name(),
						 false, owner, NULL, records, finished, foreign);
	CloseTransientFile(fd);
	pfree(buf);
	return done + (off_t) pos;
}

/*
 * Set aside what a complete spool file of this database (in dir) holds from
 * offset from on, records of another installation of lockbox: never
 * audited, kept for the DBA as lines of text, one JSON object per audit
 * row they would have made, in lockbox_spool/set_aside/<database>.<file>.jsonl
 * (written whole under a temporary name first: a crash before the spool
 * file is removed writes it again, the same).  The caller removes the spool
 * file.  Returns the number of records set aside.
 */
static int64
set_aside_file(const char *dir, const char *file, off_t from, char *aside_path)
{
	char		path[MAXPGPATH];
	char		tmp[MAXPGPATH];
	int			fd;
	struct stat st;
	size_t		avail;
	char	   *buf;
	FILE	   *out;
	int64		records = 0;
	bool		finished;
	bool		foreign;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(aside_path, MAXPGPATH, "%s/%u.%s.jsonl", SPOOL_ASIDE_DIR,
			 MyDatabaseId, file);
	snprintf(tmp, sizeof(tmp), "%s.tmp", aside_path);
	if (MakePGDirectory(SPOOL_ASIDE_DIR) < 0 && errno != EEXIST)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create directory \"%s\": %m", SPOOL_ASIDE_DIR)));
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0 || fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open lockbox spool file \"%s\": %m", path)));
	avail = (size_t) Max(st.st_size - from, 0);
	buf = palloc(avail + 1);
	if (avail > 0 && !read_at(fd, from, buf, avail))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read lockbox spool file \"%s\": %m", path)));
	out = AllocateFile(tmp, PG_BINARY_W);
	if (out == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", tmp)));
	(void) ingest_records(NULL, buf, avail, from, fd, path, file, false, false,
						  lockbox_node_name(), false, NULL, out, &records,
						  &finished, &foreign);
	if (FreeFile(out) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write file \"%s\": %m", tmp)));
	CloseTransientFile(fd);
	pfree(buf);
	(void) durable_rename(tmp, aside_path, ERROR);
	return records;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Drain this database's spool into the audit, in the caller's transaction
 * (between lockbox_enter and lockbox_leave).  Files whose sessions ended and
 * that are fully audited are added to *finished, to be removed once the
 * transaction committed.  Returns the number of records audited.
 */
int64
lockbox_access_drain(LockboxCall *call, List **finished)
{
	static SPIPlanPtr progress_plan = NULL;
	static SPIPlanPtr save_plan = NULL;
	static SPIPlanPtr forget_plan = NULL;
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;
	char	  **files = NULL;
	int			nfiles = 0;
	int			cap = 16;
	int64		records = 0;
	size_t		budget = INGEST_CHUNK;
	SpoolOwner	owner;
	int			aside_files = 0;
	int64		aside_records = 0;
	char		aside_path[MAXPGPATH] = "";

	spool_dir(MyDatabaseId, dir);

	/* news from now on wakes the worker again */
	for (int i = 0; i < access_slot_count; i++)
		if (access_slots[i].dbid == MyDatabaseId)
			pg_atomic_write_u32(&access_slots[i].announced, 0);
	pg_memory_barrier();

	d = AllocateDir(dir);
	if (d == NULL && errno == ENOENT)
		return 0;
	files = palloc(sizeof(char *) * cap);
	while ((de = ReadDir(d, dir)) != NULL)
	{
		if (de->d_name[0] == '.')
			continue;
		if (nfiles == cap)
		{
			cap *= 2;
			files = repalloc(files, sizeof(char *) * cap);
		}
		files[nfiles++] = pstrdup(de->d_name);
	}
	FreeDir(d);
	qsort(files, nfiles, sizeof(char *), cmp_names);
	read_owner(&owner);

	for (int i = 0; i < nfiles && budget > 0; i++)
	{
		char		path[MAXPGPATH];
		struct stat st;
		Oid			argtypes[3] = {TEXTOID, INT8OID, TEXTOID};
		Oid			rekey_types[3] = {TEXTOID, TEXTOID, TEXTOID};
		Datum		values[3];
		off_t		done = 0;
		off_t		upto;
		off_t		written = 0;
		bool		live = file_is_live(files[i], &written);
		bool		file_done = false;
		bool		foreign = false;

		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (stat(path, &st) != 0)
			continue;
		/*
		 * Progress is kept under this server's node name: a promoted standby
		 * finds here how far it had forwarded each file to the old primary
		 * (replicated to it), and audits only the rest.  A server whose name
		 * changed (cluster_name set on a primary that had none, a restart
		 * away) finds its files' progress under the name it had, and keeps
		 * it under the new one: read from the start again, the records
		 * audited before the restart were audited twice (1.6).  (A file's
		 * name, its session's pid and start to the microsecond, is this
		 * server's own.)
		 */
		values[0] = CStringGetTextDatum(files[i]);
		values[1] = Int64GetDatum(0);
		values[2] = CStringGetTextDatum(local_node_key());
		lockbox_exec(&progress_plan,
					 "SELECT done, node FROM lockbox.access_spool"
					 " WHERE file OPERATOR(pg_catalog.=) $1"
					 " ORDER BY node OPERATOR(pg_catalog.=) $3 DESC, done DESC LIMIT 1",
					 3, argtypes, values, NULL, 1);
		if (SPI_processed > 0)
		{
			bool		isnull;
			char	   *node = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

			done = (off_t) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
													   SPI_tuptable->tupdesc, 1, &isnull));
			if (node != NULL && strcmp(node, local_node_key()) != 0)
			{
				static SPIPlanPtr rekey_plan = NULL;

				values[1] = CStringGetTextDatum(node);
				lockbox_exec(&rekey_plan,
							 "UPDATE lockbox.access_spool SET node = $3"
							 " WHERE node OPERATOR(pg_catalog.=) $2 AND file OPERATOR(pg_catalog.=) $1",
							 3, rekey_types, values, NULL, 0);
			}
		}
		upto = done;
		/* a live file holds records up to what its session wrote */
		if (live)
			st.st_size = Min(st.st_size, written);
		if (done < st.st_size)
		{
			off_t		limit = Min(st.st_size, done + (off_t) budget);

			upto = ingest_file(call, dir, files[i], done, limit, st.st_size,
							   live, &owner, &records, &file_done, &foreign);
			budget -= Min(budget, (size_t) (upto - done));
			if (upto > done)
			{
				values[1] = Int64GetDatum((int64) upto);
				lockbox_exec(&save_plan,
							 "INSERT INTO lockbox.access_spool (node, file, done) VALUES ($3, $1, $2)"
							 " ON CONFLICT (node, file) DO UPDATE SET done = EXCLUDED.done",
							 3, argtypes, values, NULL, 0);
			}
		}
		/*
		 * Another installation's records (see "Installations"): set aside
		 * once their session let the file go; while it writes the file, it
		 * moves on to a new one at its next record.
		 */
		if (foreign && !live)
		{
			aside_records += set_aside_file(dir, files[i], upto, aside_path);
			aside_files++;
			file_done = true;
			upto = st.st_size;
		}
		if (!live && (file_done || upto >= st.st_size))
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			*finished = lappend(*finished, pstrdup(path));
			MemoryContextSwitchTo(old);
		}
	}
	if (aside_files > 0)
		ereport(WARNING,
				(errmsg_plural("lockbox set aside " INT64_FORMAT " access record of a former installation of lockbox in database \"%s\", unaudited",
							   "lockbox set aside " INT64_FORMAT " access records of a former installation of lockbox in database \"%s\", unaudited",
							   aside_records,
							   aside_records, get_database_name(MyDatabaseId)),
				 errdetail("Records spooled before DROP EXTENSION lockbox and not audited then name that installation's requests, not this one's. Spool files set aside: %d, each kept as lines of JSON, one per audit row its records would have made, in \"%s/%u.*.jsonl\" (the last: \"%s\").",
						   aside_files, SPOOL_ASIDE_DIR, MyDatabaseId, aside_path),
				 errhint("Keep those files with what you exported of the former installation (README, Uninstalling).")));

	/* progress of files removed after an earlier pass (this server's only) */
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		values[1] = {CStringGetTextDatum(local_node_key())};

		lockbox_exec(&forget_plan,
					 "SELECT file FROM lockbox.access_spool WHERE node OPERATOR(pg_catalog.=) $1",
					 1, argtypes, values, NULL, 0);
	}
	{
		List	   *gone = NIL;
		ListCell   *lc;
		uint64		n = SPI_processed;
		SPITupleTable *tt = SPI_tuptable;

		for (uint64 i = 0; i < n; i++)
		{
			char	   *f = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);
			char		path[MAXPGPATH];
			struct stat st;

			snprintf(path, sizeof(path), "%s/%s", dir, f);
			if (stat(path, &st) != 0 && errno == ENOENT)
				gone = lappend(gone, f);
		}
		foreach(lc, gone)
		{
			static SPIPlanPtr delete_plan = NULL;
			Oid			argtypes[2] = {TEXTOID, TEXTOID};
			Datum		values[2] = {CStringGetTextDatum((char *) lfirst(lc)),
			CStringGetTextDatum(local_node_key())};

			lockbox_exec(&delete_plan,
						 "DELETE FROM lockbox.access_spool WHERE node OPERATOR(pg_catalog.=) $2"
						 " AND file OPERATOR(pg_catalog.=) $1",
						 2, argtypes, values, NULL, 0);
		}
	}
	return records;
}

/* After the draining transaction committed: remove the finished files. */
void
lockbox_access_remove_finished(List *finished)
{
	ListCell   *lc;

	foreach(lc, finished)
	{
		const char *path = (const char *) lfirst(lc);

		if (unlink(path) != 0 && errno != ENOENT)
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not remove lockbox spool file \"%s\": %m", path)));
	}
}

/*
 * Spool files of this database the worker has yet to finish; only those
 * whose session ended, with ended_only.
 */
int
lockbox_access_pending_files(bool ended_only)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;
	int			n = 0;
	off_t		written;

	spool_dir(MyDatabaseId, dir);
	d = AllocateDir(dir);
	if (d == NULL)
		return 0;
	while ((de = ReadDir(d, dir)) != NULL)
		if (de->d_name[0] != '.' &&
			!(ended_only && file_is_live(de->d_name, &written)))
			n++;
	FreeDir(d);
	return n;
}

/*
 * After DROP DATABASE (which cannot run in a transaction block: done is
 * committed): its spool goes with it.
 */
void
lockbox_access_utility_done(Node *node)
{
	DropdbStmt *stmt;
	char		dir[MAXPGPATH];

	if (!IsA(node, DropdbStmt))
		return;
	stmt = (DropdbStmt *) node;
	if (!OidIsValid(dropped_dbid) ||
		get_database_oid(stmt->dbname, true) == dropped_dbid)
		return;
	spool_dir(dropped_dbid, dir);
	dropped_dbid = InvalidOid;
	/* (a database no engineer read protected data in has no spool) */
	if (access(dir, F_OK) != 0 && errno == ENOENT)
		return;
	if (!rmtree(dir, true))
		ereport(WARNING,
				(errmsg("could not remove the lockbox spool of a dropped database in \"%s\"",
						dir)));
}

/* The whole records of an open spool file from offset at up to size. */
static int64
count_records(int fd, off_t at, off_t size)
{
	int64		n = 0;
	uint32		len;

	while (at < size && (len = record_len_at(fd, at, size)) > 0)
	{
		at += len;
		n++;
	}
	return n;
}

/*
 * DROP EXTENSION lockbox, before it runs: name what it leaves unaudited.
 * Records still in the spool go with no audit (this one is dropped, and a
 * later installation sets them aside, see "Installations"); the DBA who
 * meant to export everything learns it now, while a rollback still helps.
 */
static void
warn_unaudited(DropStmt *stmt)
{
	static SPIPlanPtr plan = NULL;
	ListCell   *lc;
	bool		lockbox = false;
	List	   *names;
	LockboxCall call;
	char		dir[MAXPGPATH];
	int64		records = 0;
	int			nfiles = 0;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	foreach(lc, stmt->objects)
		if (IsA(lfirst(lc), String) && strcmp(strVal(lfirst(lc)), "lockbox") == 0)
			lockbox = true;
	if (!lockbox || !lockbox_installed() || RecoveryInProgress())
		return;
	names = lockbox_spool_files();
	if (names == NIL)
		return;
	spool_dir(MyDatabaseId, dir);
	values[0] = CStringGetTextDatum(local_node_key());
	lockbox_enter_read(&call);
	lockbox_exec(&plan,
				 "SELECT file, done FROM lockbox.access_spool WHERE node OPERATOR(pg_catalog.=) $1",
				 1, argtypes, values, NULL, 0);
	foreach(lc, names)
	{
		const char *file = (const char *) lfirst(lc);
		char		path[MAXPGPATH];
		off_t		done = 0;
		off_t		written;
		struct stat st;
		int			fd;
		int64		n;

		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;

			if (strcmp(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1), file) == 0)
				done = (off_t) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 2, &isnull));
		}
		snprintf(path, sizeof(path), "%s/%s", dir, file);
		fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0)
		{
			if (file_is_live(file, &written))
				st.st_size = Min(st.st_size, written);
			n = count_records(fd, done, st.st_size);
			if (n > 0)
			{
				records += n;
				nfiles++;
			}
		}
		CloseTransientFile(fd);
	}
	lockbox_leave(&call);
	if (records > 0)
		ereport(WARNING,
				(errmsg_plural("DROP EXTENSION lockbox leaves " INT64_FORMAT " access record unaudited",
							   "DROP EXTENSION lockbox leaves " INT64_FORMAT " access records unaudited",
							   records, records),
				 errdetail("Engineers' statements wait in the spool (files: %d, in \"%s\"), and the audit log they were to go into is dropped with the extension. Should lockbox be created in this database again, its worker sets them aside, unaudited, as JSON in \"%s\".",
						   nfiles, dir, SPOOL_ASIDE_DIR),
				 errhint("To have them in this audit, roll back, wait until lockbox.stats shows access_queue_depth 0, and export the audit first (README, Uninstalling).")));
}

/* Before DROP DATABASE: which database it is; before DROP EXTENSION lockbox, what it leaves. */
void
lockbox_access_utility(Node *node)
{
	dropped_dbid = InvalidOid;
	if (IsA(node, DropdbStmt))
		dropped_dbid = get_database_oid(((DropdbStmt *) node)->dbname, true);
	else if (IsA(node, DropStmt) &&
			 ((DropStmt *) node)->removeType == OBJECT_EXTENSION)
		warn_unaudited((DropStmt *) node);
}

/* ---------------------------------------------------------------------
 * Forwarding from standbys
 *
 * On a standby the sessions spool as on the primary (the spool is not
 * WAL-logged, so recovery does not stop it); the database's worker there
 * reads whole records and hands them in to the primary, which audits them
 * with lockbox_forward_access and keeps how far it audited each file of
 * each node, in the same transaction: each record is audited once, whatever
 * connection or process fails when.
 * ---------------------------------------------------------------------
 */

/* A spool file's name as sessions make them: <pid>.<start>.<n>, nothing else. */
static bool
valid_spool_name(const char *file)
{
	size_t		len = strlen(file);

	if (len == 0 || len >= 64 || file[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(file[i] == '.' || file[i] == '-' || (file[i] >= '0' && file[i] <= '9')))
			return false;
	return true;
}

/* A string of a forwarded record: it goes into the audit as text. */
static const char *
forwarded_str(Reader *r)
{
	const char *s = get_str(r);

	if (r->ok && !pg_verifymbstr(s, strlen(s), true))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid lockbox access records"),
				 errdetail("A record holds text that is not valid in the database's encoding.")));
	return s;
}

/*
 * Check the records a standby hands in before any is audited: every
 * statement record whole and well formed, its text valid in the database's
 * encoding, within the limits a session writes.  Returns how many bytes of
 * them one call audits: whole records, up to LOCKBOX_RECORD_MAX_ROWS audit
 * rows (the rest comes in the next call).
 */
static size_t
check_forwarded(const char *buf, size_t len)
{
	size_t		pos = 0;
	int64		rows = 0;

	while (pos < len)
	{
		SpoolHeader h;
		uint32		rlen;
		uint32		magic = 0;
		uint32		nitems;
		int64		rec_rows = 0;
		Reader		r;

		if (len - pos >= sizeof(magic))
			memcpy(&magic, buf + pos, sizeof(magic));
		if (magic == 0 || !record_ok(buf + pos, len - pos, &rlen))
			break;				/* as ingest_records: the rest waits */
		memcpy(&h, buf + pos, sizeof(h));
		if (h.outcome != LB_ALLOWED && h.outcome != LB_REFUSED)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid lockbox access records"),
					 errdetail("The record at offset %zu has an unknown outcome.", pos)));
		if (h.kind == SPOOL_STATEMENT)
		{
			r.p = buf + pos + sizeof(h);
			r.end = buf + pos + rlen;
			r.ok = true;
			for (int i = 0; i < 6; i++)
				(void) forwarded_str(&r);	/* roles, command, reason, query, sha */
			(void) get_int64(&r);
			nitems = get_uint32(&r);
			if (r.ok && nitems > LOCKBOX_RECORD_MAX_ITEMS)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("lockbox access record too large"),
						 errdetail("A record names %u relations; at most %d are allowed.",
								   nitems, LOCKBOX_RECORD_MAX_ITEMS)));
			for (uint32 i = 0; i < nitems && r.ok; i++)
			{
				uint32		nreq;

				(void) forwarded_str(&r);
				nreq = get_uint32(&r);
				if (!r.ok || nreq > (uint32) (r.end - r.p) / sizeof(int64))
				{
					r.ok = false;
					break;
				}
				r.p += (size_t) nreq * sizeof(int64);
				rec_rows += Max(nreq, 1);
			}
			/* the bound values and the client's statement (from 1.6) */
			for (int i = 0; i < 2 && r.ok && (h.flags & SPOOL_FLAG_PARTS); i++)
			{
				if (get_int64(&r) >= 0)
				{
					(void) forwarded_str(&r);
					(void) forwarded_str(&r);
				}
			}
			if (!r.ok || r.p != r.end)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid lockbox access records"),
						 errdetail("The record at offset %zu is malformed.", pos)));
			if (rec_rows > LOCKBOX_RECORD_MAX_ROWS)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("lockbox access record too large"),
						 errdetail("A record makes " INT64_FORMAT " audit rows; at most %d are allowed.",
								   rec_rows, LOCKBOX_RECORD_MAX_ROWS)));
			if (pos > 0 && rows + rec_rows > LOCKBOX_RECORD_MAX_ROWS)
				break;
			rows += rec_rows;
		}
		pos += rlen;
	}
	return pos;
}

/*
 * lockbox.forward_access(node text, file text, start bigint, records bytea,
 * finished boolean) -> bigint, on the primary, for the lockbox_forwarder
 * role: audit records (whole spool records of standby node's file, read
 * from offset start) unless the file is already audited beyond start, and
 * return how far the file is audited.  records NULL: only return that;
 * finished: the standby removed the file, forget it.  The node is the
 * caller's login role: a forwarder cannot hand in records for another node,
 * and it writes nothing but access and refused rows of its own node.
 */
Datum
lockbox_forward_access(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr claim_plan = NULL;
	static SPIPlanPtr done_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr save_plan = NULL;
	static SPIPlanPtr forget_plan = NULL;
	LockboxCall call;
	char	   *node;
	char	   *file;
	int64		start;
	int64		done = 0;
	bool		finished;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[3];

	lockbox_require_arg(fcinfo, 0, "node");
	lockbox_require_arg(fcinfo, 1, "file");
	lockbox_require_arg(fcinfo, 2, "start");
	node = text_to_cstring(PG_GETARG_TEXT_PP(0));
	file = text_to_cstring(PG_GETARG_TEXT_PP(1));
	start = PG_GETARG_INT64(2);
	finished = !PG_ARGISNULL(4) && PG_GETARG_BOOL(4);

	if (!superuser() && strcmp(node, lockbox_role_name(GetSessionUserId())) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" cannot forward lockbox access records of node \"%s\"",
						lockbox_role_name(GetSessionUserId()), node),
				 errdetail("A standby forwards its records logged in as the role named as the standby."),
				 errhint("Set lockbox.node_name (or cluster_name) on the standby to the name of the role it logs in as.")));
	if (strlen(node) == 0 || strlen(node) >= NAMEDATALEN || strcmp(node, "primary") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid lockbox node name \"%s\"", node)));

	/*
	 * This server keeps the progress of its own spool under its own name:
	 * records forwarded under that name would move or reset it (a promoted
	 * standby whose forwarder login still works, or a standby that kept the
	 * primary's cluster_name), so that its own statements went unaudited or
	 * were audited again.
	 */
	if (strcmp(node, local_node_key()) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lockbox node \"%s\" is this server's own name", node),
				 errdetail("This server audits its own engineers' statements; it takes no records forwarded under its name."),
				 errhint("Give each standby a lockbox.node_name (or cluster_name) of its own, and after a failover make the promoted standby's forwarding role NOLOGIN.")));
	if (!valid_spool_name(file))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid lockbox spool file name \"%s\"", file)));
	if (start < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start must not be negative")));
	if (!PG_ARGISNULL(3) &&
		toast_raw_datum_size(PG_GETARG_DATUM(3)) - VARHDRSZ >
		LOCKBOX_FORWARD_CHUNK + LOCKBOX_RECORD_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("lockbox access records too large"),
				 errdetail("At most %d bytes of records are handed in per call.",
						   LOCKBOX_FORWARD_CHUNK + LOCKBOX_RECORD_MAX)));

	lockbox_enter(&call);
	values[0] = CStringGetTextDatum(node);
	values[1] = CStringGetTextDatum(file);
	values[2] = Int64GetDatum(start);
	if (finished)
	{
		lockbox_exec(&forget_plan,
					 "DELETE FROM lockbox.access_spool"
					 " WHERE node OPERATOR(pg_catalog.=) $1 AND file OPERATOR(pg_catalog.=) $2",
					 2, argtypes, values, NULL, 0);
		lockbox_leave(&call);
		PG_RETURN_INT64(0);
	}

	/* how far: read only, no progress row made */
	if (PG_ARGISNULL(3))
	{
		lockbox_exec(&done_plan,
					 "SELECT done FROM lockbox.access_spool"
					 " WHERE node OPERATOR(pg_catalog.=) $1 AND file OPERATOR(pg_catalog.=) $2",
					 2, argtypes, values, NULL, 1);
		if (SPI_processed > 0)
		{
			bool		isnull;

			done = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull));
		}
		lockbox_leave(&call);
		PG_RETURN_INT64(done);
	}

	/*
	 * The file's progress row, locked: two connections handing in the same
	 * records (a forwarder that reconnected while its old connection's call
	 * still runs) take turns, and the second finds them audited.
	 */
	lockbox_exec(&claim_plan,
				 "INSERT INTO lockbox.access_spool (node, file, done) VALUES ($1, $2, 0)"
				 " ON CONFLICT (node, file) DO NOTHING",
				 2, argtypes, values, NULL, 0);
	lockbox_exec(&lock_plan,
				 "SELECT done FROM lockbox.access_spool"
				 " WHERE node OPERATOR(pg_catalog.=) $1 AND file OPERATOR(pg_catalog.=) $2"
				 " FOR UPDATE",
				 2, argtypes, values, NULL, 1);
	if (SPI_processed > 0)
	{
		bool		isnull;

		done = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (done == start)
	{
		bytea	   *records = PG_GETARG_BYTEA_PP(3);
		int64		n = 0;
		bool		file_done;
		bool		foreign = false;
		size_t		pos;
		SpoolOwner	owner;

		pos = check_forwarded(VARDATA_ANY(records), VARSIZE_ANY_EXHDR(records));
		read_owner(&owner);
		if (pos > 0)
			pos = ingest_records(&call, VARDATA_ANY(records), pos,
								 (off_t) start, -1, file, file, false, true, node, true,
								 &owner, NULL, &n, &file_done, &foreign);

		/*
		 * Records of another installation of lockbox (the standby has not
		 * replayed a DROP and CREATE EXTENSION yet, or does not take them
		 * apart: 1.6): never audited here; its worker sets them aside once
		 * it knows this installation.
		 */
		if (foreign && pos == 0)
		{
			SpoolHeader h;

			memcpy(&h, VARDATA_ANY(records), sizeof(h));
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("lockbox access records of node \"%s\" in spool file \"%s\" are of another installation of lockbox",
							node, file),
					 errdetail("The record at offset " INT64_FORMAT " was spooled under installation %d (lockbox.installation.spool_epoch); lockbox in this database is installation %d%s.",
							   start, (int32) h.installation, (int32) owner.epoch,
							   owner.legacy ? "" : ", created afresh, which takes no records spooled before 1.7"),
					 errhint("The standby sets them aside, unaudited, once it has replayed this installation's CREATE EXTENSION lockbox.")));
		}
		if (pos > 0)
		{
			done = start + (int64) pos;
			values[2] = Int64GetDatum(done);
			lockbox_exec(&save_plan,
						 "UPDATE lockbox.access_spool SET done = $3"
						 " WHERE node OPERATOR(pg_catalog.=) $1 AND file OPERATOR(pg_catalog.=) $2",
						 3, argtypes, values, NULL, 0);
		}
	}
	lockbox_leave(&call);
	PG_RETURN_INT64(done);
}

static int
list_cmp_names(const ListCell *a, const ListCell *b)
{
	return strcmp((const char *) lfirst(a), (const char *) lfirst(b));
}

/* This database's spool files, in name order. */
List *
lockbox_spool_files(void)
{
	char		dir[MAXPGPATH];
	DIR		   *d;
	struct dirent *de;
	List	   *files = NIL;

	spool_dir(MyDatabaseId, dir);
	d = AllocateDir(dir);
	if (d == NULL && errno == ENOENT)
		return NIL;
	while ((de = ReadDir(d, dir)) != NULL)
	{
		if (de->d_name[0] == '.')
			continue;
		files = lappend(files, pstrdup(de->d_name));
	}
	FreeDir(d);
	list_sort(files, list_cmp_names);
	return files;
}

/*
 * Is the damaged record at offset at of a complete spool file (first bytes
 * in buf, avail of them) its torn end: nothing was written after it?  A
 * session that died while copying its last record leaves that; a damaged
 * record with records after it is damage.
 */
static bool
torn_end(int fd, off_t at, const char *buf, size_t avail, off_t size)
{
	SpoolHeader h;
	uint32		magic = 0;

	if (avail < sizeof(h))
		return at + (off_t) avail >= size;
	memcpy(&h, buf, sizeof(h));
	if (h.magic == SPOOL_MAGIC && h.len >= sizeof(h) && h.len <= LOCKBOX_RECORD_MAX)
	{
		/* the header is whole: is there anything where the next would be? */
		if (at + (off_t) h.len + (off_t) sizeof(magic) > size)
			return true;
		return read_at(fd, at + h.len, (char *) &magic, sizeof(magic)) && magic == 0;
	}
	/* the header itself is torn: only zeros may follow it */
	for (size_t i = sizeof(h); i < avail; i++)
		if (buf[i] != 0)
			return false;
	return true;
}

/*
 * A standby's worker: the installation of lockbox it serves, as replayed
 * (read at each pass, SPI connected).  Until it is read, records of every
 * installation are forwarded.
 */
static SpoolOwner local_owner;
static bool local_owner_known = false;

void
lockbox_spool_read_owner(void)
{
	read_owner(&local_owner);
	local_owner_known = true;
}

/*
 * Whole records of spool file from offset from on, at most max bytes, or
 * the one record there when it is larger (up to LOCKBOX_RECORD_MAX): a
 * palloc'd copy, its length in *len.  *at_end: nothing follows them (the
 * file's session ended and there are no more records, or only a torn last
 * one, which is reported and left out).  *damaged: the file's session ended
 * and the record at from is damaged with records after it, so the file
 * cannot go on (*len is 0).  *foreign: the records stop before one of
 * another installation of lockbox than the worker's (see "Installations").
 */
char *
lockbox_spool_chunk(const char *file, off_t from, size_t max, size_t *len,
					bool *at_end, bool *damaged, bool *foreign)
{
	char		dir[MAXPGPATH];
	char		path[MAXPGPATH];
	struct stat st;
	off_t		written = 0;
	bool		live = file_is_live(file, &written);
	int			fd;
	size_t		avail;
	size_t		pos = 0;
	uint32		first;
	char	   *buf;
	bool		hit_end = false;

	*len = 0;
	*at_end = false;
	*damaged = false;
	*foreign = false;
	spool_dir(MyDatabaseId, dir);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0 || fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open lockbox spool file \"%s\": %m", path)));
	if (live)
		st.st_size = Min(st.st_size, written);
	avail = (size_t) Min((off_t) max, Max(st.st_size - from, 0));
	/* a record longer than max goes alone */
	first = record_len_at(fd, from, st.st_size);
	if (first > avail)
		avail = first;
	buf = palloc(avail + 1);
	if (avail > 0 && !read_at(fd, from, buf, avail))
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read lockbox spool file \"%s\": %m", path)));
	while (pos < avail)
	{
		uint32		rlen;
		uint32		magic = 0;

		if (avail - pos >= sizeof(magic))
			memcpy(&magic, buf + pos, sizeof(magic));
		if (magic == 0)
		{
			/* the reserved, never written rest of the file */
			hit_end = true;
			break;
		}
		if (!record_ok(buf + pos, avail - pos, &rlen))
		{
			/* cut short by the chunk, or still being written */
			if (live || pos > 0)
				break;
			if (!torn_end(fd, from, buf, avail, st.st_size))
			{
				*damaged = true;
				break;
			}
			ereport(WARNING,
					(errmsg("discarding a damaged record at the end of lockbox spool file \"%s\"",
							path)));
			CloseTransientFile(fd);
			*at_end = true;
			return buf;
		}
		if (local_owner_known &&
			foreign_record((const SpoolHeader *) (buf + pos), &local_owner))
		{
			*foreign = true;
			break;
		}
		pos += rlen;
	}
	CloseTransientFile(fd);
	*len = pos;
	/* the file is complete when its session ended and the records stop here */
	*at_end = !live && !*damaged &&
		(hit_end || from + (off_t) pos >= st.st_size);
	return buf;
}

/*
 * Where the records of a complete spool file end, read from offset from on
 * (headers only).  *damaged: a record there is not whole; the end is then
 * the file's size, so that what cannot be forwarded counts too.
 */
int64
lockbox_spool_end(const char *file, int64 from, bool *damaged)
{
	char		dir[MAXPGPATH];
	char		path[MAXPGPATH];
	struct stat st;
	int			fd;
	off_t		at = (off_t) from;

	*damaged = false;
	spool_dir(MyDatabaseId, dir);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	if (fd < 0 || fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open lockbox spool file \"%s\": %m", path)));
	while (at < st.st_size)
	{
		uint32		magic = 0;
		uint32		rlen;

		if (!read_at(fd, at, (char *) &magic, Min(sizeof(magic), (size_t) (st.st_size - at))) ||
			magic == 0)
			break;
		rlen = record_len_at(fd, at, st.st_size);
		if (rlen == 0)
		{
			*damaged = true;
			at = st.st_size;
			break;
		}
		at += rlen;
	}
	CloseTransientFile(fd);
	return (int64) at;
}

/* ---------------------------------------------------------------------
 * Databases that are gone (the launcher)
 *
 * DROP DATABASE removes the database's spool on the server that runs it
 * (lockbox_access_utility_done), not on a standby that replays it: there
 * the records its sessions spooled and did not forward yet stayed in
 * lockbox_spool/<oid>/ for good, and their bytes in the database's backlog
 * slot, which nothing released: they counted toward
 * lockbox.standby_backlog_max for the whole server until its restart, and
 * after 64 databases with engineers' statements the next one had no slot
 * (its engineers refused, 53400).  The launcher reads pg_database every
 * few seconds; what belongs to a database no longer there goes then, as on
 * the primary, where the database's audit went with it.  The candidates
 * are taken before that read: a database created after it has another oid
 * (a dropped database's oid comes back only after the oid counter wraps),
 * so nothing of a database that exists is taken.
 * ---------------------------------------------------------------------
 */

/* The databases with a spool directory or a backlog slot. */
List *
lockbox_spool_databases(void)
{
	List	   *result = NIL;
	DIR		   *root;
	struct dirent *de;

	SpinLockAcquire(backlog_lock);
	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
		if (OidIsValid(backlog_slots[i].dbid))
			result = list_append_unique_oid(result, backlog_slots[i].dbid);
	SpinLockRelease(backlog_lock);

	root = AllocateDir(SPOOL_DIR);
	if (root == NULL)
		return result;
	while ((de = ReadDirExtended(root, SPOOL_DIR, LOG)) != NULL)
	{
		if (de->d_name[0] == '\0' ||
			strspn(de->d_name, "0123456789") != strlen(de->d_name))
			continue;
		result = list_append_unique_oid(result, (Oid) strtoul(de->d_name, NULL, 10));
	}
	FreeDir(root);
	return result;
}

/* Database dbid is gone: its spool and its backlog slot go with it. */
void
lockbox_spool_forget_database(Oid dbid)
{
	char		dir[MAXPGPATH];
	struct stat st;

	/* (a session of it still spooling: its slot says so; next time) */
	for (int i = 0; i < access_slot_count; i++)
		if (access_slots[i].dbid == dbid)
			return;
	SpinLockAcquire(backlog_lock);
	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
	{
		BacklogSlot *b = &backlog_slots[i];

		if (b->dbid != dbid)
			continue;
		SpinLockAcquire(&b->mutex);
		b->files = 0;
		b->last_forward = 0;
		b->last_error_at = 0;
		b->last_error[0] = '\0';
		SpinLockRelease(&b->mutex);
		pg_atomic_write_u64(&b->bytes, 0);
		b->dbid = InvalidOid;
	}
	SpinLockRelease(backlog_lock);

	spool_dir(dbid, dir);
	if (stat(dir, &st) != 0)
		return;
	if (rmtree(dir, true))
		ereport(LOG,
				(errmsg("removed the lockbox spool of dropped database %u in \"%s\"", dbid, dir),
				 errdetail("Records its sessions spooled and no worker audited or forwarded went with the database, as they do where DROP DATABASE runs.")));
	else
		ereport(WARNING,
				(errmsg("could not remove the lockbox spool of a dropped database in \"%s\"",
						dir)));
}

/* Is a session still writing file?  If so, *written: how far. */
bool
lockbox_spool_live(const char *file, int64 *written)
{
	off_t		w = 0;
	bool		live = file_is_live(file, &w);

	*written = (int64) w;
	return live;
}

/*
 * A standby's worker: set aside a spool file of another installation from
 * offset from on (see set_aside_file), then remove it.  (Outside a
 * transaction: dbname is the database's name.)
 */
void
lockbox_spool_set_aside(const char *file, int64 from, const char *dbname)
{
	char		dir[MAXPGPATH];
	char		aside_path[MAXPGPATH];
	int64		n;

	spool_dir(MyDatabaseId, dir);
	n = set_aside_file(dir, file, (off_t) from, aside_path);
	ereport(WARNING,
			(errmsg_plural("lockbox set aside " INT64_FORMAT " access record of a former installation of lockbox in database \"%s\", unaudited",
						   "lockbox set aside " INT64_FORMAT " access records of a former installation of lockbox in database \"%s\", unaudited",
						   n, n, dbname),
			 errdetail("Records of spool file \"%s\" name requests of an installation dropped on the primary since, and are not forwarded. They are kept as lines of JSON, one per audit row they would have made, in \"%s\".",
					   file, aside_path)));
	lockbox_spool_remove(file);
}

/* Remove a spool file this database's worker forwarded entirely. */
void
lockbox_spool_remove(const char *file)
{
	char		path[MAXPGPATH];
	char		dir[MAXPGPATH];

	spool_dir(MyDatabaseId, dir);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (unlink(path) != 0 && errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove lockbox spool file \"%s\": %m", path)));
}

/*
 * The standby's server log: each forwarded record as LOCKBOX lines (with
 * lockbox.log asking for them), one per relation and request, as the
 * primary writes them but without seq and hash, which only the primary's
 * audit has, and with the node.  Written once the primary has the records.
 */
void
lockbox_spool_log(const char *buf, size_t len, const char *node)
{
	size_t		pos = 0;

	while (pos < len)
	{
		SpoolHeader h;
		uint32		rlen;
		Reader		r;
		const char *engineer,
				   *session_user_name,
				   *command,
				   *reason,
				   *query;
		uint32		nitems;
		const char *event;
		RecordPart	parameters;
		RecordPart	within;

		if (!record_ok(buf + pos, len - pos, &rlen))
			break;
		memcpy(&h, buf + pos, sizeof(h));
		pos += rlen;
		event = h.outcome == LB_REFUSED ? "refused" : "access";
		if (h.kind != SPOOL_STATEMENT || !lockbox_log_wants(event))
			continue;
		r.p = buf + pos - rlen + sizeof(h);
		r.end = buf + pos;
		r.ok = true;
		engineer = get_str(&r);
		session_user_name = get_str(&r);
		command = get_str(&r);
		reason = get_str(&r);
		query = get_str(&r);
		(void) get_str(&r);		/* sha256 */
		(void) get_int64(&r);	/* length */
		nitems = get_uint32(&r);
		if (!r.ok || !get_parts(&r, h.flags, nitems, &parameters, &within))
			continue;
		for (uint32 i = 0; i < nitems && r.ok; i++)
		{
			const char *relname = get_str(&r);
			uint32		nreq = get_uint32(&r);

			for (uint32 j = 0; j < Max(nreq, 1) && r.ok; j++)
			{
				int64		request_id = nreq > 0 ? get_int64(&r) : 0;
				StringInfoData line;

				if (!r.ok)
					break;
				initStringInfo(&line);
				appendStringInfoChar(&line, '{');
				lockbox_json_str(&line, "at", lockbox_iso_time(h.at));
				lockbox_json_str(&line, "event", event);
				lockbox_json_str(&line, "actor", engineer);
				lockbox_json_str(&line, "session_user", session_user_name);
				if (request_id > 0)
					lockbox_json_raw(&line, "request_id", psprintf(INT64_FORMAT, request_id));
				lockbox_json_str(&line, "node", node);
				appendStringInfoString(&line, ", \"detail\": {");
				{
					StringInfoData detail;

					initStringInfo(&detail);
					lockbox_json_raw(&detail, "pid", psprintf("%d", h.pid));
					lockbox_json_str(&detail, "query", query);
					if (parameters.text)
						lockbox_json_str(&detail, "parameters", parameters.text);
					if (within.text)
						lockbox_json_str(&detail, "within_query", within.text);
					lockbox_json_str(&detail, "command", command);
					lockbox_json_str(&detail, "relation", relname);
					if (h.outcome == LB_REFUSED)
						lockbox_json_str(&detail, "reason", reason);
					appendStringInfoString(&line, detail.data);
				}
				appendStringInfoString(&line, "}}");
				ereport(LOG,
						(errmsg_internal("LOCKBOX: %s", line.data),
						 errhidestmt(true), errhidecontext(true)));
			}
		}
	}
}
