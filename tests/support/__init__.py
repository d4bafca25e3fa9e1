"""What the tests share: settings and accounts (`settings`), fixtures (`plugin`, loaded by
`tests/conftest.py`), real servers on loopback (`servers`, `pipeline_env`, `sandbox_fixture`,
`receivers`, `archive_stores`), Redis crashing on cue (`redis_crash`), signed Plivo requests
(`plivo`) and waiting on a condition with a deadline (`waiting`)."""
