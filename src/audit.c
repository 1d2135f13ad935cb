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

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "nodes/params.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/snapmgr.h"
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
	char	   *logline;		/* for the server log at commit, or NULL */
} PendingRow;

static List *pending_rows = NIL;

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

/* A statement's digest: sha256 over its relation, command and text. */
static void
audit_statement_digest(AuditStr relation, AuditStr command, AuditStr query,
					   uint8 *result)
{
	HashBuf		hb;

	hb_init(&hb);
	hb_bytes(&hb, "lockbox statement", 17);
	hb_str(&hb, relation);
	hb_str(&hb, command);
	hb_str(&hb, query);
	hb_final(&hb, result);
}

/* ---------------------------------------------------------------------
 * Tips
 * ---------------------------------------------------------------------
 */
static Oid
audit_relid(void)
{
	Oid			nsp = get_namespace_oid("lockbox", false);
	Oid			relid = get_relname_relid("audit_log", nsp);

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

				foreach(lc, pending_rows)
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
					(errmsg("LOCKBOX: %s", row->logline),
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
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			pending_rows = NIL;
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
				(errmsg("LOCKBOX: %s", line.data),
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

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * Append one audit row.  Must run between lockbox_enter and lockbox_leave.
 * detail_json is a JSON object text.
 */
const Oid	lockbox_audit_argtypes[LOCKBOX_AUDIT_NARGS] = {
	INT8OID, TIMESTAMPTZOID, NAMEOID, NAMEOID, TEXTOID, INT8OID, TEXTOID,
	JSONBOID, INT8ARRAYOID, BYTEAOID
};

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

			foreach(lc, pending_rows)
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
	qsort(parents, nparents, sizeof(int64), cmp_int64);
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
	row->logline = NULL;
	MemoryContextSwitchTo(oldcxt);

	row->seq = nextval_internal(get_relname_relid("audit_seq",
												  get_namespace_oid("lockbox", false)),
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

		initStringInfo(&line);
		appendStringInfoChar(&line, '{');
		lockbox_json_raw(&line, "seq", psprintf(INT64_FORMAT, row->seq));
		lockbox_json_str(&line, "at", lockbox_iso_time(call->now));
		lockbox_json_str(&line, "event", event);
		lockbox_json_str(&line, "actor", nr->actor);
		lockbox_json_str(&line, "session_user", nr->session_user_name);
		lockbox_json_raw(&line, "request_id",
						 request_id > 0 ? psprintf(INT64_FORMAT, request_id) : NULL);
		lockbox_json_str(&line, "tenant", tenant);
		lockbox_json_raw(&line, "detail", detail_text);
		hex_encode((char *) row->hash, AUDIT_HASH_LEN, hex);
		hex[AUDIT_HASH_LEN * 2] = '\0';
		lockbox_json_str(&line, "hash", hex);
		appendStringInfoChar(&line, '}');
		row->logline = MemoryContextStrdup(TopTransactionContext, line.data);
		pfree(line.data);
	}

	/* the caller inserts it in this (sub)transaction, or errors out of it */
	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	pending_rows = lappend(pending_rows, row);
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
		"WITH i AS (INSERT INTO lockbox.audit_statement (digest, relation, command, query)"
		"           VALUES ($10, $11, $12, $13) ON CONFLICT (digest) DO NOTHING RETURNING id),"
		"     s AS (SELECT i.id FROM i UNION ALL"
		"           (SELECT s.id FROM lockbox.audit_statement s"
		"             WHERE s.digest OPERATOR(pg_catalog.=) $10) LIMIT 1)"
		" INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor, event,"
		"        request_id, tenant, parents, hash, statement_id, pid, statements,"
		"        last_at_usec, reason, node, query_length, query_sha256)"
		" SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, s.id, $14, $15, $16, $17, $18,"
		"        $19, $20 FROM s";
	static Oid	argtypes[20] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID,
		INT8OID, TEXTOID, INT8ARRAYOID, BYTEAOID,
		/* $10 .. $13: the statement */
		BYTEAOID, TEXTOID, TEXTOID, TEXTOID,
	INT4OID, INT4OID, INT8OID, TEXTOID, TEXTOID, INT8OID, TEXTOID};

	if (lockbox_exec(&plan, sql, 20, argtypes, values, nulls, 0) != SPI_OK_INSERT)
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
	Datum		values[20];
	char		nulls[20];
	Datum	   *parent_datums;
	bytea	   *hash;
	bytea	   *digest_b;
	int64		statements = Max(a->statements, 1);
	char	   *detail_text = NULL;

	begin_row(call, &nr);

	audit_statement_digest(audit_cstr(a->relation), audit_cstr(a->command),
						   audit_cstr(a->query), digest);

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

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		what = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		what = "DELETE";
	else
		what = "TRUNCATE";

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
	return cmp_int64(&((const Anchor *) a)->seq, &((const Anchor *) b)->seq);
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
											 "SELECT id, relation, command, query"
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
			Datum		vals[4];
			bool		nulls[4];
			int64		id;
			StatementEntry *e;

			heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
							  vals, nulls);
			id = DatumGetInt64(vals[0]);
			e = hash_search(htab, &id, HASH_ENTER, NULL);
			audit_statement_digest(datum_str(vals[1], nulls[1]),
								   datum_str(vals[2], nulls[2]),
								   datum_str(vals[3], nulls[3]), e->digest);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	return htab;
}

static Datum verify_audit(FunctionCallInfo fcinfo, Jsonb *anchors_arg,
							int64 since_seq, const uint8 *since_hash);

/* lockbox_verify_audit(): every row's hash and links, and the tips */
Datum
lockbox_verify_audit(PG_FUNCTION_ARGS)
{
	return verify_audit(fcinfo, NULL, 0, NULL);
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
	return verify_audit(fcinfo, PG_GETARG_JSONB_P(0), 0, NULL);
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
	return verify_audit(fcinfo, NULL, since_seq, hash);
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

/* the stored hash of row seq, from the ring or the table; false if none */
static bool
parent_hash(RingEntry *ring, int64 seq, uint8 *hash, bool may_query)
{
	static SPIPlanPtr plan = NULL;
	RingEntry  *e = &ring[seq % VERIFY_RING];
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	bool		isnull;
	bool		found = false;
	bytea	   *h;

	if (e->seq == seq)
	{
		memcpy(hash, e->hash, AUDIT_HASH_LEN);
		return true;
	}
	if (!may_query)
		return false;
	values[0] = Int64GetDatum(seq);
	lockbox_exec(&plan,
				 "SELECT hash FROM lockbox.audit_log"
				 " WHERE seq OPERATOR(pg_catalog.=) $1",
				 1, argtypes, values, NULL, 1);
	if (SPI_processed == 1)
	{
		h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
		found = (!isnull && VARSIZE_ANY_EXHDR(h) == AUDIT_HASH_LEN);
		if (found)
			memcpy(hash, VARDATA_ANY(h), AUDIT_HASH_LEN);
	}
	SPI_freetuptable(SPI_tuptable);
	return found;
}

/* the columns verification reads, in this order */
#define VERIFY_COLUMNS \
	"a.seq, a.at, a.session_user_name, a.actor, a.event," \
	" a.request_id, a.tenant, a.detail, a.parents, a.hash," \
	" a.hash_v1, a.statement_id, a.pid, a.statements, a.last_at_usec," \
	" a.query_length, a.query_sha256, a.reason, a.node"
#define VERIFY_NCOLUMNS 19

typedef struct VerifyState
{
	DestReceiver pub;			/* rows come in as to a DestReceiver */
	RingEntry  *ring;
	HTAB	   *statements;
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
						 may_query))
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
	if (typeinfo->natts != VERIFY_NCOLUMNS)
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
	static SPIPlanPtr plan = NULL;
	ListCell   *lc;

	foreach(lc, st->deferred)
	{
		int64		seq = *(int64 *) lfirst(lc);
		Oid			argtypes[1] = {INT8OID};
		Datum		args[1] = {Int64GetDatum(seq)};
		Datum		vals[VERIFY_NCOLUMNS];
		bool		nulls[VERIFY_NCOLUMNS];
		int64		implicit;
		const int64 *parents;
		int			nparents;
		bool		deferred;
		SPITupleTable *tt;

		lockbox_exec(&plan,
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
			 const uint8 *since_hash)
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
	int			ret;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

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
	st.cxt = CurrentMemoryContext;
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

	/* the heads the anchors must lead to, read before the rows */
	if (st.nanchors > 0)
		heads = current_tips(&nheads);

	st.ring = palloc0(sizeof(RingEntry) * VERIFY_RING);
	st.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "lockbox verify",
									  ALLOCSET_DEFAULT_SIZES);

	/*
	 * Read with a snapshot taken after the tips, whatever the isolation
	 * level, so that every tip is committed in it; the statements with a
	 * later one, so that every statement a row names is there.
	 */
	PushActiveSnapshot(GetLatestSnapshot());
	st.statements = statement_digests();
	PopActiveSnapshot();
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
	ret = SPI_execute_plan_extended(since_hash == NULL ?
									lockbox_prepare(&verify_plans[0], sql_all, 1, argtypes) :
									lockbox_prepare(&verify_plans[1], sql_since, 1, argtypes),
									&options);
	PopActiveSnapshot();
	/* (a SELECT to another receiver than SPI's reports SPI_OK_UTILITY) */
	if (ret != SPI_OK_SELECT && ret != SPI_OK_UTILITY)
		elog(ERROR, "could not read lockbox.audit_log: %s",
			 SPI_result_code_string(ret));
	if (!st.stop)
		verify_deferred(&st);

	/* the anchor verified from is gone */
	if (since_hash != NULL && !st.since_seen)
		verify_bad(&st, since_seq);

	/*
	 * A tip that is gone means the newest rows were deleted (tips before the
	 * anchor verified from are not looked at).
	 */
	for (int j = 0; j < st.ntips; j++)
	{
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

	lockbox_leave(&call);

	result[0] = BoolGetDatum(st.first_bad < 0);
	result[1] = Int64GetDatum(st.checked);
	result[2] = Int64GetDatum(st.first_bad);
	result_nulls[2] = (st.first_bad < 0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, result, result_nulls)));
}
