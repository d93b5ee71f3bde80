"""The resident agent (`drill agent`) and the controller's side of it: framed messages over an
SSH channel, node operations and probe endpoints on the agent's host, the clock offset.

    frames     length-prefixed JSON frames over a pair of file descriptors (bounded)
    codec      the project's records to JSON-able values and back (allowlisted classes only)
    protocol   the requests, answers and heartbeats; error kinds; the agent's method allowlists
    agent      `drill agent`: serves one controller, deploys its host's part, runs node operations
    deadman    the agent's dead-man switch: a lost controller gets the part torn down
    client     AgentClient: the controller's end of one agent (threads, timeouts, heartbeats)
    agent_ops  AgentOps: the seam's NodeOps for one agent's nodes, by RPC
    offset     the agent's clock against the controller's (four timestamps, minimum-rtt round)
"""
