"""Settings for bench/graphql_bench.py's server: the project's own, plus a no-op view to measure against.

The no-op view is served from a URLconf under bench/ (selected here with ROOT_URLCONF) rather than from the
project's URLs, so the benchmark's baseline lives with the benchmark and changes nothing in the application.
"""

from paminga.settings import *  # noqa: F403

ROOT_URLCONF = "graphql_bench_urls"
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}  # noqa: F405
