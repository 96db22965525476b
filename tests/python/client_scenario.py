#!/usr/bin/env python3
"""The official Kubernetes Python client against a running svcnet server.

Usage: client_scenario.py [--keep-going] http://127.0.0.1:PORT

Runs what Python users of the client do (create, read, list, replace, patch, watch, delete of
Services and of the other served kinds, discovery, the dynamic client) through `kubernetes.client`
unchanged, with no authentication. Every call goes through the client's strict pydantic models, so
a response whose JSON does not fit them fails the call. The first failed check ends the run with
exit status 1 and says which step failed and why; with --keep-going every failed check is reported
and the run goes on where it can. Names are unique per run, so runs can share a server.

Expectations follow upstream kube-apiserver. Not covered: a watch from a compacted
resourceVersion (410 Gone), since the store compacts only after hundreds of thousands of
revisions.
"""

import datetime
import json
import sys
import threading
import time
import traceback
import uuid

import kubernetes
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException


class CheckFailed(Exception):
    pass


# With --keep-going a failed check is reported and the run goes on (exit status 1 at the end), to
# see every failing check at once; errors raised by the client still end the run.
KEEP_GOING = False
FAILURES = []


def check(condition, message):
    if not condition:
        if not KEEP_GOING:
            raise CheckFailed(message)
        FAILURES.append(f"{STEP[0]}: {message}")
        print(f"FAILED (continuing): {message}", flush=True)
    return bool(condition)


def check_eq(actual, expected, what):
    return check(actual == expected, f"{what}: expected {expected!r}, got {actual!r}")


STEP = ["(start)"]


def step(name):
    STEP[0] = name
    print(f"--- {name}", flush=True)


def status_body(err):
    """The Status object of a failed call, decoded."""
    try:
        return json.loads(err.body or "")
    except ValueError:
        check(False, f"error response is not a JSON Status: HTTP {err.status}, body {err.body!r}")
        return {}


def expect_api_error(call, code, reason, what):
    """Runs `call`, insists it fails with HTTP `code` and Status `reason`; returns the Status."""
    try:
        result = call()
    except ApiException as err:
        check(
            err.status == code,
            f"{what}: expected HTTP {code} ({reason}), got HTTP {err.status}: {err.body}",
        )
        status = status_body(err)
        check_eq(status.get("kind"), "Status", f"{what}: error body kind")
        check_eq(status.get("apiVersion"), "v1", f"{what}: error body apiVersion")
        check_eq(status.get("status"), "Failure", f"{what}: Status.status")
        check_eq(status.get("code"), code, f"{what}: Status.code")
        check_eq(status.get("reason"), reason, f"{what}: Status.reason")
        check(status.get("message"), f"{what}: Status.message is empty: {status}")
        return status
    check(False, f"{what}: expected HTTP {code} ({reason}), the call succeeded with {short(result)}")
    return {}


def short(value, limit=400):
    if hasattr(value, "to_dict"):
        value = value.to_dict(serialize=True)
    text = json.dumps(value, default=str) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def call(what, fn):
    """A call that must succeed; its failure is a failed check (so --keep-going goes on)."""
    try:
        return fn()
    except ApiException as err:
        check(False, f"{what}: HTTP {err.status} {err.reason}: {err.body}")
        return None


def names(items):
    return sorted(item.metadata.name for item in items)


def is_aware_datetime(value):
    return isinstance(value, datetime.datetime) and value.tzinfo is not None


def check_object_meta(obj, name, namespace, what):
    meta = obj.metadata
    check(meta is not None, f"{what}: no metadata")
    check_eq(meta.name, name, f"{what}: metadata.name")
    check_eq(meta.namespace, namespace, f"{what}: metadata.namespace")
    check(meta.uid, f"{what}: metadata.uid is empty")
    check(meta.resource_version, f"{what}: metadata.resourceVersion is empty")
    check(
        is_aware_datetime(meta.creation_timestamp),
        f"{what}: metadata.creationTimestamp is not an RFC 3339 time: {meta.creation_timestamp!r}",
    )


def check_deleted(result, name, uid, resource, group="", returns_object=None):
    """A DELETE answer. Kinds whose upstream storage sets ReturnDeletedObject (Pods, Services)
    answer with the deleted object (`returns_object` is its kind); every other kind answers with
    Status Success whose details name the object, its group, its resource and uid."""
    what = f"delete {resource}" + (f".{group}" if group else "")
    if hasattr(result, "to_dict"):
        result = result.to_dict(serialize=True)
    if not check(isinstance(result, dict), f"{what}: DELETE answered {result!r}"):
        return
    if returns_object:
        check_eq(result.get("kind"), returns_object, f"{what}: kind of the DELETE answer")
        check_eq(result.get("metadata", {}).get("name"), name, f"{what}: name in the DELETE answer")
        check_eq(result.get("metadata", {}).get("uid"), uid, f"{what}: uid in the DELETE answer")
        return
    shape = (result.get("kind"), result.get("apiVersion"), result.get("status"))
    if not check(
        shape == ("Status", "v1", "Success"),
        f"{what}: expected a Status Success answer as upstream gives for this kind, got {short(result)}",
    ):
        return
    details = result.get("details") or {}
    check_eq(
        (details.get("name"), details.get("group", ""), details.get("kind"), details.get("uid")),
        (name, group, resource, uid),
        f"{what}: Status.details (name, group, kind, uid) of the DELETE answer",
    )


def wait_gone(read, what, seconds=10.0):
    deadline = time.monotonic() + seconds
    while True:
        try:
            read()
        except ApiException as err:
            check(err.status == 404, f"{what}: expected 404 once gone, got HTTP {err.status}: {err.body}")
            return
        check(time.monotonic() < deadline, f"{what}: still present after {seconds} s")
        time.sleep(0.1)


def run(url):
    configuration = client.Configuration(host=url)
    api_client = client.ApiClient(configuration)
    # Watch() builds its own ApiClient for decoding only; requests go through the API objects.
    client.Configuration.set_default(configuration)
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    discovery = client.DiscoveryV1Api(api_client)
    coordination = client.CoordinationV1Api(api_client)

    run_id = uuid.uuid4().hex[:8]
    ns = f"py-{run_id}"
    svc = f"web-{run_id}"
    app = f"web-{run_id}"
    print(f"kubernetes client {kubernetes.__version__}, server {url}, namespace {ns}", flush=True)

    # ---------------------------------------------------------------- namespaces
    step("create namespace")
    created = core.create_namespace(body={"metadata": {"name": ns, "labels": {"run": run_id}}})
    check(isinstance(created, client.V1Namespace), f"create_namespace returned {type(created)}")
    check_eq(created.metadata.name, ns, "created namespace name")
    check_eq(created.kind, "Namespace", "created namespace kind")
    check_eq(created.api_version, "v1", "created namespace apiVersion")
    check(created.metadata.uid, "created namespace has no uid")
    check(is_aware_datetime(created.metadata.creation_timestamp), "namespace creationTimestamp")
    check_eq(created.status.phase, "Active", "new namespace status.phase")

    step("read namespace")
    read_ns = core.read_namespace(ns)
    check_eq(read_ns.metadata.uid, created.metadata.uid, "namespace uid on read")
    check_eq(read_ns.metadata.labels, {"run": run_id}, "namespace labels on read")
    check_eq(read_ns.status.phase, "Active", "namespace phase on read")
    check_eq(read_ns.spec.finalizers, ["kubernetes"], "namespace spec.finalizers")

    step("list namespaces")
    ns_list = core.list_namespace(label_selector=f"run={run_id}")
    check(isinstance(ns_list, client.V1NamespaceList), f"list_namespace returned {type(ns_list)}")
    check_eq(names(ns_list.items), [ns], "namespaces selected by label")
    all_ns = names(core.list_namespace().items)
    for expected in ("default", "kube-system", ns):
        check(expected in all_ns, f"namespace {expected} missing from {all_ns}")

    # ---------------------------------------------------------------- services: create and read
    step("create service from a dict without apiVersion/kind")
    body = {
        "metadata": {"name": svc, "labels": {"app": app}},
        "spec": {
            "selector": {"app": app},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }
    created = core.create_namespaced_service(ns, body=body)
    check(isinstance(created, client.V1Service), f"create_namespaced_service returned {type(created)}")
    check_object_meta(created, svc, ns, "created service")
    check_eq(created.kind, "Service", "created service kind")
    check_eq(created.api_version, "v1", "created service apiVersion")
    check_eq(len(created.spec.ports), 1, "created service port count")
    check_eq(created.spec.ports[0].port, 80, "created service port")
    check_eq(created.spec.ports[0].target_port, 8080, "created service targetPort")
    check_eq(created.spec.ports[0].name, "http", "created service port name")
    check_eq(created.spec.selector, {"app": app}, "created service selector")

    step("create service from a model with a named targetPort")
    named = f"named-{run_id}"
    model = client.V1Service(
        metadata=client.V1ObjectMeta(name=named, labels={"app": app, "style": "model"}),
        spec=client.V1ServiceSpec(
            selector={"app": app},
            ports=[client.V1ServicePort(name="grpc", port=9000, target_port="grpc-port")],
        ),
    )
    created_named = core.create_namespaced_service(ns, body=model)
    check_eq(created_named.spec.ports[0].target_port, "grpc-port", "named targetPort")
    check_eq(created_named.spec.ports[0].port, 9000, "port of the model-built service")

    step("read service")
    got = core.read_namespaced_service(svc, ns)
    check_object_meta(got, svc, ns, "read service")
    check_eq(got.metadata.uid, created.metadata.uid, "service uid on read")
    check_eq(got.metadata.resource_version, created.metadata.resource_version, "resourceVersion on read")
    check_eq(got.spec.ports[0].port, 80, "read service port")
    check_eq(got.spec.ports[0].target_port, 8080, "read service targetPort")
    check_eq(got.metadata.labels, {"app": app}, "read service labels")

    # ---------------------------------------------------------------- lists
    step("list services by label selector")
    by_label = core.list_namespaced_service(ns, label_selector=f"app={app}")
    check(isinstance(by_label, client.V1ServiceList), f"list returned {type(by_label)}")
    check(isinstance(by_label.items, list), "ServiceList.items is not a list")
    check_eq(names(by_label.items), sorted([svc, named]), "services selected by app label")
    check(by_label.metadata.resource_version, "ServiceList has no metadata.resourceVersion")
    check_eq(
        names(core.list_namespaced_service(ns, label_selector="style=model").items),
        [named],
        "services selected by style=model",
    )
    check_eq(
        names(core.list_namespaced_service(ns, label_selector=f"app={app},style!=model").items),
        [svc],
        "services selected by app and style!=model",
    )
    check_eq(
        core.list_namespaced_service(ns, label_selector="app=nothing-has-this").items,
        [],
        "services selected by an unmatched label",
    )

    step("list services by field selector metadata.name")
    by_field = core.list_namespaced_service(ns, field_selector=f"metadata.name={svc}")
    check_eq(names(by_field.items), [svc], "services selected by metadata.name")
    check_eq(by_field.items[0].spec.ports[0].port, 80, "port of the listed service")

    step("list services in all namespaces")
    everywhere = core.list_service_for_all_namespaces(label_selector=f"app={app}")
    check_eq(
        sorted((s.metadata.namespace, s.metadata.name) for s in everywhere.items),
        sorted([(ns, svc), (ns, named)]),
        "services of all namespaces selected by app label",
    )
    everywhere = core.list_service_for_all_namespaces()
    check(
        (ns, svc) in [(s.metadata.namespace, s.metadata.name) for s in everywhere.items],
        "list_service_for_all_namespaces misses the new service",
    )

    # ---------------------------------------------------------------- replace
    step("replace with the current resourceVersion")
    current = core.read_namespaced_service(svc, ns)
    stale_version = current.metadata.resource_version
    current.metadata.annotations = {"example.com/owner": "team-a"}
    replaced = core.replace_namespaced_service(svc, ns, body=current)
    check_eq(replaced.metadata.annotations, {"example.com/owner": "team-a"}, "annotations after replace")
    check(
        replaced.metadata.resource_version != stale_version,
        f"resourceVersion did not change on replace ({stale_version})",
    )
    check_eq(replaced.metadata.uid, created.metadata.uid, "uid after replace")
    check_eq(replaced.spec.ports[0].port, 80, "port after replace")

    step("replace with a stale resourceVersion -> 409 Conflict")
    current.metadata.resource_version = stale_version
    current.metadata.annotations = {"example.com/owner": "team-b"}
    expect_api_error(
        lambda: core.replace_namespaced_service(svc, ns, body=current),
        409,
        "Conflict",
        "replace with a stale resourceVersion",
    )
    check_eq(
        core.read_namespaced_service(svc, ns).metadata.annotations,
        {"example.com/owner": "team-a"},
        "annotations after the refused replace",
    )

    # ---------------------------------------------------------------- patches
    step("strategic merge patch (dict body): add a label and a port")
    patched = core.patch_namespaced_service(
        svc,
        ns,
        body={
            "metadata": {"labels": {"tier": "frontend"}},
            "spec": {"ports": [{"name": "metrics", "port": 9090, "targetPort": 9091}]},
        },
    )
    check_eq(patched.metadata.labels, {"app": app, "tier": "frontend"}, "labels after patch")
    ports = sorted((p.name, p.port, p.target_port) for p in patched.spec.ports)
    check_eq(ports, [("http", 80, 8080), ("metrics", 9090, 9091)], "ports after strategic merge patch")
    check_eq(patched.metadata.annotations, {"example.com/owner": "team-a"}, "annotations kept by patch")

    step("JSON patch (list body)")
    json_patched = core.patch_namespaced_service(
        svc,
        ns,
        body=[
            {"op": "add", "path": "/metadata/annotations/example.com~1note", "value": "json-patch"},
            {"op": "replace", "path": "/spec/ports/0/targetPort", "value": 8081},
            {"op": "test", "path": "/metadata/labels/tier", "value": "frontend"},
        ],
    )
    check_eq(
        json_patched.metadata.annotations,
        {"example.com/owner": "team-a", "example.com/note": "json-patch"},
        "annotations after JSON patch",
    )
    http_port = [p for p in json_patched.spec.ports if p.name == "http"]
    check(http_port, f"port http missing after JSON patch: {json_patched.spec.ports}")
    check_eq(http_port[0].target_port, 8081, "targetPort after JSON patch")

    step("JSON patch with a failing test op -> error, no change")
    try:
        core.patch_namespaced_service(
            svc, ns, body=[{"op": "test", "path": "/metadata/labels/tier", "value": "backend"}]
        )
        raise CheckFailed("a JSON patch whose test op fails was applied")
    except ApiException as err:
        check(err.status in (409, 422, 400), f"failing JSON patch test op: HTTP {err.status}: {err.body}")

    step("remove a label with a None value")
    unlabelled = core.patch_namespaced_service(svc, ns, body={"metadata": {"labels": {"tier": None}}})
    check_eq(unlabelled.metadata.labels, {"app": app}, "labels after removing tier")
    check_eq(len(unlabelled.spec.ports), 2, "port count after label removal")

    step("strategic merge patch deleting a port by its key")
    trimmed = core.patch_namespaced_service(
        svc, ns, body={"spec": {"ports": [{"$patch": "delete", "port": 9090}]}}
    )
    check_eq([p.port for p in trimmed.spec.ports], [80], "ports after $patch: delete")

    step("patch that changes nothing keeps the resourceVersion")
    same = core.patch_namespaced_service(svc, ns, body={"metadata": {"labels": {"app": app}}})
    check_eq(same.metadata.resource_version, trimmed.metadata.resource_version, "resourceVersion of a no-op patch")

    # ---------------------------------------------------------------- watch
    step("watch from a resourceVersion while another thread creates, modifies, deletes")
    start_version = core.list_namespaced_service(ns).metadata.resource_version
    watched = f"watched-{run_id}"
    writer_errors = []

    def writer():
        try:
            core.create_namespaced_service(
                ns,
                body={"metadata": {"name": watched}, "spec": {"ports": [{"port": 8443}]}},
            )
            core.patch_namespaced_service(watched, ns, body={"metadata": {"labels": {"phase": "two"}}})
            core.delete_namespaced_service(watched, ns)
        except Exception as err:  # reported by the main thread
            writer_errors.append(f"{type(err).__name__}: {err}")

    thread = threading.Thread(target=writer, daemon=True)
    w = watch.Watch()
    events = []
    thread.start()
    for event in w.stream(
        core.list_namespaced_service, ns, resource_version=start_version, timeout_seconds=15
    ):
        obj = event["object"]
        check(
            isinstance(obj, client.V1Service),
            f"watch event object is {type(obj)}, not V1Service: {event.get('raw_object')}",
        )
        events.append((event["type"], obj.metadata.name, obj.metadata.resource_version, obj))
        if event["type"] == "DELETED" and obj.metadata.name == watched:
            w.stop()
            break
    thread.join(10)
    check(not writer_errors, f"the writer thread failed: {writer_errors}")
    seen = [(kind, name) for kind, name, _, _ in events]
    check_eq(
        seen,
        [("ADDED", watched), ("MODIFIED", watched), ("DELETED", watched)],
        "watch events after the listed resourceVersion",
    )
    versions = [int(rv) for _, _, rv, _ in events]
    check(versions == sorted(versions) and len(set(versions)) == 3, f"watch resourceVersions {versions}")
    check(int(start_version) < versions[0], f"watch replayed an event at or before {start_version}")
    check_eq(events[0][3].spec.ports[0].port, 8443, "port of the ADDED object")
    check_eq(events[1][3].metadata.labels, {"phase": "two"}, "labels of the MODIFIED object")

    step("watch without a resourceVersion starts with the existing objects")
    w = watch.Watch()
    initial = []
    for event in w.stream(
        core.list_namespaced_service, ns, label_selector=f"app={app}", timeout_seconds=5
    ):
        initial.append((event["type"], event["object"].metadata.name))
        if len(initial) == 2:
            w.stop()
            break
    check_eq(sorted(initial), sorted([("ADDED", svc), ("ADDED", named)]), "initial watch events")

    step("watch a namespace by field selector")
    w = watch.Watch()
    for event in w.stream(core.list_namespace, field_selector=f"metadata.name={ns}", timeout_seconds=5):
        check(isinstance(event["object"], client.V1Namespace), f"namespace watch object {type(event['object'])}")
        check_eq((event["type"], event["object"].metadata.name), ("ADDED", ns), "namespace watch event")
        w.stop()
        break
    else:
        raise CheckFailed("the namespace watch ended without an event")

    # A watch from a compacted resourceVersion (410 Gone) is not exercised: the store compacts its
    # history only once the revision is 200,000 past the last compaction (keeping 100,000).

    # ---------------------------------------------------------------- errors
    step("create a duplicate -> 409 AlreadyExists")
    status = expect_api_error(
        lambda: core.create_namespaced_service(ns, body=body), 409, "AlreadyExists", "duplicate create"
    )
    check_eq(status.get("details", {}).get("name"), svc, "AlreadyExists details.name")
    check_eq(status.get("details", {}).get("kind"), "services", "AlreadyExists details.kind")

    step("create with an invalid name -> 422 Invalid with causes")
    bad = {"metadata": {"name": "Bad_Name"}, "spec": {"ports": [{"port": 80}]}}
    status = expect_api_error(
        lambda: core.create_namespaced_service(ns, body=bad), 422, "Invalid", "invalid name"
    )
    causes = status.get("details", {}).get("causes") or []
    check(
        any(c.get("field") == "metadata.name" and c.get("reason") == "FieldValueInvalid" for c in causes),
        f"no FieldValueInvalid cause for metadata.name in {causes}",
    )
    check_eq(status.get("details", {}).get("name"), "Bad_Name", "Invalid details.name")

    step("read a missing service -> 404 NotFound")
    status = expect_api_error(
        lambda: core.read_namespaced_service(f"missing-{run_id}", ns), 404, "NotFound", "read missing"
    )
    check_eq(status.get("details", {}).get("kind"), "services", "NotFound details.kind")

    # ---------------------------------------------------------------- delete
    step("delete a service (DELETE without a body)")
    deleted = core.delete_namespaced_service(named, ns)
    check(isinstance(deleted, client.V1Service), f"delete_namespaced_service returned {type(deleted)}")
    check_eq(deleted.metadata.name, named, "name of the deleted service")
    check_eq(deleted.metadata.uid, created_named.metadata.uid, "uid of the deleted service")

    step("read after delete -> 404 NotFound")
    status = expect_api_error(
        lambda: core.read_namespaced_service(named, ns), 404, "NotFound", "read after delete"
    )
    check_eq(status.get("details", {}).get("name"), named, "NotFound details.name")
    expect_api_error(lambda: core.delete_namespaced_service(named, ns), 404, "NotFound", "second delete")
    check_eq(
        names(core.list_namespaced_service(ns).items), [svc], "services left after the delete"
    )

    # ---------------------------------------------------------------- nodes
    step("create and list nodes")
    node_name = f"node-{run_id}"
    node = core.create_node(
        body={
            "metadata": {"name": node_name, "labels": {"run": run_id, "kubernetes.io/hostname": node_name}},
            "spec": {"podCIDR": "10.244.7.0/24"},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "192.0.2.17"},
                    {"type": "Hostname", "address": node_name},
                ],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ],
            },
        }
    )
    check(isinstance(node, client.V1Node), f"create_node returned {type(node)}")
    check_eq(node.metadata.namespace, None, "namespace of a cluster-scoped node")
    addresses = [(a.type, a.address) for a in (node.status.addresses or [])]
    check_eq(
        addresses,
        [("InternalIP", "192.0.2.17"), ("Hostname", node_name)],
        "node status.addresses (kubelets register with status)",
    )
    check(
        is_aware_datetime(node.status.conditions[0].last_heartbeat_time),
        "node condition lastHeartbeatTime is not a time",
    )
    nodes = core.list_node(label_selector=f"run={run_id}")
    check(isinstance(nodes, client.V1NodeList), f"list_node returned {type(nodes)}")
    check_eq(names(nodes.items), [node_name], "nodes selected by label")
    check_eq(nodes.items[0].spec.pod_cidr, "10.244.7.0/24", "listed node spec.podCIDR")

    # ---------------------------------------------------------------- pods
    step("create and read a pod")
    pod_name = f"pod-{run_id}"
    pod = core.create_namespaced_pod(
        ns,
        body=client.V1Pod(
            metadata=client.V1ObjectMeta(name=pod_name, labels={"app": app}),
            # Unscheduled (no scheduler by that name), so that upstream deletes it at once (a pod
            # bound to a node waits for its kubelet).
            spec=client.V1PodSpec(
                scheduler_name=f"none-{run_id}",
                containers=[
                    client.V1Container(
                        name="web",
                        image="nginx:1.27",
                        ports=[client.V1ContainerPort(name="http", container_port=8080, protocol="TCP")],
                        env=[client.V1EnvVar(name="MODE", value="test")],
                    )
                ],
            ),
        ),
    )
    check(isinstance(pod, client.V1Pod), f"create_namespaced_pod returned {type(pod)}")
    check_object_meta(pod, pod_name, ns, "created pod")
    read_pod = core.read_namespaced_pod(pod_name, ns)
    container = read_pod.spec.containers[0]
    check_eq(container.name, "web", "pod container name")
    check_eq(container.image, "nginx:1.27", "pod container image")
    check_eq(
        [(p.name, p.container_port, p.protocol) for p in container.ports],
        [("http", 8080, "TCP")],
        "pod container ports",
    )
    check_eq(read_pod.status.phase, "Pending", "status.phase of a new pod")
    pods = core.list_namespaced_pod(ns, field_selector="status.phase=Pending,spec.nodeName=")
    check_eq(names(pods.items), [pod_name], "pods selected by status.phase and an empty spec.nodeName")
    check_eq(
        core.list_namespaced_pod(ns, field_selector=f"spec.nodeName={node_name}").items,
        [],
        "pods selected by another spec.nodeName",
    )

    # ---------------------------------------------------------------- endpoint slices
    step("create endpoint slices and list them by service name")
    slice_name = f"{svc}-abcde"
    created_slice = discovery.create_namespaced_endpoint_slice(
        ns,
        body={
            "metadata": {
                "name": slice_name,
                "labels": {"kubernetes.io/service-name": svc, "endpointslice.kubernetes.io/managed-by": "py"},
            },
            "addressType": "IPv4",
            "endpoints": [
                {
                    "addresses": ["10.244.7.5"],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "nodeName": node_name,
                    "targetRef": {"kind": "Pod", "name": pod_name, "namespace": ns},
                }
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        },
    )
    check(
        isinstance(created_slice, client.V1EndpointSlice),
        f"create_namespaced_endpoint_slice returned {type(created_slice)}",
    )
    check_eq(created_slice.address_type, "IPv4", "EndpointSlice addressType")
    other_slice = discovery.create_namespaced_endpoint_slice(
        ns,
        body=client.V1EndpointSlice(
            metadata=client.V1ObjectMeta(
                name=f"other-{run_id}", labels={"kubernetes.io/service-name": f"other-{run_id}"}
            ),
            address_type="IPv4",
            endpoints=[client.V1Endpoint(addresses=["10.244.7.6"])],
        ),
    )
    # The Service has a selector, so the EndpointSlice controller keeps slices of its own for it;
    # the managed-by label tells this client's slice from those.
    slices = discovery.list_namespaced_endpoint_slice(
        ns, label_selector=f"kubernetes.io/service-name={svc},endpointslice.kubernetes.io/managed-by=py"
    )
    check(isinstance(slices, client.V1EndpointSliceList), f"list returned {type(slices)}")
    check_eq(names(slices.items), [slice_name], "endpoint slices of the service")
    es = slices.items[0]
    check_eq(es.address_type, "IPv4", "listed EndpointSlice addressType")
    check_eq(es.endpoints[0].addresses, ["10.244.7.5"], "endpoint addresses")
    check_eq(es.endpoints[0].conditions.ready, True, "endpoint conditions.ready")
    check_eq(es.endpoints[0].target_ref.name, pod_name, "endpoint targetRef.name")
    check_eq([(p.name, p.port, p.protocol) for p in es.ports], [("http", 8080, "TCP")], "slice ports")
    everywhere = discovery.list_endpoint_slice_for_all_namespaces(
        label_selector=f"kubernetes.io/service-name={svc},endpointslice.kubernetes.io/managed-by=py"
    )
    check_eq(names(everywhere.items), [slice_name], "endpoint slices of the service in all namespaces")

    # ---------------------------------------------------------------- leases
    step("create a lease and renew it with replace")
    lease_name = f"lease-{run_id}"
    acquired = datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.timezone.utc)
    lease = coordination.create_namespaced_lease(
        ns,
        body=client.V1Lease(
            metadata=client.V1ObjectMeta(name=lease_name),
            spec=client.V1LeaseSpec(
                holder_identity="holder-a",
                lease_duration_seconds=15,
                acquire_time=acquired,
                renew_time=acquired,
            ),
        ),
    )
    check(isinstance(lease, client.V1Lease), f"create_namespaced_lease returned {type(lease)}")
    check_eq(lease.spec.holder_identity, "holder-a", "lease holderIdentity")
    check_eq(lease.spec.renew_time, acquired, "lease renewTime (MicroTime) round trip")
    renewed_at = acquired + datetime.timedelta(seconds=10, microseconds=1)
    lease.spec.renew_time = renewed_at
    renewed = coordination.replace_namespaced_lease(lease_name, ns, body=lease)
    check_eq(renewed.spec.renew_time, renewed_at, "lease renewTime after renewal")
    check(
        renewed.metadata.resource_version != lease.metadata.resource_version,
        "lease resourceVersion did not change on renewal",
    )
    lease.spec.renew_time = renewed_at + datetime.timedelta(seconds=10)
    expect_api_error(
        lambda: coordination.replace_namespaced_lease(lease_name, ns, body=lease),
        409,
        "Conflict",
        "renewal with a stale lease",
    )
    check_eq(
        coordination.read_namespaced_lease(lease_name, ns).spec.renew_time, renewed_at, "lease renewTime on read"
    )

    # ---------------------------------------------------------------- apps
    step("create and read a deployment, a replica set and a stateful set")
    selector = client.V1LabelSelector(match_labels={"app": app})
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": app}),
        # The scheduler binds these pods to this run's Ready node, and no node agent confirms
        # their termination: a zero grace period lets the namespace deletion below finish at once.
        spec=client.V1PodSpec(
            termination_grace_period_seconds=0,
            containers=[
                client.V1Container(
                    name="web", image="nginx:1.27", ports=[client.V1ContainerPort(container_port=8080)]
                )
            ]
        ),
    )
    deploy_name = f"deploy-{run_id}"
    deployment = apps.create_namespaced_deployment(
        ns,
        body=client.V1Deployment(
            metadata=client.V1ObjectMeta(name=deploy_name),
            spec=client.V1DeploymentSpec(replicas=2, selector=selector, template=template),
        ),
    )
    check(isinstance(deployment, client.V1Deployment), f"create_namespaced_deployment returned {type(deployment)}")
    check_eq(deployment.metadata.generation, 1, "deployment generation on create")
    read_deploy = apps.read_namespaced_deployment(deploy_name, ns)
    check_eq(read_deploy.spec.replicas, 2, "deployment replicas")
    check_eq(read_deploy.spec.selector.match_labels, {"app": app}, "deployment selector")
    check_eq(read_deploy.spec.template.spec.containers[0].ports[0].container_port, 8080, "deployment port")
    scaled = apps.patch_namespaced_deployment(deploy_name, ns, body={"spec": {"replicas": 3}})
    check_eq(scaled.spec.replicas, 3, "deployment replicas after patch")
    check_eq(scaled.metadata.generation, 2, "deployment generation after a spec change by PATCH")
    relabelled = apps.patch_namespaced_deployment(deploy_name, ns, body={"metadata": {"labels": {"x": "y"}}})
    check_eq(
        relabelled.metadata.generation, scaled.metadata.generation, "deployment generation after a metadata change"
    )
    # The Deployment controller writes status concurrently, so a replace is a read-modify-write
    # retried on 409 Conflict, as any client of a live object does.
    for attempt in range(20):
        current = apps.read_namespaced_deployment(deploy_name, ns)
        current.spec.replicas = 4
        try:
            replaced_deploy = apps.replace_namespaced_deployment(deploy_name, ns, body=current)
            break
        except ApiException as err:
            if err.status != 409 or attempt == 19:
                raise
    check_eq(replaced_deploy.spec.replicas, 4, "deployment replicas after replace")
    check_eq(
        replaced_deploy.metadata.generation,
        (current.metadata.generation or 0) + 1,
        "deployment generation after a spec change by PUT",
    )
    check_eq(
        names(apps.list_namespaced_deployment(ns).items), [deploy_name], "deployments in the namespace"
    )

    rs_name = f"rs-{run_id}"
    replica_set = apps.create_namespaced_replica_set(
        ns,
        body=client.V1ReplicaSet(
            metadata=client.V1ObjectMeta(name=rs_name),
            spec=client.V1ReplicaSetSpec(replicas=1, selector=selector, template=template),
        ),
    )
    check(isinstance(replica_set, client.V1ReplicaSet), f"create_namespaced_replica_set returned {type(replica_set)}")
    check_eq(apps.read_namespaced_replica_set(rs_name, ns).spec.replicas, 1, "replica set replicas")

    sts_name = f"sts-{run_id}"
    stateful_set = apps.create_namespaced_stateful_set(
        ns,
        body=client.V1StatefulSet(
            metadata=client.V1ObjectMeta(name=sts_name),
            spec=client.V1StatefulSetSpec(
                replicas=1, selector=selector, service_name=svc, template=template
            ),
        ),
    )
    check(isinstance(stateful_set, client.V1StatefulSet), f"create_namespaced_stateful_set returned {type(stateful_set)}")
    read_sts = apps.read_namespaced_stateful_set(sts_name, ns)
    check_eq(read_sts.spec.service_name, svc, "stateful set serviceName")
    check_eq(read_sts.spec.template.spec.containers[0].name, "web", "stateful set container name")

    # ---------------------------------------------------------------- events
    step("create events and list them by involvedObject.name")
    event_time = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    svc_event = core.create_namespaced_event(
        ns,
        body=client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"{svc}.1"),
            involved_object=client.V1ObjectReference(
                kind="Service", name=svc, namespace=ns, api_version="v1", uid=created.metadata.uid
            ),
            reason="Testing",
            message="created by the Python client scenario",
            type="Normal",
            count=1,
            first_timestamp=event_time,
            last_timestamp=event_time,
            source=client.V1EventSource(component="client-scenario"),
        ),
    )
    core.create_namespaced_event(
        ns,
        body={
            "metadata": {"name": f"{pod_name}.1"},
            "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": ns},
            "reason": "Other",
            "message": "about the pod",
            "type": "Warning",
        },
    )
    svc_events = core.list_namespaced_event(ns, field_selector=f"involvedObject.name={svc}")
    check(isinstance(svc_events, client.CoreV1EventList), f"list_namespaced_event returned {type(svc_events)}")
    check_eq(names(svc_events.items), [f"{svc}.1"], "events selected by involvedObject.name")
    ev = svc_events.items[0]
    check_eq(ev.involved_object.kind, "Service", "event involvedObject.kind")
    check_eq(ev.reason, "Testing", "event reason")
    check_eq(ev.last_timestamp, event_time, "event lastTimestamp")
    check_eq(
        names(core.list_namespaced_event(ns, field_selector="involvedObject.kind=Pod,type=Warning").items),
        [f"{pod_name}.1"],
        "events selected by involvedObject.kind and type",
    )

    # ---------------------------------------------------------------- more write paths
    step("create in a missing namespace -> 404 NotFound")
    status = expect_api_error(
        lambda: core.create_namespaced_service(
            f"missing-{run_id}", body={"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}}
        ),
        404,
        "NotFound",
        "create in a missing namespace",
    )
    check_eq(
        (status.get("details") or {}).get("kind"), "namespaces", "NotFound details.kind for a missing namespace"
    )

    step("status subresource: LB status only on LoadBalancer Services; status writes leave the spec alone")
    lb_status = {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}, "spec": {"ports": [{"port": 1234}]}}
    expect_api_error(
        lambda: core.patch_namespaced_service_status(svc, ns, body=lb_status),
        422,
        "Invalid",
        "load-balancer status on a ClusterIP Service",
    )
    core.patch_namespaced_service(svc, ns, body={"spec": {"type": "LoadBalancer"}})
    with_status = core.patch_namespaced_service_status(svc, ns, body=lb_status)
    check_eq(
        [i.ip for i in with_status.status.load_balancer.ingress], ["203.0.113.9"], "status after a status patch"
    )
    check_eq([i.ip_mode for i in with_status.status.load_balancer.ingress], ["VIP"], "ipMode defaults to VIP")
    check_eq([p.port for p in with_status.spec.ports], [80], "spec after a status patch")
    spec_patched = core.patch_namespaced_service(
        svc, ns, body={"metadata": {"labels": {"lb": "yes"}}, "status": {"loadBalancer": {"ingress": []}}}
    )
    # A main-resource write ignores the status it carries.
    check_eq(
        [i.ip for i in (spec_patched.status.load_balancer.ingress or [])],
        ["203.0.113.9"],
        "load-balancer status after a main-resource patch",
    )
    check_eq(spec_patched.metadata.labels, {"app": app, "lb": "yes"}, "labels after the main-resource patch")
    # Leaving LoadBalancer clears the load-balancer status and the node ports, as upstream does.
    back = core.patch_namespaced_service(svc, ns, body={"spec": {"type": "ClusterIP"}})
    check_eq(back.status.load_balancer.ingress, None, "load-balancer status after switching to ClusterIP")
    check_eq([p.node_port for p in back.spec.ports], [None], "node ports after switching to ClusterIP")

    step("merge patch (application/merge-patch+json)")
    merged = core.patch_namespaced_service(
        svc,
        ns,
        body={"metadata": {"labels": {"lb": None, "merge": "yes"}}},
        _content_type="application/merge-patch+json",
    )
    check_eq(merged.metadata.labels, {"app": app, "merge": "yes"}, "labels after a merge patch")

    step("server-side apply creates an object; apply without fieldManager -> 422")
    applied_name = f"applied-{run_id}"
    applied = core.patch_namespaced_service(
        applied_name,
        ns,
        body={
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": applied_name, "labels": {"via": "apply"}},
            "spec": {"ports": [{"name": "http", "port": 8080}]},
        },
        field_manager="client-scenario",
        _content_type="application/apply-patch+yaml",
    )
    check_object_meta(applied, applied_name, ns, "applied service")
    check_eq(applied.metadata.labels, {"via": "apply"}, "labels of the applied service")
    check_eq([(p.name, p.port) for p in applied.spec.ports], [("http", 8080)], "ports of the applied service")
    expect_api_error(
        lambda: core.patch_namespaced_service(
            applied_name,
            ns,
            body={"apiVersion": "v1", "kind": "Service", "metadata": {"name": applied_name}},
            _content_type="application/apply-patch+yaml",
        ),
        422,
        "Invalid",
        "apply without fieldManager",
    )

    step("watch with a label selector: entering the selection is ADDED, leaving it DELETED")
    start_version = core.list_namespaced_service(ns).metadata.resource_version
    mover = f"mover-{run_id}"
    core.create_namespaced_service(ns, body={"metadata": {"name": mover}, "spec": {"ports": [{"port": 81}]}})
    core.patch_namespaced_service(mover, ns, body={"metadata": {"labels": {"selected": "yes"}}})
    core.patch_namespaced_service(mover, ns, body={"metadata": {"annotations": {"touched": "yes"}}})
    core.patch_namespaced_service(mover, ns, body={"metadata": {"labels": {"selected": None}}})
    w = watch.Watch()
    moves = []
    for event in w.stream(
        core.list_namespaced_service,
        ns,
        label_selector="selected=yes",
        resource_version=start_version,
        timeout_seconds=5,
    ):
        moves.append((event["type"], event["object"].metadata.name))
        if len(moves) == 3:
            w.stop()
            break
    check_eq(
        moves,
        [("ADDED", mover), ("MODIFIED", mover), ("DELETED", mover)],
        "events of an object entering and leaving a watch's label selection",
    )

    # ---------------------------------------------------------------- discovery
    step("version and discovery through the typed APIs")
    # The generated client asks for /version/, /api/ and /apis/ with a trailing slash.
    code = call("GET /version/ (VersionApi.get_code)", client.VersionApi(api_client).get_code)
    if code is not None:
        check_eq(code.major, "1", "/version major")
        check(code.minor and (code.git_version or "").startswith("v1."), f"/version: {short(code)}")
    core_versions = call("GET /api/ (CoreApi.get_api_versions)", client.CoreApi(api_client).get_api_versions)
    if core_versions is not None:
        check_eq(core_versions.versions, ["v1"], "/api versions")
    group_list = call("GET /apis/ (ApisApi.get_api_versions)", client.ApisApi(api_client).get_api_versions)
    if group_list is not None:
        groups = {g.name: g for g in group_list.groups}
        for group in ("apps", "discovery.k8s.io", "coordination.k8s.io"):
            check(group in groups, f"/apis lacks group {group}: {sorted(groups)}")
        if "apps" in groups:
            check_eq(groups["apps"].preferred_version.group_version, "apps/v1", "preferred version of apps")
    apps_group = call("GET /apis/apps/ (AppsApi.get_api_group)", client.AppsApi(api_client).get_api_group)
    if apps_group is not None:
        check_eq(apps_group.name, "apps", "/apis/apps/ name")
    core_resources = {r.name: r for r in core.get_api_resources().resources}
    for name, namespaced, kind in (
        ("services", True, "Service"),
        ("pods", True, "Pod"),
        ("namespaces", False, "Namespace"),
        ("nodes", False, "Node"),
        ("events", True, "Event"),
    ):
        if check(name in core_resources, f"/api/v1 lacks {name}: {sorted(core_resources)}"):
            check_eq(
                (core_resources[name].namespaced, core_resources[name].kind),
                (namespaced, kind),
                f"/api/v1 entry of {name}",
            )
    check("services/status" in core_resources, "/api/v1 lacks services/status")
    apps_resources = {r.name for r in apps.get_api_resources().resources}
    for name in ("deployments", "replicasets", "statefulsets"):
        check(name in apps_resources, f"/apis/apps/v1 lacks {name}: {sorted(apps_resources)}")

    step("the dynamic client (discovery-driven)")
    dyn = dynamic.DynamicClient(api_client)
    dyn_services = dyn.resources.get(api_version="v1", kind="Service")
    check_eq(
        sorted(i.metadata.name for i in dyn_services.get(namespace=ns, label_selector=f"app={app}").items),
        [svc],
        "services listed by the dynamic client",
    )
    dyn_patched = dyn_services.patch(
        namespace=ns,
        name=svc,
        body={"metadata": {"labels": {"dynamic": "yes"}}},
        content_type="application/merge-patch+json",
    )
    check_eq(dyn_patched.metadata.labels["dynamic"], "yes", "label patched by the dynamic client")
    dyn_deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    check_eq(dyn_deployments.get(namespace=ns, name=deploy_name).spec.replicas, 4, "deployment via dynamic client")

    # ---------------------------------------------------------------- deletes of other kinds
    step("delete objects of the other kinds")
    check_deleted(
        apps.delete_namespaced_deployment(deploy_name, ns),
        deploy_name,
        deployment.metadata.uid,
        "deployments",
        "apps",
    )
    expect_api_error(
        lambda: apps.read_namespaced_deployment(deploy_name, ns), 404, "NotFound", "deployment after delete"
    )
    check_deleted(
        discovery.delete_namespaced_endpoint_slice(f"other-{run_id}", ns),
        f"other-{run_id}",
        other_slice.metadata.uid,
        "endpointslices",
        "discovery.k8s.io",
    )
    check_deleted(
        coordination.delete_namespaced_lease(lease_name, ns),
        lease_name,
        lease.metadata.uid,
        "leases",
        "coordination.k8s.io",
    )
    check_deleted(
        core.delete_namespaced_event(f"{svc}.1", ns), f"{svc}.1", svc_event.metadata.uid, "events"
    )
    check_deleted(
        core.delete_namespaced_pod(pod_name, ns), pod_name, pod.metadata.uid, "pods", returns_object="Pod"
    )
    expect_api_error(lambda: core.read_namespaced_pod(pod_name, ns), 404, "NotFound", "pod after delete")

    # ---------------------------------------------------------------- namespace deletion
    step("delete the namespace: Terminating, then gone")
    result, http_code, _ = core.delete_namespace_with_http_info(ns)
    check_eq(http_code, 200, "HTTP status of DELETE namespace (202 only with orphanDependents=false)")
    if hasattr(result, "to_dict"):
        result = result.to_dict(serialize=True)
    check(isinstance(result, dict), f"delete_namespace answered {result!r}")
    check_eq(result.get("kind"), "Namespace", "kind of the DELETE namespace answer")
    check_eq((result.get("status") or {}).get("phase"), "Terminating", "namespace phase in the DELETE answer")
    check((result.get("metadata") or {}).get("deletionTimestamp"), "no deletionTimestamp on the deleted namespace")
    try:
        terminating = core.read_namespace(ns)
        check_eq(terminating.status.phase, "Terminating", "namespace phase while it is being deleted")
        check(
            is_aware_datetime(terminating.metadata.deletion_timestamp),
            "terminating namespace deletionTimestamp is not a time",
        )
        try:
            core.create_namespaced_service(ns, body={"metadata": {"name": "late"}, "spec": {"ports": [{"port": 1}]}})
            check(False, "a service was created in a terminating namespace")
        except ApiException as err:
            # 404 when the namespace finished going away in between.
            check(
                err.status in (403, 404),
                f"create in a terminating namespace: expected 403 Forbidden, got HTTP {err.status}: {err.body}",
            )
    except ApiException as err:
        check(err.status == 404, f"read of the deleted namespace: HTTP {err.status}: {err.body}")
    wait_gone(lambda: core.read_namespace(ns), f"namespace {ns}")
    expect_api_error(lambda: core.read_namespaced_service(svc, ns), 404, "NotFound", "service of the deleted namespace")
    check(ns not in names(core.list_namespace().items), "the deleted namespace is still listed")
    check_eq(
        core.list_service_for_all_namespaces(label_selector=f"app={app}").items,
        [],
        "services of the deleted namespace",
    )

    step("delete the node")
    check_deleted(core.delete_node(node_name), node_name, node.metadata.uid, "nodes")
    expect_api_error(lambda: core.read_node(node_name), 404, "NotFound", "node after delete")



def main():
    global KEEP_GOING
    args = sys.argv[1:]
    if "--keep-going" in args:
        KEEP_GOING = True
        args.remove("--keep-going")
    if len(args) != 1:
        print(f"usage: {sys.argv[0]} [--keep-going] SERVER_URL", file=sys.stderr)
        return 2
    try:
        run(args[0])
    except CheckFailed as err:
        print(f"FAILED at step '{STEP[0]}': {err}", flush=True)
        return 1
    except ApiException as err:
        traceback.print_exc()
        print(
            f"FAILED at step '{STEP[0]}': unexpected API error HTTP {err.status} {err.reason}: {err.body}",
            flush=True,
        )
        return 1
    except Exception as err:  # a model that does not fit the server's JSON lands here
        traceback.print_exc()
        print(f"FAILED at step '{STEP[0]}': {type(err).__name__}: {err}", flush=True)
        return 1
    if FAILURES:
        print(f"{len(FAILURES)} CHECKS FAILED:", flush=True)
        for failure in FAILURES:
            print(f"  {failure}", flush=True)
        return 1
    print("ALL CHECKS PASSED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
