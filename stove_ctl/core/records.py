"""Per-burner records kept in ``state_dir`` as small JSON files: the commissioning
record (``commissioning.json``, written when ``stove-ctl commission`` finishes) and
the last self-test (``self_test.json``).

Each write is atomic: the whole file is written to a temporary file beside it,
flushed to disk, and renamed over the old one, so a power cut leaves the old records
or the new ones. A file that cannot be read is reported (``problem``), kept aside as
``*.damaged`` and started afresh: a record is information, never a reason to cut or
to restore.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

Text = str  # plain words shown to people; bounded where a sender can send them


class Figures(BaseModel):
    """What commissioning measured (None: could not be measured)."""

    model_config = ConfigDict(extra="forbid")

    cut_latency_ms: float | None = Field(None, ge=0, le=600_000)
    flame_out_s: float | None = Field(None, ge=0, le=600)
    mv_before: float | None = Field(None, ge=-100, le=100)
    mv_low: float | None = Field(None, ge=-100, le=100)
    mv_fall: float | None = Field(None, ge=-200, le=200)
    pulse_s: float | None = Field(None, ge=0, le=60)
    suggested_pulse_s: float | None = Field(None, ge=0, le=60)


class CommissioningReport(BaseModel):
    """What ``stove-ctl commission`` sends when it is done (action ``commission_record``)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["commission_record"]
    burner: str = Field(min_length=1, max_length=70)
    result: Literal["passed", "failed", "aborted"]
    diagnosis: list[Text] = Field(default_factory=list, max_length=10)
    answers: dict[str, Literal["y", "n"]] = Field(default_factory=dict, max_length=20)
    figures: Figures = Field(default_factory=Figures)
    flame_input: Literal["measures", "on_off", "none"] = "none"
    command_id: str | None = Field(None, max_length=64)

    def model_post_init(self, _: Any) -> None:
        for line in self.diagnosis:
            if len(line) > 600:
                raise ValueError("a diagnosis line is at most 600 characters")
        for key in self.answers:
            if len(key) > 40:
                raise ValueError("an answer's name is at most 40 characters")


class RecordFile:
    """A JSON object of burner key -> record, written atomically."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.problem: str | None = None
        self.records: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("not an object of records")
            return data
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            aside = self.path.with_name(self.path.name + ".damaged")
            self.problem = f"{self.path} could not be read ({exc}); kept as {aside.name}"
            log.error("%s", self.problem)
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Keep ``record`` for ``key`` and write the file. Raises OSError when it
        cannot be written (the record is then kept in memory only)."""
        self.records[key] = record
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(self.records, out, indent=1, ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        with contextlib.suppress(OSError):  # the rename itself, on disk
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def parse_report(request: dict[str, Any]) -> CommissioningReport:
    """Raises ValueError with the first problem, in plain words."""
    try:
        return CommissioningReport.model_validate(request)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "record"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            raise ValueError(f"unknown field {field!r}") from None
        raise ValueError(f"{field}: {message}") from None
