"""What a test suite found: its cases with their evidence. Every suite (boot, fabric, lab,
virtualbox) returns a Suite; the manifest, JUnit and the report read them back."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CaseResult(BaseModel):
    name: str
    passed: bool
    seconds: float = 0.0
    evidence: str = ""


class Suite(BaseModel):
    passed: bool
    cases: list[CaseResult] = Field(default_factory=list)
