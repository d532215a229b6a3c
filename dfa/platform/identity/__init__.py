"""Parties, KYC, users, sign-in, credentials."""
