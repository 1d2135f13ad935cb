/*-------------------------------------------------------------------------
 *
 * lockbox.h
 *		Declarations shared by the lockbox extension's source files.
 *
 * lockbox.c	_PG_init, settings, shared memory
 * caller.c		who calls, the extension owner's context, SPI plans, arguments
 * identity.c	the database lockbox was installed in: copies, adoption
 * tenant.c		tenants, approvers, the lockbox switch
 * lifecycle.c	requests and every transition of the request lifecycle
 * store.c		lockbox's own rows read and written without the planner
 * deadlines.c	the worker's transitions at deadlines, ending sessions
 * audit.c		the append-only, hash-linked audit log and its verification
 * audit_guard.c	statements that would take audit rows out, refused
 * notify.c		notification rows, NOTIFY, claim and acknowledge
 * protect.c	lockbox_protect / lockbox_unprotect, the policies, drop guards
 * enforce.c	the grants cache, checking engineers' statements, refusals
 * access_log.c	the access log: capture, per-session spool, draining
 * standby.c	on a hot standby: forwarding the spool, ending sessions
 * worker.c		the launcher and the per-database workers
 * hooks.c		every hook entry point, dispatching to the files above
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOCKBOX_H
#define LOCKBOX_H

#include "postgres.h"

#include "access/htup.h"
#include "access/xact.h"
#include "datatype/timestamp.h"
#include "executor/execdesc.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "nodes/lockoptions.h"
#include "storage/lwlock.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* longest free text accepted (reasons, comments, tickets), in characters */
#define LOCKBOX_MAX_TEXT		2000
/* longest tenant name, in characters */
#define LOCKBOX_MAX_TENANT		200
/* databases served at once (shared memory slots) */
#define LOCKBOX_MAX_DATABASES	64

/* settings (lockbox.c) */
extern Interval lockbox_review_timeout;
extern Interval lockbox_approval_timeout;
extern Interval lockbox_default_access_duration;
extern Interval lockbox_max_access_duration;
extern int	lockbox_min_reason_length;
extern bool lockbox_terminate_sessions;

/* the group roles, looked up by name (caller.c) */
typedef enum LockboxRole
{
	LB_ENGINEER,
	LB_REVIEWER,
	LB_APPROVER,
	LB_AUDITOR
} LockboxRole;

extern Oid	lockbox_role_oid(LockboxRole role);
extern bool lockbox_has_role(Oid member, LockboxRole role);

/*
 * Running privileged work as the extension owner (caller.c).  The caller's
 * identity is captured first; everything between enter and leave runs as the
 * owner with search_path = pg_catalog, pg_temp and SPI connected.
 */
typedef struct LockboxCall
{
	Oid			caller;			/* current_user on entry */
	Oid			session_user;	/* session_user on entry */
	TimestampTz now;			/* the statement's timestamp */
	const char *actor_name;		/* audit rows: names to record instead of */
	const char *session_name;	/* caller's and session_user's (NULL: theirs) */
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
} LockboxCall;

extern void lockbox_enter(LockboxCall *call);
extern void lockbox_require_writable(FunctionCallInfo fcinfo);

/* the database lockbox's requests were made in (identity.c) */
extern bool lockbox_database_copy(Oid *recorded, int64 *void_through);
extern uint32 lockbox_installation_epoch(bool *legacy);
extern void lockbox_refuse_copy(void);
extern bool lockbox_copy_held(LockboxCall *call);
extern void lockbox_enter_read(LockboxCall *call);
extern void lockbox_leave(LockboxCall *call);

/* SPI helpers (caller.c) */
extern SPIPlanPtr lockbox_prepare(SPIPlanPtr *cache, const char *sql,
								  int nargs, Oid *argtypes);
extern int	lockbox_exec(SPIPlanPtr *cache, const char *sql, int nargs,
						 Oid *argtypes, Datum *values, const char *nulls,
						 long count);

/* lockbox's own rows, written without the planner (store.c) */
typedef struct LockboxStore LockboxStore;
extern Oid	lockbox_relid(const char *name);
extern LockboxStore *lockbox_store_open(int ntables, const char *const *tables);
extern bool lockbox_store_skip_trigger(LockboxStore *store, int t, const char *name);
extern void lockbox_store_new_row(LockboxStore *store, int t);
extern void lockbox_store_set(LockboxStore *store, int t, const char *name,
							  Datum value, Oid type, bool isnull);
extern void lockbox_store_insert(LockboxStore *store, int t);
extern bool lockbox_store_fetch(LockboxStore *store, int t, int64 key);
extern bool lockbox_store_fetch_version(LockboxStore *store, int t,
										ItemPointer tid, int64 key);
extern void lockbox_store_close(LockboxStore *store);
extern void lockbox_store_xact(XactEvent event);
extern void lockbox_store_update(LockboxStore *store, int t);
extern void lockbox_store_delete(LockboxStore *store, int t);
extern List *lockbox_store_read(const char *table, int nkeys, const Datum *keys,
								Snapshot snapshot, TupleDesc *td);
extern List *lockbox_store_read_by(const char *table, const char *index_name, int nkeys,
								   const Datum *keys, Snapshot snapshot, TupleDesc *td);
extern HeapTuple lockbox_store_lock(const char *table, int nkeys, const Datum *keys,
									 LockTupleMode mode, TupleDesc *td, const char *what);
extern Datum lockbox_store_get(HeapTuple tup, TupleDesc td, const char *name,
							   bool *isnull);

/* argument checks (caller.c); each ereports with the contract's SQLSTATE */
extern void lockbox_require_arg(FunctionCallInfo fcinfo, int argno,
								const char *argname);
extern char *lockbox_text_arg(FunctionCallInfo fcinfo, int argno,
							  const char *argname, bool required,
							  int min_length, int max_length);
extern bool lockbox_installed(void);
extern char *lockbox_relname(Oid relid);
extern char *lockbox_tenant_arg(FunctionCallInfo fcinfo, int argno);
extern char *lockbox_role_name(Oid roleid);
extern int	lockbox_int64_cmp(const void *a, const void *b);
extern char *lockbox_clip(const char *s);
extern bool lockbox_same_party(Oid a, Oid b);

/* tenants (tenant.c) */
typedef struct LockboxTenant
{
	bool		enabled;
	int			required_approvals;
} LockboxTenant;

extern bool lockbox_tenant_lookup(const char *tenant, LockboxTenant *out);
extern bool lockbox_tenant_hold(const char *tenant);
extern bool lockbox_is_approver(Oid role, const char *tenant);
extern bool lockbox_approver_among(Oid role, List *approvers);
extern List *lockbox_tenant_approvers(const char *tenant);
extern bool lockbox_tenant_facts(const char *tenant, Snapshot snapshot, TimestampTz now,
								 bool *enabled, int *required_approvals,
								 List **approvers);
extern void lockbox_tenant_xact(XactEvent event);
extern Size lockbox_tenant_shmem_size(void);
extern void lockbox_tenant_shmem_init(void);

/* sessions to end when access ends (lifecycle.c) */
extern void lockbox_queue_session_end(Oid engineer, int64 request_id,
									  int except_pid);

/* the worker's transitions (deadlines.c) */
extern int	lockbox_act_on_deadlines(LockboxCall *call, int batch);
extern TimestampTz lockbox_next_deadline(void);
extern int	lockbox_end_sessions(void);
extern int	lockbox_end_sessions_standby(void);
extern Size lockbox_session_end_shmem_size(void);
extern void lockbox_session_end_shmem_init(void);
extern void lockbox_session_end_message(ErrorData *edata);

/* audit (audit.c) */
#define LOCKBOX_AUDIT_NARGS 10
typedef struct AuditRow
{
	Datum		values[LOCKBOX_AUDIT_NARGS];
	char		nulls[LOCKBOX_AUDIT_NARGS];
	NameData	session_name;
	NameData	actor_name;
} AuditRow;

extern const Oid lockbox_audit_argtypes[LOCKBOX_AUDIT_NARGS];
extern void lockbox_audit(LockboxCall *call, const char *event,
						  int64 request_id, const char *tenant,
						  const char *detail_json);
extern void lockbox_audit_row(LockboxCall *call, const char *event,
							  int64 request_id, const char *tenant,
							  const char *detail_json, AuditRow *out);
extern void lockbox_audit_store(LockboxStore *store, int t,
								const AuditRow *row);
/* an engineer's statement, for its access or refused audit row */
typedef struct LockboxAccess
{
	const char *relation;
	const char *command;
	const char *query;			/* as recorded (maybe a prefix) */
	int64		query_length;	/* with query_sha256: the full statement's */
	const char *query_sha256;	/* NULL: query is the whole statement */
	/* from 1.6, each bounded and marked as query (NULL: none) */
	const char *parameters;		/* values bound to its parameters */
	int64		parameters_length;
	const char *parameters_sha256;
	const char *within;			/* the client's statement it ran within */
	int64		within_length;
	const char *within_sha256;
	const char *reason;			/* refused: why; else NULL */
	int32		pid;
	const char *node;			/* the standby it ran on, or NULL */
	int64		statements;		/* how often it ran in a row */
	int64		last_at_usec;	/* the last one, after the first */
} LockboxAccess;
extern void lockbox_audit_access(LockboxCall *call, const char *event,
								 int64 request_id, const char *tenant,
								 const LockboxAccess *access);
extern void lockbox_audit_xact(XactEvent event);
extern void lockbox_audit_subxact(SubXactEvent event, SubTransactionId mySubid,
								  SubTransactionId parentSubid);
extern void lockbox_audit_init(void);
extern int	lockbox_anchor_interval;
extern char *lockbox_iso_time(TimestampTz t);
extern char *lockbox_audit_head_json(void);
extern JsonbValue *lockbox_audit_head_value(void);
extern void lockbox_audit_log_anchor(void);
extern int	lockbox_audit_keep_partitions(TimestampTz now);
extern int	lockbox_audit_analyze(bool made_partitions);
extern void lockbox_audit_utility(Node *node);
extern bool lockbox_audit_archiving(void);
extern void lockbox_settings_utility(Node *node);
extern void lockbox_settings_check_windows(void);
extern Oid	lockbox_audit_moved_into(void);
extern bool lockbox_log_wants(const char *event);
extern Size lockbox_audit_shmem_size(void);
extern void lockbox_audit_shmem_init(void);

/* notifications (notify.c) */
extern void lockbox_notify(LockboxCall *call, int64 request_id, Oid recipient,
						   const char *event, const char *tenant,
						   const char *state);
extern Datum lockbox_notification_payload(int64 request_id, Oid recipient,
										  const char *event, const char *tenant,
										  const char *state);
extern char *lockbox_notification_payload_text(int64 request_id, Oid recipient,
											   const char *event, const char *tenant,
											   const char *state);

extern int64 lockbox_relay_notifications(int batch);
extern int	lockbox_relay_keep(void);
extern void lockbox_relay_forget(void);
extern void lockbox_relay_at_commit(int64 id);
extern void lockbox_relay_xact(XactEvent event);
extern void lockbox_relay_subxact(SubXactEvent event, SubTransactionId mySubid,
								  SubTransactionId parentSubid);
extern Size lockbox_relay_shmem_size(void);
extern void lockbox_relay_shmem_init(void);
extern void lockbox_notify_deciders(LockboxCall *call, List *request_ids,
									const char *event, const char *state);

/* protected tables and enforcement (enforce.c) */
extern void lockbox_enforce_executor_start(QueryDesc *queryDesc, int eflags);
extern void lockbox_enforce_executor_run(QueryDesc *queryDesc);
extern void lockbox_enforce_run_failed(QueryDesc *queryDesc);
extern bool lockbox_enforce_open_statements(void);
extern void lockbox_enforce_planned(PlannedStmt *pstmt, const char *query_string);
extern void lockbox_enforce_executor_end(QueryDesc *queryDesc);
extern int	lockbox_enforce_explain_begin(Node *node);
extern void lockbox_enforce_explain_end(int prev);
extern int	lockbox_enforce_cursor_begin(Node *node);
extern void lockbox_enforce_cursor_end(int prev);
extern void lockbox_enforce_utility_failed(void);
extern void lockbox_enforce_function_execute(Oid funcid);
extern void lockbox_enforce_executor_finish(QueryDesc *queryDesc);
extern bool lockbox_is_protected(Oid relid);
extern bool lockbox_cascade_uncovered(const Oid *tables, int ntables, Oid *from,
									  Oid *reached, Oid *conid, Oid *conrelid,
									  Oid *referenced);
extern void lockbox_enforce_role_inval(Datum arg, int cacheid, uint32 hashvalue);
extern void lockbox_enforce_relcache_inval(Datum arg, Oid relid);
extern void lockbox_enforce_xact(XactEvent event);
extern Oid	lockbox_owner(void);
extern void lockbox_enforce_subxact(SubXactEvent event, SubTransactionId mySubid,
									SubTransactionId parentSubid);
extern Size lockbox_enforce_shmem_size(void);
extern void lockbox_enforce_shmem_init(void);
extern void lockbox_enforce_utility(Node *node, const char *query);
extern void lockbox_access_changed(void);
extern bool lockbox_has_sessions(Oid engineer, int except_pid);

/* protecting tables (protect.c) */
extern bool lockbox_valid_key(const char *tenant, Oid keytype);
extern void lockbox_protect_utility(Node *node);
extern void lockbox_protect_object_access(int access, Oid classId, Oid objectId);
extern void lockbox_protect_utility_done(void);
extern void lockbox_protect_xact(XactEvent event);

/* the access log (access_log.c) */
typedef enum LockboxOutcome
{
	LB_ALLOWED = 1,
	LB_REFUSED = 2
} LockboxOutcome;

/* a protected relation a statement reaches, and the requests covering it */
typedef struct LockboxAccessItem
{
	Oid			relid;
	int			nrequests;
	int64	   *requests;
} LockboxAccessItem;

/*
 * The largest access record a session writes: the statement's text (at most
 * lockbox.access_log_max_query, 1MB) with the relations it reaches and their
 * requests.  A statement whose record would be larger, or would make more
 * audit rows, is refused (it does not run); every reader of the spool, and
 * lockbox.forward_access on the primary, takes a record up to this size.
 */
#define LOCKBOX_RECORD_MAX		(8 * 1024 * 1024)
#define LOCKBOX_RECORD_MAX_ITEMS	65536
#define LOCKBOX_RECORD_MAX_ROWS		100000
/* bytes of records a standby hands in per call (one larger record alone) */
#define LOCKBOX_FORWARD_CHUNK	(1024 * 1024)

extern int	lockbox_access_log_max_query;
extern bool lockbox_access_log_sync;
extern void lockbox_access_log_init(void);
extern Size lockbox_access_shmem_size(void);
extern void lockbox_access_shmem_init(void);
/*
 * What the access log keeps of an engineer's statement, as separate fields
 * (from 1.6): its own text; the values bound to its parameters (NULL: none);
 * the statement the client sent, when this one ran inside it (NULL: it is
 * that statement).  Kept apart, so that nothing in the text or the values
 * can pass for the others.
 */
typedef struct LockboxQuery
{
	const char *text;
	const char *parameters;
	const char *within;
} LockboxQuery;

extern void lockbox_access_allowed(const char *command, const LockboxQuery *query,
								   int nitems, const LockboxAccessItem *items);
extern void lockbox_access_refused(const char *command, const LockboxQuery *query,
								   Oid relid, int nrequests, int64 *requests,
								   const char *reason);
extern int64 lockbox_access_drain(LockboxCall *call, List **finished);
extern void lockbox_access_remove_finished(List *finished);
extern int	lockbox_access_pending_files(bool ended_only);
extern void lockbox_access_utility(Node *node);
extern void lockbox_access_utility_done(Node *node);

/* standbys (access_log.c: the spool side; standby.c: the worker there) */
extern int	lockbox_standby_backlog_max;
extern char *lockbox_primary_conninfo;
extern const char *lockbox_node_name(void);
extern void lockbox_backlog_report(int64 bytes, int files, bool forwarded,
								   const char *error);
extern List *lockbox_spool_files(void);
extern char *lockbox_spool_chunk(const char *file, off_t from, size_t max,
								 size_t *len, bool *at_end, bool *damaged,
								 bool *foreign);
extern void lockbox_spool_read_owner(void);
extern List *lockbox_spool_databases(void);
extern void lockbox_spool_forget_database(Oid dbid);
extern void lockbox_spool_set_aside(const char *file, int64 from,
									const char *dbname);
extern int64 lockbox_spool_end(const char *file, int64 from, bool *damaged);
extern void lockbox_spool_remove(const char *file);
extern bool lockbox_spool_live(const char *file, int64 *written);
extern void lockbox_spool_log(const char *buf, size_t len, const char *node);
extern void lockbox_standby_init(void);
extern void lockbox_standby_worker(void);
/* worker.c: a wait between passes, which a SIGTERM ends quietly */
extern void lockbox_worker_idle_wait(int events, long timeout);

/* statistics of a database, since their reset (worker.c; lockbox.stats) */
typedef enum LockboxCounter
{
	LB_REFUSALS,				/* engineers' statements refused */
	LB_SESSIONS_ENDED,			/* engineers' sessions ended */
	LB_WORKER_PASSES,
	LB_WORKER_FAILURES,
	LB_COUNTERS
} LockboxCounter;

extern void lockbox_count(LockboxCounter counter);

/* the launcher and database workers (worker.c) */
extern void lockbox_worker_init(void);
extern void lockbox_worker_utility(Node *node);
extern void lockbox_worker_utility_failed(Node *node);
extern void lockbox_worker_xact(XactEvent event);
extern Size lockbox_worker_shmem_size(void);
extern void lockbox_worker_shmem_init(void);
extern void lockbox_wake_worker_at_commit(void);
extern void lockbox_relay_wake_at_commit(void);
extern bool lockbox_wake_worker(void);
extern void lockbox_deadline_created(TimestampTz deadline);

/* the hooks (hooks.c) */
extern void lockbox_hooks_init(void);

/* JSON building helpers (audit.c) */
extern void lockbox_json_str(StringInfo buf, const char *key, const char *value);
extern void lockbox_json_raw(StringInfo buf, const char *key, const char *value);

#endif							/* LOCKBOX_H */
