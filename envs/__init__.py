"""Gymnasium tasks over any `Line`: Frame to observation, action to Command, KPIs to reward.

`import envs` registers `smartline/Scheduling-v0`, `Speed-v0`, `Energy-v0`, `Maintenance-v0`,
`Inventory-v0` and `Factory-v0`.
"""

from envs.registration import register_all

register_all()
