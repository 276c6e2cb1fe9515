"""Each dialect's error body as an OpenAPI schema, by the path prefixes it answers
(the same prefixes its renderer is registered for), so `/openapi.json` declares the
shape a client of that platform actually gets."""

from sandbay.api.openapi import ErrorShape, Schema
from sandbay.dialects import camposcloud, chowder, qoder
from sandbay.dialects.cloudcli import agents as cloudcli_agents
from sandbay.dialects.cloudcli import environments as cloudcli
from sandbay.dialects.daytona.errors import API_PREFIXES, TOOLBOX_PREFIX

_STRING = {"type": "string"}


def _object(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


DAYTONA_API = ErrorShape(
    "DaytonaError",
    _object(
        ["statusCode", "message"],
        path=_STRING,
        timestamp=_STRING,
        statusCode={"type": "integer"},
        error=_STRING,
        message=_STRING,
    ),
)
DAYTONA_TOOLBOX = ErrorShape(
    "DaytonaToolboxError",
    _object(
        ["statusCode", "message", "code", "source"],
        statusCode={"type": "integer"},
        message=_STRING,
        code=_STRING,
        timestamp=_STRING,
        path=_STRING,
        method=_STRING,
        source=_STRING,
    ),
)
QODER = ErrorShape(
    "QoderError",
    _object(
        ["type", "error"],
        type={"type": "string", "enum": ["error"]},
        request_id=_STRING,
        error=_object(["type", "message"], type=_STRING, message=_STRING),
    ),
)
CHOWDER = ErrorShape(
    "ChowderError",
    _object(["detail"], detail={"anyOf": [_STRING, _object(["error"], error=_STRING)]}),
)
CLOUDCLI = ErrorShape("CloudCliError", _object(["error"], error=_STRING))
CAMPOSCLOUD = ErrorShape("CamposCloudError", _object(["message"], message=_STRING))

#: Path prefix → the error shape answered under it.
ERROR_SHAPES: dict[str, ErrorShape] = {
    **dict.fromkeys(API_PREFIXES, DAYTONA_API),
    TOOLBOX_PREFIX: DAYTONA_TOOLBOX,
    qoder.PREFIX: QODER,
    chowder.PREFIX: CHOWDER,
    cloudcli.PREFIX: CLOUDCLI,
    cloudcli_agents.PREFIX: CLOUDCLI,
    cloudcli_agents.ALIAS: CLOUDCLI,
    camposcloud.PREFIX: CAMPOSCLOUD,
}
