"""`score app`: serve the workbench with Streamlit, on 127.0.0.1 unless told otherwise."""
from __future__ import annotations

import os
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app.py"


def command(runs_dir: str | None = None, port: int = 8501, headless: bool = True,
            address: str = "127.0.0.1") -> list[str]:
    """The `streamlit run app.py ...` command line (split out so it can be tested without exec)."""
    if not APP.is_file():
        raise FileNotFoundError(f"{APP} not found: the workbench app runs from a source checkout "
                                "(pip install -e .)")
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP),
           "--server.address", address, "--server.port", str(int(port)),
           "--server.headless", "true" if headless else "false",
           "--browser.gatherUsageStats", "false"]
    if runs_dir:
        # absolute: streamlit may run the script from another working directory
        cmd += ["--", "--runs-dir", str(Path(runs_dir).expanduser().absolute())]
    return cmd


def main(runs_dir: str | None = None, port: int = 8501, headless: bool = True, address: str = "127.0.0.1") -> None:
    """Replace this process with the Streamlit server (never returns)."""
    cmd = command(runs_dir, port, headless, address)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Serve the SCoRe Workbench app.")
    ap.add_argument("--runs-dir")
    ap.add_argument("--port", type=int, default=8501)
    ap.add_argument("--address", default="127.0.0.1")
    args = ap.parse_args()
    main(args.runs_dir, args.port, True, args.address)
