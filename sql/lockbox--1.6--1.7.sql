/* lockbox--1.6--1.7.sql: upgrade lockbox from 1.6 to 1.7 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.7'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.5 to 1.6, then this one): a fresh 1.7 and an upgraded
-- 1.0 to 1.6 are the same by construction.

------------------------------------------------------------------------------
-- The spool's installations (1.7).
--
-- DROP EXTENSION lockbox drops the audit and the requests, not the spool
-- ($PGDATA/lockbox_spool/<database oid>/): records the worker had not
-- audited yet stayed there, and a later CREATE EXTENSION in the database
-- audited them into its new log under request ids of the old installation,
-- which by then name other requests.  Each installation now has a spool
-- epoch (never 0, kept by pg_upgrade and replicated), which every
-- record its sessions spool carries; a worker audits (a standby forwards, a
-- primary takes in) only its own installation's records, and sets the
-- others aside, unaudited, as JSON in $PGDATA/lockbox_spool/set_aside/ with
-- a WARNING.  Records spooled before 1.7 carry no epoch (0): an
-- installation updated from an earlier version audits them (spool_legacy:
-- they are its own, spooled before the restart onto 1.7, or by a standby
-- still running 1.6); a fresh one, whose scripts find no audit row yet,
-- takes none.
------------------------------------------------------------------------------
ALTER TABLE lockbox.installation
	ADD COLUMN spool_epoch integer,
	ADD COLUMN spool_legacy boolean;
-- The epoch is the installing transaction's id, its 32 bits as an integer:
-- never 0 (no transaction has id 0), and another for each CREATE EXTENSION
-- in the database short of four billion transactions later.
UPDATE lockbox.installation
   SET spool_epoch = (SELECT (CASE WHEN x.id OPERATOR(pg_catalog.>=) 2147483648
								   THEN x.id OPERATOR(pg_catalog.-) 4294967296 ELSE x.id END)::integer
						FROM (SELECT pg_catalog.pg_current_xact_id()::text::bigint
									 OPERATOR(pg_catalog.%) 4294967296 AS id) x),
	   spool_legacy = EXISTS (SELECT FROM lockbox.audit_log);
ALTER TABLE lockbox.installation
	ALTER COLUMN spool_epoch SET NOT NULL,
	ALTER COLUMN spool_legacy SET NOT NULL,
	ADD CONSTRAINT installation_spool_epoch_check
		CHECK (spool_epoch OPERATOR(pg_catalog.<>) 0);
COMMENT ON COLUMN lockbox.installation.spool_epoch IS
	'This installation of lockbox (1.7): every engineer''s record its sessions spool carries it, and its worker audits no record of another installation (one dropped before CREATE EXTENSION made this one): those are set aside in $PGDATA/lockbox_spool/set_aside/, unaudited.';
COMMENT ON COLUMN lockbox.installation.spool_legacy IS
	'Whether records spooled before 1.7, which carry no installation, are this installation''s to audit: true when it was updated from an earlier version, false when created afresh.';
