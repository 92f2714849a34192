"""A typical hand-written Celery worker that books invoices, for side-by-side figures."""
