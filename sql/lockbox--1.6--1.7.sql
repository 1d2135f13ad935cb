/* lockbox--1.6--1.7.sql: upgrade lockbox from 1.6 to 1.7 */

\echo Use "ALTER EXTENSION lockbox UPDATE TO '1.7'" to load this file. \quit

-- CREATE EXTENSION lockbox installs 1.0 and runs the upgrade scripts in turn
-- (1.0 to 1.1, ..., 1.5 to 1.6, then this one): a fresh 1.7 and an upgraded
-- 1.0 to 1.6 are the same by construction.
