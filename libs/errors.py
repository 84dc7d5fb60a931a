"""Domain errors: raised by business rules, mapped to gRPC status codes at the edge.

Plain Python so the domain layer stays free of I/O and transport concerns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """Base of every error a business rule raises on purpose."""

    reason: str = "DOMAIN_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DomainError):
    """The request is malformed; names each bad field and why."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: list[FieldViolation] | FieldViolation) -> None:
        if isinstance(violations, FieldViolation):
            violations = [violations]
        if not violations:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations = violations
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"invalid argument: {summary}")

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class NotFound(DomainError):
    """What a request names does not exist. ``field`` names the request field that named it
    (e.g. "member_id"); ``resource_type`` / ``resource_name`` say what was looked for. At the
    edge they become a google.rpc.ResourceInfo detail and ErrorInfo metadata "field"."""

    reason = "NOT_FOUND"

    def __init__(
        self, message: str, *, field: str = "", resource_type: str = "", resource_name: str = ""
    ) -> None:
        super().__init__(message)
        self.field = field
        self.resource_type = resource_type
        self.resource_name = resource_name


class AlreadyExists(DomainError):
    reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The request is well formed but the system is not in a state to accept it."""

    reason = "FAILED_PRECONDITION"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"


class Aborted(DomainError):
    """A concurrency conflict; the caller may retry."""

    reason = "ABORTED"


class Unavailable(DomainError):
    """A dependency is down; the caller may retry later."""

    reason = "UNAVAILABLE"


class Validator:
    """Collects field violations so one error names every bad field at once."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def check(self, condition: bool, field: str, description: str) -> None:
        if not condition:
            self.violations.append(FieldViolation(field, description))

    def add(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)
