/*-------------------------------------------------------------------------
 *
 * audit.c
 *		The audit log: append-only, every row hash-linked to earlier rows.
 *
 * A single hash chain ("each row hashes the previous row") needs the chain's
 * head locked from the moment a row is written until its transaction
 * commits; otherwise the next row could link to a row that then rolls back.
 * That lock makes every transition wait for the previous one's commit.
 *
 * lockbox links rows into a hash DAG instead.  Each row names, in "parents",
 * the audit rows that were committed and not yet linked by any other
 * committed row when it was written (the "tips"), and its hash is
 *
 *		sha256(parent hashes in seq order || parent seqs || row content)
 *
 * Only committed rows are ever linked, so an aborted transaction leaves no
 * hole, and writers never wait for each other: the tips live in shared
 * memory, read under a shared lock when a row is written and updated under a
 * short exclusive lock when its transaction commits.  Rows written by one
 * transaction link to each other in order.  Without concurrency the DAG is a
 * plain chain.  Editing a row breaks its hash; deleting or rewriting one
 * breaks the hash of every row that links it; deleting the newest rows is
 * caught while the server still holds the tips in memory.
 *
 * After a restart the tips are rebuilt from the newest rows of the table.
 *
 * Rows written from 1.3 on are stored compactly and hashed in format v2,
 * over binary values only (README "The audit log"): a lifecycle row's jsonb
 * detail as stored, an access row's statement (stored once, in
 * lockbox.audit_statement) through its digest and its typed fields.  Rows
 * written before keep format v1, over their detail's text; hash_v1 says
 * which.  session_user_name is stored as NULL where it is the actor, and
 * parents where the only parent is seq - 1: the hash covers the values, not
 * how they are stored.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/dbcommands.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "commands/vacuum.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "nodes/params.h"
#include "parser/parse_func.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/sinvaladt.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "utils/varlena.h"

#ifdef USE_OPENSSL
/* SHA256_Init and co., deprecated in OpenSSL 3 but without its lookups */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#endif

#include "lockbox.h"

PG_FUNCTION_INFO_V1(lockbox_audit_log_append_only);
PG_FUNCTION_INFO_V1(lockbox_verify_audit);
PG_FUNCTION_INFO_V1(lockbox_verify_audit_anchors);
PG_FUNCTION_INFO_V1(lockbox_verify_audit_since);
PG_FUNCTION_INFO_V1(lockbox_jsonb_bytes);

/* lockbox.log: which events go to the server log */
#define LOG_ACCESS		0x01
#define LOG_REFUSED		0x02
#define LOG_LIFECYCLE	0x04
static char *lockbox_log_string = NULL;
static int	lockbox_log_mask = LOG_ACCESS | LOG_REFUSED | LOG_LIFECYCLE;

/* Does lockbox.log ask for this event (access, refused, or another)? */
bool
lockbox_log_wants(const char *event)
{
	int			category = strcmp(event, "access") == 0 ? LOG_ACCESS :
		strcmp(event, "refused") == 0 ? LOG_REFUSED : LOG_LIFECYCLE;

	return (lockbox_log_mask & category) != 0;
}

/* lockbox.anchor_interval, in milliseconds */
int			lockbox_anchor_interval = 60000;

#define AUDIT_HASH_LEN			PG_SHA256_DIGEST_LENGTH
/* rows looked at when the tips are rebuilt from the table */
#define AUDIT_TIP_WINDOW		1000
/* how long lockbox_archive_audit waits for the audit log's writers */
#define ARCHIVE_LOCK_WAIT_MS	2000

typedef struct AuditTip
{
	int64		seq;
	uint8		hash[AUDIT_HASH_LEN];
} AuditTip;

typedef struct AuditDbSlot
{
	Oid			dbid;			/* InvalidOid: slot free */
	Oid			audit_relid;	/* lockbox.audit_log the tips belong to */
	bool		loaded;			/* tips valid? */
	uint64		generation;		/* bumped by every commit that wrote rows */
	int			ntips;
	AuditTip	tips[FLEXIBLE_ARRAY_MEMBER];
} AuditDbSlot;

typedef struct AuditShared
{
	LWLock	   *lock;
	int			tip_capacity;
	Size		slot_size;
	char		slots[FLEXIBLE_ARRAY_MEMBER];
} AuditShared;

static AuditShared *audit_shared = NULL;

/* rows this transaction wrote, in order; in TopTransactionContext */
typedef struct PendingRow
{
	SubTransactionId subid;
	int64		seq;
	uint8		hash[AUDIT_HASH_LEN];
	int			nparents;
	int64	   *parents;
	bool		links_tips;		/* links a parent beside its previous row */
	char	   *logline;		/* for the server log at commit, or NULL */
} PendingRow;

static List *pending_rows = NIL;

/*
 * Those of pending_rows that link tips, i.e. rows committed by others: the
 * first row of a transaction, and a later one when others' commits made new
 * tips meanwhile.  Whether a tip is linked already is asked at every row and
 * at the commit; asked of every pending row, it made a transaction's n rows
 * cost O(n^2) (the worker audits thousands of engineer statements in one).
 */
static List *linking_rows = NIL;

/* the default partition whose rows lockbox_audit_move_default is moving */
static Oid	audit_move_relid = InvalidOid;

/* lockbox_archive_audit is detaching partitions */
static bool audit_archiving = false;
/*
 * The table lockbox.audit_move_default() filled in this transaction: the one
 * table with rows that may become a partition of the log (its month's rows,
 * moved out of the default partition).
 */
static Oid	audit_moved_into = InvalidOid;

/* For the guard (audit_guard.c): is lockbox_archive_audit detaching months? */
bool
lockbox_audit_archiving(void)
{
	return audit_archiving;
}

/* For the guard: the table lockbox.audit_move_default() filled, if any. */
Oid
lockbox_audit_moved_into(void)
{
	return audit_moved_into;
}

/* where verification takes rows and parents from, when not the live log */
typedef struct ArchiveSource
{
	Oid			relid;			/* the archive table */
	char	   *relname;		/* its name, schema-qualified and quoted */
	int			nanchors;		/* the parents it links outside itself */
	AuditTip   *anchors;		/* (AuditTip: a seq and its hash) */
	SPIPlanPtr	lookup;			/* a row's hash by seq, from the archive */
	Jsonb	   *meta;			/* its comment: range, seqs, rows, digest */
	/* the outcome */
	bool		ok;
	int64		checked;
	int64		first_bad;
	int64		first_seq;
	int64		last_seq;
	uint8		digest[AUDIT_HASH_LEN];
} ArchiveSource;

static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr tips_plan = NULL;

/* ---------------------------------------------------------------------
 * Settings
 * ---------------------------------------------------------------------
 */
static bool
check_log(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *items;
	ListCell   *lc;
	int			mask = 0;
	int		   *result;

	if (!SplitIdentifierString(raw, ',', &items))
	{
		GUC_check_errdetail("List syntax is invalid.");
		return false;
	}
	foreach(lc, items)
	{
		const char *item = (const char *) lfirst(lc);

		if (pg_strcasecmp(item, "all") == 0)
			mask |= LOG_ACCESS | LOG_REFUSED | LOG_LIFECYCLE;
		else if (pg_strcasecmp(item, "none") == 0)
			mask |= 0;
		else if (pg_strcasecmp(item, "access") == 0)
			mask |= LOG_ACCESS;
		else if (pg_strcasecmp(item, "refused") == 0)
			mask |= LOG_REFUSED;
		else if (pg_strcasecmp(item, "lifecycle") == 0)
			mask |= LOG_LIFECYCLE;
		else
		{
			GUC_check_errdetail("Unrecognized item \"%s\": use access, refused, lifecycle, all or none.",
								item);
			return false;
		}
	}
	result = (int *) malloc(sizeof(int));
	if (result == NULL)
		return false;
	*result = mask;
	*extra = result;
	return true;
}

static void
assign_log(const char *newval, void *extra)
{
	lockbox_log_mask = *(int *) extra;
}

void
lockbox_audit_init(void)
{
	DefineCustomStringVariable("lockbox.log",
							   "Which lockbox events are also written to the server log.",
							   "A list of access, refused and lifecycle; all or none.  Each event is one LOG line starting with \"LOCKBOX: \" and a JSON object.",
							   &lockbox_log_string, "all",
							   PGC_SUSET, GUC_LIST_INPUT,
							   check_log, assign_log, NULL);
	DefineCustomIntVariable("lockbox.anchor_interval",
							"How often the worker writes the audit heads (anchors) to the server log, when there are new audit rows.",
							"Each anchor is a LOG line with an audit row's seq and hash, which lockbox_verify_audit(anchors) checks later; "
							"at least one second (1s), in a unit (1min, 30s) or milliseconds.",
							&lockbox_anchor_interval, 60000, 1000, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Shared memory
 * ---------------------------------------------------------------------
 */
static int
tip_capacity(void)
{
	/* one tip per concurrently committing backend, and room to spare */
	return MaxBackends + 16;
}

static Size
slot_size(void)
{
	return MAXALIGN(add_size(offsetof(AuditDbSlot, tips),
							 mul_size(tip_capacity(), sizeof(AuditTip))));
}

Size
lockbox_audit_shmem_size(void)
{
	return add_size(MAXALIGN(offsetof(AuditShared, slots)),
					mul_size(LOCKBOX_MAX_DATABASES, slot_size()));
}

static AuditDbSlot *
slot_at(int i)
{
	return (AuditDbSlot *) (audit_shared->slots + i * audit_shared->slot_size);
}

void
lockbox_audit_shmem_init(void)
{
	bool		found;

	audit_shared = ShmemInitStruct("lockbox audit",
								   lockbox_audit_shmem_size(), &found);
	if (!found)
	{
		audit_shared->lock = &(GetNamedLWLockTranche("lockbox"))->lock;
		audit_shared->tip_capacity = tip_capacity();
		audit_shared->slot_size = slot_size();
		for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
		{
			AuditDbSlot *slot = slot_at(i);

			slot->dbid = InvalidOid;
			slot->loaded = false;
			slot->ntips = 0;
			slot->generation = 0;
		}
	}
}

/* caller holds the lock; create requires it exclusively */
static AuditDbSlot *
find_slot(bool create)
{
	AuditDbSlot *free_slot = NULL;

	for (int i = 0; i < LOCKBOX_MAX_DATABASES; i++)
	{
		AuditDbSlot *slot = slot_at(i);

		if (slot->dbid == MyDatabaseId)
			return slot;
		if (slot->dbid == InvalidOid && free_slot == NULL)
			free_slot = slot;
	}
	if (create && free_slot != NULL)
	{
		free_slot->dbid = MyDatabaseId;
		free_slot->audit_relid = InvalidOid;
		free_slot->loaded = false;
		free_slot->ntips = 0;
		free_slot->generation = 0;
	}
	return create ? free_slot : NULL;
}

/* ---------------------------------------------------------------------
 * Hashing
 * ---------------------------------------------------------------------
 */
#ifndef USE_OPENSSL
static void
hash_bytes(pg_cryptohash_ctx *ctx, const void *data, size_t len)
{
	if (pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0)
		elog(ERROR, "could not update sha256: %s", pg_cryptohash_error(ctx));
}
#endif

/*
 * A string for the v2 hash: bytes and length, data NULL for SQL NULL.  Not
 * NUL-terminated: verification passes column values as they are stored.
 */
typedef struct AuditStr
{
	const char *data;
	int			len;
} AuditStr;

static inline AuditStr
audit_cstr(const char *s)
{
	AuditStr	r = {s, s ? (int) strlen(s) : 0};

	return r;
}

/*
 * The v2 hash's input, gathered in a buffer and handed to sha256 in few
 * calls: one call per field costs more than the hashing of a short row.
 * With OpenSSL, its SHA-256 functions are called directly: through
 * pg_cryptohash (its EVP interface) each hash would cost a lookup of the
 * algorithm, under locks, several times the hashing of a row.
 */
typedef struct HashBuf
{
#ifdef USE_OPENSSL
	SHA256_CTX	sha;
#else
	pg_cryptohash_ctx *ctx;
#endif
	int			len;
	uint8		data[1024];
} HashBuf;

static void
hb_init(HashBuf *hb)
{
	hb->len = 0;
#ifdef USE_OPENSSL
	if (SHA256_Init(&hb->sha) != 1)
		elog(ERROR, "could not initialize sha256");
#else
	hb->ctx = pg_cryptohash_create(PG_SHA256);
	if (hb->ctx == NULL || pg_cryptohash_init(hb->ctx) < 0)
		elog(ERROR, "could not initialize sha256");
#endif
}

static void
hb_update(HashBuf *hb, const void *data, size_t len)
{
#ifdef USE_OPENSSL
	if (SHA256_Update(&hb->sha, data, len) != 1)
		elog(ERROR, "could not update sha256");
#else
	hash_bytes(hb->ctx, data, len);
#endif
}

static void
hb_flush(HashBuf *hb)
{
	if (hb->len > 0)
		hb_update(hb, hb->data, hb->len);
	hb->len = 0;
}

static void
hb_final(HashBuf *hb, uint8 *result)
{
	hb_flush(hb);
#ifdef USE_OPENSSL
	if (SHA256_Final(result, &hb->sha) != 1)
		elog(ERROR, "could not finish sha256");
#else
	if (pg_cryptohash_final(hb->ctx, result, AUDIT_HASH_LEN) < 0)
		elog(ERROR, "could not finish sha256: %s", pg_cryptohash_error(hb->ctx));
	pg_cryptohash_free(hb->ctx);
#endif
}

static inline void
hb_bytes(HashBuf *hb, const void *data, size_t len)
{
	if (hb->len + len > sizeof(hb->data))
	{
		hb_flush(hb);
		if (len > sizeof(hb->data))
		{
			hb_update(hb, data, len);
			return;
		}
	}
	memcpy(hb->data + hb->len, data, len);
	hb->len += len;
}

static inline void
hb_int64(HashBuf *hb, int64 v)
{
	uint64		be = pg_hton64((uint64) v);

	hb_bytes(hb, &be, sizeof(be));
}

static inline void
hb_str(HashBuf *hb, AuditStr s)
{
	uint8		isnull = (s.data == NULL);
	uint32		len;

	hb_bytes(hb, &isnull, 1);
	if (s.data == NULL)
		return;
	len = pg_hton32((uint32) s.len);
	hb_bytes(hb, &len, sizeof(len));
	hb_bytes(hb, s.data, s.len);
}

/*
 * A row's hash, format v1 (rows written before 1.3; verification only):
 * sha256 of "lockbox audit v1", the number of parents, each parent's seq
 * and hash (ascending), seq, at, session_user_name, actor, event, whether
 * there is a request and its id, tenant, and the detail's jsonb text.
 */
static void
audit_row_hash_v1(const int64 *parents, const uint8 *parent_hashes, int nparents,
				  int64 seq, TimestampTz at, const char *session_user_name,
				  const char *actor, const char *event, bool has_request,
				  int64 request_id, const char *tenant, const char *detail,
				  uint8 *result)
{
	HashBuf		hb;
	uint8		has = has_request;

	hb_init(&hb);
	hb_bytes(&hb, "lockbox audit v1", 16);
	hb_int64(&hb, nparents);
	for (int i = 0; i < nparents; i++)
	{
		hb_int64(&hb, parents[i]);
		hb_bytes(&hb, parent_hashes + i * AUDIT_HASH_LEN, AUDIT_HASH_LEN);
	}
	hb_int64(&hb, seq);
	hb_int64(&hb, at);
	hb_str(&hb, audit_cstr(session_user_name));
	hb_str(&hb, audit_cstr(actor));
	hb_str(&hb, audit_cstr(event));
	hb_bytes(&hb, &has, 1);
	if (has_request)
		hb_int64(&hb, request_id);
	hb_str(&hb, audit_cstr(tenant));
	hb_str(&hb, audit_cstr(detail));
	hb_final(&hb, result);
}

/*
 * What a v2 row's hash covers beyond the fields every row has: its jsonb
 * detail as stored (binary), or, for the access and refused rows written
 * from 1.3 on, the statement's digest and the typed fields.
 */
typedef struct AuditContent
{
	AuditStr	detail;			/* jsonb binary; data NULL: an access row */
	const uint8 *statement;		/* the statement's digest */
	int64		pid;
	int64		statements;
	int64		last_at_usec;	/* -1: none */
	int64		query_length;	/* -1: none */
	AuditStr	query_sha256;
	AuditStr	reason;
	AuditStr	node;
} AuditContent;

/*
 * The v2 hash (rows written from 1.3 on): as v1 over parents, seq, at, the
 * names, event, request and tenant, then either 'j' and the detail's jsonb
 * binary, or 'a' and the statement's digest with the typed fields.  Only
 * binary values: nothing is rendered as text to verify a row.
 */
static void
audit_row_hash_v2(const int64 *parents, const uint8 *parent_hashes, int nparents,
				  int64 seq, TimestampTz at, AuditStr session_user_name,
				  AuditStr actor, AuditStr event, bool has_request,
				  int64 request_id, AuditStr tenant, const AuditContent *c,
				  uint8 *result)
{
	HashBuf		hb;
	uint8		has = has_request;

	hb_init(&hb);
	hb_bytes(&hb, "lockbox audit v2", 16);
	hb_int64(&hb, nparents);
	for (int i = 0; i < nparents; i++)
	{
		hb_int64(&hb, parents[i]);
		hb_bytes(&hb, parent_hashes + i * AUDIT_HASH_LEN, AUDIT_HASH_LEN);
	}
	hb_int64(&hb, seq);
	hb_int64(&hb, at);
	hb_str(&hb, session_user_name);
	hb_str(&hb, actor);
	hb_str(&hb, event);
	hb_bytes(&hb, &has, 1);
	if (has_request)
		hb_int64(&hb, request_id);
	hb_str(&hb, tenant);
	if (c->detail.data != NULL)
	{
		hb_bytes(&hb, "j", 1);
		hb_str(&hb, c->detail);
	}
	else
	{
		hb_bytes(&hb, "a", 1);
		hb_bytes(&hb, c->statement, AUDIT_HASH_LEN);
		hb_int64(&hb, c->pid);
		hb_int64(&hb, c->statements);
		hb_int64(&hb, c->last_at_usec);
		hb_int64(&hb, c->query_length);
		hb_str(&hb, c->query_sha256);
		hb_str(&hb, c->reason);
		hb_str(&hb, c->node);
	}
	hb_final(&hb, result);
}

/*
 * What a statement holds beside its text, from 1.6 (stored as NULL where
 * there is none): the values bound to its parameters and the client's
 * statement it ran within, each with, when cut, its whole length and
 * sha256 (length -1: not cut).
 */
typedef struct StatementParts
{
	AuditStr	parameters;
	int64		parameters_length;
	AuditStr	parameters_sha256;
	AuditStr	within;
	int64		within_length;
	AuditStr	within_sha256;
} StatementParts;

/*
 * A statement's digest: sha256 over its relation, command and text, then,
 * only when it has bound values or ran within another statement (from 1.6),
 * those: a statement without them has the digest it had before.
 */
static void
audit_statement_digest(AuditStr relation, AuditStr command, AuditStr query,
					   const StatementParts *parts, uint8 *result)
{
	HashBuf		hb;

	hb_init(&hb);
	hb_bytes(&hb, "lockbox statement", 17);
	hb_str(&hb, relation);
	hb_str(&hb, command);
	hb_str(&hb, query);
	if (parts != NULL &&
		(parts->parameters.data != NULL || parts->within.data != NULL))
	{
		hb_bytes(&hb, "p", 1);
		hb_str(&hb, parts->parameters);
		hb_int64(&hb, parts->parameters_length);
		hb_str(&hb, parts->parameters_sha256);
		hb_bytes(&hb, "w", 1);
		hb_str(&hb, parts->within);
		hb_int64(&hb, parts->within_length);
		hb_str(&hb, parts->within_sha256);
	}
	hb_final(&hb, result);
}

/* ---------------------------------------------------------------------
 * Tips
 * ---------------------------------------------------------------------
 */
static Oid
audit_relid(void)
{
	Oid			relid = lockbox_relid("audit_log");

	if (!OidIsValid(relid))
		elog(ERROR, "lockbox.audit_log is missing");
	return relid;
}

/*
 * The tips according to the table: among the newest rows, those no other of
 * them links.  Parents always have smaller seqs than their children, so a
 * window of the newest rows holds every row that links any of them.  Read
 * with a fresh snapshot, whatever the isolation level, so that no committed
 * row is missed.
 */
static AuditTip *
tips_from_table(int *ntips)
{
	static const char *sql =
		"WITH w AS (SELECT seq, hash, parents FROM lockbox.audit_log"
		"           ORDER BY seq DESC LIMIT " CppAsString2(AUDIT_TIP_WINDOW) ")"
		" SELECT w.seq, w.hash FROM w"
		"  WHERE w.seq OPERATOR(pg_catalog.<>) ALL"
		"        (SELECT pg_catalog.unnest(COALESCE(w2.parents,"
		"                ARRAY[w2.seq OPERATOR(pg_catalog.-) 1])) FROM w w2)"
		"  ORDER BY w.seq";
	SPIPlanPtr	plan = lockbox_prepare(&tips_plan, sql, 0, NULL);
	Snapshot	snap;
	AuditTip   *tips;
	int			ret;

	snap = RegisterSnapshot(GetLatestSnapshot());
	ret = SPI_execute_snapshot(plan, NULL, NULL, snap, InvalidSnapshot,
							   true, false, 0);
	UnregisterSnapshot(snap);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the audit tips: %s",
			 SPI_result_code_string(ret));

	*ntips = (int) SPI_processed;
	tips = palloc(sizeof(AuditTip) * Max(1, SPI_processed));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[i];
		bytea	   *h;

		tips[i].seq = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		h = DatumGetByteaPP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		if (VARSIZE_ANY_EXHDR(h) != AUDIT_HASH_LEN)
			elog(ERROR, "audit row %lld has a malformed hash",
				 (long long) tips[i].seq);
		memcpy(tips[i].hash, VARDATA_ANY(h), AUDIT_HASH_LEN);
	}
	return tips;
}

/*
 * The current tips of this database, from shared memory when it has them,
 * else rebuilt from the table (and given to shared memory when no commit
 * raced with the rebuild).
 */
static AuditTip *
current_tips(int *ntips)
{
	Oid			relid = audit_relid();
	AuditTip   *tips;

	for (int attempt = 0;; attempt++)
	{
		AuditDbSlot *slot;
		uint64		generation = 0;
		bool		have_slot;
		bool		installed;

		LWLockAcquire(audit_shared->lock, LW_SHARED);
		slot = find_slot(false);
		if (slot != NULL && slot->loaded && slot->audit_relid == relid)
		{
			*ntips = slot->ntips;
			tips = palloc(sizeof(AuditTip) * Max(1, slot->ntips));
			memcpy(tips, slot->tips, sizeof(AuditTip) * slot->ntips);
			LWLockRelease(audit_shared->lock);
			return tips;
		}
		LWLockRelease(audit_shared->lock);

		/* claim (or reset) the slot, and note the generation we start at */
		LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
		slot = find_slot(true);
		have_slot = (slot != NULL);
		if (have_slot)
		{
			if (slot->audit_relid != relid)
			{
				slot->audit_relid = relid;
				slot->loaded = false;
				slot->ntips = 0;
			}
			generation = slot->generation;
		}
		LWLockRelease(audit_shared->lock);

		tips = tips_from_table(ntips);
		if (!have_slot)
			return tips;		/* no room: the table is the only source */

		LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
		slot = find_slot(false);
		installed = false;
		if (slot != NULL && slot->audit_relid == relid && !slot->loaded &&
			slot->generation == generation &&
			*ntips <= audit_shared->tip_capacity)
		{
			memcpy(slot->tips, tips, sizeof(AuditTip) * (*ntips));
			slot->ntips = *ntips;
			slot->loaded = true;
			installed = true;
		}
		else if (slot != NULL && slot->loaded && slot->audit_relid == relid)
		{
			/* someone else loaded it meanwhile; theirs is at least as new */
			pfree(tips);
			*ntips = slot->ntips;
			tips = palloc(sizeof(AuditTip) * Max(1, slot->ntips));
			memcpy(tips, slot->tips, sizeof(AuditTip) * slot->ntips);
			LWLockRelease(audit_shared->lock);
			return tips;
		}
		LWLockRelease(audit_shared->lock);

		/*
		 * Installed, or commits kept racing with the rebuild.  Either way
		 * these tips are committed rows and safe to link.
		 */
		if (installed || attempt >= 3)
			return tips;
		pfree(tips);
	}
}

/* Publish a committed transaction's rows: its parents stop being tips. */
static void
publish_pending_rows(void)
{
	AuditDbSlot *slot;
	PendingRow *last;

	if (audit_shared == NULL || pending_rows == NIL)
		return;
	last = (PendingRow *) llast(pending_rows);

	LWLockAcquire(audit_shared->lock, LW_EXCLUSIVE);
	slot = find_slot(false);
	if (slot != NULL)
	{
		slot->generation++;
		if (slot->loaded)
		{
			int			keep = 0;

			for (int i = 0; i < slot->ntips; i++)
			{
				bool		linked = false;
				ListCell   *lc;

				/* (the other rows link only this transaction's own) */
				foreach(lc, linking_rows)
				{
					PendingRow *row = (PendingRow *) lfirst(lc);

					for (int j = 0; j < row->nparents && !linked; j++)
						linked = (row->parents[j] == slot->tips[i].seq);
					if (linked)
						break;
				}
				if (!linked)
					slot->tips[keep++] = slot->tips[i];
			}
			slot->ntips = keep;
			if (slot->ntips < audit_shared->tip_capacity)
			{
				slot->tips[slot->ntips].seq = last->seq;
				memcpy(slot->tips[slot->ntips].hash, last->hash, AUDIT_HASH_LEN);
				slot->ntips++;
			}
			else
				slot->loaded = false;	/* rebuild from the table */
		}
	}
	LWLockRelease(audit_shared->lock);
}

/* The committed rows lockbox.log asks for, one LOG line each. */
static void
log_pending_rows(void)
{
	ListCell   *lc;

	foreach(lc, pending_rows)
	{
		PendingRow *row = (PendingRow *) lfirst(lc);

		if (row->logline != NULL)
			ereport(LOG,
					(errmsg_internal("LOCKBOX: %s", row->logline),
					 errhidestmt(true), errhidecontext(true)));
	}
}

void
lockbox_audit_xact(XactEvent event)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (pending_rows != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has written lockbox audit rows")));
			break;
		case XACT_EVENT_COMMIT:
			publish_pending_rows();
			log_pending_rows();
			pending_rows = NIL;
			linking_rows = NIL;
			audit_moved_into = InvalidOid;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			pending_rows = NIL;
			linking_rows = NIL;
			audit_moved_into = InvalidOid;
			break;
		default:
			break;
	}
}

void
lockbox_audit_subxact(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid)
{
	ListCell   *lc;

	if (pending_rows == NIL)
		return;
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, pending_rows)
		{
			PendingRow *row = (PendingRow *) lfirst(lc);

			if (row->subid == mySubid)
				row->subid = parentSubid;
		}
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, pending_rows)
		{
			PendingRow *row = (PendingRow *) lfirst(lc);

			if (row->subid == mySubid)
				pending_rows = foreach_delete_current(pending_rows, lc);
		}
		foreach(lc, linking_rows)
		{
			PendingRow *row = (PendingRow *) lfirst(lc);

			if (row->subid == mySubid)
				linking_rows = foreach_delete_current(linking_rows, lc);
		}
	}
}

/* A time as ISO 8601 in UTC, whatever the session's settings. */
char *
lockbox_iso_time(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		return psprintf(INT64_FORMAT, (int64) t);
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
					tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

static void
append_anchor(StringInfo buf, int64 seq, const uint8 *hash)
{
	char		hex[AUDIT_HASH_LEN * 2 + 1];

	hex_encode((const char *) hash, AUDIT_HASH_LEN, hex);
	hex[AUDIT_HASH_LEN * 2] = '\0';
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	appendStringInfo(buf, "{\"seq\": " INT64_FORMAT ", \"hash\": \"%s\"}", seq, hex);
}

/*
 * The audit's head now, as anchors ('[{"seq": 41, "hash": "..."}]'): the
 * newest row this transaction wrote, or else the current tips.  Between
 * lockbox_enter and lockbox_leave.
 */
char *
lockbox_audit_head_json(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	if (pending_rows != NIL)
	{
		PendingRow *row = (PendingRow *) llast(pending_rows);

		append_anchor(&buf, row->seq, row->hash);
	}
	else
	{
		int			ntips;
		AuditTip   *tips = current_tips(&ntips);

		for (int i = 0; i < ntips; i++)
			append_anchor(&buf, tips[i].seq, tips[i].hash);
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

/* One anchor as a jsonb object value: {"seq": seq, "hash": "<hex>"}. */
static void
anchor_value(JsonbValue *obj, int64 seq, const uint8 *hash)
{
	JsonbPair  *pairs = palloc(sizeof(JsonbPair) * 2);
	char	   *hex = palloc(AUDIT_HASH_LEN * 2 + 1);

	hex_encode((const char *) hash, AUDIT_HASH_LEN, hex);
	hex[AUDIT_HASH_LEN * 2] = '\0';
	/* (in jsonb's order of keys: the shorter first) */
	pairs[0].key.type = jbvString;
	pairs[0].key.val.string.val = "seq";
	pairs[0].key.val.string.len = 3;
	pairs[0].value.type = jbvNumeric;
	pairs[0].value.val.numeric = int64_to_numeric(seq);
	pairs[0].order = 0;
	pairs[1].key.type = jbvString;
	pairs[1].key.val.string.val = "hash";
	pairs[1].key.val.string.len = 4;
	pairs[1].value.type = jbvString;
	pairs[1].value.val.string.val = hex;
	pairs[1].value.val.string.len = AUDIT_HASH_LEN * 2;
	pairs[1].order = 1;
	obj->type = jbvObject;
	obj->val.object.nPairs = 2;
	obj->val.object.pairs = pairs;
}

/*
 * The audit's head, as lockbox_audit_head_json's array, as a jsonb value
 * (built directly: every notification a transition writes carries it).
 */
JsonbValue *
lockbox_audit_head_value(void)
{
	JsonbValue *array = palloc(sizeof(JsonbValue));

	array->type = jbvArray;
	array->val.array.rawScalar = false;
	if (pending_rows != NIL)
	{
		PendingRow *row = (PendingRow *) llast(pending_rows);

		array->val.array.nElems = 1;
		array->val.array.elems = palloc(sizeof(JsonbValue));
		anchor_value(&array->val.array.elems[0], row->seq, row->hash);
	}
	else
	{
		int			ntips;
		AuditTip   *tips = current_tips(&ntips);

		array->val.array.nElems = ntips;
		array->val.array.elems = palloc(sizeof(JsonbValue) * Max(ntips, 1));
		for (int i = 0; i < ntips; i++)
			anchor_value(&array->val.array.elems[i], tips[i].seq, tips[i].hash);
	}
	return array;
}

/*
 * The worker's anchor: the heads of this database's audit, to the server
 * log, when rows were committed since the last one.  In a transaction,
 * between lockbox_enter and lockbox_leave.
 */
void
lockbox_audit_log_anchor(void)
{
	static uint64 logged_generation = 0;
	static bool logged = false;
	uint64		generation = 0;
	AuditDbSlot *slot;
	StringInfoData buf;
	int			ntips;
	AuditTip   *tips;

	LWLockAcquire(audit_shared->lock, LW_SHARED);
	slot = find_slot(false);
	if (slot != NULL)
		generation = slot->generation;
	LWLockRelease(audit_shared->lock);
	if (logged && generation == logged_generation)
		return;

	tips = current_tips(&ntips);
	if (ntips == 0)
		return;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < ntips; i++)
		append_anchor(&buf, tips[i].seq, tips[i].hash);
	appendStringInfoChar(&buf, ']');
	{
		StringInfoData line;
		char	   *dbname = get_database_name(MyDatabaseId);

		initStringInfo(&line);
		appendStringInfoChar(&line, '{');
		lockbox_json_str(&line, "event", "anchor");
		lockbox_json_str(&line, "at", lockbox_iso_time(GetCurrentTimestamp()));
		lockbox_json_str(&line, "database", dbname);
		lockbox_json_raw(&line, "anchors", buf.data);
		appendStringInfoChar(&line, '}');
		ereport(LOG,
				(errmsg_internal("LOCKBOX: %s", line.data),
				 errhidestmt(true), errhidecontext(true)));
	}
	logged = true;
	logged_generation = generation;
}

/* ---------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------
 */
void
lockbox_json_str(StringInfo buf, const char *key, const char *value)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	if (value == NULL)
		appendStringInfoString(buf, "null");
	else
		escape_json(buf, value);
}

void
lockbox_json_raw(StringInfo buf, const char *key, const char *value)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	appendStringInfoString(buf, value ? value : "null");
}

/*
 * Append one audit row.  Must run between lockbox_enter and lockbox_leave.
 * detail_json is a JSON object text.
 */
const Oid	lockbox_audit_argtypes[LOCKBOX_AUDIT_NARGS] = {
	INT8OID, TIMESTAMPTZOID, NAMEOID, NAMEOID, TEXTOID, INT8OID, TEXTOID,
	JSONBOID, INT8ARRAYOID, BYTEAOID
};

/* the audit_log columns of lockbox_audit_row's values, in their order */
static const char *const audit_columns[LOCKBOX_AUDIT_NARGS] = {
	"seq", "at", "session_user_name", "actor", "event", "request_id",
	"tenant", "detail", "parents", "hash"
};

/* Insert an audit row computed by lockbox_audit_row into table t of store. */
void
lockbox_audit_store(LockboxStore *store, int t, const AuditRow *row)
{
	lockbox_store_new_row(store, t);
	for (int i = 0; i < LOCKBOX_AUDIT_NARGS; i++)
		lockbox_store_set(store, t, audit_columns[i], row->values[i],
						  lockbox_audit_argtypes[i], row->nulls[i] == 'n');
	lockbox_store_insert(store, t);
}

void
lockbox_audit(LockboxCall *call, const char *event, int64 request_id,
			  const char *tenant, const char *detail_json)
{
	static const char *sql =
		"INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor,"
		" event, request_id, tenant, detail, parents, hash)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
	AuditRow	row;

	lockbox_audit_row(call, event, request_id, tenant, detail_json, &row);
	if (lockbox_exec(&insert_plan, sql, LOCKBOX_AUDIT_NARGS,
					 (Oid *) lockbox_audit_argtypes, row.values, row.nulls, 0)
		!= SPI_OK_INSERT)
		elog(ERROR, "could not append to lockbox.audit_log");
}

/* A row being written: its place in the DAG, then its hash. */
typedef struct NewRow
{
	PendingRow *row;
	int64	   *parents;
	uint8	   *parent_hashes;
	int			nparents;
	const char *session_user_name;
	const char *actor;
} NewRow;

/*
 * The parents and seq of a new row (not yet pending): the tips, less those
 * this transaction's earlier rows link, and its own previous row.
 */
static void
begin_row(LockboxCall *call, NewRow *nr)
{
	AuditTip   *tips;
	int			ntips;
	PendingRow *prev = NULL;
	PendingRow *row;
	int64	   *parents;
	uint8	   *parent_hashes;
	int			nparents = 0;
	MemoryContext oldcxt;

	if (audit_shared == NULL)
		elog(ERROR, "lockbox shared memory is not initialized");
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot write the lockbox audit during recovery")));

	nr->session_user_name = call->session_name ? call->session_name :
		lockbox_role_name(call->session_user);
	nr->actor = call->actor_name ? call->actor_name :
		lockbox_role_name(call->caller);

	/* tips first, then the seq: every parent's seq is then below ours */
	tips = current_tips(&ntips);
	if (pending_rows != NIL)
		prev = (PendingRow *) llast(pending_rows);

	parents = palloc(sizeof(int64) * (ntips + 1));
	parent_hashes = palloc(AUDIT_HASH_LEN * (ntips + 1));
	for (int i = 0; i < ntips; i++)
	{
		bool		dup = false;

		/* a tip our earlier rows already link need not be linked again */
		if (prev != NULL)
		{
			ListCell   *lc;

			foreach(lc, linking_rows)
			{
				PendingRow *p = (PendingRow *) lfirst(lc);

				for (int j = 0; j < p->nparents && !dup; j++)
					dup = (p->parents[j] == tips[i].seq);
			}
		}
		if (!dup)
			parents[nparents++] = tips[i].seq;
	}
	if (prev != NULL)
		parents[nparents++] = prev->seq;
	qsort(parents, nparents, sizeof(int64), lockbox_int64_cmp);
	for (int i = 0; i < nparents; i++)
	{
		const uint8 *h = NULL;

		if (prev != NULL && parents[i] == prev->seq)
			h = prev->hash;
		for (int j = 0; j < ntips && h == NULL; j++)
			if (tips[j].seq == parents[i])
				h = tips[j].hash;
		Assert(h != NULL);
		memcpy(parent_hashes + i * AUDIT_HASH_LEN, h, AUDIT_HASH_LEN);
	}

	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	row = palloc(sizeof(PendingRow));
	row->subid = GetCurrentSubTransactionId();
	row->nparents = nparents;
	row->parents = palloc(sizeof(int64) * Max(1, nparents));
	memcpy(row->parents, parents, sizeof(int64) * nparents);
	row->links_tips = nparents > (prev != NULL ? 1 : 0);
	row->logline = NULL;
	MemoryContextSwitchTo(oldcxt);

	row->seq = nextval_internal(lockbox_relid("audit_seq"),
								false);
	nr->row = row;
	nr->parents = parents;
	nr->parent_hashes = parent_hashes;
	nr->nparents = nparents;
}

/* Hash a new row (format v2). */
static void
hash_row(LockboxCall *call, NewRow *nr, const char *event, int64 request_id,
		 const char *tenant, const AuditContent *c)
{
	audit_row_hash_v2(nr->parents, nr->parent_hashes, nr->nparents,
					  nr->row->seq, call->now,
					  audit_cstr(nr->session_user_name), audit_cstr(nr->actor),
					  audit_cstr(event), request_id > 0, request_id,
					  audit_cstr(tenant), c, nr->row->hash);
}

/*
 * Finish a new row: its server log line (detail_text: the detail as jsonb
 * renders it), and it is pending until its transaction ends.
 */
static void
end_row(LockboxCall *call, NewRow *nr, const char *event, int64 request_id,
		const char *tenant, const char *detail_text)
{
	PendingRow *row = nr->row;
	MemoryContext oldcxt;

	if (detail_text != NULL)
	{
		StringInfoData line;
		char		hex[AUDIT_HASH_LEN * 2 + 1];

		/*
		 * (as lockbox_json_str and lockbox_json_raw would write it, but in
		 * fewer steps: every transition writes one; the keys, the seq, the
		 * time and the hash need no escaping)
		 */
		initStringInfo(&line);
		appendStringInfo(&line, "{\"seq\": " INT64_FORMAT ", \"at\": \"%s\", \"event\": ",
						 row->seq, lockbox_iso_time(call->now));
		escape_json(&line, event);
		appendStringInfoString(&line, ", \"actor\": ");
		escape_json(&line, nr->actor);
		appendStringInfoString(&line, ", \"session_user\": ");
		escape_json(&line, nr->session_user_name);
		if (request_id > 0)
			appendStringInfo(&line, ", \"request_id\": " INT64_FORMAT ", \"tenant\": ",
							 request_id);
		else
			appendStringInfoString(&line, ", \"request_id\": null, \"tenant\": ");
		if (tenant != NULL)
			escape_json(&line, tenant);
		else
			appendStringInfoString(&line, "null");
		appendStringInfoString(&line, ", \"detail\": ");
		appendStringInfoString(&line, detail_text);
		hex_encode((char *) row->hash, AUDIT_HASH_LEN, hex);
		hex[AUDIT_HASH_LEN * 2] = '\0';
		appendStringInfo(&line, ", \"hash\": \"%s\"}", hex);
		row->logline = MemoryContextStrdup(TopTransactionContext, line.data);
		pfree(line.data);
	}

	/* the caller inserts it in this (sub)transaction, or errors out of it */
	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	pending_rows = lappend(pending_rows, row);
	if (row->links_tips)
		linking_rows = lappend(linking_rows, row);
	MemoryContextSwitchTo(oldcxt);
}

/* Is a row's only parent the row just before it?  Then parents is NULL. */
static bool
parents_implicit(const NewRow *nr)
{
	return nr->nparents == 1 && nr->parents[0] == nr->row->seq - 1;
}

/*
 * Compute one audit row: its seq, its parents and its hash, as the values of
 * an INSERT into lockbox.audit_log (seq, at, session_user_name, actor, event,
 * request_id, tenant, detail, parents, hash), which the caller runs in this
 * transaction.  Must run between lockbox_enter and lockbox_leave.
 *
 * Stored compactly, session_user_name is NULL where it is the actor and
 * parents NULL where the only parent is seq - 1: out->nulls says so, while
 * out->values holds every value (a caller that ignores nulls stores them in
 * full, which verifies the same).
 */
void
lockbox_audit_row(LockboxCall *call, const char *event, int64 request_id,
				  const char *tenant, const char *detail_json, AuditRow *out)
{
	Datum	   *values = out->values;
	char	   *nulls = out->nulls;
	NewRow		nr;
	Datum	   *parent_datums;
	Jsonb	   *detail;
	AuditContent content = {0};
	bytea	   *hash;

	begin_row(call, &nr);

	detail = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
												CStringGetDatum(detail_json)));
	content.detail.data = VARDATA(detail);
	content.detail.len = VARSIZE(detail) - VARHDRSZ;
	hash_row(call, &nr, event, request_id, tenant, &content);

	parent_datums = palloc(sizeof(Datum) * Max(1, nr.nparents));
	for (int i = 0; i < nr.nparents; i++)
		parent_datums[i] = Int64GetDatum(nr.parents[i]);
	hash = palloc(VARHDRSZ + AUDIT_HASH_LEN);
	SET_VARSIZE(hash, VARHDRSZ + AUDIT_HASH_LEN);
	memcpy(VARDATA(hash), nr.row->hash, AUDIT_HASH_LEN);
	namestrcpy(&out->session_name, nr.session_user_name);
	namestrcpy(&out->actor_name, nr.actor);

	memset(nulls, ' ', LOCKBOX_AUDIT_NARGS);
	values[0] = Int64GetDatum(nr.row->seq);
	values[1] = TimestampTzGetDatum(call->now);
	values[2] = NameGetDatum(&out->session_name);
	if (strcmp(nr.session_user_name, nr.actor) == 0)
		nulls[2] = 'n';
	values[3] = NameGetDatum(&out->actor_name);
	values[4] = CStringGetTextDatum(event);
	values[5] = Int64GetDatum(request_id);
	if (request_id <= 0)
		nulls[5] = 'n';
	values[6] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	if (tenant == NULL)
		nulls[6] = 'n';
	values[7] = JsonbPGetDatum(detail);
	values[8] = PointerGetDatum(construct_array(parent_datums, nr.nparents,
												INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (parents_implicit(&nr))
		nulls[8] = 'n';
	values[9] = PointerGetDatum(hash);

	end_row(call, &nr, event, request_id, tenant,
			lockbox_log_wants(event) ?
			JsonbToCString(NULL, &detail->root, VARSIZE(detail)) : NULL);
}

/*
 * The id of a statement in lockbox.audit_statement, added if new, and the
 * access row naming it, in one statement.  Returns false when a concurrent
 * transaction added the statement after this statement's snapshot was
 * taken (nothing is inserted then; the caller tries again).
 */
static bool
insert_access_row(Datum *values, const char *nulls)
{
	static SPIPlanPtr plan = NULL;
	static const char *sql =
		"WITH i AS (INSERT INTO lockbox.audit_statement (digest, relation, command, query,"
		"                  parameters, parameters_length, parameters_sha256,"
		"                  within_query, within_length, within_sha256)"
		"           VALUES ($10, $11, $12, $13, $21, $22, $23, $24, $25, $26)"
		"           ON CONFLICT (digest) DO NOTHING RETURNING id),"
		"     s AS (SELECT i.id FROM i UNION ALL"
		"           (SELECT s.id FROM lockbox.audit_statement s"
		"             WHERE s.digest OPERATOR(pg_catalog.=) $10) LIMIT 1)"
		" INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor, event,"
		"        request_id, tenant, parents, hash, statement_id, pid, statements,"
		"        last_at_usec, reason, node, query_length, query_sha256)"
		" SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, s.id, $14, $15, $16, $17, $18,"
		"        $19, $20 FROM s";
	static Oid	argtypes[26] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID,
		INT8OID, TEXTOID, INT8ARRAYOID, BYTEAOID,
		/* $10 .. $13: the statement */
		BYTEAOID, TEXTOID, TEXTOID, TEXTOID,
		INT4OID, INT4OID, INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID,
		/* $21 .. $26: the statement's bound values and client statement */
	TEXTOID, INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID};

	if (lockbox_exec(&plan, sql, 26, argtypes, values, nulls, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not append to lockbox.audit_log");
	return SPI_processed == 1;
}

/*
 * Append an access or refused row (event) for an engineer's statement:
 * the statement stored once in lockbox.audit_statement, the rest in typed
 * columns.  Its detail, as lockbox.audit shows it and the server log line
 * prints it, is the one the rows written before 1.3 stored.  Must run
 * between lockbox_enter and lockbox_leave.
 */
void
lockbox_audit_access(LockboxCall *call, const char *event, int64 request_id,
					 const char *tenant, const LockboxAccess *a)
{
	NewRow		nr;
	AuditContent content = {0};
	uint8		digest[AUDIT_HASH_LEN];
	Datum		values[26];
	char		nulls[26];
	Datum	   *parent_datums;
	StatementParts parts;
	bytea	   *hash;
	bytea	   *digest_b;
	int64		statements = Max(a->statements, 1);
	char	   *detail_text = NULL;

	begin_row(call, &nr);

	parts.parameters = audit_cstr(a->parameters);
	parts.parameters_length = a->parameters && a->parameters_sha256 ? a->parameters_length : -1;
	parts.parameters_sha256 = audit_cstr(a->parameters ? a->parameters_sha256 : NULL);
	parts.within = audit_cstr(a->within);
	parts.within_length = a->within && a->within_sha256 ? a->within_length : -1;
	parts.within_sha256 = audit_cstr(a->within ? a->within_sha256 : NULL);
	audit_statement_digest(audit_cstr(a->relation), audit_cstr(a->command),
						   audit_cstr(a->query), &parts, digest);

	content.statement = digest;
	content.pid = a->pid;
	content.statements = statements;
	content.last_at_usec = statements > 1 ? a->last_at_usec : -1;
	content.query_length = a->query_sha256 ? a->query_length : -1;
	content.query_sha256 = audit_cstr(a->query_sha256);
	content.reason = audit_cstr(a->reason);
	content.node = audit_cstr(a->node);
	hash_row(call, &nr, event, request_id, tenant, &content);

	parent_datums = palloc(sizeof(Datum) * Max(1, nr.nparents));
	for (int i = 0; i < nr.nparents; i++)
		parent_datums[i] = Int64GetDatum(nr.parents[i]);
	hash = palloc(VARHDRSZ + AUDIT_HASH_LEN);
	SET_VARSIZE(hash, VARHDRSZ + AUDIT_HASH_LEN);
	memcpy(VARDATA(hash), nr.row->hash, AUDIT_HASH_LEN);
	digest_b = palloc(VARHDRSZ + AUDIT_HASH_LEN);
	SET_VARSIZE(digest_b, VARHDRSZ + AUDIT_HASH_LEN);
	memcpy(VARDATA(digest_b), digest, AUDIT_HASH_LEN);

	memset(nulls, ' ', sizeof(nulls));
	values[0] = Int64GetDatum(nr.row->seq);
	values[1] = TimestampTzGetDatum(call->now);
	values[2] = CStringGetTextDatum(nr.session_user_name);
	if (strcmp(nr.session_user_name, nr.actor) == 0)
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(nr.actor);
	values[4] = CStringGetTextDatum(event);
	values[5] = Int64GetDatum(request_id);
	if (request_id <= 0)
		nulls[5] = 'n';
	values[6] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	if (tenant == NULL)
		nulls[6] = 'n';
	values[7] = PointerGetDatum(construct_array(parent_datums, nr.nparents,
												INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (parents_implicit(&nr))
		nulls[7] = 'n';
	values[8] = PointerGetDatum(hash);
	values[9] = PointerGetDatum(digest_b);
	values[10] = CStringGetTextDatum(a->relation);
	values[11] = CStringGetTextDatum(a->command);
	values[12] = CStringGetTextDatum(a->query);
	values[13] = Int32GetDatum(a->pid);
	values[14] = Int32GetDatum((int32) Min(statements, PG_INT32_MAX));
	if (statements == 1)
		nulls[14] = 'n';
	values[15] = Int64GetDatum(content.last_at_usec);
	if (content.last_at_usec < 0)
		nulls[15] = 'n';
	values[16] = a->reason ? CStringGetTextDatum(a->reason) : (Datum) 0;
	nulls[16] = a->reason ? ' ' : 'n';
	values[17] = a->node ? CStringGetTextDatum(a->node) : (Datum) 0;
	nulls[17] = a->node ? ' ' : 'n';
	values[18] = Int64GetDatum(content.query_length);
	nulls[18] = a->query_sha256 ? ' ' : 'n';
	values[19] = a->query_sha256 ? CStringGetTextDatum(a->query_sha256) : (Datum) 0;
	nulls[19] = a->query_sha256 ? ' ' : 'n';
	values[20] = parts.parameters.data ? CStringGetTextDatum(parts.parameters.data) : (Datum) 0;
	nulls[20] = parts.parameters.data ? ' ' : 'n';
	values[21] = Int64GetDatum(parts.parameters_length);
	nulls[21] = parts.parameters_length >= 0 ? ' ' : 'n';
	values[22] = parts.parameters_sha256.data ? CStringGetTextDatum(parts.parameters_sha256.data) : (Datum) 0;
	nulls[22] = parts.parameters_sha256.data ? ' ' : 'n';
	values[23] = parts.within.data ? CStringGetTextDatum(parts.within.data) : (Datum) 0;
	nulls[23] = parts.within.data ? ' ' : 'n';
	values[24] = Int64GetDatum(parts.within_length);
	nulls[24] = parts.within_length >= 0 ? ' ' : 'n';
	values[25] = parts.within_sha256.data ? CStringGetTextDatum(parts.within_sha256.data) : (Datum) 0;
	nulls[25] = parts.within_sha256.data ? ' ' : 'n';

	for (int attempt = 0; !insert_access_row(values, nulls); attempt++)
	{
		if (attempt >= 3)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not add a statement to lockbox.audit_statement"),
					 errdetail("Concurrent transactions kept adding the same statement.")));
		CommandCounterIncrement();
	}

	if (lockbox_log_wants(event))
	{
		StringInfoData detail;
		Jsonb	   *jb;

		/* the detail the rows before 1.3 stored, rendered as jsonb does */
		initStringInfo(&detail);
		appendStringInfoChar(&detail, '{');
		lockbox_json_str(&detail, "relation", a->relation);
		lockbox_json_str(&detail, "command", a->command);
		lockbox_json_str(&detail, "query", a->query);
		if (a->query_sha256)
		{
			lockbox_json_raw(&detail, "query_length", psprintf(INT64_FORMAT, a->query_length));
			lockbox_json_str(&detail, "query_sha256", a->query_sha256);
		}
		if (parts.parameters.data)
		{
			lockbox_json_str(&detail, "parameters", parts.parameters.data);
			if (parts.parameters_sha256.data)
			{
				lockbox_json_raw(&detail, "parameters_length",
								 psprintf(INT64_FORMAT, parts.parameters_length));
				lockbox_json_str(&detail, "parameters_sha256", parts.parameters_sha256.data);
			}
		}
		if (parts.within.data)
		{
			lockbox_json_str(&detail, "within_query", parts.within.data);
			if (parts.within_sha256.data)
			{
				lockbox_json_raw(&detail, "within_length",
								 psprintf(INT64_FORMAT, parts.within_length));
				lockbox_json_str(&detail, "within_sha256", parts.within_sha256.data);
			}
		}
		if (a->reason)
			lockbox_json_str(&detail, "reason", a->reason);
		lockbox_json_raw(&detail, "pid", psprintf("%d", a->pid));
		if (a->node)
			lockbox_json_str(&detail, "node", a->node);
		lockbox_json_raw(&detail, "statements", psprintf(INT64_FORMAT, statements));
		if (statements > 1)
			lockbox_json_raw(&detail, "last_at_usec", psprintf(INT64_FORMAT, a->last_at_usec));
		appendStringInfoChar(&detail, '}');
		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(detail.data)));
		detail_text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}
	end_row(call, &nr, event, request_id, tenant, detail_text);
}

/* lockbox.jsonb_bytes(jsonb): the bytes the v2 hash covers for a detail */
Datum
lockbox_jsonb_bytes(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	bytea	   *result = palloc(VARSIZE(jb));

	SET_VARSIZE(result, VARSIZE(jb));
	memcpy(VARDATA(result), VARDATA(jb), VARSIZE(jb) - VARHDRSZ);
	PG_RETURN_BYTEA_P(result);
}

/* ---------------------------------------------------------------------
 * Append-only
 * ---------------------------------------------------------------------
 */
Datum
lockbox_audit_log_append_only(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *what;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "lockbox_audit_log_append_only must be called as a trigger");

	/* lockbox_audit_move_default moving a month's rows out of the default */
	if (audit_move_relid != InvalidOid &&
		TRIGGER_FIRED_BY_DELETE(trigdata->tg_event) &&
		TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) &&
		RelationGetRelid(trigdata->tg_relation) == audit_move_relid)
		return PointerGetDatum(trigdata->tg_trigtuple);

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		what = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		what = "DELETE";
	else
		what = "TRUNCATE";

	if (strcmp(RelationGetRelationName(trigdata->tg_relation), "audit_anchor") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("lockbox.audit_anchor is append-only"),
				 errdetail("%s is refused for every role.", what)));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("lockbox.%s is append-only",
					strcmp(RelationGetRelationName(trigdata->tg_relation),
						   "audit_statement") == 0 ? "audit_statement" : "audit_log"),
			 errdetail("%s is refused for every role.", what)));
	PG_RETURN_NULL();
}

/* ---------------------------------------------------------------------
 * Verification
 * ---------------------------------------------------------------------
 */
typedef struct Anchor
{
	int64		seq;
	uint8		hash[AUDIT_HASH_LEN];
	bool		seen;
	bool		bad;
} Anchor;

typedef struct LinkEntry
{
	int64		seq;			/* hash key */
	int			nparents;
	int64	   *parents;
	bool		reached;
} LinkEntry;

static int
cmp_anchor(const void *a, const void *b)
{
	return lockbox_int64_cmp(&((const Anchor *) a)->seq, &((const Anchor *) b)->seq);
}

static void
bad_anchor(int i, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("lockbox anchor %d is malformed: %s", i + 1, why),
			 errhint("Anchors are a JSON array of objects like {\"seq\": 41, \"hash\": \"<64 hex digits>\"}, as the server log and notifications print them.")));
}

/* The anchors argument, checked; between lockbox_enter and lockbox_leave. */
static Anchor *
parse_anchors(Jsonb *anchors, int *nanchors)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(anchors)};
	Anchor	   *result;

	if (!JB_ROOT_IS_ARRAY(anchors) || JB_ROOT_IS_SCALAR(anchors))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lockbox anchors must be a JSON array"),
				 errhint("Anchors are a JSON array of objects like {\"seq\": 41, \"hash\": \"<64 hex digits>\"}, as the server log and notifications print them.")));
	lockbox_exec(&plan,
				 "SELECT pg_catalog.jsonb_typeof(e),"
				 "       pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'seq'),"
				 "       e OPERATOR(pg_catalog.->>) 'seq',"
				 "       pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'hash'),"
				 "       e OPERATOR(pg_catalog.->>) 'hash'"
				 "  FROM pg_catalog.jsonb_array_elements($1) e",
				 1, argtypes, values, NULL, 0);
	*nanchors = (int) SPI_processed;
	result = palloc0(sizeof(Anchor) * Max(1, SPI_processed));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		char	   *type = SPI_getvalue(tup, td, 1);
		char	   *seqtype = SPI_getvalue(tup, td, 2);
		char	   *seq = SPI_getvalue(tup, td, 3);
		char	   *hashtype = SPI_getvalue(tup, td, 4);
		char	   *hash = SPI_getvalue(tup, td, 5);
		char	   *end;

		if (type == NULL || strcmp(type, "object") != 0)
			bad_anchor(i, "not an object");
		if (seqtype == NULL || strcmp(seqtype, "number") != 0)
			bad_anchor(i, "\"seq\" is not a number");
		errno = 0;
		result[i].seq = strtoll(seq, &end, 10);
		if (errno != 0 || *end != '\0' || result[i].seq <= 0)
			bad_anchor(i, "\"seq\" is not a positive integer");
		if (hashtype == NULL || strcmp(hashtype, "string") != 0 ||
			strlen(hash) != AUDIT_HASH_LEN * 2 ||
			strspn(hash, "0123456789abcdefABCDEF") != AUDIT_HASH_LEN * 2)
			bad_anchor(i, "\"hash\" is not 64 hexadecimal digits");
		hex_decode(hash, AUDIT_HASH_LEN * 2, (char *) result[i].hash);
	}
	qsort(result, *nanchors, sizeof(Anchor), cmp_anchor);
	return result;
}

/* A varlena column's value as an AuditStr (detoasted, not copied if short). */
static inline AuditStr
datum_str(Datum d, bool isnull)
{
	AuditStr	r = {NULL, 0};

	if (!isnull)
	{
		struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(d));

		r.data = VARDATA_ANY(v);
		r.len = VARSIZE_ANY_EXHDR(v);
	}
	return r;
}

typedef struct StatementEntry
{
	int64		id;				/* hash key */
	uint8		digest[AUDIT_HASH_LEN];
} StatementEntry;

/*
 * A statement's parts from six stored values: parameters, parameters_length,
 * parameters_sha256, within_query, within_length, within_sha256.
 */
static void
statement_parts(const Datum *vals, const bool *nulls, StatementParts *parts)
{
	parts->parameters = datum_str(vals[0], nulls[0]);
	parts->parameters_length = nulls[1] ? -1 : DatumGetInt64(vals[1]);
	parts->parameters_sha256 = datum_str(vals[2], nulls[2]);
	parts->within = datum_str(vals[3], nulls[3]);
	parts->within_length = nulls[4] ? -1 : DatumGetInt64(vals[4]);
	parts->within_sha256 = datum_str(vals[5], nulls[5]);
}

/*
 * The digest of every statement of lockbox.audit_statement, recomputed from
 * its text (the stored digest is only for finding a statement again), by
 * id.  Read with a snapshot taken after the rows': every statement a row
 * names is there.
 */
static HTAB *
statement_digests(void)
{
	static SPIPlanPtr plan = NULL;
	HASHCTL		ctl;
	HTAB	   *htab;
	Portal		portal;

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(StatementEntry);
	ctl.hcxt = CurrentMemoryContext;
	htab = hash_create("lockbox audit statements", 1024, &ctl,
					   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	PushActiveSnapshot(GetLatestSnapshot());
	portal = SPI_cursor_open("lockbox_verify_statements",
							 lockbox_prepare(&plan,
											 "SELECT id, relation, command, query,"
											 "       parameters, parameters_length, parameters_sha256,"
											 "       within_query, within_length, within_sha256"
											 "  FROM lockbox.audit_statement",
											 0, NULL),
							 NULL, NULL, true);
	PopActiveSnapshot();
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			Datum		vals[10];
			bool		nulls[10];
			int64		id;
			StatementEntry *e;
			StatementParts parts;

			heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
							  vals, nulls);
			id = DatumGetInt64(vals[0]);
			e = hash_search(htab, &id, HASH_ENTER, NULL);
			statement_parts(vals + 4, nulls + 4, &parts);
			audit_statement_digest(datum_str(vals[1], nulls[1]),
								   datum_str(vals[2], nulls[2]),
								   datum_str(vals[3], nulls[3]), &parts,
								   e->digest);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	return htab;
}

static Datum verify_audit(FunctionCallInfo fcinfo, Jsonb *anchors_arg,
							int64 since_seq, const uint8 *since_hash,
							ArchiveSource *archive);
static bool archived_parent_hash(int64 seq, uint8 *hash);
static void archived_anchors(Anchor *anchors, int nanchors, HTAB *links);
static SPIPlanPtr archive_rows_plan(ArchiveSource *archive);
static bool archive_parent_hash(ArchiveSource *archive, int64 seq, uint8 *hash);
static void archive_check_totals(ArchiveSource *archive, int64 checked,
								 int64 first_seq, int64 last_seq,
								 const uint8 *digest, int64 *first_bad);

/* lockbox_verify_audit(): every row's hash and links, and the tips */
Datum
lockbox_verify_audit(PG_FUNCTION_ARGS)
{
	return verify_audit(fcinfo, NULL, 0, NULL, NULL);
}

/*
 * lockbox_verify_audit(anchors jsonb): also anchors kept outside the
 * database.  Each must still be there, with its hash, and reachable from
 * the current heads through the rows' links.
 */
Datum
lockbox_verify_audit_anchors(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lockbox anchors must not be null")));
	return verify_audit(fcinfo, PG_GETARG_JSONB_P(0), 0, NULL, NULL);
}

/*
 * lockbox_verify_audit(since_seq bigint, since_hash text): the rows from a
 * trusted anchor on.  Row since_seq must still carry since_hash; every later
 * row is checked as the full verification checks it.  The parents a later
 * row names before since_seq are taken as the table holds them: they were
 * covered by the check that produced the anchor.  A daily check so costs
 * the day's rows.
 */
Datum
lockbox_verify_audit_since(PG_FUNCTION_ARGS)
{
	int64		since_seq;
	char	   *hex;
	uint8		hash[AUDIT_HASH_LEN];

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("since_seq and since_hash must not be null")));
	since_seq = PG_GETARG_INT64(0);
	hex = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (since_seq <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("since_seq must be a positive lockbox audit seq")));
	if (strlen(hex) != AUDIT_HASH_LEN * 2 ||
		strspn(hex, "0123456789abcdefABCDEF") != AUDIT_HASH_LEN * 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("since_hash must be 64 hexadecimal digits"),
				 errhint("Pass an anchor as the server log and notifications print it: {\"seq\": 41, \"hash\": \"<64 hex digits>\"}.")));
	hex_decode(hex, AUDIT_HASH_LEN * 2, (char *) hash);
	return verify_audit(fcinfo, NULL, since_seq, hash, NULL);
}

/*
 * The hashes of the rows seen last, by seq modulo VERIFY_RING: a row's
 * parents are nearly always among the rows just before it (the tips when it
 * was written), so they are found here without a query.  A row whose parent
 * is not there (read before its parent, or linking an old row) is checked
 * after the scan, its parents read from the table.
 */
#define VERIFY_RING		65536

typedef struct RingEntry
{
	int64		seq;			/* 0: empty */
	uint8		hash[AUDIT_HASH_LEN];
} RingEntry;

/*
 * The hash a one-row SPI result holds in its first column, when it holds a
 * well-formed one; the result is freed.
 */
static bool
spi_result_hash(uint8 *hash)
{
	bool		found = false;

	if (SPI_processed == 1)
	{
		bool		isnull;
		bytea	   *h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
													  SPI_tuptable->tupdesc, 1, &isnull));

		found = (!isnull && VARSIZE_ANY_EXHDR(h) == AUDIT_HASH_LEN);
		if (found)
			memcpy(hash, VARDATA_ANY(h), AUDIT_HASH_LEN);
	}
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/*
 * The stored hash of row seq, from the ring or (may_query) the table; false
 * if none.  A row archived away is found among the anchors kept for it: those of
 * lockbox.audit_anchor for the live log, those an archive carries for an
 * archive (archive_parent_hash).
 */
static bool
parent_hash(RingEntry *ring, int64 seq, uint8 *hash, bool may_query,
			ArchiveSource *archive)
{
	static SPIPlanPtr plan = NULL;
	RingEntry  *e = &ring[seq % VERIFY_RING];
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	if (e->seq == seq)
	{
		memcpy(hash, e->hash, AUDIT_HASH_LEN);
		return true;
	}
	if (!may_query)
		return false;
	if (archive != NULL)
		return archive_parent_hash(archive, seq, hash);
	values[0] = Int64GetDatum(seq);
	lockbox_exec(&plan,
				 "SELECT hash FROM lockbox.audit_log"
				 " WHERE seq OPERATOR(pg_catalog.=) $1",
				 1, argtypes, values, NULL, 1);
	if (SPI_processed == 0)
	{
		SPI_freetuptable(SPI_tuptable);
		return archived_parent_hash(seq, hash);
	}
	return spi_result_hash(hash);
}

/* the columns verification reads, in this order */
#define VERIFY_COLUMNS \
	"a.seq, a.at, a.session_user_name, a.actor, a.event," \
	" a.request_id, a.tenant, a.detail, a.parents, a.hash," \
	" a.hash_v1, a.statement_id, a.pid, a.statements, a.last_at_usec," \
	" a.query_length, a.query_sha256, a.reason, a.node"
#define VERIFY_NCOLUMNS 19
/*
 * and from an archive, the statement an access row names (its bound values
 * and the client's statement from 1.6: archives made before have none)
 */
#define VERIFY_ARCHIVE_COLUMNS \
	VERIFY_COLUMNS ", a.statement_relation, a.statement_command, a.statement_query"
#define VERIFY_ARCHIVE_PARTS \
	", a.statement_parameters, a.statement_parameters_length," \
	" a.statement_parameters_sha256, a.statement_within_query," \
	" a.statement_within_length, a.statement_within_sha256"
#define VERIFY_ARCHIVE_NO_PARTS \
	", NULL::pg_catalog.text, NULL::pg_catalog.int8, NULL::pg_catalog.text," \
	" NULL::pg_catalog.text, NULL::pg_catalog.int8, NULL::pg_catalog.text"
#define VERIFY_ARCHIVE_NCOLUMNS (VERIFY_NCOLUMNS + 9)

/* What an archive's rows are read as. */
static const char *
archive_columns(ArchiveSource *archive)
{
	if (get_attnum(archive->relid, "statement_parameters") != InvalidAttrNumber)
		return VERIFY_ARCHIVE_COLUMNS VERIFY_ARCHIVE_PARTS;
	return VERIFY_ARCHIVE_COLUMNS VERIFY_ARCHIVE_NO_PARTS;
}

/*
 * The seqs seen so far, when rows come in physical order: one bit per seq,
 * 65536 of them per entry, keyed by seq >> 16 (8 kB per 64K seqs).
 */
#define SEQ_BITS_SHIFT	16
#define SEQ_BITS_WORDS	((1 << SEQ_BITS_SHIFT) / 64)

typedef struct SeqBitsEntry
{
	int64		block;			/* hash key: seq >> SEQ_BITS_SHIFT */
	uint64		bits[SEQ_BITS_WORDS];
} SeqBitsEntry;

typedef struct VerifyState
{
	DestReceiver pub;			/* rows come in as to a DestReceiver */
	RingEntry  *ring;
	HTAB	   *statements;
	ArchiveSource *archive;		/* NULL: the live log */
	bool		seq_order;		/* rows come in seq order */
	int64		prev_seq;		/* (seq order) the last seq seen, or 0 */
	int64		first_seq;		/* the first seq seen, or -1 */
	HTAB	   *seq_bits;		/* (physical order) the seqs seen */
	SeqBitsEntry *seq_bits_last;	/* the entry of the last seq seen */
	pg_cryptohash_ctx *digest_ctx;	/* an archive's digest, or NULL */
	int64		since_seq;
	const uint8 *since_hash;
	bool		since_seen;
	bool		stop;			/* the anchor verified from is bad */
	int64		checked;
	int64		first_bad;		/* the lowest bad seq, or -1 */
	AuditTip   *tips;			/* held in memory: must all be seen */
	int			ntips;
	Anchor	   *anchors;		/* sorted by seq */
	int			nanchors;
	HTAB	   *links;
	List	   *deferred;		/* seqs whose parents were not in the ring */
	MemoryContext rowcxt;
	MemoryContext cxt;			/* for what outlives a row */
} VerifyState;

static void
verify_bad(VerifyState *st, int64 seq)
{
	if (st->first_bad < 0 || seq < st->first_bad)
		st->first_bad = seq;
}

/*
 * Has seq been seen before in this scan?  Seqs are unique: a repeated one is
 * a row forged beside another (no index of the partitioned log enforces it
 * across partitions).
 */
static bool
verify_seq_repeated(VerifyState *st, int64 seq)
{
	int64		block;
	SeqBitsEntry *e;
	uint64		bit;
	int			word;

	if (st->first_seq < 0)
		st->first_seq = seq;
	if (st->seq_order)
	{
		bool		repeated = (seq <= st->prev_seq);

		st->prev_seq = seq;
		return repeated;
	}
	if (seq > st->prev_seq)
		st->prev_seq = seq;

	block = seq >> SEQ_BITS_SHIFT;
	e = st->seq_bits_last;
	if (e == NULL || e->block != block)
	{
		bool		found;

		e = hash_search(st->seq_bits, &block, HASH_ENTER, &found);
		if (!found)
			memset(e->bits, 0, sizeof(e->bits));
		st->seq_bits_last = e;
	}
	word = (int) ((seq >> 6) & (SEQ_BITS_WORDS - 1));
	bit = UINT64CONST(1) << (seq & 63);
	if (e->bits[word] & bit)
		return true;
	e->bits[word] |= bit;
	return false;
}

/*
 * Does a row's stored hash match its content?  false with *deferred when a
 * parent is not in the ring and may_query is false.
 */
static bool
verify_row_hash(VerifyState *st, int64 seq, Datum *vals, bool *nulls,
				const int64 *parents, int nparents, bool may_query,
				bool *deferred)
{
	uint8		parent_buf[4 * AUDIT_HASH_LEN];
	uint8	   *parent_hashes;
	uint8		computed[AUDIT_HASH_LEN];
	uint8		statement_digest[AUDIT_HASH_LEN];
	bytea	   *stored = DatumGetByteaPP(vals[9]);
	bool		req_null = nulls[5];
	int64		request_id = req_null ? 0 : DatumGetInt64(vals[5]);

	*deferred = false;
	if (VARSIZE_ANY_EXHDR(stored) != AUDIT_HASH_LEN)
		return false;
	parent_hashes = nparents <= 4 ? parent_buf :
		palloc(AUDIT_HASH_LEN * nparents);
	for (int j = 0; j < nparents; j++)
	{
		/* every parent must exist, with the hash it had */
		if (parents[j] >= seq || (j > 0 && parents[j] <= parents[j - 1]))
			return false;
		if (!parent_hash(st->ring, parents[j], parent_hashes + j * AUDIT_HASH_LEN,
						 may_query, st->archive))
		{
			*deferred = !may_query;
			return false;
		}
	}

	if (!nulls[10] && DatumGetBool(vals[10]))
	{
		/* a row written before 1.3: format v1, over the detail's text */
		Jsonb	   *detail;

		if (nulls[2] || nulls[7])
			return false;
		detail = DatumGetJsonbP(vals[7]);
		audit_row_hash_v1(parents, parent_hashes, nparents, seq,
						   DatumGetTimestampTz(vals[1]),
						   TextDatumGetCString(vals[2]),
						   TextDatumGetCString(vals[3]),
						   TextDatumGetCString(vals[4]),
						   !req_null, request_id,
						   nulls[6] ? NULL : TextDatumGetCString(vals[6]),
						  JsonbToCString(NULL, &detail->root, VARSIZE(detail)),
						  computed);
	}
	else
	{
		/* format v2: binary values as they are stored */
		AuditContent content = {0};
		AuditStr	actor = datum_str(vals[3], nulls[3]);

		if (!nulls[7])
			content.detail = datum_str(vals[7], false);
		else if (st->archive != NULL)
		{
			/* an archive carries the statement in the row itself */
			StatementParts parts;

			if (nulls[11] || nulls[19] || nulls[20] || nulls[21])
				return false;
			statement_parts(vals + 22, nulls + 22, &parts);
			audit_statement_digest(datum_str(vals[19], false),
								   datum_str(vals[20], false),
								   datum_str(vals[21], false), &parts,
								   statement_digest);
			content.statement = statement_digest;
		}
		else
		{
			StatementEntry *se = NULL;

			if (!nulls[11])
			{
				int64		id = DatumGetInt64(vals[11]);

				se = hash_search(st->statements, &id, HASH_FIND, NULL);
			}
			if (se == NULL)
				return false;
			content.statement = se->digest;
		}
		if (nulls[7])
		{
			content.pid = nulls[12] ? 0 : DatumGetInt32(vals[12]);
			content.statements = nulls[13] ? 1 : DatumGetInt32(vals[13]);
			content.last_at_usec = nulls[14] ? -1 : DatumGetInt64(vals[14]);
			content.query_length = nulls[15] ? -1 : DatumGetInt64(vals[15]);
			content.query_sha256 = datum_str(vals[16], nulls[16]);
			content.reason = datum_str(vals[17], nulls[17]);
			content.node = datum_str(vals[18], nulls[18]);
		}
		audit_row_hash_v2(parents, parent_hashes, nparents, seq,
						  DatumGetTimestampTz(vals[1]),
						  nulls[2] ? actor : datum_str(vals[2], false),
						  actor, datum_str(vals[4], nulls[4]),
						  !req_null, request_id,
						  datum_str(vals[6], nulls[6]), &content, computed);
	}
	return memcmp(VARDATA_ANY(stored), computed, AUDIT_HASH_LEN) == 0;
}

/* The parents a row names (seq - 1 where stored as NULL); false if malformed. */
static bool
row_parents(Datum *vals, bool *nulls, int64 seq, int64 *implicit,
			const int64 **parents, int *nparents)
{
	ArrayType  *arr;

	if (nulls[8])
	{
		*implicit = seq - 1;
		*parents = implicit;
		*nparents = 1;
		return true;
	}
	arr = DatumGetArrayTypeP(vals[8]);
	*parents = NULL;
	*nparents = 0;
	if (ARR_NDIM(arr) > 1 || ARR_HASNULL(arr) || ARR_ELEMTYPE(arr) != INT8OID)
		return false;
	*nparents = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	*parents = *nparents > 0 ? (int64 *) ARR_DATA_PTR(arr) : NULL;
	return true;
}

/* One row of the scan, in any order. */
static void
verify_one(VerifyState *st, Datum *vals, bool *nulls)
{
	int64		seq = DatumGetInt64(vals[0]);
	bytea	   *stored = DatumGetByteaPP(vals[9]);
	bool		stored_ok = (VARSIZE_ANY_EXHDR(stored) == AUDIT_HASH_LEN);
	int64		implicit;
	const int64 *parents;
	int			nparents;
	bool		deferred = false;
	Anchor		key;
	Anchor	   *anchor;

	if (st->stop)
		return;
	st->checked++;
	if (verify_seq_repeated(st, seq))
		verify_bad(st, seq);
	if (st->digest_ctx != NULL &&
		pg_cryptohash_update(st->digest_ctx, (const uint8 *) VARDATA_ANY(stored),
							 VARSIZE_ANY_EXHDR(stored)) < 0)
		elog(ERROR, "could not update sha256: %s",
			 pg_cryptohash_error(st->digest_ctx));
	if (st->since_hash != NULL && !st->since_seen)
	{
		/*
		 * The trusted anchor, the first row (read in seq order from it): the
		 * same hash, nothing to recompute.  Without it nothing after it can
		 * be trusted: the check stops there.
		 */
		st->since_seen = true;
		if (seq != st->since_seq || !stored_ok ||
			memcmp(VARDATA_ANY(stored), st->since_hash, AUDIT_HASH_LEN) != 0)
		{
			verify_bad(st, st->since_seq);
			st->stop = true;
		}
		else
		{
			st->ring[seq % VERIFY_RING].seq = seq;
			memcpy(st->ring[seq % VERIFY_RING].hash, st->since_hash, AUDIT_HASH_LEN);
		}
		return;
	}

	if (stored_ok)
	{
		/* its children check it against what is stored */
		st->ring[seq % VERIFY_RING].seq = seq;
		memcpy(st->ring[seq % VERIFY_RING].hash, VARDATA_ANY(stored), AUDIT_HASH_LEN);
	}
	if (!row_parents(vals, nulls, seq, &implicit, &parents, &nparents))
		verify_bad(st, seq);
	else if (!verify_row_hash(st, seq, vals, nulls, parents, nparents, false,
							  &deferred))
	{
		if (deferred)
		{
			MemoryContext old = MemoryContextSwitchTo(st->cxt);

			st->deferred = lappend(st->deferred, palloc_object(int64));
			*(int64 *) llast(st->deferred) = seq;
			MemoryContextSwitchTo(old);
		}
		else
			verify_bad(st, seq);
	}

	/* anchors at this row: the same hash, and its links kept */
	key.seq = seq;
	anchor = st->nanchors > 0 ?
		bsearch(&key, st->anchors, st->nanchors, sizeof(Anchor), cmp_anchor) : NULL;
	if (anchor != NULL)
	{
		/* (bsearch finds any of equal ones: look at them all) */
		while (anchor > st->anchors && (anchor - 1)->seq == seq)
			anchor--;
		for (; anchor < st->anchors + st->nanchors && anchor->seq == seq; anchor++)
		{
			anchor->seen = true;
			if (!stored_ok ||
				memcmp(VARDATA_ANY(stored), anchor->hash, AUDIT_HASH_LEN) != 0)
				anchor->bad = true;
		}
	}
	if (st->links != NULL && seq >= st->anchors[0].seq)
	{
		LinkEntry  *e = hash_search(st->links, &seq, HASH_ENTER, NULL);

		e->nparents = nparents;
		e->parents = MemoryContextAlloc(st->cxt, sizeof(int64) * Max(1, nparents));
		memcpy(e->parents, parents, sizeof(int64) * nparents);
		e->reached = false;
	}

	/* a tip held in memory is still there, with the same hash */
	for (int j = 0; j < st->ntips; j++)
	{
		if (st->tips[j].seq == seq)
		{
			if (!stored_ok ||
				memcmp(VARDATA_ANY(stored), st->tips[j].hash, AUDIT_HASH_LEN) != 0)
				verify_bad(st, seq);
			st->tips[j].seq = -1;	/* seen */
		}
	}
}

static bool
verify_receive(TupleTableSlot *slot, DestReceiver *self)
{
	VerifyState *st = (VerifyState *) self;
	MemoryContext old;

	slot_getallattrs(slot);
	old = MemoryContextSwitchTo(st->rowcxt);
	verify_one(st, slot->tts_values, slot->tts_isnull);
	MemoryContextSwitchTo(old);
	MemoryContextReset(st->rowcxt);
	return true;
}

static void
verify_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	VerifyState *st = (VerifyState *) self;

	if (typeinfo->natts != (st->archive != NULL ? VERIFY_ARCHIVE_NCOLUMNS :
							VERIFY_NCOLUMNS))
		elog(ERROR, "unexpected lockbox audit columns");
}

static void
verify_shutdown(DestReceiver *self)
{
}

static void
verify_destroy(DestReceiver *self)
{
}

/* The rows whose parents were not in the ring, read again one by one. */
static void
verify_deferred(VerifyState *st)
{
	static SPIPlanPtr live_plan = NULL;
	SPIPlanPtr	archive_plan = NULL;
	ListCell   *lc;
	Oid			argtypes[1] = {INT8OID};

	if (st->deferred != NIL && st->archive != NULL)
	{
		archive_plan = SPI_prepare(psprintf("SELECT %s FROM %s a"
											" WHERE a.seq OPERATOR(pg_catalog.=) $1",
											archive_columns(st->archive),
											st->archive->relname),
								   1, argtypes);
		if (archive_plan == NULL)
			elog(ERROR, "could not prepare reading %s: %s",
				 st->archive->relname, SPI_result_code_string(SPI_result));
	}

	foreach(lc, st->deferred)
	{
		int64		seq = *(int64 *) lfirst(lc);
		Datum		args[1] = {Int64GetDatum(seq)};
		Datum		vals[VERIFY_ARCHIVE_NCOLUMNS];
		bool		nulls[VERIFY_ARCHIVE_NCOLUMNS];
		int64		implicit;
		const int64 *parents;
		int			nparents;
		bool		deferred;
		SPITupleTable *tt;

		if (archive_plan != NULL)
		{
			if (SPI_execute_plan(archive_plan, args, NULL, true, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not read %s", st->archive->relname);
		}
		else
			lockbox_exec(&live_plan,
						 "SELECT " VERIFY_COLUMNS " FROM lockbox.audit_log a"
						 " WHERE a.seq OPERATOR(pg_catalog.=) $1",
						 1, argtypes, args, NULL, 1);
		if (SPI_processed != 1)
		{
			verify_bad(st, seq);
			continue;
		}
		tt = SPI_tuptable;
		heap_deform_tuple(tt->vals[0], tt->tupdesc, vals, nulls);
		if (!row_parents(vals, nulls, seq, &implicit, &parents, &nparents) ||
			!verify_row_hash(st, seq, vals, nulls, parents, nparents, true,
							 &deferred))
			verify_bad(st, seq);
		SPI_freetuptable(tt);
	}
}

static Datum
verify_audit(FunctionCallInfo fcinfo, Jsonb *anchors_arg, int64 since_seq,
			 const uint8 *since_hash, ArchiveSource *archive)
{
	/*
	 * One pass over the table in its physical order, the rows handed to
	 * verify_receive as the executor reads them (no copy, no text
	 * conversion but a v1 row's detail), one sha256 context for every row.
	 */
	static const char *sql_all =
		"SELECT " VERIFY_COLUMNS " FROM lockbox.audit_log a"
		" WHERE $1 OPERATOR(pg_catalog.=) 0";
	/* from an anchor on: the index, in seq order */
	static const char *sql_since =
		"SELECT " VERIFY_COLUMNS " FROM lockbox.audit_log a"
		" WHERE a.seq OPERATOR(pg_catalog.>=) $1 ORDER BY a.seq";
	static SPIPlanPtr verify_plans[2] = {NULL, NULL};
	Oid			argtypes[1] = {INT8OID};
	LockboxCall call;
	TupleDesc	tupdesc;
	Datum		result[3];
	bool		result_nulls[3] = {false, false, false};
	AuditTip   *heads = NULL;
	int			nheads = 0;
	VerifyState st;
	SPIExecuteOptions options;
	ParamListInfo params;
	SPIPlanPtr	plan;
	int			ret;
	uint8		digest[AUDIT_HASH_LEN];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	/* (lockbox_verify_audit_archive has entered already) */
	if (archive == NULL)
		lockbox_enter_read(&call);
	memset(&st, 0, sizeof(st));
	st.pub.receiveSlot = verify_receive;
	st.pub.rStartup = verify_startup;
	st.pub.rShutdown = verify_shutdown;
	st.pub.rDestroy = verify_destroy;
	st.pub.mydest = DestNone;
	st.since_seq = since_seq;
	st.since_hash = since_hash;
	st.first_bad = -1;
	st.first_seq = -1;
	st.cxt = CurrentMemoryContext;
	st.archive = archive;
	/* an archive is read in seq order, as its digest covers it */
	st.seq_order = (since_hash != NULL || archive != NULL);
	if (!st.seq_order)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(SeqBitsEntry);
		ctl.hcxt = CurrentMemoryContext;
		st.seq_bits = hash_create("lockbox audit seqs", 64, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (anchors_arg != NULL)
	{
		HASHCTL		ctl;

		st.anchors = parse_anchors(anchors_arg, &st.nanchors);
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(LinkEntry);
		ctl.hcxt = CurrentMemoryContext;
		if (st.nanchors > 0)
			st.links = hash_create("lockbox audit links", 1024, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	/* the tips this server holds in memory must all still be there */
	LWLockAcquire(audit_shared->lock, LW_SHARED);
	if (archive == NULL)
	{
		AuditDbSlot *slot = find_slot(false);

		if (slot != NULL && slot->loaded && slot->audit_relid == audit_relid())
		{
			st.ntips = slot->ntips;
			st.tips = palloc(sizeof(AuditTip) * Max(1, st.ntips));
			memcpy(st.tips, slot->tips, sizeof(AuditTip) * st.ntips);
		}
	}
	LWLockRelease(audit_shared->lock);
	if (st.nanchors > 0)
		archived_anchors(st.anchors, st.nanchors, st.links);

	/* the heads the anchors must lead to, read before the rows */
	if (st.nanchors > 0)
		heads = current_tips(&nheads);

	st.ring = palloc0(sizeof(RingEntry) * VERIFY_RING);
	st.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "lockbox verify",
									  ALLOCSET_DEFAULT_SIZES);
	if (archive != NULL)
	{
		/* an archive's digest: sha256 of its rows' hashes in seq order */
		st.digest_ctx = pg_cryptohash_create(PG_SHA256);
		if (st.digest_ctx == NULL || pg_cryptohash_init(st.digest_ctx) < 0)
			elog(ERROR, "could not initialize sha256");
	}

	/*
	 * Read with a snapshot taken after the tips, whatever the isolation
	 * level, so that every tip is committed in it; the statements with a
	 * later one, so that every statement a row names is there.
	 */
	if (archive != NULL)
		plan = archive_rows_plan(archive);
	else if (since_hash == NULL)
		plan = lockbox_prepare(&verify_plans[0], sql_all, 1, argtypes);
	else
		plan = lockbox_prepare(&verify_plans[1], sql_since, 1, argtypes);
	if (archive == NULL)
	{
		PushActiveSnapshot(GetLatestSnapshot());
		st.statements = statement_digests();
		PopActiveSnapshot();
	}
	params = makeParamList(1);
	params->params[0].value = Int64GetDatum(since_seq);
	params->params[0].isnull = false;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].ptype = INT8OID;
	memset(&options, 0, sizeof(options));
	options.params = params;
	options.read_only = true;
	options.dest = &st.pub;
	PushActiveSnapshot(GetLatestSnapshot());
	ret = SPI_execute_plan_extended(plan, &options);
	PopActiveSnapshot();
	/* (a SELECT to another receiver than SPI's reports SPI_OK_UTILITY) */
	if (ret != SPI_OK_SELECT && ret != SPI_OK_UTILITY)
		elog(ERROR, "could not read %s: %s",
			 archive != NULL ? archive->relname : "lockbox.audit_log",
			 SPI_result_code_string(ret));
	if (!st.stop)
		verify_deferred(&st);
	if (st.digest_ctx != NULL)
	{
		if (pg_cryptohash_final(st.digest_ctx, digest, AUDIT_HASH_LEN) < 0)
			elog(ERROR, "could not finish sha256: %s",
				 pg_cryptohash_error(st.digest_ctx));
		pg_cryptohash_free(st.digest_ctx);
		st.digest_ctx = NULL;
		archive_check_totals(archive, st.checked, st.first_seq, st.prev_seq,
							 digest, &st.first_bad);
	}

	/* the anchor verified from is gone */
	if (since_hash != NULL && !st.since_seen)
		verify_bad(&st, since_seq);

	/*
	 * A tip that is gone means the newest rows were deleted (tips before the
	 * anchor verified from are not looked at).
	 */
	for (int j = 0; j < st.ntips; j++)
	{
		uint8		kept[AUDIT_HASH_LEN];

		/* a head archived since is kept among the anchors, with its hash */
		if (st.tips[j].seq >= 0 && archived_parent_hash(st.tips[j].seq, kept) &&
			memcmp(kept, st.tips[j].hash, AUDIT_HASH_LEN) == 0)
			continue;
		if (st.tips[j].seq >= 0 && st.tips[j].seq >= since_seq)
			verify_bad(&st, st.tips[j].seq);
	}

	/*
	 * Every anchor must be an ancestor of (or one of) the current heads: a
	 * rewrite that forks the log after an anchor leaves it behind.
	 */
	if (st.nanchors > 0)
	{
		List	   *todo = NIL;

		for (int j = 0; j < nheads; j++)
		{
			LinkEntry  *e = hash_search(st.links, &heads[j].seq, HASH_FIND, NULL);

			if (e != NULL && !e->reached)
			{
				e->reached = true;
				todo = lappend(todo, e);
			}
		}
		while (todo != NIL)
		{
			LinkEntry  *e = (LinkEntry *) linitial(todo);

			todo = list_delete_first(todo);
			for (int k = 0; k < e->nparents; k++)
			{
				LinkEntry  *p = hash_search(st.links, &e->parents[k], HASH_FIND, NULL);

				if (p != NULL && !p->reached)
				{
					p->reached = true;
					todo = lappend(todo, p);
				}
			}
		}
		for (int j = 0; j < st.nanchors; j++)
		{
			LinkEntry  *e = hash_search(st.links, &st.anchors[j].seq, HASH_FIND, NULL);

			if (!st.anchors[j].seen || st.anchors[j].bad || e == NULL || !e->reached)
				verify_bad(&st, st.anchors[j].seq);
		}
	}

	if (archive != NULL)
	{
		/* lockbox_verify_audit_archive forms the result once it has left */
		archive->ok = (st.first_bad < 0);
		archive->checked = st.checked;
		archive->first_bad = st.first_bad;
		archive->first_seq = st.first_seq;
		archive->last_seq = st.prev_seq;
		memcpy(archive->digest, digest, AUDIT_HASH_LEN);
		return (Datum) 0;
	}

	lockbox_leave(&call);

	result[0] = BoolGetDatum(st.first_bad < 0);
	result[1] = Int64GetDatum(st.checked);
	result[2] = Int64GetDatum(st.first_bad);
	result_nulls[2] = (st.first_bad < 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, result, result_nulls)));
}

/* ---------------------------------------------------------------------
 * Retention: partitions, archives and their anchors
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(lockbox_audit_move_default);
PG_FUNCTION_INFO_V1(lockbox_archive_audit);
PG_FUNCTION_INFO_V1(lockbox_verify_audit_archive);

/* the hash kept in lockbox.audit_anchor for archived row seq; false if none */
static bool
archived_parent_hash(int64 seq, uint8 *hash)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(seq);
	lockbox_exec(&plan,
				 "SELECT hash FROM lockbox.audit_anchor"
				 " WHERE seq OPERATOR(pg_catalog.=) $1",
				 1, argtypes, values, NULL, 1);
	return spi_result_hash(hash);
}

/*
 * Anchors kept outside the database that name archived rows: found among
 * lockbox.audit_anchor (with the same hash) they count as seen, and as rows
 * that link nothing, reached when a remaining row that links them is.
 */
static void
archived_anchors(Anchor *anchors, int nanchors, HTAB *links)
{
	for (int j = 0; j < nanchors; j++)
	{
		uint8		kept[AUDIT_HASH_LEN];
		LinkEntry  *e;
		bool		found;

		if (!archived_parent_hash(anchors[j].seq, kept))
			continue;
		anchors[j].seen = true;
		if (memcmp(kept, anchors[j].hash, AUDIT_HASH_LEN) != 0)
			anchors[j].bad = true;
		e = hash_search(links, &anchors[j].seq, HASH_ENTER, &found);
		if (!found)
		{
			e->nparents = 0;
			e->parents = NULL;
			e->reached = false;
		}
	}
}

/* the stored hash of row seq of an archive, or of a parent it carries */
static bool
archive_parent_hash(ArchiveSource *archive, int64 seq, uint8 *hash)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	if (archive->lookup == NULL)
	{
		archive->lookup = SPI_prepare(psprintf("SELECT hash FROM %s"
											   " WHERE seq OPERATOR(pg_catalog.=) $1",
											   archive->relname),
									  1, argtypes);
		if (archive->lookup == NULL)
			elog(ERROR, "could not prepare a lookup in %s: %s", archive->relname,
				 SPI_result_code_string(SPI_result));
	}
	values[0] = Int64GetDatum(seq);
	if (SPI_execute_plan(archive->lookup, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read %s", archive->relname);
	if (SPI_processed == 1)
		return spi_result_hash(hash);
	SPI_freetuptable(SPI_tuptable);
	for (int i = 0; i < archive->nanchors; i++)
	{
		if (archive->anchors[i].seq == seq)
		{
			memcpy(hash, archive->anchors[i].hash, AUDIT_HASH_LEN);
			return true;
		}
	}
	return false;
}

/* verify_audit's query of an archive: its rows in seq order */
static SPIPlanPtr
archive_rows_plan(ArchiveSource *archive)
{
	Oid			argtypes[1] = {INT8OID};
	SPIPlanPtr	plan;

	plan = SPI_prepare(psprintf("SELECT %s FROM %s a"
								" WHERE $1 OPERATOR(pg_catalog.=) 0"
								" ORDER BY a.seq", archive_columns(archive),
								archive->relname),
					   1, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare reading %s: %s", archive->relname,
			 SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * What the archive's comment recorded must still hold: its number of rows,
 * its first and last seq, its digest.  A row removed from an archive (which
 * no other row of it links when it was the last) is caught here; first_bad
 * names the seq where they part, else the recorded last seq.
 */
static void
archive_check_totals(ArchiveSource *archive, int64 checked, int64 first_seq,
					 int64 last_seq, const uint8 *digest, int64 *first_bad)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(archive->meta)};
	HeapTuple	tup;
	TupleDesc	td;
	bool		n1,
				n2,
				n3;
	int64		rows,
				rec_first,
				rec_last;
	char	   *rec_digest;
	char		hex[AUDIT_HASH_LEN * 2 + 1];
	bool		same;

	lockbox_exec(&plan,
				 "SELECT (m OPERATOR(pg_catalog.->>) 'rows')::pg_catalog.int8,"
				 "       (m OPERATOR(pg_catalog.->>) 'first_seq')::pg_catalog.int8,"
				 "       (m OPERATOR(pg_catalog.->>) 'last_seq')::pg_catalog.int8,"
				 "       m OPERATOR(pg_catalog.->>) 'digest'"
				 "  FROM (SELECT $1 AS m) x",
				 1, argtypes, values, NULL, 1);
	tup = SPI_tuptable->vals[0];
	td = SPI_tuptable->tupdesc;
	rows = DatumGetInt64(SPI_getbinval(tup, td, 1, &n1));
	rec_first = DatumGetInt64(SPI_getbinval(tup, td, 2, &n2));
	rec_last = DatumGetInt64(SPI_getbinval(tup, td, 3, &n3));
	rec_digest = SPI_getvalue(tup, td, 4);
	hex_encode((const char *) digest, AUDIT_HASH_LEN, hex);
	hex[AUDIT_HASH_LEN * 2] = '\0';
	same = !n1 && !n2 && !n3 && rec_digest != NULL &&
		rows == checked && rec_first == first_seq && rec_last == last_seq &&
		pg_strcasecmp(rec_digest, hex) == 0;
	if (!same)
	{
		int64		at = (!n2 && first_seq != rec_first) ? rec_first :
			(!n3 ? rec_last : last_seq);

		if (*first_bad < 0 || at < *first_bad)
			*first_bad = at;
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * The audit_archived rows of the live log that name the archive, or whose
 * seqs overlap those of its rows (an archive renamed, or its rows
 * renumbered): each must record the archive's rows, seqs and digest as
 * verified.  The comment alone does not do: whoever owns the archive may
 * rewrite its rows, their hashes and the comment together, but not the live
 * log.  An archive restored where the live log has no such row (another
 * database) is checked against its comment only.
 */
static void
archive_check_recorded(ArchiveSource *archive)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {TEXTOID, INT8OID, INT8OID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	char		hex[AUDIT_HASH_LEN * 2 + 1];

	values[0] = CStringGetTextDatum(archive->relname);
	values[1] = Int64GetDatum(archive->first_seq);
	values[2] = Int64GetDatum(archive->last_seq);
	if (archive->checked == 0)
		nulls[1] = nulls[2] = 'n';
	lockbox_exec(&plan,
				 "SELECT (a.detail OPERATOR(pg_catalog.->>) 'rows')::pg_catalog.int8,"
				 "       (a.detail OPERATOR(pg_catalog.->>) 'first_seq')::pg_catalog.int8,"
				 "       (a.detail OPERATOR(pg_catalog.->>) 'last_seq')::pg_catalog.int8,"
				 "       a.detail OPERATOR(pg_catalog.->>) 'digest'"
				 "  FROM lockbox.audit_log a"
				 " WHERE a.event OPERATOR(pg_catalog.=) 'audit_archived'"
				 "   AND a.detail OPERATOR(pg_catalog.->>) 'archive' IS NOT NULL"
				 "   AND (a.detail OPERATOR(pg_catalog.->>) 'archive' OPERATOR(pg_catalog.=) $1"
				 "        OR ((a.detail OPERATOR(pg_catalog.->>) 'first_seq')::pg_catalog.int8 OPERATOR(pg_catalog.<=) $3"
				 "            AND (a.detail OPERATOR(pg_catalog.->>) 'last_seq')::pg_catalog.int8 OPERATOR(pg_catalog.>=) $2))"
				 " ORDER BY a.seq",
				 3, argtypes, values, nulls, 0);
	hex_encode((const char *) archive->digest, AUDIT_HASH_LEN, hex);
	hex[AUDIT_HASH_LEN * 2] = '\0';
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		n1,
					n2,
					n3;
		int64		rows = DatumGetInt64(SPI_getbinval(tup, td, 1, &n1));
		int64		rec_first = DatumGetInt64(SPI_getbinval(tup, td, 2, &n2));
		int64		rec_last = DatumGetInt64(SPI_getbinval(tup, td, 3, &n3));
		char	   *rec_digest = SPI_getvalue(tup, td, 4);
		int64		at;

		if (!n1 && !n2 && !n3 && rec_digest != NULL && archive->checked > 0 &&
			rows == archive->checked && rec_first == archive->first_seq &&
			rec_last == archive->last_seq && pg_strcasecmp(rec_digest, hex) == 0)
			continue;
		/* where they part: the first seq, else the last, as recorded */
		if (!n2 && (archive->checked == 0 || rec_first != archive->first_seq))
			at = (archive->checked > 0) ? Min(rec_first, archive->first_seq) : rec_first;
		else if (!n3)
			at = rec_last;
		else
			at = archive->last_seq;
		archive->ok = false;
		if (archive->first_bad < 0 || at < archive->first_bad)
			archive->first_bad = at;
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * lockbox_verify_audit_archive(archive regclass): an archive of the audit
 * log, a table of schema lockbox_archive as lockbox_archive_audit() made it,
 * here or restored elsewhere.  Every row's hash and links are checked as
 * lockbox_verify_audit() checks the live log; a parent outside the archive
 * against the anchors its comment carries; and the rows, seqs and digest
 * against those its comment recorded.
 */
Datum
lockbox_verify_audit_archive(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr meta_plan = NULL;
	static SPIPlanPtr anchors_plan = NULL;
	LockboxCall call;
	ArchiveSource archive;
	Oid			relid;
	Oid			nsp;
	TupleDesc	tupdesc;
	char	   *comment;
	Oid			argtypes[2] = {OIDOID, JSONBOID};
	Datum		values[2];
	Datum		result[6];
	bool		nulls[6] = {false, false, false, false, false, false};
	char		hex[AUDIT_HASH_LEN * 2 + 1];

	lockbox_require_arg(fcinfo, 0, "archive");
	relid = PG_GETARG_OID(0);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	lockbox_enter_read(&call);
	memset(&archive, 0, sizeof(archive));
	nsp = get_namespace_oid("lockbox_archive", true);
	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (get_rel_relkind(relid) != RELKIND_RELATION ||
		!OidIsValid(nsp) || get_rel_namespace(relid) != nsp)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation \"%s\" is no lockbox audit archive",
						quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   get_rel_name(relid))),
				 errdetail("Archives are the tables of schema lockbox_archive that lockbox_archive_audit() made.")));
	archive.relid = relid;
	archive.relname = quote_qualified_identifier("lockbox_archive",
												 get_rel_name(relid));

	values[0] = ObjectIdGetDatum(relid);
	lockbox_exec(&meta_plan,
				 "SELECT pg_catalog.obj_description($1, 'pg_class')",
				 1, argtypes, values, NULL, 1);
	comment = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (comment == NULL || strstr(comment, "\"lockbox_archive\"") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table \"%s\" is no lockbox audit archive", archive.relname),
				 errdetail("An archive's comment records its range, seqs, rows, digest and anchors, as lockbox_archive_audit() wrote it.")));
	archive.meta = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													  CStringGetDatum(comment)));

	/* the parents its rows link outside it, as it carries them */
	values[1] = JsonbPGetDatum(archive.meta);
	lockbox_exec(&anchors_plan,
				 "SELECT (e OPERATOR(pg_catalog.->>) 'seq')::pg_catalog.int8,"
				 "       pg_catalog.decode(e OPERATOR(pg_catalog.->>) 'hash', 'hex')"
				 "  FROM pg_catalog.jsonb_array_elements($2 OPERATOR(pg_catalog.->) 'anchors') e"
				 " WHERE $1 IS NOT NULL",
				 2, argtypes, values, NULL, 0);
	archive.nanchors = (int) SPI_processed;
	archive.anchors = palloc0(sizeof(AuditTip) * Max(1, SPI_processed));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bytea	   *h;

		archive.anchors[i].seq = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc, 1, &isnull));
		h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i],
										  SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull || VARSIZE_ANY_EXHDR(h) != AUDIT_HASH_LEN)
			archive.anchors[i].seq = -1;	/* malformed: links it fail */
		else
			memcpy(archive.anchors[i].hash, VARDATA_ANY(h), AUDIT_HASH_LEN);
	}

	verify_audit(fcinfo, NULL, 0, NULL, &archive);
	archive_check_recorded(&archive);
	lockbox_leave(&call);

	hex_encode((const char *) archive.digest, AUDIT_HASH_LEN, hex);
	hex[AUDIT_HASH_LEN * 2] = '\0';
	result[0] = BoolGetDatum(archive.ok);
	result[1] = Int64GetDatum(archive.checked);
	result[2] = Int64GetDatum(archive.first_bad);
	nulls[2] = archive.ok;
	result[3] = Int64GetDatum(archive.first_seq);
	nulls[3] = (archive.checked == 0);
	result[4] = Int64GetDatum(archive.last_seq);
	nulls[4] = (archive.checked == 0);
	result[5] = CStringGetTextDatum(hex);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, result, nulls)));
}

/*
 * lockbox.audit_move_default(part, lo, hi): lockbox.audit_partitions moving
 * one month's rows out of lockbox.audit_log_default into that month's new
 * partition, before attaching it.  The only DELETE the append-only trigger
 * lets through, and only of the rows just copied.
 */
Datum
lockbox_audit_move_default(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr check_plan = NULL;
	Oid			argtypes[3] = {REGCLASSOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];
	Oid			part;
	Oid			def;
	char	   *partname;
	uint64		copied;
	uint64		deleted;
	bool		isnull;
	bool		fits;

	lockbox_require_arg(fcinfo, 0, "part");
	lockbox_require_arg(fcinfo, 1, "lo");
	lockbox_require_arg(fcinfo, 2, "hi");
	part = PG_GETARG_OID(0);
	values[0] = ObjectIdGetDatum(part);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* a new table of lockbox's, named for that whole month, not attached */
	lockbox_exec(&check_plan,
				 "SELECT c.relname OPERATOR(pg_catalog.=) ('audit_log_' OPERATOR(pg_catalog.||)"
				 "         pg_catalog.to_char($2 AT TIME ZONE 'UTC', 'YYYY_MM'))::pg_catalog.name"
				 "   AND $2 OPERATOR(pg_catalog.=) pg_catalog.date_trunc('month', $2, 'UTC')"
				 "   AND $3 OPERATOR(pg_catalog.=) (($2 AT TIME ZONE 'UTC') OPERATOR(pg_catalog.+)"
				 "                                  '1 mon'::pg_catalog.interval) AT TIME ZONE 'UTC'"
				 "   AND c.relnamespace OPERATOR(pg_catalog.=) 'lockbox'::pg_catalog.regnamespace"
				 "   AND c.relkind OPERATOR(pg_catalog.=) 'r' AND NOT c.relispartition"
				 "   AND c.relowner OPERATOR(pg_catalog.=) (SELECT p.relowner FROM pg_catalog.pg_class p"
				 "        WHERE p.oid OPERATOR(pg_catalog.=) 'lockbox.audit_log'::pg_catalog.regclass)"
				 "  FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
				 3, argtypes, values, NULL, 1);
	fits = SPI_processed == 1 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) &&
		!isnull;
	if (!fits)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation \"%s\" is no new partition of table \"lockbox.audit_log\" for that month",
						get_rel_name(part) ? quote_qualified_identifier(get_namespace_name(get_rel_namespace(part)),
																		get_rel_name(part)) : "?")));
	partname = quote_qualified_identifier("lockbox", get_rel_name(part));
	def = get_relname_relid("audit_log_default", get_namespace_oid("lockbox", false));

	if (SPI_execute_with_args(psprintf("INSERT INTO %s SELECT * FROM ONLY lockbox.audit_log_default d"
									   " WHERE d.at OPERATOR(pg_catalog.>=) $2"
									   "   AND d.at OPERATOR(pg_catalog.<) $3", partname),
							  3, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not copy rows into %s", partname);
	copied = SPI_processed;
	audit_moved_into = part;
	audit_move_relid = def;
	PG_TRY();
	{
		if (SPI_execute_with_args("DELETE FROM ONLY lockbox.audit_log_default d"
								  " WHERE d.at OPERATOR(pg_catalog.>=) $2"
								  "   AND d.at OPERATOR(pg_catalog.<) $3"
								  "   AND $1 IS NOT NULL",
								  3, argtypes, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not move rows out of lockbox.audit_log_default");
		deleted = SPI_processed;
	}
	PG_FINALLY();
	{
		audit_move_relid = InvalidOid;
	}
	PG_END_TRY();
	if (deleted != copied)
		elog(ERROR, "moved " UINT64_FORMAT " rows into %s but " UINT64_FORMAT " out of lockbox.audit_log_default",
			 copied, partname, deleted);
	SPI_finish();
	PG_RETURN_INT64((int64) copied);
}

/*
 * The worker's step: the monthly partitions of this month and the next two,
 * and of any month whose rows a clock put into the default partition.
 */
int
lockbox_audit_keep_partitions(TimestampTz now)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[2];
	bool		isnull;
	int			made;
	Oid			nsp;

	if (RecoveryInProgress())
		return 0;

	/*
	 * Creating a partition locks schema lockbox after the log; DROP SCHEMA
	 * locks the schema before its tables.  Take the schema first, or not at
	 * all (a DROP under way: next pass), so the two never deadlock.
	 */
	nsp = get_namespace_oid("lockbox", true);
	if (!OidIsValid(nsp) ||
		!ConditionalLockDatabaseObject(NamespaceRelationId, nsp, 0, AccessShareLock))
		return -2;
	values[0] = TimestampTzGetDatum(now);
	values[1] = TimestampTzGetDatum(now + (TimestampTz) 62 * USECS_PER_DAY);
	lockbox_exec(&plan, "SELECT lockbox.audit_partitions($1, $2)",
				 2, argtypes, values, NULL, 1);
	made = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return made;
}

/*
 * The worker's step after the partitions: statistics of lockbox.audit_log
 * itself.  Autovacuum analyzes the partitions, never the partitioned table,
 * and without statistics of the whole log the access log's plans for
 * reviewers and auditors fall back to hashing and sorting every row they
 * return (README "History and retention").  Analyzed when it has none, and
 * when a month's partition was made (about once a month).  Only the
 * partitioned table, as autovacuum would if it could: ANALYZE of it would
 * also analyze every partition, one sample each (autovacuum's work, taking
 * longer as months pile up), each waiting for its partition's lock, held
 * for as long as a manual VACUUM of the partition runs.  One sample of the
 * whole log takes about as long whatever its size.  Its own transaction:
 * the partitions' locks are not held meanwhile.  Like them, it never waits
 * for a lock (a manual ANALYZE or VACUUM, of the log or of a partition, an
 * ALTER TABLE, a VACUUM FULL): deadlines must not wait behind it.  Returns
 * 1 when it analyzed, 0 when there was nothing to do, -2 when a lock was
 * busy (the caller tries again later).
 */
int
lockbox_audit_analyze(bool made_partitions)
{
	Oid			relid;
	List	   *parts;
	ListCell   *lc;
	VacuumParams params;
	BufferAccessStrategy strategy;

	if (RecoveryInProgress())
		return 0;
	relid = audit_relid();
	if (!made_partitions &&
		SearchSysCacheExists3(STATRELATTINH, ObjectIdGetDatum(relid),
							  Int16GetDatum(1), BoolGetDatum(true)))
		return 0;

	/*
	 * Never waiting: the log as ANALYZE locks it, and each partition as its
	 * sample reads it (taken here first, so ANALYZE finds them held).  A
	 * busy log is analyzed next time.
	 */
	if (!ConditionalLockRelationOid(relid, ShareUpdateExclusiveLock))
		return -2;
	parts = find_all_inheritors(relid, NoLock, NULL);
	foreach(lc, parts)
	{
		if (lfirst_oid(lc) != relid &&
			!ConditionalLockRelationOid(lfirst_oid(lc), AccessShareLock))
			return -2;
	}

	memset(&params, 0, sizeof(params));
	params.options = VACOPT_ANALYZE;
	params.freeze_min_age = -1;
	params.freeze_table_age = -1;
	params.multixact_freeze_min_age = -1;
	params.multixact_freeze_table_age = -1;
	params.log_min_duration = -1;
	params.index_cleanup = VACOPTVALUE_UNSPECIFIED;
	params.truncate = VACOPTVALUE_UNSPECIFIED;
	strategy = GetAccessStrategy(BAS_VACUUM);
	analyze_rel(relid, NULL, &params, NIL, true, strategy);
	FreeAccessStrategy(strategy);
	return 1;
}

/*
 * The process IDs of the sessions holding locks on the audit log or its
 * partitions that its archive's ACCESS EXCLUSIVE lock waits for, for the
 * archive's error when it gave up ("a prepared transaction" for one that
 * is prepared; "none now" when they are gone meanwhile).  rels: the log and
 * its partitions, listed before the lock was tried (after its error, only
 * shared memory is read).
 */
static char *
audit_lock_holders(List *rels)
{
	StringInfoData buf;
	List	   *pids = NIL;
	bool		prepared = false;
	ListCell   *lc;

	foreach(lc, rels)
	{
		LOCKTAG		tag;
		VirtualTransactionId *vxids;
		int			n;

		SET_LOCKTAG_RELATION(tag, MyDatabaseId, lfirst_oid(lc));
		vxids = GetLockConflicts(&tag, AccessExclusiveLock, &n);
		for (int i = 0; i < n; i++)
		{
			PGPROC	   *proc = vxids[i].backendId == InvalidBackendId ? NULL :
				BackendIdGetProc(vxids[i].backendId);

			if (proc == NULL || proc->pid == 0)
				prepared = true;
			else
				pids = list_append_unique_int(pids, proc->pid);
		}
	}
	initStringInfo(&buf);
	foreach(lc, pids)
		appendStringInfo(&buf, "%s%d", buf.len > 0 ? ", " : "", lfirst_int(lc));
	if (prepared)
		appendStringInfo(&buf, "%sa prepared transaction", buf.len > 0 ? ", " : "");
	if (buf.len == 0)
		appendStringInfoString(&buf, "none now");
	return buf.data;
}

/*
 * lockbox_archive_audit(before timestamptz): the superuser or extension
 * owner archives every whole month (UTC) of the audit log that ends at or
 * before "before" (lockbox.audit_archive does the work), and each archive
 * is recorded by an audit_archived row.  The audit log is locked meanwhile:
 * writers of audit rows wait for it, and it waits for them.
 */
Datum
lockbox_archive_audit(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr parts_plan = NULL;
	static SPIPlanPtr archive_plan = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LockboxCall call;
	TimestampTz before;
	Oid			argtypes[2] = {TIMESTAMPTZOID, INT8ARRAYOID};
	Datum		values[2];
	AuditTip   *tips;
	int			ntips;
	Datum	   *tip_datums;
	SPITupleTable *archived;
	uint64		narchived;
	Oid			nsp;
	MemoryContext call_cxt;
	char	   *lock_timeout;
	List	   *log_rels;

	lockbox_require_writable(fcinfo);
	lockbox_require_arg(fcinfo, 0, "before");
	before = PG_GETARG_TIMESTAMPTZ(0);
	nsp = get_namespace_oid("lockbox", false);
	if (!superuser() && !pg_namespace_ownercheck(nsp, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to archive the lockbox audit"),
				 errdetail("Only a superuser or the owner of extension lockbox may archive the audit.")));
	if (before > GetCurrentStatementStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("before must not be in the future"),
				 errdetail("before is %s.", lockbox_iso_time(before)),
				 errhint("Archive only months that have ended.")));

	InitMaterializedSRF(fcinfo, 0);
	call_cxt = CurrentMemoryContext;
	lockbox_enter(&call);

	/*
	 * No audit row is written meanwhile, and none is being written.  The
	 * wait is bounded: while this lock is queued every writer of audit rows
	 * queues behind it, and a transaction left open after writing one (an
	 * engineer's lockbox_request, say) would hold back every lockbox step
	 * for as long as it stays open.  (The setting goes with lockbox_leave,
	 * or with the error.)
	 */
	lock_timeout = pstrdup(GetConfigOption("lock_timeout", false, false));
	if (LockTimeout <= 0 || LockTimeout > ARCHIVE_LOCK_WAIT_MS)
		(void) set_config_option("lock_timeout", CppAsString2(ARCHIVE_LOCK_WAIT_MS),
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	log_rels = find_all_inheritors(audit_relid(), NoLock, NULL);
	PG_TRY();
	{
		lockbox_exec(&lock_plan, "LOCK TABLE lockbox.audit_log IN ACCESS EXCLUSIVE MODE",
					 0, NULL, NULL, NULL, 0);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(call_cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("could not lock the lockbox audit log to archive it"),
				 errdetail("Sessions hold locks on it (process IDs %s): a transaction that wrote audit rows and is still open, a pg_dump, a VACUUM or ANALYZE of it, for instance. Waiting longer would hold back every lockbox step meanwhile.",
						   audit_lock_holders(log_rels)),
				 errhint("Look the sessions up in pg_stat_activity: end a transaction left idle in transaction, let a dump or a VACUUM finish, and archive again.")));
	}
	PG_END_TRY();
	(void) set_config_option("lock_timeout", lock_timeout, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	/* rows a clock put into the default partition go to their month first */
	values[0] = TimestampTzGetDatum(call.now);
	values[1] = TimestampTzGetDatum(call.now);
	lockbox_exec(&parts_plan, "SELECT lockbox.audit_partitions($1, $1)",
				 1, argtypes, values, NULL, 1);

	/* the heads: the next rows link them, so they stay anchored */
	tips = current_tips(&ntips);
	tip_datums = palloc(sizeof(Datum) * Max(1, ntips));
	for (int i = 0; i < ntips; i++)
		tip_datums[i] = Int64GetDatum(tips[i].seq);
	values[0] = TimestampTzGetDatum(before);
	values[1] = PointerGetDatum(construct_array(tip_datums, ntips, INT8OID,
												sizeof(int64), FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	audit_archiving = true;
	PG_TRY();
	{
		lockbox_exec(&archive_plan,
					 "SELECT archive, range_start, range_end, first_seq, last_seq,"
					 "       row_count, digest"
					 "  FROM lockbox.audit_archive($1, $2)",
					 2, argtypes, values, NULL, 0);
	}
	PG_FINALLY();
	{
		audit_archiving = false;
	}
	PG_END_TRY();
	archived = SPI_tuptable;
	narchived = SPI_processed;

	for (uint64 i = 0; i < narchived; i++)
	{
		HeapTuple	tup = archived->vals[i];
		TupleDesc	td = archived->tupdesc;
		Datum		out[7];
		bool		nulls[7];
		StringInfoData detail;
		char	   *archive_name;

		for (int c = 0; c < 7; c++)
			out[c] = SPI_getbinval(tup, td, c + 1, &nulls[c]);
		archive_name = nulls[0] ? NULL :
			quote_qualified_identifier("lockbox_archive",
									   get_rel_name(DatumGetObjectId(out[0])));
		initStringInfo(&detail);
		appendStringInfoChar(&detail, '{');
		lockbox_json_str(&detail, "archive", archive_name);
		lockbox_json_str(&detail, "range_start",
						 lockbox_iso_time(DatumGetTimestampTz(out[1])));
		lockbox_json_str(&detail, "range_end",
						 lockbox_iso_time(DatumGetTimestampTz(out[2])));
		lockbox_json_raw(&detail, "first_seq", nulls[3] ? NULL :
						 psprintf(INT64_FORMAT, DatumGetInt64(out[3])));
		lockbox_json_raw(&detail, "last_seq", nulls[4] ? NULL :
						 psprintf(INT64_FORMAT, DatumGetInt64(out[4])));
		lockbox_json_raw(&detail, "rows",
						 psprintf(INT64_FORMAT, DatumGetInt64(out[5])));
		lockbox_json_str(&detail, "digest", nulls[6] ? NULL :
						 TextDatumGetCString(out[6]));
		appendStringInfoChar(&detail, '}');
		lockbox_audit(&call, "audit_archived", 0, NULL, detail.data);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
	}
	lockbox_leave(&call);
	return (Datum) 0;
}
