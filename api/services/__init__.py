"""Logic the routers share: job submission, active-run state, config guards, the source/sink CRUD factory."""
