"""The embedded testbed: Linux network namespaces and veth pairs, built with pyroute2."""
