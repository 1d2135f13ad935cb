--
-- 20_security: lifecycle functions in a read-only transaction; an
-- engineer's upsert; lockbox_adopt_database outside a copy; an exclusion
-- constraint's violation; debug_print_plan; statistics of relations.
--
-- Uses regress_try from 00_setup; its own roles, tenants and tables.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_sec_erin, regress_sec_mia, regress_sec_ada;
RESET client_min_messages;

CREATE ROLE regress_sec_erin IN ROLE lockbox_engineer;
CREATE ROLE regress_sec_mia IN ROLE lockbox_reviewer;
CREATE ROLE regress_sec_ada IN ROLE lockbox_approver;
SELECT setval('lockbox.request_id_seq', 2000);
SELECT lockbox_add_tenant('sec_acme');
SELECT lockbox_add_tenant('sec_globex');
SELECT lockbox_add_approver('sec_acme', 'regress_sec_ada');

CREATE TABLE sec_orders (id int PRIMARY KEY, tenant text NOT NULL, note text);
INSERT INTO sec_orders SELECT g, CASE WHEN g % 2 = 0 THEN 'sec_acme' ELSE 'sec_globex' END, 'n'
  FROM generate_series(1, 10) g;
SELECT lockbox_protect('sec_orders', tenant_column => 'tenant');

-- ---------------------------------------------------------------------
-- A read-only transaction (default_transaction_read_only, SET TRANSACTION
-- READ ONLY): every function that changes lockbox's state is refused up
-- front, 25006 with lockbox's message naming the function, never core's
-- about the nextval() or UPDATE lockbox runs inside.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_sec_erin;
SELECT lockbox_request('sec_acme', 'Orders of acme look wrong', access => 'write') AS req \gset
SET SESSION AUTHORIZATION regress_sec_mia;
SET default_transaction_read_only = on;
CALL regress_try(format('SELECT lockbox_approve(%s)', :req));
CALL regress_try(format('SELECT lockbox_deny(%s, %L)', :req, 'not a good reason at all'));
RESET default_transaction_read_only;
SELECT lockbox_approve(:req);
SET SESSION AUTHORIZATION regress_sec_ada;
SELECT lockbox_approve(:req);
SET SESSION AUTHORIZATION regress_sec_erin;
SET default_transaction_read_only = on;
CALL regress_try($$SELECT lockbox_request('sec_acme', 'Orders of acme look wrong')$$);
CALL regress_try(format('SELECT lockbox_extend(%s, %L, %L)', :req, '1 hour', 'need more time here'));
CALL regress_try(format('SELECT lockbox_close(%s)', :req));
CALL regress_try(format('SELECT lockbox_cancel(%s)', :req));
RESET default_transaction_read_only;
BEGIN TRANSACTION READ ONLY;
CALL regress_try($$SELECT lockbox_request('sec_acme', 'Orders of acme look wrong')$$);
ROLLBACK;
SET SESSION AUTHORIZATION regress_sec_ada;
SET default_transaction_read_only = on;
CALL regress_try(format('SELECT lockbox_revoke(%s, %L)', :req, 'the customer withdrew consent'));
CALL regress_try($$SELECT lockbox_set_enabled('sec_acme', false)$$);
RESET default_transaction_read_only;
RESET SESSION AUTHORIZATION;
SET default_transaction_read_only = on;
CALL regress_try($$SELECT lockbox_add_tenant('sec_initech')$$);
CALL regress_try($$SELECT lockbox_remove_tenant('sec_globex')$$);
CALL regress_try($$SELECT lockbox_add_approver('sec_globex', 'regress_sec_ada')$$);
CALL regress_try($$SELECT lockbox_remove_approver('sec_acme', 'regress_sec_ada')$$);
CALL regress_try($$SELECT lockbox_protect('sec_orders', tenant_column => 'tenant')$$);
CALL regress_try($$SELECT lockbox_unprotect('sec_orders')$$);
CALL regress_try($$SELECT * FROM lockbox_claim_notifications(1)$$);
CALL regress_try($$SELECT lockbox_ack_notification(1)$$);
CALL regress_try($$SELECT lockbox_fail_notification(1, 'bounced')$$);
CALL regress_try($$SELECT lockbox_set_contact('regress_sec_ada', 'ada@example.com')$$);
CALL regress_try($$SELECT lockbox_set_webhook('sec_acme', 'https://example.com/hook')$$);
CALL regress_try($$SELECT * FROM lockbox_archive_audit(now())$$);
CALL regress_try($$SELECT lockbox_adopt_database()$$);
-- reading works as before
SELECT rows_checked > 0 AS verified FROM lockbox_verify_audit();
RESET default_transaction_read_only;
SELECT state FROM lockbox.requests WHERE id = :req;

-- ---------------------------------------------------------------------
-- INSERT ... ON CONFLICT DO UPDATE under write access: its EXCLUDED row is
-- the row proposed, not a read of the table through anything else.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_sec_erin;
INSERT INTO sec_orders VALUES (2, 'sec_acme', 'new') ON CONFLICT (id)
	DO UPDATE SET note = excluded.note || ' (upserted)';
INSERT INTO sec_orders VALUES (20, 'sec_acme', 'new') ON CONFLICT (id)
	DO UPDATE SET note = excluded.note || ' (upserted)';
SELECT id, tenant, note FROM sec_orders WHERE id IN (2, 20) ORDER BY id;
-- onto another tenant's row, or moving a row to another tenant: refused
CALL regress_try($$INSERT INTO sec_orders VALUES (3, 'sec_acme', 'x') ON CONFLICT (id)
	DO UPDATE SET note = 'taken'$$);
CALL regress_try($$INSERT INTO sec_orders VALUES (4, 'sec_acme', 'x') ON CONFLICT (id)
	DO UPDATE SET tenant = 'sec_globex'$$);
-- and in a data-modifying WITH
WITH u AS (INSERT INTO sec_orders VALUES (4, 'sec_acme', 'w') ON CONFLICT (id)
	DO UPDATE SET note = excluded.note RETURNING id, note)
SELECT * FROM u;
SELECT lockbox_close(:req);
CALL regress_try($$INSERT INTO sec_orders VALUES (2, 'sec_acme', 'x') ON CONFLICT (id)
	DO UPDATE SET note = 'closed'$$);
RESET SESSION AUTHORIZATION;
SELECT id, tenant, note FROM sec_orders WHERE id IN (2, 3, 4, 20) ORDER BY id;

-- ---------------------------------------------------------------------
-- lockbox_adopt_database: for a copy (test/t/042_security.pl), by a
-- superuser or the extension owner.
-- ---------------------------------------------------------------------
CALL regress_try('SELECT lockbox_adopt_database()');
SET SESSION AUTHORIZATION regress_sec_mia;
CALL regress_try('SELECT lockbox_adopt_database()');
RESET SESSION AUTHORIZATION;
SELECT datid = (SELECT oid FROM pg_database WHERE datname = current_database()) AS this_database,
	   requests_void_through
  FROM lockbox.installation;

-- ---------------------------------------------------------------------
-- An exclusion constraint's violation names the existing row's key: an
-- engineer does not see it (a row of another tenant).
-- ---------------------------------------------------------------------
CREATE TABLE sec_rooms (tenant text NOT NULL, during tsrange NOT NULL,
	EXCLUDE USING gist (during WITH &&));
INSERT INTO sec_rooms VALUES ('sec_globex', '[2026-01-01 10:00, 2026-01-01 12:00)');
SELECT lockbox_protect('sec_rooms', tenant_column => 'tenant');
SET SESSION AUTHORIZATION regress_sec_erin;
SELECT lockbox_request('sec_acme', 'Bookings of acme look wrong', access => 'write') AS req2 \gset
SET SESSION AUTHORIZATION regress_sec_mia;
SELECT lockbox_approve(:req2);
SET SESSION AUTHORIZATION regress_sec_ada;
SELECT lockbox_approve(:req2);
SET SESSION AUTHORIZATION regress_sec_erin;
CALL regress_try($$INSERT INTO sec_rooms VALUES ('sec_acme', '[2026-01-01 11:00, 2026-01-01 13:00)')$$);
INSERT INTO sec_rooms VALUES ('sec_acme', '[2026-01-01 11:00, 2026-01-01 13:00)');
INSERT INTO sec_rooms VALUES ('sec_acme', '[2026-01-01 12:00, 2026-01-01 13:00)');
SELECT lockbox_close(:req2);
RESET SESSION AUTHORIZATION;
-- the application's statements show it as usual
CALL regress_try($$INSERT INTO sec_rooms VALUES ('sec_acme', '[2026-01-01 11:00, 2026-01-01 13:00)')$$);

-- ---------------------------------------------------------------------
-- debug_print_plan with client_min_messages at log would send an engineer
-- the plan with its estimates (what EXPLAIN shows with costs): refused
-- before core prints it.
-- ---------------------------------------------------------------------
CREATE FUNCTION pg_temp.sec_plan() RETURNS bigint LANGUAGE plpgsql
	SET debug_print_plan = on SET client_min_messages = log AS $$
BEGIN
	RETURN (SELECT count(*) FROM public.sec_orders WHERE note = 'n');
END
$$;
SET SESSION AUTHORIZATION regress_sec_erin;
CALL regress_try('SELECT pg_temp.sec_plan()');
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- The cumulative statistics of relations count what scans read before the
-- policies filtered it: with an index on note, a condition note = '...'
-- is an index condition below lockbox's filter, and the index's count of
-- tuples returned tells whether another tenant has such a row.  Engineers
-- read none of them in a database with protected tables, however called.
-- ---------------------------------------------------------------------
CREATE INDEX sec_orders_note ON sec_orders (note);
SET SESSION AUTHORIZATION regress_sec_erin;
CALL regress_try($$SELECT pg_stat_get_xact_tuples_returned('sec_orders_note'::regclass)$$);
CALL regress_try($$SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'sec_orders_note'$$);
CALL regress_try($$SELECT heap_blks_read FROM pg_statio_user_tables WHERE relname = 'sec_orders'$$);
CALL regress_try($$SELECT tup_fetched FROM pg_stat_database WHERE datname = current_database()$$);
CALL regress_try($$SELECT * FROM pg_stat_get_tuples_fetched('sec_orders'::regclass)$$);
CALL regress_try($q$DO $do$ BEGIN PERFORM pg_stat_get_blocks_hit('sec_orders'::regclass); END $do$$q$);
-- nor through an inlined SQL function, an operator or an aggregate of
-- their own
CREATE FUNCTION pg_temp.sec_count(oid) RETURNS bigint LANGUAGE sql
	AS 'SELECT pg_stat_get_xact_tuples_returned($1)';
CALL regress_try($$SELECT pg_temp.sec_count('sec_orders_note'::regclass)$$);
CREATE OPERATOR pg_temp.### (RIGHTARG = oid, FUNCTION = pg_stat_get_xact_tuples_returned);
CALL regress_try($$SELECT OPERATOR(pg_temp.###) 'sec_orders_note'::regclass::oid$$);
CREATE AGGREGATE pg_temp.sec_agg(oid) (SFUNC = oidlarger, STYPE = oid,
	FINALFUNC = pg_stat_get_xact_tuples_returned);
CALL regress_try($$SELECT pg_temp.sec_agg('sec_orders_note'::regclass::oid)$$);
DROP AGGREGATE pg_temp.sec_agg(oid);
DROP OPERATOR pg_temp.### (NONE, oid);
DROP FUNCTION pg_temp.sec_count(oid);
-- one's own sessions are still one's own to see
SELECT count(*) > 0 AS mine FROM pg_stat_activity WHERE pid = pg_backend_pid();
RESET SESSION AUTHORIZATION;
SELECT pg_stat_get_xact_tuples_returned('sec_orders_note'::regclass) >= 0 AS others_may;

-- clean up
SELECT lockbox_unprotect('sec_orders');
SELECT lockbox_unprotect('sec_rooms');
DROP TABLE sec_orders, sec_rooms;
SELECT lockbox_remove_approver('sec_acme', 'regress_sec_ada');
SELECT lockbox_remove_tenant(t) FROM unnest('{sec_acme,sec_globex}'::text[]) t;
DROP ROLE regress_sec_erin, regress_sec_mia, regress_sec_ada;
