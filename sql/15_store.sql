--
-- 15_store: the lifecycle functions write lockbox's rows without the planner
-- (src/store.c), yet as an INSERT or UPDATE would:
--
--   1. CHECK constraints hold, one added after this backend wrote rows too;
--   2. an index added later gets the rows written after it (a partial one
--      only those its predicate takes);
--   3. triggers a DBA puts on lockbox's tables fire: row and statement,
--      before and after, in the order an INSERT or UPDATE fires them;
--   4. a request's row is updated in place by the transitions before the
--      last, and lockbox.open_request follows it;
--   5. an update that is not HOT gets its entries in every index, though a
--      store opens a table's indexes only for rows that need them; and the
--      version written over is the newest, though a transition reads the
--      request it locked by the row's place;
--   6. a transition's detail is the jsonb jsonb_in would make of its text.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_st_eng, regress_st_rev, regress_st_app;
RESET client_min_messages;
CREATE ROLE regress_st_eng IN ROLE lockbox_engineer;
CREATE ROLE regress_st_rev IN ROLE lockbox_reviewer;
CREATE ROLE regress_st_app IN ROLE lockbox_approver;
SELECT lockbox_add_tenant('regress_st');
SELECT lockbox_add_approver('regress_st', 'regress_st_app');
CREATE TABLE regress_st_data (tenant text NOT NULL, v int);
SELECT lockbox_protect('regress_st_data', tenant_column => 'tenant');

-- (earlier files tamper with the audit on purpose: this file's rows are
-- verified from an anchor taken now)
SELECT max(seq) AS anchor_seq FROM lockbox.audit_log \gset
SELECT encode(hash, 'hex') AS anchor_hash FROM lockbox.audit_log WHERE seq = :anchor_seq \gset

-- the backend writes rows, so that its tables' expressions are built
SET ROLE regress_st_eng;
SELECT lockbox_request('regress_st', 'the first request of this file') AS r1 \gset
SELECT lockbox_cancel(:r1);
RESET ROLE;

-- 1. a CHECK constraint added now applies to the next write
ALTER TABLE lockbox.request ADD CONSTRAINT regress_st_check CHECK (reason !~ 'forbidden');
SET ROLE regress_st_eng;
CALL regress_try($$SELECT lockbox_request('regress_st', 'a forbidden word in this reason')$$,
				 message_matches => '^new row for relation "request" violates check constraint "regress_st_check"$');
RESET ROLE;
ALTER TABLE lockbox.request DROP CONSTRAINT regress_st_check;
-- nothing of the refused request was written
SELECT count(*) AS requests_with_the_word FROM lockbox.request WHERE reason ~ 'forbidden';

-- ... a CHECK on the whole row, through a function: built afresh for each
-- write (the expression keeps the row type it first read in its query)
CREATE FUNCTION public.regress_st_row_ok(r lockbox.request) RETURNS boolean
	LANGUAGE plpgsql IMMUTABLE AS $fn$ BEGIN RETURN r.reason IS NOT NULL; END $fn$;
ALTER TABLE lockbox.request ADD CONSTRAINT regress_st_row CHECK (public.regress_st_row_ok(request));
SET ROLE regress_st_eng;
SELECT lockbox_request('regress_st', 'a request checked whole, one') AS w1 \gset
SELECT lockbox_request('regress_st', 'a request checked whole, two') AS w2 \gset
SELECT lockbox_cancel(:w1), lockbox_cancel(:w2);
RESET ROLE;
ALTER TABLE lockbox.request DROP CONSTRAINT regress_st_row;
DROP FUNCTION public.regress_st_row_ok(lockbox.request);
-- ... a CHECK through an SQL function (inlined when planned): replacing the
-- function changes what the next write is checked against
CREATE FUNCTION public.regress_st_reason_ok(t text) RETURNS boolean
	LANGUAGE sql IMMUTABLE AS $fn$ SELECT true $fn$;
ALTER TABLE lockbox.request ADD CONSTRAINT regress_st_fn CHECK (public.regress_st_reason_ok(reason));
SET ROLE regress_st_eng;
SELECT lockbox_cancel(lockbox_request('regress_st', 'a forbidden reason, allowed for now'));
RESET ROLE;
CREATE OR REPLACE FUNCTION public.regress_st_reason_ok(t text) RETURNS boolean
	LANGUAGE sql IMMUTABLE AS $fn$ SELECT t !~ 'forbidden' $fn$;
SET ROLE regress_st_eng;
CALL regress_try($$SELECT lockbox_request('regress_st', 'a forbidden reason, refused now')$$,
				 message_matches => '^new row for relation "request" violates check constraint "regress_st_fn"$');
RESET ROLE;
ALTER TABLE lockbox.request DROP CONSTRAINT regress_st_fn;
DROP FUNCTION public.regress_st_reason_ok(text);

-- 2. a partial index added now
CREATE INDEX regress_st_ended_idx ON lockbox.notification (id) WHERE event = 'access_ended';
CREATE INDEX regress_st_state_idx ON lockbox.request (state, id);

-- 3. triggers
-- (the rows the database's lockbox worker writes meanwhile, with its own
-- statements, are left out: pid)
CREATE TABLE regress_st_seen (n serial, tbl text, op text, level text, time text, what text,
							  pid int DEFAULT pg_backend_pid());
CREATE FUNCTION regress_st_note() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	INSERT INTO public.regress_st_seen (tbl, op, level, time, what)
	VALUES (TG_TABLE_NAME, TG_OP, TG_LEVEL, TG_WHEN,
			CASE WHEN TG_LEVEL = 'ROW' THEN
				 coalesce(to_jsonb(NEW) ->> 'state', to_jsonb(NEW) ->> 'event') END);
	RETURN NEW;
END
$fn$;
CREATE TRIGGER regress_st_bs BEFORE INSERT OR UPDATE ON lockbox.request
	FOR EACH STATEMENT EXECUTE FUNCTION regress_st_note();
CREATE TRIGGER regress_st_br BEFORE INSERT OR UPDATE ON lockbox.request
	FOR EACH ROW EXECUTE FUNCTION regress_st_note();
CREATE TRIGGER regress_st_ar AFTER INSERT ON lockbox.notification
	FOR EACH ROW EXECUTE FUNCTION regress_st_note();
CREATE TRIGGER regress_st_as AFTER INSERT ON lockbox.audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION regress_st_note();

SET ROLE regress_st_eng;
SELECT lockbox_request('regress_st', 'the second request of this file') AS r2 \gset
SET ROLE regress_st_rev;
SELECT lockbox_approve(:r2);
SET ROLE regress_st_app;
SELECT lockbox_approve(:r2);
SET ROLE regress_st_eng;
SELECT lockbox_close(:r2);
RESET ROLE;
SELECT tbl, op, level, time, what FROM regress_st_seen WHERE pid = pg_backend_pid() ORDER BY n;

-- ... a statement trigger with a transition table (a DBA shipping new audit
-- rows elsewhere), and a rule: the tables that have them are written with
-- SQL statements, so both see every row
TRUNCATE regress_st_seen;
CREATE FUNCTION regress_st_ship() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	INSERT INTO public.regress_st_seen (tbl, op, level, time, what)
	SELECT TG_TABLE_NAME, TG_OP, 'NEW TABLE', TG_WHEN, n.event FROM new_rows n;
	RETURN NULL;
END
$fn$;
CREATE TRIGGER regress_st_ship AFTER INSERT ON lockbox.audit_log
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION regress_st_ship();
CREATE RULE regress_st_rule AS ON UPDATE TO lockbox.request
	DO ALSO INSERT INTO public.regress_st_seen (tbl, op, level, time, what)
	VALUES ('request', 'UPDATE', 'RULE', 'ALSO', NEW.state);
SET ROLE regress_st_eng;
SELECT lockbox_request('regress_st', 'the third request of this file') AS r3 \gset
SET ROLE regress_st_rev;
SELECT lockbox_approve(:r3);
SET ROLE regress_st_app;
-- (an approver may always revoke: the audit row it writes is shipped too)
SELECT lockbox_approve(:r3), lockbox_revoke(:r3, 'the customer ends it at once');
RESET ROLE;
SELECT tbl, op, level, time, what FROM regress_st_seen WHERE pid = pg_backend_pid() ORDER BY n;
DROP RULE regress_st_rule ON lockbox.request;
DROP TRIGGER regress_st_ship ON lockbox.audit_log;
DROP FUNCTION regress_st_ship();

DROP TRIGGER regress_st_bs ON lockbox.request;
DROP TRIGGER regress_st_br ON lockbox.request;
DROP TRIGGER regress_st_ar ON lockbox.notification;
DROP TRIGGER regress_st_as ON lockbox.audit_log;

-- the indexes hold what a scan of the table finds
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) AS ended_by_index FROM lockbox.notification
 WHERE event = 'access_ended' AND request_id = :r2;
SELECT state FROM lockbox.request WHERE state = 'closed' AND id = :r2;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT count(*) AS ended_by_scan FROM lockbox.notification
 WHERE event = 'access_ended' AND request_id = :r2;
DROP INDEX lockbox.regress_st_ended_idx;
DROP INDEX lockbox.regress_st_state_idx;

-- 4. a request's row is updated in place (HOT) by every transition but the
-- one that settles it: no index of lockbox.request names a column those
-- change (not in a key, an INCLUDE, an expression or a predicate)
SELECT c.relname AS index, a.attname AS names
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0
 WHERE i.indrelid = 'lockbox.request'::regclass
   AND a.attname IN ('state', 'deadline', 'reviewer', 'reviewed_at', 'approved_at',
					 'access_ends_at', 'closed_at', 'close_reason')
   AND (a.attnum = ANY (i.indkey::int2[])
		OR pg_get_expr(i.indpred, i.indrelid) ~ ('\m' || a.attname || '\M')
		OR pg_get_expr(i.indexprs, i.indrelid) ~ ('\m' || a.attname || '\M'))
 ORDER BY 1, 2;
-- a lifecycle: four updates (one an operator's), all but the last in place;
-- lockbox.open_request holds the request while it is open, with its next
-- deadline, and follows the operator's UPDATE too.  (Statistics counted
-- from a flush before to a flush after.)
SELECT pg_stat_force_next_flush();
SELECT n_tup_upd AS upd0, n_tup_hot_upd AS hot0 FROM pg_stat_user_tables
 WHERE relid = 'lockbox.request'::regclass \gset
SET ROLE regress_st_eng;
SELECT lockbox_request('regress_st', 'updated in place') AS r4 \gset
RESET ROLE;
SELECT o.due = r.deadline AS due_is_review_deadline, r.final_state
  FROM lockbox.open_request o JOIN lockbox.request r USING (id) WHERE id = :r4;
SET ROLE regress_st_rev;
SELECT lockbox_approve(:r4);
RESET ROLE;
SELECT o.due = r.deadline AS due_is_approval_deadline
  FROM lockbox.open_request o JOIN lockbox.request r USING (id) WHERE id = :r4;
UPDATE lockbox.request SET deadline = deadline - interval '1 minute' WHERE id = :r4;
SELECT o.due = r.deadline AS due_follows_update
  FROM lockbox.open_request o JOIN lockbox.request r USING (id) WHERE id = :r4;
SET ROLE regress_st_app;
SELECT lockbox_approve(:r4);
RESET ROLE;
SELECT o.due = r.access_ends_at AS due_is_window_end, r.final_state
  FROM lockbox.open_request o JOIN lockbox.request r USING (id) WHERE id = :r4;
SET ROLE regress_st_eng;
SELECT lockbox_close(:r4);
RESET ROLE;
SELECT count(*) AS still_open FROM lockbox.open_request WHERE id = :r4;
SELECT final_state FROM lockbox.request WHERE id = :r4;
SELECT pg_stat_force_next_flush();
SELECT n_tup_upd - :upd0 AS updates, n_tup_hot_upd - :hot0 AS in_place
  FROM pg_stat_user_tables WHERE relid = 'lockbox.request'::regclass;
-- every open request is in lockbox.open_request, with its next deadline
SELECT count(*) AS mismatched
  FROM lockbox.request r FULL JOIN lockbox.open_request o USING (id)
 WHERE (r.final_state IS NULL) IS DISTINCT FROM (o.id IS NOT NULL)
	OR (o.id IS NOT NULL AND
		o.due IS DISTINCT FROM CASE r.state WHEN 'approved' THEN r.access_ends_at
											ELSE r.deadline END);

-- 5. an update that is not HOT: with an index on state, a review changes
-- an indexed column, so every index needs an entry for the row's new
-- version.  amcheck finds every row version in every index.  (The request's
-- filing builds this backend's trees for the new index list; its review
-- then opens the indexes for the update alone.)
CREATE EXTENSION amcheck;
CREATE INDEX regress_st_state5_idx ON lockbox.request (state);
SET ROLE regress_st_eng;
SELECT lockbox_request('regress_st', 'an update that moves the row') AS r5 \gset
RESET ROLE;
SELECT pg_stat_force_next_flush();
SELECT n_tup_upd AS upd0, n_tup_hot_upd AS hot0 FROM pg_stat_user_tables
 WHERE relid = 'lockbox.request'::regclass \gset
SET ROLE regress_st_rev;
SELECT lockbox_approve(:r5);
RESET ROLE;
SELECT pg_stat_force_next_flush();
SELECT n_tup_upd - :upd0 AS updates, n_tup_hot_upd - :hot0 AS in_place
  FROM pg_stat_user_tables WHERE relid = 'lockbox.request'::regclass;
SELECT c.relname AS index, bt_index_check(c.oid, heapallindexed => true)::text = '' AS checked
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid IN ('lockbox.request'::regclass, 'lockbox.open_request'::regclass)
 ORDER BY 1;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT id = :r5 AS found_by_state FROM lockbox.request WHERE state = 'pending_approval' AND id = :r5;
SELECT count(*) AS open_by_index FROM lockbox.request WHERE final_state IS NULL AND id = :r5;
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX lockbox.regress_st_state5_idx;
-- ... and a transition writes the request's newest version: here a
-- trigger on lockbox.decision changes the row after the approval locked
-- and read it, before the approval writes it
CREATE FUNCTION regress_st_touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	UPDATE lockbox.request SET reason = reason || ' (noted)' WHERE id = NEW.request_id;
	RETURN NULL;
END $fn$;
CREATE TRIGGER regress_st_touch AFTER INSERT ON lockbox.decision
	FOR EACH ROW EXECUTE FUNCTION regress_st_touch();
SET ROLE regress_st_app;
SELECT lockbox_approve(:r5);
RESET ROLE;
SELECT state, reason FROM lockbox.request WHERE id = :r5;
DROP TRIGGER regress_st_touch ON lockbox.decision;
DROP FUNCTION regress_st_touch();
SET ROLE regress_st_eng;
SELECT lockbox_close(:r5);
RESET ROLE;
DROP EXTENSION amcheck;

-- 6. a transition's detail keeps the text it was given, and is byte for
-- byte the jsonb its own text makes (the row's hash covers the bytes, and a
-- restored dump parses the text again): strings with quotes, backslashes,
-- control characters, non-ASCII letters and a "\u" written out; numbers;
-- null; the request's array of tables
SET ROLE regress_st_eng;
SELECT lockbox_request('regress_st',
	   E'quotes " and \\ back\\slash, tab\there, new\nline, bell \x07, caf' || chr(233) || E', a \\u0041 written out')
	   AS r6 \gset
RESET ROLE;
SET ROLE regress_st_rev;
SELECT lockbox_approve(:r6, E'fine: "\t" \x01\x1f ' || chr(233) || ' /\/');
RESET ROLE;
SET ROLE regress_st_app;
SELECT lockbox_deny(:r6, E'not now: \\ "x" \n and \r too');
RESET ROLE;
SELECT event,
	   detail->>'reason' = CASE event
		   WHEN 'request' THEN E'quotes " and \\ back\\slash, tab\there, new\nline, bell \x07, caf' || chr(233) || E', a \\u0041 written out'
		   ELSE E'not now: \\ "x" \n and \r too' END AS reason_kept,
	   detail->>'comment' = E'fine: "\t" \x01\x1f ' || chr(233) || ' /\/' AS comment_kept,
	   jsonb_typeof(detail->'tables') AS tables
  FROM lockbox.audit_log WHERE request_id = :r6 ORDER BY seq;
-- every lifecycle row of the database, this file's and the earlier files'
SELECT count(*) > 0 AS some_rows,
	   count(*) FILTER (WHERE lockbox.jsonb_bytes(detail)
						   <> lockbox.jsonb_bytes(detail::text::jsonb)) AS not_as_jsonb_in
  FROM lockbox.audit_log WHERE event NOT IN ('access', 'refused');

-- the audit verifies: every row since the anchor
SELECT ok, rows_checked = (SELECT count(*) FROM lockbox.audit_log WHERE seq >= :anchor_seq)
	   AS every_row FROM lockbox_verify_audit(:anchor_seq, :'anchor_hash');

DROP TABLE regress_st_seen;
DROP FUNCTION regress_st_note();
SELECT lockbox_unprotect('regress_st_data');
DROP TABLE regress_st_data;
SELECT lockbox_remove_tenant('regress_st');
DROP ROLE regress_st_eng, regress_st_rev, regress_st_app;
