--
-- 18_set_role: an engineer's session reaches protected tables only as an
-- engineer.  SET ROLE to a role the engineer is a member of that is no
-- engineer (the application's role, say) would read and write every
-- tenant's rows past lockbox's policies, unaudited: every such statement
-- reaching a protected table -- named, through a view, COPY, TRUNCATE,
-- LOCK, a foreign key action -- is refused and recorded; so is a
-- maintenance command (REFRESH MATERIALIZED VIEW) that runs as such a role
-- whose privileges the engineer has.  A SECURITY DEFINER function runs as
-- its owner (lockbox.posture reports those).
--
-- Uses regress_try from 00_setup; its own roles, tenants and tables.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_sr_erin, regress_sr_app;
RESET client_min_messages;

CREATE ROLE regress_sr_erin IN ROLE lockbox_engineer;
-- the application's role, which reads every tenant; Erin is a member
CREATE ROLE regress_sr_app;
GRANT CREATE ON SCHEMA public TO regress_sr_app;
GRANT regress_sr_app TO regress_sr_erin;
SELECT lockbox_add_tenant('sr_acme');

CREATE TABLE sr_orders (id int PRIMARY KEY, tenant text NOT NULL);
INSERT INTO sr_orders VALUES (1, 'sr_acme'), (2, 'sr_globex');
CREATE VIEW sr_orders_view AS SELECT * FROM sr_orders;
CREATE TABLE sr_customers (id int PRIMARY KEY);
INSERT INTO sr_customers VALUES (1), (2);
CREATE TABLE sr_lines (tenant text, customer int REFERENCES sr_customers ON DELETE CASCADE);
INSERT INTO sr_lines VALUES ('sr_acme', 1);
SELECT lockbox_protect('sr_orders', tenant_column => 'tenant');
SELECT lockbox_protect('sr_lines', tenant_column => 'tenant');
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON sr_orders, sr_orders_view,
	sr_customers, sr_lines TO regress_sr_app;

-- the application's materialized view, not filled yet
SET ROLE regress_sr_app;
CREATE MATERIALIZED VIEW sr_app_totals AS
	SELECT tenant, count(*) FROM sr_orders GROUP BY tenant WITH NO DATA;
RESET ROLE;

SET SESSION AUTHORIZATION regress_sr_erin;
-- as herself: no access
CALL regress_try('SELECT count(*) FROM sr_orders');
-- as the application's role: refused all the same
SET ROLE regress_sr_app;
CALL regress_try('SELECT count(*) FROM sr_orders');
CALL regress_try('SELECT count(*) FROM sr_orders_view');
CALL regress_try($$UPDATE sr_orders SET tenant = tenant$$);
COPY sr_orders TO STDOUT;
CALL regress_try('TRUNCATE sr_orders');
CALL regress_try('DELETE FROM sr_customers WHERE id = 1');
BEGIN;
CALL regress_try('LOCK TABLE sr_orders');
ROLLBACK;
-- what reaches no protected table is the role's business
SELECT count(*) AS customers FROM sr_customers;
RESET ROLE;
-- a maintenance command runs as the owner of what it maintains: Erin has
-- the application role's privileges, and so refreshes its materialized view
-- (as that role) without SET ROLE
CALL regress_try('REFRESH MATERIALIZED VIEW sr_app_totals');
RESET SESSION AUTHORIZATION;
SELECT count(*) AS orders, (SELECT count(*) FROM sr_lines) AS lines FROM sr_orders;
SELECT ispopulated FROM pg_matviews WHERE matviewname = 'sr_app_totals';

-- the application itself (no engineer's session) is not affected
SET SESSION AUTHORIZATION regress_sr_app;
SELECT count(*) AS orders FROM sr_orders;
RESET SESSION AUTHORIZATION;

-- clean up
SELECT lockbox_unprotect('sr_orders');
SELECT lockbox_unprotect('sr_lines');
DROP VIEW sr_orders_view;
DROP MATERIALIZED VIEW sr_app_totals;
DROP TABLE sr_orders, sr_lines, sr_customers;
REVOKE CREATE ON SCHEMA public FROM regress_sr_app;
DROP ROLE regress_sr_erin, regress_sr_app;
