"""Each dialect's error body as an OpenAPI schema: a dialect names its own in its
`Dialect`, and is installed with it for the prefixes its renderer answers, so
`/openapi.json` declares the shape a client of that platform actually gets."""

from sandbay.api.openapi import ErrorShape, Schema

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
