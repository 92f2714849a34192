"""A toy accounting system, built from the registry alone: the proof that a provider is
its own package plus one registration (`registry.register(SPEC)`; a real one adds a line
to worker/providers/registry.py). `simulator` is its in-test HTTP server."""
