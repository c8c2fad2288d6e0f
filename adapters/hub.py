"""Make pretrained-weight downloads fail fast when the Hugging Face hub is unreachable.

Offline, huggingface_hub retries for most of a minute before giving up. One quick TCP probe
before the framework is imported tells us whether to set ``HF_HUB_OFFLINE=1``; then a model
whose weights are not cached fails at once with ``LocalEntryNotFoundError``, and cached
weights still load. Call :func:`prepare_hub_access` before importing timm / transformers.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from urllib.parse import urlparse

log = logging.getLogger("visionyard.hub")

HUB_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT = 2.0  # seconds, DNS included


def hub_address(environ=os.environ) -> tuple[str, int]:
    """Host and port to probe: the HTTPS proxy when one is set, else the hub endpoint."""
    url = (
        environ.get("HTTPS_PROXY") or environ.get("https_proxy") or environ.get("HF_ENDPOINT") or HUB_ENDPOINT
    )
    if "://" not in url:
        url = "http://" + url
    parsed = urlparse(url)
    default_port = 443 if parsed.scheme == "https" else 80
    return parsed.hostname or "huggingface.co", parsed.port or default_port


def reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection opens within ``timeout`` s (DNS lookup included)."""
    outcome: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    # getaddrinfo ignores socket timeouts; a thread bounds a hanging DNS lookup too.
    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


def prepare_hub_access() -> bool:
    """Set ``HF_HUB_OFFLINE=1`` unless the hub answers; return True when online mode stays on."""
    if os.environ.get("HF_HUB_OFFLINE"):
        return os.environ["HF_HUB_OFFLINE"].strip().lower() not in ("1", "true", "yes", "on")
    host, port = hub_address()
    if reachable(host, port):
        return True
    log.warning("%s:%d is unreachable: using only locally cached pretrained weights", host, port)
    use_local_cache_only()
    return False


def use_local_cache_only() -> None:
    """Set ``HF_HUB_OFFLINE=1`` whether or not the hub answers: what is not cached fails at once with
    ``LocalEntryNotFoundError`` (a model without a job is never downloaded)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # imported already: its flag was read at import time
        constants.HF_HUB_OFFLINE = True


def hub_cache() -> str:
    """The local Hugging Face hub cache (``HF_HUB_CACHE``, else under ``HF_HOME``), for messages."""
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:
        return os.environ.get("HF_HUB_CACHE") or os.path.join(os.environ.get("HF_HOME") or "~/.cache/huggingface",
                                                             "hub")


def is_missing_from_cache(exc: BaseException) -> bool:
    """True for huggingface_hub's 'offline and not cached' error, also when wrapped."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if type(exc).__name__ in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
