"""Live inference runtime: source → OpenVINO anomaly model → overlay → sinks, plus captures and WebRTC.

The runtime is a plain library that runs inside any process (the `inference` flow wraps it);
it never imports `api` and reads its configs through the shared models in `infra.configs`.
"""
