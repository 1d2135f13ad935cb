--
-- 00_setup: helpers the other pg_regress files use.
--
-- pg_regress runs the files in name order in one database, created afresh
-- with lockbox installed (--load-extension=lockbox).  This file must run
-- first; 99_cleanup drops what it creates.
--

-- Errors are shown as psql shows them, without the PL/pgSQL context lines of
-- the helper below.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- regress_try(statement): runs one statement and reports its outcome as a
-- NOTICE: "SQLSTATE: message", then its DETAIL and HINT when it has them, so
-- that every refusal documents its SQLSTATE.  A statement that succeeds says
-- "ok".  The statement runs in a subtransaction that the error rolls back.
-- Timestamps in a DETAIL (an expired stage names its deadline) are shown as
-- <timestamp>.  With message_matches => a regular expression, where the
-- message has parts that vary (an id, a span counted from today): the
-- SQLSTATE and "the message matches", or, when it does not, the message
-- itself (a refusal for another reason than the one meant shows).  With
-- show_message => false only the SQLSTATE is shown, whatever the message.
CREATE PROCEDURE regress_try(stmt text, show_message boolean DEFAULT true,
							 message_matches text DEFAULT NULL)
LANGUAGE plpgsql AS $proc$
DECLARE
	code	text;
	msg		text;
	det		text;
	hnt		text;
BEGIN
	EXECUTE stmt;
	RAISE NOTICE 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
	IF message_matches IS NOT NULL THEN
		IF msg ~ message_matches THEN
			RAISE NOTICE '%: the message matches', code;
		ELSE
			RAISE NOTICE '%: %', code, msg;
		END IF;
		RETURN;
	END IF;
	IF NOT show_message THEN
		RAISE NOTICE '%', code;
		RETURN;
	END IF;
	-- ISO (2026-01-02 03:04:05.123+00) and Postgres (Sat Jan 02 03:04:05.123 2026 PST) styles
	det := regexp_replace(det,
		'\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d(:\d\d)?)?',
		'<timestamp>', 'g');
	det := regexp_replace(det,
		'[A-Z][a-z]{2} [A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d(\.\d+)? \d{4}( [A-Z]+)?',
		'<timestamp>', 'g');
	IF det <> '' AND hnt <> '' THEN
		RAISE NOTICE '%: %', code, msg USING DETAIL = det, HINT = hnt;
	ELSIF det <> '' THEN
		RAISE NOTICE '%: %', code, msg USING DETAIL = det;
	ELSIF hnt <> '' THEN
		RAISE NOTICE '%: %', code, msg USING HINT = hnt;
	ELSE
		RAISE NOTICE '%: %', code, msg;
	END IF;
END
$proc$;

-- What regress_try shows, for a success and for each kind of refusal:
CALL regress_try('SELECT 1');
CALL regress_try('SELECT 1/0');
-- (the superuser running this file is no engineer lockbox could restrict)
CALL regress_try($$SELECT lockbox_request('acme', 'a reason long enough')$$);
CALL regress_try('SELECT 1/0', show_message => false);
CALL regress_try('SELECT 1/0', message_matches => '^division by \w+$');
CALL regress_try('SELECT 1/0', message_matches => '^permission denied');

-- regress_audit_guard(state): a superuser who edits the catalogs switches
-- the audit's append-only triggers off ('D') or back on ('A'), as the
-- tampering tests need (ALTER TABLE ... DISABLE TRIGGER on the audit's
-- tables is refused); touching the tables' pg_class rows makes every session
-- reread their triggers.
CREATE PROCEDURE regress_audit_guard(state "char")
LANGUAGE plpgsql AS $proc$
BEGIN
	UPDATE pg_catalog.pg_trigger SET tgenabled = state
	 WHERE tgfoid = 'lockbox.audit_log_append_only'::pg_catalog.regproc;
	UPDATE pg_catalog.pg_class SET relname = relname
	 WHERE oid IN (SELECT tgrelid FROM pg_catalog.pg_trigger
					WHERE tgfoid = 'lockbox.audit_log_append_only'::pg_catalog.regproc);
END
$proc$;
