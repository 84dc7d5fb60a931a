"""Benchmarks (``make bench``): each module ``tests/bench/<name>.py`` exports
``async def run(stack: TestStack, report: Report) -> None`` and records its figures."""
