"""Request bodies and query strings of the admin API."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from server.api.body import QueryModel, RequestModel
from server.store.models import Role


class ListUsersQuery(QueryModel):
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    skip: Annotated[int, Field(ge=0, le=1_000_000)] = 0


class UserPatch(RequestModel):
    """Fields an admin may change; a budget of null goes back to the server's default."""

    role: Role | None = None
    disabled: bool | None = None
    budget_tokens_per_day: Annotated[int, Field(ge=0, le=10**15)] | None = None
    budget_cost_per_day: Annotated[float, Field(ge=0, le=10**9)] | None = None

    def changes(self) -> dict[str, object]:
        """The fields the body named (role and disabled only when not null)."""
        named = {name: getattr(self, name) for name in self.model_fields_set}
        return {
            name: value
            for name, value in named.items()
            if value is not None or name.startswith("budget_")
        }
