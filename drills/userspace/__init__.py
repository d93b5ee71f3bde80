"""The userspace link engine: a link realised as two TAP devices joined by a relay process.

Used where the kernel has no `sch_netem` (or where a scenario asks for it): the relay moves
Ethernet frames between the two TAPs and applies netem's impairments itself (delay, jitter and
its distribution, loss with correlation or Gilbert-Elliott bursts, duplication, corruption,
reordering, rate). Modules: `impair` (the per-direction model, pure and seeded), `relay` (the
process), `tap` (TAP devices inside namespaces), `control` (the live control channel), `select`
(which engine serves a link), `deploy` (deploy and teardown for the netns backend).

Nothing here imports pydantic or pyroute2 at module level except `deploy`: the relay process
starts quickly.
"""
