"""hivemem's REST server: a FastAPI app over the embedded engine.

from api import Settings, create_app
app = create_app(Settings.from_env())
"""

from api.app import bootstrap, create_app
from api.settings import Settings

__all__ = ["create_app", "bootstrap", "Settings"]
