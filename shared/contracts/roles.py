"""The seven ordered roles: a higher tier may do all a lower tier may, and more."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    LEARNER = "LEARNER"
    TEACHER = "TEACHER"
    VOLUNTEER = "VOLUNTEER"
    STORY_MANAGER = "STORY_MANAGER"
    BOOK_MANAGER = "BOOK_MANAGER"
    CONTENT_ADMIN = "CONTENT_ADMIN"
    ADMIN = "ADMIN"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANKS = {role: rank for rank, role in enumerate(Role)}
