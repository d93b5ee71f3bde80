"""Live probe traffic from inside node namespaces, timestamped on the drill's clock."""
