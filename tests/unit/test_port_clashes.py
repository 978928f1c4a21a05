"""The boilerplate play's port check finds two services on one host with the same port."""

from __future__ import annotations

from tests.conftest import playbook_filters

clashes = playbook_filters("mlenv_inventory").mlenv_port_clashes

ALL_GROUPS = ["db_hosts", "object_store_hosts", "mlflow_hosts", "label_studio_hosts", "proxy_hosts"]


def one_host(**host_vars):
    return ["h"], {"h": host_vars}, {group: ["h"] for group in ALL_GROUPS}


def test_the_defaults_do_not_clash():
    assert clashes(*one_host()) == []


def test_two_services_on_one_port_are_named():
    assert clashes(*one_host(mlflow_port=8080)) == [
        "h: label_studio_port and mlflow_port are both 8080; give one of them another port"
    ]


def test_seaweedfs_grpc_ports_count_too():
    assert clashes(*one_host(mlflow_port=19333)) == [
        "h: mlflow_port and object_store_seaweedfs_master_port (gRPC, +10000) are both 19333; "
        "give one of them another port"
    ]


def test_services_on_different_hosts_may_share_a_port():
    groups = {"db_hosts": ["a"], "mlflow_hosts": ["b"]}
    assert clashes(["a", "b"], {"a": {"postgresql_port": 5000}, "b": {}}, groups) == []


def test_an_external_object_store_takes_no_port():
    assert clashes(*one_host(object_store_backend="external", mlflow_port=8333)) == []
