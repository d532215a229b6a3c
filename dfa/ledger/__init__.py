"""The double-entry holders ledger: assets, accounts, the hash-chained journal, holds, registries."""
