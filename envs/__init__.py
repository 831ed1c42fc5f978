"""Gymnasium tasks over any `Line`: Frame to observation, action to Command, KPIs to reward."""
