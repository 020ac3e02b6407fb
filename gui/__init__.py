"""sybar's desktop window (PySide6 + qasync): the Backup, Archive, and Restore client.

It talks to the engine only through its control API (``engine.control.client``)
and never moves backup data itself (DESIGN.md §2).
"""
