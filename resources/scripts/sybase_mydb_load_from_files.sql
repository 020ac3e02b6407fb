-- Refresh mydb_restore from the last full dump of mydb (both stripes).
-- The target must exist, as in ASE: the demo home makes it with
--     create database mydb_restore for load
-- It is overwritten, offline until the online below.
use master
go
load database mydb_restore
    from "mydb.full.stripe1.dmp"
    stripe on "mydb.full.stripe2.dmp"
go
online database mydb_restore
go
