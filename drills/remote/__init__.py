"""The resident agent (`drill agent`) and the controller's side of it: framed messages over an
SSH channel, node operations and probe endpoints on the agent's host, the clock offset."""
