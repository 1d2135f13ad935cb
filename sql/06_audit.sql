--
-- 06_audit: the audit log is append-only, and tampering is caught.
--
-- This file breaks the audit of the regression database on purpose: it must
-- stay the last file that expects lockbox_verify_audit() to say ok.  (The
-- database is dropped and created afresh at the next run.)
--
-- Erin (engineer), Mia (reviewer), Ada (Oscorp's approver), Nora (auditor).
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_erin, regress_mia, regress_ada, regress_nora;
RESET client_min_messages;

CREATE ROLE regress_erin;	GRANT lockbox_engineer TO regress_erin;
CREATE ROLE regress_mia;	GRANT lockbox_reviewer TO regress_mia;
CREATE ROLE regress_ada;	GRANT lockbox_approver TO regress_ada;
CREATE ROLE regress_nora;	GRANT lockbox_auditor TO regress_nora;

-- Request ids of this file start at 601.
SELECT setval('lockbox.request_id_seq', 600);

SELECT lockbox_add_tenant('oscorp');
SELECT lockbox_add_approver('oscorp', 'regress_ada');
CREATE TABLE regress_formulas (tenant text NOT NULL, id int);
SELECT lockbox_protect('regress_formulas', tenant_column => 'tenant');

-- A short story to audit: requested, reviewed, approved, closed.
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('oscorp', 'Formula export has wrong units since 4.1',
		tables => '{regress_formulas}') AS request_id \gset
\echo request :request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:request_id, 'Scope is fine');
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(:request_id, 'Approved for the units fix');
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_close(:request_id, 'Units fixed');
-- and files one more request, whose row is the newest of the audit.
SELECT lockbox_request('oscorp', 'Second look at the formula export units',
		tables => '{regress_formulas}') AS second_request_id \gset
\echo request :second_request_id

-- The story's rows.  Each names its parent, the row written just before
-- it, and holds a sha256 hash.
SET SESSION AUTHORIZATION regress_nora;
SELECT row_number() OVER (ORDER BY seq) AS n, event, actor, "to",
	   links_previous_row, hash_bytes
  FROM (SELECT seq, request_id, event, actor, detail->>'to' AS "to",
			   parents = ARRAY[lag(seq) OVER (ORDER BY seq)] AS links_previous_row,
			   length(hash) AS hash_bytes
		  FROM lockbox.audit) a
 WHERE request_id = :request_id ORDER BY seq;
-- Name the rows the tampering below is about.
SELECT max(seq) FILTER (WHERE event = 'approve' AND detail->>'stage' = '1') AS review_seq,
	   max(seq) FILTER (WHERE event = 'approve' AND detail->>'stage' = '2') AS approval_seq,
	   max(seq) FILTER (WHERE event = 'close') AS close_seq
  FROM lockbox.audit WHERE request_id = :request_id \gset
SELECT max(seq) AS newest_seq FROM lockbox.audit \gset

-- Every row verifies.
SELECT ok, rows_checked = (SELECT count(*) FROM lockbox.audit) AS checked_all,
	   first_bad_seq
  FROM lockbox_verify_audit();

-- ---------------------------------------------------------------------
-- 1. Append-only: UPDATE, DELETE and TRUNCATE are refused for every role,
--    the superuser included (42501).
-- ---------------------------------------------------------------------
-- The auditor may read the log, not change it.
CALL regress_try('UPDATE lockbox.audit_log SET actor = ''nobody'' WHERE seq = ' || :review_seq);
RESET SESSION AUTHORIZATION;
SELECT rolsuper FROM pg_roles WHERE rolname = current_user;
CALL regress_try('UPDATE lockbox.audit_log SET actor = ''nobody'' WHERE seq = ' || :review_seq);
CALL regress_try('DELETE FROM lockbox.audit_log WHERE seq = ' || :review_seq);
CALL regress_try('TRUNCATE lockbox.audit_log');
CALL regress_try('TRUNCATE lockbox.audit_log CASCADE');
-- nor switches the guard off, or makes it fire only for some sessions
CALL regress_try('ALTER TABLE lockbox.audit_log DISABLE TRIGGER USER');
CALL regress_try('ALTER TABLE lockbox.audit_log ENABLE REPLICA TRIGGER audit_log_append_only');
SELECT ok FROM lockbox_verify_audit();

-- ---------------------------------------------------------------------
-- 2. A superuser switches the guard off (editing the catalogs: ALTER
--    TABLE ... DISABLE TRIGGER is refused) and edits a row: the row no longer
--    matches its hash, and lockbox_verify_audit() names it.
-- ---------------------------------------------------------------------
SELECT detail AS original_detail FROM lockbox.audit_log WHERE seq = :review_seq \gset
CALL regress_audit_guard('D');
UPDATE lockbox.audit_log SET detail = detail || '{"comment": "nothing to see"}'
 WHERE seq = :review_seq;
CALL regress_audit_guard('A');
SET SESSION AUTHORIZATION regress_nora;
SELECT ok, first_bad_seq = :review_seq AS edited_row_named
  FROM lockbox_verify_audit();

-- Putting back the exact original content makes the row verify again: the
-- hash covers a row's content (and its parents'), not its history.
RESET SESSION AUTHORIZATION;
CALL regress_audit_guard('D');
UPDATE lockbox.audit_log SET detail = :'original_detail' WHERE seq = :review_seq;
CALL regress_audit_guard('A');
SELECT ok, first_bad_seq FROM lockbox_verify_audit();

-- ---------------------------------------------------------------------
-- 3. Deleting the newest row: no row names it yet, but the server keeps
--    the newest rows' hashes in memory, and misses it.
-- ---------------------------------------------------------------------
CALL regress_audit_guard('D');
DELETE FROM lockbox.audit_log WHERE seq = :newest_seq;
CALL regress_audit_guard('A');
SELECT ok, first_bad_seq = :newest_seq AS deleted_row_named
  FROM lockbox_verify_audit();

-- ---------------------------------------------------------------------
-- 4. Deleting a row in the middle: the row after it still names it as a
--    parent, and can no longer be verified.
-- ---------------------------------------------------------------------
CALL regress_audit_guard('D');
DELETE FROM lockbox.audit_log WHERE seq = :approval_seq;
CALL regress_audit_guard('A');
SELECT v.ok, v.first_bad_seq = :close_seq AS next_row_named,
	   :approval_seq = ANY (a.parents) AS it_names_the_deleted_row
  FROM lockbox_verify_audit() v
  JOIN lockbox.audit a ON a.seq = v.first_bad_seq;

-- The guard is back on.
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'lockbox.audit_log'::regclass AND NOT tgisinternal ORDER BY tgname;
CALL regress_try('DELETE FROM lockbox.audit_log WHERE seq = ' || :review_seq);

-- ---------------------------------------------------------------------
-- Clean-up.
-- ---------------------------------------------------------------------
SELECT lockbox_remove_approver('oscorp', 'regress_ada');
SELECT lockbox_unprotect('regress_formulas');
DROP TABLE regress_formulas;
DROP ROLE regress_erin, regress_mia, regress_ada, regress_nora;
