"""Key vault, HD wallets, the EVM chain adapter and the permissioned token contract."""
