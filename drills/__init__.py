"""drills: resilience drills for network testbeds.

A scenario file describes a testbed and a timeline of faults; drills brings the testbed up,
applies the faults on time, and measures how long the network took to recover.
"""

__version__ = "0.1.0"
