"""Issuers, underlying assets, emission applications, registration numbers, placement, redemption."""
