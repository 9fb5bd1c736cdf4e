"""Local AI Lab: a self-hosted AI platform (gateway, ledger, knowledge, access, stack manager)."""

__version__ = "0.1.0"
# The name on PyPI (`ailab` there is an unrelated project); the import package and the command stay `ailab`.
DIST_NAME = "local-ai-lab"
