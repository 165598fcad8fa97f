"""The README's embedding script runs as it stands, against the real reference server."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from chats_store.server import run_server

ROOT = Path(__file__).resolve().parents[2]
SECRET = "readme-test-secret-that-is-long-enough-for-hs256"


def readme_script() -> str:
    """The python block after ``<!-- embedding-script -->`` in README.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split("<!-- embedding-script -->", 1)[1]
    match = re.match(r"\s*```python\n(.*?)^```$", after, re.MULTILINE | re.DOTALL)
    assert match is not None, "no python block after <!-- embedding-script -->"
    return match.group(1)


async def test_the_readme_embedding_script_runs_as_it_stands(tmp_path: Path) -> None:
    script = tmp_path / "embed.py"
    script.write_text(readme_script(), encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    async with run_server(port=0, db=":memory:", secret=SECRET) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            server.address,
            server.session_token("ann"),
            server.chat_token("ann", "lobby"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    # The getter's replay (no message yet), the send's two statuses, the synchronous reads.
    assert out.decode().splitlines() == ["", "hello (sending)", "hello (ready)", "ready ready"]
