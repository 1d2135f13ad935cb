--
-- 21_leaks: core features that would hand an engineer what lockbox keeps
-- from them (1.7): notifications on the application's channels; the
-- statistics functions wherever an expression is evaluated; plans sent to
-- the client, EXPLAIN's BUFFERS; privileges core checks as a statement
-- starts.
--
-- Uses regress_try from 00_setup; its own roles, tenants and tables.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_lk_erin, regress_lk_mia, regress_lk_ada, regress_lk_app;
RESET client_min_messages;

CREATE ROLE regress_lk_erin IN ROLE lockbox_engineer;
CREATE ROLE regress_lk_mia IN ROLE lockbox_reviewer;
CREATE ROLE regress_lk_ada IN ROLE lockbox_approver;
-- the application's role, which the engineer is (wrongly) a member of
CREATE ROLE regress_lk_app;
GRANT regress_lk_app TO regress_lk_erin;
SELECT setval('lockbox.request_id_seq', 3800);
SELECT lockbox_add_tenant('lk_acme');
SELECT lockbox_add_tenant('lk_globex');
SELECT lockbox_add_approver('lk_acme', 'regress_lk_ada');

CREATE TABLE lk_orders (id int PRIMARY KEY, tenant text NOT NULL, note text);
INSERT INTO lk_orders SELECT g, CASE WHEN g % 2 = 0 THEN 'lk_acme' ELSE 'lk_globex' END, 'n'
  FROM generate_series(1, 10) g;
SELECT lockbox_protect('lk_orders', tenant_column => 'tenant');
GRANT ALL ON SCHEMA public TO regress_lk_erin;

CREATE FUNCTION lk_grant(acc text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	id bigint;
BEGIN
	SET LOCAL SESSION AUTHORIZATION regress_lk_erin;
	id := lockbox_request('lk_acme', 'Orders of acme look wrong', access => acc);
	SET LOCAL SESSION AUTHORIZATION regress_lk_mia;
	PERFORM lockbox_approve(id);
	SET LOCAL SESSION AUTHORIZATION regress_lk_ada;
	PERFORM lockbox_approve(id);
	RETURN id;
END
$$;
SELECT lk_grant('write') AS req \gset

-- ---------------------------------------------------------------------
-- LISTEN: notifications go to every session listening on the channel,
-- with whatever payload the application's sessions send (a trigger may
-- send a row's values).  A session of a member of lockbox's roles
-- listens on channel lockbox only, whatever role it acts as; everyone else
-- as before.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_lk_erin;
CALL regress_try('LISTEN lk_orders_changed');
CALL regress_try('LISTEN "Lockbox"');
-- (rolled back: notifications on lockbox would arrive at any moment)
BEGIN;
CALL regress_try('LISTEN lockbox');
ROLLBACK;
SET ROLE regress_lk_app;
CALL regress_try('LISTEN lk_orders_changed');
RESET ROLE;
RESET SESSION AUTHORIZATION;
-- nor does an approver's, or a reviewer's: another tenant's rows
SET SESSION AUTHORIZATION regress_lk_ada;
CALL regress_try('LISTEN lk_orders_changed');
BEGIN;
CALL regress_try('LISTEN lockbox');
ROLLBACK;
SET SESSION AUTHORIZATION regress_lk_mia;
CALL regress_try('LISTEN lk_orders_changed');
SET SESSION AUTHORIZATION regress_lk_app;
CALL regress_try('LISTEN lk_orders_changed');
UNLISTEN *;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- The statistics functions of relations count what scans read before the
-- policies filtered it (20_security).  An engineer's call of one is
-- refused also where its expression is evaluated without being planned:
-- EXECUTE's and CALL's arguments, a CHECK constraint, a domain's
-- constraint, a trigger's WHEN, a column default or ALTER TABLE ... USING
-- evaluated at once.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_lk_erin;
PREPARE lk_p(bigint) AS SELECT $1 > 0;
CALL regress_try($$EXECUTE lk_p(pg_stat_get_numscans('lk_orders'::regclass))$$);
CREATE PROCEDURE pg_temp.lk_proc(n bigint) LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'got it'; END $$;
CALL regress_try($$CALL pg_temp.lk_proc(pg_stat_get_numscans('lk_orders'::regclass))$$);
CREATE TEMP TABLE lk_probe (x oid CHECK (pg_stat_get_numscans(x) >= 0));
CALL regress_try($$INSERT INTO lk_probe VALUES ('lk_orders'::regclass)$$);
CREATE DOMAIN pg_temp.lk_dom AS oid CHECK (pg_stat_get_numscans(VALUE) >= 0);
CALL regress_try($$SELECT 'lk_orders'::regclass::oid::pg_temp.lk_dom$$);
CREATE TEMP TABLE lk_probe2 (x oid);
CREATE TRIGGER lk_when BEFORE INSERT ON lk_probe2 FOR EACH ROW
	WHEN (pg_stat_get_numscans(NEW.x) >= 0) EXECUTE FUNCTION suppress_redundant_updates_trigger();
CALL regress_try($$INSERT INTO lk_probe2 VALUES ('lk_orders'::regclass)$$);
DROP TRIGGER lk_when ON lk_probe2;
INSERT INTO lk_probe2 VALUES ('lk_orders'::regclass);
CALL regress_try($$ALTER TABLE lk_probe2 ADD COLUMN n bigint DEFAULT pg_stat_get_numscans('lk_orders'::regclass)$$);
CALL regress_try($$ALTER TABLE lk_probe2 ALTER COLUMN x TYPE bigint USING pg_stat_get_numscans(x)$$);
DEALLOCATE lk_p;
DROP TABLE lk_probe, lk_probe2;
DROP DOMAIN pg_temp.lk_dom;
-- functions of other names are theirs to call
CALL regress_try($$CALL pg_temp.lk_proc(length('x'))$$);
DROP PROCEDURE pg_temp.lk_proc(bigint);
RESET SESSION AUTHORIZATION;
-- the application's roles as before
PREPARE lk_p(bigint) AS SELECT $1 >= 0;
EXECUTE lk_p(pg_stat_get_numscans('lk_orders'::regclass));
DEALLOCATE lk_p;

-- ---------------------------------------------------------------------
-- Plans sent to the client hold the planner's estimates, from statistics
-- of every tenant's rows (what EXPLAIN shows with costs): an engineer's
-- statement on protected data is refused while messages of level LOG
-- reach the client (debug_print_plan prints there, and auto_explain by
-- default), and while auto_explain logs at a level the client gets; also
-- when the setting changes as the statement runs (auto_explain prints as
-- it ends).  Recorded as refused.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_lk_erin;
SET client_min_messages = log;
SELECT count(*) FROM lk_orders;
RESET client_min_messages;
SELECT count(*) FROM lk_orders;
RESET SESSION AUTHORIZATION;
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_level = notice;
SET SESSION AUTHORIZATION regress_lk_erin;
CALL regress_try('SELECT count(*) FROM lk_orders');
RESET SESSION AUTHORIZATION;
SET auto_explain.log_level = log;
SET SESSION AUTHORIZATION regress_lk_erin;
SELECT count(*) FROM lk_orders;
SELECT set_config('client_min_messages', 'log', false) AS level, count(*) FROM lk_orders GROUP BY 1;
RESET client_min_messages;
RESET SESSION AUTHORIZATION;
RESET auto_explain.log_min_duration;
RESET auto_explain.log_analyze;
RESET auto_explain.log_level;

-- EXPLAIN's BUFFERS without ANALYZE counts the pages planning read, the
-- index entries of every tenant among them: a number, as COSTS
SET SESSION AUTHORIZATION regress_lk_erin;
CALL regress_try('EXPLAIN (COSTS OFF, BUFFERS) SELECT * FROM lk_orders');
EXPLAIN (COSTS OFF, BUFFERS OFF) SELECT * FROM lk_orders WHERE id = 2;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- Core checks the privileges of a statement's tables, columns and
-- functions as it starts, after lockbox let it start: refused (and
-- recorded as refused: see TAP 044) when the engineer lacks one.
-- ---------------------------------------------------------------------
REVOKE DELETE ON lk_orders FROM lockbox_engineer;
REVOKE SELECT ON lk_orders FROM lockbox_engineer;
GRANT SELECT (id, tenant) ON lk_orders TO lockbox_engineer;
CREATE FUNCTION lk_secret(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
REVOKE EXECUTE ON FUNCTION lk_secret(int) FROM PUBLIC;
SET SESSION AUTHORIZATION regress_lk_erin;
CALL regress_try('DELETE FROM lk_orders WHERE id = 2');
CALL regress_try('SELECT note FROM lk_orders');
CALL regress_try('SELECT lk_secret(id) FROM lk_orders');
COPY lk_orders TO STDOUT;
SELECT count(id) FROM lk_orders;
RESET SESSION AUTHORIZATION;
GRANT SELECT, DELETE ON lk_orders TO lockbox_engineer;

-- clean up
SET SESSION AUTHORIZATION regress_lk_erin;
SELECT lockbox_close(:req);
RESET SESSION AUTHORIZATION;
DROP FUNCTION lk_secret(int), lk_grant(text);
SELECT lockbox_unprotect('lk_orders');
DROP TABLE lk_orders;
REVOKE ALL ON SCHEMA public FROM regress_lk_erin;
SELECT lockbox_remove_approver('lk_acme', 'regress_lk_ada');
SELECT lockbox_remove_tenant(t) FROM unnest('{lk_acme,lk_globex}'::text[]) t;
DROP ROLE regress_lk_erin, regress_lk_mia, regress_lk_ada, regress_lk_app;
