"""Peers side by side: the same two workloads on procengine and on Restate, Temporal, DBOS and SpiffWorkflow.

`python -m bench.peers` (or `make bench ARGS=--peers`, which first installs the peers into bench/peers/.venv) runs in
procengine's environment; each peer runs in a child process on the peers' own interpreter (bench/peers/.venv,
bench/peers/node_modules), so that neither `make test` nor `make bench` needs any of them. Nothing here imports
procengine at import time: the drivers (`bench/peers/*_peer.py`) import only the standard library, this package's
`driver` module and their own peer.
"""
