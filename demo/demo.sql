-- =====================================================================
-- lockbox demo: Customer Lockbox for PostgreSQL, told in psql.
--
-- Acme Corp keeps its data with a SaaS operator.  Erin, a support
-- engineer, needs to look at it for a case.  Mia, a support manager,
-- reviews the request; Acme's admins Ada and Alan approve or deny it.
-- Every step lands in a tamper-evident audit log.
-- =====================================================================
\pset footer off
\pset null '(null)'
\timing off

-- The extension (it needs shared_preload_libraries = 'lockbox').
CREATE EXTENSION lockbox;

-- ---------------------------------------------------------------------
-- The parties.  lockbox created four group roles; people join them.
-- ---------------------------------------------------------------------
CREATE ROLE erin LOGIN;   GRANT lockbox_engineer TO erin;    -- support engineer
CREATE ROLE mia LOGIN;    GRANT lockbox_reviewer TO mia;     -- support manager
CREATE ROLE ada LOGIN;    GRANT lockbox_approver TO ada;     -- Acme admin
CREATE ROLE alan LOGIN;   GRANT lockbox_approver TO alan;    -- Acme admin
CREATE ROLE notifier LOGIN; GRANT lockbox_auditor TO notifier; -- mails the admins

-- The DBA (extension owner) registers the tenants and binds Acme's admins.
SELECT lockbox_add_tenant('acme');
SELECT lockbox_add_tenant('globex');
SELECT lockbox_add_approver('acme', 'ada');
SELECT lockbox_add_approver('acme', 'alan');
SELECT * FROM lockbox.tenants;

-- ---------------------------------------------------------------------
-- The customer data: one table shared by all tenants, keyed by a tenant
-- column.  The application reads it through its own role.
-- ---------------------------------------------------------------------
CREATE TABLE invoices (id int PRIMARY KEY, tenant text NOT NULL, total numeric);
CREATE INDEX ON invoices (tenant);
INSERT INTO invoices VALUES (1, 'acme', 120.00), (2, 'acme', 75.50),
                            (3, 'globex', 990.00), (4, 'globex', 12.00);
CREATE ROLE app LOGIN;  GRANT SELECT ON invoices TO app;

-- The table's owner puts it under lockbox.
SELECT lockbox_protect('invoices', tenant_column => 'tenant');
SELECT * FROM lockbox.protected_tables;

-- The application sees no difference ...
SET ROLE app;
SELECT * FROM invoices ORDER BY id;
RESET ROLE;

-- ... but Erin, without an approved request, is refused.
SET ROLE erin;
\set ON_ERROR_STOP off
SELECT * FROM invoices;
\set ON_ERROR_STOP on
RESET ROLE;

-- ---------------------------------------------------------------------
-- 1. Erin asks for read access to Acme's data for case SUP-1042.
-- ---------------------------------------------------------------------
SET ROLE erin;
SELECT lockbox_request('acme', 'Invoice totals wrong since the 3rd, customer asked us to check',
                       access => 'read', duration => '2 hours', ticket => 'SUP-1042') AS request_id \gset
SELECT id, tenant, requester, state, access, duration, ticket,
       deadline - created_at AS review_window
  FROM lockbox.requests;

-- Erin is no reviewer: she cannot pass her own request along.
\set ON_ERROR_STOP off
SELECT lockbox_approve(:request_id);
\set ON_ERROR_STOP on
RESET ROLE;

-- ---------------------------------------------------------------------
-- 2. Mia, the support manager, reviews it.  Acme's admins are notified.
-- ---------------------------------------------------------------------
SET ROLE mia;
SELECT lockbox_approve(:request_id, 'Case checked, scope is right');
SELECT id, state, reviewer, deadline - reviewed_at AS approval_window
  FROM lockbox.requests WHERE id = :request_id;
RESET ROLE;

-- The delivery service claims the notifications (one per Acme admin) and
-- acknowledges them once mailed.  Each was also sent as NOTIFY lockbox.
SET ROLE notifier;
SELECT id, recipient, event, payload->>'state' AS state
  FROM lockbox_claim_notifications(10);
SELECT lockbox_ack_notification(id) FROM lockbox.notifications WHERE delivered_at IS NULL;
RESET ROLE;

-- ---------------------------------------------------------------------
-- 3. Ada, Acme's admin, approves.  Access starts now, for two hours.
-- ---------------------------------------------------------------------
SET ROLE ada;
SELECT lockbox_approve(:request_id, 'Go ahead, read only');
RESET ROLE;
SET ROLE erin;
SELECT request_id, engineer, tenant, tables, access, ends_at - starts_at AS window
  FROM lockbox.active_access;

-- Erin now sees Acme's invoices, and only Acme's ...
SELECT * FROM invoices ORDER BY id;
-- ... read only.
\set ON_ERROR_STOP off
UPDATE invoices SET total = 0 WHERE id = 1;
\set ON_ERROR_STOP on

-- ---------------------------------------------------------------------
-- 4. Erin fixes the case and closes the request: access ends at once.
-- ---------------------------------------------------------------------
SELECT lockbox_close(:request_id, 'Rounding bug found, fixed in 4.2.1');
SELECT id, state, close_reason FROM lockbox.requests WHERE id = :request_id;
SELECT count(*) AS active_access FROM lockbox.active_access;
-- Refused again.
\set ON_ERROR_STOP off
SELECT * FROM invoices;
\set ON_ERROR_STOP on
RESET ROLE;

-- ---------------------------------------------------------------------
-- 5. A second request: Alan denies it.  Any single deny denies.
-- ---------------------------------------------------------------------
SET ROLE erin;
SELECT lockbox_request('acme', 'Want to browse all tables for a performance review',
                       access => 'write') AS request_id \gset
RESET ROLE;
SET ROLE mia;
SELECT lockbox_approve(:request_id);
RESET ROLE;
SET ROLE alan;
SELECT lockbox_deny(:request_id, 'Write access is not needed for a performance review');
RESET ROLE;

-- ---------------------------------------------------------------------
-- 6. A third request nobody approves in time expires.  (Timeouts are
--    12 hours by default; this demo shortens stage 2 to 2 seconds.)
-- ---------------------------------------------------------------------
ALTER SYSTEM SET lockbox.approval_timeout = '2s';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SET ROLE erin;
SELECT lockbox_request('acme', 'Customer reports slow exports, need to look at job rows') AS request_id \gset
RESET ROLE;
SET ROLE mia;
SELECT lockbox_approve(:request_id);
RESET ROLE;
SELECT pg_sleep(2.5);
SET ROLE ada;
\set ON_ERROR_STOP off
SELECT lockbox_approve(:request_id, 'too late?');
\set ON_ERROR_STOP on
RESET ROLE;
ALTER SYSTEM RESET lockbox.approval_timeout;
SELECT pg_reload_conf();

-- The lockbox worker recorded the expiry at the deadline.
SELECT database, state, next_deadline IS NULL AS nothing_pending
  FROM lockbox.worker WHERE database = current_database();

-- Erin's view of her requests now.
SET ROLE erin;
SELECT id, state, close_reason FROM lockbox.requests ORDER BY id;
RESET ROLE;

-- ---------------------------------------------------------------------
-- 7. The audit: every step, who did it, and a hash that links each row
--    to the rows before it.
-- ---------------------------------------------------------------------
SET ROLE notifier;
SELECT seq, actor, event, request_id, detail->>'from' AS "from", detail->>'to' AS "to",
       parents, left(encode(hash, 'hex'), 12) AS hash
  FROM lockbox.audit ORDER BY seq;
SELECT * FROM lockbox_verify_audit();
RESET ROLE;

-- Every statement Erin ran on the protected table is in the audit too.
SELECT pg_sleep(0.3);   -- the worker writes them a moment later
SET ROLE notifier;
SELECT engineer, request_id, tenant, relation, command, query FROM lockbox.access_log;
RESET ROLE;

-- Nothing in this database lets an engineer around lockbox.
SET ROLE notifier;
SELECT check_name, ok, detail FROM lockbox.posture;
RESET ROLE;

-- The log is append-only, even for a superuser ...
\set ON_ERROR_STOP off
UPDATE lockbox.audit_log SET actor = 'nobody' WHERE seq = (SELECT min(seq) FROM lockbox.audit_log WHERE event = 'request');
\set ON_ERROR_STOP on

-- ... and one who switches the guard off to edit a row is caught.
ALTER TABLE lockbox.audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE lockbox.audit_log SET detail = detail || '{"reason": "nothing to see"}' WHERE seq = (SELECT min(seq) FROM lockbox.audit_log WHERE event = 'request');
ALTER TABLE lockbox.audit_log ENABLE TRIGGER audit_log_append_only;
SELECT * FROM lockbox_verify_audit();
