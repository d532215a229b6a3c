"""Server-rendered pages for investors, issuers, compliance officers and operator admins."""
