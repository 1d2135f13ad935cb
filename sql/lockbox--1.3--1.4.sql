/* lockbox--1.3--1.4.sql: upgrade lockbox from 1.3 to 1.4 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.4'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, 1.1 to 1.2, 1.2 to 1.3, then this one): a fresh 1.4 and an
-- upgraded 1.0, 1.1, 1.2 or 1.3 are the same by construction.
