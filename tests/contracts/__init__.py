"""Contract suites, one per role of ``providers/base.py``, as base classes with capability
flags (in the manner of vdirsyncer's storage tests): a backend's test class subclasses the
suite, gives a ``backend`` fixture and says what the backend can do."""

import pytest

# the suites' plain asserts explain themselves like those of a test module
pytest.register_assert_rewrite("tests.contracts.source", "tests.contracts.target")
