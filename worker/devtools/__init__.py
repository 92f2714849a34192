"""Development tooling, outside the production path: `ledgerpush demo` (demo.py,
demo_view.py), `ledgerpush chaos` (the chaos package), the one-machine stack both run on
(localstack.py: embedded Redis, the simulators, worker processes), and the job payloads
the demo, the benchmarks and the tests send (factories.py)."""
