"""The set of simulated instances and Cloud sites, the Atlassian platform around the sites, plus shared
observation and webhook delivery."""

from __future__ import annotations

import asyncio

from .atlassian import AtlassianAuth
from .config import InstanceConfig, SimConfig
from .instance import CloudSite, SimInstance
from .observe import Observer
from .webhooks import WebhookDispatcher


class Simulator:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.observer = Observer()
        self.dispatcher = WebhookDispatcher(on_result=self.observer.webhook_result)
        self.instances: dict[str, SimInstance] = {}
        self.atlassian = AtlassianAuth(self.config.atlassian, self.cloud_sites)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        for inst in self.config.instances:
            self.add_instance(inst)

    def add_instance(self, config: InstanceConfig) -> SimInstance:
        if config.name in self.instances:
            raise ValueError(f"instance {config.name!r} already exists")
        if config.name in self.config.atlassian.reserved_names:
            raise ValueError(f"instance name {config.name!r} is the path of the Atlassian platform")
        instance: SimInstance
        if config.deployment == "cloud":
            if self.site_by_cloud_id(config.cloud_id) is not None:
                raise ValueError(f"a Cloud site with cloud id {config.cloud_id} already exists")
            instance = CloudSite(config, self.observer, self.dispatcher, self.config.atlassian.api_path)
        else:
            instance = SimInstance(config, self.observer, self.dispatcher)
        self.instances[config.name] = instance
        return instance

    def get(self, name: str) -> SimInstance | None:
        return self.instances.get(name)

    def cloud_sites(self) -> list[CloudSite]:
        return [i for i in self.instances.values() if isinstance(i, CloudSite)]

    def site_by_cloud_id(self, cloud_id: str) -> CloudSite | None:
        return next((s for s in self.cloud_sites() if s.cloud_id == cloud_id), None)

    def reset(self, state: bool = True, counters: bool = True) -> None:
        for instance in self.instances.values():
            instance.reset(state=state, counters=counters)
        self.atlassian.reset(state=state, counters=counters)
        if counters:
            self.observer.reset()

    def bind_loop(self) -> None:
        """Called from the server's event loop at startup."""
        self.loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()

    async def pause(self, seconds: float, *, until: asyncio.Event | None = None) -> None:
        """Sleep for injected hangs and holds; cut short when `until` is set or the server is stopping."""
        events = [e for e in (self._stopping, until) if e is not None]
        if not events:
            await asyncio.sleep(seconds)
            return
        waits = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def wake_paused(self) -> None:
        """Thread-safe: end all injected hangs now (used before shutting down)."""
        if self.loop is not None and self._stopping is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stopping.set)
