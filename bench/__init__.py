"""procengine's benchmark suite: `python -m bench` (or `make bench`). See bench/__main__.py."""
