"""The command line as an operator meets it: which database a command wrote to, from any folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_create_user_says_which_database_it_wrote_to(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WORKCAST_DATA_DIR", "DATABASE_URL")}
    made = subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "create-user", "--role", "seeker", "--name", "A", "--mobile", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["role"] == "seeker"  # stdout stays one JSON object
    database = tmp_path / ".workcast" / "workcast.sqlite3"
    assert f"wrote to SQLite file {database}" in made.stderr and database.exists()
