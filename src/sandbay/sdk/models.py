"""The few answers the server has no model for (it sends them as server-sent events
or plain text); every other answer is the server's own domain model."""

from typing import Literal

from pydantic import BaseModel

from sandbay.domain.exec import ExecExitEvent


class ExecOutput(BaseModel):
    """A chunk of a streamed command's output (the `stdout`/`stderr` events, whose
    data is the server's ExecOutputEvent), with the stream it came from."""

    stream: Literal["stdout", "stderr"]
    data: str


#: What a streamed exec (and a followed process) yields: output chunks, then one exit.
ExecStreamEvent = ExecOutput | ExecExitEvent
