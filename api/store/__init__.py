"""Persistence: tables and migrations, connections, the ledger read, the trail, the policy store."""
