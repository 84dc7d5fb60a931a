"""The category tree: every category has at most one parent and the tree has no cycles."""

from __future__ import annotations

from collections.abc import Sequence

from libs.errors import FailedPrecondition


def check_move(category_code: str, new_parent_ancestry: Sequence[str]) -> None:
    """Refuses a move that would put a category under itself or under one of its descendants.

    ``new_parent_ancestry`` is the new parent followed by its ancestors up to a root; the move
    makes a cycle exactly when the moved category is on that path. Children move along
    because they keep pointing at the moved category."""
    if category_code in new_parent_ancestry:
        if new_parent_ancestry and new_parent_ancestry[0] == category_code:
            raise FailedPrecondition(f"category {category_code} cannot be its own parent")
        raise FailedPrecondition(
            f"moving category {category_code} under {new_parent_ancestry[0]} would make a "
            f"cycle: {new_parent_ancestry[0]} is inside {category_code}'s subtree"
        )
