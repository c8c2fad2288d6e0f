"""Every registered framework catalog, in one place.

Each framework's catalog module is imported explicitly below, so this file shows what is
registered. Plain data only: safe to import on the host, which has no torch.
"""

from __future__ import annotations

import adapters.timm.catalog  # noqa: F401  (registers "timm")
import adapters.transformers.catalog  # noqa: F401  (registers "transformers")
import adapters.ultralytics.catalog  # noqa: F401  (registers "ultralytics")
from adapters.catalog import FrameworkCatalog, get_catalog, registered_catalogs

__all__ = ["all_catalogs", "get_catalog"]


def all_catalogs() -> tuple[FrameworkCatalog, ...]:
    """Every registered catalog, sorted by framework name."""
    return registered_catalogs()
