"""The project's settings for the test suite: the same, with a SECRET_KEY of its own.

paminga.settings refuses to start without SECRET_KEY when DEBUG is off (as the tests run); the key is set before
they are read, and only when the environment has none.
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-not-for-production")

from paminga.settings import *  # noqa: E402, F403
