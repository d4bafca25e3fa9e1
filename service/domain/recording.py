"""Plivo's Recording object as the relay keeps it: the fields it reads, typed; every other field
kept as Plivo sent it (numbers as numbers: `service.plivo.client.numbers`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class PlivoRecording(BaseModel):
    """Plivo's Recording object (Get Recording), less its `api_id`."""

    model_config = ConfigDict(extra="allow")

    recording_id: str | None = None
    call_uuid: str | None = None
    recording_url: str | None = None
    recording_format: str | None = None
    add_time: str | None = None

    @property
    def audio_format(self) -> str:
        """The format of its audio: `wav` or `mp3` (Plivo's two)."""
        return "wav" if self.recording_format == "wav" else "mp3"

    def document(self) -> dict[str, Any]:
        """The object as Plivo sent it (and as events and the archive carry it)."""
        return self.model_dump(mode="json", exclude_unset=True)
