CREATE EXTENSION lockbox;
SELECT * FROM lockbox.tenants;
