import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property and fuzz tests draw the same examples on every run (same seed and config, same result); a new search
# is a local run with --hypothesis-seed=N.
settings.register_profile("gnaexp", derandomize=True)
settings.load_profile("gnaexp")

# One IR cache for the whole test session, outside the user's home cache.
_CACHE = Path(os.environ.get("PYTEST_GNAEXP_CACHE", "")) if os.environ.get("PYTEST_GNAEXP_CACHE") else None


@pytest.fixture(autouse=True, scope="session")
def _gnaexp_cache(tmp_path_factory):
    cache = _CACHE or tmp_path_factory.mktemp("gnaexp-cache")
    old = os.environ.get("GNAEXP_CACHE")
    os.environ["GNAEXP_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("GNAEXP_CACHE", None)
    else:
        os.environ["GNAEXP_CACHE"] = old


@pytest.fixture(scope="session")
def corpus(_gnaexp_cache):
    """The public corpus models (gnaexp.models.catalog), fetched once per session into the session's cache."""
    from gnaexp.models import catalog as model_catalog

    return {key: model_catalog.fetch(key) for key in model_catalog.CORPUS}
