--
-- 02_quorum: tenants that need several approvers.
--
-- Initech needs two approvals out of its three admins, Ada, Alan and Amy.
-- Ada also holds Amy's role (she can SET ROLE regress_amy).  Umbrella binds
-- a group role, its board, as approver: Bob and Bea sit on the board.
-- Erin is the engineer, Mia the reviewer, Nora the auditor.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_erin, regress_mia, regress_ada, regress_alan,
	regress_amy, regress_board, regress_bob, regress_bea, regress_nora;
RESET client_min_messages;

CREATE ROLE regress_erin;	GRANT lockbox_engineer TO regress_erin;
CREATE ROLE regress_mia;	GRANT lockbox_reviewer TO regress_mia;
CREATE ROLE regress_ada;	GRANT lockbox_approver TO regress_ada;
CREATE ROLE regress_alan;	GRANT lockbox_approver TO regress_alan;
CREATE ROLE regress_amy;	GRANT lockbox_approver TO regress_amy;
GRANT regress_amy TO regress_ada;
CREATE ROLE regress_board;	GRANT lockbox_approver TO regress_board;
CREATE ROLE regress_bob;	GRANT regress_board TO regress_bob;
CREATE ROLE regress_bea;	GRANT regress_board TO regress_bea;
CREATE ROLE regress_nora;	GRANT lockbox_auditor TO regress_nora;

-- Request ids of this file start at 201.
SELECT setval('lockbox.request_id_seq', 200);

SELECT lockbox_add_tenant('initech', required_approvals => 2);
SELECT lockbox_add_approver('initech', 'regress_ada');
SELECT lockbox_add_approver('initech', 'regress_alan');
SELECT lockbox_add_approver('initech', 'regress_amy');
SELECT lockbox_add_tenant('umbrella', required_approvals => 2);
SELECT lockbox_add_approver('umbrella', 'regress_board');
SELECT * FROM lockbox.tenants WHERE tenant IN ('initech', 'umbrella')
 ORDER BY tenant;

CREATE TABLE regress_orders (tenant text NOT NULL, id int);
SELECT lockbox_protect('regress_orders', tenant_column => 'tenant');

-- ---------------------------------------------------------------------
-- 1. Two distinct approvers are needed.  Erin asks, Mia reviews: all three
--    Initech admins are notified.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('initech', 'Orders stuck in state shipped since Friday',
		tables => '{regress_orders}') AS request_id \gset q_
\echo request :q_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:q_request_id);
SET SESSION AUTHORIZATION regress_nora;
SELECT recipient, event, payload->>'state' AS state FROM lockbox.notifications
 WHERE request_id = :q_request_id ORDER BY recipient;

-- Ada approves: one of two, the request stays pending_approval.
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(:q_request_id, 'Fine by me');
SELECT id, state, approvals, approved_at FROM lockbox.requests
 WHERE id = :q_request_id;

-- Ada counts once: a second approval, or a change of mind, is refused.
CALL regress_try('SELECT lockbox_approve(' || :q_request_id || ')');
CALL regress_try('SELECT lockbox_deny(' || :q_request_id || ', ''changed my mind after all'')');

-- Nor can she vote again under Amy's role: the same session user counts once.
SET ROLE regress_amy;
SELECT current_user, session_user;
CALL regress_try('SELECT lockbox_approve(' || :q_request_id || ')');
RESET ROLE;

-- Still one approval.
SELECT id, state, approvals FROM lockbox.requests WHERE id = :q_request_id;

-- Alan, a second distinct approver, approves: quorum, access starts.
SET SESSION AUTHORIZATION regress_alan;
SELECT lockbox_approve(:q_request_id, 'Agreed');
SELECT id, state, approvals, approved_at IS NOT NULL AS approved
  FROM lockbox.requests WHERE id = :q_request_id;

-- Amy is too late: the request is approved.
SET SESSION AUTHORIZATION regress_amy;
CALL regress_try('SELECT lockbox_approve(' || :q_request_id || ')');

-- The votes, in the audit: each says how many approvals there are now.
SET SESSION AUTHORIZATION regress_nora;
SELECT session_user_name, actor, event, detail->>'stage' AS stage,
	   detail->>'from' AS "from", detail->>'to' AS "to",
	   detail->>'approvals' AS approvals,
	   detail->>'required_approvals' AS required
  FROM lockbox.audit WHERE request_id = :q_request_id ORDER BY seq;

-- ---------------------------------------------------------------------
-- 2. Any deny denies, even after an approval.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('initech', 'Customer asks why order 77 was cancelled',
		tables => '{regress_orders}') AS request_id \gset d_
\echo request :d_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:d_request_id);
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(:d_request_id);
-- Bob, on Umbrella's board, is no approver of Initech: his vote is refused.
SET SESSION AUTHORIZATION regress_bob;
CALL regress_try('SELECT lockbox_approve(' || :d_request_id || ')');
SET SESSION AUTHORIZATION regress_alan;
SELECT lockbox_deny(:d_request_id, 'Order 77 is under legal hold, no access');
SELECT id, state, approvals, approved_at, closed_at IS NOT NULL AS closed
  FROM lockbox.requests WHERE id = :d_request_id;
SET SESSION AUTHORIZATION regress_amy;
CALL regress_try('SELECT lockbox_approve(' || :d_request_id || ')');

-- ---------------------------------------------------------------------
-- 3. A group role as approver.  Umbrella's board is bound; the board gets
--    one notification, and each member who votes counts once.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('umbrella', 'Invoice run failed for the whole tenant last night',
		tables => '{regress_orders}') AS request_id \gset g_
\echo request :g_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:g_request_id);
SET SESSION AUTHORIZATION regress_nora;
SELECT recipient, event FROM lockbox.notifications
 WHERE request_id = :g_request_id ORDER BY id;

-- Bob, a board member, approves: one of two.
SET SESSION AUTHORIZATION regress_bob;
SELECT lockbox_approve(:g_request_id, 'For the board: yes');
-- Bob sees the request as the board's member.
SELECT id, tenant, state, approvals FROM lockbox.requests WHERE id = :g_request_id;
-- Bob counts once.
CALL regress_try('SELECT lockbox_approve(' || :g_request_id || ')');
-- Bea, another member, makes two.
SET SESSION AUTHORIZATION regress_bea;
SELECT lockbox_approve(:g_request_id, 'Yes');
SELECT id, tenant, state, approvals FROM lockbox.requests WHERE id = :g_request_id;
SET SESSION AUTHORIZATION regress_nora;
SELECT actor, event, detail->>'approvals' AS approvals, detail->>'to' AS "to"
  FROM lockbox.audit WHERE request_id = :g_request_id ORDER BY seq;
SELECT ok FROM lockbox_verify_audit();

-- ---------------------------------------------------------------------
-- 4. A vote counts while its role approves for the tenant: Alan approves,
--    then is removed as Initech's approver; Ada's approval makes one of
--    two, and Amy's the second.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('initech', 'Order totals in the monthly report look wrong',
		tables => '{regress_orders}') AS request_id \gset r_
\echo request :r_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:r_request_id);
SET SESSION AUTHORIZATION regress_alan;
SELECT lockbox_approve(:r_request_id, 'Fine by me');
RESET SESSION AUTHORIZATION;
SELECT lockbox_remove_approver('initech', 'regress_alan');
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(:r_request_id, 'Agreed');
SET SESSION AUTHORIZATION regress_amy;
SELECT lockbox_approve(:r_request_id, 'Agreed too');
SET SESSION AUTHORIZATION regress_nora;
SELECT actor, event, detail->>'approvals' AS approvals, detail->>'to' AS "to"
  FROM lockbox.audit WHERE request_id = :r_request_id ORDER BY seq;

-- ---------------------------------------------------------------------
-- Clean-up: Erin ends the access she still has, the roles go.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_close(:q_request_id), lockbox_close(:g_request_id),
	   lockbox_close(:r_request_id);
RESET SESSION AUTHORIZATION;
SELECT lockbox_remove_approver('initech', 'regress_ada');
SELECT lockbox_remove_approver('initech', 'regress_amy');
SELECT lockbox_remove_approver('umbrella', 'regress_board');
SELECT lockbox_unprotect('regress_orders');
DROP TABLE regress_orders;
DROP ROLE regress_erin, regress_mia, regress_ada, regress_alan, regress_amy,
	regress_board, regress_bob, regress_bea, regress_nora;
