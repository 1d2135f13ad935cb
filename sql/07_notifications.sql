--
-- 07_notifications: who is notified of what, the payload, and how a
-- delivery service claims and acknowledges notifications.
--
-- Wonka's approvers are Ada and Alan; Slugworth's is Gus.  Erin and Eve are
-- engineers, Mia the reviewer.  Nora and Noah run the delivery service
-- (auditors).
--
-- NOTIFY lockbox: the lockbox worker sends each notification as a NOTIFY
-- shortly after the transition commits.  psql prints a notification with
-- the PID of the process that sent it, which differs at every run, so this
-- file does not LISTEN; it checks instead that the worker has sent (and
-- dropped from lockbox.notify_outbox) every queued notification.  Receiving
-- them is left to the TAP and isolation tests.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_erin, regress_eve, regress_mia, regress_ada,
	regress_alan, regress_gus, regress_nora, regress_noah;
RESET client_min_messages;

CREATE ROLE regress_erin;	GRANT lockbox_engineer TO regress_erin;
CREATE ROLE regress_eve;	GRANT lockbox_engineer TO regress_eve;
CREATE ROLE regress_mia;	GRANT lockbox_reviewer TO regress_mia;
CREATE ROLE regress_ada;	GRANT lockbox_approver TO regress_ada;
CREATE ROLE regress_alan;	GRANT lockbox_approver TO regress_alan;
CREATE ROLE regress_gus;	GRANT lockbox_approver TO regress_gus;
CREATE ROLE regress_nora;	GRANT lockbox_auditor TO regress_nora;
CREATE ROLE regress_noah;	GRANT lockbox_auditor TO regress_noah;

-- Request ids of this file start at 701.
SELECT setval('lockbox.request_id_seq', 700);

SELECT lockbox_add_tenant('wonka');
SELECT lockbox_add_tenant('slugworth');
SELECT lockbox_add_approver('wonka', 'regress_ada');
SELECT lockbox_add_approver('wonka', 'regress_alan');
SELECT lockbox_add_approver('slugworth', 'regress_gus');
CREATE TABLE regress_recipes (tenant text NOT NULL, id int);
SELECT lockbox_protect('regress_recipes', tenant_column => 'tenant');

-- Earlier files left notifications behind: deliver them all first, so that
-- the claims below see this file's notifications only.
SET SESSION AUTHORIZATION regress_nora;
DO $$
BEGIN
	PERFORM lockbox_ack_notification(id) FROM lockbox_claim_notifications(10000);
END
$$;
SELECT count(*) AS undelivered FROM lockbox.notifications WHERE delivered_at IS NULL;

-- ---------------------------------------------------------------------
-- 1. Filing a request notifies the reviewers (one row, addressed to
--    lockbox_reviewer); entering pending_approval notifies every approver
--    of the tenant, one row each.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_request('wonka', 'Recipe import drops the last ingredient',
		tables => '{regress_recipes}') AS request_id \gset
\echo request :request_id
SET SESSION AUTHORIZATION regress_nora;
SELECT count(*) AS notifications FROM lockbox.notifications
 WHERE request_id = :request_id;

SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:request_id);
SET SESSION AUTHORIZATION regress_nora;
SELECT request_id, recipient, event, created_at IS NOT NULL AS created,
	   claimed_at, delivered_at
  FROM lockbox.notifications WHERE request_id = :request_id ORDER BY id;

-- The payload: JSON with the notification's id, the event, the request,
-- its tenant and state, the recipient, and the audit's head (anchors).
SELECT recipient,
	   ARRAY(SELECT jsonb_object_keys(payload) ORDER BY 1) AS payload_keys,
	   payload->>'event' AS event, payload->>'request_id' AS request_id,
	   payload->>'tenant' AS tenant, payload->>'state' AS state,
	   payload->>'recipient' AS payload_recipient,
	   (payload->>'id')::bigint = id AS id_is_the_rows
  FROM lockbox.notifications WHERE request_id = :request_id ORDER BY id;
-- ... stored as jsonb stores it (a payload written with its keys out of
-- jsonb's order would differ from its own text read back, and lookups by
-- key would miss), with the anchors as an array of {seq, hash}
SELECT count(*) AS payloads,
	   count(*) FILTER (WHERE payload = payload::text::jsonb) AS canonical,
	   count(*) FILTER (WHERE jsonb_typeof(payload->'anchors') = 'array'
						AND payload->'anchors'->0 ? 'seq'
						AND length(payload->'anchors'->0->>'hash') = 64) AS anchored
  FROM lockbox.notifications WHERE request_id = :request_id;

-- ---------------------------------------------------------------------
-- 2. Every later change notifies the requester, once per change; the
--    approvers who approved are told when the access starts and ends.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_ada;
SELECT lockbox_approve(:request_id);
SET SESSION AUTHORIZATION regress_erin;
SELECT lockbox_close(:request_id);

-- Eve's request on Slugworth: reviewed (Gus notified), then denied by Gus
-- (Eve notified).
SET SESSION AUTHORIZATION regress_eve;
SELECT lockbox_request('slugworth', 'Candy counts wrong in the monthly report',
		tables => '{regress_recipes}') AS eve_request_id \gset
\echo request :eve_request_id
SET SESSION AUTHORIZATION regress_mia;
SELECT lockbox_approve(:eve_request_id);
SET SESSION AUTHORIZATION regress_gus;
SELECT lockbox_deny(:eve_request_id, 'Report is generated by us, no access needed');

SET SESSION AUTHORIZATION regress_nora;
SELECT request_id, recipient, event, payload->>'state' AS state
  FROM lockbox.notifications
 WHERE request_id IN (:request_id, :eve_request_id) ORDER BY id;

-- ---------------------------------------------------------------------
-- 3. Who sees which notifications.
-- ---------------------------------------------------------------------
-- An engineer sees only the notifications addressed to them.
SET SESSION AUTHORIZATION regress_erin;
SELECT request_id, recipient, event FROM lockbox.notifications ORDER BY id;
SET SESSION AUTHORIZATION regress_eve;
SELECT request_id, recipient, event FROM lockbox.notifications ORDER BY id;
-- An approver sees the notifications of their tenants' requests (their own
-- and the requester's), and nothing of another tenant's requests.
SET SESSION AUTHORIZATION regress_ada;
SELECT count(*) FILTER (WHERE recipient = 'regress_ada') AS addressed_to_ada,
	   count(*) FILTER (WHERE request_id <> :request_id) AS of_other_requests
  FROM lockbox.notifications;
SET SESSION AUTHORIZATION regress_gus;
SELECT request_id, recipient, event FROM lockbox.notifications ORDER BY id;
-- The reviewer and the auditors see them all.
SET SESSION AUTHORIZATION regress_mia;
SELECT count(*) AS notifications FROM lockbox.notifications
 WHERE request_id IN (:request_id, :eve_request_id);

-- ---------------------------------------------------------------------
-- 4. Claiming: each undelivered row goes to one claimer only.
-- ---------------------------------------------------------------------
SET SESSION AUTHORIZATION regress_nora;
SELECT request_id, recipient, event, payload->>'state' AS state
  FROM lockbox_claim_notifications(2) ORDER BY id;
-- Noah, a second claimer, gets the rest and not Nora's two.
SET SESSION AUTHORIZATION regress_noah;
SELECT request_id, recipient, event, payload->>'state' AS state
  FROM lockbox_claim_notifications(100) ORDER BY id;
-- Nothing is left to claim.
SET SESSION AUTHORIZATION regress_nora;
SELECT count(*) AS claimed FROM lockbox_claim_notifications(100);
SELECT count(*) FILTER (WHERE claimed_at IS NOT NULL) AS claimed,
	   count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered
  FROM lockbox.notifications WHERE request_id IN (:request_id, :eve_request_id);

-- ---------------------------------------------------------------------
-- 5. Acknowledging: true the first time, false after.
-- ---------------------------------------------------------------------
SELECT min(id) AS first_id FROM lockbox.notifications
 WHERE request_id = :request_id \gset
SELECT lockbox_ack_notification(:first_id);
SELECT lockbox_ack_notification(:first_id);
SELECT recipient, event, delivered_at IS NOT NULL AS delivered
  FROM lockbox.notifications WHERE id = :first_id;
-- The others are acknowledged as the service delivers them.
SELECT count(*) FILTER (WHERE acked) AS acked, count(*) FILTER (WHERE NOT acked) AS already
  FROM (SELECT lockbox_ack_notification(id) AS acked FROM lockbox.notifications
		 WHERE request_id IN (:request_id, :eve_request_id) ORDER BY id) a;
-- A delivered notification is never claimed again.
SELECT count(*) AS claimed FROM lockbox_claim_notifications(100);

-- ---------------------------------------------------------------------
-- 6. The worker has sent every notification as NOTIFY lockbox: nothing is
--    left in its outbox (waiting up to ten seconds for it).
-- ---------------------------------------------------------------------
RESET SESSION AUTHORIZATION;
DO $$
BEGIN
	FOR i IN 1..100 LOOP
		EXIT WHEN NOT EXISTS (SELECT 1 FROM lockbox.notify_outbox);
		PERFORM pg_sleep(0.1);
	END LOOP;
END
$$;
SELECT count(*) AS queued FROM lockbox.notify_outbox;

-- ---------------------------------------------------------------------
-- 7. Delivery (lockbox-notify): addresses, failed attempts, leases.
-- ---------------------------------------------------------------------
-- The extension owner sets roles' e-mail addresses and tenants' webhooks;
-- setting again replaces them, NULL removes them.
SELECT lockbox_set_contact('regress_ada', 'ada@wonka.example, ada.home@wonka.example');
SELECT lockbox_set_contact('regress_alan', 'alan@wonka.example');
SELECT lockbox_set_contact('regress_alan', 'alan@wonka.example,alan@wonka.example');
SELECT lockbox_set_contact('regress_gus', 'gus@slugworth.example');
SELECT lockbox_set_contact('regress_gus', NULL);
SELECT lockbox_set_webhook('wonka', 'https://hooks.wonka.example/lockbox http://10.0.0.7:8080/in');
SELECT role::name, email FROM lockbox.contact ORDER BY 1, 2;
SELECT tenant, url FROM lockbox.webhook ORDER BY 1, 2;
-- Refusals: the contract's SQLSTATEs, and lockbox's messages.
CALL regress_try($$SELECT lockbox_set_contact(NULL, 'x@y.example')$$);
CALL regress_try($$SELECT lockbox_set_contact('regress_ada', 'not an address')$$);
CALL regress_try($$SELECT lockbox_set_contact('regress_ada', 'ada@wonka.example'||chr(10)||'Bcc: all@example.com')$$);
CALL regress_try($$SELECT lockbox_set_contact('regress_ada', ' , ')$$);
CALL regress_try($$SELECT lockbox_set_contact('regress_nobody', 'x@y.example')$$);
CALL regress_try($$SELECT lockbox_set_contact(999999::oid::regrole, 'x@y.example')$$);
CALL regress_try($$SELECT lockbox_set_webhook(NULL, 'https://x.example')$$);
CALL regress_try($$SELECT lockbox_set_webhook('nosuch', 'https://x.example')$$);
CALL regress_try($$SELECT lockbox_set_webhook('wonka', 'ftp://x.example')$$);
CALL regress_try($$SELECT lockbox_set_webhook('wonka', 'https://')$$);
SET SESSION AUTHORIZATION regress_nora;
CALL regress_try($$SELECT lockbox_set_contact('regress_nora', 'nora@op.example')$$);
CALL regress_try($$SELECT lockbox_set_webhook('wonka', NULL)$$);
RESET SESSION AUTHORIZATION;

-- What the notifier reads for a claimed notification: the request, who
-- approved it, and where it goes.  Ada's address reaches her; the
-- approvers' notifications also go to the tenant's webhooks, the
-- requester's do not.
SET SESSION AUTHORIZATION regress_nora;
SELECT d.recipient, d.event, d.tenant, d.requester, d.reason, d.tables,
	   d.access, d.state, d.approved_by, d.emails, d.webhooks
  FROM lockbox.delivery(ARRAY(SELECT id FROM lockbox.notifications
							   WHERE request_id = :request_id)) d
 ORDER BY d.id;

-- A failed attempt: retried after the delay the notifier asks for, and
-- claimable again only then; without a delay, failed for good.
SET SESSION AUTHORIZATION regress_eve;
SELECT lockbox_request('wonka', 'Checking the failed delivery path here',
		tables => '{regress_recipes}') AS fail_request_id \gset
SET SESSION AUTHORIZATION regress_nora;
SELECT id AS fail_id FROM lockbox_claim_notifications(10, '1 minute') \gset
SELECT lockbox_fail_notification(:fail_id, 'connection refused', '1 hour');
SELECT count(*) AS claimed FROM lockbox_claim_notifications(10);
SELECT attempts, last_error, next_attempt_at > now() + '59 minutes' AS backed_off,
	   claimed_at, failed_at, delivered_at
  FROM lockbox.notifications WHERE id = :fail_id;
SELECT lockbox_fail_notification(:fail_id, '550 no such user');
SELECT attempts, last_error, failed_at IS NOT NULL AS failed
  FROM lockbox.notifications WHERE id = :fail_id;
-- failed for good: never claimed again, and counted in lockbox.stats
SELECT lockbox_fail_notification(:fail_id, 'again');
SELECT notifications_failed >= 1 AS counted FROM lockbox.stats;
CALL regress_try($$SELECT lockbox_fail_notification(NULL, 'x')$$);
CALL regress_try(format('SELECT lockbox_fail_notification(%s, NULL)', :fail_id));
CALL regress_try($$SELECT lockbox_fail_notification(999999999, 'x')$$);
CALL regress_try(format($$SELECT lockbox_fail_notification(%s, 'x', '-1 second')$$, :fail_id));
CALL regress_try($$SELECT count(*) FROM lockbox_claim_notifications(1, '0 seconds')$$);
CALL regress_try($$SELECT count(*) FROM lockbox_claim_notifications(1, NULL)$$);
SET SESSION AUTHORIZATION regress_erin;
CALL regress_try(format($$SELECT lockbox_fail_notification(%s, 'x')$$, :fail_id));
SET SESSION AUTHORIZATION regress_eve;
SELECT lockbox_cancel(:fail_request_id);
RESET SESSION AUTHORIZATION;
SELECT lockbox_set_contact('regress_ada', NULL);
SELECT lockbox_set_contact('regress_alan', NULL);
SELECT lockbox_set_webhook('wonka', NULL);
SELECT count(*) AS contacts FROM lockbox.contact;

-- ---------------------------------------------------------------------
-- Clean-up.
-- ---------------------------------------------------------------------
SELECT lockbox_remove_approver('wonka', 'regress_ada');
SELECT lockbox_remove_approver('wonka', 'regress_alan');
SELECT lockbox_remove_approver('slugworth', 'regress_gus');
SELECT lockbox_unprotect('regress_recipes');
DROP TABLE regress_recipes;
DROP ROLE regress_erin, regress_eve, regress_mia, regress_ada, regress_alan,
	regress_gus, regress_nora, regress_noah;
