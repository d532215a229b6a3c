"""The outbox's worker as a process of its own, for killing: chain mirror passes and notice deliveries until
nothing is left to send.

`python -m tests.fault.outbox_worker` reads its settings from the environment (DATABASE_URL, CHAIN_RPC_URL,
NATIONAL_BANK_URL, CUSTODIAN_URL, CUSTODY_KEK_PROVIDER=env with CUSTODY_KEK, the CHAIN_* limits), imports
the platform and compiles the token contract once, and then, for each line it reads on stdin — a JSON
object of environment variables for one run, such as `{"DFA_FAULTS": "crash:mirror.after_signing=0.2",
"DFA_FAULTS_SEED": "7"}` — forks a fresh process that does the work and answers with one JSON line:
`{"exit": <status>, "passes": <passes started>, "seconds": <wall time>}`.

A run's process starts with nothing in memory but the imported code: no connection, no chain state, no
cached address. Exit 0 means it finished with nothing pending; -9 that it was killed at a crash point (SIGKILL,
no cleanup, exactly as a power cut); `EXIT_STUCK` that it made no end within its limits; anything else an error,
its traceback on stderr. Forking from the warm process spares each restart the seconds that importing web3 and
compiling the contract take (it still connects, unseals its key and finds its place as a real start does), so
a suite can afford many kills.
"""

import asyncio
import json
import logging
import os
import sys
import time
import traceback

from sqlalchemy.orm import configure_mappers

from dfa.custody.chain import chain_from_settings
from dfa.custody.contract import token_contract
from dfa.custody.service import mirror as chain_mirror
from dfa.custody.service.signing import Signer
from dfa.custody.vault import Vault, key_ring_from_settings
from dfa.issuance.custodian import custodian_from_settings
from dfa.platform import service as platform
from dfa.platform.adapters.national_bank import national_bank_from_settings
from dfa.platform.database import Database
from dfa.platform.settings import Settings
from dfa.reconciliation.delivery import deliver_notices_once
from dfa.reconciliation.service.notices import NOTICES_TOPIC

EXIT_DONE = 0
EXIT_ERROR = 1
EXIT_STUCK = 3
PASSES_MAX = 5_000
RUN_MAX_S = 180.0
IDLE_S = 0.02  # between passes that found nothing to do (a batch backing off)
OPEN_BATCH_STATUSES = ("prepared", "signed", "sent")


async def _nothing_left(database: Database, mirror: chain_mirror.Mirror) -> bool:
    async with database.read() as session:
        state = await chain_mirror.status(session, chain=mirror.chain)
        notices = await platform.pending_messages(session, topic=NOTICES_TOPIC, limit=1)
    open_batches = sum(state.batches.get(status, 0) for status in OPEN_BATCH_STATUSES)
    return not state.pending_movements and not open_batches and not notices


async def _drain(settings: Settings, progress_fd: int) -> int:
    """Mirror and deliver until the outbox of both topics is empty and every batch confirmed."""
    database = Database.from_url(settings.database_url, settings)
    vault = Vault(key_ring_from_settings(settings))
    mirror = chain_mirror.Mirror(
        database=database, chain=chain_from_settings(settings), vault=vault, signer=Signer(vault), settings=settings
    )
    national_bank, custodian = national_bank_from_settings(settings), custodian_from_settings(settings)
    deadline = time.monotonic() + RUN_MAX_S
    try:
        for _ in range(PASSES_MAX):
            os.write(progress_fd, b".")
            done = await mirror.run_once()
            delivered = await deliver_notices_once(database, national_bank=national_bank, custodian=custodian)
            if await _nothing_left(database, mirror):
                return EXIT_DONE
            if time.monotonic() > deadline:
                break
            if not done.work and not delivered:
                await asyncio.sleep(IDLE_S)
        return EXIT_STUCK
    finally:
        await national_bank.aclose()
        await custodian.aclose()
        await database.dispose()


def _run(settings: Settings, environment: dict[str, str]) -> dict[str, float | int]:
    """One run in a forked process, and how it ended."""
    progress_read, progress_write = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the run's process: it never returns from here
        os.close(progress_read)
        code = EXIT_ERROR
        try:
            os.environ.update(environment)
            code = asyncio.run(_drain(settings, progress_write))
        except BaseException:  # noqa: BLE001 - whatever it was, its traceback is the run's answer
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(progress_write)
    passes = 0
    with os.fdopen(progress_read, "rb") as progress:
        while chunk := progress.read(4096):  # until the run's process is gone, whichever way it went
            passes += len(chunk)
    _, status = os.waitpid(pid, 0)
    return {"exit": os.waitstatus_to_exitcode(status), "passes": passes, "seconds": time.monotonic() - started}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # Done here once, so that every run's process has them from the fork: the settings (only DFA_FAULTS, which
    # is read where it is used, differs between runs), the compiled contract and the configured ORM mappers.
    settings = Settings(_env_file=None)
    token_contract()
    configure_mappers()
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_run(settings, json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
