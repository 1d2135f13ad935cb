--
-- 03_switch: a tenant's lockbox switched off and on again.
--
-- Hooli's admin Ada may switch Hooli's lockbox off: the support manager's
-- review then approves on its own.  Gus is Pied Piper's admin.  Erin is the
-- engineer, Mia the reviewer, Nora the auditor.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_erin, regress_mia, regress_ada, regress_gus,
	regress_nora;
RESET client_min_messages;

CREATE ROLE regress_erin;	GRANT lockbox_engineer TO regress_erin;
CREATE ROLE regress_mia;	GRANT lockbox_reviewer TO regress_mia;
CREATE ROLE regress_ada;	GRANT lockbox_approver TO regress_ada;
CREATE ROLE regress_gus;	GRANT lockbox_approver TO regress_gus;
CREATE ROLE regress_nora;	GRANT lockbox_auditor TO regress_nora;

-- Request ids of this file start at 301.
SELECT setval('lockbox.request_id_seq', 300);

SELECT lockbox_add_tenant('hooli');
SELECT lockbox_add_tenant('piedpiper');
SELECT lockbox_add_approver('hooli', 'regress_ada');
SELECT lockbox_add_approver('piedpiper', 'regress_gus');
CREATE TABLE regress_tickets (tenant text NOT NULL, id int, body text);
SELECT lockbox_protect('regress_tickets', tenant_column => 'tenant');

-- ---------------------------------------------------------------------
-- 1. Who may switch Hooli's lockbox: Hooli's approvers, nobody else.
-- ---------------------------------------------------------------------
-- Gus approves for Pied Piper, not for Hooli.
SET SESSION AUTHORIZATION regress_gus;
CALL regress_try($$SELECT lockbox_set_enabled('hooli', false)$$);
-- Engineers and reviewers may not call it at all.
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try($$SELECT lockbox_set_enabled('hooli', false)$$);
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try($$SELECT lockbox_set_enabled('hooli', false)$$);
-- Nor may the DBA: the switch is the customer's.
RESET SESSION AUTHORIZATION;
CALL regress_try($$SELECT lockbox_set_enabled('hooli', false)$$);
-- Nothing changed.
SELECT tenant, enabled FROM lockbox.tenants WHERE tenant IN ('hooli', 'piedpiper')
 ORDER BY tenant;

-- Ada switches Hooli's lockbox off.
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_set_enabled('hooli', false);
SELECT tenant, enabled, required_approvals, approvers FROM lockbox.tenants
 WHERE tenant = 'hooli';

-- ---------------------------------------------------------------------
-- 2. Lockbox off: Mia's review approves the request by itself.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('hooli', 'Search results empty for this customer',
		tables => '{regress_tickets}', duration => '1 hour') AS request_id \gset off_
\echo request :off_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:off_request_id, 'Looks legitimate');
SET SESSION AUTHORIZATION regress_erin;
SELECT id, state, reviewer, approvals, deadline,
	   access_ends_at - approved_at AS window
  FROM lockbox.requests WHERE id = :off_request_id;
SELECT request_id, engineer, tenant, access FROM lockbox.active_access;

-- The audit row of the review says why no approver was asked ...
SET SESSION AUTHORIZATION regress_nora;
SELECT actor, event, detail FROM lockbox.audit
 WHERE request_id = :off_request_id ORDER BY seq;
-- ... and no approver was notified; Erin heard that she has access.
SELECT recipient, event FROM lockbox.notifications
 WHERE request_id = :off_request_id ORDER BY id;

-- The switch is per tenant: Pied Piper's requests still go to Gus.
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('piedpiper', 'Compression ratio report shows zeros',
		tables => '{regress_tickets}') AS request_id \gset pp_
\echo request :pp_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:pp_request_id);

-- Erin is done with Hooli.
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_close(:off_request_id);

-- ---------------------------------------------------------------------
-- 3. Ada switches the lockbox back on: stage 2 is back.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_set_enabled('hooli', true);
SELECT tenant, enabled FROM lockbox.tenants WHERE tenant = 'hooli';
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('hooli', 'Search results empty again since this morning',
		tables => '{regress_tickets}') AS request_id \gset on_
\echo request :on_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:on_request_id);
SET SESSION AUTHORIZATION regress_nora;
SELECT recipient, event FROM lockbox.notifications
 WHERE request_id = :on_request_id ORDER BY id;

-- Both switches are in the audit, with the state before and after.
SELECT actor, event, tenant, detail FROM lockbox.audit
 WHERE event = 'set_enabled' AND tenant = 'hooli' ORDER BY seq;
SELECT ok FROM lockbox_verify_audit();

-- ---------------------------------------------------------------------
-- Clean-up.
-- ---------------------------------------------------------------------
RESET SESSION AUTHORIZATION;
SELECT lockbox_remove_approver('hooli', 'regress_ada');
SELECT lockbox_remove_approver('piedpiper', 'regress_gus');
SELECT lockbox_unprotect('regress_tickets');
DROP TABLE regress_tickets;
DROP ROLE regress_erin, regress_mia, regress_ada, regress_gus, regress_nora;
