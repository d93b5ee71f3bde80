"""`python -m drills` is the same as the `drill` command."""

from drills.cli import main

raise SystemExit(main())
