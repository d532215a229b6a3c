"""Identity and access operations. They flush, never commit."""
