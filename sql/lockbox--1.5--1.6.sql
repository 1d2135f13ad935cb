/* lockbox--1.5--1.6.sql: upgrade lockbox from 1.5 to 1.6 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.6'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.4 to 1.5, then this one): a fresh 1.6 and an upgraded
-- 1.0 to 1.5 are the same by construction.

-- ---------------------------------------------------------------------
-- Security: the database lockbox's requests were made in.
--
-- CREATE DATABASE ... TEMPLATE copies lockbox's tables with the rest: the
-- copy's approved requests would grant access the tenants approved for
-- another database, and its audit would go on from the same rows as the
-- original's.  lockbox.installation holds the oid of the database lockbox
-- was installed in (written here, so at CREATE EXTENSION and at the update
-- to 1.6; pg_upgrade keeps database oids; a dump restored runs CREATE
-- EXTENSION afresh).  Where it names another database the library takes the
-- database for a copy: no request grants access, every function that
-- changes lockbox's state is refused (55000) and the worker does nothing,
-- until lockbox_adopt_database() records the database as its own, with
-- every request made until then void in it (requests_void_through), and
-- audits the copy (event database_adopted).
-- ---------------------------------------------------------------------
CREATE TABLE lockbox.installation (
	datid					pg_catalog.oid NOT NULL,
	requests_void_through	bigint NOT NULL DEFAULT 0,
	recorded_at				timestamptz NOT NULL DEFAULT pg_catalog.now(),
	one_row					boolean NOT NULL DEFAULT true PRIMARY KEY CHECK (one_row)
);
INSERT INTO lockbox.installation (datid)
SELECT d.oid FROM pg_catalog.pg_database d
 WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database();
REVOKE ALL ON lockbox.installation FROM PUBLIC;
COMMENT ON TABLE lockbox.installation IS
	'The database lockbox was installed in (its oid), and the requests void here (made before lockbox_adopt_database adopted a copy): where datid is another database''s, this one is a copy in which no request grants access.';

CREATE FUNCTION @extschema@.lockbox_adopt_database() RETURNS bigint
	AS 'MODULE_PATHNAME', 'lockbox_adopt_database'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@.lockbox_adopt_database() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.lockbox_adopt_database() IS
	'Makes a copy of a database with lockbox (CREATE DATABASE ... TEMPLATE) lockbox''s own (superuser or extension owner): every request made until now is void in it, the audit records the copy (database_adopted); returns the highest request id made void.';
