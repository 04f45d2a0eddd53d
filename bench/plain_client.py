"""The straightforward alternative, run in its own process: `python -m bench.plain_client '<json spec>'`.

What a developer would write with the well-known `jira` library from PyPI: connect with OAuth 1.0a
(RSA-SHA1) and call `add_worklog` for one entry after another. Spec: {"url", "consumer_key", "private_key_pem",
"token", "secret", "prefix", "n"}. Prints {"elapsed_s", "worklogs", "library"}.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import jira
from oauthlib.oauth1 import SIGNATURE_RSA

from bench.world import entry


def main() -> None:
    spec = json.loads(sys.argv[1])
    berlin = ZoneInfo("Europe/Berlin")
    entries = [entry(f"{spec['prefix']}-{i}", i) for i in range(spec["n"])]
    t0 = time.perf_counter()
    client = jira.JIRA(server=spec["url"], oauth={
        "access_token": spec["token"], "access_token_secret": spec["secret"],
        "consumer_key": spec["consumer_key"], "key_cert": spec["private_key_pem"],
        "signature_method": SIGNATURE_RSA,
    })
    for e in entries:
        started = datetime.fromisoformat(f"{e['date']}T{e['start']}").replace(tzinfo=berlin)
        client.add_worklog(e["ticket"], timeSpentSeconds=e["duration"] * 60, started=started,
                           comment=f"#{e['id']}: {e['activity']}: {e['description']}")
    elapsed = time.perf_counter() - t0
    print(json.dumps({"elapsed_s": elapsed, "worklogs": len(entries), "library": f"jira {jira.__version__}"}))


if __name__ == "__main__":
    main()
