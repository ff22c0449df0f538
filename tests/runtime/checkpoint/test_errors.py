"""The checkpoint errors: every one is a CheckpointError, which the command line reports as the user's
mistake (one line, exit status 2), and an existing output folder is also a FileExistsError."""

import pytest

from polysparse.bench.user_errors import USER_ERRORS
from polysparse.runtime.checkpoint import (
    CheckpointError,
    CheckpointExistsError,
    CheckpointMismatchError,
    CorruptCheckpointError,
    NotSparse24Error,
)


@pytest.mark.parametrize(
    "error", [CheckpointExistsError, CheckpointMismatchError, CorruptCheckpointError, NotSparse24Error]
)
def test_every_checkpoint_error_is_a_user_error(error):
    assert issubclass(error, CheckpointError) and issubclass(error, ValueError)
    assert any(issubclass(error, user_error) for user_error in USER_ERRORS)


def test_an_existing_output_folder_is_a_file_exists_error():
    assert issubclass(CheckpointExistsError, FileExistsError)
