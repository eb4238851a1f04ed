"""Bounces and complaints: what the mail world says back about the mail we sent (see policy.py)."""
