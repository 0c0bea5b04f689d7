"""`atr keys`: issue, revoke and list the service's API keys (serving/keys.py's file)."""
