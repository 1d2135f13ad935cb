/* lockbox--1.4--1.5.sql: upgrade lockbox from 1.4 to 1.5 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.5'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.3 to 1.4, then this one): a fresh 1.5 and an upgraded
-- 1.0 to 1.4 are the same by construction.

------------------------------------------------------------------------------
-- Posture: cascade_into_protected walks the referential actions as the
-- statements' check does (enforce.c), with lockbox.cascade_reach, so that
-- the two cannot drift: an UPDATE of a table with a BEFORE UPDATE row
-- trigger or a stored generated column counts as an update of every column
-- (1.4 followed only the keys of the columns engineers may update), an
-- UPDATE that may change a partition key as a delete from the partitions it
-- moves rows out of, and a table's partitions and children are changed with
-- it (1.4 only looked at the table engineers write).
--
-- search_path_writable and caller_schema: the owners of protected tables,
-- and the roles with their privileges, are callers too: every function or
-- operator they call unqualified (the application's code, its triggers) can
-- be captured by an engineer's, and runs with every tenant's rows in reach.
--
-- engineer_replication: engineers with REPLICATION, or who can act as a
-- role with it: logical decoding shows every row written, a base backup
-- copies every data file.
--
-- engineer_reads_stats: engineers that can act as pg_read_all_stats (or
-- pg_monitor, a member of it) read every session's statement texts, with
-- their literals, in pg_stat_activity and pg_stat_statements.
------------------------------------------------------------------------------
CREATE FUNCTION lockbox.cascade_reach(rel pg_catalog.regclass, del boolean,
									  cols pg_catalog.int2[])
	RETURNS TABLE (reached pg_catalog.regclass, steps text)
	AS 'MODULE_PATHNAME', 'lockbox_cascade_reach'
	LANGUAGE C STABLE;
REVOKE ALL ON FUNCTION lockbox.cascade_reach(pg_catalog.regclass, boolean, pg_catalog.int2[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION lockbox.cascade_reach(pg_catalog.regclass, boolean, pg_catalog.int2[])
	TO lockbox_reviewer, lockbox_auditor;
COMMENT ON FUNCTION lockbox.cascade_reach(pg_catalog.regclass, boolean, pg_catalog.int2[]) IS
	'The protected relations that a delete from rel (del), or an update of its columns cols (NULL: any), reaches through referential actions, each with the shortest chain of foreign keys: the walk of the check of engineers'' statements (lockbox.posture, cascade_into_protected).';

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
-- members), auditors, and the extension's owner; and the owners of
-- protected tables, with their members, whose every call runs with every
-- tenant's rows in reach (row-level security does not apply to them)
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
	UNION
	SELECT prot.relowner FROM prot
	UNION
	SELECT c.member FROM closure c
	  JOIN prot ON prot.relowner OPERATOR(pg_catalog.=) c.role
),
-- their search_path settings in this database (ALTER ROLE ... [IN DATABASE]
-- SET, ALTER DATABASE SET, ALTER ROLE ALL SET), the value as stored
sp_stored(setdatabase, setrole, path) AS (
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
-- the callers none of those applies to: they get the server's search_path
sp_server_caller AS (
	SELECT caller.oid FROM caller
	 WHERE NOT EXISTS (SELECT 1 FROM sp_stored s
						WHERE s.setrole IN (0, caller.oid))
),
-- the settings (src 0), and the server's (src 1) when a caller gets it
sp_setting(src, setdatabase, setrole, path) AS (
	SELECT 0, s.setdatabase, s.setrole, s.path FROM sp_stored s
	UNION ALL
	SELECT 1, 0::pg_catalog.oid, 0::pg_catalog.oid, lockbox.server_search_path()
	 WHERE EXISTS (SELECT 1 FROM sp_server_caller)
),
-- each setting's schemas, in order, read as the server reads the list:
-- comma separated, a double-quoted name as written ("" for "), any other
-- in lower case
sp_entry(src, setdatabase, setrole, pos, name) AS (
	SELECT s.src, s.setdatabase, s.setrole, m.pos,
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
sp_ext(src, setdatabase, setrole, ext_pos) AS (
	SELECT e.src, e.setdatabase, e.setrole,
		   pg_catalog.min(e.pos) FILTER (WHERE e.name OPERATOR(pg_catalog.=) n.nspname::pg_catalog.text)
	  FROM sp_entry e, ext, pg_catalog.pg_namespace n
	 WHERE n.oid OPERATOR(pg_catalog.=) ext.extnamespace
	 GROUP BY e.src, e.setdatabase, e.setrole
),
-- "$user" stands for the role itself; in a setting for every role, for each
-- of the callers (in the server's, for those that get it)
sp_schema(src, setdatabase, setrole, who, pos, name) AS (
	SELECT e.src, e.setdatabase, e.setrole, e.setrole, e.pos, e.name FROM sp_entry e
	 WHERE e.name OPERATOR(pg_catalog.<>) '$user'
	UNION ALL
	SELECT e.src, e.setdatabase, e.setrole, e.setrole, e.pos,
		   pg_catalog.pg_get_userbyid(e.setrole)::pg_catalog.text
	  FROM sp_entry e
	 WHERE e.name OPERATOR(pg_catalog.=) '$user' AND e.setrole OPERATOR(pg_catalog.<>) 0
	UNION ALL
	SELECT e.src, e.setdatabase, e.setrole, caller.oid, e.pos,
		   pg_catalog.pg_get_userbyid(caller.oid)::pg_catalog.text
	  FROM sp_entry e, caller
	 WHERE e.name OPERATOR(pg_catalog.=) '$user' AND e.setrole OPERATOR(pg_catalog.=) 0
	   AND (e.src OPERATOR(pg_catalog.=) 0
			OR caller.oid IN (SELECT sp_server_caller.oid FROM sp_server_caller))
),
-- engineers, and lockbox_engineer itself (what it holds, PUBLIC's included,
-- every engineer holds, also before there is any)
engineer_any AS (
	SELECT engineers.oid FROM engineers
	UNION
	SELECT engineer_role.oid FROM engineer_role
),
-- schemas named after a caller: "$user" on its search_path (the default)
-- finds them first.  Other roles that own them (a superuser excepted) or
-- hold CREATE on them can put functions there that capture its calls.
caller_schema(nsp, role, owner_part, writers_part, engineers_can) AS (
	SELECT n.oid, r.oid,
		   CASE WHEN n.nspowner OPERATOR(pg_catalog.<>) r.oid AND NOT o.rolsuper
				THEN pg_catalog.format('role %I%s owns it', o.rolname,
						 CASE WHEN o.oid IN (SELECT engineer_any.oid FROM engineer_any)
							  THEN ', an engineer,' ELSE '' END)
		   END,
		   (SELECT pg_catalog.format('%s can create objects in it',
					   pg_catalog.string_agg(CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
												  ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END,
											 ', ' ORDER BY a.grantee OPERATOR(pg_catalog.<>) 0,
											 pg_catalog.pg_get_userbyid(a.grantee)))
			  FROM pg_catalog.aclexplode(n.nspacl) a
			 WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
			   AND a.grantee OPERATOR(pg_catalog.<>) r.oid
			   AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
			HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0),
		   EXISTS (SELECT 1 FROM engineer_any e
					WHERE e.oid OPERATOR(pg_catalog.<>) r.oid
					  AND pg_catalog.has_schema_privilege(e.oid, n.oid, 'CREATE'))
	  FROM (SELECT DISTINCT caller.oid FROM caller) c
	  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) c.oid
	  JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) r.rolname
	  JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) n.nspowner
),
-- EXECUTE on functions of pg_catalog that PostgreSQL's default privileges
-- (pg_init_privs: initdb's, or an extension script's) give no one but
-- superusers and a few predefined roles, held since by another grantee
-- (0: PUBLIC).  Only functions whose privileges were ever changed have an
-- ACL, so this reads few rows.
fn_beyond(fn, grantee) AS (
	SELECT p.oid, a.grantee
	  FROM pg_catalog.pg_proc p
	  LEFT JOIN pg_catalog.pg_init_privs ip
		ON ip.objoid OPERATOR(pg_catalog.=) p.oid
	   AND ip.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
	   AND ip.objsubid OPERATOR(pg_catalog.=) 0
	 CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
	 WHERE p.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
	   AND p.proacl IS NOT NULL
	   AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
	   AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
	   AND NOT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(COALESCE(ip.initprivs,
							pg_catalog.acldefault('f', p.proowner))) d
						WHERE d.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
						  AND (d.grantee OPERATOR(pg_catalog.=) 0
							   OR d.grantee OPERATOR(pg_catalog.=) a.grantee))
),
-- those engineers hold: granted to PUBLIC, to an engineer or lockbox_engineer,
-- or to a role one of them is a member of
fn_engineer(fn, grantees) AS (
	SELECT fb.fn,
		   pg_catalog.string_agg(DISTINCT CASE WHEN fb.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
				ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(fb.grantee)) END, ', ')
	  FROM fn_beyond fb
	 WHERE fb.grantee OPERATOR(pg_catalog.=) 0
		OR fb.grantee IN (SELECT engineer_any.oid FROM engineer_any)
		OR EXISTS (SELECT 1 FROM closure c
					WHERE c.role OPERATOR(pg_catalog.=) fb.grantee
					  AND c.member IN (SELECT engineer_any.oid FROM engineer_any))
	 GROUP BY fb.fn
),
-- the tables a chain of referential actions may start from: those a
-- foreign key with an ON DELETE or ON UPDATE action references, and the
-- tables they are partitions or children of (a delete or update of those
-- changes their rows too)
fk_ref(rel) AS (
	SELECT k.confrelid FROM pg_catalog.pg_constraint k
	 WHERE k.contype OPERATOR(pg_catalog.=) 'f'
	   AND (k.confdeltype IN ('c', 'n', 'd') OR k.confupdtype IN ('c', 'n', 'd'))
	UNION
	SELECT i.inhparent FROM fk_ref r
	  JOIN pg_catalog.pg_inherits i ON i.inhrelid OPERATOR(pg_catalog.=) r.rel
),
-- those (not protected ones: lockbox's policies govern what engineers write
-- there) that engineers may delete from, or update columns of: "cols", the
-- columns any of them may update
fk_start(rel, verb, cols) AS (
	SELECT r.rel, 'delete from'::pg_catalog.text, NULL::pg_catalog.int2[]
	  FROM fk_ref r
	 WHERE r.rel NOT IN (SELECT prot.relid FROM prot)
	   AND EXISTS (SELECT 1 FROM engineer_any e
					WHERE pg_catalog.has_table_privilege(e.oid, r.rel, 'DELETE'))
	UNION ALL
	SELECT r.rel, 'update', u.cols
	  FROM fk_ref r
	 CROSS JOIN LATERAL (
		SELECT pg_catalog.array_agg(a.attnum ORDER BY a.attnum) AS cols
		  FROM pg_catalog.pg_attribute a
		 WHERE a.attrelid OPERATOR(pg_catalog.=) r.rel
		   AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
		   AND EXISTS (SELECT 1 FROM engineer_any e
						WHERE pg_catalog.has_column_privilege(e.oid, r.rel, a.attnum, 'UPDATE'))
	 ) u
	 WHERE r.rel NOT IN (SELECT prot.relid FROM prot)
	   AND u.cols IS NOT NULL
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
	-- the search_path of a role that calls lockbox's functions (as set for
	-- it, or the server's when nothing is), with a schema engineers can
	-- create objects in (or create): their function of the same name comes
	-- first when it is ahead of lockbox's schema, and also after it, when its
	-- argument types match the call more closely
	SELECT 'search_path_writable',
		   pg_catalog.format('%s, schema %I',
			   CASE WHEN sp.who OPERATOR(pg_catalog.<>) 0
						THEN pg_catalog.format('role %I', pg_catalog.pg_get_userbyid(sp.who))
					WHEN sp.src OPERATOR(pg_catalog.=) 1 THEN 'server'
					WHEN sp.setdatabase OPERATOR(pg_catalog.<>) 0
						THEN pg_catalog.format('database %I', pg_catalog.current_database())
					ELSE 'every role' END,
			   sp.name),
		   pg_catalog.format('%s puts schema %I on the search_path %s, and %s: a function of theirs there can capture calls meant for lockbox, and, of the owner of a protected table (or a role with its privileges), any call of its own, which reads every tenant''s rows. Call lockbox''s functions schema-qualified, revoke CREATE on the schema (or on the database) from engineers, or set the role''s search_path (ALTER ROLE ... SET search_path) to schemas only trusted roles can create objects in.',
			   CASE WHEN sp.src OPERATOR(pg_catalog.=) 1
						THEN 'The server''s search_path (its configuration files'', or PostgreSQL''s default), which no ALTER ROLE or ALTER DATABASE SET replaces'
							 OPERATOR(pg_catalog.||)
							 CASE WHEN sp.who OPERATOR(pg_catalog.<>) 0
								  THEN pg_catalog.format(' for role %I ("$user")', pg_catalog.pg_get_userbyid(sp.who))
								  ELSE ' for some of the roles that call lockbox''s functions' END OPERATOR(pg_catalog.||) ','
					WHEN sp.setrole OPERATOR(pg_catalog.=) 0 AND sp.setdatabase OPERATOR(pg_catalog.=) 0
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
						AND sp.src OPERATOR(pg_catalog.=) 0
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
	  JOIN sp_ext x ON x.src OPERATOR(pg_catalog.=) sp.src
	   AND x.setdatabase OPERATOR(pg_catalog.=) sp.setdatabase
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
	UNION ALL
	-- a schema named after a role that calls lockbox's functions, which
	-- "$user" (first on PostgreSQL's default search_path) puts first
	SELECT 'caller_schema', pg_catalog.quote_ident(n.nspname),
		   pg_catalog.format('Schema %I is named after role %I, which calls lockbox''s functions or owns protected tables, and %s: with "$user" on the role''s search_path (PostgreSQL''s default), a function there named like lockbox''s captures the role''s unqualified calls. Make role %I the schema''s owner and revoke CREATE on it from the others (or drop the schema), call lockbox''s functions schema-qualified, or set the role''s search_path without "$user".',
			   n.nspname, pg_catalog.pg_get_userbyid(cs.role),
			   COALESCE(pg_catalog.concat_ws(' and ', cs.owner_part, cs.writers_part),
						'engineers can create objects in it'),
			   pg_catalog.pg_get_userbyid(cs.role))
	  FROM caller_schema cs
	  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) cs.nsp
	 WHERE cs.owner_part IS NOT NULL OR cs.writers_part IS NOT NULL OR cs.engineers_can
	UNION ALL
	-- predefined roles that read or write the server's files, the data files
	-- of every table among them, past row-level security and unaudited
	-- (pg_read_all_data and pg_write_all_data hold privileges on every
	-- table: engineer_reaches_around reports them)
	SELECT 'server_file_access', pg_catalog.pg_get_userbyid(e.oid)::pg_catalog.text,
		   pg_catalog.format('Engineer can act as role %s, which %s: the data files hold every tenant''s rows, read there past lockbox and unaudited. Revoke the membership.',
			   x.rolname,
			   CASE x.rolname
				   WHEN 'pg_read_server_files' THEN 'reads any file the server can (COPY FROM a file), the data files of every table among them'
				   WHEN 'pg_write_server_files' THEN 'writes any file the server can (COPY TO a file), the data files of every table among them'
				   ELSE 'runs programs on the server as its operating system user (COPY ... PROGRAM), who reads and writes every data file'
			   END)
	  FROM engineers e
	  JOIN closure c ON c.member OPERATOR(pg_catalog.=) e.oid
	  JOIN pg_catalog.pg_roles x ON x.oid OPERATOR(pg_catalog.=) c.role
	 WHERE x.rolname IN ('pg_read_server_files', 'pg_write_server_files',
						 'pg_execute_server_program')
	UNION ALL
	-- functions of pg_catalog that read, write or list the server's files,
	-- granted beyond PostgreSQL's default privileges to engineers (or PUBLIC)
	SELECT 'server_file_access', fe.fn::pg_catalog.regprocedure::pg_catalog.text,
		   pg_catalog.format('Engineers can execute %s (granted to %s; by default only superusers%s can): it %s. Revoke EXECUTE on it from %s.',
			   fe.fn::pg_catalog.regprocedure, fe.grantees,
			   CASE WHEN p.proname OPERATOR(pg_catalog.~~) 'pg\_ls\_%' AND p.proname OPERATOR(pg_catalog.<>) 'pg_ls_dir'
					THEN ' and pg_monitor' ELSE '' END,
			   CASE WHEN p.proname IN ('pg_read_file', 'pg_read_binary_file', 'pg_file_read', 'lo_import')
						THEN 'reads the server''s files, the data files of every table among them: every tenant''s rows, past lockbox and unaudited'
					WHEN p.proname IN ('lo_export', 'pg_file_write', 'pg_file_rename', 'pg_file_unlink', 'pg_file_sync')
						THEN 'writes the server''s files, the data files of every table among them: every tenant''s rows, past lockbox and unaudited'
					ELSE 'shows the server''s files and their sizes, the data files of every table among them: how much each table holds, and when it changes, past lockbox' END,
			   fe.grantees)
	  FROM fn_engineer fe
	  JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) fe.fn
	 WHERE p.proname IN ('pg_read_file', 'pg_read_binary_file', 'pg_stat_file',
						 'pg_ls_dir', 'pg_ls_logdir', 'pg_ls_waldir', 'pg_ls_tmpdir',
						 'pg_ls_archive_statusdir', 'pg_ls_logicalsnapdir',
						 'pg_ls_logicalmapdir', 'pg_ls_replslotdir',
						 'lo_import', 'lo_export',
						 'pg_file_read', 'pg_file_write', 'pg_file_rename',
						 'pg_file_unlink', 'pg_file_sync', 'pg_logdir_ls')
	UNION ALL
	-- any other function of pg_catalog that PostgreSQL lets only superusers
	-- (and predefined roles) execute, granted since to engineers (or PUBLIC)
	SELECT 'superuser_function', fe.fn::pg_catalog.regprocedure::pg_catalog.text,
		   pg_catalog.format('Engineers can execute %s (granted to %s), which by default only superusers and the predefined roles it is granted to can: what it does, it does past lockbox. Revoke EXECUTE on it from %s.',
			   fe.fn::pg_catalog.regprocedure, fe.grantees, fe.grantees)
	  FROM fn_engineer fe
	  JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) fe.fn
	 WHERE p.proname NOT IN ('pg_read_file', 'pg_read_binary_file', 'pg_stat_file',
							 'pg_ls_dir', 'pg_ls_logdir', 'pg_ls_waldir', 'pg_ls_tmpdir',
							 'pg_ls_archive_statusdir', 'pg_ls_logicalsnapdir',
							 'pg_ls_logicalmapdir', 'pg_ls_replslotdir',
							 'lo_import', 'lo_export',
							 'pg_file_read', 'pg_file_write', 'pg_file_rename',
							 'pg_file_unlink', 'pg_file_sync', 'pg_logdir_ls')
	UNION ALL
	-- engineers with REPLICATION, or who can act as a role with it: logical
	-- decoding and base backups read every table's rows, past lockbox
	SELECT 'engineer_replication', pg_catalog.pg_get_userbyid(e.oid)::pg_catalog.text,
		   pg_catalog.format('Engineer %s REPLICATION: logical decoding (pg_create_logical_replication_slot, pg_logical_slot_get_changes) shows it every row written to every table, and a replication connection copies the data files (pg_basebackup): every tenant''s rows, past lockbox and unaudited. ALTER ROLE ... NOREPLICATION, or revoke the membership.',
			   COALESCE((SELECT pg_catalog.format('can act as role %I, which has', pg_catalog.min(x.rolname))
						   FROM closure c
						   JOIN pg_catalog.pg_roles x ON x.oid OPERATOR(pg_catalog.=) c.role
						  WHERE c.member OPERATOR(pg_catalog.=) e.oid AND x.rolreplication
						 HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0
							AND NOT (SELECT r.rolreplication FROM pg_catalog.pg_roles r
									  WHERE r.oid OPERATOR(pg_catalog.=) e.oid)),
						'has'))
	  FROM engineers e
	 WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
					WHERE r.oid OPERATOR(pg_catalog.=) e.oid AND r.rolreplication)
		OR EXISTS (SELECT 1 FROM closure c
					 JOIN pg_catalog.pg_roles x ON x.oid OPERATOR(pg_catalog.=) c.role
					WHERE c.member OPERATOR(pg_catalog.=) e.oid AND x.rolreplication)
	UNION ALL
	-- engineers that read every session's statistics: pg_stat_activity's
	-- query texts (with their literals: tenants' data, in statements of the
	-- application and of other engineers), pg_stat_statements' texts of
	-- every role; and pg_monitor, a member of it
	SELECT 'engineer_reads_stats', pg_catalog.pg_get_userbyid(e.oid)::pg_catalog.text,
		   pg_catalog.format('Engineer can act as role pg_read_all_stats%s: pg_stat_activity and pg_stat_statements show it the statements of every session, the application''s and other engineers'' with their literals (tenants'' rows among them), past lockbox and unaudited. Revoke the membership.',
			   CASE WHEN EXISTS (SELECT 1 FROM closure m
								  JOIN pg_catalog.pg_roles x ON x.oid OPERATOR(pg_catalog.=) m.role
								 WHERE m.member OPERATOR(pg_catalog.=) e.oid
								   AND x.rolname OPERATOR(pg_catalog.=) 'pg_monitor')
					THEN ' (through pg_monitor)' ELSE '' END)
	  FROM engineers e
	  JOIN closure c ON c.member OPERATOR(pg_catalog.=) e.oid
	  JOIN pg_catalog.pg_roles x ON x.oid OPERATOR(pg_catalog.=) c.role
	 WHERE x.rolname OPERATOR(pg_catalog.=) 'pg_read_all_stats'
	UNION ALL
	-- a table engineers may write whose foreign keys' referential actions
	-- reach protected rows: one path (the shortest) per table written and
	-- protected relation reached, as the statements' check walks them
	-- (lockbox.cascade_reach)
	SELECT 'cascade_into_protected',
		   pg_catalog.format('%s to %s', fs.rel::pg_catalog.regclass, cr.reached),
		   pg_catalog.format('Engineers can %s %s, and referential actions carry it to %s: %s. The actions run as each referencing table''s owner, outside the lockbox policies: an engineer changes any tenant''s protected rows, with no request. Revoke %s on %s from engineers, or make the foreign keys NO ACTION or RESTRICT.',
			   fs.verb, fs.rel::pg_catalog.regclass, pr.descr, cr.steps,
			   CASE fs.verb WHEN 'update' THEN 'UPDATE' ELSE 'DELETE' END,
			   fs.rel::pg_catalog.regclass)
	  FROM fk_start fs
	 CROSS JOIN LATERAL lockbox.cascade_reach(fs.rel::pg_catalog.regclass,
			   fs.verb OPERATOR(pg_catalog.=) 'delete from', fs.cols) cr
	  JOIN prot_rel pr ON pr.rel OPERATOR(pg_catalog.=) cr.reached AND pr.how IN (0, 1, 2)
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
			   ('cross_tenant_fk'), ('publication_lockbox_tables'),
			   ('caller_schema'), ('server_file_access'), ('superuser_function'),
			   ('cascade_into_protected'), ('engineer_reads_stats'),
			   ('engineer_replication')) AS c(check_name)
 WHERE NOT EXISTS (SELECT 1 FROM findings f
					WHERE f.check_name OPERATOR(pg_catalog.=) c.check_name);

COMMENT ON VIEW lockbox.posture IS
	'Misconfigurations that would let someone around lockbox: one row per finding (ok false, naming the object), or one ok row per check that found nothing.';

-- History: an auditor's (a reviewer's) statements of the last hour, in
-- proportion to the rows it returns (README "History and retention").
--
-- Until 1.4 every branch of lockbox.access_log was joined to its statement
-- (lockbox.audit_statement) above the union, where the planner knows nothing
-- of how many statements the rows name: for the hour's 2,400 rows of a
-- reviewer or auditor it joined them by hash and then sorted them, wide, by
-- time, and each row's last_at was computed in numeric (int8 to numeric,
-- divided, numeric to float8 through its text).  From 1.5:
--   - the branch of reviewers and auditors joins its rows to their statements
--     itself, under the union: read in time order (an ordered subquery, so
--     that the test of the caller, which holds for every row or none, gates
--     the scan and not the join), then looked up by a nested loop, which the
--     planner caches per statement (Memoize) from the statistics of
--     lockbox.audit_log (ANALYZE lockbox.audit_log: autovacuum analyzes its
--     partitions, not the partitioned table): no sort.  The other branches
--     are joined above their own union, as before (a LIMIT looks up only the
--     statements of the rows it returns);
--   - each branch computes the view's columns itself;
--   - last_at is at plus last_at_usec microseconds, multiplied as an
--     interval (the same value for any span under 2^51 microseconds, some
--     71 years).
------------------------------------------------------------------------------
DO $views$
DECLARE
	slots CONSTANT integer := 4;
	-- the columns of an audit row "a" each branch passes up (as in 1.4)
	access CONSTANT text := $c$a.at, a.actor, a.request_id, a.tenant, a.event, a.detail,
		   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
		   a.query_length, a.query_sha256, a.session_user_name, a.pid, a.seq$c$;
	is_access CONSTANT text := $c$a.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])$c$;
	not_me CONSTANT text := $c$a.actor OPERATOR(pg_catalog.<>) pg_catalog."current_user"()::pg_catalog.text COLLATE pg_catalog."default"$c$;
	access_row CONSTANT text := $c$SELECT a.request_id, a.event, a.detail, a.statement_id,
				   a.statements, a.last_at_usec, a.reason, a.node, a.query_length,
				   a.query_sha256, a.session_user_name, a.pid
			  FROM lockbox.audit_log a
			 WHERE a.at OPERATOR(pg_catalog.=) k.at
			   AND a.seq OPERATOR(pg_catalog.=) k.seq OFFSET 0$c$;
	-- a row's last statement: at plus last_at_usec microseconds
	last_at CONSTANT text := $c$(interval '1 microsecond' OPERATOR(pg_catalog.*)
		   COALESCE(a.last_at_usec,
					(a.detail OPERATOR(pg_catalog.->>) 'last_at_usec')::pg_catalog.int8, 0)::pg_catalog.float8)$c$;
	final text;
	access_slots text;
BEGIN
	-- the view's columns, of audit row "a" and its statement "s"
	final := format($c$a.at, a.actor::pg_catalog.name AS engineer, a.request_id, a.tenant,
	   COALESCE(s.relation, a.detail OPERATOR(pg_catalog.->>) 'relation') AS relation,
	   COALESCE(s.command, a.detail OPERATOR(pg_catalog.->>) 'command') AS command,
	   COALESCE(s.query, a.detail OPERATOR(pg_catalog.->>) 'query') AS query,
	   COALESCE(a.statements::pg_catalog.int8,
				(a.detail OPERATOR(pg_catalog.->>) 'statements')::pg_catalog.int8, 1) AS statements,
	   a.at OPERATOR(pg_catalog.+) %1$s AS last_at,
	   CASE WHEN a.event OPERATOR(pg_catalog.=) 'refused' THEN 'refused'
			ELSE 'allowed' END AS outcome,
	   COALESCE(a.reason, a.detail OPERATOR(pg_catalog.->>) 'reason') AS reason,
	   COALESCE(a.node, a.detail OPERATOR(pg_catalog.->>) 'node', 'primary') AS node,
	   COALESCE(a.query_length,
				(a.detail OPERATOR(pg_catalog.->>) 'query_length')::pg_catalog.int8,
				pg_catalog.octet_length(COALESCE(s.query,
					a.detail OPERATOR(pg_catalog.->>) 'query'))) AS query_length,
	   COALESCE(a.query_sha256, a.detail OPERATOR(pg_catalog.->>) 'query_sha256') AS query_sha256,
	   COALESCE(a.session_user_name, a.actor)::pg_catalog.name AS session_user_name,
	   COALESCE(a.pid, (a.detail OPERATOR(pg_catalog.->>) 'pid')::pg_catalog.int4) AS pid,
	   a.seq$c$, last_at);

	SELECT string_agg(format($b$
		UNION ALL
		-- approvers: the statements on their tenant %1$s (by the tenant's newest
		-- statement, oldest first), read index only in time order; the rest of
		-- each row looked up by its time and seq (one partition's primary key)
		(SELECT k.at, k.actor, a.request_id, k.tenant, a.event, a.detail,
			   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
			   a.query_length, a.query_sha256, a.session_user_name, a.pid, k.seq
		  FROM lockbox.audit_log k,
			   LATERAL (%2$s) a
		 WHERE NOT (SELECT lockbox.sees_all())
		   AND k.actor OPERATOR(pg_catalog.<>) pg_catalog."current_user"()::pg_catalog.text COLLATE pg_catalog."default"
		   AND k.tenant OPERATOR(pg_catalog.=) (SELECT m.tenant FROM mine m
					 WHERE m.n OPERATOR(pg_catalog.=) %1$s)
		   AND k.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
		 ORDER BY k.at DESC)$b$, i, access_row), '' ORDER BY i)
	  INTO access_slots FROM generate_series(1, slots) AS i;

	EXECUTE format($v$
CREATE OR REPLACE VIEW lockbox.access_log WITH (security_barrier) AS
WITH mine AS MATERIALIZED (
	-- an approver's tenants: beyond %4$s of them, those with the oldest newest
	-- statement first, those without any before them (a tenant's newest
	-- statement: in the last week's partition, else in each month's)
	SELECT t.tenant, t.newest,
		   pg_catalog.row_number() OVER (ORDER BY t.newest NULLS FIRST, t.tenant) AS n
	  FROM (SELECT m.tenant,
				   CASE WHEN m.tenants OPERATOR(pg_catalog.>) %4$s
						THEN COALESCE(
							(SELECT pg_catalog.max(q.at) FROM lockbox.audit_log q
							  WHERE q.tenant OPERATOR(pg_catalog.=) m.tenant
								AND q.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
								AND q.at OPERATOR(pg_catalog.>=) (pg_catalog.statement_timestamp()
									OPERATOR(pg_catalog.-) interval '7 days')),
							(SELECT pg_catalog.max(q.at) FROM lockbox.audit_log q
							  WHERE q.tenant OPERATOR(pg_catalog.=) m.tenant
								AND q.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[]))) END AS newest
			  FROM (SELECT ap.tenant, pg_catalog.count(*) OVER () AS tenants
					  FROM (SELECT DISTINCT ap.tenant FROM lockbox.approver ap
							 WHERE lockbox.approves(ap.approver)) AS ap) AS m) AS t)
SELECT a.*
  FROM (
	-- reviewers and auditors: every row, joined to its statement here
	(SELECT %8$s
	  FROM (SELECT %1$s
			  FROM lockbox.audit_log a
			 WHERE (SELECT lockbox.sees_all())
			   AND %2$s
			 ORDER BY a.at DESC) AS a
	  LEFT JOIN lockbox.audit_statement s ON s.id OPERATOR(pg_catalog.=) a.statement_id
	 ORDER BY a.at DESC)
	UNION ALL
	(SELECT %8$s
	  FROM (
		-- engineers: their own, read index only in time order; the rest of
		-- each row looked up by its time and seq
		(SELECT k.at, k.actor, a.request_id, k.tenant, a.event, a.detail,
			   a.statement_id, a.statements, a.last_at_usec, a.reason, a.node,
			   a.query_length, a.query_sha256, a.session_user_name, a.pid, k.seq
		  FROM lockbox.audit_log k,
			   LATERAL (%6$s) a
		 WHERE NOT (SELECT lockbox.sees_all())
		   AND k.actor OPERATOR(pg_catalog.=) pg_catalog."current_user"()::pg_catalog.text COLLATE pg_catalog."default"
		   AND k.event OPERATOR(pg_catalog.=) ANY ('{access,refused}'::pg_catalog.text[])
		 ORDER BY k.at DESC)%3$s
		UNION ALL
		-- approvers: the statements on their other tenants (the most recently
		-- active), read in time order through every tenant's: a test that no
		-- index serves, which the planner takes to keep nearly every row
		(SELECT %1$s
		  FROM lockbox.audit_log a
		 WHERE NOT (SELECT lockbox.sees_all())
		   AND EXISTS (SELECT 1 FROM mine m WHERE m.n OPERATOR(pg_catalog.>) %4$s)
		   AND %5$s
		   AND pg_catalog.array_position(ARRAY(SELECT m.tenant FROM mine m
					 WHERE m.n OPERATOR(pg_catalog.>) %4$s), a.tenant) IS NOT NULL
		   -- (from their newest statement down: the newer ones are others')
		   AND a.at OPERATOR(pg_catalog.<=) (SELECT pg_catalog.max(m.newest) FROM mine m
					 WHERE m.n OPERATOR(pg_catalog.>) %4$s)
		   AND %2$s
		 ORDER BY a.at DESC)
	  ) AS a
	  -- (joined above the branches, read newest first: a LIMIT looks up only
	  -- the statements of the rows it returns)
	  LEFT JOIN lockbox.audit_statement s ON s.id OPERATOR(pg_catalog.=) a.statement_id
	 ORDER BY a.at DESC)
) AS a
 ORDER BY a.at DESC$v$, access, is_access, access_slots, slots, not_me, access_row, last_at, final);
END
$views$;
