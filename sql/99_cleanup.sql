--
-- 99_cleanup: every file dropped the roles it created (roles outlive the
-- regression database), and the helpers of 00_setup go.
--
SELECT rolname FROM pg_roles WHERE rolname LIKE 'regress\_%' ORDER BY 1;
DROP PROCEDURE regress_try(text, boolean, text);
DROP PROCEDURE regress_audit_guard("char");
