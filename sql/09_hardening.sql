--
-- 09_hardening: the ways around lockbox an independent review tried, each
-- now closed: calendar durations longer than they compare, access outliving
-- its window inside one long statement, LOCK TABLE, EXPLAIN without access,
-- foreign keys that cascade into tables a request does not cover, one
-- approver waiving a quorum, case-insensitive tenant columns, and a schema
-- where engineers can create functions that shadow lockbox's.
--
-- Uses regress_try from 00_setup; its own roles, tenants and tables.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_hard_erin, regress_hard_mia, regress_hard_ada,
	regress_hard_alan;
RESET client_min_messages;

CREATE ROLE regress_hard_erin IN ROLE lockbox_engineer;
CREATE ROLE regress_hard_mia IN ROLE lockbox_reviewer;
CREATE ROLE regress_hard_ada IN ROLE lockbox_approver;
CREATE ROLE regress_hard_alan IN ROLE lockbox_approver;
SELECT setval('lockbox.request_id_seq', 900);

SELECT lockbox_add_tenant('hard_umbrella');
SELECT lockbox_add_approver('hard_umbrella', 'regress_hard_ada');
SELECT lockbox_add_tenant('hard_wayne', required_approvals => 2);
SELECT lockbox_add_approver('hard_wayne', 'regress_hard_ada');
SELECT lockbox_add_approver('hard_wayne', 'regress_hard_alan');

CREATE TABLE hard_invoices (id int PRIMARY KEY, tenant text NOT NULL, total numeric);
CREATE TABLE hard_items (id int PRIMARY KEY, tenant text NOT NULL,
						 invoice_id int REFERENCES hard_invoices ON DELETE CASCADE);
INSERT INTO hard_invoices VALUES (1, 'hard_umbrella', 10), (2, 'hard_wayne', 20);
INSERT INTO hard_items VALUES (10, 'hard_umbrella', 1), (20, 'hard_wayne', 2);
SELECT lockbox_protect('hard_invoices', tenant_column => 'tenant');
SELECT lockbox_protect('hard_items', tenant_column => 'tenant');

-- ---------------------------------------------------------------------
-- Durations are checked as the length of time they span.  A month compares
-- as 30 days, so '100 years -36000 days' once compared as nothing at all
-- while spanning over a year of calendar time.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_hard_erin;
-- (how long these span depends on today's date: the message is matched;
-- in February the second spans less than nothing, and is refused for that)
CALL regress_try($$SELECT lockbox_request('hard_umbrella', 'Check the invoice totals',
	tables => '{hard_invoices}', duration => '100 years -36000 days 8 hours')$$,
	message_matches => '^duration \d+:00:00 exceeds lockbox\.max_access_duration \(08:00:00\)$');
CALL regress_try($$SELECT lockbox_request('hard_umbrella', 'Check the invoice totals',
	tables => '{hard_invoices}', duration => '1 mon -29 days 12 hours')$$,
	message_matches => '^(duration \d+:00:00 exceeds lockbox\.max_access_duration \(08:00:00\)|duration must be greater than zero)$');
CALL regress_try($$SELECT lockbox_request('hard_umbrella', 'Check the invoice totals',
	tables => '{hard_invoices}', duration => '100000 years')$$);
-- a duration is kept as the exact length it spans: '1 day -20 hours' is 4
-- hours (in UTC; where a day has 23 or 25 hours it spans 3 or 5)
SET TimeZone = 'UTC';
SELECT lockbox_request('hard_umbrella', 'Check the invoice totals',
	tables => '{hard_invoices}', duration => '1 day -20 hours') AS read_id \gset
SELECT duration FROM lockbox.requests WHERE id = :read_id;
RESET TimeZone;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- Without access: EXPLAIN and LOCK TABLE are refused too.  The planner's
-- estimates tell about rows; a lock would stop the application.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_hard_erin;
CALL regress_try($$EXPLAIN SELECT * FROM hard_invoices WHERE tenant = 'hard_wayne'$$);
CALL regress_try($$LOCK TABLE hard_invoices IN ACCESS EXCLUSIVE MODE$$);
RESET SESSION AUTHORIZATION;

-- With read access, LOCK TABLE stays refused; EXPLAIN works.
SET SESSION AUTHORIZATION regress_hard_mia;
SELECT lockbox_approve(:read_id);
SET SESSION AUTHORIZATION regress_hard_ada;
SELECT lockbox_approve(:read_id);
SET SESSION AUTHORIZATION regress_hard_erin;
CALL regress_try($$LOCK TABLE hard_invoices IN ACCESS SHARE MODE$$);
CALL regress_try($$EXPLAIN (COSTS OFF) SELECT * FROM hard_invoices$$);
SELECT lockbox_close(:read_id);
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- Deleting an invoice deletes its items (ON DELETE CASCADE), as the items'
-- owner, past lockbox: write access to the invoices must cover the items.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_hard_erin;
CALL regress_try($$SELECT lockbox_request('hard_umbrella', 'Remove a duplicate invoice',
	tables => '{hard_invoices}', access => 'write')$$);
-- reading needs no such thing, and a request naming both tables is accepted
CALL regress_try($$SELECT lockbox_request('hard_umbrella', 'Look at the invoices only',
	tables => '{hard_invoices}')$$);
CALL regress_try($$SELECT lockbox_request('hard_umbrella', 'Remove a duplicate invoice',
	tables => '{hard_invoices,hard_items}', access => 'write')$$);
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- A tenant that needs two approvals: one approver cannot switch its
-- lockbox off (with lockbox off, the review alone approves).
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_hard_ada;
CALL regress_try($$SELECT lockbox_set_enabled('hard_wayne', false)$$);
SELECT lockbox_set_enabled('hard_umbrella', false);
SELECT lockbox_set_enabled('hard_umbrella', true);
RESET SESSION AUTHORIZATION;
SELECT tenant, enabled, required_approvals FROM lockbox.tenants
 WHERE tenant IN ('hard_umbrella', 'hard_wayne') ORDER BY tenant;

-- ---------------------------------------------------------------------
-- lockbox_revoke waits at most a second for a request another session
-- holds, with a lock_timeout of its own that it leaves to nobody.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_hard_erin;
SELECT lockbox_request('hard_umbrella', 'Look at the invoices again',
	tables => '{hard_invoices}') AS revoked_id \gset
SET SESSION AUTHORIZATION regress_hard_mia;
SELECT lockbox_approve(:revoked_id);
SET SESSION AUTHORIZATION regress_hard_ada;
SELECT lockbox_approve(:revoked_id);
BEGIN;
SELECT lockbox_revoke(:revoked_id, 'The customer withdrew consent');
SHOW lock_timeout;
COMMIT;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- Access ends with the window even inside one statement that runs on:
-- every statement of a DO block is checked against the real clock.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_hard_erin;
SELECT lockbox_request('hard_umbrella', 'Watch the invoice totals for a moment',
	tables => '{hard_invoices}', duration => '2 seconds') AS short_id \gset
SET SESSION AUTHORIZATION regress_hard_mia;
SELECT lockbox_approve(:short_id);
SET SESSION AUTHORIZATION regress_hard_ada;
SELECT lockbox_approve(:short_id);
SET SESSION AUTHORIZATION regress_hard_erin;
CALL regress_try($q$DO $do$
DECLARE
	n int;
BEGIN
	FOR i IN 1 .. 8 LOOP
		SELECT count(*) INTO n FROM hard_invoices;
		PERFORM pg_sleep(0.5);
	END LOOP;
END
$do$ $q$);
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- A case-insensitive tenant column would let 'acme' see 'ACME': refused.
-- ---------------------------------------------------------------------
CREATE COLLATION hard_ci (provider = icu, locale = 'und-u-ks-level2',
						  deterministic = false);
CREATE TABLE hard_notes (tenant text COLLATE hard_ci, note text);
CALL regress_try($$SELECT lockbox_protect('hard_notes', tenant_column => 'tenant')$$);

-- ---------------------------------------------------------------------
-- lockbox.posture: engineers who may create functions in lockbox's schema
-- could shadow lockbox_approve for a reviewer.
-- ---------------------------------------------------------------------
SELECT check_name, object, ok FROM lockbox.posture
 WHERE check_name = 'schema_writable';
GRANT CREATE ON SCHEMA public TO lockbox_engineer;
SELECT check_name, object, ok FROM lockbox.posture
 WHERE check_name = 'schema_writable';
REVOKE CREATE ON SCHEMA public FROM lockbox_engineer;

-- ---------------------------------------------------------------------
-- Clean-up
-- ---------------------------------------------------------------------
SELECT lockbox_unprotect('hard_invoices');
SELECT lockbox_unprotect('hard_items');
DROP TABLE hard_items, hard_invoices, hard_notes;
DROP COLLATION hard_ci;
DROP ROLE regress_hard_erin, regress_hard_mia, regress_hard_ada,
	regress_hard_alan;
