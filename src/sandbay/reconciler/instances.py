"""Provisions OpenClaw instances whose environments have come up: every second,
and at once when a create or start hints that one is waiting."""

from sandbay.kit.loops import Hint, PeriodicLoop
from sandbay.services.agents.gateway import InstanceProvisioner


class InstanceProvisioningLoop(PeriodicLoop):
    name = "instance-provisioner"

    def __init__(self, provisioner: InstanceProvisioner, hint: Hint, interval: float) -> None:
        super().__init__(interval)
        self._provisioner = provisioner
        hint.subscribe(self.wake)

    async def sweep(self) -> None:
        await self._provisioner.sweep()
