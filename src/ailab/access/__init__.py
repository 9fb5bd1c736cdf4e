"""Identity and access: principals and authentication."""

from ailab.access.auth import Authenticator, ensure_master_key
from ailab.access.principal import MASTER, Principal

__all__ = ["MASTER", "Authenticator", "Principal", "ensure_master_key"]
