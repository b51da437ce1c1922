"""Status lines go to the stderr of the moment, through the ``robustlab`` logger."""

import contextlib
import io

from robustlab.core.progress import log, setup_logging


def test_status_lines_follow_stderr_redirection():
    setup_logging()
    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(first):
        log.info("one")
    first.close()  # a stream replaced and closed (as pytest's capture does between tests)
    with contextlib.redirect_stderr(second):
        log.info("two")
    assert second.getvalue() == "robustlab: two\n"
