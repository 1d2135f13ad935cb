/* lockbox--1.5--1.6.sql: upgrade lockbox from 1.5 to 1.6 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.6'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.4 to 1.5, then this one): a fresh 1.6 and an upgraded
-- 1.0 to 1.5 are the same by construction.

------------------------------------------------------------------------------
-- Comments on every object of the extension (1.6): \dt+, \ds+, \dn+ and
-- \dy+ explained lockbox's views and functions, and not its schema, its
-- tables, its sequences or its event trigger.  Those a DBA meets in psql,
-- in pg_dump's output and in lockbox.posture now say what they hold and who
-- writes them (test/comments.sql checks every one).
------------------------------------------------------------------------------
COMMENT ON SCHEMA lockbox IS
	'Customer Lockbox: requests, decisions, notifications and the hash-linked audit. Written only through lockbox''s functions; read through its views (README "Reference").';
COMMENT ON TABLE lockbox.tenant IS
	'Tenants under lockbox: whether their lockbox is on and how many approvals a request needs (lockbox_add_tenant, lockbox_set_enabled; view lockbox.tenants).';
COMMENT ON TABLE lockbox.approver IS
	'The roles that approve for each tenant (lockbox_add_approver, lockbox_remove_approver).';
COMMENT ON TABLE lockbox.protected_table IS
	'Tables under lockbox, with their tenant column or the one tenant they belong to, and what lockbox_unprotect restores (view lockbox.protected_tables).';
COMMENT ON TABLE lockbox.request IS
	'Access requests and their lifecycle, never deleted (lockbox_request and the transitions; view lockbox.requests).';
COMMENT ON SEQUENCE lockbox.request_id_seq IS
	'Request ids.';
COMMENT ON TABLE lockbox.decision IS
	'Reviewers'' and approvers'' votes on requests, one per role and per session user.';
COMMENT ON TABLE lockbox.notification IS
	'Messages to requesters, reviewers and approvers, and their delivery (view lockbox.notifications; lockbox_claim_notifications).';
COMMENT ON SEQUENCE lockbox.notification_id_seq IS
	'Notification ids.';
COMMENT ON TABLE lockbox.notify_outbox IS
	'NOTIFY lockbox messages the database''s lockbox worker has yet to send.';
COMMENT ON SEQUENCE lockbox.audit_seq IS
	'Audit row numbers (lockbox.audit_log.seq).';
COMMENT ON TABLE lockbox.revocation IS
	'Revocations recorded while another session held the request: the access ended at once, the worker moves the request to revoked.';
COMMENT ON TABLE lockbox.session_end IS
	'Engineers whose access ended and whose sessions the database''s lockbox worker is to end (lockbox.terminate_sessions).';
COMMENT ON SEQUENCE lockbox.session_end_id_seq IS
	'Ids of lockbox.session_end.';
COMMENT ON TABLE lockbox.extension IS
	'Extensions of approved requests'' access windows (lockbox_extend; view lockbox.extensions).';
COMMENT ON SEQUENCE lockbox.extension_id_seq IS
	'Extension ids.';
COMMENT ON TABLE lockbox.extension_decision IS
	'Approvers'' votes on extensions, one per role and per session user.';
COMMENT ON TABLE lockbox.contact IS
	'E-mail addresses of roles, for lockbox-notify (lockbox_set_contact).';
COMMENT ON TABLE lockbox.webhook IS
	'Webhook URLs of tenants, for lockbox-notify (lockbox_set_webhook).';
COMMENT ON SEQUENCE lockbox.audit_statement_id_seq IS
	'Ids of lockbox.audit_statement.';
COMMENT ON EVENT TRIGGER lockbox_sql_drop IS
	'A protected table that is dropped leaves lockbox.protected_table, audited (lockbox.on_sql_drop).';
