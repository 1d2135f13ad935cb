-- pgTAP: what each party sees through the views (each shows a caller only
-- what is theirs: engineers their own requests, approvers their tenants',
-- reviewers and auditors all).
--
-- Fixture, two tenants and five requests:
--
--   r1  eng1 @ tenant a   reviewed, approved by app_a      -> approved (active)
--   r2  eng2 @ tenant b   reviewed, approved by bob        -> approved (active)
--   r3  eng1 @ tenant b                                    -> pending_review
--   r4  eng2 @ tenant a   reviewed                         -> pending_approval
--   r5  eng1 @ tenant a   denied by the reviewer           -> denied
--
-- Tenant a's approver is the role app_a; tenant b's is the group admins_b,
-- whose member bob acts for it (membership counts).  The expected rows are
-- read from the underlying tables as the superuser, then compared with what
-- each role sees under SET ROLE.
BEGIN;
SELECT plan(41);

CREATE ROLE tap_vis_eng1 IN ROLE lockbox_engineer;
CREATE ROLE tap_vis_eng2 IN ROLE lockbox_engineer;
CREATE ROLE tap_vis_rev IN ROLE lockbox_reviewer;
CREATE ROLE tap_vis_aud IN ROLE lockbox_auditor;
CREATE ROLE tap_vis_app_a IN ROLE lockbox_approver;
CREATE ROLE tap_vis_admins_b IN ROLE lockbox_approver;
CREATE ROLE tap_vis_bob IN ROLE tap_vis_admins_b;
CREATE ROLE tap_vis_outsider;

SELECT lockbox_add_tenant('tap_vis_a');
SELECT lockbox_add_tenant('tap_vis_b');
SELECT lockbox_add_approver('tap_vis_a', 'tap_vis_app_a');
SELECT lockbox_add_approver('tap_vis_b', 'tap_vis_admins_b');
-- requests need a table protected for their tenant
CREATE TABLE tap_vis_data (tenant text);
SELECT lockbox_protect('tap_vis_data', tenant_column => 'tenant');

SET ROLE tap_vis_eng1;
SELECT lockbox_request('tap_vis_a', 'invoice totals are wrong for March', ticket => 'T-1') AS r1 \gset
SELECT lockbox_request('tap_vis_b', 'export job fails for this tenant') AS r3 \gset
SELECT lockbox_request('tap_vis_a', 'second look at the invoice totals') AS r5 \gset
SET ROLE tap_vis_eng2;
SELECT lockbox_request('tap_vis_b', 'login loop reported by customer') AS r2 \gset
SELECT lockbox_request('tap_vis_a', 'reports render blank since Monday') AS r4 \gset
SET ROLE tap_vis_rev;
SELECT lockbox_approve(:r1) AS r1_review, lockbox_approve(:r2) AS r2_review,
	   lockbox_approve(:r4) AS r4_review,
	   lockbox_deny(:r5, 'duplicate of an earlier request') AS r5_review \gset
SET ROLE tap_vis_app_a;
SELECT lockbox_approve(:r1) AS r1_state \gset
SET ROLE tap_vis_bob;
SELECT lockbox_approve(:r2) AS r2_state \gset
RESET ROLE;

SELECT is(ARRAY[:'r1_state', :'r2_state', :'r4_review', :'r5_review'],
		  ARRAY['approved', 'approved', 'pending_approval', 'denied'],
		  'the fixture reaches the intended states');

-- what is there, read as the superuser from the tables
SELECT coalesce(array_agg(id ORDER BY id), '{}') AS all_requests
  FROM lockbox.request \gset
SELECT coalesce(array_agg(id ORDER BY id), '{}') AS all_active
  FROM lockbox.request
 WHERE state = 'approved' AND access_ends_at > statement_timestamp() \gset
SELECT coalesce(array_agg(seq ORDER BY seq), '{}') AS all_audit
  FROM lockbox.audit_log \gset
SELECT coalesce(array_agg(id ORDER BY id), '{}') AS all_notes
  FROM lockbox.notification \gset
SELECT coalesce(array_agg(seq ORDER BY seq), '{}') AS eng1_audit
  FROM lockbox.audit_log WHERE request_id IN (:r1, :r3, :r5) \gset
SELECT coalesce(array_agg(seq ORDER BY seq), '{}') AS eng2_audit
  FROM lockbox.audit_log WHERE request_id IN (:r2, :r4) \gset
SELECT coalesce(array_agg(seq ORDER BY seq), '{}') AS a_request_audit
  FROM lockbox.audit_log WHERE request_id IN (:r1, :r4, :r5) \gset
SELECT coalesce(array_agg(seq ORDER BY seq), '{}') AS b_request_audit
  FROM lockbox.audit_log WHERE request_id IN (:r2, :r3) \gset
SELECT coalesce(array_agg(id ORDER BY id) FILTER (WHERE recipient = 'tap_vis_eng1'::regrole), '{}') AS eng1_notes,
	   coalesce(array_agg(id ORDER BY id) FILTER (WHERE recipient = 'tap_vis_eng2'::regrole), '{}') AS eng2_notes,
	   coalesce(array_agg(id ORDER BY id) FILTER (WHERE recipient = 'tap_vis_app_a'::regrole), '{}') AS app_a_notes,
	   coalesce(array_agg(id ORDER BY id) FILTER (WHERE recipient = 'tap_vis_admins_b'::regrole), '{}') AS admins_b_notes
  FROM lockbox.notification \gset

-- the fixture gives every check something to see and something to miss
SELECT ok(cardinality(:'eng1_notes'::bigint[]) = 2 AND cardinality(:'eng2_notes'::bigint[]) = 1
		  AND cardinality(:'app_a_notes'::bigint[]) = 3
		  AND cardinality(:'admins_b_notes'::bigint[]) = 1,
		  'notifications went to the requesters (r1, r5; r2), approvers (r1, r4; r2) and the approver whose approval started an access (r1)');

------------------------------------------------------------------------------
-- Engineers: their own requests, everywhere
------------------------------------------------------------------------------
SET ROLE tap_vis_eng1;
SELECT results_eq('SELECT id FROM lockbox.requests ORDER BY id',
				  ARRAY[:r1, :r3, :r5]::bigint[],
				  'engineer eng1 sees exactly its own requests in lockbox.requests');
SELECT results_eq('SELECT request_id FROM lockbox.active_access ORDER BY 1',
				  ARRAY[:r1]::bigint[],
				  'engineer eng1 sees exactly its own access in lockbox.active_access');
SELECT results_eq('SELECT seq FROM lockbox.audit ORDER BY seq', :'eng1_audit'::bigint[],
				  'engineer eng1 sees exactly the audit rows of its own requests');
SELECT set_eq('SELECT id FROM lockbox.notifications WHERE recipient = current_user',
			  :'eng1_notes'::bigint[],
			  'engineer eng1 sees the notifications sent to it');
SELECT is_empty(format('SELECT 1 FROM lockbox.notifications WHERE request_id <> ALL (%L::bigint[])',
					   ARRAY[:r1, :r3, :r5]),
				'engineer eng1 sees no notification about another engineer''s request');

SET ROLE tap_vis_eng2;
SELECT results_eq('SELECT id FROM lockbox.requests ORDER BY id',
				  ARRAY[:r2, :r4]::bigint[],
				  'engineer eng2 sees exactly its own requests in lockbox.requests');
SELECT results_eq('SELECT request_id FROM lockbox.active_access ORDER BY 1',
				  ARRAY[:r2]::bigint[],
				  'engineer eng2 sees exactly its own access in lockbox.active_access');
SELECT results_eq('SELECT seq FROM lockbox.audit ORDER BY seq', :'eng2_audit'::bigint[],
				  'engineer eng2 sees exactly the audit rows of its own requests');
SELECT set_eq('SELECT id FROM lockbox.notifications WHERE recipient = current_user',
			  :'eng2_notes'::bigint[],
			  'engineer eng2 sees the notifications sent to it');
SELECT is_empty(format('SELECT 1 FROM lockbox.notifications WHERE request_id <> ALL (%L::bigint[])',
					   ARRAY[:r2, :r4]),
				'engineer eng2 sees no notification about another engineer''s request');
RESET ROLE;

------------------------------------------------------------------------------
-- Approvers: their tenants' requests, not the others'
------------------------------------------------------------------------------
SET ROLE tap_vis_app_a;
SELECT bag_eq('SELECT id FROM lockbox.requests',
			  ARRAY[:r1, :r4, :r5]::bigint[],
				  'approver of tenant a sees exactly tenant a''s requests');
SELECT results_eq('SELECT request_id FROM lockbox.active_access ORDER BY 1',
				  ARRAY[:r1]::bigint[],
				  'approver of tenant a sees exactly tenant a''s active access');
SELECT results_eq('SELECT seq FROM lockbox.audit WHERE request_id IS NOT NULL ORDER BY seq',
				  :'a_request_audit'::bigint[],
				  'approver of tenant a sees every audit row of tenant a''s requests');
SELECT is_empty($$SELECT 1 FROM lockbox.audit WHERE tenant IS DISTINCT FROM 'tap_vis_a'$$,
				'approver of tenant a sees no audit row of another tenant');
SELECT set_eq('SELECT id FROM lockbox.notifications WHERE recipient = current_user',
			  :'app_a_notes'::bigint[],
			  'approver of tenant a sees the notifications sent to it');
SELECT is_empty(format('SELECT 1 FROM lockbox.notifications WHERE request_id <> ALL (%L::bigint[])',
					   ARRAY[:r1, :r4, :r5]),
				'approver of tenant a sees no notification about another tenant');

SET ROLE tap_vis_bob;
SELECT bag_eq('SELECT id FROM lockbox.requests',
			  ARRAY[:r2, :r3]::bigint[],
				  'member of tenant b''s approver group sees exactly tenant b''s requests');
SELECT results_eq('SELECT request_id FROM lockbox.active_access ORDER BY 1',
				  ARRAY[:r2]::bigint[],
				  'member of tenant b''s approver group sees exactly tenant b''s active access');
SELECT results_eq('SELECT seq FROM lockbox.audit WHERE request_id IS NOT NULL ORDER BY seq',
				  :'b_request_audit'::bigint[],
				  'member of tenant b''s approver group sees every audit row of tenant b''s requests');
SELECT is_empty($$SELECT 1 FROM lockbox.audit WHERE tenant IS DISTINCT FROM 'tap_vis_b'$$,
				'member of tenant b''s approver group sees no audit row of another tenant');
SELECT set_eq($$SELECT id FROM lockbox.notifications WHERE recipient = 'tap_vis_admins_b'$$,
			  :'admins_b_notes'::bigint[],
			  'member of tenant b''s approver group sees the notifications sent to the group');
SELECT is_empty(format('SELECT 1 FROM lockbox.notifications WHERE request_id <> ALL (%L::bigint[])',
					   ARRAY[:r2, :r3]),
				'member of tenant b''s approver group sees no notification about another tenant');
RESET ROLE;

------------------------------------------------------------------------------
-- Reviewers and auditors: everything
------------------------------------------------------------------------------
SET ROLE tap_vis_rev;
SELECT results_eq('SELECT id FROM lockbox.requests ORDER BY id', :'all_requests'::bigint[],
				  'the reviewer sees every request');
SELECT results_eq('SELECT request_id FROM lockbox.active_access ORDER BY 1', :'all_active'::bigint[],
				  'the reviewer sees every active access');
SELECT results_eq('SELECT seq FROM lockbox.audit ORDER BY seq', :'all_audit'::bigint[],
				  'the reviewer sees every audit row');
SELECT results_eq('SELECT id FROM lockbox.notifications ORDER BY id', :'all_notes'::bigint[],
				  'the reviewer sees every notification');

SET ROLE tap_vis_aud;
SELECT results_eq('SELECT id FROM lockbox.requests ORDER BY id', :'all_requests'::bigint[],
				  'the auditor sees every request');
SELECT results_eq('SELECT request_id FROM lockbox.active_access ORDER BY 1', :'all_active'::bigint[],
				  'the auditor sees every active access');
SELECT results_eq('SELECT seq FROM lockbox.audit ORDER BY seq', :'all_audit'::bigint[],
				  'the auditor sees every audit row');
SELECT results_eq('SELECT id FROM lockbox.notifications ORDER BY id', :'all_notes'::bigint[],
				  'the auditor sees every notification');
SELECT is_empty($$SELECT 1 FROM lockbox.notifications
				  WHERE NOT payload ?& ARRAY['event', 'request_id', 'tenant', 'state']$$,
				'every notification payload has event, request_id, tenant and state');
SELECT is_empty($$SELECT 1 FROM lockbox.notifications n
				   JOIN lockbox.requests r ON r.id = n.request_id
				  WHERE (n.payload->>'request_id')::bigint <> n.request_id
					 OR n.payload->>'tenant' <> r.tenant$$,
				'every notification payload names its own request and tenant');
RESET ROLE;

------------------------------------------------------------------------------
-- The details an engineer sees of its own request are the real ones
------------------------------------------------------------------------------
SET ROLE tap_vis_eng1;
SELECT results_eq(format($$SELECT tenant, requester, reason, ticket, state
							 FROM lockbox.requests WHERE id = %s$$, :r1),
				  $$VALUES ('tap_vis_a', 'tap_vis_eng1'::name, 'invoice totals are wrong for March',
							'T-1', 'approved')$$,
				  'engineer eng1 sees its request''s tenant, requester, reason, ticket and state');
SELECT results_eq(format($$SELECT state FROM lockbox.requests WHERE id IN (%s, %s) ORDER BY id$$,
						 :r3, :r5),
				  ARRAY['pending_review', 'denied'],
				  'engineer eng1 sees the states of its other requests');
SELECT results_eq(format($$SELECT engineer, tenant, ends_at > starts_at
							 FROM lockbox.active_access WHERE request_id = %s$$, :r1),
				  $$VALUES ('tap_vis_eng1'::name, 'tap_vis_a', true)$$,
				  'engineer eng1 sees its access window');
RESET ROLE;

------------------------------------------------------------------------------
-- Anyone else: no access to the views at all
------------------------------------------------------------------------------
SET ROLE tap_vis_outsider;
SELECT throws_ok('SELECT * FROM lockbox.' || v, '42501', 'permission denied for schema lockbox',
				 format('a role outside lockbox cannot read lockbox.%s', v))
  FROM unnest(ARRAY['requests', 'active_access', 'audit', 'notifications']) AS v;
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
