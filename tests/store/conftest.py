from tests.actors.conftest import engine, gate, handlers, make_engine

__all__ = ["engine", "gate", "handlers", "make_engine"]
