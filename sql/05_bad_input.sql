--
-- 05_bad_input: every function, every argument, refused with the right
-- SQLSTATE and without changing anything.
--
--   22004  a required argument is NULL
--   22023  a value out of range or malformed
--   42704  unknown tenant, request, notification or role
--   42501  caller not allowed
--   55000  request not in a state that allows this step
--   42710  tenant or approver binding that already exists
--
-- Each bad call goes through regress_try (00_setup), which shows the
-- SQLSTATE, the message, and its DETAIL and HINT.  After each function, a
-- fingerprint of every lockbox table (requests, decisions, extensions and
-- their votes, notifications, the audit, tenants, approvers, protected
-- tables) is compared with the one taken before it: "unchanged" must be
-- true.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_erin, regress_eve, regress_mia, regress_ada,
	regress_gus, regress_nora, regress_rita, regress_nobody;
RESET client_min_messages;

CREATE ROLE regress_erin;	GRANT lockbox_engineer TO regress_erin;
CREATE ROLE regress_eve;	GRANT lockbox_engineer TO regress_eve;
CREATE ROLE regress_mia;	GRANT lockbox_reviewer TO regress_mia;
CREATE ROLE regress_ada;	GRANT lockbox_approver TO regress_ada;
CREATE ROLE regress_gus;	GRANT lockbox_approver TO regress_gus;
CREATE ROLE regress_nora;	GRANT lockbox_auditor TO regress_nora;
CREATE ROLE regress_rita;	GRANT lockbox_engineer, lockbox_reviewer TO regress_rita;
CREATE ROLE regress_nobody;	-- in no lockbox role

-- The fingerprint of lockbox's state (the worker's outbox is left out: the
-- worker empties it on its own).
CREATE FUNCTION regress_lockbox_state() RETURNS text LANGUAGE sql AS $$
SELECT md5(concat_ws('|',
	(SELECT string_agg(x::text, ',' ORDER BY x.id) FROM lockbox.request x),
	(SELECT string_agg(x::text, ',' ORDER BY x.request_id, x.approver) FROM lockbox.decision x),
	(SELECT string_agg(x::text, ',' ORDER BY x.id) FROM lockbox.extension x),
	(SELECT string_agg(x::text, ',' ORDER BY x.extension_id, x.approver) FROM lockbox.extension_decision x),
	(SELECT string_agg(x::text, ',' ORDER BY x.id) FROM lockbox.notification x),
	(SELECT string_agg(x::text, ',' ORDER BY x.seq) FROM lockbox.audit_log x),
	(SELECT string_agg(x::text, ',' ORDER BY x.tenant) FROM lockbox.tenant x),
	(SELECT string_agg(x::text, ',' ORDER BY x.tenant, x.approver) FROM lockbox.approver x),
	(SELECT string_agg(x::text, ',' ORDER BY x.relid) FROM lockbox.protected_table x)))
$$;

-- Request ids of this file start at 501.
SELECT setval('lockbox.request_id_seq', 500);

-- Cyberdyne (approver Ada) and Tyrell (approver Gus).  regress_cd_data has
-- a tenant column; regress_tyrell_only is wholly Tyrell's;
-- regress_unprotected is not under lockbox.
SELECT lockbox_add_tenant('cyberdyne');
SELECT lockbox_add_tenant('tyrell');
SELECT lockbox_add_approver('cyberdyne', 'regress_ada');
SELECT lockbox_add_approver('tyrell', 'regress_gus');
CREATE TABLE regress_cd_data (tenant text NOT NULL, id int, price numeric);
CREATE TABLE regress_tyrell_only (id int);
CREATE TABLE regress_unprotected (id int);
CREATE VIEW regress_a_view AS SELECT 1 AS id;
SELECT lockbox_protect('regress_cd_data', tenant_column => 'tenant');
SELECT lockbox_protect('regress_tyrell_only', tenant => 'tyrell');

-- Four requests of Erin's, one in each state the refusals below need; a
-- fifth, approved, whose extension awaits the approvers; and Rita's (an
-- engineer and a reviewer), approved.
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('cyberdyne', 'Pending review: model training job stuck',
		tables => '{regress_cd_data}');
SELECT lockbox_request('cyberdyne', 'Pending approval: billing export failed',
		tables => '{regress_cd_data}');
SELECT lockbox_request('cyberdyne', 'Approved: price list shows old values',
		tables => '{regress_cd_data}');
SELECT lockbox_request('cyberdyne', 'Closed: login page error for admins',
		tables => '{regress_cd_data}');
SELECT lockbox_request('cyberdyne', 'Extension pending: report export is slow',
		tables => '{regress_cd_data}');
SET SESSION AUTHORIZATION regress_rita;
SELECT lockbox_request('cyberdyne', 'Approved for Rita: invoice layout broken',
		tables => '{regress_cd_data}');
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(502), lockbox_approve(503), lockbox_approve(504),
	   lockbox_approve(505), lockbox_approve(506);
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(503), lockbox_approve(504), lockbox_approve(505),
	   lockbox_approve(506);
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_close(504);
SELECT lockbox_extend(505, '1 hour', 'The export needs another run');
SELECT id, state FROM lockbox.requests ORDER BY id;
SELECT request_id, by, state FROM lockbox.extensions ORDER BY id;
RESET SESSION AUTHORIZATION;

-- The settings the checks depend on.  Durations show as core shows its
-- timeouts, whatever interval they were given as.
SHOW lockbox.min_reason_length;
SHOW lockbox.max_access_duration;
SELECT name, setting, unit FROM pg_settings
 WHERE name ~ '^lockbox\.(review_timeout|approval_timeout|.*_duration)$' ORDER BY name;
-- ALTER SYSTEM refuses a default window above the longest, naming both
-- (compared with the values in force).  A reload applies a file's lines each
-- on its own, in any order; a request naming no duration then gets the
-- maximum, with a warning (TAP 040_operations).
ALTER SYSTEM SET lockbox.default_access_duration = '9 hours';
ALTER SYSTEM SET lockbox.max_access_duration = '3h';
ALTER SYSTEM SET lockbox.default_access_duration = '8h';
ALTER SYSTEM SET lockbox.max_access_duration = '4h';
ALTER SYSTEM RESET lockbox.default_access_duration;
ALTER SYSTEM RESET lockbox.max_access_duration;
ALTER SYSTEM SET lockbox.review_timeout = '-1 hour';
-- RESET and SET ... TO DEFAULT are checked the same way, with the value the
-- setting then takes (the configuration file's, else the built-in default):
-- the maximum raised to 12h and the default to 10h, the maximum cannot go
-- back to its built-in 8h under the default.
ALTER SYSTEM SET lockbox.max_access_duration = '12h';
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
ALTER SYSTEM SET lockbox.default_access_duration = '10h';
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SHOW lockbox.default_access_duration;
ALTER SYSTEM RESET lockbox.max_access_duration;
ALTER SYSTEM SET lockbox.max_access_duration TO DEFAULT;
ALTER SYSTEM RESET lockbox.default_access_duration;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
ALTER SYSTEM RESET lockbox.max_access_duration;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SHOW lockbox.default_access_duration;
SHOW lockbox.max_access_duration;

SELECT regress_lockbox_state() AS before \gset

-- ---------------------------------------------------------------------
-- lockbox_request(tenant, reason, tables, access, duration, ticket)
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
-- tenant
CALL regress_try($$SELECT lockbox_request(NULL, 'Customer reports an error')$$);
CALL regress_try($$SELECT lockbox_request('', 'Customer reports an error')$$);
CALL regress_try($$SELECT lockbox_request('   ', 'Customer reports an error')$$);
CALL regress_try($$SELECT lockbox_request(' cyberdyne', 'Customer reports an error')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne ', 'Customer reports an error')$$);
CALL regress_try($$SELECT lockbox_request(repeat('x', 1048576), 'Customer reports an error')$$);
CALL regress_try($$SELECT lockbox_request('no_such_tenant', 'Customer reports an error')$$);
CALL regress_try($$SELECT lockbox_request('CYBERDYNE', 'Customer reports an error')$$);
-- reason: required, at least lockbox.min_reason_length characters once
-- trimmed, at most 2000
CALL regress_try($$SELECT lockbox_request('cyberdyne', NULL)$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', '')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', E' \t\n ')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'too short')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', '     123456789     ')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', repeat('x', 2001))$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', repeat('x', 1048576))$$);
-- tables: NULL means all the tenant's; else each must be protected for it
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		tables => '{}')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		tables => '{NULL}')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		tables => ARRAY['regress_cd_data', NULL]::regclass[])$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		tables => '{regress_unprotected}')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		tables => '{regress_cd_data,regress_tyrell_only}')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		tables => '{regress_no_such_table}')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		tables => '{4294967295}')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		tables => '{{regress_cd_data},{regress_cd_data}}')$$);
-- access: 'read' or 'write', exactly
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		access => NULL)$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		access => '')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		access => 'READ')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		access => 'admin')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		access => repeat('x', 1048576))$$);
-- duration: more than zero, at most lockbox.max_access_duration.  Durations
-- span calendar time from now in the session's time zone; in UTC a day is
-- always 24 hours (pg_regress's PST8PDT has 23- and 25-hour days).
SET TimeZone = 'UTC';
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		duration => '0')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		duration => '-1 hour')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		duration => '8 hours 1 second')$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		duration => '1 day')$$);
-- A month spans 28 to 31 days, counted from now: the message names the exact
-- span, so the expected text is computed from the same clock, never written
-- down (this file runs on any day of any month).
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		duration => '1 mon')$$,
	message_matches => '^duration \d+:00:00 exceeds lockbox\.max_access_duration \(08:00:00\)$');
DO $$
BEGIN
	PERFORM lockbox_request('cyberdyne', 'Customer reports an error', duration => '1 mon');
EXCEPTION WHEN invalid_parameter_value THEN
	RAISE NOTICE 'names the span of this month: %', SQLERRM = format(
		'duration %s:00:00 exceeds lockbox.max_access_duration (08:00:00)',
		extract(epoch FROM (now() + interval '1 mon') - now())::bigint / 3600);
END $$;
RESET TimeZone;
-- ticket: optional, at most 200 characters
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		ticket => repeat('x', 201))$$);
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error',
		ticket => repeat('x', 1048576))$$);
-- caller: engineers only
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error')$$);
SET SESSION AUTHORIZATION regress_nobody;
CALL regress_try($$SELECT lockbox_request('cyberdyne', 'Customer reports an error')$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_approve(request_id, comment)
--   501 pending_review, 502 pending_approval, 503 approved, 504 closed,
--   505 approved with an extension pending
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try($$SELECT lockbox_approve(NULL)$$);
CALL regress_try($$SELECT lockbox_approve(NULL, 'with a comment')$$);
CALL regress_try($$SELECT lockbox_approve(999999)$$);
CALL regress_try($$SELECT lockbox_approve(0)$$);
CALL regress_try($$SELECT lockbox_approve(-1)$$);
CALL regress_try($$SELECT lockbox_approve(501, repeat('x', 2001))$$);
CALL regress_try($$SELECT lockbox_approve(501, repeat('x', 1048576))$$);
-- wrong state
CALL regress_try($$SELECT lockbox_approve(503)$$);
CALL regress_try($$SELECT lockbox_approve(504)$$);
-- wrong caller: the reviewer at stage 2, an approver at stage 1, an
-- approver of another tenant, an engineer, nobody
CALL regress_try($$SELECT lockbox_approve(502)$$);
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_approve(501)$$);
SET SESSION AUTHORIZATION regress_gus;
CALL regress_try($$SELECT lockbox_approve(502)$$);
SET SESSION AUTHORIZATION regress_eve;
CALL regress_try($$SELECT lockbox_approve(501)$$);
SET SESSION AUTHORIZATION regress_nobody;
CALL regress_try($$SELECT lockbox_approve(501)$$);
-- the extension of 505: its approvers decide, not the reviewer, another
-- tenant's approver, or its requester
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try($$SELECT lockbox_approve(505)$$);
SET SESSION AUTHORIZATION regress_gus;
CALL regress_try($$SELECT lockbox_approve(505)$$);
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try($$SELECT lockbox_approve(505)$$);
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_approve(NULL)$$);
CALL regress_try($$SELECT lockbox_approve(505, repeat('x', 2001))$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_deny(request_id, reason)
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try($$SELECT lockbox_deny(NULL, 'Not enough detail given')$$);
CALL regress_try($$SELECT lockbox_deny(501, NULL)$$);
CALL regress_try($$SELECT lockbox_deny(501, '')$$);
CALL regress_try($$SELECT lockbox_deny(501, '          ')$$);
CALL regress_try($$SELECT lockbox_deny(501, 'too short')$$);
CALL regress_try($$SELECT lockbox_deny(501, repeat('x', 1048576))$$);
CALL regress_try($$SELECT lockbox_deny(999999, 'Not enough detail given')$$);
CALL regress_try($$SELECT lockbox_deny(503, 'Not enough detail given')$$);
CALL regress_try($$SELECT lockbox_deny(504, 'Not enough detail given')$$);
CALL regress_try($$SELECT lockbox_deny(502, 'Not enough detail given')$$);
SET SESSION AUTHORIZATION regress_gus;
CALL regress_try($$SELECT lockbox_deny(502, 'Not enough detail given')$$);
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_deny(501, 'Not enough detail given')$$);
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try($$SELECT lockbox_deny(501, 'Not enough detail given')$$);
-- the extension of 505
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_deny(505, NULL)$$);
CALL regress_try($$SELECT lockbox_deny(505, 'too short')$$);
CALL regress_try($$SELECT lockbox_deny(NULL, 'One hour more is too long')$$);
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try($$SELECT lockbox_deny(505, 'One hour more is too long')$$);
SET SESSION AUTHORIZATION regress_gus;
CALL regress_try($$SELECT lockbox_deny(505, 'One hour more is too long')$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_cancel(request_id, reason)
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try($$SELECT lockbox_cancel(NULL)$$);
CALL regress_try($$SELECT lockbox_cancel(999999)$$);
CALL regress_try($$SELECT lockbox_cancel(501, repeat('x', 2001))$$);
CALL regress_try($$SELECT lockbox_cancel(501, repeat('x', 1048576))$$);
CALL regress_try($$SELECT lockbox_cancel(503)$$);
CALL regress_try($$SELECT lockbox_cancel(504)$$);
SET SESSION AUTHORIZATION regress_eve;
CALL regress_try($$SELECT lockbox_cancel(501)$$);
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_cancel(502)$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_close(request_id, resolution)
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try($$SELECT lockbox_close(NULL)$$);
CALL regress_try($$SELECT lockbox_close(999999)$$);
CALL regress_try($$SELECT lockbox_close(503, repeat('x', 2001))$$);
CALL regress_try($$SELECT lockbox_close(503, repeat('x', 1048576))$$);
CALL regress_try($$SELECT lockbox_close(501)$$);
CALL regress_try($$SELECT lockbox_close(502)$$);
CALL regress_try($$SELECT lockbox_close(504)$$);
SET SESSION AUTHORIZATION regress_eve;
CALL regress_try($$SELECT lockbox_close(503)$$);
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_close(503)$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_revoke(request_id, reason)
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_revoke(NULL, 'Customer withdrew consent')$$);
CALL regress_try($$SELECT lockbox_revoke(503, NULL)$$);
CALL regress_try($$SELECT lockbox_revoke(503, '')$$);
CALL regress_try($$SELECT lockbox_revoke(503, '   ')$$);
CALL regress_try($$SELECT lockbox_revoke(503, 'too short')$$);
CALL regress_try($$SELECT lockbox_revoke(503, repeat('x', 1048576))$$);
CALL regress_try($$SELECT lockbox_revoke(999999, 'Customer withdrew consent')$$);
CALL regress_try($$SELECT lockbox_revoke(501, 'Customer withdrew consent')$$);
CALL regress_try($$SELECT lockbox_revoke(502, 'Customer withdrew consent')$$);
CALL regress_try($$SELECT lockbox_revoke(504, 'Customer withdrew consent')$$);
SET SESSION AUTHORIZATION regress_gus;
CALL regress_try($$SELECT lockbox_revoke(503, 'Customer withdrew consent')$$);
-- reviewers may revoke (the operator's emergency stop), with the same
-- checks, but never a request of their own: Rita filed 506
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try($$SELECT lockbox_revoke(NULL, 'Incident: support access stopped')$$);
CALL regress_try($$SELECT lockbox_revoke(503, 'too short')$$);
CALL regress_try($$SELECT lockbox_revoke(999999, 'Incident: support access stopped')$$);
CALL regress_try($$SELECT lockbox_revoke(501, 'Incident: support access stopped')$$);
CALL regress_try($$SELECT lockbox_revoke(504, 'Incident: support access stopped')$$);
SET SESSION AUTHORIZATION regress_rita;
CALL regress_try($$SELECT lockbox_revoke(506, 'Incident: support access stopped')$$);
-- engineers, auditors and nobody may not
SET SESSION AUTHORIZATION regress_eve;
CALL regress_try($$SELECT lockbox_revoke(503, 'Customer withdrew consent')$$);
SET SESSION AUTHORIZATION regress_nora;
CALL regress_try($$SELECT lockbox_revoke(503, 'Customer withdrew consent')$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_extend(request_id, by, reason), by the requester
--   503 approved (a 4-hour window), 505 approved with an extension pending
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try($$SELECT lockbox_extend(NULL, '1 hour', 'Need more time to finish')$$);
CALL regress_try($$SELECT lockbox_extend(503, NULL, 'Need more time to finish')$$);
CALL regress_try($$SELECT lockbox_extend(503, '1 hour', NULL)$$);
-- by: more than zero; the window may end at most
-- lockbox.max_access_duration (8 hours) after the approval
CALL regress_try($$SELECT lockbox_extend(503, '0', 'Need more time to finish')$$);
CALL regress_try($$SELECT lockbox_extend(503, '-1 hour', 'Need more time to finish')$$);
CALL regress_try($$SELECT lockbox_extend(503, '1000 years', 'Need more time to finish')$$);
CALL regress_try($$SELECT lockbox_extend(503, '4 hours 1 second', 'Need more time to finish')$$);
CALL regress_try($$SELECT lockbox_extend(503, '8 hours', 'Need more time to finish')$$);
-- reason: as every reason
CALL regress_try($$SELECT lockbox_extend(503, '1 hour', '')$$);
CALL regress_try($$SELECT lockbox_extend(503, '1 hour', 'too short')$$);
CALL regress_try($$SELECT lockbox_extend(503, '1 hour', repeat('x', 2001))$$);
-- unknown request; wrong state: pending, closed, an extension pending
CALL regress_try($$SELECT lockbox_extend(999999, '1 hour', 'Need more time to finish')$$);
CALL regress_try($$SELECT lockbox_extend(501, '1 hour', 'Need more time to finish')$$);
CALL regress_try($$SELECT lockbox_extend(502, '1 hour', 'Need more time to finish')$$);
CALL regress_try($$SELECT lockbox_extend(504, '1 hour', 'Need more time to finish')$$);
CALL regress_try($$SELECT lockbox_extend(505, '1 hour', 'Need more time to finish')$$);
-- only the requester: another engineer, an approver, a reviewer, nobody
SET SESSION AUTHORIZATION regress_eve;
CALL regress_try($$SELECT lockbox_extend(503, '1 hour', 'Need more time to finish')$$);
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_extend(503, '1 hour', 'Need more time to finish')$$);
SET SESSION AUTHORIZATION regress_rita;
CALL regress_try($$SELECT lockbox_extend(503, '1 hour', 'Need more time to finish')$$);
SET SESSION AUTHORIZATION regress_nobody;
CALL regress_try($$SELECT lockbox_extend(503, '1 hour', 'Need more time to finish')$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_remove_tenant(tenant), by the owner
-- ---------------------------------------------------------------------
CALL regress_try($$SELECT lockbox_remove_tenant(NULL)$$);
CALL regress_try($$SELECT lockbox_remove_tenant('')$$);
CALL regress_try($$SELECT lockbox_remove_tenant(' cyberdyne')$$);
CALL regress_try($$SELECT lockbox_remove_tenant(repeat('x', 1048576))$$);
CALL regress_try($$SELECT lockbox_remove_tenant('no_such_tenant')$$);
CALL regress_try($$SELECT lockbox_remove_tenant('CYBERDYNE')$$);
-- Cyberdyne has open requests; Tyrell has a table of its own
CALL regress_try($$SELECT lockbox_remove_tenant('cyberdyne')$$);
CALL regress_try($$SELECT lockbox_remove_tenant('tyrell')$$);
-- only the extension owner
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_remove_tenant('tyrell')$$);
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try($$SELECT lockbox_remove_tenant('tyrell')$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_add_tenant(tenant, enabled, required_approvals), by the owner
-- ---------------------------------------------------------------------
CALL regress_try($$SELECT lockbox_add_tenant(NULL)$$);
CALL regress_try($$SELECT lockbox_add_tenant('soylent', NULL)$$);
CALL regress_try($$SELECT lockbox_add_tenant('soylent', true, NULL)$$);
CALL regress_try($$SELECT lockbox_add_tenant('')$$);
CALL regress_try($$SELECT lockbox_add_tenant('   ')$$);
CALL regress_try($$SELECT lockbox_add_tenant(' soylent')$$);
CALL regress_try($$SELECT lockbox_add_tenant('soylent ')$$);
CALL regress_try($$SELECT lockbox_add_tenant(E'soylent\n')$$);
CALL regress_try($$SELECT lockbox_add_tenant(repeat('x', 201))$$);
CALL regress_try($$SELECT lockbox_add_tenant(repeat('x', 1048576))$$);
CALL regress_try($$SELECT lockbox_add_tenant('soylent', required_approvals => 0)$$);
CALL regress_try($$SELECT lockbox_add_tenant('soylent', required_approvals => -1)$$);
CALL regress_try($$SELECT lockbox_add_tenant('soylent', required_approvals => 101)$$);
CALL regress_try($$SELECT lockbox_add_tenant('cyberdyne')$$);
CALL regress_try($$SELECT lockbox_add_tenant('cyberdyne', false, 3)$$);
-- only the extension owner
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_add_tenant('soylent')$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_set_enabled(tenant, enabled), by the tenant's approvers
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_set_enabled(NULL, false)$$);
CALL regress_try($$SELECT lockbox_set_enabled('cyberdyne', NULL)$$);
CALL regress_try($$SELECT lockbox_set_enabled('', false)$$);
CALL regress_try($$SELECT lockbox_set_enabled(' cyberdyne', false)$$);
CALL regress_try($$SELECT lockbox_set_enabled(repeat('x', 1048576), false)$$);
CALL regress_try($$SELECT lockbox_set_enabled('no_such_tenant', false)$$);
CALL regress_try($$SELECT lockbox_set_enabled('tyrell', false)$$);
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try($$SELECT lockbox_set_enabled('cyberdyne', false)$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_add_approver(tenant, approver), by the owner
-- ---------------------------------------------------------------------
CALL regress_try($$SELECT lockbox_add_approver(NULL, 'regress_gus')$$);
CALL regress_try($$SELECT lockbox_add_approver('cyberdyne', NULL)$$);
CALL regress_try($$SELECT lockbox_add_approver('', 'regress_gus')$$);
CALL regress_try($$SELECT lockbox_add_approver(' cyberdyne', 'regress_gus')$$);
CALL regress_try($$SELECT lockbox_add_approver(repeat('x', 1048576), 'regress_gus')$$);
CALL regress_try($$SELECT lockbox_add_approver('no_such_tenant', 'regress_gus')$$);
-- an unknown role name is refused by regrole's input function itself; a
-- number that is no role's OID by lockbox
CALL regress_try($$SELECT lockbox_add_approver('cyberdyne', 'regress_no_such_role')$$);
CALL regress_try($$SELECT lockbox_add_approver('cyberdyne', 4294967295::oid::regrole)$$);
-- the role must be a member of lockbox_approver
CALL regress_try($$SELECT lockbox_add_approver('cyberdyne', 'regress_erin')$$);
CALL regress_try($$SELECT lockbox_add_approver('cyberdyne', 'regress_nobody')$$);
-- already bound
CALL regress_try($$SELECT lockbox_add_approver('cyberdyne', 'regress_ada')$$);
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_add_approver('cyberdyne', 'regress_gus')$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_remove_approver(tenant, approver), by the owner
-- ---------------------------------------------------------------------
CALL regress_try($$SELECT lockbox_remove_approver(NULL, 'regress_ada')$$);
CALL regress_try($$SELECT lockbox_remove_approver('cyberdyne', NULL)$$);
CALL regress_try($$SELECT lockbox_remove_approver('', 'regress_ada')$$);
CALL regress_try($$SELECT lockbox_remove_approver('cyberdyne ', 'regress_ada')$$);
CALL regress_try($$SELECT lockbox_remove_approver('no_such_tenant', 'regress_ada')$$);
CALL regress_try($$SELECT lockbox_remove_approver('cyberdyne', 'regress_no_such_role')$$);
CALL regress_try($$SELECT lockbox_remove_approver('cyberdyne', 4294967295::oid::regrole)$$);
-- Gus is an approver, but not Cyberdyne's
CALL regress_try($$SELECT lockbox_remove_approver('cyberdyne', 'regress_gus')$$);
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_remove_approver('cyberdyne', 'regress_ada')$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_protect(rel, tenant_column, tenant), lockbox_unprotect(rel),
-- by the table's owner
-- ---------------------------------------------------------------------
CALL regress_try($$SELECT lockbox_protect(NULL, 'tenant')$$);
CALL regress_try($$SELECT lockbox_protect('regress_unprotected')$$);
CALL regress_try($$SELECT lockbox_protect('regress_unprotected', 'id', 'cyberdyne')$$);
CALL regress_try($$SELECT lockbox_protect('regress_unprotected', tenant => '')$$);
CALL regress_try($$SELECT lockbox_protect('regress_unprotected', tenant => ' cyberdyne')$$);
CALL regress_try($$SELECT lockbox_protect('regress_unprotected', tenant => 'no_such_tenant')$$);
CALL regress_try($$SELECT lockbox_protect('regress_unprotected', tenant_column => 'no_such_column')$$);
CALL regress_try($$SELECT lockbox_protect('regress_no_such_table', tenant => 'cyberdyne')$$);
CALL regress_try($$SELECT lockbox_protect(4294967295::oid::regclass, tenant => 'cyberdyne')$$);
CALL regress_try($$SELECT lockbox_protect('regress_a_view', tenant => 'cyberdyne')$$);
CALL regress_try($$SELECT lockbox_protect('regress_cd_data', tenant_column => 'price')$$);
CALL regress_try($$SELECT lockbox_protect('regress_cd_data', tenant_column => 'tenant')$$);
CALL regress_try($$SELECT lockbox_protect('regress_tyrell_only', tenant => 'tyrell')$$);
CALL regress_try($$SELECT lockbox_unprotect(NULL)$$);
CALL regress_try($$SELECT lockbox_unprotect('regress_unprotected')$$);
CALL regress_try($$SELECT lockbox_unprotect(4294967295::oid::regclass)$$);
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- ---------------------------------------------------------------------
-- lockbox_claim_notifications(max), lockbox_ack_notification(id), by the
-- notification service (an auditor)
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_nora;
CALL regress_try($$SELECT * FROM lockbox_claim_notifications(NULL)$$);
CALL regress_try($$SELECT * FROM lockbox_claim_notifications(0)$$);
CALL regress_try($$SELECT * FROM lockbox_claim_notifications(-1)$$);
CALL regress_try($$SELECT * FROM lockbox_claim_notifications(10001)$$);
CALL regress_try($$SELECT * FROM lockbox_claim_notifications(2147483647)$$);
CALL regress_try($$SELECT lockbox_ack_notification(NULL)$$);
CALL regress_try($$SELECT lockbox_ack_notification(999999999)$$);
CALL regress_try($$SELECT lockbox_ack_notification(-1)$$);
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT * FROM lockbox_claim_notifications(10)$$);
CALL regress_try($$SELECT lockbox_ack_notification(1)$$);
RESET SESSION AUTHORIZATION;
SELECT regress_lockbox_state() = :'before' AS unchanged;

-- The fixture requests are as they were.
SELECT id, state FROM lockbox.requests WHERE tenant = 'cyberdyne' ORDER BY id;

-- ---------------------------------------------------------------------
-- Clean-up: Erin ends the access she still has, the roles go.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_close(503), lockbox_close(505);
SET SESSION AUTHORIZATION regress_rita;
SELECT lockbox_close(506);
RESET SESSION AUTHORIZATION;
SELECT lockbox_remove_approver('cyberdyne', 'regress_ada');
SELECT lockbox_remove_approver('tyrell', 'regress_gus');
SELECT lockbox_unprotect('regress_cd_data');
SELECT lockbox_unprotect('regress_tyrell_only');
DROP VIEW regress_a_view;
DROP TABLE regress_cd_data, regress_tyrell_only, regress_unprotected;
DROP FUNCTION regress_lockbox_state();
DROP ROLE regress_erin, regress_eve, regress_mia, regress_ada, regress_gus,
	regress_nora, regress_rita, regress_nobody;
