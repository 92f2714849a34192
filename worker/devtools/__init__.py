"""Development tooling, outside the production path: `ledgerpush demo` (demo.py,
demo_view.py), `ledgerpush chaos` (the chaos package), the one local stack they, the
benchmarks and the tests run on (localstack.py, with its child processes in processes.py
and simulator_process.py), and the job payloads they send (factories.py)."""
