--
-- 14_retention: the audit log's partitions, and what archiving refuses
-- (README "History and retention", "Retention").
--
-- lockbox.audit_log is partitioned by month of "at" (UTC); the worker makes
-- the partitions ahead, and lockbox.audit_log_default takes any row no
-- month does.  Every partition refuses UPDATE, DELETE and TRUNCATE, for
-- every role and session_replication_role.  Archiving a month needs one
-- that has ended: the months this suite writes have not (a whole archive
-- runs in test/t/033_retention.pl on a fake clock).  Nothing here depends on
-- the date it runs at.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

CREATE ROLE regress_ret_dba CREATEROLE CREATEDB;
CREATE ROLE regress_ret_aud IN ROLE lockbox_auditor;

-- the partitioned table, its default partition, and every partition protected
SELECT c.relkind, pg_get_partkeydef(c.oid) FROM pg_class c
 WHERE c.oid = 'lockbox.audit_log'::regclass;
SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c
 WHERE c.oid = 'lockbox.audit_log_default'::regclass;
SELECT count(*) AS partitions_unprotected
  FROM pg_inherits i
 WHERE i.inhparent = 'lockbox.audit_log'::regclass
   AND (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = i.inhrelid AND t.tgenabled = 'A'
		   AND t.tgname IN ('audit_log_append_only', 'audit_log_no_truncate')) <> 2;
SELECT count(*) AS partitions_not_owned_by_the_owner
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'lockbox.audit_log'::regclass
   AND c.relowner <> (SELECT relowner FROM pg_class WHERE oid = 'lockbox.audit_log'::regclass);
SELECT count(*) AS partitions_without_their_key
  FROM pg_inherits i
 WHERE i.inhparent = 'lockbox.audit_log'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = i.inhrelid AND k.contype = 'p');

-- an audit row goes in through the parent, wherever its month is kept
SELECT lockbox_add_tenant('regress_ret');
SELECT count(*) AS rows, event FROM lockbox.audit_log
 WHERE tenant = 'regress_ret' GROUP BY event;

CREATE TEMPORARY TABLE regress_ret_before AS
SELECT (SELECT count(*) FROM lockbox.audit_log) AS audit_rows,
	   (SELECT count(*) FROM lockbox.audit_anchor) AS anchors,
	   (SELECT count(*) FROM pg_inherits WHERE inhparent = 'lockbox.audit_log'::regclass) AS partitions;

-- nobody changes a partition: not a superuser, not as a replica.  A row of
-- a month no partition holds yet lands in the default partition (this one is
-- forged, and rolled back before the worker could see it), and so does an
-- anchor.
BEGIN;
INSERT INTO lockbox.audit_log (seq, at, session_user_name, actor, event, detail, parents, hash)
	VALUES (-1, '2999-01-01 00:00+00', 'regress', 'regress', 'forged', '{}', '{}', '\x00');
INSERT INTO lockbox.audit_anchor VALUES (-1, '\x00', 'regress', '2999-01-01 00:00+00');
SELECT tableoid::regclass FROM lockbox.audit_log WHERE seq = -1;
CALL regress_try('TRUNCATE lockbox.audit_log_default');
CALL regress_try('DELETE FROM lockbox.audit_log_default');
CALL regress_try('DELETE FROM lockbox.audit_log WHERE seq = -1');
CALL regress_try($$SET LOCAL session_replication_role = replica;
	UPDATE lockbox.audit_log_default SET event = 'edited'$$);
CALL regress_try('DELETE FROM lockbox.audit_anchor');
CALL regress_try('TRUNCATE lockbox.audit_anchor');
ROLLBACK;
-- nor detaches or drops one: a superuser neither
CALL regress_try('ALTER TABLE lockbox.audit_log DETACH PARTITION lockbox.audit_log_default');
CALL regress_try('ALTER TABLE lockbox.audit_log DETACH PARTITION lockbox.audit_log_default CONCURRENTLY');
CALL regress_try('DROP TABLE lockbox.audit_log_default');
-- nor anything else that would take rows out, rewrite them, make them
-- crash-unsafe or stop their triggers, on the log, any partition (the
-- default one here) or the anchors
CALL regress_try('ALTER TABLE lockbox.audit_log_default SET UNLOGGED');
CALL regress_try('ALTER TABLE lockbox.audit_log_default DISABLE TRIGGER ALL');
CALL regress_try('ALTER TABLE lockbox.audit_log_default DISABLE TRIGGER audit_log_no_truncate');
CALL regress_try('ALTER TABLE lockbox.audit_log ENABLE REPLICA TRIGGER audit_log_append_only');
CALL regress_try('ALTER TABLE lockbox.audit_log ENABLE TRIGGER ALL');
CALL regress_try('DROP TRIGGER audit_log_no_truncate ON lockbox.audit_log_default');
CALL regress_try('ALTER EXTENSION lockbox DROP TABLE lockbox.audit_log');
CALL regress_try('ALTER EXTENSION lockbox DROP FUNCTION lockbox.audit_log_append_only()');
CALL regress_try('TRUNCATE ONLY lockbox.audit_log');
CALL regress_try('DROP TABLE lockbox.audit_log CASCADE');
CALL regress_try('ALTER TABLE lockbox.audit_log_default RENAME TO audit_log_spare');
CALL regress_try('ALTER TABLE lockbox.audit_log ALTER COLUMN detail TYPE text');
CALL regress_try('ALTER TABLE lockbox.audit_log_default NO INHERIT lockbox.audit_log');
CALL regress_try('ALTER TABLE lockbox.audit_anchor DISABLE TRIGGER USER');
CALL regress_try($$CREATE UNLOGGED TABLE lockbox.audit_log_2999_01 PARTITION OF lockbox.audit_log
	FOR VALUES FROM ('2999-01-01 00:00+00') TO ('2999-02-01 00:00+00')$$);
SELECT count(*) AS triggers_not_always FROM pg_trigger
 WHERE tgfoid = 'lockbox.audit_log_append_only'::regproc AND tgenabled <> 'A';
-- the move out of the default partition takes only a new month's partition
CALL regress_try($$SELECT lockbox.audit_move_default('lockbox.request', '2001-01-01 00:00+00', '2001-02-01 00:00+00')$$);
-- a non-superuser DBA, an auditor: no archiving, no DDL on the partitions
SET ROLE regress_ret_dba;
CALL regress_try($$SELECT * FROM lockbox_archive_audit('2001-01-01 00:00+00')$$);
CALL regress_try('TRUNCATE lockbox.audit_log_default');
CALL regress_try('ALTER TABLE lockbox.audit_log DETACH PARTITION lockbox.audit_log_default');
CALL regress_try('DROP TABLE lockbox.audit_log_default');
SET ROLE regress_ret_aud;
CALL regress_try($$SELECT * FROM lockbox_archive_audit('2001-01-01 00:00+00')$$);
RESET ROLE;

-- bad input: NULL, a future instant, nothing to archive
CALL regress_try('SELECT * FROM lockbox_archive_audit(NULL)');
CALL regress_try($$SELECT * FROM lockbox_archive_audit('3000-01-01 00:00+00')$$);
CALL regress_try($$SELECT * FROM lockbox_archive_audit('2001-01-01 00:00+00')$$);
CALL regress_try($$SELECT * FROM lockbox_archive_audit('-infinity')$$);
-- verifying an archive: only a table of schema lockbox_archive that is one
CALL regress_try('SELECT * FROM lockbox_verify_audit_archive(NULL)');
CALL regress_try($$SELECT * FROM lockbox_verify_audit_archive('lockbox.audit_log_default')$$);
SET ROLE regress_ret_aud;
CALL regress_try($$SELECT * FROM lockbox_verify_audit_archive('lockbox.request')$$);
RESET ROLE;

SELECT (SELECT count(*) FROM lockbox.audit_log) = b.audit_rows AND
	   (SELECT count(*) FROM lockbox.audit_anchor) = b.anchors AND
	   (SELECT count(*) FROM pg_inherits WHERE inhparent = 'lockbox.audit_log'::regclass) = b.partitions
	   AS unchanged
  FROM regress_ret_before b;

SELECT lockbox_remove_tenant('regress_ret');
DROP TABLE regress_ret_before;
DROP ROLE regress_ret_dba, regress_ret_aud;
