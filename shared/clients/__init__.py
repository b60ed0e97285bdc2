"""Talking to other processes, bounded: the database, Redis, AWS, access, and the caches
over them."""
