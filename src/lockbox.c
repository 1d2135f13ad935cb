/*-------------------------------------------------------------------------
 *
 * lockbox.c
 *		Module load, settings and shared memory.  The helpers every SQL
 *		entry point uses (who is calling, running privileged work as the
 *		extension owner, argument checks, SPI plans) are in caller.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/extension.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/datetime.h"

#include "lockbox.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(lockbox_preload_check);

/* settings */
Interval	lockbox_review_timeout;
Interval	lockbox_approval_timeout;
Interval	lockbox_default_access_duration;
Interval	lockbox_max_access_duration;
int			lockbox_min_reason_length = 10;
bool		lockbox_terminate_sessions = true;

static char *review_timeout_string;
static char *approval_timeout_string;
static char *default_access_duration_string;
static char *max_access_duration_string;

/* the built-in defaults of the two windows */
#define DEFAULT_ACCESS_DURATION_BOOT	"4h"
#define MAX_ACCESS_DURATION_BOOT		"8h"

static bool lockbox_loaded = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void		_PG_init(void);

/*
 * Parse an interval setting without throwing: check hooks must report, not
 * raise.  Accepts everything interval input accepts, and refuses anything
 * that is not a finite, positive duration.
 */
static bool
check_duration(char **newval, void **extra, GucSource source)
{
	char		workbuf[256];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype = 0;
	int			dterr;
	struct pg_itm_in itm_in;
	Interval	value;
	Interval	zero;
	Interval   *result;

	memset(&itm_in, 0, sizeof(itm_in));
	dterr = ParseDateTime(*newval, workbuf, sizeof(workbuf), field, ftype,
						  MAXDATEFIELDS, &nf);
	if (dterr == 0)
		dterr = DecodeInterval(field, ftype, nf, INTERVAL_FULL_RANGE,
							   &dtype, &itm_in);
	if (dterr == DTERR_BAD_FORMAT)
	{
		memset(&itm_in, 0, sizeof(itm_in));
		dterr = DecodeISO8601Interval(*newval, &dtype, &itm_in);
	}
	if (dterr != 0 || dtype != DTK_DELTA || itmin2interval(&itm_in, &value) != 0)
	{
		GUC_check_errdetail("\"%s\" is not a valid interval.", *newval);
		return false;
	}

	memset(&zero, 0, sizeof(zero));
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp,
										  IntervalPGetDatum(&value),
										  IntervalPGetDatum(&zero))) <= 0)
	{
		GUC_check_errdetail("The duration must be greater than zero.");
		return false;
	}

	result = (Interval *) malloc(sizeof(Interval));
	if (result == NULL)
		return false;
	*result = value;
	*extra = result;
	return true;
}

#define DURATION_ASSIGN_HOOK(name, target) \
static void \
name(const char *newval, void *extra) \
{ \
	target = *((Interval *) extra); \
}

/*
 * Compare two durations as PostgreSQL compares intervals (a month as 30
 * days): never dependent on today's date.
 */
static int
duration_cmp(Interval *a, Interval *b)
{
	return DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(a),
											 IntervalPGetDatum(b)));
}

/* a duration as core shows its timeouts: 12h, 30min, 90s, 1500ms */
static const char *
duration_show(Interval *v)
{
	static char buf[64];
	static const struct
	{
		int64		usecs;
		const char *unit;
	}			units[] = {
		{USECS_PER_DAY, "d"}, {USECS_PER_HOUR, "h"}, {USECS_PER_MINUTE, "min"},
		{USECS_PER_SEC, "s"}, {1000, "ms"}, {1, "us"}
	};
	int64		total;

	if (v->month != 0)
	{
		/* calendar months: as interval output writes them */
		char	   *s = DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(v)));

		strlcpy(buf, s, sizeof(buf));
		return buf;
	}
	total = v->day * USECS_PER_DAY + v->time;
	for (int i = 0; i < lengthof(units); i++)
	{
		if (total % units[i].usecs == 0)
		{
			snprintf(buf, sizeof(buf), INT64_FORMAT "%s", total / units[i].usecs,
					 units[i].unit);
			break;
		}
	}
	return buf;
}

#define DURATION_SHOW_HOOK(name, target) \
static const char * \
name(void) \
{ \
	return duration_show(&target); \
}

DURATION_SHOW_HOOK(show_review_timeout, lockbox_review_timeout)
DURATION_SHOW_HOOK(show_approval_timeout, lockbox_approval_timeout)
DURATION_SHOW_HOOK(show_default_access_duration, lockbox_default_access_duration)
DURATION_SHOW_HOOK(show_max_access_duration, lockbox_max_access_duration)

/*
 * What a setting becomes once ALTER SYSTEM no longer sets it (RESET, SET
 * ... TO DEFAULT, RESET ALL): the last line of the configuration file (and
 * the files it includes) that sets it, else the built-in default.  NULL
 * when the file cannot be read (the caller then checks nothing).
 */
static char *
value_without_alter_system(const char *name, const char *boot)
{
	ConfigVariable *head = NULL;
	ConfigVariable *tail = NULL;
	char	   *value = pstrdup(boot);

	if (ConfigFileName == NULL ||
		!ParseConfigFile(ConfigFileName, true, NULL, 0, 0, DEBUG1, &head, &tail))
	{
		FreeConfigVariables(head);
		return NULL;
	}
	for (ConfigVariable *v = head; v != NULL; v = v->next)
		if (v->name != NULL && v->value != NULL && pg_strcasecmp(v->name, name) == 0)
			value = pstrdup(v->value);
	FreeConfigVariables(head);
	return value;
}

/* a duration setting's text as an interval; false when it is none */
static bool
parse_duration(const char *text, Interval *result)
{
	char	   *value = pstrdup(text);
	void	   *extra = NULL;

	if (!check_duration(&value, &extra, PGC_S_FILE))
		return false;
	*result = *(Interval *) extra;
	free(extra);
	return true;
}

static void
refuse_windows(bool is_default, const char *value, const char *became,
			   Interval *other)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for parameter \"%s\": \"%s\"",
					is_default ? "lockbox.default_access_duration" :
					"lockbox.max_access_duration", value),
			 is_default ?
			 errdetail("lockbox.default_access_duration (%s%s) may not exceed lockbox.max_access_duration (%s).",
					   value, became, duration_show(other)) :
			 errdetail("lockbox.max_access_duration (%s%s) may not be less than lockbox.default_access_duration (%s).",
					   value, became, duration_show(other)),
			 is_default ?
			 errhint("Raise lockbox.max_access_duration first, and reload.") :
			 errhint("Lower lockbox.default_access_duration first, and reload.")));
}

/*
 * ALTER SYSTEM of the default window or the longest one: refused when the
 * default would exceed the longest, both values named (the utility hook
 * calls this before the statement runs).  A check hook cannot do it: a
 * reload applies a file's lines in turn, so a default raised together with
 * the maximum, its line first, would be refused against the old maximum; a
 * request that names no duration gets the maximum when the default exceeds
 * it (lockbox_request warns).  Compared with the values in force: a change
 * of the other setting by ALTER SYSTEM counts once it is reloaded.  Every
 * form is checked: SET to a value; RESET and SET ... TO DEFAULT, with the
 * value the setting then takes (the configuration file's, else the built-in
 * default; 1.6 let them through); RESET ALL, both settings so.
 */
void
lockbox_settings_utility(Node *node)
{
	AlterSystemStmt *stmt;
	VariableSetStmt *set;
	bool		is_default;
	char	   *value;
	const char *became = "";
	Interval	v;
	Interval   *other;

	if (node == NULL || !IsA(node, AlterSystemStmt))
		return;
	stmt = (AlterSystemStmt *) node;
	set = stmt->setstmt;
	if (set == NULL)
		return;
	if (set->kind == VAR_RESET_ALL)
	{
		char	   *d = value_without_alter_system("lockbox.default_access_duration",
												   DEFAULT_ACCESS_DURATION_BOOT);
		char	   *m = value_without_alter_system("lockbox.max_access_duration",
												   MAX_ACCESS_DURATION_BOOT);
		Interval	dv;
		Interval	mv;

		if (d != NULL && m != NULL && parse_duration(d, &dv) &&
			parse_duration(m, &mv) && duration_cmp(&dv, &mv) > 0)
			refuse_windows(true, d, ", as ALTER SYSTEM RESET ALL would leave it", &mv);
		return;
	}
	if (set->name == NULL)
		return;
	if (pg_strcasecmp(set->name, "lockbox.default_access_duration") == 0)
		is_default = true;
	else if (pg_strcasecmp(set->name, "lockbox.max_access_duration") == 0)
		is_default = false;
	else
		return;
	if (set->kind == VAR_SET_VALUE)
		value = ExtractSetVariableArgs(set);
	else if (set->kind == VAR_RESET || set->kind == VAR_SET_DEFAULT)
	{
		value = value_without_alter_system(set->name,
										   is_default ? DEFAULT_ACCESS_DURATION_BOOT :
										   MAX_ACCESS_DURATION_BOOT);
		became = set->kind == VAR_RESET ? ", as ALTER SYSTEM RESET would make it" :
			", as ALTER SYSTEM SET ... TO DEFAULT would make it";
	}
	else
		return;
	/* (an invalid value is refused by ALTER SYSTEM itself, with its reason) */
	if (value == NULL || !parse_duration(value, &v))
		return;
	other = is_default ? &lockbox_max_access_duration : &lockbox_default_access_duration;
	if (is_default ? duration_cmp(&v, other) > 0 : duration_cmp(&v, other) < 0)
		refuse_windows(is_default, value, became, other);
}

/*
 * The launcher, at startup and after each reload: a default window above the
 * longest (a configuration file may set them so; a reload checks each line
 * on its own) is named in the server log once, where the DBA who set it
 * looks, rather than at every request that names no duration (those get the
 * maximum, and their callers a NOTICE).
 */
void
lockbox_settings_check_windows(void)
{
	if (duration_cmp(&lockbox_default_access_duration,
					 &lockbox_max_access_duration) <= 0)
		return;
	ereport(WARNING,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("lockbox.default_access_duration (%s) exceeds lockbox.max_access_duration (%s)",
					GetConfigOption("lockbox.default_access_duration", false, false),
					GetConfigOption("lockbox.max_access_duration", false, false)),
			 errdetail("A request that names no duration gets lockbox.max_access_duration."),
			 errhint("Lower lockbox.default_access_duration, or raise lockbox.max_access_duration, and reload.")));
}

DURATION_ASSIGN_HOOK(assign_review_timeout, lockbox_review_timeout)
DURATION_ASSIGN_HOOK(assign_approval_timeout, lockbox_approval_timeout)
DURATION_ASSIGN_HOOK(assign_default_access_duration, lockbox_default_access_duration)
DURATION_ASSIGN_HOOK(assign_max_access_duration, lockbox_max_access_duration)

static void
lockbox_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(add_size(add_size(add_size(lockbox_audit_shmem_size(),
															   lockbox_worker_shmem_size()),
													  lockbox_enforce_shmem_size()),
											 lockbox_session_end_shmem_size()),
									add_size(add_size(lockbox_access_shmem_size(),
													  lockbox_tenant_shmem_size()),
											 lockbox_relay_shmem_size())));
	/* [0] the audit tips, [1] the workers */
	RequestNamedLWLockTranche("lockbox", 2);
}

static void
lockbox_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	lockbox_audit_shmem_init();
	lockbox_worker_shmem_init();
	lockbox_enforce_shmem_init();
	lockbox_session_end_shmem_init();
	lockbox_access_shmem_init();
	lockbox_tenant_shmem_init();
	lockbox_relay_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockbox must be loaded via shared_preload_libraries"),
				 errhint("Add lockbox to shared_preload_libraries in postgresql.conf and restart the server.")));

	DefineCustomStringVariable("lockbox.review_timeout",
							   "How long a request may wait for a reviewer (stage 1).",
							   "A request no reviewer approves or denies within this time expires. "
							   "Any positive interval, in a unit (12h, 30min, 90s) or as an interval ('12 hours'); "
							   "the deadline is fixed when the stage starts, so a change applies to requests entering stage 1 afterwards.",
							   &review_timeout_string, "12h",
							   PGC_SIGHUP, 0,
							   check_duration, assign_review_timeout, show_review_timeout);
	DefineCustomStringVariable("lockbox.approval_timeout",
							   "How long a request may wait for the customer's approvers (stage 2).",
							   "A request the tenant's approvers do not approve within this time expires. "
							   "Any positive interval, in a unit (12h, 30min, 90s) or as an interval ('12 hours'); "
							   "the deadline is fixed when the stage starts, so a change applies to requests entering stage 2 afterwards.",
							   &approval_timeout_string, "12h",
							   PGC_SIGHUP, 0,
							   check_duration, assign_approval_timeout, show_approval_timeout);
	DefineCustomStringVariable("lockbox.default_access_duration",
							   "Access window of a request that names no duration.",
							   "Any positive interval; above lockbox.max_access_duration, a request naming no duration gets the maximum. "
							   "The window starts when the request is approved and is fixed then.",
							   &default_access_duration_string, DEFAULT_ACCESS_DURATION_BOOT,
							   PGC_SIGHUP, 0,
							   check_duration, assign_default_access_duration,
							   show_default_access_duration);
	DefineCustomStringVariable("lockbox.max_access_duration",
							   "Longest access window a request may ask for.",
							   "A request asking for a longer window is refused (SQLSTATE 22023). "
							   "Any positive interval.",
							   &max_access_duration_string, MAX_ACCESS_DURATION_BOOT,
							   PGC_SIGHUP, 0,
							   check_duration, assign_max_access_duration,
							   show_max_access_duration);
	DefineCustomIntVariable("lockbox.min_reason_length",
							"Shortest accepted reason, in characters after trimming.",
							"Applies to the reasons of lockbox_request, lockbox_deny, lockbox_revoke and lockbox_extend; "
							"a shorter one, after trimming white space, is refused (SQLSTATE 22023).",
							&lockbox_min_reason_length, 10, 1, LOCKBOX_MAX_TEXT,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("lockbox.terminate_sessions",
							 "End an engineer's sessions when their access ends.",
							 "When on, the database's lockbox worker ends an engineer's open sessions within a second of their access ending "
							 "(window elapsed, closed or revoked). Off or on, their statements on protected tables are refused from then on.",
							 &lockbox_terminate_sessions, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);

	lockbox_access_log_init();
	lockbox_audit_init();
	lockbox_standby_init();

	MarkGUCPrefixReserved("lockbox");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = lockbox_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = lockbox_shmem_startup;

	lockbox_worker_init();
	lockbox_hooks_init();

	lockbox_loaded = true;
}

/*
 * Called once by the install script: reaching it means _PG_init accepted the
 * load, and shared memory must then be ours.
 */
Datum
lockbox_preload_check(PG_FUNCTION_ARGS)
{
	if (!lockbox_loaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("lockbox must be loaded via shared_preload_libraries"),
				 errhint("Add lockbox to shared_preload_libraries in postgresql.conf and restart the server.")));
	PG_RETURN_VOID();
}

/* Is the extension created in the current database? */
bool
lockbox_installed(void)
{
	return OidIsValid(get_extension_oid("lockbox", true));
}
