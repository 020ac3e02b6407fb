"""``sybar isql``: a Sybase-compatible isql client for sybar's dataserver (TDS 5.0).

Modules: ``options`` (SAP isql's command line), ``interfaces`` (server name ->
host:port from interfaces files or freetds.conf), ``batches`` (line-based
``go``/``reset``/``quit`` reader), ``output`` (ASE isql's result and message
layout) and ``main`` (the run: ``main(argv) -> exit status``).
"""
