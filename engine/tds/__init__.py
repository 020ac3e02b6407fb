"""TDS 5.0 for sybar: sans-I/O codec (packets, login, tokens, connection) plus an
asyncio server (server.py) and a blocking client (client.py).  See
shared/reference/TDS-NOTES.md for what FreeTDS 1.3.17 sends and insists on."""
