"""Model gateway for agents: scripted or forwarding model APIs (one module each, see `apis`),
recording, metering, OTLP."""

from .apis import ModelApi, model_api, register_model_api
from .script import ModelScript, ScriptError
from .server import ModelGateway, RunHandle

__all__ = [
           "ModelApi",
           "ModelGateway",
           "ModelScript",
           "RunHandle",
           "ScriptError",
           "model_api",
           "register_model_api",
]
