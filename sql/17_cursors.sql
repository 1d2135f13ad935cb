--
-- 17_cursors: a cursor does not carry an engineer's access past its end.
-- A cursor's rows are read at each FETCH, not when it is declared: every
-- fetch from a statement that reaches a protected table is checked against
-- the engineer's requests then, whatever runs it (FETCH, a PL/pgSQL FOR
-- loop or cursor, the protocol's Execute).  A cursor WITH HOLD would keep
-- its rows after the transaction, where no fetch is checked: refused.
--
-- Uses regress_try from 00_setup; its own roles, tenants and tables.
--
\set VERBOSITY default
\set SHOW_CONTEXT never

SET client_min_messages = warning;
DROP ROLE IF EXISTS regress_cur_erin, regress_cur_mia, regress_cur_ada;
RESET client_min_messages;

CREATE ROLE regress_cur_erin IN ROLE lockbox_engineer;
CREATE ROLE regress_cur_mia IN ROLE lockbox_reviewer;
CREATE ROLE regress_cur_ada IN ROLE lockbox_approver;
SELECT setval('lockbox.request_id_seq', 1700);
SELECT lockbox_add_tenant('cur_acme');
SELECT lockbox_add_tenant('cur_globex');
SELECT lockbox_add_approver('cur_acme', 'regress_cur_ada');

CREATE TABLE cur_orders (id int PRIMARY KEY, tenant text NOT NULL);
INSERT INTO cur_orders SELECT g, CASE WHEN g % 2 = 0 THEN 'cur_acme' ELSE 'cur_globex' END
  FROM generate_series(1, 100) g;
SELECT lockbox_protect('cur_orders', tenant_column => 'tenant');
CREATE TABLE cur_plain (id int);
INSERT INTO cur_plain SELECT generate_series(1, 3);
GRANT SELECT ON cur_plain TO lockbox_engineer;

-- read access to cur_acme, approved
CREATE FUNCTION cur_grant() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	id bigint;
BEGIN
	SET LOCAL SESSION AUTHORIZATION regress_cur_erin;
	id := lockbox_request('cur_acme', 'Orders of acme look wrong');
	SET LOCAL SESSION AUTHORIZATION regress_cur_mia;
	PERFORM lockbox_approve(id);
	SET LOCAL SESSION AUTHORIZATION regress_cur_ada;
	PERFORM lockbox_approve(id);
	RETURN id;
END
$$;

-- ---------------------------------------------------------------------
-- WITH HOLD: refused on protected tables, fine elsewhere.
-- ---------------------------------------------------------------------
SELECT cur_grant() AS req \gset
SET SESSION AUTHORIZATION regress_cur_erin;
BEGIN;
CALL regress_try('DECLARE c_hold CURSOR WITH HOLD FOR SELECT id FROM cur_orders ORDER BY id');
ROLLBACK;
BEGIN;
DECLARE c_plain CURSOR WITH HOLD FOR SELECT id FROM cur_plain ORDER BY id;
COMMIT;
FETCH ALL FROM c_plain;
CLOSE c_plain;
-- nor a loop over a query in a procedure that commits inside the loop:
-- the commit would keep the query's rows as a cursor WITH HOLD does
CREATE PROCEDURE pg_temp.cur_commit(commit_inside boolean) LANGUAGE plpgsql AS $$
DECLARE
	r record;
	n int := 0;
BEGIN
	FOR r IN SELECT id FROM public.cur_orders ORDER BY id LOOP
		n := n + 1;
		IF commit_inside AND n = 1 THEN
			COMMIT;
		END IF;
	END LOOP;
	RAISE NOTICE 'rows: %', n;
END
$$;
CALL pg_temp.cur_commit(false);
CALL pg_temp.cur_commit(true);
-- a cursor without HOLD works while access is open
BEGIN;
DECLARE c_open CURSOR FOR SELECT id, tenant FROM cur_orders ORDER BY id;
FETCH 2 FROM c_open;
FETCH 2 FROM c_open;
COMMIT;

-- ---------------------------------------------------------------------
-- The request closed while the cursor is open: the next fetch is refused.
-- ---------------------------------------------------------------------
BEGIN;
DECLARE c_closed CURSOR FOR SELECT id, tenant FROM cur_orders ORDER BY id;
FETCH 2 FROM c_closed;
SELECT lockbox_close(:req);
CALL regress_try('FETCH 2 FROM c_closed');
ROLLBACK;

-- also for PL/pgSQL, whose FOR loop fetches its rows in batches
CREATE FUNCTION pg_temp.cur_loop(req bigint) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	r record;
	n int := 0;
BEGIN
	FOR r IN SELECT id FROM public.cur_orders ORDER BY id LOOP
		n := n + 1;
		IF n = 1 THEN
			PERFORM lockbox_close(req);
		END IF;
	END LOOP;
	RETURN n;
END
$$;
CALL regress_try(format('SELECT pg_temp.cur_loop(%s)', :req));
-- (the refused statement was rolled back, the close with it)
SELECT state FROM lockbox.requests WHERE id = :req;
SELECT lockbox_close(:req);
RESET SESSION AUTHORIZATION;
SELECT cur_grant() AS req \gset
SET SESSION AUTHORIZATION regress_cur_erin;

-- and a cursor opened by PL/pgSQL and fetched afterwards
CREATE FUNCTION pg_temp.cur_open() RETURNS refcursor LANGUAGE plpgsql AS $$
DECLARE
	c refcursor := 'c_ref';
BEGIN
	OPEN c FOR SELECT id FROM public.cur_orders ORDER BY id;
	RETURN c;
END
$$;
BEGIN;
SELECT pg_temp.cur_open();
FETCH 1 FROM c_ref;
SELECT lockbox_close(:req);
CALL regress_try('FETCH 1 FROM c_ref');
ROLLBACK;
SELECT lockbox_close(:req);

-- ---------------------------------------------------------------------
-- The window elapses while the cursor is open.
-- ---------------------------------------------------------------------
SELECT lockbox_request('cur_acme', 'Orders of acme look wrong again',
		duration => '2 seconds') AS short_req \gset
SET SESSION AUTHORIZATION regress_cur_mia;
SELECT lockbox_approve(:short_req);
SET SESSION AUTHORIZATION regress_cur_ada;
SELECT lockbox_approve(:short_req);
SET SESSION AUTHORIZATION regress_cur_erin;
BEGIN;
DECLARE c_window CURSOR FOR SELECT id, tenant FROM cur_orders ORDER BY id;
FETCH 1 FROM c_window;
SELECT pg_sleep(2.5);
CALL regress_try('FETCH 1 FROM c_window');
ROLLBACK;
DROP FUNCTION pg_temp.cur_loop(bigint), pg_temp.cur_open();
DROP PROCEDURE pg_temp.cur_commit(boolean);
RESET SESSION AUTHORIZATION;

-- clean up
SELECT lockbox_unprotect('cur_orders');
DROP TABLE cur_orders, cur_plain;
DROP FUNCTION cur_grant();
SELECT lockbox_remove_approver('cur_acme', 'regress_cur_ada');
DROP ROLE regress_cur_erin, regress_cur_mia, regress_cur_ada;
