"""Ask an installed Airflow for this provider: ``python -m devtools.check_provider PATH/TO/airflow VERSION``.

Runs ``airflow providers get airflow-dynamoscan`` in a throwaway ``AIRFLOW_HOME`` and fails unless Airflow reports
the provider at ``VERSION``: that is what a user sees after ``pip install airflow-dynamoscan``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

PROVIDER = "airflow-dynamoscan"


def main(airflow: str, version: str) -> int:
    with tempfile.TemporaryDirectory(prefix="dynamoscan-package-check-") as home:
        environment = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": home,
        }
        command = [airflow, "providers", "get", PROVIDER, "--output", "json"]
        completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300, check=False)
    print(completed.stdout.strip())
    reported = [line for line in completed.stdout.splitlines() if line.startswith("[")]
    expected = [{"Provider": PROVIDER, "Version": version}]
    if completed.returncode != 0 or not reported or json.loads(reported[-1]) != expected:
        print(completed.stderr[-4000:], file=sys.stderr)
        print(f"error: `{' '.join(command[1:])}` exited {completed.returncode}, expected {expected}", file=sys.stderr)
        return 1
    print(f"{PROVIDER} {version}: registered with Airflow from the wheel alone")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
