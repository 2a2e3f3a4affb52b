"""hivemem's REST server: a FastAPI app over the embedded engine.

from hivemem.api import Settings, create_app
app = create_app(Settings.from_env())
"""

from hivemem.api.app import bootstrap, create_app
from hivemem.api.settings import Settings

__all__ = ["create_app", "bootstrap", "Settings"]
