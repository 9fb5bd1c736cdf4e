"""Request bodies of the admin API (validated by pydantic; errors name the field)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ailab.access import Limits

Duration = Literal["daily", "weekly", "monthly"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsBody(Strict):
    max_budget_usd: Decimal | None = Field(default=None, ge=0)
    budget_duration: Duration | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)

    def to_limits(self) -> Limits:
        return Limits(Limits.usd_to_pusd(self.max_budget_usd), self.budget_duration, self.rpm, self.tpm)


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=200)
    role: str = "user"
    password: str | None = Field(default=None, min_length=12)


class UserUpdate(Strict):
    role: str | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=12)


class ProjectCreate(Strict):
    name: str = Field(min_length=1, max_length=200)


class KeyCreate(LimitsBody):
    user_id: str | None = None  # default: the caller
    project_id: str | None = None
    name: str | None = Field(default=None, max_length=200)
    models: list[str] | None = Field(
        default=None,
        description="model groups the key may use: omitted or null for every model, [] for none",
    )
    expires_in_days: float | None = Field(default=None, gt=0)
