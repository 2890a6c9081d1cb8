"""Personal API tokens: minted once, stored hashed, checked on every API call."""
