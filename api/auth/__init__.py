"""Accounts: registration, email verification, sessions, password reset, roles."""
