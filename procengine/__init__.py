"""procengine: a durable process engine on asyncio actors and Redis."""
