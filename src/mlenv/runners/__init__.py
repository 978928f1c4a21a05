"""Wrappers around the tools mlenv drives: ansible-runner now, the Pulumi Automation API later."""
