-- Full dump of mydb in two stripes, compressed with ASE's fast level.
-- Relative device paths are kept in the home's dumps/ folder.
use master
go
dump database mydb
    to "mydb.full.stripe1.dmp"
    stripe on "mydb.full.stripe2.dmp"
    with compression = 101, init
go
