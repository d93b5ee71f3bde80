"""The drill engine: a timeline of faults applied on one monotonic clock, always reverted."""
