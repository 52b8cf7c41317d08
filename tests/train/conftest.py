"""The data tests' dataset fixtures (v2.1 written by the project's writer, v3.0 by lerobot's own,
a tiny tokenizer), for the training tests that run the user path on them."""
from tests.data.conftest import tokenizer_dir, v2_root, v3_root  # noqa: F401
