"""Development tooling, outside the production path: `ledgerpush demo` (demo.py,
demo_view.py), `ledgerpush chaos` (the chaos package) and the one-machine stack
both run on (localstack.py: embedded Redis, the simulators, worker processes)."""
