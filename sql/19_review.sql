--
-- 19_review: ways around the checks of 1.4 found in review.
--
-- Uses regress_try from 00_setup; its own roles, tenants and tables.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_rv_erin, regress_rv_eve, regress_rv_mia,
	regress_rv_owner, regress_rv_repl;
RESET client_min_messages;

CREATE ROLE regress_rv_erin IN ROLE lockbox_engineer;
CREATE ROLE regress_rv_eve IN ROLE lockbox_engineer;
CREATE ROLE regress_rv_mia IN ROLE lockbox_reviewer;
CREATE ROLE regress_rv_owner;
GRANT CREATE ON SCHEMA public TO regress_rv_owner;
SELECT lockbox_add_tenant('rv_acme');
SELECT lockbox_add_tenant('rv_globex');

-- ---------------------------------------------------------------------
-- An UPDATE of a partitioned table that moves a row to another partition
-- deletes it from the one it was in: a foreign key referencing that
-- partition itself (not the partitioned table) fires its ON DELETE action.
-- The engineer may update the partition key, and nothing else: the
-- protected rows referencing the partition would go, every tenant's.
-- ---------------------------------------------------------------------
SET ROLE regress_rv_owner;
CREATE TABLE rv_zones (code int PRIMARY KEY);
INSERT INTO rv_zones VALUES (1), (2), (9);
CREATE TABLE rv_slots (id int, zone int REFERENCES rv_zones ON UPDATE CASCADE,
	note text, PRIMARY KEY (id, zone)) PARTITION BY LIST (zone);
CREATE TABLE rv_slots_1 PARTITION OF rv_slots FOR VALUES IN (1);
CREATE TABLE rv_slots_2 PARTITION OF rv_slots FOR VALUES IN (2);
CREATE TABLE rv_slots_9 PARTITION OF rv_slots FOR VALUES IN (9)
	PARTITION BY LIST (id);
CREATE TABLE rv_slots_9a PARTITION OF rv_slots_9 DEFAULT;
CREATE TABLE rv_slots_9b PARTITION OF rv_slots_9 FOR VALUES IN (3);
INSERT INTO rv_slots VALUES (1, 1, 'a'), (2, 9, 'b');
CREATE TABLE rv_bookings (id int PRIMARY KEY, tenant text NOT NULL,
	slot_id int, slot_zone int,
	FOREIGN KEY (slot_id, slot_zone) REFERENCES rv_slots_1 ON DELETE CASCADE);
CREATE TABLE rv_holds (id int PRIMARY KEY, tenant text NOT NULL,
	slot_id int, slot_zone int,
	FOREIGN KEY (slot_id, slot_zone) REFERENCES rv_slots_9a ON DELETE SET NULL);
INSERT INTO rv_bookings VALUES (1, 'rv_acme', 1, 1), (2, 'rv_globex', 1, 1);
INSERT INTO rv_holds VALUES (1, 'rv_acme', 2, 9), (2, 'rv_globex', 2, 9);
SELECT lockbox_protect('rv_bookings', tenant_column => 'tenant');
SELECT lockbox_protect('rv_holds', tenant_column => 'tenant');
GRANT SELECT, UPDATE ON rv_slots, rv_slots_9, rv_zones TO lockbox_engineer;
RESET ROLE;
SET SESSION AUTHORIZATION regress_rv_erin;
-- moving the row out of rv_slots_1, or out of rv_slots_9a (within the
-- sub-partitioned rv_slots_9)
CALL regress_try('UPDATE rv_slots SET zone = 2 WHERE id = 1');
CALL regress_try('UPDATE rv_slots_9 SET id = 3 WHERE id = 2');
-- or a foreign key action doing it: ON UPDATE CASCADE moves rv_slots' row
CALL regress_try('UPDATE rv_zones SET code = 5 WHERE code = 1');
-- an update that moves no row across partitions fires no delete
CALL regress_try($$UPDATE rv_slots SET note = 'z' WHERE id = 1$$);
RESET SESSION AUTHORIZATION;
SELECT * FROM rv_bookings ORDER BY id;
SELECT * FROM rv_holds ORDER BY id;
SELECT * FROM rv_slots ORDER BY id;
SELECT * FROM rv_zones ORDER BY code;

-- ---------------------------------------------------------------------
-- lockbox.posture's cascade_into_protected walks the actions as the
-- statements' check does (lockbox.cascade_reach): the moves between
-- partitions above; an update of a table with a BEFORE UPDATE row trigger
-- or a stored generated column, of a column no key references; a delete
-- from a table whose inheritance child is referenced.
-- ---------------------------------------------------------------------
SET ROLE regress_rv_owner;
CREATE TABLE rv_gen (id int PRIMARY KEY, base int,
	k int GENERATED ALWAYS AS (base) STORED UNIQUE);
CREATE TABLE rv_trig (id int PRIMARY KEY, note text, k int UNIQUE);
CREATE FUNCTION public.rv_bump() RETURNS trigger LANGUAGE plpgsql
	AS $$BEGIN NEW.k := NEW.k + 1000; RETURN NEW; END$$;
CREATE TRIGGER rv_bump BEFORE UPDATE ON rv_trig
	FOR EACH ROW EXECUTE FUNCTION public.rv_bump();
CREATE TABLE rv_parent (id int);
CREATE TABLE rv_child (id int PRIMARY KEY) INHERITS (rv_parent);
CREATE TABLE rv_refs (id int PRIMARY KEY, tenant text NOT NULL,
	gen_k int REFERENCES rv_gen (k) ON UPDATE CASCADE,
	trig_k int REFERENCES rv_trig (k) ON UPDATE SET NULL,
	child_id int REFERENCES rv_child ON DELETE CASCADE);
SELECT lockbox_protect('rv_refs', tenant_column => 'tenant');
GRANT SELECT, UPDATE (base) ON rv_gen TO lockbox_engineer;
GRANT SELECT, UPDATE (note) ON rv_trig TO lockbox_engineer;
GRANT SELECT, DELETE ON rv_parent TO lockbox_engineer;
RESET ROLE;
SELECT object, detail FROM lockbox.posture
 WHERE check_name = 'cascade_into_protected' AND object LIKE 'rv\_%'
 ORDER BY object;
-- the statements' check refuses what the posture reports
SET SESSION AUTHORIZATION regress_rv_erin;
CALL regress_try('UPDATE rv_gen SET base = 2 WHERE id = 1', message_matches =>
	'^the statement would change rows of lockbox-protected table "public\.rv_refs" through foreign key "rv_refs_gen_k_fkey"$');
CALL regress_try($$UPDATE rv_trig SET note = 'z' WHERE id = 1$$, message_matches =>
	'^the statement would change rows of lockbox-protected table "public\.rv_refs" through foreign key "rv_refs_trig_k_fkey"$');
CALL regress_try('DELETE FROM rv_parent', message_matches =>
	'^the statement would change rows of lockbox-protected table "public\.rv_refs" through foreign key "rv_refs_child_id_fkey"$');
RESET SESSION AUTHORIZATION;
-- and the function behind it: what a delete from rv_parent reaches
SELECT * FROM lockbox.cascade_reach('rv_parent', true, NULL);
SELECT * FROM lockbox.cascade_reach('rv_trig', false, '{2}');
SELECT * FROM lockbox.cascade_reach('rv_zones', false, '{1}');
SELECT * FROM lockbox.cascade_reach('rv_zones', true, NULL);

-- ---------------------------------------------------------------------
-- engineer_reads_stats: pg_read_all_stats (and pg_monitor, a member of it)
-- shows an engineer every session's statements in pg_stat_activity and
-- pg_stat_statements, with their literals: the application's, with
-- tenants' data in them.
-- ---------------------------------------------------------------------
SELECT check_name, object, ok FROM lockbox.posture
 WHERE check_name = 'engineer_reads_stats';
GRANT pg_monitor TO regress_rv_erin;
SELECT check_name, object, detail FROM lockbox.posture
 WHERE check_name = 'engineer_reads_stats';
REVOKE pg_monitor FROM regress_rv_erin;
GRANT pg_read_all_stats TO lockbox_engineer;
SELECT check_name, object, detail FROM lockbox.posture
 WHERE check_name = 'engineer_reads_stats' AND object = 'regress_rv_erin';
REVOKE pg_read_all_stats FROM lockbox_engineer;

-- ---------------------------------------------------------------------
-- The audit guard knows the audit's tables and their trigger function by
-- their names in schema lockbox: renaming the schema, or renaming or
-- moving the function, took them out of its sight, and a trigger could be
-- disabled or dropped, the rows deleted.  Each attempt is one statement
-- that ends in an error (rolled back), saying how many rows it deleted.
-- ---------------------------------------------------------------------
SELECT lockbox_add_tenant('rv_audited');
CALL regress_try($q$DO $d$DECLARE n bigint; BEGIN
	ALTER SCHEMA lockbox RENAME TO rv_lb;
	ALTER TABLE rv_lb.audit_log DISABLE TRIGGER USER;
	ALTER SCHEMA rv_lb RENAME TO lockbox;
	DELETE FROM lockbox.audit_log; GET DIAGNOSTICS n = ROW_COUNT;
	RAISE EXCEPTION 'deleted % audit rows', n > 0; END $d$ $q$);
CALL regress_try($q$DO $d$DECLARE n bigint; BEGIN
	ALTER FUNCTION lockbox.audit_log_append_only() RENAME TO rv_innocuous;
	DROP TRIGGER audit_log_append_only ON lockbox.audit_log;
	DELETE FROM lockbox.audit_log; GET DIAGNOSTICS n = ROW_COUNT;
	RAISE EXCEPTION 'deleted % audit rows', n > 0; END $d$ $q$);
CALL regress_try($q$DO $d$DECLARE n bigint; BEGIN
	ALTER ROUTINE lockbox.audit_log_append_only SET SCHEMA public;
	DROP TRIGGER audit_log_append_only ON lockbox.audit_log;
	DELETE FROM lockbox.audit_log; GET DIAGNOSTICS n = ROW_COUNT;
	RAISE EXCEPTION 'deleted % audit rows', n > 0; END $d$ $q$);
-- ALTER INDEX ... RENAME renames a table too
CALL regress_try($q$DO $d$DECLARE n bigint; BEGIN
	ALTER INDEX lockbox.audit_log RENAME TO rv_x;
	ALTER TABLE lockbox.rv_x DISABLE TRIGGER USER;
	ALTER INDEX lockbox.rv_x RENAME TO audit_log;
	DELETE FROM lockbox.audit_log; GET DIAGNOSTICS n = ROW_COUNT;
	RAISE EXCEPTION 'deleted % audit rows', n > 0; END $d$ $q$);
CALL regress_try('ALTER INDEX lockbox.audit_statement RENAME TO rv_y');
-- other functions and schemas are renamed as ever
CALL regress_try($q$DO $d$BEGIN
	CREATE SCHEMA rv_s; ALTER SCHEMA rv_s RENAME TO rv_t;
	CREATE FUNCTION rv_t.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
	ALTER FUNCTION rv_t.f() RENAME TO g; ALTER FUNCTION rv_t.g() SET SCHEMA public;
	DROP FUNCTION public.g(); DROP SCHEMA rv_t; END $d$ $q$);
SELECT lockbox_remove_tenant('rv_audited');

-- ---------------------------------------------------------------------
-- search_path_writable: the owner of a protected table reads every
-- tenant's rows, and a function an engineer puts on its search_path
-- captures its unqualified calls (upper(varchar) of an engineer's beats
-- pg_catalog's upper(text)).
-- ---------------------------------------------------------------------
CREATE SCHEMA rv_shared;
GRANT USAGE, CREATE ON SCHEMA rv_shared TO lockbox_engineer;
ALTER ROLE regress_rv_owner SET search_path = rv_shared, public;
SELECT check_name, object FROM lockbox.posture
 WHERE check_name = 'search_path_writable' AND object LIKE '%regress\_rv\_%';
ALTER ROLE regress_rv_owner SET search_path = public;
SELECT check_name, object FROM lockbox.posture
 WHERE check_name = 'search_path_writable' AND object LIKE '%regress\_rv\_%';
ALTER ROLE regress_rv_owner RESET search_path;
DROP SCHEMA rv_shared;

-- ---------------------------------------------------------------------
-- An engineer's access is the engineer's own: a SECURITY DEFINER function
-- an engineer owns runs as that engineer, under the engineer's requests,
-- for whoever calls it.  Another engineer (or a reviewer) calling it read
-- the rows the tenant let only its owner read.
-- ---------------------------------------------------------------------
SELECT setval('lockbox.request_id_seq', 1900);
SELECT lockbox_add_tenant('rv_solo', enabled => false);
SET ROLE regress_rv_owner;
CREATE TABLE rv_notes (id int PRIMARY KEY, tenant text NOT NULL, note text);
INSERT INTO rv_notes VALUES (1, 'rv_solo', 'solo secret'), (2, 'rv_acme', 'acme secret');
SELECT lockbox_protect('rv_notes', tenant_column => 'tenant');
RESET ROLE;
CREATE SCHEMA rv_eve AUTHORIZATION regress_rv_eve;
GRANT USAGE ON SCHEMA rv_eve TO regress_rv_erin, regress_rv_mia;
SET SESSION AUTHORIZATION regress_rv_eve;
SELECT lockbox_request('rv_solo', 'customer asked us to read the notes',
					   tables => '{rv_notes}');
SET SESSION AUTHORIZATION regress_rv_mia;
SELECT lockbox_approve(1901, 'scope is right');
SET SESSION AUTHORIZATION regress_rv_eve;
CREATE FUNCTION rv_eve.reads() RETURNS SETOF text LANGUAGE sql
	SECURITY DEFINER SET search_path = pg_catalog
	AS $$ SELECT tenant || ': ' || note FROM public.rv_notes $$;
GRANT EXECUTE ON FUNCTION rv_eve.reads() TO regress_rv_erin, regress_rv_mia;
SELECT * FROM rv_eve.reads();
SET SESSION AUTHORIZATION regress_rv_erin;
CALL regress_try('SELECT * FROM rv_eve.reads()');
SET SESSION AUTHORIZATION regress_rv_mia;
CALL regress_try('SELECT * FROM rv_eve.reads()');
SET SESSION AUTHORIZATION regress_rv_eve;
SELECT lockbox_close(1901, 'read what we needed');
RESET SESSION AUTHORIZATION;
DROP SCHEMA rv_eve CASCADE;
SET ROLE regress_rv_owner;
SELECT lockbox_unprotect('rv_notes');
DROP TABLE rv_notes;
RESET ROLE;
SELECT lockbox_remove_tenant('rv_solo');

-- ---------------------------------------------------------------------
-- engineer_replication: logical decoding shows a REPLICATION role every
-- row written to every table (and a replication connection copies the
-- data files), whatever lockbox's policies say.
-- ---------------------------------------------------------------------
SELECT check_name, object, ok FROM lockbox.posture
 WHERE check_name = 'engineer_replication';
ALTER ROLE regress_rv_erin REPLICATION;
CREATE ROLE regress_rv_repl REPLICATION;
GRANT regress_rv_repl TO regress_rv_eve;
SELECT check_name, object, detail FROM lockbox.posture
 WHERE check_name = 'engineer_replication' ORDER BY object;
ALTER ROLE regress_rv_erin NOREPLICATION;
DROP ROLE regress_rv_repl;

-- clean up
SET ROLE regress_rv_owner;
SELECT lockbox_unprotect(t) FROM unnest('{rv_bookings,rv_holds,rv_refs}'::regclass[]) t;
DROP TABLE rv_bookings, rv_holds, rv_slots, rv_zones, rv_refs, rv_gen, rv_trig,
	rv_child, rv_parent;
DROP FUNCTION public.rv_bump();
RESET ROLE;
REVOKE CREATE ON SCHEMA public FROM regress_rv_owner;
SELECT lockbox_remove_tenant(t) FROM unnest('{rv_acme,rv_globex}'::text[]) t;
DROP OWNED BY regress_rv_erin, regress_rv_eve;
DROP ROLE regress_rv_erin, regress_rv_eve, regress_rv_mia, regress_rv_owner;
