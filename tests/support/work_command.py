"""A COMMAND for the reference worker's tests. It appends one line per event to
$WORK_LOG ("<event> <work id> <worker id> <pid> <unix time> <key|nokey>") and does
what the item's data says: `sleep` seconds of work; on SIGTERM, `drain` seconds of
draining then exit 0, unless `ignore_term`."""

import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType


def main() -> None:
    log = Path(os.environ["WORK_LOG"])
    data = json.loads(os.environ["SANDBAY_WORK_DATA"])
    who = f"{os.environ['SANDBAY_WORK_ID']} {os.environ['SANDBAY_WORKER_ID']} {os.getpid()}"
    key = "key" if "SANDBAY_API_KEY" in os.environ else "nokey"

    def write(event: str) -> None:
        with log.open("a") as out:
            out.write(f"{event} {who} {time.time():.6f} {key}\n")

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        if data.get("ignore_term"):
            write("term-ignored")
            return
        write("term")
        time.sleep(float(data.get("drain", 0)))
        write("drained")
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    write("start")
    time.sleep(float(data.get("sleep", 0)))
    write("done")


if __name__ == "__main__":
    main()
