"""Redis: the client, the keys, the Lua scripts, and the stores built on them (session families,
users, challenges, limits, the audit trail). The bottom layer: it imports nothing else of wsgate."""
