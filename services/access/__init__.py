"""The access service: accounts, tokens, the seven roles, entitlements, decisions."""
