--
-- 11_bypasses: the ways around lockbox a hostile engineer tried, each closed:
-- views of their own (as lockbox_engineer or another engineer role) over a
-- protected table, a partition of one or the parent of a protected child;
-- definer views and rules that read protected rows as a role lockbox does
-- not restrict; LOCK TABLE through a view; EXPLAIN's estimates; parallel
-- plans; dropping lockbox's policies or the extension under protected
-- tables.
--
-- Uses regress_try from 00_setup; its own roles, tenants and tables.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_byp_erin, regress_byp_mia, regress_byp_ada,
	regress_byp_owner, regress_byp_bypass;
RESET client_min_messages;

CREATE ROLE regress_byp_erin IN ROLE lockbox_engineer;
-- an engineer role that row-level security does not restrict
CREATE ROLE regress_byp_bypass BYPASSRLS IN ROLE lockbox_engineer;
GRANT regress_byp_bypass TO regress_byp_erin;
CREATE ROLE regress_byp_mia IN ROLE lockbox_reviewer;
CREATE ROLE regress_byp_ada IN ROLE lockbox_approver;
CREATE ROLE regress_byp_owner;
GRANT CREATE ON SCHEMA public TO regress_byp_owner;
SELECT setval('lockbox.request_id_seq', 1100);

SELECT lockbox_add_tenant('byp_acme');
SELECT lockbox_add_tenant('byp_globex');
SELECT lockbox_add_approver('byp_acme', 'regress_byp_ada');

SET ROLE regress_byp_owner;
-- a protected table, a protected partitioned table, and a protected child
-- of an unprotected parent
CREATE TABLE byp_orders (id int PRIMARY KEY, tenant text NOT NULL, total int);
INSERT INTO byp_orders SELECT g, CASE WHEN g % 2 = 0 THEN 'byp_acme' ELSE 'byp_globex' END, g
  FROM generate_series(1, 1000) g;
CREATE TABLE byp_events (id int, tenant text NOT NULL) PARTITION BY LIST (tenant);
CREATE TABLE byp_events_acme PARTITION OF byp_events FOR VALUES IN ('byp_acme');
CREATE TABLE byp_events_globex PARTITION OF byp_events FOR VALUES IN ('byp_globex');
INSERT INTO byp_events VALUES (1, 'byp_acme'), (2, 'byp_globex');
CREATE TABLE byp_base (id int, tenant text NOT NULL);
CREATE TABLE byp_notes (note text) INHERITS (byp_base);
INSERT INTO byp_notes VALUES (1, 'byp_globex', 'secret of globex');
-- a whole-table tenant
CREATE TABLE byp_acme_only (id int, secret text);
INSERT INTO byp_acme_only SELECT g, 'acme' FROM generate_series(1, 500) g;
SELECT lockbox_protect('byp_orders', tenant_column => 'tenant');
SELECT lockbox_protect('byp_events', tenant_column => 'tenant');
SELECT lockbox_protect('byp_notes', tenant_column => 'tenant');
SELECT lockbox_protect('byp_acme_only', tenant => 'byp_acme');
GRANT SELECT ON byp_base, byp_events_acme, byp_events_globex TO lockbox_engineer;
-- the owner's definer view, and a rule on a table engineers may write that
-- writes the protected table as its owner
CREATE VIEW byp_owner_view AS SELECT * FROM byp_orders;
GRANT SELECT ON byp_owner_view TO lockbox_engineer;
CREATE TABLE byp_inbox (id int, tenant text);
CREATE RULE byp_forward AS ON INSERT TO byp_inbox
	DO ALSO INSERT INTO byp_orders VALUES (NEW.id, NEW.tenant, 0);
GRANT INSERT ON byp_inbox TO lockbox_engineer;
RESET ROLE;

-- ---------------------------------------------------------------------
-- Without any request: an engineer's own views (temporary or not, as
-- themselves or as lockbox_engineer) over a protected table, a partition
-- or the parent of a protected child are refused like the tables.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_byp_erin;
SET ROLE lockbox_engineer;
CREATE TEMP VIEW byp_v_orders AS SELECT * FROM byp_orders;
CREATE TEMP VIEW byp_v_part AS SELECT * FROM byp_events_globex;
CREATE TEMP VIEW byp_v_parent AS SELECT * FROM byp_base;
SET ROLE regress_byp_bypass;
CREATE TEMP VIEW byp_v_bypass AS SELECT * FROM byp_orders;
RESET ROLE;
CALL regress_try('SELECT count(*) FROM byp_v_orders');
CALL regress_try('SELECT count(*) FROM byp_v_part');
CALL regress_try('SELECT count(*) FROM byp_v_parent');
CALL regress_try($$UPDATE byp_v_orders SET total = 0$$);
CALL regress_try('EXPLAIN SELECT * FROM byp_v_orders');
-- LOCK through a view would stop the application: refused
CALL regress_try('LOCK TABLE byp_v_orders IN ACCESS EXCLUSIVE MODE');
CALL regress_try('LOCK TABLE byp_v_part IN ACCESS EXCLUSIVE MODE');
-- the owner's definer view and rule read as a role lockbox does not restrict
CALL regress_try('SELECT count(*) FROM byp_owner_view');
CALL regress_try($$INSERT INTO byp_inbox VALUES (5000, 'byp_globex')$$);
-- a view of an engineer role row-level security does not restrict
CALL regress_try('SELECT count(*) FROM byp_v_bypass');
-- from a PARALLEL SAFE function that a parallel worker runs: checked there too
CREATE FUNCTION pg_temp.byp_count_view() RETURNS bigint
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	AS $$ DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM public.byp_owner_view; RETURN n; END $$;
CREATE FUNCTION pg_temp.byp_count_part() RETURNS bigint
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	AS $$ DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM public.byp_events_globex; RETURN n; END $$;
CREATE FUNCTION pg_temp.byp_count_orders() RETURNS bigint
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	AS $$ DECLARE n bigint; BEGIN SELECT count(*) INTO n FROM public.byp_orders; RETURN n; END $$;
SET force_parallel_mode = on;
CALL regress_try('SELECT pg_temp.byp_count_view()');
CALL regress_try('SELECT pg_temp.byp_count_part()');
CALL regress_try('SELECT pg_temp.byp_count_orders()');
RESET force_parallel_mode;
RESET SESSION AUTHORIZATION;
SELECT count(*) AS planted FROM byp_orders WHERE id = 5000;

-- ---------------------------------------------------------------------
-- With read access to byp_acme: the engineer's own view shows byp_acme's
-- rows only; the definer view is still refused.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_byp_erin;
SELECT lockbox_request('byp_acme', 'Totals of acme orders look wrong',
	tables => '{byp_orders,byp_acme_only,byp_notes}') AS read_id \gset
SET SESSION AUTHORIZATION regress_byp_mia;
SELECT lockbox_approve(:read_id);
SET SESSION AUTHORIZATION regress_byp_ada;
SELECT lockbox_approve(:read_id);
SET SESSION AUTHORIZATION regress_byp_erin;
SELECT tenant, count(*) FROM byp_v_orders GROUP BY tenant;
CALL regress_try('SELECT count(*) FROM byp_owner_view');
CALL regress_try($$UPDATE byp_v_orders SET total = 0$$);
-- naming the protected child elsewhere in the statement does not let its
-- unprotected parent through: the child's rows came in under the parent
CALL regress_try($$SELECT count(*) FROM byp_base
	LEFT JOIN (SELECT 1 AS one FROM byp_notes LIMIT 0) z ON true$$);
-- a parallel worker checks with the leader's snapshot: the grant holds there
SET force_parallel_mode = on;
SELECT pg_temp.byp_count_orders() AS acme_orders_in_a_worker;
RESET force_parallel_mode;

-- EXPLAIN shows estimates made from every tenant's rows, and ANALYZE counts
-- the rows the policies filter out: only EXPLAIN (COSTS OFF) is allowed.
CALL regress_try($$EXPLAIN SELECT * FROM byp_orders WHERE tenant = 'byp_globex'$$);
CALL regress_try($$EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM byp_orders$$);
CALL regress_try($$EXPLAIN (FORMAT JSON) SELECT * FROM byp_orders$$);
EXPLAIN (COSTS OFF) SELECT * FROM byp_orders WHERE id = 2;

-- Parallel plans: the leader checks, its workers run the plan.
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT count(*) FROM byp_orders;
SELECT count(*) AS acme_orders FROM byp_orders;
EXPLAIN (COSTS OFF) SELECT count(*) FROM byp_acme_only;
SELECT count(*) AS acme_only_rows FROM byp_acme_only;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
SELECT lockbox_close(:read_id);
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- Dropping lockbox's policies would leave row-level security on with the
-- permissive policy and lockbox_engineer's privileges: every engineer would
-- read every tenant.  However it is tried, it is refused while the table is
-- protected; lockbox_unprotect first, then the extension can go.
-- ---------------------------------------------------------------------
CALL regress_try('DROP EXTENSION lockbox');
CALL regress_try('DROP EXTENSION lockbox CASCADE');
CALL regress_try('DROP POLICY lockbox_read ON byp_orders');
CALL regress_try($q$DO $do$ BEGIN EXECUTE 'DROP POLICY lockbox_update ON byp_acme_only'; END $do$$q$);
-- the owner cannot change them either: not who they apply to, not what they
-- let through, not their name (after which they could be dropped), and row-
-- level security stays on
SET ROLE regress_byp_owner;
CALL regress_try('ALTER POLICY lockbox_read ON byp_orders TO regress_byp_owner');
CALL regress_try('ALTER POLICY lockbox_read ON byp_orders USING (true)');
CALL regress_try('ALTER POLICY lockbox_update ON byp_acme_only RENAME TO x_upd');
CALL regress_try('ALTER TABLE byp_events DISABLE ROW LEVEL SECURITY');
RESET ROLE;
SELECT polname FROM pg_policy WHERE polrelid = 'byp_orders'::regclass ORDER BY 1;
SELECT check_name, ok FROM lockbox.posture
 WHERE check_name IN ('policy_changed', 'rls_disabled') ORDER BY 1;
-- dropping the table takes its policies along: fine
SET ROLE regress_byp_owner;
CREATE TABLE byp_scratch (id int, tenant text);
SELECT lockbox_protect('byp_scratch', tenant_column => 'tenant');
DROP TABLE byp_scratch;
RESET ROLE;
SELECT count(*) AS scratch_left FROM lockbox.protected_tables
 WHERE relation::text = 'byp_scratch';

-- lockbox.stats counts the refusals (and the rest) since its reset
SELECT lockbox_stats_reset();
SET SESSION AUTHORIZATION regress_byp_erin;
CALL regress_try('SELECT count(*) FROM byp_orders');
CALL regress_try('SELECT count(*) FROM byp_v_orders');
RESET SESSION AUTHORIZATION;
SELECT refusals, requests, sessions_ended, stats_reset <= now() AS since_reset,
	   access_queue_depth >= 0 AS queue_read
  FROM lockbox.stats;

-- clean up
SET ROLE regress_byp_owner;
SELECT lockbox_unprotect('byp_orders');
SELECT lockbox_unprotect('byp_events');
SELECT lockbox_unprotect('byp_notes');
SELECT lockbox_unprotect('byp_acme_only');
RESET ROLE;
DROP TABLE byp_orders, byp_events, byp_base, byp_acme_only, byp_inbox CASCADE;
REVOKE CREATE ON SCHEMA public FROM regress_byp_owner;
SELECT lockbox_remove_approver('byp_acme', 'regress_byp_ada');
DROP OWNED BY regress_byp_erin;
DROP ROLE regress_byp_erin, regress_byp_mia, regress_byp_ada, regress_byp_owner,
	regress_byp_bypass;
