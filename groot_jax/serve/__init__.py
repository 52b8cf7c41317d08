"""Policy server and numpy-only client (ZeroMQ + msgpack)."""
