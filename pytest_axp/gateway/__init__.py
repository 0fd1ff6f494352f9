"""Model gateway for the `claude` agent: scripted or forwarding Messages API, recording, metering, OTLP."""

from .script import ModelScript, ScriptError
from .server import ModelGateway, RunHandle

__all__ = ["ModelGateway", "RunHandle", "ModelScript", "ScriptError"]
