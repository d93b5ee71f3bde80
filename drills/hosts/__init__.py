"""Several machines: the inventory of hosts, the placement of nodes on them, and their
provisioning through Ansible (the only place ansible-runner is imported: `ansible_edge`)."""
