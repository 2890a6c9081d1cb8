"""Administration: users, roles, access, per-user limits, usage across users."""
