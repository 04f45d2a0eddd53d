"""jirasim: an in-process simulator of JIRA Server/Data Center 10.3 for tests and demos.

Submodules: ``app`` (ASGI factory), ``testing`` (SimServer, signing helpers),
``control`` (SimControl, the client of the ``/_sim`` control API).
"""

from .app import create_app
from .config import SimConfig

__all__ = ["SimConfig", "create_app"]
