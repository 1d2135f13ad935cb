--
-- 01_lifecycle: the whole story of lockbox requests.
--
-- Acme and Globex keep their data with a SaaS operator.  Erin and Eve are
-- the operator's support engineers, Mia its support manager (the reviewer).
-- Ada and Alan are Acme's admins (approvers), Gus is Globex's.  Nora runs the
-- notification service and reads the audit (auditor).
--
-- Each person is a role; "SET SESSION AUTHORIZATION" makes the session act
-- as that person (current_user and session_user both), as if they had logged
-- in.  Roles are cluster-wide: they are dropped first in case an earlier run
-- stopped half-way, and dropped again at the end.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_erin, regress_eve, regress_mia, regress_ada,
	regress_alan, regress_gus, regress_nora;
RESET client_min_messages;

CREATE ROLE regress_erin;	GRANT lockbox_engineer TO regress_erin;
CREATE ROLE regress_eve;	GRANT lockbox_engineer TO regress_eve;
CREATE ROLE regress_mia;	GRANT lockbox_reviewer TO regress_mia;
CREATE ROLE regress_ada;	GRANT lockbox_approver TO regress_ada;
CREATE ROLE regress_alan;	GRANT lockbox_approver TO regress_alan;
CREATE ROLE regress_gus;	GRANT lockbox_approver TO regress_gus;
CREATE ROLE regress_nora;	GRANT lockbox_auditor TO regress_nora;

-- Request ids of this file start at 101, whatever ran before it.
SELECT setval('lockbox.request_id_seq', 100);

-- ---------------------------------------------------------------------
-- Set-up, by the extension owner (the DBA): tenants, their approvers, and
-- the tables that hold their data.
-- ---------------------------------------------------------------------
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_tenant('globex');
SELECT lockbox_add_approver('acme', 'regress_ada');
SELECT lockbox_add_approver('acme', 'regress_alan');
SELECT lockbox_add_approver('globex', 'regress_gus');
SELECT * FROM lockbox.tenants WHERE tenant IN ('acme', 'globex') ORDER BY tenant;

-- Invoices of every tenant, one row per invoice; notes that are all Acme's.
CREATE TABLE regress_invoices (tenant text NOT NULL, id int, amount numeric);
CREATE TABLE regress_acme_notes (id int, note text);
SELECT lockbox_protect('regress_invoices', tenant_column => 'tenant');
SELECT lockbox_protect('regress_acme_notes', tenant => 'acme');
SELECT * FROM lockbox.protected_tables
 WHERE relation IN ('regress_invoices'::regclass, 'regress_acme_notes'::regclass)
 ORDER BY relation::text;

-- ---------------------------------------------------------------------
-- 1. Erin asks for two hours of read access to Acme's invoices.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('acme',
		'Invoice totals wrong since the 3rd, customer asked us to check',
		tables => '{regress_invoices}', access => 'read',
		duration => '2 hours', ticket => 'SUP-1042') AS request_id \gset req_
\echo request :req_request_id
-- Eve asks for Globex, without naming tables: every table protected for
-- Globex (invoices have a tenant column; Acme's notes are not Globex's).
SET SESSION AUTHORIZATION regress_eve;
SELECT lockbox_request('globex', 'Export job fails for this customer since Monday')
	AS request_id \gset eve_
\echo request :eve_request_id

-- What each engineer sees: their own requests, nothing else.  The request
-- waits for review; its deadline is review_timeout (12h) from its creation.
SET SESSION AUTHORIZATION regress_erin;
SELECT id, tenant, requester, reason, ticket, tables, access, duration, state,
	   deadline - created_at AS review_window, reviewer, approved_at,
	   access_ends_at, closed_at, close_reason, approvals
  FROM lockbox.requests;
SELECT count(*) AS active FROM lockbox.active_access;
-- The audit rows of her own requests are hers to read.
SELECT actor, event, request_id, tenant, detail FROM lockbox.audit ORDER BY seq;
SET SESSION AUTHORIZATION regress_eve;
SELECT id, tenant, requester, tables, access, duration, state,
	   deadline - created_at AS review_window
  FROM lockbox.requests;

-- An engineer cannot push a request along: stage 1 is the reviewer's.
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try('SELECT lockbox_approve(' || :req_request_id || ')');

-- ---------------------------------------------------------------------
-- 2. Mia, the support manager, reviews it.  Stage 2 starts: its deadline is
--    approval_timeout (12h) from the review, and Acme's admins are notified.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:req_request_id, 'Case checked, scope is right');
SELECT id, state, reviewer, reviewed_at IS NOT NULL AS reviewed,
	   deadline - reviewed_at AS approval_window, approvals
  FROM lockbox.requests WHERE id = :req_request_id;

-- The reviewers were told of the new request (one notification to
-- lockbox_reviewer); now one notification per Acme approver, none for
-- Globex's Gus.
SET SESSION AUTHORIZATION regress_nora;
SELECT request_id, recipient, event, payload - 'id' - 'anchors' AS payload,
	   (payload->>'id')::bigint = id AS payload_names_its_row,
	   (SELECT pg_catalog.encode(a.hash, 'hex') = payload->'anchors'->0->>'hash'
		  FROM lockbox.audit a
		 WHERE a.seq = (payload->'anchors'->0->>'seq')::bigint
		   AND a.request_id = n.request_id) AS anchor_is_its_audit_row,
	   created_at IS NOT NULL AS created, delivered_at
  FROM lockbox.notifications n WHERE request_id = :req_request_id
 ORDER BY recipient;

-- Each approver sees the requests of their own tenants only.
SET SESSION AUTHORIZATION regress_ada;
SELECT id, tenant, requester, state FROM lockbox.requests ORDER BY id;
SET SESSION AUTHORIZATION regress_gus;
SELECT id, tenant, requester, state FROM lockbox.requests ORDER BY id;

-- ---------------------------------------------------------------------
-- 3. Ada approves.  Access starts now and lasts the requested two hours.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(:req_request_id, 'Go ahead, read only');
SET SESSION AUTHORIZATION regress_erin;
SELECT id, state, deadline, approved_at IS NOT NULL AS approved,
	   access_ends_at - approved_at AS window, approvals
  FROM lockbox.requests WHERE id = :req_request_id;
SELECT request_id, engineer, tenant, tables, access, ends_at - starts_at AS window
  FROM lockbox.active_access;
-- Eve has no access; Acme's approver sees Erin's, Globex's does not.
SET SESSION AUTHORIZATION regress_eve;
SELECT count(*) AS active FROM lockbox.active_access;
SET SESSION AUTHORIZATION regress_alan;
SELECT request_id, engineer, tenant FROM lockbox.active_access;
SET SESSION AUTHORIZATION regress_gus;
SELECT count(*) AS active FROM lockbox.active_access;

-- ---------------------------------------------------------------------
-- 4. Erin is done and closes the request: access ends at once.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_close(:req_request_id, 'Rounding bug found, fixed in 4.2.1');
SELECT id, state, closed_at IS NOT NULL AS closed, close_reason
  FROM lockbox.requests WHERE id = :req_request_id;
SELECT count(*) AS active FROM lockbox.active_access;
-- A closed request is final.
CALL regress_try('SELECT lockbox_close(' || :req_request_id || ')');

-- The requester heard of every change after the approvers were asked.
SELECT request_id, recipient, event, payload->>'state' AS state
  FROM lockbox.notifications ORDER BY id;

-- ---------------------------------------------------------------------
-- 5. Denied at stage 1: Mia turns Eve's request down.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_deny(:eve_request_id, 'No ticket, and the export job logs should suffice');
SELECT id, state, reviewer, closed_at IS NOT NULL AS closed, close_reason
  FROM lockbox.requests WHERE id = :eve_request_id;
-- Final: nobody can approve it any more.
CALL regress_try('SELECT lockbox_approve(' || :eve_request_id || ')');

-- ---------------------------------------------------------------------
-- 6. Denied at stage 2: Erin asks for write access; Mia passes it on,
--    Alan denies it.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('acme', 'Need to correct the totals of invoice 7 by hand',
		access => 'write', duration => '30 minutes') AS request_id \gset write_
\echo request :write_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:write_request_id);
SET SESSION AUTHORIZATION regress_alan;
SELECT lockbox_deny(:write_request_id, 'We correct invoices ourselves, send us the numbers');
-- Ada comes too late: the request is final.
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try('SELECT lockbox_approve(' || :write_request_id || ')');
SET SESSION AUTHORIZATION regress_erin;
SELECT id, tables, access, duration, state, approved_at, close_reason
  FROM lockbox.requests WHERE id = :write_request_id;

-- ---------------------------------------------------------------------
-- 7. Cancelled: Erin files a request, Mia passes it on, and the customer
--    fixes the problem before anyone approves; Erin withdraws it.
-- ---------------------------------------------------------------------
SELECT lockbox_request('acme', 'Customer cannot log in since the migration')
	AS request_id \gset cancel_
\echo request :cancel_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:cancel_request_id);
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_cancel(:cancel_request_id, 'Customer reset the password, solved');
SELECT id, state, deadline, close_reason FROM lockbox.requests
 WHERE id = :cancel_request_id;
-- Approving a cancelled request is refused.
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try('SELECT lockbox_approve(' || :cancel_request_id || ')');

-- ---------------------------------------------------------------------
-- 8. Revoked: approved, then Ada takes the access back.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('acme', 'Check the notes attached to case SUP-1043',
		tables => '{regress_acme_notes}', ticket => 'SUP-1043') AS request_id \gset revoke_
\echo request :revoke_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:revoke_request_id);
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(:revoke_request_id);
SELECT request_id, engineer, tables, access FROM lockbox.active_access;
SELECT lockbox_revoke(:revoke_request_id, 'Notes contain personal data, we will send an extract');
SELECT count(*) AS active FROM lockbox.active_access;
SET SESSION AUTHORIZATION regress_erin;
SELECT id, state, closed_at IS NOT NULL AS closed, close_reason
  FROM lockbox.requests WHERE id = :revoke_request_id;
-- Revoked is final: Erin cannot close it any more.
CALL regress_try('SELECT lockbox_close(' || :revoke_request_id || ')');

-- Every request Erin filed, as she sees them now.
SELECT id, tenant, access, state, close_reason FROM lockbox.requests ORDER BY id;

-- ---------------------------------------------------------------------
-- 9. The audit trail of the story: who did what, as which session user,
--    and the detail of each step.  Nora (auditor) reads it.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_nora;
SELECT row_number() OVER (ORDER BY seq) AS n, session_user_name, actor, event,
	   request_id, tenant, detail
  FROM lockbox.audit
 WHERE tenant IN ('acme', 'globex')
   AND (request_id IS NOT NULL OR event IN ('add_tenant', 'add_approver'))
 ORDER BY seq;
-- Without concurrency the rows form one chain: each links the one before.
SELECT bool_and(parents = ARRAY[prev]) AS each_row_links_the_previous
  FROM (SELECT parents, lag(seq) OVER (ORDER BY seq) AS prev
		  FROM lockbox.audit) a
 WHERE prev IS NOT NULL;
-- lockbox_verify_audit() recomputes every hash: all rows are intact.
SELECT ok, rows_checked = (SELECT count(*) FROM lockbox.audit) AS checked_all,
	   first_bad_seq
  FROM lockbox_verify_audit();

-- ---------------------------------------------------------------------
-- 10. Expiry.  The stage timeouts are shortened to one second (the
--     settings are reloadable; pg_reload_conf() signals the server, and the
--     new values are in force a moment later).
-- ---------------------------------------------------------------------
RESET SESSION AUTHORIZATION;
ALTER SYSTEM SET lockbox.review_timeout = '1s';
ALTER SYSTEM SET lockbox.approval_timeout = '1s';
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SHOW lockbox.review_timeout;
SHOW lockbox.approval_timeout;

-- One request nobody reviews, one nobody approves, and one approved for a
-- one-second window.
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('acme', 'Slow exports, need to look at job rows') AS request_id \gset stage1_
\echo request :stage1_request_id
SELECT lockbox_request('acme', 'Duplicate invoices sent on the 12th') AS request_id \gset stage2_
\echo request :stage2_request_id
SELECT lockbox_request('acme', 'Quick look at one invoice total for SUP-1050',
		duration => '1 second') AS request_id \gset window_
\echo request :window_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:stage2_request_id);
SELECT lockbox_approve(:window_request_id);
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(:window_request_id);
SET SESSION AUTHORIZATION regress_erin;
SELECT id, state, deadline - coalesce(reviewed_at, created_at) AS stage_window,
	   access_ends_at - approved_at AS access_window
  FROM lockbox.requests
 WHERE id IN (:stage1_request_id, :stage2_request_id, :window_request_id)
 ORDER BY id;

-- A little over a second later every deadline has passed.
SELECT pg_sleep(1.2);

-- Too late for Mia's review and for Ada's approval, too late to cancel:
-- 55000.  Too late for Erin to close: the window has ended by itself.
-- (The message is matched: it depends on whether the worker has already
-- recorded the expiry, "it has expired" or "it is expired".)
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try('SELECT lockbox_approve(' || :stage1_request_id || ')',
	message_matches => '^cannot approve lockbox request ' || :stage1_request_id || ': it (has|is) expired$');
CALL regress_try('SELECT lockbox_deny(' || :stage1_request_id || ', ''too late to deny too'')',
	message_matches => '^cannot deny lockbox request ' || :stage1_request_id || ': it (has|is) expired$');
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try('SELECT lockbox_approve(' || :stage2_request_id || ')',
	message_matches => '^cannot approve lockbox request ' || :stage2_request_id || ': it (has|is) expired$');
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try('SELECT lockbox_cancel(' || :stage2_request_id || ')',
	message_matches => '^cannot cancel lockbox request ' || :stage2_request_id || ': it (has|is) expired$');
CALL regress_try('SELECT lockbox_close(' || :window_request_id || ')',
	message_matches => '^cannot close lockbox request ' || :window_request_id || ': it is closed$');

-- The views show each as it ended: the two pending ones expired, with no
-- deadline left; the approved one closed when its window elapsed.
SELECT id, state, deadline, closed_at IS NOT NULL AS ended
  FROM lockbox.requests
 WHERE id IN (:stage1_request_id, :stage2_request_id)
 ORDER BY id;
SELECT id, state, close_reason, closed_at IS NOT NULL AS ended
  FROM lockbox.requests WHERE id = :window_request_id;
SELECT count(*) AS active FROM lockbox.active_access;

-- Back to the default timeouts.
RESET SESSION AUTHORIZATION;
ALTER SYSTEM RESET lockbox.review_timeout;
ALTER SYSTEM RESET lockbox.approval_timeout;
SELECT pg_reload_conf();
SELECT pg_sleep(0.2);
SHOW lockbox.review_timeout;
SHOW lockbox.approval_timeout;

-- ---------------------------------------------------------------------
-- Clean-up: unbind the approvers (a binding would name a dropped role),
-- unprotect and drop the tables (with the grants lockbox made on them),
-- drop the roles.
-- ---------------------------------------------------------------------
SELECT lockbox_remove_approver('acme', 'regress_ada');
SELECT lockbox_remove_approver('acme', 'regress_alan');
SELECT lockbox_remove_approver('globex', 'regress_gus');
SELECT lockbox_unprotect('regress_invoices');
SELECT lockbox_unprotect('regress_acme_notes');
DROP TABLE regress_invoices, regress_acme_notes;
DROP ROLE regress_erin, regress_eve, regress_mia, regress_ada, regress_alan,
	regress_gus, regress_nora;
