--
-- 12_admin: administration (1.1).
--
--   1. lockbox_extend: the requester asks for more time, the tenant's
--      approvers decide (lockbox_approve / lockbox_deny on the request), with
--      the quorum and the separation of duties of stage 2;
--   2. a pending extension lapses when the access ends: closed, revoked, or
--      the window elapsed;
--   3. lockbox_revoke by a reviewer: the operator's emergency stop;
--   4. lockbox_remove_tenant: a tenant whose requests have ended goes, with
--      its approver bindings; its requests and audit stay.
--
-- Aperture needs two approvals (Ada, Amy, and Rae, who is also a reviewer);
-- Mesa one (Gus).  Bad input for these functions is in 05_bad_input.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_erin, regress_mia, regress_rae, regress_ada,
	regress_amy, regress_gus;
RESET client_min_messages;

CREATE ROLE regress_erin;	GRANT lockbox_engineer TO regress_erin;
CREATE ROLE regress_mia;	GRANT lockbox_reviewer TO regress_mia;
CREATE ROLE regress_rae;	GRANT lockbox_reviewer, lockbox_approver TO regress_rae;
CREATE ROLE regress_ada;	GRANT lockbox_approver TO regress_ada;
CREATE ROLE regress_amy;	GRANT lockbox_approver TO regress_amy;
CREATE ROLE regress_gus;	GRANT lockbox_approver TO regress_gus;

-- Request ids of this file start at 1201.
SELECT setval('lockbox.request_id_seq', 1200);

SELECT lockbox_add_tenant('adm_aperture', required_approvals => 2);
SELECT lockbox_add_approver('adm_aperture', a)
  FROM unnest('{regress_ada,regress_amy,regress_rae}'::regrole[]) a;
SELECT lockbox_add_tenant('adm_mesa');
SELECT lockbox_add_approver('adm_mesa', 'regress_gus');
CREATE TABLE regress_adm_data (tenant text NOT NULL, id int);
SELECT lockbox_protect('regress_adm_data', tenant_column => 'tenant');

-- The audit of a request: each step, with what an extension asked for or
-- changed (how much later the window ends).
CREATE FUNCTION regress_adm_audit(request bigint)
RETURNS TABLE (actor name, event text, "to" text, extension text, by text,
			   later interval, approvals text, by_role text, lapsed text)
LANGUAGE sql AS $$
SELECT a.actor, a.event, a.detail->>'to', a.detail->>'extension',
	   a.detail->>'by',
	   (a.detail->'access_ends_at'->>'to')::timestamptz
		 - (a.detail->'access_ends_at'->>'from')::timestamptz,
	   a.detail->>'approvals', a.detail->>'by_role',
	   a.detail->>'extension_lapsed'
  FROM lockbox.audit a
 WHERE a.request_id = $1
 ORDER BY a.seq
$$;

-- ---------------------------------------------------------------------
-- 1. An extension, approved by a quorum of two.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('adm_aperture', 'Import job stalls on large files',
		tables => '{regress_adm_data}', duration => '2 hours');
SET SESSION AUTHORIZATION regress_rae;		-- Rae reviews it
SELECT lockbox_approve(1201);
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(1201);
SET SESSION AUTHORIZATION regress_amy;
SELECT lockbox_approve(1201);

-- Erin needs another hour.  The request stays approved, its window as it
-- was, while the approvers decide.
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_extend(1201, '1 hour', 'The import has to be rerun to see the failure');
SELECT id, request_id, by, state, new_ends_at - ends_at AS later, approvals
  FROM lockbox.extensions WHERE request_id = 1201;
SELECT state, access_ends_at - approved_at AS "window"
  FROM lockbox.requests WHERE id = 1201;
-- one extension at a time
CALL regress_try($$SELECT lockbox_extend(1201, '30 minutes', 'And a little more on top of that')$$);
RESET SESSION AUTHORIZATION;

-- Every approver of Aperture is notified, as when a request awaits them.
SELECT recipient, event, payload->>'state' AS state
  FROM lockbox.notifications
 WHERE request_id = 1201 AND event = 'extension_requested'
 ORDER BY recipient;

-- Rae reviewed the request: she never approves it, its extension neither.
-- Mia is a reviewer, not an approver of Aperture.
SET SESSION AUTHORIZATION regress_rae;
CALL regress_try($$SELECT lockbox_approve(1201)$$);
SET SESSION AUTHORIZATION regress_mia;
CALL regress_try($$SELECT lockbox_approve(1201)$$);
CALL regress_try($$SELECT lockbox_deny(1201, 'Reviewer says enough is enough')$$);

-- Ada approves: one of two.  She counts once.
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(1201, 'One more hour is fine');
CALL regress_try($$SELECT lockbox_approve(1201)$$);
SELECT state, approvals FROM lockbox.extensions WHERE request_id = 1201;
-- Amy approves: the window now ends an hour later.
SET SESSION AUTHORIZATION regress_amy;
SELECT lockbox_approve(1201);
SELECT state, approvals, decided_at IS NOT NULL AS decided
  FROM lockbox.extensions WHERE request_id = 1201;
SELECT state, access_ends_at - approved_at AS "window"
  FROM lockbox.requests WHERE id = 1201;
SET SESSION AUTHORIZATION regress_erin;
SELECT ends_at - starts_at AS "window" FROM lockbox.active_access WHERE request_id = 1201;
RESET SESSION AUTHORIZATION;

-- The requester is told.
SELECT recipient, event, payload->>'state' AS state
  FROM lockbox.notifications
 WHERE request_id = 1201 AND recipient = 'regress_erin'
 ORDER BY id;

-- ---------------------------------------------------------------------
-- 2. At most lockbox.max_access_duration (8 hours) after the approval.
--    The window is 3 hours long: 5 hours more is the most.
-- ---------------------------------------------------------------------
SHOW lockbox.max_access_duration;
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try($$SELECT lockbox_extend(1201, '5 hours 1 second', 'The rerun takes most of the day')$$);
SELECT lockbox_extend(1201, '5 hours', 'The rerun takes most of the day');

-- Any deny denies the extension; the request stays approved as it was.
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(1201);
SET SESSION AUTHORIZATION regress_amy;
SELECT lockbox_deny(1201, 'Five more hours is too long, ask again');
SELECT by, state, approvals FROM lockbox.extensions WHERE request_id = 1201 ORDER BY id;
SELECT state, access_ends_at - approved_at AS "window"
  FROM lockbox.requests WHERE id = 1201;
-- With nothing pending, approving an approved request is refused as before.
CALL regress_try($$SELECT lockbox_approve(1201)$$);
RESET SESSION AUTHORIZATION;
SELECT event FROM lockbox.notifications
 WHERE request_id = 1201 AND recipient = 'regress_erin' ORDER BY id DESC LIMIT 1;

-- ---------------------------------------------------------------------
-- 3. A pending extension lapses when the access ends.  Erin asks again,
--    then closes the request: the extension lapsed, and the close says so.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_extend(1201, '1 hour', 'Need to compare with yesterday''s run');
SELECT lockbox_close(1201, 'Import fixed');
SELECT by, state FROM lockbox.extensions WHERE request_id = 1201 ORDER BY id;
SET SESSION AUTHORIZATION regress_ada;
CALL regress_try($$SELECT lockbox_approve(1201)$$);
RESET SESSION AUTHORIZATION;
SELECT * FROM regress_adm_audit(1201);

-- The window elapses: a four-second window, extended by a second, and the
-- extension left pending.  The views show it lapsed at once; the worker,
-- closing the request at the window's end, records it.
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('adm_mesa', 'Look at one order for SUP-2001',
		tables => '{regress_adm_data}', duration => '4 seconds');
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(1202);
SET SESSION AUTHORIZATION regress_gus;
SELECT lockbox_approve(1202);
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_extend(1202, '1 second', 'One more second for the order');
SELECT state FROM lockbox.extensions WHERE request_id = 1202;
SELECT pg_sleep_until(access_ends_at + interval '10 milliseconds')
  FROM lockbox.requests WHERE id = 1202;
SELECT state FROM lockbox.extensions WHERE request_id = 1202;
SET SESSION AUTHORIZATION regress_gus;
CALL regress_try($$SELECT lockbox_approve(1202)$$);
RESET SESSION AUTHORIZATION;
DO $$
BEGIN
	FOR i IN 1 .. 100 LOOP
		EXIT WHEN (SELECT state FROM lockbox.extension WHERE request_id = 1202) = 'lapsed';
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT e.state, e.decided_at = r.closed_at AS lapsed_at_close, r.state AS request_state,
	   r.close_reason
  FROM lockbox.extension e JOIN lockbox.request r ON r.id = e.request_id
 WHERE e.request_id = 1202;

-- ---------------------------------------------------------------------
-- 4. The operator's emergency stop: a reviewer revokes.  Gus is Mesa's
--    approver; Mia is no approver at all.  Erin's pending extension lapses.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('adm_mesa', 'Orders export missing lines',
		tables => '{regress_adm_data}');
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(1203);
SET SESSION AUTHORIZATION regress_gus;
SELECT lockbox_approve(1203);
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_extend(1203, '1 hour', 'Export has to run twice');
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_revoke(1203, 'Incident: all support access stopped');
SELECT state, close_reason FROM lockbox.requests WHERE id = 1203;
SELECT state FROM lockbox.extensions WHERE request_id = 1203;
RESET SESSION AUTHORIZATION;
SELECT * FROM regress_adm_audit(1203);
-- Erin is told; Gus, the customer's approver, sees who stopped it.
SELECT event FROM lockbox.notifications
 WHERE request_id = 1203 AND recipient = 'regress_erin' ORDER BY id DESC LIMIT 1;
SET SESSION AUTHORIZATION regress_gus;
SELECT actor, detail->>'by_role' AS by_role, detail->>'reason' AS reason
  FROM lockbox.audit WHERE request_id = 1203 AND event = 'revoke';
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------------
-- 5. Removing a tenant.  Mesa still has a request awaiting review.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('adm_mesa', 'Customer asks why totals differ',
		tables => '{regress_adm_data}');
RESET SESSION AUTHORIZATION;
CALL regress_try($$SELECT lockbox_remove_tenant('adm_mesa')$$);
-- Once its review stage has passed its deadline, the request no longer
-- holds the tenant, whether or not the worker has recorded the expiry.
UPDATE lockbox.request SET deadline = now() - interval '1 second' WHERE id = 1204;
SELECT state FROM lockbox.requests WHERE id = 1204;
SELECT lockbox_remove_tenant('adm_mesa');

-- Aperture's requests have all ended: it goes too.
SELECT lockbox_remove_tenant('adm_aperture');
SELECT tenant FROM lockbox.tenants WHERE tenant LIKE 'adm\_%';
SELECT count(*) AS bindings FROM lockbox.approver WHERE tenant LIKE 'adm\_%';

-- The requests stay, under the tenant's name, and the audit with them.
SELECT id, tenant, state FROM lockbox.requests WHERE tenant LIKE 'adm\_%' ORDER BY id;
SELECT tenant, detail FROM lockbox.audit WHERE event = 'remove_tenant' ORDER BY seq;
-- The worker's step expires Mesa's last request all the same (the worker,
-- or the step run here, whichever comes first).
DO $$
BEGIN
	FOR i IN 1 .. 100 LOOP
		PERFORM lockbox.run_deadlines();
		EXIT WHEN (SELECT state FROM lockbox.request WHERE id = 1204) = 'expired';
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT state FROM lockbox.request WHERE id = 1204;
SELECT request_id, count(*) AS audit_rows
  FROM lockbox.audit WHERE request_id BETWEEN 1201 AND 1204
 GROUP BY request_id ORDER BY request_id;

-- The tenant is unknown now; its requests are refused for their state.
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try($$SELECT lockbox_request('adm_mesa', 'Customer asks why totals differ')$$);
CALL regress_try($$SELECT lockbox_close(1203)$$);
CALL regress_try($$SELECT lockbox_extend(1201, '1 hour', 'Customer wants one more look')$$);
RESET SESSION AUTHORIZATION;
CALL regress_try($$SELECT lockbox_remove_tenant('adm_mesa')$$);

-- ---------------------------------------------------------------------
-- Clean-up: the approver bindings went with the tenants.
-- ---------------------------------------------------------------------
SELECT lockbox_unprotect('regress_adm_data');
DROP TABLE regress_adm_data;
DROP FUNCTION regress_adm_audit(bigint);
DROP ROLE regress_erin, regress_mia, regress_rae, regress_ada, regress_amy,
	regress_gus;
