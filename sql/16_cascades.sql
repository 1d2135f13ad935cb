--
-- 16_cascades: a foreign key's ON DELETE / ON UPDATE action (CASCADE, SET
-- NULL, SET DEFAULT) changes the referencing rows as their table's owner,
-- with row-level security off.  An engineer's delete or update -- of any
-- table -- that sets off such actions reaching a protected table, directly
-- or through a chain of tables, is refused unless the keys on the way carry
-- the tenant column (or the table belongs wholly to one tenant) and the
-- engineer may write those rows anyway; a write request must cover every
-- protected table such chains reach.  The protected rows are untouched
-- after each refusal.
--
-- Uses regress_try from 00_setup; its own roles, tenants and tables.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_casc_erin, regress_casc_mia, regress_casc_ada,
	regress_casc_owner;
RESET client_min_messages;

CREATE ROLE regress_casc_erin IN ROLE lockbox_engineer;
CREATE ROLE regress_casc_mia IN ROLE lockbox_reviewer;
CREATE ROLE regress_casc_ada IN ROLE lockbox_approver;
CREATE ROLE regress_casc_owner;
GRANT CREATE ON SCHEMA public TO regress_casc_owner;
SELECT setval('lockbox.request_id_seq', 1600);

SELECT lockbox_add_tenant('casc_acme');
SELECT lockbox_add_tenant('casc_globex');
SELECT lockbox_add_approver('casc_acme', 'regress_casc_ada');

SET ROLE regress_casc_owner;
-- unprotected tables the application lets engineers change, referenced by a
-- protected table through keys without the tenant column
CREATE TABLE casc_customers (id int PRIMARY KEY, name text);
CREATE TABLE casc_regions (code text PRIMARY KEY, name text);
CREATE TABLE casc_agents (id int PRIMARY KEY);
CREATE TABLE casc_sites (id int PRIMARY KEY);
CREATE TABLE casc_plain (id int PRIMARY KEY);
CREATE TABLE casc_orders (id int PRIMARY KEY, tenant text NOT NULL,
	customer_id int REFERENCES casc_customers ON DELETE CASCADE,
	region text REFERENCES casc_regions ON UPDATE CASCADE,
	agent_id int REFERENCES casc_agents ON DELETE SET NULL ON UPDATE SET NULL,
	site_id int REFERENCES casc_sites);
INSERT INTO casc_customers VALUES (1, 'shared customer'), (2, 'another');
INSERT INTO casc_regions VALUES ('eu', 'Europe'), ('us', 'Americas');
INSERT INTO casc_agents VALUES (1), (2);
INSERT INTO casc_sites VALUES (1), (99);
INSERT INTO casc_plain SELECT generate_series(1, 5);
INSERT INTO casc_orders VALUES
	(1, 'casc_acme', 1, 'eu', 1, 1), (2, 'casc_globex', 1, 'eu', 1, 1),
	(3, 'casc_globex', 2, 'us', 2, 1);
SELECT lockbox_protect('casc_orders', tenant_column => 'tenant');
GRANT SELECT, INSERT, UPDATE, DELETE
	ON casc_customers, casc_regions, casc_agents, casc_sites, casc_plain
	TO lockbox_engineer;

-- a chain: protected casc_a -> unprotected casc_b -> protected casc_c
CREATE TABLE casc_a (id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE casc_b (id int PRIMARY KEY, a_id int REFERENCES casc_a ON DELETE CASCADE);
CREATE TABLE casc_c (id int PRIMARY KEY, tenant text NOT NULL,
	b_id int REFERENCES casc_b ON DELETE CASCADE);
INSERT INTO casc_a VALUES (1, 'casc_acme');
INSERT INTO casc_b VALUES (10, 1);
INSERT INTO casc_c VALUES (100, 'casc_acme', 10), (101, 'casc_globex', 10);
SELECT lockbox_protect('casc_a', tenant_column => 'tenant');
SELECT lockbox_protect('casc_c', tenant_column => 'tenant');

-- keys that carry the tenant column: a cascade stays within the tenant
CREATE TABLE casc_p (tenant text NOT NULL, id int, PRIMARY KEY (tenant, id));
CREATE TABLE casc_q (tenant text NOT NULL, id int, p_id int,
	FOREIGN KEY (tenant, p_id) REFERENCES casc_p ON DELETE CASCADE);
INSERT INTO casc_p VALUES ('casc_acme', 1), ('casc_globex', 1);
INSERT INTO casc_q VALUES ('casc_acme', 1, 1), ('casc_globex', 2, 1);
SELECT lockbox_protect('casc_p', tenant_column => 'tenant');
SELECT lockbox_protect('casc_q', tenant_column => 'tenant');

-- a protected table referencing itself without the tenant column
CREATE TABLE casc_tree (id int PRIMARY KEY, tenant text NOT NULL,
	parent int REFERENCES casc_tree ON DELETE CASCADE);
INSERT INTO casc_tree VALUES (1, 'casc_acme', NULL), (2, 'casc_globex', 1);
SELECT lockbox_protect('casc_tree', tenant_column => 'tenant');

-- a table of one tenant only, referencing an unprotected table
CREATE TABLE casc_accounts (id int PRIMARY KEY);
CREATE TABLE casc_acme_ledger (id int, account_id int REFERENCES casc_accounts ON DELETE CASCADE);
INSERT INTO casc_accounts VALUES (1), (2);
INSERT INTO casc_acme_ledger VALUES (1, 1), (2, 2);
SELECT lockbox_protect('casc_acme_ledger', tenant => 'casc_acme');
GRANT SELECT, DELETE ON casc_accounts TO lockbox_engineer;
-- TRUNCATE ... CASCADE empties the referencing tables too (it needs TRUNCATE
-- on them, which a careless grant to one engineer gives)
GRANT TRUNCATE ON casc_customers, casc_orders TO regress_casc_erin;
RESET ROLE;

-- what the protected tables hold, read by the superuser after each refusal
CREATE FUNCTION pg_temp.casc_rows() RETURNS TABLE (tbl text, rows text)
LANGUAGE sql AS $$
	SELECT 'casc_orders', string_agg(format('%s:%s:%s:%s:%s', id, tenant, customer_id,
		region, agent_id), ' ' ORDER BY id) FROM public.casc_orders
	UNION ALL SELECT 'casc_c', string_agg(id || ':' || tenant, ' ' ORDER BY id) FROM public.casc_c
	UNION ALL SELECT 'casc_q', string_agg(id || ':' || tenant, ' ' ORDER BY id) FROM public.casc_q
	UNION ALL SELECT 'casc_tree', string_agg(id || ':' || tenant, ' ' ORDER BY id) FROM public.casc_tree
	UNION ALL SELECT 'casc_acme_ledger', string_agg(id::text, ' ' ORDER BY id) FROM public.casc_acme_ledger
$$;
SELECT * FROM pg_temp.casc_rows();
SELECT lockbox_stats_reset();

-- ---------------------------------------------------------------------
-- Without any request: deleting or updating rows of unprotected tables
-- whose keys protected rows reference with an action is refused, however
-- the statement does it; the protected rows stay.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_casc_erin;
-- ON DELETE CASCADE would delete both tenants' orders of customer 1
CALL regress_try('DELETE FROM casc_customers WHERE id = 1');
-- ON UPDATE CASCADE, once the key changes
CALL regress_try($$UPDATE casc_regions SET code = 'europe' WHERE code = 'eu'$$);
-- ON DELETE SET NULL and ON UPDATE SET NULL
CALL regress_try('DELETE FROM casc_agents WHERE id = 1');
CALL regress_try('UPDATE casc_agents SET id = 10 WHERE id = 1');
-- the same through MERGE, a data-modifying WITH and INSERT ... ON CONFLICT
CALL regress_try($$MERGE INTO casc_customers c USING (SELECT 1 AS id) s ON c.id = s.id
	WHEN MATCHED THEN DELETE$$);
CALL regress_try($$WITH d AS (DELETE FROM casc_customers WHERE id = 1 RETURNING id)
	SELECT count(*) FROM d$$);
CALL regress_try($$INSERT INTO casc_regions VALUES ('eu', 'Europe')
	ON CONFLICT (code) DO UPDATE SET code = 'europe'$$);
-- from a DO block (each statement of it is checked)
CALL regress_try($q$DO $do$ BEGIN DELETE FROM casc_customers WHERE id = 2; END $do$$q$);
-- TRUNCATE ... CASCADE of the customers would empty the orders
CALL regress_try('TRUNCATE casc_customers CASCADE');
-- a table of one tenant: refused without write access to it
CALL regress_try('DELETE FROM casc_accounts WHERE id = 1');

-- what sets off no action on a protected table works: other tables, other
-- columns, keys without actions (NO ACTION / RESTRICT), reads and locks
DELETE FROM casc_plain WHERE id <= 2;
UPDATE casc_plain SET id = id + 10 WHERE id = 3;
UPDATE casc_regions SET name = 'Europa' WHERE code = 'eu';
UPDATE casc_customers SET name = 'renamed' WHERE id = 1;
DELETE FROM casc_sites WHERE id = 99;
SELECT id FROM casc_customers WHERE id = 1 FOR UPDATE;
INSERT INTO casc_customers VALUES (3, 'new');
RESET SESSION AUTHORIZATION;
SELECT * FROM pg_temp.casc_rows();
SELECT id FROM casc_plain ORDER BY id;
-- each refusal was recorded
SELECT refusals FROM lockbox.stats;

-- ---------------------------------------------------------------------
-- Write requests: a chain through an unprotected table counts.  Writing
-- into casc_a deletes rows of casc_b, which delete rows of casc_c.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_casc_erin;
CALL regress_try($$SELECT lockbox_request('casc_acme', 'Remove a duplicate record',
	tables => '{casc_a}', access => 'write')$$);
SELECT lockbox_request('casc_acme', 'Remove a duplicate record',
	tables => '{casc_a,casc_c}', access => 'write') AS chain_id \gset
SET SESSION AUTHORIZATION regress_casc_mia;
SELECT lockbox_approve(:chain_id);
SET SESSION AUTHORIZATION regress_casc_ada;
SELECT lockbox_approve(:chain_id);
SET SESSION AUTHORIZATION regress_casc_erin;
-- covered, yet casc_b's key does not carry the tenant: globex's row of
-- casc_c would go with acme's
CALL regress_try('DELETE FROM casc_a WHERE id = 1');
-- an update of another column of casc_a sets off nothing
UPDATE casc_a SET tenant = tenant WHERE id = 1;
-- the orders are not in this request: deleting a customer stays refused
CALL regress_try('DELETE FROM casc_customers WHERE id = 1');
SELECT lockbox_close(:chain_id);
RESET SESSION AUTHORIZATION;
SELECT * FROM pg_temp.casc_rows();

-- ---------------------------------------------------------------------
-- Keys carrying the tenant column keep a cascade within the tenants the
-- engineer may write: allowed when the request covers both tables.  A
-- protected table referencing itself without the tenant column is not.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_casc_erin;
CALL regress_try($$SELECT lockbox_request('casc_acme', 'Remove a duplicate record',
	tables => '{casc_p}', access => 'write')$$);
SELECT lockbox_request('casc_acme', 'Remove a duplicate record',
	tables => '{casc_p,casc_q,casc_tree,casc_acme_ledger}', access => 'write') AS paired_id \gset
SET SESSION AUTHORIZATION regress_casc_mia;
SELECT lockbox_approve(:paired_id);
SET SESSION AUTHORIZATION regress_casc_ada;
SELECT lockbox_approve(:paired_id);
SET SESSION AUTHORIZATION regress_casc_erin;
DELETE FROM casc_p WHERE id = 1;
CALL regress_try('DELETE FROM casc_tree WHERE id = 1');
-- the table of one tenant, with write access to it: what the cascade can
-- change is that tenant's
DELETE FROM casc_accounts WHERE id = 1;
SELECT lockbox_close(:paired_id);
RESET SESSION AUTHORIZATION;
-- acme's row of casc_p and casc_q went; globex's stayed
SELECT * FROM casc_p ORDER BY tenant;
SELECT * FROM pg_temp.casc_rows();
SELECT refusals FROM lockbox.stats;

-- ---------------------------------------------------------------------
-- Keys that change without the statement naming them: a stored generated
-- column changes with the columns it is made of, and a BEFORE UPDATE
-- trigger may change any column.  An update of such a table counts as an
-- update of every column.
-- ---------------------------------------------------------------------
SET ROLE regress_casc_owner;
CREATE TABLE casc_gen (id int PRIMARY KEY, base int,
	k int GENERATED ALWAYS AS (base) STORED UNIQUE, note text);
CREATE TABLE casc_trig (id int PRIMARY KEY, note text, k int UNIQUE);
CREATE FUNCTION public.casc_bump() RETURNS trigger LANGUAGE plpgsql
	AS $$BEGIN NEW.k := NEW.k + 1000; RETURN NEW; END$$;
CREATE TRIGGER casc_bump BEFORE UPDATE ON casc_trig
	FOR EACH ROW EXECUTE FUNCTION public.casc_bump();
CREATE TABLE casc_refs (id int PRIMARY KEY, tenant text NOT NULL,
	gen_k int REFERENCES casc_gen (k) ON UPDATE CASCADE,
	trig_k int REFERENCES casc_trig (k) ON UPDATE SET NULL);
INSERT INTO casc_gen (id, base) VALUES (1, 10);
INSERT INTO casc_trig VALUES (1, 'a', 10);
INSERT INTO casc_refs VALUES (1, 'casc_acme', 10, 10), (2, 'casc_globex', 10, 10);
SELECT lockbox_protect('casc_refs', tenant_column => 'tenant');
GRANT SELECT, UPDATE ON casc_gen, casc_trig TO lockbox_engineer;
RESET ROLE;
SET SESSION AUTHORIZATION regress_casc_erin;
CALL regress_try('UPDATE casc_gen SET base = 20 WHERE id = 1');
CALL regress_try($$UPDATE casc_trig SET note = 'z' WHERE id = 1$$);
RESET SESSION AUTHORIZATION;
SELECT * FROM casc_refs ORDER BY id;
SET ROLE regress_casc_owner;
SELECT lockbox_unprotect('casc_refs');
DROP TABLE casc_refs, casc_gen, casc_trig;
DROP FUNCTION public.casc_bump();
RESET ROLE;

-- clean up
SET ROLE regress_casc_owner;
SELECT lockbox_unprotect(t) FROM unnest('{casc_orders,casc_a,casc_c,casc_p,casc_q,casc_tree,casc_acme_ledger}'::regclass[]) t;
DROP TABLE casc_orders, casc_customers, casc_regions, casc_agents, casc_sites,
	casc_plain, casc_c, casc_b, casc_a, casc_q, casc_p, casc_tree,
	casc_acme_ledger, casc_accounts;
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM regress_casc_owner;
SELECT lockbox_remove_approver('casc_acme', 'regress_casc_ada');
DROP OWNED BY regress_casc_erin;
DROP ROLE regress_casc_erin, regress_casc_mia, regress_casc_ada, regress_casc_owner;
