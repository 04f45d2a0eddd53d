"""The set of simulated instances plus shared observation and webhook delivery."""

from __future__ import annotations

from .config import InstanceConfig, SimConfig
from .instance import SimInstance
from .observe import Observer
from .webhooks import WebhookDispatcher


class Simulator:
    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.observer = Observer()
        self.dispatcher = WebhookDispatcher(on_result=self.observer.webhook_result)
        self.instances: dict[str, SimInstance] = {}
        for inst in self.config.instances:
            self.add_instance(inst)

    def add_instance(self, config: InstanceConfig) -> SimInstance:
        if config.name in self.instances:
            raise ValueError(f"instance {config.name!r} already exists")
        instance = SimInstance(config, self.observer, self.dispatcher)
        self.instances[config.name] = instance
        return instance

    def get(self, name: str) -> SimInstance | None:
        return self.instances.get(name)

    def reset(self, state: bool = True, counters: bool = True) -> None:
        for instance in self.instances.values():
            instance.reset(state=state, counters=counters)
        if counters:
            self.observer.reset()
