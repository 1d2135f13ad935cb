--
-- 04_duties: separation of duties, and who may call what.
--
-- Stark's approvers are Ada, Amy, Abe and Rae; Wayne's is Gus.  Some people
-- wear two hats, which is where the rules bite:
--
--   regress_erin   engineer
--   regress_eve    engineer
--   regress_rex    engineer and reviewer
--   regress_abe    engineer and approver of Stark
--   regress_mia    reviewer
--   regress_max    reviewer, member of regress_erin (can act as Erin)
--   regress_lead   reviewer; regress_eli, an engineer, is a member of it
--   regress_rae    reviewer and approver of Stark
--   regress_ada    approver of Stark
--   regress_amy    approver of Stark, member of regress_erin
--   regress_gus    approver of Wayne
--   regress_root   engineer and superuser
--   regress_byp    engineer with BYPASSRLS
--   regress_own    engineer who owns a protected table
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP TABLE IF EXISTS regress_stark_data, regress_own_table;
DROP ROLE IF EXISTS regress_erin, regress_eve, regress_rex, regress_abe,
	regress_mia, regress_max, regress_lead, regress_eli, regress_rae,
	regress_ada, regress_amy, regress_gus, regress_root, regress_byp,
	regress_own;
RESET client_min_messages;

CREATE ROLE regress_erin;	GRANT lockbox_engineer TO regress_erin;
CREATE ROLE regress_eve;	GRANT lockbox_engineer TO regress_eve;
CREATE ROLE regress_rex;	GRANT lockbox_engineer, lockbox_reviewer TO regress_rex;
CREATE ROLE regress_abe;	GRANT lockbox_engineer, lockbox_approver TO regress_abe;
CREATE ROLE regress_mia;	GRANT lockbox_reviewer TO regress_mia;
CREATE ROLE regress_max;	GRANT lockbox_reviewer, regress_erin TO regress_max;
CREATE ROLE regress_lead;	GRANT lockbox_reviewer TO regress_lead;
CREATE ROLE regress_eli;	GRANT lockbox_engineer, regress_lead TO regress_eli;
CREATE ROLE regress_rae;	GRANT lockbox_reviewer, lockbox_approver TO regress_rae;
CREATE ROLE regress_ada;	GRANT lockbox_approver TO regress_ada;
CREATE ROLE regress_amy;	GRANT lockbox_approver, regress_erin TO regress_amy;
CREATE ROLE regress_gus;	GRANT lockbox_approver TO regress_gus;
CREATE ROLE regress_root SUPERUSER;	GRANT lockbox_engineer TO regress_root;
CREATE ROLE regress_byp BYPASSRLS;	GRANT lockbox_engineer TO regress_byp;
CREATE ROLE regress_own;	GRANT lockbox_engineer TO regress_own;

-- Request ids of this file start at 401.
SELECT setval('lockbox.request_id_seq', 400);

SELECT lockbox_add_tenant('stark');
SELECT lockbox_add_tenant('wayne');
SELECT lockbox_add_approver('stark', a)
  FROM unnest('{regress_ada,regress_amy,regress_abe,regress_rae}'::regrole[]) a;
SELECT lockbox_add_approver('wayne', 'regress_gus');
CREATE TABLE regress_stark_data (tenant text NOT NULL, id int);
SELECT lockbox_protect('regress_stark_data', tenant_column => 'tenant');
CREATE TABLE regress_own_table (id int);
ALTER TABLE regress_own_table OWNER TO regress_own;
SELECT lockbox_protect('regress_own_table', tenant => 'stark');

-- ---------------------------------------------------------------------
-- 1. A requester who is also a reviewer cannot review their own request.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_rex;
SELECT lockbox_request('stark', 'Reactor telemetry export is truncated',
		tables => '{regress_stark_data}') AS request_id \gset rex_
\echo request :rex_request_id
CALL regress_try('SELECT lockbox_approve(' || :rex_request_id || ')');
CALL regress_try('SELECT lockbox_deny(' || :rex_request_id || ', ''I deny myself, oddly'')');

-- ---------------------------------------------------------------------
-- 2. A requester who is also an approver cannot approve their own request.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_abe;
SELECT lockbox_request('stark', 'Suit firmware update log is missing entries',
		tables => '{regress_stark_data}') AS request_id \gset abe_
\echo request :abe_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:abe_request_id);
SET SESSION AUTHORIZATION regress_abe;
CALL regress_try('SELECT lockbox_approve(' || :abe_request_id || ')');
CALL regress_try('SELECT lockbox_deny(' || :abe_request_id || ', ''Not needed after all'')');

-- ---------------------------------------------------------------------
-- 3. Membership counts, both ways.  Max can act as Erin, so he may not
--    review her request; Amy can act as Erin, so she may not approve it;
--    Eli holds Lead's role, so Lead may not review Eli's request.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('stark', 'Billing shows two subscriptions for one user',
		tables => '{regress_stark_data}') AS request_id \gset erin_
\echo request :erin_request_id
SET SESSION AUTHORIZATION regress_max;
CALL regress_try('SELECT lockbox_approve(' || :erin_request_id || ')');
SET SESSION AUTHORIZATION regress_eli;
SELECT lockbox_request('stark', 'Password reset mails bounce for this tenant',
		tables => '{regress_stark_data}') AS request_id \gset eli_
\echo request :eli_request_id
SET SESSION AUTHORIZATION regress_lead;
CALL regress_try('SELECT lockbox_approve(' || :eli_request_id || ')');

-- ---------------------------------------------------------------------
-- 4. The reviewer of a request cannot also approve it at stage 2, even
--    when they are an approver of the tenant.  Rae reviews Erin's request.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_rae;
SELECT lockbox_approve(:erin_request_id, 'Reviewed');
CALL regress_try('SELECT lockbox_approve(' || :erin_request_id || ')');
CALL regress_try('SELECT lockbox_deny(' || :erin_request_id || ', ''Second thoughts as approver'')');
-- Amy, who can act as Erin, may not approve it either.
SET SESSION AUTHORIZATION regress_amy;
CALL regress_try('SELECT lockbox_approve(' || :erin_request_id || ')');

-- ---------------------------------------------------------------------
-- 5. An approver of another tenant cannot act on Stark's request.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_gus;
CALL regress_try('SELECT lockbox_approve(' || :erin_request_id || ')');
CALL regress_try('SELECT lockbox_deny(' || :erin_request_id || ', ''Not my tenant but no'')');

-- Ada, a Stark approver with no other hat, approves.
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(:erin_request_id);

-- Gus cannot revoke it, and an engineer may not revoke at all.  Reviewers
-- may (the operator's emergency stop), but not a request of their own: Max,
-- a reviewer who can act as Erin, is refused.
SET SESSION AUTHORIZATION regress_gus;
CALL regress_try('SELECT lockbox_revoke(' || :erin_request_id || ', ''Not my tenant but stop'')');
SET SESSION AUTHORIZATION regress_max;
CALL regress_try('SELECT lockbox_revoke(' || :erin_request_id || ', ''Reviewer wants it stopped'')');
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try('SELECT lockbox_revoke(' || :erin_request_id || ', ''Revoking my own access'')');

-- ---------------------------------------------------------------------
-- 6. Only the requester may cancel or close a request.
-- ---------------------------------------------------------------------
-- Eve is an engineer, but these are not her requests.
SET SESSION AUTHORIZATION regress_eve;
CALL regress_try('SELECT lockbox_cancel(' || :eli_request_id || ')');
CALL regress_try('SELECT lockbox_close(' || :erin_request_id || ')');
-- Max can act as Erin, but is not Erin.
SET SESSION AUTHORIZATION regress_max;
CALL regress_try('SELECT lockbox_close(' || :erin_request_id || ')');
-- Reviewers and approvers may not call them at all.
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try('SELECT lockbox_cancel(' || :eli_request_id || ')');
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try('SELECT lockbox_close(' || :erin_request_id || ')');
-- Erin closes her own.
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_close(:erin_request_id);

-- ---------------------------------------------------------------------
-- 7. Engineers lockbox cannot restrict are refused: a superuser, and a
--    role with BYPASSRLS.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_root;
CALL regress_try($$SELECT lockbox_request('stark', 'Root wants to look around',
		tables => '{regress_stark_data}')$$);
SET SESSION AUTHORIZATION regress_byp;
CALL regress_try($$SELECT lockbox_request('stark', 'Bypass wants to look around',
		tables => '{regress_stark_data}')$$);

-- ---------------------------------------------------------------------
-- 8. Engineers cannot run the functions of other parties, nor touch
--    lockbox's own tables.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try($$SELECT lockbox_add_tenant('erin_corp')$$);
CALL regress_try($$SELECT lockbox_add_approver('stark', 'regress_erin')$$);
CALL regress_try($$SELECT lockbox_remove_approver('stark', 'regress_ada')$$);
CALL regress_try($$SELECT lockbox_set_enabled('stark', false)$$);
CALL regress_try('SELECT lockbox_approve(' || :eli_request_id || ')');
CALL regress_try('SELECT lockbox_deny(' || :eli_request_id || ', ''Deny Eli his request'')');
CALL regress_try('SELECT * FROM lockbox_verify_audit()');
CALL regress_try('SELECT * FROM lockbox_claim_notifications(10)');
CALL regress_try('SELECT lockbox_ack_notification(1)');
-- lockbox_protect and lockbox_unprotect are for the table's owner.
CALL regress_try($$SELECT lockbox_protect('regress_stark_data', tenant => 'stark')$$);
CALL regress_try($$SELECT lockbox_unprotect('regress_stark_data')$$);
CALL regress_try('SELECT * FROM lockbox.request');
CALL regress_try($$UPDATE lockbox.request SET state = 'approved' WHERE id = $$ || :eli_request_id);
CALL regress_try('INSERT INTO lockbox.decision VALUES (' || :eli_request_id
	|| $$, 'regress_erin', 'regress_erin', 'approve', NULL, now())$$);
CALL regress_try($$INSERT INTO lockbox.audit_log VALUES (999999, now(), 'x', 'x',
	'approve', NULL, NULL, '{}', '{}', '\x00')$$);

-- ---------------------------------------------------------------------
-- 9. The refusals left no trace: the requests are as the successful steps
--    left them, and the audit holds only those steps.
-- ---------------------------------------------------------------------
RESET SESSION AUTHORIZATION;
SELECT id, requester, reviewer, state, approvals FROM lockbox.requests
 WHERE tenant IN ('stark', 'wayne') ORDER BY id;
SELECT actor, event, request_id, detail->>'to' AS "to" FROM lockbox.audit
 WHERE tenant IN ('stark', 'wayne') AND request_id IS NOT NULL ORDER BY seq;
SELECT count(*) AS decisions FROM lockbox.decision
 WHERE request_id IN (SELECT id FROM lockbox.request WHERE tenant = 'stark');

-- ---------------------------------------------------------------------
-- 10. An engineer who owns a protected table is refused as well: an owner
--     can switch off whatever guards the table.  (Last in this file: should
--     the request be accepted, no later output changes.)
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_own;
CALL regress_try($$SELECT lockbox_request('stark', 'Owner wants to look at other data',
		tables => '{regress_stark_data}')$$);
CALL regress_try($$SELECT lockbox_request('stark', 'Owner wants to look at own table',
		tables => '{regress_own_table}')$$);
RESET SESSION AUTHORIZATION;
SELECT count(*) AS requests_by_owner FROM lockbox.requests
 WHERE requester = 'regress_own';

-- ---------------------------------------------------------------------
-- Clean-up.
-- ---------------------------------------------------------------------
SELECT lockbox_remove_approver('stark', a)
  FROM unnest('{regress_ada,regress_amy,regress_abe,regress_rae}'::regrole[]) a;
SELECT lockbox_remove_approver('wayne', 'regress_gus');
SELECT lockbox_unprotect('regress_stark_data');
SELECT lockbox_unprotect('regress_own_table');
DROP TABLE regress_stark_data, regress_own_table;
DROP ROLE regress_erin, regress_eve, regress_rex, regress_abe, regress_mia,
	regress_max, regress_lead, regress_eli, regress_rae, regress_ada,
	regress_amy, regress_gus, regress_root, regress_byp, regress_own;
