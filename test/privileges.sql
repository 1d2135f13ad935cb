-- pgTAP: who may touch what (README "Rules" and "Reference").
--
--   * nobody but the extension owner has any privilege on the tables and
--     sequences of schema lockbox; the four roles get USAGE on the schema and
--     SELECT on the views, nothing else;
--   * an engineer cannot SELECT, INSERT, UPDATE or DELETE any lockbox table
--     (42501), nor run the owner's or the other parties' functions;
--   * every API function is a SECURITY INVOKER C function, EXECUTE granted to
--     exactly the parties that call it and never to PUBLIC;
--   * an engineer neither reads nor acts on another engineer's request;
--   * the audit log is append-only even for a superuser.
--
-- The tables and sequences are looked up in the catalog, so a table added
-- later is covered without editing this file.
BEGIN;

CREATE TEMP TABLE lockbox_rels AS
SELECT c.relname, c.relkind
  FROM pg_class c
 WHERE c.relnamespace = 'lockbox'::regnamespace
   AND c.relkind IN ('r', 'p', 'S', 'v', 'm');
GRANT SELECT ON lockbox_rels TO PUBLIC;

CREATE TEMP TABLE parties (role name);
INSERT INTO parties VALUES ('public'), ('lockbox_engineer'), ('lockbox_reviewer'),
	('lockbox_approver'), ('lockbox_auditor');

-- the API and who may execute it: the engineer files, cancels, closes and
-- asks for extensions; the reviewer and the approvers decide; approvers
-- revoke and switch their tenant's lockbox, and reviewers revoke too (the
-- operator's emergency stop); the auditor (compliance, the notifier service)
-- verifies the audit and delivers notifications; tenants and approvers are
-- the extension owner's alone. lockbox_protect and lockbox_unprotect are
-- executable by everyone and check themselves that the caller owns the
-- table (issue: "only the table's owner or a superuser may call it").
CREATE TEMP TABLE api (fn name, args name[], callers name[]);
INSERT INTO api VALUES
  ('lockbox_request', '{text,text,regclass[],text,interval,text}', '{lockbox_engineer}'),
  ('lockbox_approve', '{bigint,text}', '{lockbox_reviewer,lockbox_approver}'),
  ('lockbox_deny', '{bigint,text}', '{lockbox_reviewer,lockbox_approver}'),
  ('lockbox_cancel', '{bigint,text}', '{lockbox_engineer}'),
  ('lockbox_close', '{bigint,text}', '{lockbox_engineer}'),
  ('lockbox_revoke', '{bigint,text}', '{lockbox_approver,lockbox_reviewer}'),
  ('lockbox_extend', '{bigint,interval,text}', '{lockbox_engineer}'),
  ('lockbox_add_tenant', '{text,boolean,integer}', '{}'),
  ('lockbox_set_enabled', '{text,boolean}', '{lockbox_approver}'),
  ('lockbox_add_approver', '{text,regrole}', '{}'),
  ('lockbox_remove_approver', '{text,regrole}', '{}'),
  ('lockbox_remove_tenant', '{text}', '{}'),
  ('lockbox_protect', '{regclass,name,text}',
   '{public,lockbox_engineer,lockbox_reviewer,lockbox_approver,lockbox_auditor}'),
  ('lockbox_unprotect', '{regclass}',
   '{public,lockbox_engineer,lockbox_reviewer,lockbox_approver,lockbox_auditor}'),
  ('lockbox_verify_audit', '{}', '{lockbox_auditor}'),
  ('lockbox_claim_notifications', '{integer}', '{lockbox_auditor}'),
  ('lockbox_ack_notification', '{bigint}', '{lockbox_auditor}'),
  ('lockbox_claim_notifications', '{integer,interval}', '{lockbox_auditor}'),
  ('lockbox_fail_notification', '{bigint,text,interval}', '{lockbox_auditor}'),
  ('lockbox_set_contact', '{regrole,text}', '{}'),
  ('lockbox_set_webhook', '{text,text}', '{}');
-- the per-function checks below cover the functions that exist; a missing
-- one fails the single "exists" test (and test/schema.sql) once
ALTER TABLE api ADD COLUMN present boolean;
UPDATE api SET present =
	to_regprocedure(format('%s(%s)', fn, array_to_string(args, ','))) IS NOT NULL;

SELECT plan(35
			+ 5 * (SELECT count(*)::int FROM lockbox_rels WHERE relkind IN ('r', 'p', 'v', 'm'))
			+ 5 * (SELECT count(*)::int FROM lockbox_rels WHERE relkind = 'S')
			+ 4 * (SELECT count(*)::int FROM lockbox_rels WHERE relkind IN ('r', 'p'))
			+ (SELECT count(*)::int FROM lockbox_rels WHERE relkind = 'S')
			+ 7 * (SELECT count(*)::int FROM api WHERE present));

------------------------------------------------------------------------------
-- Catalog privileges
------------------------------------------------------------------------------
SELECT schema_privs_are('lockbox', 'public', '{}'::name[],
						'PUBLIC has no privilege on schema lockbox');
SELECT schema_privs_are('lockbox', role, '{USAGE}'::name[],
						format('%s has USAGE (and not CREATE) on schema lockbox', role))
  FROM parties WHERE role <> 'public' ORDER BY role;

-- tables: nobody; views: SELECT for the four parties, nothing for PUBLIC.
-- lockbox.posture, the list of ways around lockbox, lockbox.worker and
-- lockbox.stats (and, 1.2, lockbox.standby_backlog) are not the engineers'
-- or the customers' business: the operator's reviewers and auditors read
-- them.
SELECT table_privs_are('lockbox', relname, role,
					   CASE WHEN readable THEN '{SELECT}'::name[] ELSE '{}'::name[] END,
					   format('%s has %s on lockbox.%s', role,
							  CASE WHEN readable THEN 'only SELECT' ELSE 'no privilege' END,
							  relname))
  FROM (SELECT l.relname, p.role,
			   l.relkind IN ('v', 'm') AND p.role <> 'public'
			   AND (l.relname NOT IN ('posture', 'worker', 'stats', 'standby_backlog')
					OR p.role IN ('lockbox_reviewer', 'lockbox_auditor')) AS readable
		  FROM lockbox_rels l, parties p
		 WHERE l.relkind IN ('r', 'p', 'v', 'm')) x
 ORDER BY relname, role;

SELECT sequence_privs_are('lockbox', l.relname, p.role, '{}'::name[],
						  format('%s has no privilege on sequence lockbox.%s',
								 p.role, l.relname))
  FROM lockbox_rels l, parties p
 WHERE l.relkind = 'S'
 ORDER BY l.relname, p.role;

-- the API: SECURITY INVOKER C functions; EXECUTE for exactly its callers
SELECT is(ARRAY(SELECT format('%s(%s)', fn, array_to_string(args, ', '))
				  FROM api WHERE NOT present ORDER BY fn),
		  '{}'::text[], 'every API function of the contract exists');
SELECT isnt_definer(fn, args,
					format('%s(%s) is SECURITY INVOKER', fn, array_to_string(args, ', ')))
  FROM api WHERE present ORDER BY fn;
SELECT function_lang_is(fn, args, 'c',
						format('%s(%s) is a C function', fn, array_to_string(args, ', ')))
  FROM api WHERE present ORDER BY fn;
SELECT function_privs_are(a.fn, a.args, p.role,
						  CASE WHEN p.role = ANY (a.callers) THEN '{EXECUTE}'::name[]
							   ELSE '{}'::name[] END,
						  format('%s %s EXECUTE on %s(%s)', p.role,
								 CASE WHEN p.role = ANY (a.callers) THEN 'has' ELSE 'has no' END,
								 a.fn, array_to_string(a.args, ', ')))
  FROM api a, parties p
 WHERE a.present
 ORDER BY a.fn, p.role;

-- the standbys' forwarding role (1.2): USAGE on the schema, and EXECUTE on
-- lockbox.forward_access alone, which nobody else may call
SELECT schema_privs_are('lockbox', 'lockbox_forwarder', '{USAGE}'::name[],
						'lockbox_forwarder has USAGE (and not CREATE) on schema lockbox');
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
				  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
								  AND d.deptype = 'e'
				  JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'lockbox'
				 WHERE has_function_privilege('lockbox_forwarder', p.oid, 'EXECUTE')
				 ORDER BY 1),
		  ARRAY['lockbox.forward_access(text,text,bigint,bytea,boolean)',
				'lockbox_protect(regclass,name,text)', 'lockbox_unprotect(regclass)'],
		  'lockbox_forwarder may execute lockbox.forward_access (and what PUBLIC may)');
SELECT is(ARRAY(SELECT r FROM unnest(ARRAY['public', 'lockbox_engineer', 'lockbox_reviewer',
										   'lockbox_approver', 'lockbox_auditor']) r
				 WHERE has_function_privilege(r, 'lockbox.forward_access(text,text,bigint,bytea,boolean)',
											  'EXECUTE')),
		  '{}'::text[], 'no other party may execute lockbox.forward_access');

------------------------------------------------------------------------------
-- An engineer, in practice
------------------------------------------------------------------------------
CREATE ROLE tap_priv_eng1 IN ROLE lockbox_engineer;
CREATE ROLE tap_priv_eng2 IN ROLE lockbox_engineer;
CREATE ROLE tap_priv_rev IN ROLE lockbox_reviewer;
CREATE ROLE tap_priv_app IN ROLE lockbox_approver;
-- one person holding both the engineer's and the reviewer's role
CREATE ROLE tap_priv_both IN ROLE lockbox_engineer, lockbox_reviewer;
SELECT lockbox_add_tenant('tap_priv_tenant');
SELECT lockbox_add_approver('tap_priv_tenant', 'tap_priv_app');
CREATE TABLE tap_priv_data (tenant text, note text);
CREATE TABLE tap_priv_other (tenant text, note text);
GRANT SELECT ON tap_priv_data, tap_priv_other TO lockbox_engineer;
SELECT lockbox_protect('tap_priv_data', tenant_column => 'tenant');

SET ROLE tap_priv_eng1;
SELECT lockbox_request('tap_priv_tenant', 'customer reports missing invoices') AS eng1_req \gset
RESET ROLE;
SET ROLE tap_priv_both;
SELECT lockbox_request('tap_priv_tenant', 'customer reports a slow dashboard') AS both_req \gset
RESET ROLE;

SET ROLE tap_priv_eng1;

SELECT throws_ok(format('SELECT * FROM lockbox.%I', relname),
				 '42501', format('permission denied for table %s', relname),
				 format('an engineer cannot SELECT from lockbox.%I', relname))
  FROM lockbox_rels WHERE relkind IN ('r', 'p') ORDER BY relname;
SELECT throws_ok(format('INSERT INTO lockbox.%I DEFAULT VALUES', relname),
				 '42501', format('permission denied for table %s', relname),
				 format('an engineer cannot INSERT into lockbox.%I', relname))
  FROM lockbox_rels WHERE relkind IN ('r', 'p') ORDER BY relname;
SELECT throws_ok(format('UPDATE lockbox.%1$I SET %2$I = %2$I', l.relname, a.attname),
				 '42501', format('permission denied for table %s', l.relname),
				 format('an engineer cannot UPDATE lockbox.%I', l.relname))
  FROM lockbox_rels l
  JOIN pg_attribute a
	ON a.attrelid = format('lockbox.%I', l.relname)::regclass AND a.attnum = 1
 WHERE l.relkind IN ('r', 'p') ORDER BY l.relname;
SELECT throws_ok(format('DELETE FROM lockbox.%I', relname),
				 '42501', format('permission denied for table %s', relname),
				 format('an engineer cannot DELETE from lockbox.%I', relname))
  FROM lockbox_rels WHERE relkind IN ('r', 'p') ORDER BY relname;
SELECT throws_ok(format('SELECT nextval(%L)', 'lockbox.' || quote_ident(relname)),
				 '42501', format('permission denied for sequence %s', relname),
				 format('an engineer cannot advance sequence lockbox.%I', relname))
  FROM lockbox_rels WHERE relkind = 'S' ORDER BY relname;

-- the views are read-only for the parties
SELECT throws_ok($$DELETE FROM lockbox.requests$$, '42501', 'permission denied for view requests',
				 'an engineer cannot DELETE through view lockbox.requests');
SELECT throws_ok($$UPDATE lockbox.protected_tables SET tenant = tenant$$,
				 '42501', 'permission denied for view protected_tables',
				 'an engineer cannot UPDATE through view lockbox.protected_tables');

-- the extension owner's functions, and the other parties'
SELECT throws_ok($$SELECT lockbox_add_tenant('tap_priv_other')$$,
				 '42501', 'permission denied for function lockbox_add_tenant',
				 'an engineer cannot run lockbox_add_tenant');
SELECT throws_ok($$SELECT lockbox_add_approver('tap_priv_tenant', 'tap_priv_eng1')$$,
				 '42501', 'permission denied for function lockbox_add_approver',
				 'an engineer cannot run lockbox_add_approver');
SELECT throws_ok($$SELECT lockbox_remove_approver('tap_priv_tenant', 'tap_priv_app')$$,
				 '42501', 'permission denied for function lockbox_remove_approver',
				 'an engineer cannot run lockbox_remove_approver');
SELECT throws_ok($$SELECT lockbox_remove_tenant('tap_priv_tenant')$$,
				 '42501', 'permission denied for function lockbox_remove_tenant',
				 'an engineer cannot run lockbox_remove_tenant');
SELECT throws_ok($$SELECT lockbox_set_enabled('tap_priv_tenant', false)$$,
				 '42501', 'permission denied for function lockbox_set_enabled',
				 'an engineer cannot switch a tenant''s lockbox off');
SELECT throws_ok(format('SELECT lockbox_approve(%s)', :eng1_req),
				 '42501', 'permission denied for function lockbox_approve',
				 'an engineer cannot approve (even its own request)');
SELECT throws_ok(format('SELECT lockbox_revoke(%s, %L)', :eng1_req, 'no longer needed here'),
				 '42501', 'permission denied for function lockbox_revoke',
				 'an engineer cannot run lockbox_revoke');
SELECT throws_ok($$SELECT * FROM lockbox_claim_notifications(10)$$,
				 '42501', 'permission denied for function lockbox_claim_notifications',
				 'an engineer cannot claim notifications');
SELECT throws_ok($$SELECT lockbox_unprotect('tap_priv_data')$$,
				 '42501', 'permission denied to unprotect table "tap_priv_data"',
				 'an engineer cannot take a table out of lockbox');
SELECT throws_ok($$SELECT lockbox_protect('tap_priv_other', tenant => 'tap_priv_tenant')$$,
				 '42501', 'permission denied to protect table "tap_priv_other"',
				 'an engineer cannot put a table under lockbox');

-- another engineer's request: invisible, and not theirs to cancel or close
RESET ROLE;
SET ROLE tap_priv_eng2;
SELECT is_empty(format('SELECT * FROM lockbox.requests WHERE id = %s', :eng1_req),
				'an engineer does not see another engineer''s request');
SELECT is_empty(format('SELECT * FROM lockbox.audit WHERE request_id = %s', :eng1_req),
				'an engineer does not see the audit of another engineer''s request');
SELECT throws_ok(format('SELECT lockbox_cancel(%s)', :eng1_req),
				 '42501', format('permission denied to cancel lockbox request %s', :eng1_req),
				 'an engineer cannot cancel another engineer''s request');
SELECT throws_ok(format('SELECT lockbox_close(%s)', :eng1_req),
				 '42501', format('permission denied to close lockbox request %s', :eng1_req),
				 'an engineer cannot close another engineer''s request');
SELECT throws_ok(format('SELECT lockbox_extend(%s, %L, %L)', :eng1_req, '1 hour',
						'more time for another''s request'),
				 '42501', format('permission denied to extend lockbox request %s', :eng1_req),
				 'an engineer cannot extend another engineer''s request');
RESET ROLE;

-- separation of duties: a requester who is also a reviewer cannot review it
SET ROLE tap_priv_both;
SELECT throws_ok(format('SELECT lockbox_approve(%s)', :both_req),
				 '42501', format('permission denied to approve lockbox request %s', :both_req),
				 'a requester holding lockbox_reviewer cannot approve its own request');
SELECT throws_ok(format('SELECT lockbox_deny(%s, %L)', :both_req, 'denying my own request'),
				 '42501', format('permission denied to deny lockbox request %s', :both_req),
				 'a requester holding lockbox_reviewer cannot deny its own request');
RESET ROLE;
-- and the reviewer of a request is not among its stage 2 approvers
SET ROLE tap_priv_rev;
SELECT is(lockbox_approve(:eng1_req), 'pending_approval', 'the reviewer approves stage 1');
RESET ROLE;
SET ROLE tap_priv_eng1;
SELECT is((SELECT state FROM lockbox.requests WHERE id = :eng1_req), 'pending_approval',
		  'the engineer sees its request waiting for the customer');
RESET ROLE;

------------------------------------------------------------------------------
-- The audit log is append-only, for the superuser too
------------------------------------------------------------------------------
SELECT throws_ok($$UPDATE lockbox.audit_log SET actor = 'nobody'$$,
				 '42501', 'lockbox.audit_log is append-only',
				 'UPDATE of lockbox.audit_log is refused even for a superuser');
SELECT throws_ok($$DELETE FROM lockbox.audit_log$$, '42501', 'lockbox.audit_log is append-only',
				 'DELETE from lockbox.audit_log is refused even for a superuser');
SELECT throws_ok($$TRUNCATE lockbox.audit_log$$,
				 '42501', 'TRUNCATE is refused on audit table "lockbox.audit_log"',
				 'TRUNCATE of lockbox.audit_log is refused even for a superuser');
SELECT ok((SELECT count(*) FROM lockbox.audit_log WHERE request_id = :eng1_req) = 2,
		  'the audit rows of the request are still there (request, review)');
SELECT is((SELECT ok FROM lockbox_verify_audit()), true, 'the audit verifies');

SELECT * FROM finish();
ROLLBACK;
