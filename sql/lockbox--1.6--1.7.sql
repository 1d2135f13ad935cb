/* lockbox--1.6--1.7.sql: upgrade lockbox from 1.6 to 1.7 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.7'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.5 to 1.6, then this one): a fresh 1.7 and an upgraded
-- 1.0 to 1.6 are the same by construction.

------------------------------------------------------------------------------
-- A tenant's facts, cached per backend (README "Performance").
--
-- Every transition reads its request's tenant and approvers as committed
-- now.  From 1.7 a backend keeps what it read while nothing in
-- lockbox.tenant or lockbox.approver changed: this statement trigger on
-- both advances a counter in shared memory when they change, and again when
-- the changing transaction ends; a backend reads the facts again once the
-- counter moved (or a second has passed).  ENABLE ALWAYS: it fires under
-- session_replication_role = replica too.
------------------------------------------------------------------------------
CREATE FUNCTION lockbox.tenants_changed() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'lockbox_tenants_changed';
REVOKE ALL ON FUNCTION lockbox.tenants_changed() FROM PUBLIC;
COMMENT ON FUNCTION lockbox.tenants_changed() IS
	'Trigger of lockbox.tenant and lockbox.approver: tells every backend that the tenants'' settings or approvers they keep may have changed.';
CREATE TRIGGER tenants_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON lockbox.tenant
	FOR EACH STATEMENT EXECUTE FUNCTION lockbox.tenants_changed();
ALTER TABLE lockbox.tenant ENABLE ALWAYS TRIGGER tenants_changed;
CREATE TRIGGER tenants_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON lockbox.approver
	FOR EACH STATEMENT EXECUTE FUNCTION lockbox.tenants_changed();
ALTER TABLE lockbox.approver ENABLE ALWAYS TRIGGER tenants_changed;

------------------------------------------------------------------------------
-- Notifications handed to the worker in shared memory (README
-- "Notifications").
--
-- Until 1.6 every notification a transition wrote also got a row in
-- lockbox.notify_outbox, which the worker deleted when it sent the NOTIFY.
-- From 1.7 a transition hands the ids to the worker through the database's
-- relay ring in shared memory at its commit; the outbox takes only what the
-- ring has no room for, and the notifications of the worker's own
-- transitions.
------------------------------------------------------------------------------
COMMENT ON TABLE lockbox.notify_outbox IS
	'NOTIFY lockbox messages the database''s lockbox worker has yet to send, of those not handed to it in shared memory (its own transitions'', and a transition''s when the relay ring was full).';

------------------------------------------------------------------------------
-- lockbox.open_request updated in place (README "Performance").
--
-- A pending request's review and its approval each move its row of
-- lockbox.open_request to a new time (the approval stage's deadline, the
-- access window's end).  With an index on that time every such update wrote
-- new index entries into both of the table's indexes; without it the
-- update is a HOT update.  The table holds only the open requests, so the
-- worker's deadline queries read it whole, and its pages keep room for the
-- rows' new versions.
------------------------------------------------------------------------------
DROP INDEX lockbox.open_request_due_idx;
ALTER TABLE lockbox.open_request SET (fillfactor = 50);
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
