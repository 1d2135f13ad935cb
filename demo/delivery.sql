-- =====================================================================
-- lockbox demo, part 2: delivery.  The extension owner gives Acme's
-- admins and Mia their e-mail addresses; lockbox-notify (started by
-- test/demo.sh against a local SMTP server) mails what happens next.
-- =====================================================================
\pset footer off
\timing off

SELECT lockbox_set_contact('ada', 'ada@acme.example');
SELECT lockbox_set_contact('alan', 'alan@acme.example, alan.oncall@acme.example');
SELECT lockbox_set_contact('mia', 'mia@operator.example');
SELECT lockbox_set_contact('erin', 'erin@operator.example');

-- The notifications of part 1 were delivered by hand there.
SET ROLE notifier;
SELECT count(lockbox_ack_notification(id)) AS acknowledged_by_hand
  FROM lockbox.notifications WHERE delivered_at IS NULL;
RESET ROLE;

-- Erin asks again (Mia is e-mailed), Mia reviews (Ada and Alan are).
SET ROLE erin;
SELECT lockbox_request('acme', 'Customer reports a duplicate invoice for March',
                       duration => '1 hour', ticket => 'SUP-1077') AS request2 \gset
RESET ROLE;
SET ROLE mia;
SELECT lockbox_approve(:request2, 'Checked with the account manager');
RESET ROLE;
SELECT recipient, event, payload->>'state' AS state, delivered_at IS NOT NULL AS delivered
  FROM lockbox.notifications WHERE request_id = :request2 ORDER BY id;
