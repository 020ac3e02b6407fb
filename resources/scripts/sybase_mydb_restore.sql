-- Restore the latest full dump of mydb into mydb_restore.  A load names the
-- dump it wants: a backup object's name, or a prefix of it; SYBAR.mydb.D is
-- "the newest full (D) dump of mydb on SYBAR", and all four of its stripes
-- are read back in parallel.
use master
go
load database mydb_restore
    from "sybackup::SYBAR.mydb.D"
    stripe on "sybackup::SYBAR.mydb.D"
    stripe on "sybackup::SYBAR.mydb.D"
    stripe on "sybackup::SYBAR.mydb.D"
go
online database mydb_restore
go
