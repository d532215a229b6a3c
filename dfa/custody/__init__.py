"""Custody: key vault, HD wallets, signing, the token contract and the EVM mirror of the ledger."""
