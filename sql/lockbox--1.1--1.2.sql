/* lockbox--1.1--1.2.sql: upgrade lockbox from 1.1 to 1.2 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.2'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, then this one): a fresh 1.2 and an upgraded 1.0 or 1.1 are the
-- same by construction.

------------------------------------------------------------------------------
-- Replicas (README "Replicas").  Engineers' statements on a hot standby are
-- spooled there, as on the primary, and a lockbox process on the standby
-- hands them in to the primary through lockbox.forward_access, as a login
-- role of the group lockbox_forwarder that may do nothing else.  The primary
-- keeps how far it audited each spool file of each node in
-- lockbox.access_spool, in the same transaction as the audit rows.
------------------------------------------------------------------------------
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
				   WHERE rolname OPERATOR(pg_catalog.=) 'lockbox_forwarder') THEN
		CREATE ROLE lockbox_forwarder NOLOGIN;
	END IF;
END
$roles$;

-- progress keyed by node and file: the files spooled here (this server's
-- name, as lockbox.node_name or cluster_name give it, else 'primary') and
-- those each standby forwarded
ALTER TABLE lockbox.access_spool ADD COLUMN node text;
UPDATE lockbox.access_spool
   SET node = COALESCE(NULLIF(pg_catalog.current_setting('lockbox.node_name', true), ''),
					   NULLIF(pg_catalog.current_setting('cluster_name'), ''),
					   'primary');
ALTER TABLE lockbox.access_spool ALTER COLUMN node SET NOT NULL;
ALTER TABLE lockbox.access_spool DROP CONSTRAINT access_spool_pkey;
ALTER TABLE lockbox.access_spool ADD PRIMARY KEY (node, file);
COMMENT ON TABLE lockbox.access_spool IS
	'How far the access log audited each spool file: of this server (its node name) and of each standby that forwards to it, written in the same transaction as the audit rows.';

CREATE FUNCTION lockbox.forward_access(node text, file text, start bigint,
		records bytea, finished boolean DEFAULT false)
	RETURNS bigint AS 'MODULE_PATHNAME', 'lockbox_forward_access'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION lockbox.forward_access(text, text, bigint, bytea, boolean) FROM PUBLIC;
GRANT USAGE ON SCHEMA lockbox TO lockbox_forwarder;
GRANT EXECUTE ON FUNCTION lockbox.forward_access(text, text, bigint, bytea, boolean)
	TO lockbox_forwarder;
COMMENT ON FUNCTION lockbox.forward_access(text, text, bigint, bytea, boolean) IS
	'For standbys'' lockbox workers (role lockbox_forwarder), on the primary: audits the access records of spool file "file" of standby "node" (the caller''s login role name) from offset "start", once, and returns how far that file is audited; with records NULL only returns that (finished: forgets the file). Writes access and refused rows only.';

CREATE FUNCTION lockbox.standby_backlog_status(OUT node text, OUT pending_bytes bigint,
		OUT pending_files integer, OUT last_forward_at timestamptz,
		OUT last_error text, OUT last_error_at timestamptz)
	RETURNS record AS 'MODULE_PATHNAME', 'lockbox_standby_backlog'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION lockbox.standby_backlog_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.standby_backlog_status() TO lockbox_reviewer, lockbox_auditor;
COMMENT ON FUNCTION lockbox.standby_backlog_status() IS
	'On a standby: the engineers'' statements of this database waiting to be forwarded to the primary, in bytes and spool files, when the last were forwarded, and the last error. What lockbox.standby_backlog shows.';

CREATE VIEW lockbox.standby_backlog AS SELECT * FROM lockbox.standby_backlog_status();
REVOKE ALL ON lockbox.standby_backlog FROM PUBLIC;
GRANT SELECT ON lockbox.standby_backlog TO lockbox_reviewer, lockbox_auditor;
COMMENT ON VIEW lockbox.standby_backlog IS
	'On a standby: the access records of this database waiting to be forwarded to the primary (bytes, files), the last forward and the last error. When pending_bytes reaches lockbox.standby_backlog_max, engineers'' statements there are refused.';

------------------------------------------------------------------------------
-- A notification queued for the worker's NOTIFY is its id alone: the worker
-- reads the payload from lockbox.notification when it sends it.  (The copy
-- of the payload was a third of the WAL a transition wrote.)
------------------------------------------------------------------------------
ALTER TABLE lockbox.notify_outbox DROP COLUMN payload;
