-- pgTAP: the objects the README's Reference promises exist, with their names,
-- columns and signatures.  Views need "at
-- least these columns", so each contract column is checked on its own rather
-- than the exact column list.
BEGIN;

-- the API as the contract gives it (used at the end of this file)
CREATE TEMP TABLE api (fn name, args name[], returns text, arguments text);
INSERT INTO api VALUES
  ('lockbox_request', '{text,text,regclass[],text,interval,text}', 'bigint',
   'tenant text, reason text, tables regclass[] DEFAULT NULL::regclass[], access text DEFAULT ''read''::text, duration interval DEFAULT NULL::interval, ticket text DEFAULT NULL::text'),
  ('lockbox_approve', '{bigint,text}', 'text',
   'request_id bigint, comment text DEFAULT NULL::text'),
  ('lockbox_deny', '{bigint,text}', 'text',
   'request_id bigint, reason text'),
  ('lockbox_cancel', '{bigint,text}', 'text',
   'request_id bigint, reason text DEFAULT NULL::text'),
  ('lockbox_close', '{bigint,text}', 'text',
   'request_id bigint, resolution text DEFAULT NULL::text'),
  ('lockbox_revoke', '{bigint,text}', 'text',
   'request_id bigint, reason text'),
  ('lockbox_add_tenant', '{text,boolean,integer}', 'void',
   'tenant text, enabled boolean DEFAULT true, required_approvals integer DEFAULT 1'),
  ('lockbox_set_enabled', '{text,boolean}', 'void',
   'tenant text, enabled boolean'),
  ('lockbox_add_approver', '{text,regrole}', 'void',
   'tenant text, approver regrole'),
  ('lockbox_remove_approver', '{text,regrole}', 'void',
   'tenant text, approver regrole'),
  ('lockbox_extend', '{bigint,interval,text}', 'text',
   'request_id bigint, by interval, reason text'),
  ('lockbox_remove_tenant', '{text}', 'void',
   'tenant text'),
  ('lockbox_set_contact', '{regrole,text}', 'void',
   'who regrole, email text'),
  ('lockbox_set_webhook', '{text,text}', 'void',
   'tenant text, url text'),
  ('lockbox_protect', '{regclass,name,text}', 'void',
   'rel regclass, tenant_column name DEFAULT NULL::name, tenant text DEFAULT NULL::text'),
  ('lockbox_unprotect', '{regclass}', 'void',
   'rel regclass'),
  ('lockbox_verify_audit', '{}', 'setof record', ''),
  ('lockbox_claim_notifications', '{integer}', 'setof record', NULL),
  ('lockbox_ack_notification', '{bigint}', NULL, 'id bigint');

-- for a missing function, only has_function fails
ALTER TABLE api ADD COLUMN present boolean;
UPDATE api SET present =
	to_regprocedure(format('%s(%s)', fn, array_to_string(args, ','))) IS NOT NULL;

SELECT plan(116
			+ (SELECT count(*)::int FROM api WHERE present AND returns IS NOT NULL)
			+ (SELECT count(*)::int FROM api WHERE present AND arguments IS NOT NULL));

SELECT has_extension('lockbox', 'extension lockbox is installed');
SELECT has_schema('lockbox', 'schema lockbox holds the internal state');

------------------------------------------------------------------------------
-- Parties: four NOLOGIN group roles (section 2)
------------------------------------------------------------------------------
SELECT has_role(r, format('group role %s exists', r))
  FROM unnest(ARRAY['lockbox_engineer', 'lockbox_reviewer',
					'lockbox_approver', 'lockbox_auditor']) AS r;
SELECT hasnt_user(r, format('group role %s is NOLOGIN', r))
  FROM unnest(ARRAY['lockbox_engineer', 'lockbox_reviewer',
					'lockbox_approver', 'lockbox_auditor']) AS r;
SELECT isnt_superuser(r, format('group role %s is not a superuser', r))
  FROM unnest(ARRAY['lockbox_engineer', 'lockbox_reviewer',
					'lockbox_approver', 'lockbox_auditor']) AS r;
SELECT is((SELECT bool_or(rolbypassrls OR rolcreaterole OR rolcreatedb)
			 FROM pg_roles
			WHERE rolname IN ('lockbox_engineer', 'lockbox_reviewer',
							  'lockbox_approver', 'lockbox_auditor')),
		  false, 'no group role has BYPASSRLS, CREATEROLE or CREATEDB');

------------------------------------------------------------------------------
-- The audit table (section 4)
------------------------------------------------------------------------------
SELECT has_table('lockbox', 'audit_log', 'table lockbox.audit_log stores the audit rows');
SELECT has_column('lockbox', 'audit_log', c, format('lockbox.audit_log has column %s', c))
  FROM unnest(ARRAY['seq', 'at', 'session_user_name', 'actor', 'event',
					'request_id', 'tenant', 'detail', 'hash']) AS c;
SELECT col_type_is('lockbox', 'audit_log', 'hash', 'bytea',
				   'lockbox.audit_log.hash is bytea (sha256)');

------------------------------------------------------------------------------
-- The views (section 4), with at least the contract's columns
------------------------------------------------------------------------------
SELECT has_view('lockbox', v, format('view lockbox.%s exists', v))
  FROM unnest(ARRAY['requests', 'active_access', 'audit', 'access_log',
					'notifications', 'tenants', 'protected_tables',
					'posture', 'extensions']) AS v;

SELECT has_column('lockbox', 'requests', c, format('lockbox.requests has column %s', c))
  FROM unnest(ARRAY['id', 'tenant', 'requester', 'reason', 'ticket', 'tables',
					'access', 'duration', 'state', 'created_at', 'deadline',
					'approved_at', 'access_ends_at', 'closed_at',
					'close_reason']) AS c;
SELECT has_column('lockbox', 'active_access', c, format('lockbox.active_access has column %s', c))
  FROM unnest(ARRAY['request_id', 'engineer', 'tenant', 'tables', 'access',
					'starts_at', 'ends_at']) AS c;
SELECT has_column('lockbox', 'audit', c, format('lockbox.audit has column %s', c))
  FROM unnest(ARRAY['seq', 'at', 'session_user_name', 'actor', 'event',
					'request_id', 'tenant', 'detail', 'hash']) AS c;
SELECT has_column('lockbox', 'access_log', c, format('lockbox.access_log has column %s', c))
  FROM unnest(ARRAY['at', 'engineer', 'request_id', 'tenant', 'relation',
					'command', 'query']) AS c;
SELECT has_column('lockbox', 'notifications', c, format('lockbox.notifications has column %s', c))
  FROM unnest(ARRAY['id', 'request_id', 'recipient', 'event', 'payload',
					'created_at', 'delivered_at']) AS c;
SELECT has_column('lockbox', 'tenants', c, format('lockbox.tenants has column %s', c))
  FROM unnest(ARRAY['tenant', 'enabled', 'required_approvals', 'approvers']) AS c;
SELECT has_column('lockbox', 'protected_tables', c, format('lockbox.protected_tables has column %s', c))
  FROM unnest(ARRAY['relation', 'tenant_column', 'tenant']) AS c;
SELECT has_column('lockbox', 'posture', c, format('lockbox.posture has column %s', c))
  FROM unnest(ARRAY['check_name', 'object', 'ok', 'detail']) AS c;

SELECT col_type_is('lockbox', 'audit', 'detail', 'jsonb', 'lockbox.audit.detail is jsonb');
SELECT col_type_is('lockbox', 'notifications', 'payload', 'jsonb', 'lockbox.notifications.payload is jsonb');
SELECT col_type_is('lockbox', 'requests', 'state', 'text', 'lockbox.requests.state is text');
SELECT col_type_is('lockbox', 'requests', 'id', 'bigint', 'lockbox.requests.id is bigint');

------------------------------------------------------------------------------
-- The API (sections 4 and 6): name, argument types, return type, and the
-- argument names and defaults that named notation relies on.  The functions
-- live in the extension's schema, on the search path; no schema is named so
-- that the checks hold wherever lockbox is installed.
------------------------------------------------------------------------------
SELECT has_function(fn, args,
					format('function %s(%s) exists', fn, array_to_string(args, ', ')))
  FROM api ORDER BY fn;

SELECT function_returns(fn, args, returns,
						format('function %s(%s) returns %s', fn,
							   array_to_string(args, ', '), returns))
  FROM api WHERE present AND returns IS NOT NULL ORDER BY fn;

SELECT is(pg_get_function_arguments(
			 to_regprocedure(format('%s(%s)', fn, array_to_string(args, ',')))),
		  arguments,
		  format('function %s has the contract''s argument names and defaults', fn))
  FROM api WHERE present AND arguments IS NOT NULL ORDER BY fn;

SELECT is(pg_get_function_result('lockbox_verify_audit()'::regprocedure),
		  'TABLE(ok boolean, rows_checked bigint, first_bad_seq bigint)',
		  'lockbox_verify_audit() returns TABLE(ok, rows_checked, first_bad_seq)');

-- claim returns at least the columns a delivery service needs
SELECT ok(pg_get_function_result('lockbox_claim_notifications(integer)'::regprocedure)
		  ~ '^TABLE\(id bigint, request_id bigint, .*event text, payload jsonb',
		  'lockbox_claim_notifications(max) returns id, request_id, event, payload rows');

SELECT * FROM finish();
ROLLBACK;
