--
-- 10_posture: lockbox.posture, the misconfigurations that would let someone
-- around lockbox.  Each check of this file is shown three times: with
-- nothing to report (its one ok row), with the misconfiguration made (a row
-- per finding, naming the object), and after it is put right.
--
--   definer_view          a view reading a partition or a parent of a
--                         protected table as its owner
--   engineer_privileges   lockbox_engineer's own privileges that lockbox does
--                         not manage
--   definer_function      SECURITY DEFINER functions engineers can call
--   definer_trigger       triggers engineers fire that run as another role
--   definer_rule          rules engineers fire that reach protected tables
--   search_path_writable  schemas engineers write on an approver's or a
--                         reviewer's search_path
--   role_switch_function  set_user() and the like, for engineers
--   cross_tenant_fk       cascading foreign keys across tenants
--   publication_lockbox_tables
--                         publications of lockbox's own or protected tables
--   caller_schema         a schema named after an approver or a reviewer,
--                         which another role owns or can create objects in
--   server_file_access    engineers who read or write the server's files
--   superuser_function    pg_catalog's superuser-only functions, granted
--   cascade_into_protected
--                         referential actions from tables engineers write
--                         into protected tables
--
-- This file stands on its own: its roles, tenants, tables and schemas, all
-- removed at the end.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_pos_erin, regress_pos_mia, regress_pos_ada,
	regress_pos_app, regress_pos_clerk, regress_pos_bypass, regress_pos_helper;
RESET client_min_messages;

CREATE ROLE regress_pos_erin IN ROLE lockbox_engineer;	-- support engineer
CREATE ROLE regress_pos_mia IN ROLE lockbox_reviewer;	-- support manager
CREATE ROLE regress_pos_ada IN ROLE lockbox_approver;	-- Acme's admin
CREATE ROLE regress_pos_app;		-- the application: reads every tenant's rows
CREATE ROLE regress_pos_clerk;		-- reads one partition
CREATE ROLE regress_pos_bypass BYPASSRLS;
CREATE ROLE regress_pos_helper IN ROLE regress_pos_bypass;	-- no privilege of its own

SELECT lockbox_add_tenant('pos_acme');
SELECT lockbox_add_tenant('pos_globex');
SELECT lockbox_add_approver('pos_acme', 'regress_pos_ada');
SELECT lockbox_add_approver('pos_globex', 'regress_pos_ada');

-- Orders, partitioned by tenant; notes, an inheritance child of documents,
-- which are not protected themselves.
CREATE TABLE pos_orders (id int, tenant text NOT NULL, amount numeric)
	PARTITION BY LIST (tenant);
CREATE TABLE pos_orders_acme PARTITION OF pos_orders FOR VALUES IN ('pos_acme');
CREATE TABLE pos_orders_rest PARTITION OF pos_orders DEFAULT;
CREATE TABLE pos_documents (id int, tenant text NOT NULL, body text);
CREATE TABLE pos_notes () INHERITS (pos_documents);
INSERT INTO pos_orders VALUES (1, 'pos_acme', 10), (2, 'pos_globex', 20);
INSERT INTO pos_notes VALUES (1, 'pos_acme', 'call back'), (2, 'pos_globex', 'VIP');
SELECT lockbox_protect('pos_orders', tenant_column => 'tenant');
SELECT lockbox_protect('pos_notes', tenant_column => 'tenant');
GRANT SELECT, INSERT, UPDATE, DELETE ON pos_orders, pos_notes TO regress_pos_app;
GRANT SELECT ON pos_orders_acme TO regress_pos_clerk;

-- A clean set-up: one ok row per check.
SELECT check_name, object, ok, detail FROM lockbox.posture ORDER BY check_name;

-- ---------------------------------------------------------------------
-- definer_view: a view runs as its owner, whom row-level security does
-- not restrict.  Reading a partition reads that tenant's rows, and reading
-- the table a protected table inherits from reads the protected rows too.
-- ---------------------------------------------------------------------
CREATE VIEW pos_acme_orders AS SELECT * FROM pos_orders_acme;
CREATE VIEW pos_all_documents AS SELECT * FROM pos_documents;
CREATE VIEW pos_document_count AS SELECT count(*) FROM pos_all_documents;
GRANT SELECT ON pos_acme_orders, pos_all_documents, pos_document_count
	TO regress_pos_erin;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'definer_view' ORDER BY object;
-- security_invoker views read as their caller, through lockbox
ALTER VIEW pos_acme_orders SET (security_invoker = true);
ALTER VIEW pos_all_documents SET (security_invoker = true);
ALTER VIEW pos_document_count SET (security_invoker = true);
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'definer_view' ORDER BY object;
DROP VIEW pos_document_count, pos_all_documents, pos_acme_orders;

-- ---------------------------------------------------------------------
-- engineer_privileges: lockbox_protect gives lockbox_engineer SELECT,
-- INSERT, UPDATE and DELETE on a protected table, which its policies
-- govern, and lockbox_unprotect takes them back.  Whatever else the role
-- itself holds, every engineer holds at all times: a table whose protection
-- was removed by hand, a partition, privileges beyond the four.
-- ---------------------------------------------------------------------
CREATE TABLE pos_legacy (id int, tenant text NOT NULL);
GRANT SELECT, UPDATE ON pos_legacy TO lockbox_engineer;
GRANT SELECT ON pos_orders_acme TO lockbox_engineer;
GRANT TRUNCATE, TRIGGER ON pos_notes TO lockbox_engineer;
GRANT SELECT ON pos_notes TO lockbox_engineer WITH GRANT OPTION;
GRANT UPDATE (body) ON pos_documents TO lockbox_engineer;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'engineer_privileges' ORDER BY object;
REVOKE ALL ON pos_legacy, pos_orders_acme FROM lockbox_engineer;
REVOKE TRUNCATE, TRIGGER ON pos_notes FROM lockbox_engineer;
REVOKE GRANT OPTION FOR SELECT ON pos_notes FROM lockbox_engineer;
REVOKE UPDATE (body) ON pos_documents FROM lockbox_engineer;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'engineer_privileges' ORDER BY object;
-- what lockbox_protect granted is still there
SELECT has_table_privilege('lockbox_engineer', 'pos_notes', 'SELECT, INSERT, UPDATE, DELETE')
	AS engineers_keep_the_four;
DROP TABLE pos_legacy;

-- ---------------------------------------------------------------------
-- definer_function: a SECURITY DEFINER function runs as its owner.  When
-- engineers may call it and its owner can read protected rows (a
-- superuser, BYPASSRLS, the table's owner or a role granted privileges on
-- it or on a partition, or a member of any of those), whatever it reads or
-- writes escapes lockbox.
-- ---------------------------------------------------------------------
CREATE FUNCTION pos_order_total(t text) RETURNS numeric
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
	AS $$ SELECT sum(amount) FROM public.pos_orders WHERE tenant = t $$;
ALTER FUNCTION pos_order_total(text) OWNER TO regress_pos_app;
CREATE FUNCTION pos_acme_order_count() RETURNS bigint
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
	AS $$ SELECT count(*) FROM public.pos_orders_acme $$;
ALTER FUNCTION pos_acme_order_count() OWNER TO regress_pos_clerk;
CREATE FUNCTION pos_helper() RETURNS integer
	LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public
	AS $$ SELECT 1 $$;
ALTER FUNCTION pos_helper() OWNER TO regress_pos_helper;
-- not findings: the engineer's own (lockbox applies to it), and one whose
-- owner cannot read protected rows
CREATE FUNCTION pos_mine() RETURNS integer
	LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public
	AS $$ SELECT 1 $$;
ALTER FUNCTION pos_mine() OWNER TO regress_pos_erin;
CREATE FUNCTION pos_harmless() RETURNS integer
	LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public
	AS $$ SELECT 1 $$;
ALTER FUNCTION pos_harmless() OWNER TO regress_pos_mia;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'definer_function' ORDER BY object;
-- Functions are executable by PUBLIC unless revoked.
REVOKE EXECUTE ON FUNCTION pos_order_total(text), pos_acme_order_count(),
	pos_helper() FROM PUBLIC;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'definer_function' ORDER BY object;
DROP FUNCTION pos_acme_order_count(), pos_helper(), pos_mine(), pos_harmless();

-- ---------------------------------------------------------------------
-- definer_trigger: a trigger runs its function as whoever fires it,
-- unless the function is SECURITY DEFINER.  Engineers may write feedback;
-- the trigger copies it into the protected notes as the application.
-- ---------------------------------------------------------------------
CREATE TABLE pos_feedback (id int, tenant text NOT NULL, note text);
GRANT INSERT ON pos_feedback TO regress_pos_erin;
CREATE FUNCTION pos_feedback_to_notes() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
	AS $$ BEGIN
		INSERT INTO public.pos_notes VALUES (NEW.id, NEW.tenant, NEW.note);
		RETURN NEW;
	END $$;
ALTER FUNCTION pos_feedback_to_notes() OWNER TO regress_pos_app;
-- trigger functions need no EXECUTE privilege of whoever fires them
REVOKE EXECUTE ON FUNCTION pos_feedback_to_notes() FROM PUBLIC;
CREATE TRIGGER pos_feedback_copy AFTER INSERT ON pos_feedback
	FOR EACH ROW EXECUTE FUNCTION pos_feedback_to_notes();
-- not a finding: engineers cannot delete feedback
CREATE TRIGGER pos_feedback_purge AFTER DELETE ON pos_feedback
	FOR EACH ROW EXECUTE FUNCTION pos_feedback_to_notes();
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'definer_trigger' ORDER BY object;
ALTER FUNCTION pos_feedback_to_notes() SECURITY INVOKER;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'definer_trigger' ORDER BY object;
DROP TRIGGER pos_feedback_copy ON pos_feedback;
DROP TRIGGER pos_feedback_purge ON pos_feedback;
DROP FUNCTION pos_feedback_to_notes();

-- ---------------------------------------------------------------------
-- definer_rule: a rule's actions are checked as the owner of its table.
-- A rule on feedback that writes the protected notes writes them as the
-- owner, past lockbox's policies.
-- ---------------------------------------------------------------------
CREATE RULE pos_feedback_note AS ON INSERT TO pos_feedback
	DO ALSO INSERT INTO pos_notes VALUES (NEW.id, NEW.tenant, NEW.note);
-- not a finding: engineers cannot update feedback
CREATE RULE pos_feedback_fix AS ON UPDATE TO pos_feedback
	DO ALSO UPDATE pos_notes SET body = NEW.note WHERE id = OLD.id;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'definer_rule' ORDER BY object;
DROP RULE pos_feedback_note ON pos_feedback;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'definer_rule' ORDER BY object;
DROP TABLE pos_feedback;

-- ---------------------------------------------------------------------
-- search_path_writable: a schema engineers can create objects in, on the
-- search_path of a role that calls lockbox's functions (reviewers,
-- approvers, auditors, the extension's owner).  A function of the
-- engineer's there, named like lockbox's, captures the call: ahead of
-- lockbox's schema it comes first, and after it, it still wins when its
-- argument types match the call better.  The database's name is shown as
-- <db>.
-- ---------------------------------------------------------------------
CREATE SCHEMA pos_tools;
GRANT USAGE, CREATE ON SCHEMA pos_tools TO lockbox_engineer;
CREATE SCHEMA regress_pos_ada;
GRANT USAGE, CREATE ON SCHEMA regress_pos_ada TO regress_pos_erin;
ALTER ROLE regress_pos_ada SET search_path = "$user", public;
DO $$
BEGIN
	EXECUTE format('ALTER ROLE regress_pos_mia IN DATABASE %I SET search_path = public, pos_tools',
				   current_database());
	EXECUTE format('ALTER DATABASE %I SET search_path = pos_missing, public',
				   current_database());
	EXECUTE format('GRANT CREATE ON DATABASE %I TO lockbox_engineer', current_database());
END
$$;
SELECT replace(object, current_database(), '<db>') AS object, ok,
	   replace(detail, current_database(), '<db>') AS detail
  FROM lockbox.posture
 WHERE check_name = 'search_path_writable' ORDER BY object;
-- The engineer's function, after lockbox's schema on the search_path, is
-- what an unqualified call with an integer argument runs.
SET SESSION AUTHORIZATION regress_pos_erin;
CREATE FUNCTION pos_tools.lockbox_approve(request_id integer) RETURNS text
	LANGUAGE sql AS $$ SELECT 'not lockbox''s function' $$;
RESET SESSION AUTHORIZATION;
SET search_path = public, pos_tools;
SELECT lockbox_approve(1);
RESET search_path;
DROP FUNCTION pos_tools.lockbox_approve(integer);
REVOKE CREATE ON SCHEMA pos_tools FROM lockbox_engineer;
REVOKE CREATE ON SCHEMA regress_pos_ada FROM regress_pos_erin;
DO $$
BEGIN
	EXECUTE format('REVOKE CREATE ON DATABASE %I FROM lockbox_engineer', current_database());
END
$$;
SELECT replace(object, current_database(), '<db>') AS object, ok,
	   replace(detail, current_database(), '<db>') AS detail
  FROM lockbox.posture
 WHERE check_name = 'search_path_writable' ORDER BY object;
DO $$
BEGIN
	EXECUTE format('ALTER DATABASE %I RESET search_path', current_database());
END
$$;
DROP SCHEMA pos_tools, regress_pos_ada;

-- ---------------------------------------------------------------------
-- role_switch_function: set_user() switches a session to another role, as
-- SET ROLE does, and reset_user() back to the role it had before.  The
-- set_user extension grants reset_user() to PUBLIC; any function of the
-- extension, or named like one of its functions, is checked.
-- ---------------------------------------------------------------------
CREATE EXTENSION set_user;
CREATE SCHEMA pos_admin;
CREATE FUNCTION pos_admin.set_session_auth(text) RETURNS text
	LANGUAGE sql AS $$ SELECT $1 $$;
CREATE FUNCTION pos_admin.become(text) RETURNS text
	LANGUAGE sql AS $$ SELECT $1 $$;
ALTER EXTENSION set_user ADD FUNCTION pos_admin.become(text);
GRANT EXECUTE ON FUNCTION set_user(text) TO lockbox_engineer;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'role_switch_function' ORDER BY object;
REVOKE EXECUTE ON FUNCTION set_user(text) FROM lockbox_engineer;
REVOKE EXECUTE ON FUNCTION reset_user(), reset_user(text),
	pos_admin.set_session_auth(text), pos_admin.become(text) FROM PUBLIC;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'role_switch_function' ORDER BY object;
ALTER EXTENSION set_user DROP FUNCTION pos_admin.become(text);
DROP EXTENSION set_user;
DROP FUNCTION pos_admin.set_session_auth(text), pos_admin.become(text);
DROP SCHEMA pos_admin;

-- ---------------------------------------------------------------------
-- cross_tenant_fk: an ON DELETE / ON UPDATE action runs as the owner of
-- the referencing table.  When the key does not pair the tenant columns,
-- deleting one tenant's customer deletes another tenant's invoices that
-- carry the same customer id.
-- ---------------------------------------------------------------------
CREATE TABLE pos_customers (id int, tenant text NOT NULL, PRIMARY KEY (id),
							UNIQUE (tenant, id));
CREATE TABLE pos_invoices (id int, tenant text NOT NULL, customer_id int,
	CONSTRAINT pos_invoices_customer FOREIGN KEY (customer_id)
		REFERENCES pos_customers ON DELETE CASCADE ON UPDATE SET NULL);
-- not findings: the tenant columns paired, or no cascading action
CREATE TABLE pos_payments (id int, tenant text NOT NULL, customer_id int,
	CONSTRAINT pos_payments_customer FOREIGN KEY (tenant, customer_id)
		REFERENCES pos_customers (tenant, id) ON DELETE CASCADE);
CREATE TABLE pos_quotes (id int, tenant text NOT NULL, customer_id int,
	CONSTRAINT pos_quotes_customer FOREIGN KEY (customer_id)
		REFERENCES pos_customers ON DELETE RESTRICT);
SELECT lockbox_protect(t, tenant_column => 'tenant')
  FROM unnest('{pos_customers, pos_invoices, pos_payments, pos_quotes}'::regclass[]) AS t;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'cross_tenant_fk' ORDER BY object;
ALTER TABLE pos_invoices DROP CONSTRAINT pos_invoices_customer,
	ADD CONSTRAINT pos_invoices_customer FOREIGN KEY (tenant, customer_id)
		REFERENCES pos_customers (tenant, id) ON DELETE CASCADE;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'cross_tenant_fk' ORDER BY object;

-- ---------------------------------------------------------------------
-- publication_lockbox_tables: logical replication applies no row-level
-- security, and lockbox's own tables are this database's history.  A
-- publication FOR ALL TABLES publishes both; one of a partitioned protected
-- table, its partitions; one of the application's other schema, neither.
-- ---------------------------------------------------------------------
CREATE SCHEMA pos_app;
CREATE TABLE pos_app.items (id int PRIMARY KEY);
SET client_min_messages = error;	-- (wal_level need not be logical here)
CREATE PUBLICATION regress_pos_app FOR TABLES IN SCHEMA pos_app;
RESET client_min_messages;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'publication_lockbox_tables' ORDER BY object;
SET client_min_messages = error;
CREATE PUBLICATION regress_pos_all FOR ALL TABLES;
CREATE PUBLICATION regress_pos_orders FOR TABLE pos_orders;
RESET client_min_messages;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'publication_lockbox_tables' ORDER BY object;
-- lockbox's queues have a primary key: the worker's deletes from them are
-- allowed although FOR ALL TABLES publishes them
SELECT c.relname, c.relreplident, k.conname
  FROM pg_class c
  LEFT JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'p'
 WHERE c.oid IN ('lockbox.notify_outbox'::regclass, 'lockbox.session_end'::regclass)
 ORDER BY c.relname;
DROP PUBLICATION regress_pos_all, regress_pos_orders;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'publication_lockbox_tables' ORDER BY object;
DROP PUBLICATION regress_pos_app;
DROP TABLE pos_app.items;
DROP SCHEMA pos_app;

-- ---------------------------------------------------------------------
-- search_path_writable, the server's search_path, and caller_schema.  A
-- role that no ALTER ROLE or ALTER DATABASE gives a search_path gets the
-- server's: PostgreSQL's default is "$user", public, which puts a schema
-- named after the role ahead of lockbox's functions.  An engineer with
-- CREATE on the database (as an application's migrations often have)
-- creates the approver's schema, and a function there captures the
-- approver's unqualified calls: here it would approve a request of the
-- engineer's own along with the one the approver meant.
-- ---------------------------------------------------------------------
-- (the reviewer's schema does not exist: the engineer could create it)
ALTER ROLE regress_pos_ada RESET search_path;
DO $$
BEGIN
	EXECUTE format('ALTER ROLE regress_pos_mia IN DATABASE %I RESET search_path',
				   current_database());
	EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_pos_erin', current_database());
END
$$;
SET SESSION AUTHORIZATION regress_pos_erin;
CREATE SCHEMA regress_pos_ada;
GRANT USAGE ON SCHEMA regress_pos_ada TO PUBLIC;
CREATE FUNCTION regress_pos_ada.lockbox_approve(request_id bigint, comment text)
	RETURNS text LANGUAGE sql
	AS $$ SELECT 'not lockbox''s function: it approved the engineer''s request too' $$;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION regress_pos_ada;
SELECT lockbox_approve(8, 'ok');
RESET SESSION AUTHORIZATION;
-- (other roles that call lockbox's functions, the extension's owner who
-- runs this file among them, are on the server's search_path too: only
-- this file's roles are shown)
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'search_path_writable' AND object LIKE '%regress_pos%'
 ORDER BY object;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'caller_schema' ORDER BY object;
-- A search_path of the role's own, without "$user": the schema is no longer
-- on it, but still named after the role (a SET search_path = "$user", ...
-- of the role's own finds it).
ALTER ROLE regress_pos_ada SET search_path = public;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'search_path_writable' AND object LIKE '%regress_pos%'
 ORDER BY object;
-- The role owns its schema; CREATE granted on it to others is a finding too.
ALTER SCHEMA regress_pos_ada OWNER TO regress_pos_ada;
GRANT CREATE ON SCHEMA regress_pos_ada TO PUBLIC, regress_pos_mia;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'caller_schema' ORDER BY object;
REVOKE CREATE ON SCHEMA regress_pos_ada FROM PUBLIC, regress_pos_mia;
ALTER ROLE regress_pos_ada RESET search_path;
DO $$
BEGIN
	EXECUTE format('REVOKE CREATE ON DATABASE %I FROM regress_pos_erin', current_database());
END
$$;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name IN ('search_path_writable', 'caller_schema')
   AND (object IS NULL OR object LIKE '%regress_pos%')
 ORDER BY check_name, object;
DROP FUNCTION regress_pos_ada.lockbox_approve(bigint, text);
DROP SCHEMA regress_pos_ada;

-- ---------------------------------------------------------------------
-- server_file_access and superuser_function: a table's data file holds
-- every tenant's rows, and pg_read_binary_file(pg_relation_filepath(...))
-- reads it past row-level security, unaudited.  PostgreSQL lets only
-- superusers execute the functions that read, write or list the server's
-- files (pg_monitor some of the listings), and only members of
-- pg_read_server_files, pg_write_server_files and pg_execute_server_program
-- COPY from or to files and programs.  Any other function of pg_catalog
-- only superusers may execute by default, granted to engineers, is
-- reported too.
-- ---------------------------------------------------------------------
CREATE ROLE regress_pos_support;	-- reads the server's logs
GRANT regress_pos_support TO regress_pos_erin;
GRANT EXECUTE ON FUNCTION pg_read_binary_file(text) TO regress_pos_erin;
GRANT EXECUTE ON FUNCTION pg_read_file(text, bigint, bigint),
	pg_read_file(text, bigint, bigint, boolean) TO regress_pos_support;
GRANT EXECUTE ON FUNCTION lo_export(oid, text) TO lockbox_engineer;
GRANT EXECUTE ON FUNCTION pg_ls_dir(text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION pg_reload_conf() TO lockbox_engineer;
GRANT pg_read_server_files, pg_execute_server_program TO regress_pos_erin;
-- not findings: pg_monitor's default privileges (pg_ls_logdir() and the
-- like list the log and WAL files), and grants to roles that are no
-- engineers
GRANT pg_monitor TO regress_pos_erin;
GRANT EXECUTE ON FUNCTION pg_stat_file(text) TO regress_pos_mia;
SET SESSION AUTHORIZATION regress_pos_erin;
SELECT pg_read_binary_file(pg_relation_filepath('pos_orders_acme')) IS NOT NULL
	AS reads_the_data_file;
RESET SESSION AUTHORIZATION;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name IN ('server_file_access', 'superuser_function')
 ORDER BY check_name, object, detail;
-- pg_read_all_data holds SELECT on every table: engineer_reaches_around
GRANT pg_read_all_data TO regress_pos_erin;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'engineer_reaches_around' ORDER BY object, detail;
REVOKE pg_read_all_data, pg_read_server_files, pg_execute_server_program,
	pg_monitor, regress_pos_support FROM regress_pos_erin;
REVOKE EXECUTE ON FUNCTION pg_read_binary_file(text) FROM regress_pos_erin;
REVOKE EXECUTE ON FUNCTION lo_export(oid, text), pg_reload_conf() FROM lockbox_engineer;
REVOKE EXECUTE ON FUNCTION pg_ls_dir(text) FROM PUBLIC;
SELECT check_name, object, ok, detail FROM lockbox.posture
 WHERE check_name IN ('server_file_access', 'superuser_function',
					  'engineer_reaches_around')
 ORDER BY check_name, object, detail;
REVOKE EXECUTE ON FUNCTION pg_read_file(text, bigint, bigint),
	pg_read_file(text, bigint, bigint, boolean) FROM regress_pos_support;
REVOKE EXECUTE ON FUNCTION pg_stat_file(text) FROM regress_pos_mia;
DROP ROLE regress_pos_support;

-- ---------------------------------------------------------------------
-- cascade_into_protected: a referential action runs as the referencing
-- table's owner, outside the lockbox policies.  Engineers who may delete
-- accounts (not protected) delete their contacts, and the contacts' tickets
-- (protected) lose their contact, whatever their tenant; engineers who may
-- update a contact's id rewrite the tickets that reference it.  Updating an
-- account's id cascades to the contacts' account_id, which no ticket
-- references: it goes no further.
-- ---------------------------------------------------------------------
CREATE TABLE pos_accounts (id int PRIMARY KEY);
CREATE TABLE pos_contacts (id int PRIMARY KEY,
	account_id int REFERENCES pos_accounts ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE pos_tickets (id int, tenant text NOT NULL,
	contact_id int CONSTRAINT pos_tickets_contact REFERENCES pos_contacts
		ON DELETE SET NULL ON UPDATE CASCADE);
SELECT lockbox_protect('pos_tickets', tenant_column => 'tenant');
GRANT DELETE, UPDATE ON pos_accounts TO regress_pos_erin;
GRANT UPDATE (id) ON pos_contacts TO PUBLIC;
-- not a finding: a column no foreign key references
GRANT UPDATE (account_id) ON pos_contacts TO lockbox_engineer;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'cascade_into_protected' ORDER BY object, detail;
REVOKE DELETE ON pos_accounts FROM regress_pos_erin;
REVOKE UPDATE (id) ON pos_contacts FROM PUBLIC;
SELECT object, ok, detail FROM lockbox.posture
 WHERE check_name = 'cascade_into_protected' ORDER BY object, detail;
REVOKE UPDATE ON pos_accounts FROM regress_pos_erin;
REVOKE UPDATE (account_id) ON pos_contacts FROM lockbox_engineer;
SELECT lockbox_unprotect('pos_tickets');
DROP TABLE pos_tickets, pos_contacts, pos_accounts;

-- ---------------------------------------------------------------------
-- Clean-up: nothing left to report.
-- ---------------------------------------------------------------------
SELECT lockbox_unprotect(t)
  FROM unnest('{pos_customers, pos_invoices, pos_payments, pos_quotes}'::regclass[]) AS t;
DROP TABLE pos_invoices, pos_payments, pos_quotes, pos_customers;
DROP FUNCTION pos_order_total(text);
SELECT check_name, object, ok FROM lockbox.posture WHERE NOT ok;
SELECT lockbox_unprotect('pos_orders');
SELECT lockbox_unprotect('pos_notes');
DROP TABLE pos_orders, pos_notes, pos_documents;
SELECT lockbox_remove_approver(t, 'regress_pos_ada')
  FROM unnest('{pos_acme, pos_globex}'::text[]) AS t;
DROP ROLE regress_pos_erin, regress_pos_mia, regress_pos_ada, regress_pos_app,
	regress_pos_clerk, regress_pos_helper, regress_pos_bypass;
