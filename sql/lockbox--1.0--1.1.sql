/* lockbox--1.0--1.1.sql: upgrade lockbox from 1.0 to 1.1 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.1'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs this script: a fresh 1.1 and
-- an upgraded 1.0 are the same by construction.

------------------------------------------------------------------------------
-- The state a request is in at a given time, defined once: the views, the
-- grants lookup, the lifecycle functions' messages and the worker all use
-- it.  A pending stage past its deadline is expired; an approved request is
-- revoked once a revocation is recorded beside it, and closed once its window
-- has ended -- whether or not the worker has acted on it yet.  Access is open
-- exactly when this says 'approved'.  revoked: a row in lockbox.revocation
-- names the request (read by the caller, which may read that table).
------------------------------------------------------------------------------
CREATE FUNCTION lockbox.request_state(state text, deadline timestamptz,
		access_ends_at timestamptz, revoked boolean, at timestamptz)
	RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$
	SELECT CASE	-- (parsed where it is inlined: every operator qualified)
		WHEN state OPERATOR(pg_catalog.=) ANY (ARRAY['pending_review', 'pending_approval'])
		 AND deadline OPERATOR(pg_catalog.<=) at THEN 'expired'
		WHEN state OPERATOR(pg_catalog.=) 'approved' AND revoked THEN 'revoked'
		WHEN state OPERATOR(pg_catalog.=) 'approved'
		 AND access_ends_at OPERATOR(pg_catalog.<=) at THEN 'closed'
		ELSE state
	END
	$$;
REVOKE ALL ON FUNCTION lockbox.request_state(text, timestamptz, timestamptz,
	boolean, timestamptz) FROM PUBLIC;
-- (the views' readers call it, as they call lockbox.me())
GRANT EXECUTE ON FUNCTION lockbox.request_state(text, timestamptz, timestamptz,
	boolean, timestamptz)
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;

-- the views compute the state with it
-- (one FROM item, so that writing through the view is refused for lack of
-- privileges, as before, not for the view's shape)
CREATE OR REPLACE VIEW lockbox.requests WITH (security_barrier) AS
SELECT r.id,
	   r.tenant,
	   r.requester::name AS requester,
	   r.reason,
	   r.ticket,
	   r.tables,
	   r.access,
	   r.duration,
	   lockbox.request_state(r.state, r.deadline, r.access_ends_at,
			EXISTS (SELECT 1 FROM lockbox.revocation v
					 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
			pg_catalog.statement_timestamp()) AS state,
	   r.created_at,
	   CASE WHEN lockbox.request_state(r.state, r.deadline, r.access_ends_at,
			EXISTS (SELECT 1 FROM lockbox.revocation v
					 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
			pg_catalog.statement_timestamp())
				 IN ('pending_review', 'pending_approval') THEN r.deadline
	   END AS deadline,
	   r.reviewer::name AS reviewer,
	   r.reviewed_at,
	   r.approved_at,
	   r.access_ends_at,
	   CASE lockbox.request_state(r.state, r.deadline, r.access_ends_at,
			EXISTS (SELECT 1 FROM lockbox.revocation v
					 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
			pg_catalog.statement_timestamp())
		   WHEN r.state THEN r.closed_at
		   WHEN 'expired' THEN r.deadline
		   WHEN 'closed' THEN r.access_ends_at
		   ELSE (SELECT v.revoked_at FROM lockbox.revocation v
				  WHERE v.request_id OPERATOR(pg_catalog.=) r.id)
	   END AS closed_at,
	   CASE lockbox.request_state(r.state, r.deadline, r.access_ends_at,
			EXISTS (SELECT 1 FROM lockbox.revocation v
					 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
			pg_catalog.statement_timestamp())
		   WHEN r.state THEN r.close_reason
		   WHEN 'closed' THEN 'window_elapsed'
		   WHEN 'revoked' THEN 'revoked'
	   END AS close_reason,
	   (SELECT pg_catalog.count(*) FROM lockbox.decision d
		 WHERE d.request_id OPERATOR(pg_catalog.=) r.id
		   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer AS approvals
  FROM lockbox.request r
 WHERE r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me())
	OR (SELECT lockbox.sees_all())
	OR EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) r.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE'));

CREATE OR REPLACE VIEW lockbox.active_access WITH (security_barrier) AS
SELECT r.id AS request_id,
	   r.requester::name AS engineer,
	   r.tenant,
	   r.tables,
	   r.access,
	   r.approved_at AS starts_at,
	   r.access_ends_at AS ends_at
  FROM lockbox.request r
 WHERE r.state OPERATOR(pg_catalog.=) 'approved'
   AND lockbox.request_state(r.state, r.deadline, r.access_ends_at,
			EXISTS (SELECT 1 FROM lockbox.revocation v
					 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
			pg_catalog.statement_timestamp()) OPERATOR(pg_catalog.=) 'approved'
   AND (r.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me())
		OR (SELECT lockbox.sees_all())
		OR EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) r.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE')));

------------------------------------------------------------------------------
-- Posture: lockbox.posture also reports
--   - views that read a partition, an inheritance child or a parent of a
--     protected table as their owner (definer_view);
--   - privileges of lockbox_engineer that lockbox does not manage
--     (engineer_privileges);
--   - SECURITY DEFINER functions engineers can call, and triggers and rules
--     engineers can fire, that run as a role that can read protected rows
--     (definer_function, definer_trigger, definer_rule);
--   - schemas engineers can create objects in on the search_path of the roles
--     that call lockbox's functions (search_path_writable);
--   - role-switching functions engineers can execute (role_switch_function);
--   - cascading foreign keys between protected tables that do not pair their
--     tenant columns (cross_tenant_fk);
--   - publications that publish lockbox's own tables or protected tables
--     (publication_lockbox_tables).
-- Same columns and convention as in 1.0: one row per finding (ok = false), or
-- one ok row per check that found nothing.  CREATE OR REPLACE keeps the
-- view's privileges; it replaces only the extension's own view (PostgreSQL
-- refuses to replace an object of the same name that is no member of it).
------------------------------------------------------------------------------
CREATE OR REPLACE VIEW lockbox.posture AS
WITH RECURSIVE
closure(member, role) AS (
	SELECT m.member, m.roleid FROM pg_catalog.pg_auth_members m
	UNION
	SELECT c.member, m.roleid FROM closure c
	  JOIN pg_catalog.pg_auth_members m ON m.member OPERATOR(pg_catalog.=) c.role
),
engineer_role AS (
	SELECT r.oid FROM pg_catalog.pg_roles r
	 WHERE r.rolname OPERATOR(pg_catalog.=) 'lockbox_engineer'
),
engineers AS (
	SELECT DISTINCT c.member AS oid FROM closure c, engineer_role e
	 WHERE c.role OPERATOR(pg_catalog.=) e.oid
),
ext AS (
	SELECT x.oid, x.extnamespace, x.extowner FROM pg_catalog.pg_extension x
	 WHERE x.extname OPERATOR(pg_catalog.=) 'lockbox'
),
this_db AS (
	SELECT d.oid FROM pg_catalog.pg_database d
	 WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()
),
prot AS (
	SELECT p.relid::pg_catalog.oid AS relid, c.relowner, c.relrowsecurity, p.policies,
		   lockbox.policy_fingerprint(p.relid) AS current_policies
	  FROM lockbox.protected_table p
	  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.relid
),
-- partitions and inheritance children of protected tables, at any depth
prot_below(rel, relid) AS (
	SELECT i.inhrelid, prot.relid FROM pg_catalog.pg_inherits i
	  JOIN prot ON i.inhparent OPERATOR(pg_catalog.=) prot.relid
	UNION
	SELECT i.inhrelid, b.relid FROM prot_below b
	  JOIN pg_catalog.pg_inherits i ON i.inhparent OPERATOR(pg_catalog.=) b.rel
),
-- the tables protected tables inherit from (or are partitions of), at any depth
prot_above(rel, relid) AS (
	SELECT i.inhparent, prot.relid FROM pg_catalog.pg_inherits i
	  JOIN prot ON i.inhrelid OPERATOR(pg_catalog.=) prot.relid
	UNION
	SELECT i.inhparent, a.relid FROM prot_above a
	  JOIN pg_catalog.pg_inherits i ON i.inhrelid OPERATOR(pg_catalog.=) a.rel
),
-- every relation that reads or writes protected rows, once, with the
-- protected table it leads to and how ("descr", for the details)
prot_rel(rel, relid, how, descr) AS (
	SELECT DISTINCT ON (t.rel) t.rel, t.relid, t.how,
		   CASE t.how
			   WHEN 0 THEN pg_catalog.format('protected table %s', t.relid::pg_catalog.regclass)
			   WHEN 1 THEN pg_catalog.format('%s, a partition of protected table %s',
											 t.rel::pg_catalog.regclass, t.relid::pg_catalog.regclass)
			   WHEN 2 THEN pg_catalog.format('%s, an inheritance child of protected table %s',
											 t.rel::pg_catalog.regclass, t.relid::pg_catalog.regclass)
			   WHEN 3 THEN pg_catalog.format('%s, which protected table %s inherits from',
											 t.rel::pg_catalog.regclass, t.relid::pg_catalog.regclass)
			   ELSE pg_catalog.format('%s, which protected table %s is a partition of',
									  t.rel::pg_catalog.regclass, t.relid::pg_catalog.regclass)
		   END
	  FROM (SELECT prot.relid AS rel, prot.relid, 0 AS how FROM prot
			UNION ALL
			SELECT b.rel, b.relid, CASE WHEN c.relispartition THEN 1 ELSE 2 END
			  FROM prot_below b JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) b.rel
			UNION ALL
			SELECT a.rel, a.relid, CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'p' THEN 4 ELSE 3 END
			  FROM prot_above a JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.rel) t
	 ORDER BY t.rel, t.how, t.relid
),
-- what the SELECT rule of each view or materialized view reads
view_deps AS (
	SELECT DISTINCT r.ev_class AS view, d.refobjid AS rel
	  FROM pg_catalog.pg_rewrite r
	  JOIN pg_catalog.pg_depend d
		ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
	   AND d.objid OPERATOR(pg_catalog.=) r.oid
	   AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
	 WHERE d.refobjid OPERATOR(pg_catalog.<>) r.ev_class
	   AND r.ev_type OPERATOR(pg_catalog.=) '1'
),
-- views that read protected rows, directly or through other views
reach(view, rel) AS (
	SELECT v.view, v.rel FROM view_deps v
	 WHERE v.rel IN (SELECT prot_rel.rel FROM prot_rel)
	UNION
	SELECT v.view, reach.rel FROM view_deps v
	  JOIN reach ON v.rel OPERATOR(pg_catalog.=) reach.view
),
-- the relations whose ACL (or a column's) names lockbox_engineer itself:
-- pg_shdepend lists them
engineer_acl_rel(rel) AS (
	SELECT DISTINCT s.objid FROM pg_catalog.pg_shdepend s, engineer_role er, this_db
	 WHERE s.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass
	   AND s.refobjid OPERATOR(pg_catalog.=) er.oid
	   AND s.deptype OPERATOR(pg_catalog.=) 'a'
	   AND s.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
	   AND s.dbid OPERATOR(pg_catalog.=) this_db.oid
),
-- lockbox_engineer's own privileges on them that lockbox does not manage:
-- on a protected table, anything but SELECT, INSERT, UPDATE and DELETE
-- without grant option; elsewhere, everything
engineer_acl(rel, priv) AS (
	SELECT c.oid,
		   a.privilege_type OPERATOR(pg_catalog.||)
		   CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END
	  FROM engineer_acl_rel ear, engineer_role er, pg_catalog.pg_class c,
		   pg_catalog.aclexplode(c.relacl) a
	 WHERE c.oid OPERATOR(pg_catalog.=) ear.rel
	   AND a.grantee OPERATOR(pg_catalog.=) er.oid
	   AND (a.privilege_type NOT IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
			OR a.is_grantable
			OR c.oid NOT IN (SELECT prot.relid FROM prot))
	UNION ALL
	SELECT t.attrelid,
		   pg_catalog.format('%s (%I)%s', a.privilege_type, t.attname,
			   CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
	  FROM engineer_acl_rel ear, engineer_role er, pg_catalog.pg_attribute t,
		   pg_catalog.aclexplode(t.attacl) a
	 WHERE t.attrelid OPERATOR(pg_catalog.=) ear.rel
	   AND t.attacl IS NOT NULL
	   AND NOT t.attisdropped
	   AND a.grantee OPERATOR(pg_catalog.=) er.oid
	   AND (a.privilege_type NOT IN ('SELECT', 'INSERT', 'UPDATE')
			OR a.is_grantable
			OR t.attrelid NOT IN (SELECT prot.relid FROM prot))
),
-- SECURITY DEFINER functions, lockbox's own excepted
definer_fn AS (
	SELECT p.oid, p.proowner FROM pg_catalog.pg_proc p
	 WHERE p.prosecdef
	   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d, ext
						WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
						  AND d.objid OPERATOR(pg_catalog.=) p.oid
						  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
						  AND d.refobjid OPERATOR(pg_catalog.=) ext.oid
						  AND d.deptype OPERATOR(pg_catalog.=) 'e')
),
-- the owners of those that can read protected rows past lockbox, and why:
-- a superuser, a BYPASSRLS role, a member of one, or a role that is no
-- engineer and has privileges on a relation of prot_rel (its owner included)
definer_owner(owner, why) AS (
	SELECT o.owner, w.why
	  FROM (SELECT DISTINCT f.proowner AS owner FROM definer_fn f) o
	 CROSS JOIN LATERAL (
		SELECT COALESCE(
			(SELECT pg_catalog.format('role %s, a superuser', r.rolname)
			   FROM pg_catalog.pg_roles r
			  WHERE r.oid OPERATOR(pg_catalog.=) o.owner AND r.rolsuper),
			(SELECT pg_catalog.format('role %s, which has BYPASSRLS', r.rolname)
			   FROM pg_catalog.pg_roles r
			  WHERE r.oid OPERATOR(pg_catalog.=) o.owner AND r.rolbypassrls),
			(SELECT pg_catalog.format('role %s, a member of role %s, %s',
					   pg_catalog.pg_get_userbyid(o.owner), x.rolname,
					   CASE WHEN x.rolsuper THEN 'a superuser' ELSE 'which has BYPASSRLS' END)
			   FROM closure c JOIN pg_catalog.pg_roles x ON x.oid OPERATOR(pg_catalog.=) c.role
			  WHERE c.member OPERATOR(pg_catalog.=) o.owner
				AND (x.rolsuper OR x.rolbypassrls)
			  LIMIT 1),
			(SELECT pg_catalog.format('role %s, which can read or write %s',
					   pg_catalog.pg_get_userbyid(o.owner), pr.descr)
			   FROM prot_rel pr
			  WHERE o.owner NOT IN (SELECT engineers.oid FROM engineers)
				AND o.owner NOT IN (SELECT engineer_role.oid FROM engineer_role)
				AND pg_catalog.has_table_privilege(o.owner, pr.rel,
						'SELECT, INSERT, UPDATE, DELETE')
			  ORDER BY pr.how, pr.rel::pg_catalog.regclass::pg_catalog.text
			  LIMIT 1)) AS why
	 ) w
	 WHERE w.why IS NOT NULL
),
-- triggers that run such a function (a partition's clone of its partitioned
-- table's trigger is the same trigger), with the relations whose writes fire
-- them: their own, the ones it inherits from, and, for a partitioned table,
-- its partitions
definer_trig AS (
	SELECT t.oid, t.tgname, t.tgrelid, t.tgfoid, t.tgtype, o.why
	  FROM pg_catalog.pg_trigger t
	  JOIN definer_fn f ON f.oid OPERATOR(pg_catalog.=) t.tgfoid
	  JOIN definer_owner o ON o.owner OPERATOR(pg_catalog.=) f.proowner
	 WHERE NOT t.tgisinternal
	   AND t.tgenabled OPERATOR(pg_catalog.<>) 'D'
	   AND t.tgparentid OPERATOR(pg_catalog.=) 0
),
trig_up(tg, rel) AS (
	SELECT dt.oid, dt.tgrelid FROM definer_trig dt
	UNION
	SELECT u.tg, i.inhparent FROM trig_up u
	  JOIN pg_catalog.pg_inherits i ON i.inhrelid OPERATOR(pg_catalog.=) u.rel
),
trig_down(tg, rel) AS (
	SELECT dt.oid, dt.tgrelid FROM definer_trig dt
	UNION
	SELECT d.tg, i.inhrelid FROM trig_down d
	  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.rel
	  JOIN pg_catalog.pg_inherits i ON i.inhparent OPERATOR(pg_catalog.=) d.rel
	 WHERE c.relkind OPERATOR(pg_catalog.=) 'p'
),
trig_rel(tg, rel) AS (
	SELECT trig_up.tg, trig_up.rel FROM trig_up
	UNION
	SELECT trig_down.tg, trig_down.rel FROM trig_down
),
-- for each trigger that engineers fire, one table they fire it through
-- (its own, when they can write it)
trig_fired(tg, rel) AS (
	SELECT DISTINCT ON (t.oid) t.oid, tr.rel
	  FROM definer_trig t
	  JOIN trig_rel tr ON tr.tg OPERATOR(pg_catalog.=) t.oid
	 WHERE EXISTS (SELECT 1 FROM engineers e
					WHERE (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 4 OPERATOR(pg_catalog.<>) 0
						   AND pg_catalog.has_any_column_privilege(e.oid, tr.rel, 'INSERT'))
					   OR (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 16 OPERATOR(pg_catalog.<>) 0
						   AND pg_catalog.has_any_column_privilege(e.oid, tr.rel, 'UPDATE'))
					   OR (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 8 OPERATOR(pg_catalog.<>) 0
						   AND pg_catalog.has_table_privilege(e.oid, tr.rel, 'DELETE'))
					   OR (t.tgtype::pg_catalog.int4 OPERATOR(pg_catalog.&) 32 OPERATOR(pg_catalog.<>) 0
						   AND pg_catalog.has_table_privilege(e.oid, tr.rel, 'TRUNCATE')))
	 ORDER BY t.oid, tr.rel OPERATOR(pg_catalog.<>) t.tgrelid,
			  tr.rel::pg_catalog.regclass::pg_catalog.text
),
-- rules other than views' SELECT rules, with what their actions reach:
-- a relation of prot_rel, or a view that reads one
rule_reach(rule, descr) AS (
	SELECT DISTINCT r.oid, pr.descr
	  FROM pg_catalog.pg_rewrite r
	  JOIN pg_catalog.pg_depend d
		ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
	   AND d.objid OPERATOR(pg_catalog.=) r.oid
	   AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
	   AND d.deptype OPERATOR(pg_catalog.=) 'n'
	  JOIN prot_rel pr ON pr.rel OPERATOR(pg_catalog.=) d.refobjid
	 WHERE r.ev_type OPERATOR(pg_catalog.<>) '1'
	   AND r.ev_enabled OPERATOR(pg_catalog.<>) 'D'
	UNION
	SELECT DISTINCT r.oid, pg_catalog.format('view %s, which reads %s',
						   reach.view::pg_catalog.regclass, pr.descr)
	  FROM pg_catalog.pg_rewrite r
	  JOIN pg_catalog.pg_depend d
		ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
	   AND d.objid OPERATOR(pg_catalog.=) r.oid
	   AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
	   AND d.deptype OPERATOR(pg_catalog.=) 'n'
	  JOIN reach ON reach.view OPERATOR(pg_catalog.=) d.refobjid
	  JOIN prot_rel pr ON pr.rel OPERATOR(pg_catalog.=) reach.rel
	 WHERE r.ev_type OPERATOR(pg_catalog.<>) '1'
	   AND r.ev_enabled OPERATOR(pg_catalog.<>) 'D'
),
-- the roles that call lockbox's functions for others: reviewers, approvers
-- (members of lockbox_approver and the roles bound to tenants, with their
-- members), auditors, and the extension's owner
caller AS (
	SELECT c.member AS oid FROM closure c
	  JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) c.role
	 WHERE g.rolname IN ('lockbox_reviewer', 'lockbox_approver', 'lockbox_auditor')
	UNION
	SELECT a.approver::pg_catalog.oid FROM lockbox.approver a
	UNION
	SELECT c.member FROM closure c
	  JOIN lockbox.approver a ON a.approver::pg_catalog.oid OPERATOR(pg_catalog.=) c.role
	UNION
	SELECT ext.extowner FROM ext
),
-- their search_path settings in this database (ALTER ROLE ... [IN DATABASE]
-- SET, ALTER DATABASE SET, ALTER ROLE ALL SET), the value as stored
sp_setting(setdatabase, setrole, path) AS (
	SELECT s.setdatabase, s.setrole,
		   pg_catalog.substr(g.cfg, pg_catalog.strpos(g.cfg, '=') OPERATOR(pg_catalog.+) 1)
	  FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) g(cfg)
	 WHERE (s.setdatabase OPERATOR(pg_catalog.=) 0
			OR s.setdatabase IN (SELECT this_db.oid FROM this_db))
	   AND (s.setrole OPERATOR(pg_catalog.=) 0
			OR s.setrole IN (SELECT caller.oid FROM caller))
	   AND pg_catalog.lower(pg_catalog.split_part(g.cfg, '=', 1))
		   OPERATOR(pg_catalog.=) 'search_path'
),
-- each setting's schemas, in order, read as the server reads the list:
-- comma separated, a double-quoted name as written ("" for "), any other
-- in lower case
sp_entry(setdatabase, setrole, pos, name) AS (
	SELECT s.setdatabase, s.setrole, m.pos,
		   CASE WHEN m.tok[1] OPERATOR(pg_catalog.~~) '"%'
				THEN pg_catalog.replace(pg_catalog.substr(m.tok[1], 2,
						 pg_catalog.length(m.tok[1]) OPERATOR(pg_catalog.-) 2), '""', '"')
				ELSE pg_catalog.lower(m.tok[1])
		   END
	  FROM sp_setting s,
		   pg_catalog.regexp_matches(s.path, '"(?:[^"]|"")*"|[^\s,"]+', 'g')
			   WITH ORDINALITY m(tok, pos)
),
-- where the schema of lockbox's functions is on each setting's list
sp_ext(setdatabase, setrole, ext_pos) AS (
	SELECT e.setdatabase, e.setrole,
		   pg_catalog.min(e.pos) FILTER (WHERE e.name OPERATOR(pg_catalog.=) n.nspname::pg_catalog.text)
	  FROM sp_entry e, ext, pg_catalog.pg_namespace n
	 WHERE n.oid OPERATOR(pg_catalog.=) ext.extnamespace
	 GROUP BY e.setdatabase, e.setrole
),
-- "$user" stands for the role itself; in a setting for every role, for each
-- of the callers
sp_schema(setdatabase, setrole, who, pos, name) AS (
	SELECT e.setdatabase, e.setrole, e.setrole, e.pos, e.name FROM sp_entry e
	 WHERE e.name OPERATOR(pg_catalog.<>) '$user'
	UNION ALL
	SELECT e.setdatabase, e.setrole, e.setrole, e.pos,
		   pg_catalog.pg_get_userbyid(e.setrole)::pg_catalog.text
	  FROM sp_entry e
	 WHERE e.name OPERATOR(pg_catalog.=) '$user' AND e.setrole OPERATOR(pg_catalog.<>) 0
	UNION ALL
	SELECT e.setdatabase, e.setrole, caller.oid, e.pos,
		   pg_catalog.pg_get_userbyid(caller.oid)::pg_catalog.text
	  FROM sp_entry e, caller
	 WHERE e.name OPERATOR(pg_catalog.=) '$user' AND e.setrole OPERATOR(pg_catalog.=) 0
),
-- each publication that publishes (FOR ALL TABLES, FOR TABLES IN SCHEMA or
-- by name) lockbox's own tables, or protected tables, their partitions or
-- inheritance children
pub_rel(pubname, puballtables, own, protected) AS (
	SELECT p.pubname, p.puballtables,
		   pg_catalog.bool_or(own.objid IS NOT NULL),
		   pg_catalog.string_agg(DISTINCT c.oid::pg_catalog.regclass::pg_catalog.text, ', '
								 ORDER BY c.oid::pg_catalog.regclass::pg_catalog.text)
			   FILTER (WHERE pr.rel IS NOT NULL)
	  FROM pg_catalog.pg_publication p
	  JOIN pg_catalog.pg_publication_tables pt
		ON pt.pubname OPERATOR(pg_catalog.=) p.pubname
	  JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) pt.schemaname
	  JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) n.oid
	   AND c.relname OPERATOR(pg_catalog.=) pt.tablename
	  LEFT JOIN (SELECT d.objid FROM pg_catalog.pg_depend d, ext
				  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
					AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
					AND d.refobjid OPERATOR(pg_catalog.=) ext.oid
					AND d.deptype OPERATOR(pg_catalog.=) 'e') own
		ON own.objid OPERATOR(pg_catalog.=) c.oid
	  LEFT JOIN prot_rel pr ON pr.rel OPERATOR(pg_catalog.=) c.oid
	   AND pr.how IN (0, 1, 2)
	 GROUP BY p.pubname, p.puballtables
	HAVING pg_catalog.bool_or(own.objid IS NOT NULL)
		OR pg_catalog.bool_or(pr.rel IS NOT NULL)
),
findings(check_name, object, detail) AS (
	SELECT 'engineer_superuser', r.rolname::pg_catalog.text,
		   'Engineer is a superuser: row-level security and lockbox do not apply.'
	  FROM engineers e JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) e.oid
	 WHERE r.rolsuper
	UNION ALL
	SELECT 'engineer_bypassrls', r.rolname::pg_catalog.text,
		   'Engineer has BYPASSRLS: the lockbox policies do not apply.'
	  FROM engineers e JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) e.oid
	 WHERE r.rolbypassrls
	UNION ALL
	SELECT 'engineer_createrole', r.rolname::pg_catalog.text,
		   'Engineer has CREATEROLE and can grant itself other roles.'
	  FROM engineers e JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) e.oid
	 WHERE r.rolcreaterole
	UNION ALL
	SELECT 'engineer_owns_protected_table', pg_catalog.pg_get_userbyid(e.oid)::pg_catalog.text,
		   pg_catalog.format('Engineer owns protected table %s: row-level security does not apply to owners.',
							 prot.relid::pg_catalog.regclass)
	  FROM engineers e JOIN prot ON prot.relowner OPERATOR(pg_catalog.=) e.oid
	UNION ALL
	SELECT 'engineer_reaches_around',
		   pg_catalog.pg_get_userbyid(e.oid)::pg_catalog.text,
		   pg_catalog.format('Engineer can act as role %s, %s.', x.rolname,
			   CASE WHEN x.rolsuper THEN 'a superuser'
					WHEN x.rolbypassrls THEN 'which has BYPASSRLS'
					WHEN x.oid IN (SELECT prot.relowner FROM prot)
						THEN 'which owns a protected table'
					WHEN EXISTS (SELECT 1 FROM prot
								  WHERE pg_catalog.has_table_privilege(x.oid, prot.relid,
										'SELECT, INSERT, UPDATE, DELETE, TRUNCATE'))
						THEN 'which is no engineer and has privileges on a protected table'
					ELSE 'which is no engineer and has privileges on a partition, inheritance child or parent of a protected table'
			   END)
	  FROM engineers e
	  JOIN closure c ON c.member OPERATOR(pg_catalog.=) e.oid
	  JOIN pg_catalog.pg_roles x ON x.oid OPERATOR(pg_catalog.=) c.role
	 WHERE x.rolsuper OR x.rolbypassrls
		OR x.oid IN (SELECT prot.relowner FROM prot)
		OR (x.oid NOT IN (SELECT engineers.oid FROM engineers)
			AND x.oid NOT IN (SELECT engineer_role.oid FROM engineer_role)
			AND EXISTS (SELECT 1 FROM prot_rel
						 WHERE pg_catalog.has_table_privilege(x.oid, prot_rel.rel,
								'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')))
	UNION ALL
	SELECT 'schema_writable', n.nspname::pg_catalog.text,
		   'Engineers can create objects in the schema of lockbox''s functions: a function of theirs with the same name could capture calls meant for lockbox.'
	  FROM pg_catalog.pg_extension x
	  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) x.extnamespace
	 WHERE x.extname OPERATOR(pg_catalog.=) 'lockbox'
	   AND EXISTS (SELECT 1 FROM engineers e
					WHERE pg_catalog.has_schema_privilege(e.oid, n.oid, 'CREATE'))
	UNION ALL
	SELECT 'rls_disabled', prot.relid::pg_catalog.regclass::pg_catalog.text,
		   'Row-level security is off on this protected table: engineers are not restricted by lockbox policies.'
	  FROM prot WHERE NOT prot.relrowsecurity
	UNION ALL
	SELECT 'policy_changed', prot.relid::pg_catalog.regclass::pg_catalog.text,
		   'A lockbox policy on this protected table was dropped or altered.'
	  FROM prot
	 WHERE prot.current_policies IS DISTINCT FROM prot.policies
	UNION ALL
	SELECT 'definer_view', reach.view::pg_catalog.regclass::pg_catalog.text,
		   pg_catalog.format('%s reads %s%s as its owner, and engineers can read it.',
			   CASE v.relkind WHEN 'm' THEN 'Materialized view' ELSE 'View' END,
			   pr.descr, CASE WHEN pr.how OPERATOR(pg_catalog.=) 0 THEN '' ELSE ',' END)
	  FROM reach
	  JOIN prot_rel pr ON pr.rel OPERATOR(pg_catalog.=) reach.rel
	  JOIN pg_catalog.pg_class v ON v.oid OPERATOR(pg_catalog.=) reach.view
	 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.unnest(v.reloptions) o
						WHERE pg_catalog.lower(o) IN ('security_invoker=true',
							'security_invoker=on', 'security_invoker=1',
							'security_invoker=yes'))
	   AND EXISTS (SELECT 1 FROM engineers e
					WHERE pg_catalog.has_table_privilege(e.oid, v.oid, 'SELECT'))
	UNION ALL
	-- lockbox_protect gives lockbox_engineer SELECT, INSERT, UPDATE, DELETE
	-- on a protected table, and its policies govern them; anything else
	-- granted to the role itself is every engineer's at all times.  Not
	-- lockbox's own views, nor a security_invoker view (what it reads is
	-- checked as the engineer).
	SELECT 'engineer_privileges', c.oid::pg_catalog.regclass::pg_catalog.text,
		   pg_catalog.format('lockbox_engineer holds %s on %s: %s',
			   pg_catalog.string_agg(DISTINCT ea.priv, ', ' ORDER BY ea.priv),
			   COALESCE(pr.descr, pg_catalog.format('%s %s',
				   CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
						WHEN 'f' THEN 'foreign table' ELSE 'table' END,
				   c.oid::pg_catalog.regclass)),
			   CASE WHEN pr.how OPERATOR(pg_catalog.=) 0
					THEN 'lockbox_protect grants only SELECT, INSERT, UPDATE and DELETE, which the lockbox policies govern; these are every engineer''s at all times.'
					ELSE 'lockbox does not manage privileges on it, and every engineer holds them at all times.'
			   END)
	  FROM engineer_acl ea
	  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) ea.rel
	  LEFT JOIN prot_rel pr ON pr.rel OPERATOR(pg_catalog.=) c.oid
	 WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
	   AND NOT (c.relkind OPERATOR(pg_catalog.=) 'v'
				AND EXISTS (SELECT 1 FROM pg_catalog.unnest(c.reloptions) o
							 WHERE pg_catalog.lower(o) IN ('security_invoker=true',
								 'security_invoker=on', 'security_invoker=1',
								 'security_invoker=yes')))
	   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d, ext
						WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
						  AND d.objid OPERATOR(pg_catalog.=) c.oid
						  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
						  AND d.refobjid OPERATOR(pg_catalog.=) ext.oid
						  AND d.deptype OPERATOR(pg_catalog.=) 'e')
	 GROUP BY c.oid, c.relkind, pr.how, pr.descr
	UNION ALL
	SELECT 'definer_function', f.oid::pg_catalog.regprocedure::pg_catalog.text,
		   pg_catalog.format('SECURITY DEFINER function running as %s, and engineers can execute it: what it reads and writes, it reads and writes past lockbox.',
							 o.why)
	  FROM definer_fn f
	  JOIN definer_owner o ON o.owner OPERATOR(pg_catalog.=) f.proowner
	 WHERE EXISTS (SELECT 1 FROM engineers e
					WHERE pg_catalog.has_function_privilege(e.oid, f.oid, 'EXECUTE'))
	UNION ALL
	SELECT 'definer_trigger',
		   pg_catalog.format('%I on %s', t.tgname, t.tgrelid::pg_catalog.regclass),
		   pg_catalog.format('Trigger function %s is SECURITY DEFINER, running as %s, and engineers can write %s, which fires it: what it reads and writes, it reads and writes past lockbox.',
							 t.tgfoid::pg_catalog.regprocedure, t.why, w.rel::pg_catalog.regclass)
	  FROM definer_trig t
	  JOIN trig_fired w ON w.tg OPERATOR(pg_catalog.=) t.oid
	UNION ALL
	-- a rule's actions are checked as the owner of its table, and row-level
	-- security does not restrict the owner
	SELECT 'definer_rule',
		   pg_catalog.format('%I on %s', r.rulename, r.ev_class::pg_catalog.regclass),
		   pg_catalog.format('Rule ON %s TO %s runs its actions as the owner of %s, and they reach %s: engineers can %s %s, and so reach those rows past lockbox.',
							 CASE r.ev_type WHEN '2' THEN 'UPDATE' WHEN '3' THEN 'INSERT' ELSE 'DELETE' END,
							 r.ev_class::pg_catalog.regclass, r.ev_class::pg_catalog.regclass,
							 pg_catalog.string_agg(rr.descr, '; ' ORDER BY rr.descr),
							 CASE r.ev_type WHEN '2' THEN 'update' WHEN '3' THEN 'insert into' ELSE 'delete from' END,
							 r.ev_class::pg_catalog.regclass)
	  FROM pg_catalog.pg_rewrite r
	  JOIN rule_reach rr ON rr.rule OPERATOR(pg_catalog.=) r.oid
	 WHERE EXISTS (SELECT 1 FROM engineers e
					WHERE CASE r.ev_type
							  WHEN '2' THEN pg_catalog.has_any_column_privilege(e.oid, r.ev_class, 'UPDATE')
							  WHEN '3' THEN pg_catalog.has_any_column_privilege(e.oid, r.ev_class, 'INSERT')
							  ELSE pg_catalog.has_table_privilege(e.oid, r.ev_class, 'DELETE')
						  END)
	 GROUP BY r.oid, r.rulename, r.ev_class, r.ev_type
	UNION ALL
	-- the search_path of a role that calls lockbox's functions, with a schema
	-- engineers can create objects in (or create): their function of the
	-- same name comes first when it is ahead of lockbox's schema, and also
	-- after it, when its argument types match the call more closely
	SELECT 'search_path_writable',
		   pg_catalog.format('%s, schema %I',
			   CASE WHEN sp.who OPERATOR(pg_catalog.<>) 0
						THEN pg_catalog.format('role %I', pg_catalog.pg_get_userbyid(sp.who))
					WHEN sp.setdatabase OPERATOR(pg_catalog.<>) 0
						THEN pg_catalog.format('database %I', pg_catalog.current_database())
					ELSE 'every role' END,
			   sp.name),
		   pg_catalog.format('%s puts schema %I on the search_path %s, and %s: a function of theirs there can capture calls meant for lockbox.',
			   CASE WHEN sp.setrole OPERATOR(pg_catalog.=) 0 AND sp.setdatabase OPERATOR(pg_catalog.=) 0
						THEN 'ALTER ROLE ALL SET'
					WHEN sp.setrole OPERATOR(pg_catalog.=) 0
						THEN pg_catalog.format('ALTER DATABASE %I SET', pg_catalog.current_database())
					WHEN sp.setdatabase OPERATOR(pg_catalog.=) 0
						THEN pg_catalog.format('ALTER ROLE %I SET', pg_catalog.pg_get_userbyid(sp.setrole))
					ELSE pg_catalog.format('ALTER ROLE %I IN DATABASE %I SET',
							 pg_catalog.pg_get_userbyid(sp.setrole), pg_catalog.current_database())
			   END
			   OPERATOR(pg_catalog.||)
			   CASE WHEN sp.setrole OPERATOR(pg_catalog.=) 0 AND sp.who OPERATOR(pg_catalog.<>) 0
						THEN pg_catalog.format(' ("$user", for role %I)', pg_catalog.pg_get_userbyid(sp.who))
					ELSE '' END,
			   sp.name,
			   CASE WHEN x.ext_pos IS NULL
						THEN pg_catalog.format('where %I, the schema of lockbox''s functions, is not', xn.nspname)
					WHEN sp.pos OPERATOR(pg_catalog.<) x.ext_pos
						THEN pg_catalog.format('ahead of %I, the schema of lockbox''s functions', xn.nspname)
					ELSE pg_catalog.format('after %I, the schema of lockbox''s functions (a closer match of argument types still wins)', xn.nspname)
			   END,
			   CASE WHEN n.oid IS NULL
						THEN 'engineers can create it (CREATE on the database)'
					ELSE 'engineers can create objects in it' END)
	  FROM sp_schema sp
	  JOIN sp_ext x ON x.setdatabase OPERATOR(pg_catalog.=) sp.setdatabase
	   AND x.setrole OPERATOR(pg_catalog.=) sp.setrole
	 CROSS JOIN ext
	  JOIN pg_catalog.pg_namespace xn ON xn.oid OPERATOR(pg_catalog.=) ext.extnamespace
	  LEFT JOIN pg_catalog.pg_namespace n ON n.nspname::pg_catalog.text OPERATOR(pg_catalog.=) sp.name
	 WHERE sp.name OPERATOR(pg_catalog.<>) xn.nspname::pg_catalog.text
	   AND sp.name OPERATOR(pg_catalog.<>) 'pg_temp'
	   AND sp.name OPERATOR(pg_catalog.!~~) 'pg\_%'
	   AND ((n.oid IS NOT NULL
			 AND EXISTS (SELECT 1 FROM engineers e
						  WHERE pg_catalog.has_schema_privilege(e.oid, n.oid, 'CREATE')))
			OR (n.oid IS NULL
				AND EXISTS (SELECT 1 FROM engineers e, this_db
							 WHERE pg_catalog.has_database_privilege(e.oid, this_db.oid, 'CREATE'))))
	UNION ALL
	SELECT 'role_switch_function', p.oid::pg_catalog.regprocedure::pg_catalog.text,
		   pg_catalog.format('Engineers can execute %s, which %s: as another role, lockbox''s policies and checks may not apply.',
			   p.oid::pg_catalog.regprocedure,
			   CASE p.proname
				   WHEN 'reset_user' THEN 'returns a session to the role it had before set_user()'
				   WHEN 'set_session_auth' THEN 'changes the session''s user'
				   ELSE 'switches the session to another role' END)
	  FROM pg_catalog.pg_proc p
	 WHERE p.oid IN (SELECT p2.oid FROM pg_catalog.pg_proc p2
					  WHERE p2.proname IN ('set_user', 'set_user_u', 'reset_user', 'set_session_auth')
					 UNION
					 SELECT d.objid FROM pg_catalog.pg_depend d, pg_catalog.pg_extension x
					  WHERE x.extname OPERATOR(pg_catalog.=) 'set_user'
						AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
						AND d.refobjid OPERATOR(pg_catalog.=) x.oid
						AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
						AND d.deptype OPERATOR(pg_catalog.=) 'e')
	   AND EXISTS (SELECT 1 FROM engineers e
					WHERE pg_catalog.has_function_privilege(e.oid, p.oid, 'EXECUTE'))
	UNION ALL
	-- a cascading action runs as the owner of the referencing table: the
	-- rows it reaches are those whose key matches, whatever their tenant
	SELECT 'cross_tenant_fk',
		   pg_catalog.format('%I on %s', k.conname, k.conrelid::pg_catalog.regclass),
		   pg_catalog.format('Foreign key from %s to %s has %s, and its key does not pair %s.%I with %s.%I: a write to one tenant''s rows can change or delete another tenant''s.',
			   k.conrelid::pg_catalog.regclass, k.confrelid::pg_catalog.regclass,
			   pg_catalog.concat_ws(' and ',
				   CASE k.confdeltype WHEN 'c' THEN 'ON DELETE CASCADE'
						WHEN 'n' THEN 'ON DELETE SET NULL' WHEN 'd' THEN 'ON DELETE SET DEFAULT' END,
				   CASE k.confupdtype WHEN 'c' THEN 'ON UPDATE CASCADE'
						WHEN 'n' THEN 'ON UPDATE SET NULL' WHEN 'd' THEN 'ON UPDATE SET DEFAULT' END),
			   k.conrelid::pg_catalog.regclass, ta.attname,
			   k.confrelid::pg_catalog.regclass, tb.attname)
	  FROM pg_catalog.pg_constraint k
	  JOIN lockbox.protected_table a ON a.relid::pg_catalog.oid OPERATOR(pg_catalog.=) k.conrelid
	  JOIN lockbox.protected_table b ON b.relid::pg_catalog.oid OPERATOR(pg_catalog.=) k.confrelid
	  JOIN pg_catalog.pg_attribute ta ON ta.attrelid OPERATOR(pg_catalog.=) k.conrelid
	   AND ta.attname OPERATOR(pg_catalog.=) a.tenant_column
	  JOIN pg_catalog.pg_attribute tb ON tb.attrelid OPERATOR(pg_catalog.=) k.confrelid
	   AND tb.attname OPERATOR(pg_catalog.=) b.tenant_column
	 WHERE k.contype OPERATOR(pg_catalog.=) 'f'
	   AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))
	   AND NOT EXISTS (SELECT 1 FROM pg_catalog.generate_subscripts(k.conkey, 1) i
						WHERE k.conkey[i] OPERATOR(pg_catalog.=) ta.attnum
						  AND k.confkey[i] OPERATOR(pg_catalog.=) tb.attnum)
	UNION ALL
	-- logical replication applies no row-level security, and lockbox's
	-- tables are this database's history (README, Replication)
	SELECT 'publication_lockbox_tables', pr.pubname::pg_catalog.text,
		   pg_catalog.format('Publication %I%s publishes %s.%s%s',
			   pr.pubname,
			   CASE WHEN pr.puballtables THEN ' (FOR ALL TABLES)' ELSE '' END,
			   pg_catalog.concat_ws(' and ',
				   CASE WHEN pr.own THEN 'lockbox''s own tables (schema lockbox)' END,
				   CASE WHEN pr.protected IS NOT NULL
						THEN pg_catalog.format('%s %s',
							 CASE WHEN pr.protected OPERATOR(pg_catalog.~~) '%,%'
								  THEN 'tables' ELSE 'table' END,
							 pr.protected) END),
			   CASE WHEN pr.own
					THEN ' Their rows are this database''s requests, audit and queues, which belong to no other database: a subscriber cannot apply them.'
					ELSE '' END,
			   CASE WHEN pr.protected IS NOT NULL
					THEN ' Logical replication does not apply row-level security: a subscriber receives every tenant''s rows, restricted there only where lockbox protects the table too.'
					ELSE '' END)
	  FROM pub_rel pr
)
SELECT f.check_name, f.object, false AS ok, f.detail FROM findings f
UNION ALL
SELECT c.check_name, NULL, true, 'No finding.'
  FROM (VALUES ('engineer_superuser'), ('engineer_bypassrls'),
			   ('engineer_createrole'), ('engineer_owns_protected_table'),
			   ('engineer_reaches_around'), ('schema_writable'), ('rls_disabled'),
			   ('policy_changed'), ('definer_view'), ('engineer_privileges'),
			   ('definer_function'), ('definer_trigger'), ('definer_rule'),
			   ('search_path_writable'), ('role_switch_function'),
			   ('cross_tenant_fk'), ('publication_lockbox_tables')) AS c(check_name)
 WHERE NOT EXISTS (SELECT 1 FROM findings f
					WHERE f.check_name OPERATOR(pg_catalog.=) c.check_name);

-- delivery attempts of notifications, which lockbox.stats counts (see the
-- delivery section at the end of this file)
ALTER TABLE lockbox.notification
	ADD COLUMN attempts integer NOT NULL DEFAULT 0,
	ADD COLUMN last_error text,
	ADD COLUMN next_attempt_at timestamptz,
	ADD COLUMN failed_at timestamptz;

------------------------------------------------------------------------------
-- lockbox.stats: what happened in this database since the statistics were
-- reset (the server's start, or lockbox_stats_reset()).  Counters of events
-- no table records (refusals, sessions ended, worker passes) live in shared
-- memory, like PostgreSQL's own statistics; the rest is counted from the
-- tables over the same period.
------------------------------------------------------------------------------
CREATE FUNCTION lockbox.stats_counters(OUT stats_reset timestamptz,
		OUT refusals bigint, OUT sessions_ended bigint, OUT worker_passes bigint,
		OUT worker_failures bigint, OUT access_queue_depth integer)
	RETURNS record AS 'MODULE_PATHNAME', 'lockbox_stats_counters'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION lockbox.stats_counters() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.stats_counters() TO lockbox_reviewer, lockbox_auditor;

CREATE FUNCTION @extschema@.lockbox_stats_reset() RETURNS void
	AS 'MODULE_PATHNAME', 'lockbox_stats_reset' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@.lockbox_stats_reset() FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.lockbox_stats_reset() IS
	'Start this database''s lockbox.stats afresh (extension owner).';

CREATE VIEW lockbox.stats AS
SELECT c.stats_reset,
	   r.requests, r.pending, r.approved, r.denied, r.expired, r.cancelled,
	   r.revoked, r.closed,
	   c.refusals, c.sessions_ended,
	   (SELECT pg_catalog.count(*) FROM lockbox.audit_log a
		 WHERE a.at OPERATOR(pg_catalog.>=) c.since) AS audit_rows,
	   c.access_queue_depth, c.worker_passes, c.worker_failures,
	   n.notifications, n.notifications_delivered, n.notifications_undelivered,
	   n.notifications_failed
  FROM (SELECT s.*, COALESCE(s.stats_reset, '-infinity') AS since
		  FROM lockbox.stats_counters() s) c,
	   LATERAL (SELECT pg_catalog.count(*) AS requests,
					   pg_catalog.count(*) FILTER (WHERE x.state OPERATOR(pg_catalog.=) ANY
						   (ARRAY['pending_review', 'pending_approval'])) AS pending,
					   pg_catalog.count(*) FILTER (WHERE x.state OPERATOR(pg_catalog.=) 'approved') AS approved,
					   pg_catalog.count(*) FILTER (WHERE x.state OPERATOR(pg_catalog.=) 'denied') AS denied,
					   pg_catalog.count(*) FILTER (WHERE x.state OPERATOR(pg_catalog.=) 'expired') AS expired,
					   pg_catalog.count(*) FILTER (WHERE x.state OPERATOR(pg_catalog.=) 'cancelled') AS cancelled,
					   pg_catalog.count(*) FILTER (WHERE x.state OPERATOR(pg_catalog.=) 'revoked') AS revoked,
					   pg_catalog.count(*) FILTER (WHERE x.state OPERATOR(pg_catalog.=) 'closed') AS closed
				  FROM (SELECT lockbox.request_state(q.state, q.deadline, q.access_ends_at,
							   EXISTS (SELECT 1 FROM lockbox.revocation v
										WHERE v.request_id OPERATOR(pg_catalog.=) q.id),
							   pg_catalog.statement_timestamp()) AS state
						  FROM lockbox.request q
						 WHERE q.created_at OPERATOR(pg_catalog.>=) c.since) x) r,
	   LATERAL (SELECT pg_catalog.count(*) AS notifications,
					   pg_catalog.count(*) FILTER (WHERE m.delivered_at IS NOT NULL) AS notifications_delivered,
					   pg_catalog.count(*) FILTER (WHERE m.delivered_at IS NULL) AS notifications_undelivered,
					   pg_catalog.count(*) FILTER (WHERE m.delivered_at IS NULL
												  AND m.failed_at IS NOT NULL) AS notifications_failed
				  FROM lockbox.notification m
				 WHERE m.created_at OPERATOR(pg_catalog.>=) c.since) n;
REVOKE ALL ON lockbox.stats FROM PUBLIC;
GRANT SELECT ON lockbox.stats TO lockbox_reviewer, lockbox_auditor;
COMMENT ON VIEW lockbox.stats IS
	'Requests by state, refusals, sessions ended, audit rows, the access queue, worker passes and notifications in this database since the statistics were reset (stats_reset).';

------------------------------------------------------------------------------
-- Administration: removing a tenant (lockbox_remove_tenant), the operator's
-- emergency stop (lockbox_revoke for reviewers), and extending an access
-- window (lockbox_extend).
------------------------------------------------------------------------------
CREATE FUNCTION @extschema@.lockbox_remove_tenant(tenant text)
	RETURNS void AS 'MODULE_PATHNAME', 'lockbox_remove_tenant'
	LANGUAGE C VOLATILE;
-- like lockbox_add_tenant, the extension owner's
REVOKE ALL ON FUNCTION @extschema@.lockbox_remove_tenant(text) FROM PUBLIC;
COMMENT ON FUNCTION @extschema@.lockbox_remove_tenant(text) IS
	'The extension owner removes a tenant and its approver bindings, keeping its requests and their audit; refused while the tenant has open requests or a table protected as wholly its own.';

-- reviewers revoke too: the operator's emergency stop (never on a request of
-- their own, which lockbox_revoke checks)
GRANT EXECUTE ON FUNCTION @extschema@.lockbox_revoke(bigint, text)
	TO lockbox_reviewer;
COMMENT ON FUNCTION @extschema@.lockbox_revoke(bigint, text) IS
	'Ends an open access at once: the tenant''s approvers, or a reviewer as the operator''s emergency stop (never on a request of their own). Returns revoked.';

-- Extensions of approved requests' access windows: the requester asks with
-- lockbox_extend, the tenant's approvers decide with lockbox_approve and
-- lockbox_deny on the request, as at stage 2.  At most one is pending per
-- request; a pending one lapses when the access ends.
CREATE SEQUENCE lockbox.extension_id_seq;
CREATE TABLE lockbox.extension (
	id				bigint PRIMARY KEY
		DEFAULT pg_catalog.nextval('lockbox.extension_id_seq'),
	request_id		bigint NOT NULL,	/* of lockbox.request, which is never deleted */
	tenant			text NOT NULL,		/* the request's */
	requester		regrole NOT NULL,	/* the request's */
	by				interval NOT NULL,	/* the exact length added */
	reason			text NOT NULL,
	requested_at	timestamptz NOT NULL,
	ends_at			timestamptz NOT NULL,	/* the window's end when asked */
	new_ends_at		timestamptz NOT NULL,	/* its end once approved */
	state			text NOT NULL
		CHECK (state IN ('pending', 'approved', 'denied', 'lapsed')),
	decided_at		timestamptz		/* approved, denied, or recorded as lapsed */
);
ALTER SEQUENCE lockbox.extension_id_seq OWNED BY lockbox.extension.id;
CREATE UNIQUE INDEX extension_pending_idx ON lockbox.extension (request_id)
	WHERE state = 'pending';
CREATE INDEX extension_request_idx ON lockbox.extension (request_id);

-- votes on extensions: one per approver role and per session user
CREATE TABLE lockbox.extension_decision (
	extension_id	bigint NOT NULL,	/* of lockbox.extension, which is never deleted */
	approver		regrole NOT NULL,
	session_approver regrole NOT NULL,
	decision		text NOT NULL CHECK (decision IN ('approve', 'deny')),
	comment			text,
	decided_at		timestamptz NOT NULL,
	PRIMARY KEY (extension_id, approver),
	UNIQUE (extension_id, session_approver)
);

REVOKE ALL ON lockbox.extension, lockbox.extension_decision FROM PUBLIC;
REVOKE ALL ON SEQUENCE lockbox.extension_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('lockbox.extension', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.extension_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.extension_decision', '');

-- The state an extension is in, given its request's state (as
-- lockbox.request_state gives it): a pending extension of a request whose
-- access has ended has lapsed, whether or not that is recorded yet.
CREATE FUNCTION lockbox.extension_state(state text, request_state text)
	RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
	AS $$
	SELECT CASE	-- (parsed where it is inlined: every operator qualified)
		WHEN state OPERATOR(pg_catalog.=) 'pending'
		 AND request_state OPERATOR(pg_catalog.<>) 'approved' THEN 'lapsed'
		ELSE state
	END
	$$;
REVOKE ALL ON FUNCTION lockbox.extension_state(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.extension_state(text, text)
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;

-- the extensions, shown to whom the requests are shown
-- (one FROM item, so that writing through the view is refused for lack of
-- privileges, as for lockbox.requests)
CREATE VIEW lockbox.extensions WITH (security_barrier) AS
SELECT e.id,
	   e.request_id,
	   e.tenant,
	   e.requester::name AS requester,
	   e.by,
	   e.reason,
	   lockbox.extension_state(e.state,
			(SELECT lockbox.request_state(r.state, r.deadline, r.access_ends_at,
						EXISTS (SELECT 1 FROM lockbox.revocation v
								 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
						pg_catalog.statement_timestamp())
			   FROM lockbox.request r
			  WHERE r.id OPERATOR(pg_catalog.=) e.request_id)) AS state,
	   e.requested_at,
	   e.ends_at,
	   e.new_ends_at,
	   e.decided_at,
	   (SELECT pg_catalog.count(*) FROM lockbox.extension_decision d
		 WHERE d.extension_id OPERATOR(pg_catalog.=) e.id
		   AND d.decision OPERATOR(pg_catalog.=) 'approve')::integer AS approvals
  FROM lockbox.extension e
 WHERE e.requester::pg_catalog.oid OPERATOR(pg_catalog.=) (SELECT lockbox.me())
	OR (SELECT lockbox.sees_all())
	OR EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) e.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE'));
REVOKE ALL ON lockbox.extensions FROM PUBLIC;
GRANT SELECT ON lockbox.extensions
	TO lockbox_engineer, lockbox_reviewer, lockbox_approver, lockbox_auditor;

-- the requester asks; the approvers decide with lockbox_approve and
-- lockbox_deny
CREATE FUNCTION @extschema@.lockbox_extend(request_id bigint, by interval,
		reason text)
	RETURNS text AS 'MODULE_PATHNAME', 'lockbox_extend'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@.lockbox_extend(bigint, interval, text)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.lockbox_extend(bigint, interval, text)
	TO lockbox_engineer;
COMMENT ON FUNCTION @extschema@.lockbox_extend(bigint, interval, text) IS
	'The requester asks for more time on an approved request whose window is open; the tenant''s approvers decide with lockbox_approve or lockbox_deny on the request. Returns the request''s state (approved).';

------------------------------------------------------------------------------
-- The access log: every engineer statement on protected data, allowed or
-- refused, for every request covering it, in full (up to
-- lockbox.access_log_max_query), never lost.  Sessions spool their records
-- to files in the data directory before the statement runs; the worker
-- audits them and keeps, in the same transaction, how far it read each file.
------------------------------------------------------------------------------
CREATE TABLE lockbox.access_spool (
	file	text PRIMARY KEY,	/* lockbox_spool/<database oid>/<file> */
	done	bigint NOT NULL		/* bytes audited */
);
REVOKE ALL ON lockbox.access_spool FROM PUBLIC;

CREATE OR REPLACE VIEW lockbox.access_log WITH (security_barrier) AS
SELECT a.at, a.actor AS engineer, a.request_id, a.tenant,
	   a.detail OPERATOR(pg_catalog.->>) 'relation' AS relation,
	   a.detail OPERATOR(pg_catalog.->>) 'command' AS command,
	   a.detail OPERATOR(pg_catalog.->>) 'query' AS query,
	   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'statements')::pg_catalog.int8, 1) AS statements,
	   a.at OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs =>
		   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'last_at_usec')::pg_catalog.int8, 0)
		   OPERATOR(pg_catalog./) 1000000.0) AS last_at,
	   CASE WHEN a.event OPERATOR(pg_catalog.=) 'refused' THEN 'refused'
			ELSE 'allowed' END AS outcome,
	   a.detail OPERATOR(pg_catalog.->>) 'reason' AS reason,
	   COALESCE(a.detail OPERATOR(pg_catalog.->>) 'node', 'primary') AS node,
	   COALESCE((a.detail OPERATOR(pg_catalog.->>) 'query_length')::pg_catalog.int8,
				pg_catalog.octet_length(a.detail OPERATOR(pg_catalog.->>) 'query')) AS query_length,
	   a.detail OPERATOR(pg_catalog.->>) 'query_sha256' AS query_sha256,
	   a.session_user_name,
	   (a.detail OPERATOR(pg_catalog.->>) 'pid')::pg_catalog.int4 AS pid,
	   a.seq
  FROM lockbox.audit_log a
 WHERE a.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
   AND ((SELECT lockbox.sees_all())
		OR a.actor OPERATOR(pg_catalog.=) pg_catalog."current_user"()
		OR (a.tenant IS NOT NULL AND EXISTS (SELECT 1 FROM lockbox.approver ap
				 WHERE ap.tenant OPERATOR(pg_catalog.=) a.tenant
				   AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE'))));
COMMENT ON VIEW lockbox.access_log IS
	'Engineers'' statements on protected data, allowed or refused: one row per relation and covering request (statements a session repeated are counted in one row). Each caller sees their own, their tenants'', or (reviewers, auditors) all.';

-- append-only in every session_replication_role
ALTER TABLE lockbox.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE lockbox.audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;

-- anchors kept outside the database
CREATE FUNCTION @extschema@.lockbox_verify_audit(anchors jsonb,
		OUT ok boolean, OUT rows_checked bigint, OUT first_bad_seq bigint)
	RETURNS record AS 'MODULE_PATHNAME', 'lockbox_verify_audit_anchors'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION @extschema@.lockbox_verify_audit(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.lockbox_verify_audit(jsonb)
	TO lockbox_auditor, lockbox_approver;
COMMENT ON FUNCTION @extschema@.lockbox_verify_audit(jsonb) IS
	'Verifies the audit log as lockbox_verify_audit() does, and also anchors kept outside the database (''[{"seq": 41, "hash": "<64 hex digits>"}, ...]'', as the server log and notifications print them): each must still be there, unchanged, and reachable from the current heads; otherwise ok is false and first_bad_seq names the first bad row or anchor.';

------------------------------------------------------------------------------
-- Delivery (lockbox-notify, README "Delivery").  Where notifications go:
-- e-mail addresses of roles (lockbox_set_contact) and webhook URLs of
-- tenants (lockbox_set_webhook), set by the extension owner; the secrets
-- that sign webhooks stay in the notifier's configuration file, never here.
-- What became of each delivery: attempts, the last error, when the next
-- attempt is due, and failed_at once the notifier gave up.
------------------------------------------------------------------------------
CREATE TABLE lockbox.contact (
	role			regrole NOT NULL,
	email			text NOT NULL,
	PRIMARY KEY (role, email)
);
CREATE TABLE lockbox.webhook (
	tenant			text NOT NULL REFERENCES lockbox.tenant ON DELETE CASCADE,
	url				text NOT NULL,
	PRIMARY KEY (tenant, url)
);
REVOKE ALL ON lockbox.contact, lockbox.webhook FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('lockbox.contact', '');
SELECT pg_catalog.pg_extension_config_dump('lockbox.webhook', '');

-- (columns appended: the view keeps its 1.0 columns in their order)
CREATE OR REPLACE VIEW lockbox.notifications WITH (security_barrier) AS
SELECT n.id, n.request_id, n.recipient::name AS recipient, n.event, n.payload,
	   n.created_at, n.claimed_at, n.delivered_at,
	   n.attempts, n.last_error, n.next_attempt_at, n.failed_at
  FROM lockbox.notification n
 WHERE (SELECT lockbox.sees_all())
	OR pg_catalog.pg_has_role(pg_catalog."current_user"(), n.recipient::pg_catalog.oid, 'USAGE')
	OR EXISTS (SELECT 1 FROM lockbox.request r
				 JOIN lockbox.approver ap
				   ON ap.tenant OPERATOR(pg_catalog.=) r.tenant
				WHERE r.id OPERATOR(pg_catalog.=) n.request_id
				  AND pg_catalog.pg_has_role(pg_catalog."current_user"(),
											 ap.approver::pg_catalog.oid, 'USAGE'));

CREATE FUNCTION @extschema@.lockbox_set_contact(who regrole, email text)
	RETURNS void AS 'MODULE_PATHNAME', 'lockbox_set_contact'
	LANGUAGE C VOLATILE;
CREATE FUNCTION @extschema@.lockbox_set_webhook(tenant text, url text)
	RETURNS void AS 'MODULE_PATHNAME', 'lockbox_set_webhook'
	LANGUAGE C VOLATILE;
-- the extension owner's, like lockbox_add_tenant
REVOKE ALL ON FUNCTION @extschema@.lockbox_set_contact(regrole, text),
	@extschema@.lockbox_set_webhook(text, text) FROM PUBLIC;

-- a claim with the notifier's own lease (lockbox_claim_notifications(max)
-- leases for 5 minutes)
CREATE FUNCTION @extschema@.lockbox_claim_notifications(max integer,
		lease interval)
	RETURNS TABLE(id bigint, request_id bigint, recipient name, event text,
				  payload jsonb, created_at timestamptz)
	AS 'MODULE_PATHNAME', 'lockbox_claim_notifications'
	LANGUAGE C VOLATILE;
-- a failed delivery attempt: claimable again after retry_in, or, without
-- retry_in, failed for good
CREATE FUNCTION @extschema@.lockbox_fail_notification(id bigint, error text,
		retry_in interval DEFAULT NULL)
	RETURNS integer AS 'MODULE_PATHNAME', 'lockbox_fail_notification'
	LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION
	@extschema@.lockbox_claim_notifications(integer, interval),
	@extschema@.lockbox_fail_notification(bigint, text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.lockbox_claim_notifications(integer, interval),
	@extschema@.lockbox_fail_notification(bigint, text, interval)
	TO lockbox_auditor;

/*
 * What the notifier needs to render and deliver claimed notifications, one
 * row each: the request as lockbox.requests shows it, who approved it so
 * far, the anchors of the payload, and the addresses.  E-mail goes to the
 * recipient's addresses and those of every role that is a member of it,
 * directly or not (a group bound as approver reaches its members; the
 * reviewers' notification, addressed to lockbox_reviewer, every reviewer).
 * A tenant's webhooks receive the notifications of the customer's side:
 * those addressed to a role that holds the privileges of one of the
 * tenant's approvers.
 */
CREATE FUNCTION lockbox.delivery(ids bigint[])
	RETURNS TABLE(id bigint, event text, recipient name, created_at timestamptz,
				  attempts integer, request_id bigint, tenant text, requester name,
				  reason text, ticket text, tables text, access text,
				  duration interval, state text, created timestamptz,
				  deadline timestamptz, approved_at timestamptz,
				  access_ends_at timestamptz, close_reason text, reviewer name,
				  approved_by text, emails text, webhooks text, anchors jsonb)
	-- VOLATILE: its query takes a snapshot of its own, so that it sees every
	-- row a claim in the same statement (lockbox.delivery(ARRAY(SELECT id
	-- FROM lockbox_claim_notifications(...)))) has just claimed, including
	-- rows committed after the statement began
	LANGUAGE sql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT n.id, n.event, n.recipient::name, n.created_at, n.attempts,
		   r.id, r.tenant, r.requester::name, r.reason, r.ticket,
		   (SELECT string_agg(t::text, ', ' ORDER BY o) FROM unnest(r.tables)
				WITH ORDINALITY AS u(t, o)),
		   r.access, r.duration,
		   lockbox.request_state(r.state, r.deadline, r.access_ends_at,
				EXISTS (SELECT 1 FROM lockbox.revocation v
						 WHERE v.request_id OPERATOR(pg_catalog.=) r.id),
				statement_timestamp()),
		   r.created_at, r.deadline, r.approved_at, r.access_ends_at,
		   r.close_reason, r.reviewer::name,
		   (SELECT string_agg(d.approver::name, ', ' ORDER BY d.decided_at)
			  FROM lockbox.decision d
			 WHERE d.request_id OPERATOR(pg_catalog.=) r.id
			   AND d.decision OPERATOR(pg_catalog.=) 'approve'),
		   (WITH RECURSIVE m(role) AS (
				SELECT n.recipient::oid
				UNION
				SELECT a.member FROM pg_auth_members a JOIN m
				    ON a.roleid OPERATOR(pg_catalog.=) m.role)
			SELECT string_agg(DISTINCT c.email, ', ')
			  FROM lockbox.contact c JOIN m
				ON c.role::oid OPERATOR(pg_catalog.=) m.role),
		   (SELECT string_agg(w.url, ' ' ORDER BY w.url) FROM lockbox.webhook w
			 WHERE w.tenant OPERATOR(pg_catalog.=) r.tenant
			   AND EXISTS (SELECT 1 FROM lockbox.approver ap
							WHERE ap.tenant OPERATOR(pg_catalog.=) r.tenant
							  AND pg_has_role(n.recipient::oid,
											  ap.approver::oid, 'USAGE'))),
		   CASE WHEN jsonb_typeof(n.payload -> 'anchors') OPERATOR(pg_catalog.=) 'array'
				THEN n.payload -> 'anchors' END
	  FROM lockbox.notification n
	  JOIN lockbox.request r ON r.id OPERATOR(pg_catalog.=) n.request_id
	 WHERE n.id OPERATOR(pg_catalog.=) ANY (ids)
	 ORDER BY n.id
	$$;
REVOKE ALL ON FUNCTION lockbox.delivery(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.delivery(bigint[]) TO lockbox_auditor;
-- (end of the delivery section)

-- Replica identity for lockbox's queues.  A FOR ALL TABLES publication
-- publishes lockbox's tables too (PostgreSQL 15 cannot leave an extension's
-- tables out of it), and PostgreSQL refuses a DELETE from a published table
-- without a replica identity: the worker's deletes from these two queues
-- failed, and each of its passes with them.  Every other lockbox table has a
-- primary key.  (lockbox.posture's publication_lockbox_tables reports such a
-- publication; README, Replication.)
------------------------------------------------------------------------------
ALTER TABLE lockbox.notify_outbox ADD PRIMARY KEY (notification_id);
-- an engineer's sessions may be queued to end more than once
ALTER TABLE lockbox.session_end
	ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;

------------------------------------------------------------------------------
-- Comments: every function and view of lockbox explains itself in \df+ and
-- \dv+ (the settings do in pg_settings.extra_desc, see src/lockbox.c).  The
-- pgTAP test test/comments.sql fails for a function or view of the
-- extension without one.
------------------------------------------------------------------------------
-- the API (lockbox_revoke, lockbox_extend, lockbox_remove_tenant and
-- lockbox_stats_reset are commented where they are created)
COMMENT ON FUNCTION @extschema@.lockbox_request(text, text, regclass[], text, interval, text) IS
	'An engineer asks for access to a tenant''s protected tables (every one protected for that tenant when tables is NULL), to read or write, for a duration (lockbox.default_access_duration when NULL, at most lockbox.max_access_duration), with a reason and an optional ticket. Returns the request''s id; the request waits for a reviewer (pending_review).';
COMMENT ON FUNCTION @extschema@.lockbox_approve(bigint, text) IS
	'A reviewer approves a request at stage 1 (never their own); one of the tenant''s approvers approves it at stage 2, or approves a pending extension of it. Returns the request''s new state.';
COMMENT ON FUNCTION @extschema@.lockbox_deny(bigint, text) IS
	'A reviewer (stage 1) or one of the tenant''s approvers (stage 2, or a pending extension) denies a request, with a reason. Returns the request''s new state.';
COMMENT ON FUNCTION @extschema@.lockbox_cancel(bigint, text) IS
	'The requester withdraws a request still pending review or approval, with an optional reason. Returns cancelled.';
COMMENT ON FUNCTION @extschema@.lockbox_close(bigint, text) IS
	'The requester ends an approved request''s access before its window ends, with an optional resolution. Returns closed.';
COMMENT ON FUNCTION @extschema@.lockbox_add_tenant(text, boolean, integer) IS
	'The extension owner registers a tenant: whether lockbox is on for it, and how many distinct approvers must approve each request.';
COMMENT ON FUNCTION @extschema@.lockbox_set_enabled(text, boolean) IS
	'One of the tenant''s approvers switches lockbox on or off for the tenant: while it is off, a reviewer''s approval grants access without stage 2 (the audit says why).';
COMMENT ON FUNCTION @extschema@.lockbox_add_approver(text, regrole) IS
	'The extension owner binds a role (a customer admin, or a group of them) to a tenant as its approver.';
COMMENT ON FUNCTION @extschema@.lockbox_remove_approver(text, regrole) IS
	'The extension owner unbinds an approver from a tenant.';
COMMENT ON FUNCTION @extschema@.lockbox_protect(regclass, name, text) IS
	'The extension owner protects a table: engineers reach its rows only under an approved, unexpired request. Give tenant_column (each row belongs to the tenant named there) or tenant (the whole table belongs to that tenant).';
COMMENT ON FUNCTION @extschema@.lockbox_unprotect(regclass) IS
	'The extension owner takes lockbox''s protection off a table: its policies and the privileges lockbox_protect gave lockbox_engineer.';
COMMENT ON FUNCTION @extschema@.lockbox_verify_audit() IS
	'Recomputes the hash of every audit row from its parents and content: ok, the rows checked, and the first bad seq when a row was changed, removed or inserted.';
COMMENT ON FUNCTION @extschema@.lockbox_claim_notifications(integer) IS
	'A delivery service (lockbox_auditor) claims up to max undelivered notifications; no two claimers get the same row.';
COMMENT ON FUNCTION @extschema@.lockbox_ack_notification(bigint) IS
	'A delivery service (lockbox_auditor) marks a notification it claimed as delivered.';

-- lockbox's own helpers, in schema lockbox
COMMENT ON FUNCTION lockbox.request_state(text, timestamptz, timestamptz, boolean, timestamptz) IS
	'The state a request is in at a given time: a pending stage past its deadline is expired, an approved request with a recorded revocation revoked, one whose window has ended closed, whether or not the worker has acted yet. The one definition the views, the grants lookup, the messages and the worker use.';
COMMENT ON FUNCTION lockbox.extension_state(text, text) IS
	'The state of a request for more time, given its own state and its request''s (lockbox.request_state): a pending one whose access has ended has lapsed. For lockbox.extensions.';
COMMENT ON FUNCTION lockbox.me() IS
	'The OID of the calling role (current_user): lockbox''s views show a caller what is theirs.';
COMMENT ON FUNCTION lockbox.sees_all() IS
	'Whether the calling role has the privileges of lockbox_reviewer or lockbox_auditor, who see every request in lockbox''s views.';
COMMENT ON FUNCTION lockbox.granted_keys(regclass, "char", anyelement) IS
	'For lockbox''s policies: the tenant keys (in the tenant column''s type) of a protected table the calling engineer may reach now with the command (r read, w write), under approved, unexpired requests.';
COMMENT ON FUNCTION lockbox.granted_table(regclass, "char") IS
	'For lockbox''s policies on a table protected as wholly one tenant''s: whether the calling engineer may reach it now with the command (r read, w write).';
COMMENT ON FUNCTION lockbox.policy_fingerprint(regclass) IS
	'A fingerprint of the lockbox policies on a table, which lockbox.posture compares with the one lockbox_protect recorded (check policy_changed).';
COMMENT ON FUNCTION lockbox.audit_log_append_only() IS
	'Trigger function of lockbox.audit_log: refuses UPDATE, DELETE and TRUNCATE, for every role, so that the audit stays append-only.';
COMMENT ON FUNCTION lockbox.on_sql_drop() IS
	'Event trigger function (sql_drop): a protected table that is dropped leaves lockbox.protected_table, audited.';
COMMENT ON FUNCTION lockbox.start_worker() IS
	'Serve this database with a lockbox worker once the calling transaction commits. CREATE EXTENSION calls it; the extension owner may call it again.';
COMMENT ON FUNCTION lockbox.run_deadlines(integer) IS
	'One batch of the worker''s deadline step, run by hand (extension owner): completes recorded revocations, expires pending stages and closes ended windows whose deadline has passed. Returns how many requests it moved.';
COMMENT ON FUNCTION lockbox.worker_status() IS
	'The lockbox workers of the cluster: each database''s state, pid, last pass and next deadline, and the databases waiting for a slot. What lockbox.worker shows.';
COMMENT ON FUNCTION lockbox.stats_counters() IS
	'This database''s lockbox counters since they were reset, with the access queue''s depth now. What lockbox.stats shows.';

-- the views (lockbox.stats and lockbox.access_log are commented where they
-- are created)
COMMENT ON VIEW lockbox.requests IS
	'Requests, each with its state now (lockbox.request_state) and the end of its current pending stage: engineers see their own, approvers their tenants'', reviewers and auditors all.';
COMMENT ON VIEW lockbox.active_access IS
	'Access open now: engineer, tenant, tables, read or write, and when it ends. Engineers see their own, approvers their tenants'', reviewers and auditors all.';
COMMENT ON VIEW lockbox.audit IS
	'The tamper-evident audit of every lifecycle step and engineer statement, with each row''s hash (lockbox_verify_audit checks them). Shown to whom the requests are shown.';
COMMENT ON VIEW lockbox.notifications IS
	'Notifications to approvers, reviewers and requesters, with their JSON payload and when they were delivered (lockbox_claim_notifications, lockbox_ack_notification).';
COMMENT ON VIEW lockbox.tenants IS
	'Registered tenants: whether lockbox is on for each, how many approvals a request needs, and its approvers.';
COMMENT ON VIEW lockbox.protected_tables IS
	'Tables lockbox protects: by tenant column, or wholly one tenant''s.';
COMMENT ON VIEW lockbox.posture IS
	'Misconfigurations that would let someone around lockbox: one row per finding (ok false, naming the object), or one ok row per check that found nothing.';
COMMENT ON VIEW lockbox.worker IS
	'The lockbox workers of the cluster: each database''s worker, its state, last pass and next deadline (reviewers and auditors).';
COMMENT ON VIEW lockbox.extensions IS
	'Requests for more time on approved requests (lockbox_extend), with their state and approvals so far; shown to whom the requests are shown.';

------------------------------------------------------------------------------
-- Comments on the delivery functions
------------------------------------------------------------------------------
COMMENT ON FUNCTION @extschema@.lockbox_set_contact(regrole, text) IS
	'Extension owner: sets a role''s e-mail addresses (several separated by commas), replacing those it had; NULL removes them. lockbox-notify mails the notifications of the role and of its members there.';
COMMENT ON FUNCTION @extschema@.lockbox_set_webhook(text, text) IS
	'Extension owner: sets a tenant''s webhook URLs (http:// or https://, several separated by spaces), replacing those it had; NULL removes them. lockbox-notify posts the customer side''s notifications there, signed.';
COMMENT ON FUNCTION @extschema@.lockbox_claim_notifications(integer, interval) IS
	'Auditors (the notifier): claims up to max undelivered notifications that are due, holding the claim for lease; concurrent claimers never get the same row.';
COMMENT ON FUNCTION @extschema@.lockbox_fail_notification(bigint, text, interval) IS
	'Auditors (the notifier): records a failed delivery attempt and its error; the notification is claimable again after retry_in, or failed for good without it. Returns the attempts made.';
COMMENT ON FUNCTION lockbox.delivery(bigint[]) IS
	'Internal to lockbox-notify: what it needs to render and deliver the claimed notifications (the request, who approved, the addresses and webhooks).';
