"""Real-time fan-out across app instances with Redis pub/sub (redis.asyncio)."""
