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
