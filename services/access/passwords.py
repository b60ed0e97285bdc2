"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# A few of the most common choices; length and variety rules catch the rest.
COMMON_PASSWORDS = frozenset(
    {
        "password",
        "password1",
        "password123",
        "1234567890",
        "12345678910",
        "qwertyuiop",
        "qwerty1234",
        "iloveyou12",
        "letmein123",
        "welcome123",
        "administrator",
        "abcdefghij",
        "0123456789",
        "passw0rd123",
    }
)
MAX_PASSWORD_LENGTH = 128  # argon2 hashes anything, but a megabyte body should not be tried


def password_policy(min_length: int) -> str:
    """The whole rule, said the same way in the API's schema and in every refusal."""
    return (
        f"at least {min_length} characters, at least 4 different characters, at most "
        f"{MAX_PASSWORD_LENGTH}, not a commonly used password, and not containing the "
        "part of the email address before the @ (when it is 4 characters or more)"
    )


def password_problems(password: str, *, email: str, min_length: int) -> list[str]:
    """What is wrong with a proposed password (empty if nothing)."""
    problems = []
    if len(password) < min_length:
        problems.append(f"be at least {min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"be at most {MAX_PASSWORD_LENGTH} characters")
    if password.lower() in COMMON_PASSWORDS:
        problems.append("not be a commonly used password")
    if len(set(password)) < 4:
        problems.append("use at least 4 different characters")
    local_part = email.split("@", 1)[0].lower()
    if len(local_part) >= 4 and local_part in password.lower():
        problems.append(f'not contain "{local_part}", the part of your email address before the @')
    return problems


class PasswordHashing:
    """argon2id; hashing and verifying run in a thread (tens of ms of CPU each)."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # Verified against when the email is unknown, so both answers take as long.
        self._decoy = self._hasher.hash("decoy password that matches nothing")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def verify() -> bool:
            try:
                return self._hasher.verify(password_hash or self._decoy, password)
            except (VerificationError, InvalidHashError):
                return False

        matched = await asyncio.to_thread(verify)
        return matched and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
