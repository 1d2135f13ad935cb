--
-- 08_enforcement: what lockbox does to an engineer's statements on a
-- protected table, before, during and after approved access.
--
-- Northwind and Contoso keep their orders in one table of a SaaS operator.
-- Erin is one of the operator's support engineers, Mia the support manager
-- who reviews requests, Ada Northwind's admin who approves them.  The
-- operator's application connects as regress_enf_app.
--
-- This file stands on its own: it creates its roles (dropped first in case an
-- earlier run stopped half-way), tenants and tables, and removes them at the
-- end.  "SET SESSION AUTHORIZATION" makes the session act as a person.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_enf_erin, regress_enf_mia, regress_enf_ada,
	regress_enf_app;
RESET client_min_messages;

CREATE ROLE regress_enf_erin IN ROLE lockbox_engineer;
CREATE ROLE regress_enf_mia IN ROLE lockbox_reviewer;
CREATE ROLE regress_enf_ada IN ROLE lockbox_approver;
CREATE ROLE regress_enf_app;

-- ---------------------------------------------------------------------
-- Set-up, by the DBA: the tenants, and the tables that hold their rows.
-- ---------------------------------------------------------------------
SELECT lockbox_add_tenant('northwind');
SELECT lockbox_add_tenant('contoso');
SELECT lockbox_add_approver('northwind', 'regress_enf_ada');
SELECT lockbox_add_approver('contoso', 'regress_enf_ada');

CREATE TABLE enf_orders (id int PRIMARY KEY, tenant text NOT NULL,
						 item text, amount numeric);
CREATE INDEX enf_orders_tenant_idx ON enf_orders (tenant);
INSERT INTO enf_orders VALUES
	(1, 'northwind', 'chai', 18.00),
	(2, 'northwind', 'chang', 19.00),
	(3, 'contoso', 'widgets', 120.00),
	(4, 'contoso', 'gadgets', 75.50),
	(5, 'northwind', 'aniseed syrup', 10.00);
-- Northwind's notes: the whole table is Northwind's
CREATE TABLE enf_northwind_notes (id int PRIMARY KEY, note text);
INSERT INTO enf_northwind_notes VALUES (1, 'prefers invoices by post');

-- The application reads and writes every tenant's orders.
GRANT SELECT, INSERT, UPDATE, DELETE ON enf_orders TO regress_enf_app;

-- Protecting a table: by a column holding each row's tenant, or for the one
-- tenant the whole table belongs to.
SELECT lockbox_protect('enf_orders', tenant_column => 'tenant');
SELECT lockbox_protect('enf_northwind_notes', tenant => 'northwind');
SELECT * FROM lockbox.protected_tables
 WHERE relation IN ('enf_orders'::regclass, 'enf_northwind_notes'::regclass)
 ORDER BY relation::text;

-- What protect did: row-level security on, a permissive policy that keeps
-- every other role's view of the table as it was, and four restrictive
-- policies that apply to lockbox_engineer only.
SELECT relrowsecurity FROM pg_class WHERE oid = 'enf_orders'::regclass;
SELECT policyname, permissive, roles, cmd FROM pg_policies
 WHERE tablename = 'enf_orders' ORDER BY policyname;

-- The application sees no difference.
SET SESSION AUTHORIZATION regress_enf_app;
SELECT * FROM enf_orders ORDER BY id;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- 1. Before: Erin has no approved request.  Every statement on a protected
-- table is refused (42501), naming the table and how to ask.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_enf_erin;
SELECT * FROM enf_orders;
-- (the SQLSTATE of a refusal, shown after the ones that matter)
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) FROM enf_orders WHERE tenant = 'northwind';
INSERT INTO enf_orders VALUES (6, 'northwind', 'tofu', 23.25);
UPDATE enf_orders SET amount = 0;
DELETE FROM enf_orders;
COPY enf_orders TO STDOUT;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- TRUNCATE and COPY FROM are never allowed to engineers, whatever their access
TRUNCATE enf_orders;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
COPY enf_orders FROM STDIN;
6	northwind	tofu	23.25
\.
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT * FROM enf_northwind_notes;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- 2. During: read access to Northwind's orders for an hour.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_enf_erin;
SELECT lockbox_request('northwind', 'Customer reports wrong totals on two orders',
		tables => '{enf_orders}', access => 'read', duration => '1 hour')
	AS read_id \gset
SET SESSION AUTHORIZATION regress_enf_mia;
SELECT lockbox_approve(:read_id);
SET SESSION AUTHORIZATION regress_enf_ada;
SELECT lockbox_approve(:read_id);

-- Erin now sees Northwind's orders, and only those.
SET SESSION AUTHORIZATION regress_enf_erin;
SELECT tenant, tables, access FROM lockbox.active_access;
SELECT * FROM enf_orders ORDER BY id;
SELECT count(*) FROM enf_orders WHERE tenant = 'contoso';
COPY enf_orders TO STDOUT;
-- Reading is all: writes are refused, with a hint on asking for write access.
INSERT INTO enf_orders VALUES (6, 'northwind', 'tofu', 23.25);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE enf_orders SET amount = 19.50 WHERE id = 2;
DELETE FROM enf_orders WHERE id = 5;
TRUNCATE enf_orders;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
COPY enf_orders FROM STDIN;
6	northwind	tofu	23.25
\.
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- The request named enf_orders only: Northwind's other table stays closed.
SELECT * FROM enf_northwind_notes;
-- The policy is an index condition on the tenant column: engineers' queries
-- keep using the index (forced here, the table being tiny).
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM enf_orders;
RESET enable_seqscan;
RESET enable_bitmapscan;
RESET SESSION AUTHORIZATION;

-- Meanwhile the application still sees every tenant's rows.
SET SESSION AUTHORIZATION regress_enf_app;
SELECT count(*) FROM enf_orders;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- 3. Write access to fix an order: INSERT, UPDATE and DELETE reach only
-- Northwind's rows, and no row may be written into or moved to another
-- tenant.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_enf_erin;
SELECT lockbox_request('northwind', 'Fix the amount of order 2 as the customer asked',
		tables => '{enf_orders}', access => 'write', duration => '1 hour')
	AS write_id \gset
SET SESSION AUTHORIZATION regress_enf_mia;
SELECT lockbox_approve(:write_id);
SET SESSION AUTHORIZATION regress_enf_ada;
SELECT lockbox_approve(:write_id);

SET SESSION AUTHORIZATION regress_enf_erin;
UPDATE enf_orders SET amount = 19.50 WHERE id = 2;
-- an UPDATE without WHERE touches Northwind's three rows, not Contoso's
UPDATE enf_orders SET item = upper(item) RETURNING id, tenant, item;
INSERT INTO enf_orders VALUES (6, 'northwind', 'tofu', 23.25);
DELETE FROM enf_orders WHERE id = 6;
INSERT INTO enf_orders VALUES (7, 'contoso', 'sprockets', 1.00);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
UPDATE enf_orders SET tenant = 'contoso' WHERE id = 1;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
DELETE FROM enf_orders WHERE tenant = 'contoso';
TRUNCATE enf_orders;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
COPY enf_orders FROM STDIN;
6	northwind	tofu	23.25
\.
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET SESSION AUTHORIZATION;
-- Contoso's rows are as they were.
SELECT * FROM enf_orders ORDER BY id;

-- ---------------------------------------------------------------------
-- 4. After: Erin closes both requests; she is refused again at once.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_enf_erin;
SELECT lockbox_close(:read_id, 'totals explained to the customer');
SELECT lockbox_close(:write_id, 'order 2 fixed');
SELECT * FROM enf_orders;
SELECT access, state, close_reason FROM lockbox.requests
 WHERE id IN (:read_id, :write_id) ORDER BY id;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- 5. Access ends on time: a 2-second window over every table Northwind
-- has (tables => NULL), the whole-table notes included.  Once the window
-- has passed, the clock alone refuses her, whatever the worker has done.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_enf_erin;
SELECT lockbox_request('northwind', 'Check the delivery notes once more',
		duration => '2 seconds') AS short_id \gset
SET SESSION AUTHORIZATION regress_enf_mia;
SELECT lockbox_approve(:short_id);
SET SESSION AUTHORIZATION regress_enf_ada;
SELECT lockbox_approve(:short_id);
SET SESSION AUTHORIZATION regress_enf_erin;
SELECT ARRAY(SELECT t FROM unnest(tables) t WHERE t::text LIKE 'enf\_%' ORDER BY t::text)
	AS tables_covered
  FROM lockbox.requests WHERE id = :short_id;
SELECT * FROM enf_northwind_notes;
SELECT pg_sleep(2.5);
SELECT * FROM enf_northwind_notes;
SELECT state, close_reason FROM lockbox.requests WHERE id = :short_id;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- 6. lockbox.posture: a view over a protected table that runs as its
-- owner and that engineers can read would let them around lockbox.
-- ---------------------------------------------------------------------
CREATE VIEW enf_order_totals AS
	SELECT tenant, sum(amount) AS total FROM enf_orders GROUP BY tenant;
GRANT SELECT ON enf_order_totals TO lockbox_engineer;
-- (granted to lockbox_engineer itself, the view is also a privilege that
-- lockbox does not manage: engineer_privileges)
SELECT check_name, object, ok, detail FROM lockbox.posture
 WHERE object = 'enf_order_totals' ORDER BY check_name;
-- security_invoker: the view reads as its caller, and lockbox applies
ALTER VIEW enf_order_totals SET (security_invoker = true);
SELECT check_name, object, ok, detail FROM lockbox.posture
 WHERE object = 'enf_order_totals';
SET SESSION AUTHORIZATION regress_enf_erin;
SELECT * FROM enf_order_totals;
RESET SESSION AUTHORIZATION;
DROP VIEW enf_order_totals;

-- ---------------------------------------------------------------------
-- Clean-up: unprotect puts the tables back as they were.
-- ---------------------------------------------------------------------
SELECT lockbox_unprotect('enf_orders');
SELECT lockbox_unprotect('enf_northwind_notes');
SELECT relname, relrowsecurity,
	   has_table_privilege('regress_enf_app', oid, 'SELECT') AS app_can_select,
	   has_table_privilege('regress_enf_erin', oid, 'SELECT') AS erin_can_select
  FROM pg_class
 WHERE oid IN ('enf_orders'::regclass, 'enf_northwind_notes'::regclass) ORDER BY relname;
SELECT count(*) AS policies_left FROM pg_policy
 WHERE polrelid IN ('enf_orders'::regclass, 'enf_northwind_notes'::regclass);
SELECT event, detail->>'relation' AS relation FROM lockbox.audit
 WHERE event IN ('protect', 'unprotect') AND detail->>'relation' LIKE 'public.enf\_%'
 ORDER BY seq;
DROP TABLE enf_orders, enf_northwind_notes;
DROP ROLE regress_enf_erin, regress_enf_mia, regress_enf_ada, regress_enf_app;
