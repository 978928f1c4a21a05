"""Kubernetes NetworkPolicy semantics, evaluated offline: would a connection from one pod (or from
outside the pod network) to another (or to an address outside it) on a port be let through?"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


OUTSIDE = None  # the API server, MLflow and S3 behind the platform's proxy, the internet


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if not {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]:
            return False
    return True


def peer_matches(peer: dict[str, Any], policy_namespace: str, other: Pod | None) -> bool:
    if other is None:
        return "ipBlock" in peer
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], other.namespace_labels)
    else:
        in_namespace = other.namespace == policy_namespace
    return in_namespace and ("podSelector" not in peer or selects(peer["podSelector"], other.labels))


def rule_matches(rule: dict[str, Any], peers_key: str, namespace: str, other: Pod | None, port: int) -> bool:
    peers = rule.get(peers_key)
    if peers and not any(peer_matches(peer, namespace, other) for peer in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(p.get("port") in (None, port) and p.get("protocol", "TCP") == "TCP" for p in ports)


def let_through(policies: list[dict[str, Any]], pod: Pod, direction: str, other: Pod | None, port: int) -> bool:
    """Whether the policies of `pod`'s namespace let this direction of the connection through."""
    kind, rules_key, peers_key = {"egress": ("Egress", "egress", "to"), "ingress": ("Ingress", "ingress", "from")}[
        direction
    ]
    selecting = [
        policy
        for policy in policies
        if policy["metadata"]["namespace"] == pod.namespace
        and kind in policy["spec"].get("policyTypes", ["Ingress"])
        and selects(policy["spec"].get("podSelector", {}), pod.labels)
    ]
    if not selecting:
        return True
    return any(
        rule_matches(rule, peers_key, policy["metadata"]["namespace"], other, port)
        for policy in selecting
        for rule in policy["spec"].get(rules_key) or []
    )


def connects(policies: list[dict[str, Any]], source: Pod | None, target: Pod | None, port: int) -> bool:
    """Both ends agree: the source's egress and the target's ingress (outside the pod network, no policy applies)."""
    out = source is None or let_through(policies, source, "egress", target, port)
    into = target is None or let_through(policies, target, "ingress", source, port)
    return out and into
