"""Local AI Lab: a self-hosted AI platform (gateway, ledger, knowledge, access, stack manager)."""

__version__ = "0.1.0"
