"""An echo endpoint for measuring the overhead of BentoML and of the load generator itself.

POST /echo returns its JSON body unchanged after ``ECHO_DELAY_MS`` milliseconds (default 0).
The endpoint is async and waits with ``asyncio.sleep``, so one worker serves many requests at
once: with a delay set it behaves like a slow model that does not hold the CPU.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import bentoml

DELAY_S = float(os.environ.get("ECHO_DELAY_MS", "0")) / 1000.0


@bentoml.service
class Echo:
    @bentoml.api
    async def echo(self, payload: Any, /) -> Any:  # positional-only: the whole body is the input
        if DELAY_S > 0:
            await asyncio.sleep(DELAY_S)
        return payload
