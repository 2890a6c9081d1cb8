"""Usage: every metered API call recorded once, and summaries of it."""
