//! Pod status from what the agent sees (the kubelet's generateAPIPodStatus): phase, addresses,
//! conditions and container statuses, as a pure function. Transition times carry over from
//! the previous status while a condition keeps its value, so an unchanged pod yields an equal
//! status and nothing is written.

use std::net::Ipv4Addr;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

/// A container's state as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated {
        exit_code: i32,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub container_id: String,
    pub state: State,
    /// The last termination, shown while the container waits to restart or runs again.
    pub last: Option<State>,
    pub restart_count: i32,
    pub ready: bool,
    pub started: bool,
}

/// Everything the status is made of.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub pod: &'a Pod,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Ipv4Addr,
    pub start_time: Timestamp,
    pub containers: &'a [ContainerView],
    pub now: Timestamp,
}

pub fn time_text(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The pod phase (getPhase upstream, without init containers).
pub fn phase(restart_policy: &str, containers: &[ContainerView]) -> &'static str {
    let running = containers.iter().any(|c| matches!(c.state, State::Running { .. }));
    let terminated: Vec<i32> = containers
        .iter()
        .filter_map(|c| match c.state {
            State::Terminated { exit_code, .. } => Some(exit_code),
            _ => None,
        })
        .collect();
    let restarting = containers
        .iter()
        .any(|c| matches!(c.state, State::Waiting { .. }) && c.last.is_some());
    if running || restarting {
        return "Running";
    }
    if !containers.is_empty() && terminated.len() == containers.len() {
        let all_ok = terminated.iter().all(|code| *code == 0);
        return match (restart_policy, all_ok) {
            ("Never", true) | ("OnFailure", true) => "Succeeded",
            ("Never", false) => "Failed",
            _ => "Running",
        };
    }
    "Pending"
}

fn state_json(state: &State) -> Value {
    match state {
        State::Waiting { reason } => json!({"waiting": {"reason": reason}}),
        State::Running { started_at } => json!({"running": {"startedAt": time_text(*started_at)}}),
        State::Terminated {
            exit_code,
            started_at,
            finished_at,
        } => {
            let reason = if *exit_code == 0 { "Completed" } else { "Error" };
            let mut t = json!({"exitCode": exit_code, "reason": reason, "finishedAt": time_text(*finished_at)});
            if let Some(started) = started_at {
                t["startedAt"] = json!(time_text(*started));
            }
            json!({"terminated": t})
        }
    }
}

fn container_json(c: &ContainerView) -> Value {
    let mut v = json!({
        "name": c.name,
        "image": c.image,
        "imageID": "",
        "containerID": c.container_id,
        "ready": c.ready,
        "started": c.started,
        "restartCount": c.restart_count,
        "state": state_json(&c.state),
        "lastState": c.last.as_ref().map(state_json).unwrap_or_else(|| json!({})),
    });
    if c.container_id.is_empty() {
        v.as_object_mut().map(|o| o.remove("containerID"));
    }
    v
}

/// A condition, keeping the previous lastTransitionTime when its status did not change.
fn condition(previous: &Pod, kind: &str, ok: bool, reason: Option<&str>, now: Timestamp) -> Value {
    let status = if ok { "True" } else { "False" };
    let before = previous
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind));
    let since = match before {
        Some(c) if c.status == status => c.last_transition_time.as_ref().map(|t| time_text(t.0)),
        _ => None,
    };
    let mut v = json!({"type": kind, "status": status, "lastTransitionTime": since.unwrap_or_else(|| time_text(now))});
    if let Some(reason) = reason.filter(|_| !ok) {
        v["reason"] = json!(reason);
    }
    v
}

/// The whole status object the agent writes.
pub fn pod_status(inputs: &Inputs) -> Value {
    let spec = inputs.pod.spec.as_ref();
    let policy = spec.and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let phase = phase(policy, inputs.containers);
    let all_ready = !inputs.containers.is_empty() && inputs.containers.iter().all(|c| c.ready);
    // A finished pod is not ready, whatever its last probe said.
    let ready = all_ready && phase == "Running";
    let now = inputs.now;
    let previous = inputs.pod;
    let mut status = json!({
        "phase": phase,
        "hostIP": inputs.host_ip.to_string(),
        "hostIPs": [{"ip": inputs.host_ip.to_string()}],
        "startTime": time_text(inputs.start_time),
        "conditions": [
            condition(previous, "PodReadyToStartContainers", inputs.pod_ip.is_some(), None, now),
            condition(previous, "Initialized", true, None, now),
            condition(previous, "Ready", ready, Some("ContainersNotReady"), now),
            condition(previous, "ContainersReady", ready, Some("ContainersNotReady"), now),
            condition(previous, "PodScheduled", true, None, now),
        ],
        "containerStatuses": inputs.containers.iter().map(container_json).collect::<Vec<_>>(),
        "qosClass": "BestEffort",
    });
    if let Some(ip) = inputs.pod_ip {
        status["podIP"] = json!(ip.to_string());
        status["podIPs"] = json!([{"ip": ip.to_string()}]);
    }
    status
}

/// Whether the pod as the API has it still shows what the agent last wrote: its phase and the
/// status of each condition it wrote. Another writer (the node lifecycle controller marking the
/// pods of a NotReady node) may have changed them since; the kubelet's status manager then
/// writes its status again, and so does the agent.
pub fn api_shows(pod: &Pod, written: &Value) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let phase_kept = written["phase"].as_str() == status.phase.as_deref();
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition_kept = |wanted: &Value| {
        conditions
            .iter()
            .any(|c| wanted["type"] == c.type_.as_str() && wanted["status"] == c.status.as_str())
    };
    let written_conditions = written["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    phase_kept && written_conditions.iter().all(condition_kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "c"}]},
        }))
        .unwrap()
    }

    fn view(state: State, ready: bool) -> ContainerView {
        ContainerView {
            name: "c".into(),
            image: "echo".into(),
            container_id: "svcnet://u/c/0".into(),
            state,
            last: None,
            restart_count: 0,
            ready,
            started: true,
        }
    }

    #[test]
    fn a_status_changed_by_another_writer_is_noticed() {
        let containers = [view(State::Running { started_at: at(0) }, true)];
        let fresh = pod("Always");
        let written = pod_status(&inputs(&fresh, &containers, at(1)));
        let with_status = |status: &Value| -> Pod {
            let mut p = pod("Always");
            p.status = Some(serde_json::from_value(status.clone()).unwrap());
            p
        };
        assert!(api_shows(&with_status(&written), &written));
        assert!(!api_shows(&pod("Always"), &written));
        // The node lifecycle controller marks the pod NotReady in the same second.
        let mut marked = written.clone();
        marked["conditions"][2]["status"] = json!("False");
        let marked = with_status(&marked);
        assert!(!api_shows(&marked, &written));
        // Computed again from the marked pod, the status equals the one last written (same
        // second), which is why the agent must look at the API's copy and not only its own.
        assert_eq!(pod_status(&inputs(&marked, &containers, at(1))), written);
    }

    /// Inputs of a pod on node 192.168.77.11 with IP 10.244.1.5, started at `at(0)`.
    fn inputs<'a>(pod: &'a Pod, containers: &'a [ContainerView], now: Timestamp) -> Inputs<'a> {
        Inputs {
            pod,
            pod_ip: Some("10.244.1.5".parse().unwrap()),
            host_ip: "192.168.77.11".parse().unwrap(),
            start_time: at(0),
            containers,
            now,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[test]
    fn phases_follow_the_restart_policy() {
        let running = view(State::Running { started_at: at(0) }, true);
        let done = |code| {
            view(
                State::Terminated {
                    exit_code: code,
                    started_at: Some(at(0)),
                    finished_at: at(1),
                },
                false,
            )
        };
        let waiting = view(
            State::Waiting {
                reason: "ContainerCreating".into(),
            },
            false,
        );
        assert_eq!(phase("Always", &[running]), "Running");
        assert_eq!(phase("Always", std::slice::from_ref(&waiting)), "Pending");
        assert_eq!(phase("Never", &[done(0)]), "Succeeded");
        assert_eq!(phase("Never", &[done(1)]), "Failed");
        assert_eq!(phase("OnFailure", &[done(0)]), "Succeeded");
        assert_eq!(phase("OnFailure", &[done(1)]), "Running");
        let mut backing_off = waiting;
        backing_off.last = Some(State::Terminated {
            exit_code: 1,
            started_at: None,
            finished_at: at(1),
        });
        assert_eq!(phase("Always", &[backing_off]), "Running");
    }

    #[test]
    fn ready_status_with_addresses_and_stable_transition_times() {
        let p = pod("Always");
        let containers = [view(State::Running { started_at: at(0) }, true)];
        let inputs = inputs(&p, &containers, at(5));
        let status = pod_status(&inputs);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.244.1.5");
        assert_eq!(status["podIPs"][0]["ip"], "10.244.1.5");
        assert_eq!(status["hostIP"], "192.168.77.11");
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(
            status["containerStatuses"][0]["state"]["running"]["startedAt"],
            time_text(at(0))
        );

        // Written back and computed again later: the same status, so nothing is sent.
        let mut written = p.clone();
        written.status = serde_json::from_value(status.clone()).unwrap();
        let again = pod_status(&Inputs {
            pod: &written,
            now: at(50),
            ..inputs.clone()
        });
        assert_eq!(again, status);

        // Readiness lost: Ready flips with a new transition time.
        let unready = [view(State::Running { started_at: at(0) }, false)];
        let flipped = pod_status(&Inputs {
            pod: &written,
            now: at(60),
            containers: &unready,
            ..inputs
        });
        let ready = flipped["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
        assert_eq!(ready["lastTransitionTime"], time_text(at(60)));
    }

    #[test]
    fn a_finished_pod_is_not_ready() {
        let p = pod("Never");
        let containers = [view(
            State::Terminated {
                exit_code: 0,
                started_at: None,
                finished_at: at(2),
            },
            true,
        )];
        let status = pod_status(&Inputs {
            pod: &p,
            pod_ip: None,
            host_ip: "192.168.77.11".parse().unwrap(),
            start_time: at(0),
            containers: &containers,
            now: at(3),
        });
        assert_eq!(status["phase"], "Succeeded");
        assert_eq!(status["conditions"][2]["status"], "False");
        assert_eq!(
            status["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert!(status.get("podIP").is_none());
    }
}
