"""mlenv's CrossGuard pack: assembles the rules; each rule module holds its validators and messages."""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import ALL

PolicyPack(name="mlenv", enforcement_level=EnforcementLevel.MANDATORY, policies=ALL)
