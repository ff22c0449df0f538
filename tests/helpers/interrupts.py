"""Interrupting the sequential driver at a chosen block, as a Ctrl-C or a crash would."""

from polysparse.sparsify import driver


def interrupt_after(monkeypatch, blocks_done: int, error: type[BaseException] = KeyboardInterrupt) -> None:
    """Make the driver raise ``error`` right after ``blocks_done`` blocks were checkpointed."""
    original = driver.PruneCheckpoint.save
    seen = []

    def save(self, index, block, next_hidden, report):
        original(self, index, block, next_hidden, report)
        seen.append(index)
        if len(seen) == blocks_done:
            raise error

    monkeypatch.setattr(driver.PruneCheckpoint, "save", save)
