"""The Docker backend: container nodes wired through the namespace path (see backend.py)."""
