"""Audit trail: who did what to which account, from where, under which trace id."""
