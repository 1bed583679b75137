"""What the tests share, one job per module (fixtures stay in the conftest.py files pytest reads, and import these).

paths          the repository's root, for subprocesses and files the tests read
api            the API's base path (the one the front door serves), the two test tenants, and `Api`, a client
               of an in-process front door that unwraps the envelope
front_door     the front door over the fake engine: its client types, answers checked as errors
processes      the definitions the tests run (the contract's example, waits, short and failing ones)
nodes          steering a `Node` in-process: start, wait for a status or an element, a gate handler, a crash
interpreter    driving the pure interpreter (`engine/`) step by step
fake_engine    an in-memory `NodeService` for the front door's tests
live_server    a real server in a thread of its own, for blocking clients (the sync client, the CLI)
servers        `procengine serve` as child processes, for tests that kill, drain and restart them
crash_handlers task handlers that kill their node (`--handlers tests.support.crash_handlers`)
loss_process   the process the Redis loss and outage tests run, and their check
model          what the hypothesis model (tests/test_model.py) drives and checks against
redis_servers  the type of the fixture that starts a test's own redis-servers
cli            running `procengine ...` in-process and what it gives back
polling        waiting for a condition with a deadline (the one place tests poll)
clock          a clock a test can move forward, for what the engine times by its clock
"""
