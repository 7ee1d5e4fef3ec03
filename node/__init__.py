"""The validator process: the only package that does I/O (asyncio, sockets, HTTP, disk)."""
