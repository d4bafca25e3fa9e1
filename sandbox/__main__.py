"""`python -m sandbox`: serve the Plivo sandbox.

Environment: `SANDBOX_PORT` (default 8765) and `SANDBOX_ACCOUNTS`, comma-separated
`AUTHID:token` pairs (the accounts it knows). `SANDBOX_TRANSCRIPTION_DELAY` sets how many
seconds a transcription takes (default 2).
"""

from __future__ import annotations

import os

import uvicorn

from sandbox.app import create_sandbox


def main() -> None:
    port = int(os.environ.get("SANDBOX_PORT", "8765"))
    accounts = dict(
        pair.split(":", 1) for pair in os.environ["SANDBOX_ACCOUNTS"].split(",") if ":" in pair
    )
    app = create_sandbox(accounts, base_url=f"http://127.0.0.1:{port}")
    app.state.sandbox.state.faults.transcription_delay = float(
        os.environ.get("SANDBOX_TRANSCRIPTION_DELAY", "2")
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
