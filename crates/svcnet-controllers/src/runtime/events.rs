//! Events about the objects a controller works on (`kubectl describe` and `kubectl get events`
//! show them), written as core/v1 Events the way client-go's recorder writes them. Publishing
//! never waits and never fails the sync: an Event is a note, not state.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::Resource;

/// Event types, as upstream spells them.
pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// Publishes Events on behalf of one component (`deployment-controller`, `default-scheduler`).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: &'static str,
}

impl Recorder {
    pub fn new(client: kube::Client, component: &'static str) -> Self {
        Recorder { client, component }
    }

    /// Records an Event about `object` in the background.
    pub fn publish<K>(&self, object: &K, type_: &str, reason: &str, message: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = event_for(
            reference_to(object),
            type_,
            reason,
            message,
            self.component,
            jiff::Timestamp::now(),
        );
        let namespace = event.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        tokio::spawn(async move {
            if let Err(err) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(%err, reason = event.reason.as_deref(), "event not recorded");
            }
        });
    }
}

/// The reference an Event's involvedObject carries.
pub fn reference_to<K: Resource<DynamicType = ()>>(object: &K) -> ObjectReference {
    let meta = object.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

/// The Event client-go's recorder makes: named `<object>.<unix nanos in hex>` in the object's
/// namespace (cluster-scoped objects' events go to `default`), count 1.
pub fn event_for(
    involved: ObjectReference,
    type_: &str,
    reason: &str,
    message: String,
    component: &str,
    now: jiff::Timestamp,
) -> Event {
    let name = format!(
        "{}.{:x}",
        involved.name.as_deref().unwrap_or("unknown"),
        now.as_nanosecond()
    );
    let namespace = involved.namespace.clone().unwrap_or_else(|| "default".into());
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        involved_object: involved,
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        reporting_component: Some(component.into()),
        reporting_instance: Some(String::new()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: None::<MicroTime>,
        count: Some(1),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;

    #[test]
    fn events_are_named_and_placed_as_client_go_does() {
        let now = jiff::Timestamp::from_nanosecond(0x17f0_0000_0000_0001).unwrap();
        let mut node = Node::default();
        node.metadata.name = Some("node1".into());
        node.metadata.uid = Some("u-1".into());
        let event = event_for(
            reference_to(&node),
            NORMAL,
            "NodeNotReady",
            "Node node1 status is now: NodeNotReady".into(),
            "node-controller",
            now,
        );
        assert_eq!(event.metadata.name.as_deref(), Some("node1.17f0000000000001"));
        assert_eq!(event.metadata.namespace.as_deref(), Some("default"), "cluster-scoped");
        assert_eq!(event.involved_object.kind.as_deref(), Some("Node"));
        assert_eq!(event.involved_object.api_version.as_deref(), Some("v1"));
        assert_eq!(event.involved_object.uid.as_deref(), Some("u-1"));
        assert_eq!(event.count, Some(1));
        assert_eq!(event.source.unwrap().component.as_deref(), Some("node-controller"));
    }
}
